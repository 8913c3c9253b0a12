"""Diagnostics: a labelled corpus of curves (synthetic families of each kind, and histories of
real runs recorded in ``curves/real_runs.json``) is classified correctly, a few real runs are
trained and diagnosed live, and verdicts carry evidence, thresholds and remedies that apply."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from training import diagnostics
from training.diagnostics import (
    KINDS,
    Evidence,
    TaskInfo,
    Verdict,
    diagnose,
    task_from_curves,
    task_info,
)
from training.spec import ExperimentSpec

from .conftest import SpecFactory
from .curves import record

# --- the synthetic corpus -------------------------------------------------------------------
# Each family draws curves of one known kind. Lengths, tasks and noise cycle through the lists
# below; the family's own shape parameters are drawn from a seeded generator. Loss levels are
# expressed as fractions of the task's baseline loss B (majority-class cross-entropy, or 1 for
# standardised MSE), and noise is relative: a value v gets v × level × N(0, 1) added, on the
# validation curve at NOISE and on the training curve (an average over the epoch) at a third.

TASKS = (
    TaskInfo("classification", 10),
    TaskInfo("classification", 2),
    TaskInfo("regression"),
    TaskInfo("classification", 3),
    TaskInfo("classification", 2, majority_fraction=0.63),
)
LENGTHS = (8, 12, 20, 30, 45, 60)
NOISE = (0.0, 0.01, 0.03, 0.06, 0.1)
CURVES_PER_FAMILY = 15

Rng = np.random.Generator
Pair = tuple[np.ndarray, np.ndarray]  # training and validation loss, in units of B
# Every family takes (rng, epochs, task); only a few need the task.


def epochs(n: int) -> np.ndarray:
    return np.arange(n, dtype=float)


def decay(n: int, start: float, floor: float, tau: float) -> np.ndarray:
    """Exponential decay from ``start`` (epoch 1) towards ``floor`` with time constant tau."""
    return floor + (start - floor) * np.exp(-epochs(n) / tau)


# healthy: both curves fall and level off together, with a small or stable gap.


def converging(rng: Rng, n: int, task: TaskInfo) -> Pair:
    tau = n / rng.uniform(3.5, 10)
    floor = rng.uniform(0.02, 0.4)
    train = decay(n, rng.uniform(0.5, 1.0), floor, tau)
    val = decay(n, train[0] * rng.uniform(0.9, 1.05), floor + rng.uniform(0, 0.04),
                tau * rng.uniform(0.8, 1.2))
    return train, val


def stable_gap(rng: Rng, n: int, task: TaskInfo) -> Pair:
    tau = n / rng.uniform(4, 10)
    floor = rng.uniform(0.1, 0.4)
    train = decay(n, rng.uniform(0.6, 1.0), floor, tau)
    return train, train + rng.uniform(0.03, 0.15) * (1 - 0.5 * np.exp(-epochs(n) / tau))


def early_plateau(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Converged in the first fifth, then a long flat tail where only noise moves."""
    tau = n / rng.uniform(12, 20)
    floor = rng.uniform(0.05, 0.5)
    train = decay(n, rng.uniform(0.5, 1.0), floor, tau)
    return train, decay(n, train[0], floor + rng.uniform(0, 0.05), tau)


def spiky(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Converging, with one validation epoch 30-100% off (a bad batch-norm estimate, say)."""
    train, val = converging(rng, n, task)
    val[rng.integers(1, n)] *= rng.uniform(1.3, 2.0)
    return train, val


def modest_fit(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """A noisy target: half the baseline loss is the best either curve can do."""
    tau = n / rng.uniform(4, 8)
    floor = rng.uniform(0.3, 0.45)
    train = decay(n, rng.uniform(0.8, 1.0), floor, tau)
    return train, decay(n, rng.uniform(0.7, 0.9), floor + rng.uniform(0.02, 0.1), tau)


# overfitting: validation stalls at an onset epoch while training keeps improving.


def onset_epoch(rng: Rng, n: int, low: float, high: float) -> int:
    """A 0-based best-validation epoch, at least 1 and leaving four epochs after it."""
    return max(1, min(int(n * rng.uniform(low, high)), n - 5))


def approach(n: int, t0: int, start: float, level: float) -> np.ndarray:
    """From ``start`` down to ``level`` along a parabola that lands flat at epoch t0."""
    return level + (start - level) * np.clip(1 - epochs(n) / t0, 0, None) ** 2


def after(n: int, t0: int) -> np.ndarray:
    """0 up to epoch t0, then rising linearly to 1 at the last epoch."""
    return np.clip((epochs(n) - t0) / (n - 1 - t0), 0, None)


def u_shaped(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Validation falls to its best at t0, then rises by 20-100% by the last epoch."""
    t0 = onset_epoch(rng, n, 0.25, 0.65)
    best = rng.uniform(0.1, 0.5)
    rise = best * rng.uniform(0.2, 1) * after(n, t0) ** rng.choice([1.0, 1.5, 2.0])
    train = decay(n, rng.uniform(0.7, 1.0), rng.uniform(0, 0.05), n / rng.uniform(3, 6))
    return train, approach(n, t0, 1.0, best) + rise


def late_onset(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """A healthy run until the last fifth, where validation turns and rises 30-100%."""
    t0 = max(1, min(int(n * rng.uniform(0.7, 0.85)), n - 5))
    best = rng.uniform(0.1, 0.5)
    train = decay(n, rng.uniform(0.7, 1.0), rng.uniform(0, 0.05), n / rng.uniform(3, 6))
    return train, approach(n, t0, 1.0, best) + best * rng.uniform(0.3, 1) * after(n, t0)


def growing_gap(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Validation flat after t0 while training falls another 15-35% of B."""
    t0 = onset_epoch(rng, n, 0.2, 0.5)
    plateau = rng.uniform(0.4, 0.8)
    val = approach(n, t0, 1.0, plateau) + plateau * rng.uniform(0, 0.05) * after(n, t0)
    at_onset = plateau - rng.uniform(0, 0.05)
    drop = rng.uniform(0.15, 0.35)
    tau = (n - t0) / rng.uniform(1, 3)
    fall = (1 - np.exp(-(epochs(n) - t0) / tau)) / (1 - np.exp(-(n - 1 - t0) / tau))
    train = np.where(epochs(n) <= t0, approach(n, t0, 1.0, at_onset), at_onset - drop * fall)
    return np.maximum(train, 0.01), val


def memorising(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Validation settles by t0 and drifts up 2-8% by the end; training loss heads for zero,
    ending 7 to 500 times below it, falling fast at first and ever more slowly."""
    t0 = onset_epoch(rng, n, 0.2, 0.5)
    plateau = rng.uniform(0.1, 0.3)
    val = approach(n, t0, rng.uniform(0.6, 0.9), plateau)
    start, end = rng.uniform(0.6, 0.9), plateau * rng.uniform(0.002, 0.15)
    train = start * (end / start) ** ((epochs(n) / (n - 1)) ** rng.uniform(0.3, 0.7))
    return train, val * (1 + rng.uniform(0.02, 0.08) * after(n, t0))


def early_onset(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Best validation in the first epochs (a high learning rate), then a steady climb."""
    t0 = int(rng.integers(1, 4))
    t = epochs(n)
    best = rng.uniform(0.1, 0.4)
    val = np.where(t <= t0, best + (0.8 - best) * (1 - t / t0),
                   best * (1 + rng.uniform(0.3, 1.0) * (t - t0) / (n - 1 - t0)))
    train = rng.uniform(0.5, 0.8) * np.exp(-t / rng.uniform(1, 3)) + 0.001
    return train, val


# underfitting: the training loss itself stays near the baseline or plateaus high.


def flat_at_baseline(rng: Rng, n: int, task: TaskInfo) -> Pair:
    train = rng.uniform(0.92, 1.08) * (1 - rng.uniform(0, 0.01) * epochs(n) / n)
    return train, train * rng.uniform(0.98, 1.04)


def plateau_high(rng: Rng, n: int, task: TaskInfo) -> Pair:
    low = 0.6 if task.kind == "classification" else 0.8
    train = decay(n, rng.uniform(0.95, 1.1), rng.uniform(low, 0.95), n / rng.uniform(6, 12))
    return train, train * rng.uniform(1.0, 1.08)


def over_regularised(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Dropout keeps the training loss high; validation (without dropout) is a little lower."""
    train = decay(n, rng.uniform(1.0, 1.1), rng.uniform(0.8, 0.95), n / rng.uniform(6, 12))
    return train, train * rng.uniform(0.75, 0.95)


def saturating(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """A small drop that levels off close to the baseline."""
    train = decay(n, rng.uniform(0.98, 1.05), rng.uniform(0.8, 0.95), n / rng.uniform(3, 5))
    return train, train * rng.uniform(0.99, 1.05)


# diverging: non-finite values, an explosion, a climb, or a collapse back to chance.


def blows_up(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Learns for a while, then every epoch multiplies the loss by 1.5-4."""
    start = min(int(n * rng.uniform(0.3, 0.8)), n - 4)  # three epochs of growth at least
    healthy = decay(n, rng.uniform(0.6, 1.0), rng.uniform(0.05, 0.3), n / 5)
    factor = rng.uniform(1.5, 4) ** np.clip(epochs(n) - start, 0, None)
    return healthy * factor, healthy * factor * rng.uniform(1.0, 1.3)


def climbs(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Too high a learning rate from the start: the loss rises to 2-6 times chance."""
    train = rng.uniform(0.9, 1.1) * (1 + rng.uniform(1, 5) * (epochs(n) / (n - 1)) ** 1.5)
    return train, train * rng.uniform(1.0, 1.2)


def collapses(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """Learns, then jumps back to the chance level and stays there."""
    jump = int(rng.integers(2, n - 3))
    healthy = decay(n, rng.uniform(0.6, 1.0), rng.uniform(0.03, 0.3), n / 5)
    chance = rng.uniform(0.95, 1.2)
    train = np.where(epochs(n) < jump, healthy, chance)
    return train, train * rng.uniform(1.0, 1.1)


def first_epoch_blowup(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """The first epoch's loss is 4-30 times chance; the dead network then sits at chance."""
    train = np.full(n, rng.uniform(0.95, 1.15))
    train[0] = rng.uniform(4, 30)
    return train, train * rng.uniform(1.0, 1.2)


# slow: still falling steadily at the last epoch, with no plateau in sight.


def linear_descent(rng: Rng, n: int, task: TaskInfo) -> Pair:
    train = rng.uniform(0.6, 1.0) - rng.uniform(0.15, 0.5) * epochs(n) / (n - 1)
    return train, train + rng.uniform(0, 0.05)


def long_decay(rng: Rng, n: int, task: TaskInfo) -> Pair:
    train = decay(n, rng.uniform(0.5, 0.95), rng.uniform(0, 0.1), n * rng.uniform(1, 3))
    return train, train * rng.uniform(1.0, 1.1)


def quick_start_then_steady(rng: Rng, n: int, task: TaskInfo) -> Pair:
    level = rng.uniform(0.5, 0.7)
    steady = level - rng.uniform(0.15, 0.4) * epochs(n) / (n - 1)
    train = steady + (1.0 - level) * np.exp(-epochs(n))
    return train, train + rng.uniform(0, 0.05)


def slow_from_chance(rng: Rng, n: int, task: TaskInfo) -> Pair:
    """A learning rate far too low: a straight line down from the baseline."""
    train = rng.uniform(0.98, 1.05) - rng.uniform(0.1, 0.3) * epochs(n) / (n - 1)
    return train, train * rng.uniform(1.0, 1.02)


Family = Callable[[Rng, int, TaskInfo], Pair]

# family name -> (its label, its generator). The corpus is these curves, nothing else.
FAMILIES: dict[str, tuple[str, Family]] = {
    "converging": ("healthy", converging),
    "stable gap": ("healthy", stable_gap),
    "early plateau": ("healthy", early_plateau),
    "modest fit": ("healthy", modest_fit),
    "spiky": ("healthy", spiky),
    "u-shaped validation": ("overfitting", u_shaped),
    "growing gap": ("overfitting", growing_gap),
    "memorising": ("overfitting", memorising),
    "early onset": ("overfitting", early_onset),
    "late onset": ("overfitting", late_onset),
    "flat at baseline": ("underfitting", flat_at_baseline),
    "plateau high": ("underfitting", plateau_high),
    "over-regularised": ("underfitting", over_regularised),
    "saturating": ("underfitting", saturating),
    "blows up": ("diverging", blows_up),
    "climbs": ("diverging", climbs),
    "collapses": ("diverging", collapses),
    "first-epoch blow-up": ("diverging", first_epoch_blowup),
    "linear descent": ("slow", linear_descent),
    "long decay": ("slow", long_decay),
    "quick start then steady": ("slow", quick_start_then_steady),
    "slow from chance": ("slow", slow_from_chance),
}


@dataclass(frozen=True)
class Curve:
    name: str  # family and index, for failure messages
    label: str
    task: TaskInfo
    history: dict[str, list[float]]


def accuracy(task: TaskInfo, loss: np.ndarray, rng: Rng) -> list[float]:
    """An accuracy that moves with the loss: the majority share at B, 1 at zero loss."""
    acc = 1 - (1 - task.majority) * np.clip(loss / task.baseline_loss, 0, 1)
    return np.clip(acc + rng.normal(0, 0.005, len(loss)), 0, 1).tolist()


def make_curve(name: str, index: int) -> Curve:
    label, family = FAMILIES[name]
    rng = np.random.default_rng([index, *name.encode()])
    task = TASKS[index % len(TASKS)]
    n = LENGTHS[index % len(LENGTHS)]
    noise = NOISE[index // 3 % len(NOISE)]  # each level on three lengths and three tasks
    train, val = family(rng, n, task)
    scale = task.chance_loss if label == "diverging" else task.baseline_loss
    train = train * scale * (1 + rng.normal(0, noise / 3, n))
    val = val * scale * (1 + rng.normal(0, noise, n))
    history = {"train_loss": train.tolist(), "val_loss": val.tolist()}
    if task.kind == "classification":
        history["train_acc"] = accuracy(task, train, rng)
        history["val_acc"] = accuracy(task, val, rng)
    return Curve(f"{name} #{index} ({n} epochs, noise {noise}, {task.kind} "
                 f"{task.num_classes or ''})", label, task, history)


def nan_endings() -> Iterator[Curve]:
    """Runs that stopped on a non-finite loss: in an epoch's mean, or only in the last step."""
    for index in range(CURVES_PER_FAMILY):
        task = TASKS[index % len(TASKS)]
        rng = np.random.default_rng(index)
        n = int(rng.integers(3, 30))
        train = decay(n, 0.9, 0.2, n / 4) * task.chance_loss
        val = train * 1.05
        bad = [math.nan, math.inf][index % 2]
        if index % 3 == 0:  # the loop's way: every epoch logged is finite, the step is not
            history = {"train_loss": train.tolist(), "val_loss": val.tolist(),
                       "loss": [*train.tolist(), bad]}
        else:
            history = {"train_loss": [*train.tolist(), bad], "val_loss": [*val.tolist(), bad]}
        yield Curve(f"non-finite #{index}", "diverging", task, history)


def corpus() -> list[Curve]:
    curves = [make_curve(name, i) for name in FAMILIES for i in range(CURVES_PER_FAMILY)]
    return curves + list(nan_endings())


CORPUS = corpus()


def confusion(pairs: list[tuple[str, str]]) -> str:
    """A confusion matrix as text: one row per true label, one column per verdict."""
    kinds = [k for k in KINDS if any(k in pair for pair in pairs)]
    counts = Counter(pairs)
    lines = ["true \\ verdict".ljust(14) + "".join(k[:11].rjust(12) for k in kinds)]
    for truth in kinds:
        lines.append(truth.ljust(14) + "".join(str(counts[truth, k]).rjust(12) for k in kinds))
    return "\n".join(lines)


def test_the_synthetic_corpus_is_classified_with_95_percent_accuracy() -> None:
    # given the labelled synthetic corpus (every family, every length, task and noise level)
    assert Counter(c.label for c in CORPUS).most_common()[-1][1] >= 40, "≥ 40 curves per kind"

    # when each finished curve is diagnosed
    pairs = [(c.label, diagnose(c.history, c.task, final=True).kind) for c in CORPUS]

    # then at least 95% are right overall and at least 90% of every kind
    wrong = [f"{c.name}: {c.label} -> {got}" for c, (_, got) in zip(CORPUS, pairs, strict=True)
             if got != c.label]
    report = f"\n{confusion(pairs)}\nmisclassified:\n" + "\n".join(wrong)
    assert 1 - len(wrong) / len(CORPUS) >= 0.95, report
    for kind in {label for label, _ in pairs}:
        verdicts = [got for label, got in pairs if label == kind]
        assert verdicts.count(kind) / len(verdicts) >= 0.90, f"recall of {kind}{report}"


def test_a_live_verdict_never_says_slow() -> None:
    # given every curve of the corpus, the slow ones included, seen while the run is going
    # when each is diagnosed live
    verdicts = {diagnose(c.history, c.task, final=False).kind for c in CORPUS}

    # then none is "slow": a run that is still learning is fine until it ends
    assert "slow" not in verdicts


# --- histories of real runs -----------------------------------------------------------------

RECORDED = record.load()


@pytest.mark.parametrize("run", RECORDED, ids=[r.name for r in RECORDED])
def test_a_recorded_real_run_gets_the_verdict_it_was_made_for(run: record.Recorded) -> None:
    # given the history of a real run built to show one verdict (curves/record.py)
    # when the finished run is diagnosed with its spec
    verdict = diagnose(run.history, run.task, run.spec, final=True)

    # then the verdict is that one
    assert verdict.kind == run.label, (run.name, verdict.headline)


def test_the_recorded_runs_cover_every_verdict() -> None:
    # given the recorded real runs
    # when their labels are counted
    labels = Counter(r.label for r in RECORDED)

    # then each verdict but "undetermined" has at least three
    assert set(labels) == set(KINDS) - {"undetermined"}
    assert min(labels.values()) >= 3, labels


# Fast real runs (well under a second each on one thread), one per verdict, trained anew here.
TRAINED_NOW = ("wine_wide_mlp_on_half", "digits_two_units_tiny_lr", "diabetes_sgd_lr1",
               "iris_mlp_fast", "wine_mlp")


@pytest.fixture(scope="module")
def trained_now(tmp_path_factory: pytest.TempPathFactory) -> dict[str, record.Recorded]:
    return {name: record.train(name, tmp_path_factory.mktemp(name)) for name in TRAINED_NOW}


@pytest.mark.parametrize("name", TRAINED_NOW)
def test_a_real_run_trained_now_gets_the_verdict_it_was_made_for(
        trained_now: dict[str, record.Recorded], name: str) -> None:
    # given a real run trained just now
    run = trained_now[name]

    # when it is diagnosed once finished
    verdict = diagnose(run.history, run.task, run.spec, final=True)

    # then the verdict is the one it was built to show
    assert verdict.kind == run.label, verdict.headline


def test_a_real_overfitting_run_names_the_epoch_it_began(
        trained_now: dict[str, record.Recorded]) -> None:
    # given a wide MLP trained now on half of wine, overfitting
    run = trained_now["wine_wide_mlp_on_half"]

    # when it is diagnosed
    verdict = diagnose(run.history, run.task, run.spec, final=True)

    # then the onset is an epoch before the last three, and early stopping would end there
    assert verdict.onset_epoch is not None
    assert 1 <= verdict.onset_epoch <= len(run.history["val_loss"]) - 3
    stop = next(r for r in verdict.remedies if r.key == "early_stopping")
    assert stop.patch["run"]["epochs"] == verdict.onset_epoch + 3


def test_a_real_run_that_overflowed_is_diverging_with_certainty(
        trained_now: dict[str, record.Recorded]) -> None:
    # given a run the loop stopped on a non-finite loss, its last step recorded as NaN
    run = trained_now["diabetes_sgd_lr1"]
    assert run.error is not None

    # when it is diagnosed
    verdict = diagnose(run.history, run.task, run.spec, final=True)

    # then it is diverging, certainly, and the first remedy lowers the learning rate
    assert (verdict.kind, verdict.confidence) == ("diverging", 1.0)
    assert verdict.remedies[0].patch == {"optim": {"lr": run.spec.optim.lr / 10}}


# --- rules, one at a time -------------------------------------------------------------------

TEN_CLASSES = TaskInfo("classification", 10)  # baseline loss ln 10 = 2.30


def history(train: list[float], val: list[float]) -> dict[str, list[float]]:
    return {"train_loss": train, "val_loss": val}


def v_shaped(epochs: int = 12, best: int = 7) -> dict[str, list[float]]:
    """Validation falls in a straight line to its best at epoch ``best``, then climbs; training
    loss shrinks by 30% every epoch."""
    val = [2.0 - 0.25 * (e - 1) if e <= best else 0.5 + 0.1 * (e - best)
           for e in range(1, epochs + 1)]
    return history([2.0 * 0.7 ** (e - 1) for e in range(1, epochs + 1)], val)


def test_a_nan_in_the_history_is_diverging_from_its_epoch() -> None:
    # given losses that became NaN at epoch 4
    curves = history([2.0, 1.5, 1.2, math.nan], [2.1, 1.6, 1.3, math.nan])

    # when diagnosed
    verdict = diagnose(curves, TEN_CLASSES)

    # then it is diverging since epoch 4, with certainty
    assert (verdict.kind, verdict.onset_epoch, verdict.confidence) == ("diverging", 4, 1.0)


def test_an_infinite_step_loss_is_diverging_in_the_epoch_after_the_last() -> None:
    # given four finite epochs, then a step whose loss overflowed (the loop logs no more)
    curves = {**history([2.0, 1.5, 1.2, 1.0], [2.1, 1.6, 1.3, 1.1]),
              "loss": [2.2, 1.8, 1.4, 1.1, math.inf]}

    # when diagnosed
    verdict = diagnose(curves, TEN_CLASSES)

    # then it is diverging in epoch 5
    assert (verdict.kind, verdict.onset_epoch) == ("diverging", 5)


def test_a_first_epoch_far_above_chance_is_diverging_at_once() -> None:
    # given a single epoch whose mean training loss is twenty times the chance level
    # when diagnosed
    verdict = diagnose(history([46.0], [9.0]), TEN_CLASSES)

    # then it is diverging, without waiting for more epochs
    assert (verdict.kind, verdict.onset_epoch) == ("diverging", 1)


def test_fewer_than_three_epochs_are_undetermined() -> None:
    # given two ordinary epochs
    # when diagnosed
    verdict = diagnose(history([2.0, 1.5], [2.1, 1.6]), TEN_CLASSES, final=True)

    # then it is too early to tell, with no confidence and no remedies
    assert (verdict.kind, verdict.confidence, verdict.remedies) == ("undetermined", 0.0, [])
    assert verdict.headline == "Too short to tell: the run had 2 epochs, a verdict needs 3"
    live = diagnose(history([2.0], [2.1]), TEN_CLASSES, final=False)
    assert live.headline == "Too early to tell: 1 epoch so far, a verdict needs 3"


def test_the_onset_of_a_clear_overfit_is_the_best_validation_epoch() -> None:
    # given validation loss that is best at epoch 7 and then climbs, training loss falling
    curves = v_shaped(best=7)

    # when diagnosed
    verdict = diagnose(curves, TEN_CLASSES, final=True)

    # then it is overfitting since epoch 7, and says how much validation loss rose from that
    # epoch (0.5) to now (0.9, the median of the last three epochs)
    assert (verdict.kind, verdict.onset_epoch) == ("overfitting", 7)
    assert verdict.headline.startswith("Overfitting since epoch 7: validation loss rose 80%")


def test_a_live_run_needs_more_epochs_past_the_onset_to_be_called_overfitting() -> None:
    # given a run whose validation loss climbed for the three epochs after its best
    curves = v_shaped(epochs=10, best=7)

    # when diagnosed finished and live
    finished = diagnose(curves, TEN_CLASSES, final=True)
    live = diagnose(curves, TEN_CLASSES, final=False)

    # then only the finished run is called overfitting; the live one waits for more epochs
    assert finished.kind == "overfitting"
    assert live.kind == "healthy"


def test_a_run_still_falling_steadily_is_slow_once_finished_and_healthy_while_live() -> None:
    # given training and validation loss still falling in a straight line at the last epoch
    train = [2.3 - 0.05 * e for e in range(20)]
    curves = history(train, [v + 0.05 for v in train])

    # when diagnosed finished and live
    finished = diagnose(curves, TEN_CLASSES, final=True)
    live = diagnose(curves, TEN_CLASSES, final=False)

    # then it is learning slowly once it has ended, and healthy while it is still learning
    assert (finished.kind, live.kind) == ("slow", "healthy")


def test_a_loss_stuck_at_the_majority_class_level_is_underfitting() -> None:
    # given a 63%-majority binary task, and losses that stay at that class mix's entropy
    task = TaskInfo("classification", 2, majority_fraction=0.63)
    stuck = [task.baseline_loss * (1.0 - 0.001 * e) for e in range(10)]

    # when diagnosed
    verdict = diagnose(history(stuck, stuck), task, final=True)

    # then it is underfitting, measured against that baseline (0.659), not against ln 2
    assert verdict.kind == "underfitting"
    assert "(0.659)" in verdict.headline


def test_a_regression_at_the_mean_predictor_level_is_underfitting() -> None:
    # given standardised targets, and an MSE that stays near 1 (the mean predictor's)
    flat = [1.0 - 0.002 * e for e in range(12)]

    # when diagnosed
    verdict = diagnose(history(flat, [v + 0.02 for v in flat]), TaskInfo("regression"),
                       final=True)

    # then it is underfitting
    assert verdict.kind == "underfitting"


@pytest.mark.parametrize(("train", "kind"), [
    ([0.7] * 12, "underfitting"),  # nothing moved: a frozen model, or a logging slip
    ([1 / (e + 1) for e in range(12)], "overfitting"),  # training learned, validation never did
])
def test_a_validation_loss_logged_as_one_constant_value_gets_a_verdict(
        train: list[float], kind: str) -> None:
    # given a binary classifier whose validation loss is the same 0.7 every epoch (smoothed, a
    # flat 0.7 rounds to 0.6999999999999998, below every raw epoch: before, StopIteration,
    # and an external run logging it could not even end)
    val = [0.7] * 12

    # when diagnosed
    verdict = diagnose(history(train, val), TaskInfo("classification", 2), final=True)

    # then it gets the verdict its curves tell
    assert verdict.kind == kind, verdict.headline


def test_a_huber_regression_at_the_mean_predictor_level_is_underfitting(
        make_spec: SpecFactory) -> None:
    # given a Huber run on diabetes whose loss stays near 0.42, what predicting the mean scores
    # under Huber (delta 1) on standardised targets, far below MSE's 1
    spec = make_spec({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                      "optim": {"loss": "huber"}})
    flat = [0.42 - 0.001 * e for e in range(12)]

    # when diagnosed with its spec
    verdict = diagnose(history(flat, [v + 0.01 for v in flat]), task_info("diabetes"), spec,
                       final=True)

    # then it is underfitting, against the Huber baseline
    assert verdict.kind == "underfitting"
    assert "(0.425)" in verdict.headline


def test_a_label_smoothed_classifier_at_its_floor_is_not_underfitting(
        make_spec: SpecFactory) -> None:
    # given an iris run with label smoothing 0.3, whose loss fell from ln 3 to 0.66 and
    # levelled off there: the smoothed targets' own entropy (0.639) is the lowest reachable
    spec = make_spec({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                      "optim": {"label_smoothing": 0.3}})
    task = task_info("iris")
    train = [0.66 + 0.44 * 0.5 ** e for e in range(15)]
    val = [v + 0.02 for v in train]

    # when diagnosed with its spec
    verdict = diagnose(history(train, val), task, spec, final=True)

    # then it is healthy: it learned almost all that the smoothed loss lets it
    assert task.for_spec(spec).floor_loss == pytest.approx(0.639, abs=1e-3)
    assert verdict.kind == "healthy"


def test_balanced_class_weights_make_the_baseline_that_of_balanced_classes(
        make_spec: SpecFactory) -> None:
    # given a 63%-majority binary task (285 of 455 rows) trained with balanced class weights
    spec = make_spec({"data": {"dataset": "breast_cancer"}, "model": {"arch": "mlp"},
                      "optim": {"class_weights": "balanced"}})
    task = task_info("breast_cancer", class_counts=[170, 285])

    # when its baseline is measured with the spec's loss
    # then a constant prediction scores ln 2, as if the classes were balanced
    assert task.baseline_loss == pytest.approx(0.661, abs=1e-3)
    assert task.for_spec(spec).baseline_loss == pytest.approx(math.log(2))


def test_a_noisy_healthy_run_keeps_its_verdict_epoch_after_epoch() -> None:
    # given a converging run whose validation loss is noisy (±6%)
    rng = np.random.default_rng(7)
    train = decay(40, 1.5, 0.2, 6)
    val = (train + 0.05) * (1 + rng.normal(0, 0.06, 40))

    # when it is diagnosed live after every epoch from the fifth
    kinds = {diagnose(history(train[:n].tolist(), val[:n].tolist()), TEN_CLASSES).kind
             for n in range(5, 41)}

    # then it is healthy every time
    assert kinds == {"healthy"}


def test_a_healthy_verdict_says_its_best_epoch_is_of_the_smoothed_loss() -> None:
    # given a diabetes run's validation loss: lowest at epoch 11 (the best checkpoint's), but
    # epochs 11-13 lower together than 10-12
    val = [1.00128, 0.81074, 0.68862, 0.61506, 0.56689, 0.53777, 0.51894, 0.508, 0.50086,
           0.49884, 0.4975, 0.49786, 0.49806, 0.49818, 0.49974]
    train = [v - 0.03 for v in val]

    # when diagnosed
    verdict = diagnose(history(train, val), TaskInfo("regression", None), final=True)

    # then it names epoch 12 as where the loss is lowest "around", not as the best epoch
    assert verdict.kind == "healthy"
    assert verdict.headline.endswith("validation loss lowest around epoch 12)")
    assert not any("best" in e.label for e in verdict.evidence)


def test_a_verdict_carries_the_thresholds_it_used() -> None:
    # given a clear overfit
    # when diagnosed
    verdict = diagnose(v_shaped(), TEN_CLASSES, final=True)

    # then its thresholds are the module's constants
    assert verdict.thresholds["val_rise"] == diagnostics.VAL_RISE
    assert verdict.thresholds["min_epochs_since_onset"] == diagnostics.OVERFIT_MIN_EPOCHS


def test_task_info_reads_the_catalog() -> None:
    # given two catalog datasets, one with the class counts of its training split
    # when their task infos are built
    digits = task_info("digits")
    cancer = task_info("breast_cancer", class_counts=[170, 285])
    diabetes = task_info("diabetes")

    # then classes and majority shares are known, and regression is measured against MSE 1
    assert (digits.num_classes, digits.majority) == (10, 0.1)
    assert digits.baseline_loss == pytest.approx(math.log(10))
    assert cancer.majority == pytest.approx(285 / 455)
    assert (diabetes.kind, diabetes.baseline_loss) == ("regression", 1.0)


def test_a_task_known_only_from_its_curves_takes_its_classes_from_the_first_loss() -> None:
    # given a run that logged its first step's loss (ln 10) and a first epoch already lower
    history = {"train_loss": [0.9, 0.4, 0.3], "val_loss": [0.5, 0.4, 0.35]}

    # when its task is read from the curves, with and without that first step
    with_start = task_from_curves(history, "classification", start=math.log(10))
    without = task_from_curves(history, "classification")

    # then the first step tells ten classes; the first epochs alone tell none (they once read
    # as two): the start they tell is the run's scale, not a chance level. That start lies
    # half an epoch before the first mean at the pace from it to the second (×1.5), counted at
    # most twice the next epoch's (×0.4/0.3)
    assert with_start.num_classes == 10 and with_start.baseline_known
    assert without.num_classes is None and not without.baseline_known
    assert without.baseline_loss == pytest.approx(0.9 * 0.4 / 0.3)


@pytest.mark.parametrize(("train", "scale"), [
    ([0.2, 0.2, 0.19], 0.2),  # a pretrained or stuck run: no fall to go back along
    ([3.0, 4.0, 9.0], 3.0),  # blowing up: the loss rose
    ([0.9, 0.4], 0.9),  # two epochs tell no pace to check the first one's against
    ([6.0, 0.5, 0.25], math.log(1000)),  # no untrained network scores above ln 1000
])
def test_the_start_the_first_epochs_tell_is_never_below_the_first(train: list[float],
                                                                  scale: float) -> None:
    # given a run logged once per epoch without its classes
    # when its task is read from the curves
    task = task_from_curves({"train_loss": train}, "classification")

    # then its scale is the first mean where the curve tells no start above it
    assert task.baseline_loss == pytest.approx(scale)


def test_a_first_loss_beyond_a_thousand_classes_is_read_as_a_blow_up() -> None:
    # given a first loss far above ln 1000 (a diverging run)
    history = {"train_loss": [40.0, 60.0, 90.0], "val_loss": [50.0, 70.0, 99.0]}

    # when its task is read from the curves and the run diagnosed
    task = task_from_curves(history, "classification", start=40.0)

    # then the classes stop at a thousand, and the run is diverging
    assert task.num_classes == diagnostics.MAX_GUESSED_CLASSES
    assert diagnose(history, task, final=True).kind == "diverging"


# --- remedies -------------------------------------------------------------------------------

# One curve per verdict with remedies, in units of the task's baseline loss.
SICK_CURVES: dict[str, dict[str, list[float]]] = {
    "overfitting": v_shaped(),
    "underfitting": history([0.99 - 0.001 * e for e in range(10)],
                            [1.0 - 0.001 * e for e in range(10)]),
    "diverging": history([0.9, 0.7, math.nan], [0.9, 0.75, math.nan]),
    "slow": history([1.0 - 0.025 * e for e in range(20)], [1.02 - 0.025 * e for e in range(20)]),
}

SPECS: dict[str, dict[str, dict[str, object]]] = {
    "default cnn": {},
    # the widest CNN within the default memory budget (a fifth block would need 77 GB)
    "regularised cnn at its limits": {
        "model": {"width": 1024, "blocks": 4, "dropout": 0.6, "batch_norm": False},
        "optim": {"weight_decay": 0.05, "lr": 10.0}, "run": {"grad_clip": 5.0}},
    "small cnn": {"model": {"width": 8, "blocks": 1}, "optim": {"optimizer": "sgd"}},
    "mlp on wine": {"data": {"dataset": "wine"}, "model": {"arch": "mlp", "hidden_sizes": [32]}},
    "widest mlp": {"data": {"dataset": "iris"},
                   "model": {"arch": "mlp", "hidden_sizes": [4096] * 16, "dropout": 0.3},
                   "run": {"epochs": 10000, "early_stopping_patience": 5}},
    "mlp regression": {"data": {"dataset": "diabetes"},
                       "model": {"arch": "mlp", "hidden_sizes": [64, 8]},
                       "optim": {"loss": "mse", "weight_decay": 1e-3}},
}


def scaled(curves: dict[str, list[float]], task: TaskInfo) -> dict[str, list[float]]:
    return {key: [v * task.baseline_loss for v in values] for key, values in curves.items()}


@pytest.mark.parametrize("kind", SICK_CURVES)
@pytest.mark.parametrize("spec_name", SPECS)
def test_every_remedy_is_a_patch_that_makes_a_valid_new_spec(
        make_spec: SpecFactory, spec_name: str, kind: str) -> None:
    # given a spec and a run of it showing one problem
    spec = make_spec(SPECS[spec_name])
    task = task_info(spec.data.dataset)

    # when it is diagnosed
    verdict = diagnose(scaled(SICK_CURVES[kind], task), task, spec, final=True)

    # then every remedy but advice gives a different valid spec, each its own
    assert verdict.kind == kind
    patched = [spec.patched(r.patch) for r in verdict.remedies if not r.advice_only]
    assert all(new != spec for new in patched)
    assert len(set(map(repr, patched))) == len(patched)
    assert all(r.patch == {} for r in verdict.remedies if r.advice_only)


def test_a_larger_model_past_the_memory_budget_is_not_offered(make_spec: SpecFactory) -> None:
    # given the widest CNN the memory budget allows, underfitting
    spec = make_spec({"model": {"width": 1024, "blocks": 4}})
    task = task_info(spec.data.dataset)

    # when diagnosed
    verdict = diagnose(scaled(SICK_CURVES["underfitting"], task), task, spec, final=True)

    # then no remedy grows it (a fifth block would need 77 GB), and the others are still offered
    keys = [r.key for r in verdict.remedies]
    assert "larger_model" not in keys
    assert "higher_lr" in keys and "more_epochs" in keys


def test_overfitting_remedies_regularise_stop_early_and_shrink(make_spec: SpecFactory) -> None:
    # given the default CNN overfitting since epoch 7
    spec = make_spec({})

    # when diagnosed
    verdict = diagnose(scaled(v_shaped(), TEN_CLASSES), TEN_CLASSES, spec, final=True)

    # then dropout, weight decay, early stopping at the onset and a narrower CNN are offered
    assert [(r.key, r.patch) for r in verdict.remedies] == [
        ("dropout", {"model": {"dropout": 0.3}}),
        ("weight_decay", {"optim": {"weight_decay": 1e-4}}),
        ("early_stopping", {"run": {"early_stopping_patience": 3, "epochs": 10}}),
        ("smaller_model", {"model": {"width": 16}}),
    ]


def test_a_warm_started_runs_smaller_model_starts_fresh_and_its_larger_keeps_the_source(
        make_spec: SpecFactory) -> None:
    # given the default CNN started from run #12's weights, overfitting, and underfitting at
    # its widest (a larger model then adds a block, whose first blocks still load)
    spec = make_spec({"model": {"init_from": 12, "freeze_epochs": 1}})
    widest = make_spec({"model": {"init_from": 12, "width": 1024, "blocks": 2}})

    # when diagnosed
    overfit = diagnose(scaled(v_shaped(), TEN_CLASSES), TEN_CLASSES, spec, final=True)
    underfit = diagnose(scaled(SICK_CURVES["underfitting"], TEN_CLASSES), TEN_CLASSES, widest,
                        final=True)

    # then the narrower CNN, which no layer of run #12 fits (Apply remedy was refused: "none of
    # its layers fits this model"), starts from fresh weights and says so; the deeper one keeps
    # the warm start
    smaller = next(r for r in overfit.remedies if r.key == "smaller_model")
    assert smaller.patch == {"model": {"width": 16, "init_from": 0, "freeze_epochs": 0}}
    assert smaller.title == "Use a smaller model (width 16), from fresh weights"
    larger = next(r for r in underfit.remedies if r.key == "larger_model")
    assert larger.patch == {"model": {"blocks": 3}}
    assert next(r for r in overfit.remedies if r.key == "dropout").patch == {
        "model": {"dropout": 0.3}}


def test_a_remedy_patch_holds_the_numbers_its_title_says(make_spec: SpecFactory) -> None:
    # given a CNN with dropout 0.1 overfitting, and one with learning rate 1e-5 learning slowly
    overfit = make_spec({"model": {"dropout": 0.1}})
    slow = make_spec({"optim": {"lr": 1e-5}})

    # when diagnosed
    regularise = diagnose(scaled(v_shaped(), TEN_CLASSES), TEN_CLASSES, overfit, final=True)
    speed_up = diagnose(scaled(SICK_CURVES["slow"], TEN_CLASSES), TEN_CLASSES, slow, final=True)

    # then the patches say 0.3 and 3e-05, not 0.1 + 0.2 and 1e-5 × 3 in floating point
    remedies = {r.key: r for r in [*regularise.remedies, *speed_up.remedies]}
    assert remedies["dropout"].title == "Add dropout 0.3"
    assert remedies["dropout"].patch == {"model": {"dropout": 0.3}}
    assert remedies["higher_lr"].patch == {"optim": {"lr": 3e-05}}
    assert Verdict.from_dict(json.loads(json.dumps(speed_up.to_dict()))) == speed_up


def test_a_remedy_that_changes_nothing_is_left_out(make_spec: SpecFactory) -> None:
    # given an overfitting MLP already at the largest dropout a remedy proposes
    spec = make_spec({"data": {"dataset": "wine"},
                      "model": {"arch": "mlp", "hidden_sizes": [8], "dropout": 0.5}})
    task = task_info("wine")

    # when diagnosed
    verdict = diagnose(scaled(v_shaped(), task), task, spec, final=True)

    # then neither more dropout nor a smaller model (8 units is the floor) is offered
    assert [r.key for r in verdict.remedies] == ["weight_decay", "early_stopping"]


def test_underfitting_remedies_lift_regularisation_first_and_end_with_the_labels(
        make_spec: SpecFactory) -> None:
    # given an MLP with dropout and weight decay whose loss barely moved from the baseline
    spec = make_spec({"data": {"dataset": "wine"},
                      "model": {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.2},
                      "optim": {"weight_decay": 0.01}})
    task = task_info("wine")

    # when diagnosed
    verdict = diagnose(scaled(SICK_CURVES["underfitting"], task), task, spec, final=True)

    # then regularisation goes first, then a higher learning rate (the loss barely moved), a
    # larger model and more epochs, and last the advice to check the labels
    assert [r.key for r in verdict.remedies] == [
        "less_regularization", "higher_lr", "larger_model", "more_epochs", "check_labels"]
    assert verdict.remedies[0].patch == {"model": {"dropout": 0.0},
                                         "optim": {"weight_decay": 0.0}}
    assert verdict.remedies[-1].advice_only


def test_lifting_regularisation_also_removes_an_l1_penalty(make_spec: SpecFactory) -> None:
    # given an underfitting MLP held back by dropout and an L1 penalty
    spec = make_spec({"data": {"dataset": "wine"},
                      "model": {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.2},
                      "regularization": {"l1": 0.01}})
    task = task_info("wine")

    # when diagnosed
    verdict = diagnose(scaled(SICK_CURVES["underfitting"], task), task, spec, final=True)

    # then the first remedy removes both, and says so
    first = verdict.remedies[0]
    assert first.patch == {"model": {"dropout": 0.0}, "regularization": {"l1": 0.0}}
    assert "L1" in first.title


def test_diverging_remedies_lower_the_learning_rate_then_warm_up_then_clip(
        make_spec: SpecFactory) -> None:
    # given a diverging run of SGD at lr 5 without warmup or clipping: the default CNN on
    # digits, 23 steps per epoch for 15 epochs (345 steps)
    spec = make_spec({"optim": {"optimizer": "sgd", "lr": 5.0}})

    # when diagnosed
    verdict = diagnose(SICK_CURVES["diverging"], TEN_CLASSES, spec, final=True)

    # then the learning rate drops tenfold, then it warms up over a tenth of the run (35
    # steps), then gradients are clipped at norm 1
    assert [r.patch for r in verdict.remedies] == [
        {"optim": {"lr": 0.5}},
        {"schedule": {"warmup": 35, "warmup_unit": "steps"}},
        {"run": {"grad_clip": 1.0}},
    ]


def test_a_run_that_warms_up_already_is_offered_twice_the_warmup(make_spec: SpecFactory) -> None:
    # given a diverging run that warmed up over 2 of its 15 epochs (46 steps)
    spec = make_spec({"schedule": {"warmup": 2, "warmup_unit": "epochs"}})

    # when diagnosed
    verdict = diagnose(SICK_CURVES["diverging"], TEN_CLASSES, spec, final=True)

    # then the warmup remedy doubles it, in steps
    warmup = next(r for r in verdict.remedies if r.key == "warmup")
    assert warmup.patch == {"schedule": {"warmup": 92, "warmup_unit": "steps"}}
    assert spec.patched(warmup.patch).schedule.warmup_steps(23) == 92


def test_a_run_of_one_step_is_not_offered_a_warmup(make_spec: SpecFactory) -> None:
    # given a diverging one-epoch run of a single step (iris in one batch of 120 rows)
    spec = make_spec({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                      "run": {"epochs": 1, "batch_size": 120}})
    task = task_info("iris")

    # when diagnosed
    verdict = diagnose(SICK_CURVES["diverging"], task, spec, final=True)

    # then no warmup fits in front of that step
    assert [r.key for r in verdict.remedies] == ["lower_lr", "grad_clip"]


def test_without_a_spec_there_are_no_remedies() -> None:
    # given a clear overfit and no spec
    # when diagnosed
    verdict = diagnose(v_shaped(), TEN_CLASSES, final=True)

    # then the verdict stands, with nothing to patch
    assert (verdict.kind, verdict.remedies) == ("overfitting", [])


# --- storage --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SICK_CURVES)
def test_a_verdict_survives_strict_json(make_spec: SpecFactory, kind: str) -> None:
    # given a verdict with evidence and remedies (a NaN loss among the evidence for diverging)
    verdict = diagnose(SICK_CURVES[kind], TEN_CLASSES, make_spec({}), final=True)

    # when stored as strict JSON and read back
    text = json.dumps(verdict.to_dict(), allow_nan=False)
    again = Verdict.from_dict(json.loads(text))

    # then nothing was lost
    assert again == verdict


def test_non_finite_evidence_is_kept_as_text() -> None:
    # given evidence of an infinite loss
    # when it is made
    evidence = Evidence("peak training loss", math.inf)

    # then its value is the text "inf", so the verdict stays valid JSON
    assert evidence.value == "inf"



# A real MLP on an uploaded table whose two classes its two features do not predict (random
# labels, 80 training rows), five epochs: its losses never leave ln 2.
NO_SIGNAL = {"train_loss": [0.6994, 0.6944, 0.6921, 0.6922, 0.6911],
             "val_loss": [0.7044, 0.7046, 0.7054, 0.7070, 0.7086],
             "train_acc": [0.4625, 0.4875, 0.525, 0.5125, 0.5625],
             "val_acc": [0.55, 0.55, 0.5, 0.45, 0.4]}


@pytest.mark.parametrize(("reference_acc", "says_labels"), [(None, False), (0.5, True),
                                                            (0.93, False)],
                         ids=["no reference", "reference at chance", "reference far better"])
def test_a_run_that_learned_nothing_is_underfitting_whatever_its_reference_scores(
        reference_acc: float | None, says_labels: bool) -> None:
    # given a run whose losses stayed at the constant prediction's, with a reference model that
    # did no better (the data has no signal), far better, or none
    from training.reference import Reference

    reference = None if reference_acc is None else Reference(
        "a logistic regression", train_loss=0.69 if reference_acc < 0.6 else 0.2,
        val_loss=0.70 if reference_acc < 0.6 else 0.25, train_acc=reference_acc,
        val_acc=reference_acc)
    task = TaskInfo("classification", 2, majority_fraction=0.5)

    spec = ExperimentSpec().patched({"model": {"arch": "mlp"}})

    # when it is judged, finished and live
    verdicts = [diagnose(NO_SIGNAL, task, spec, final=final, reference=reference)
                for final in (True, False)]

    # then it underfits, never "healthy: fell together", and where the reference did no
    # better the headline points at the data, and checking the labels comes first
    assert [v.kind for v in verdicts] == ["underfitting", "underfitting"]
    assert all(("the features may not predict the labels" in v.headline) is says_labels
               for v in verdicts), verdicts[0].headline
    assert all((v.remedies[0].key == "check_labels") is says_labels for v in verdicts), [
        r.key for r in verdicts[0].remedies]


def test_each_sign_of_overfitting_says_whether_it_was_seen() -> None:
    # given a clear overfit: validation best at epoch 7 and climbing since, far below what a
    # constant prediction scores (so it did beat a constant prediction)
    curves = v_shaped(best=7)

    # when diagnosed
    verdict = diagnose(curves, TEN_CLASSES, final=True)

    # then the sign that fired reads "seen" and the one that was looked for and not found
    # reads "not seen", with the score that decided each
    rows = {row.label: row for row in verdict.evidence}
    assert rows["validation loss rose"].value >= 1
    assert rows["validation loss rose"].detail.endswith(": seen (a sign counts from 1)")
    constant = rows["validation never beat a constant prediction"]
    assert constant.value < 1
    assert constant.detail.endswith(": not seen (a sign counts from 1)")


def test_overfitting_from_the_start_states_one_onset_epoch():
    # given a regression whose training loss fell to 0.16 while validation, falling too,
    # stayed above a constant prediction's 1 (standardised MSE) for all 20 epochs
    train = list(0.12 + 0.8 * np.exp(-np.arange(20) / 6))
    val = list(3.0 - np.arange(20) / 20)

    # when it is diagnosed at its end
    verdict = diagnose({"train_loss": train, "val_loss": val}, TaskInfo("regression"),
                       final=True)

    # then it overfits from epoch 1, and the evidence's onset row says so too (it said 20,
    # the epoch validation was lowest, beside "onset at epoch 1")
    assert (verdict.kind, verdict.onset_epoch) == ("overfitting", 1)
    assert verdict.headline.startswith("Overfitting from the start")
    assert verdict.evidence[0] == Evidence("onset epoch", 1,
                                           "validation never beat a constant prediction")


def test_validation_climbing_while_training_holds_at_its_floor_is_overfitting():
    # given a classifier whose training loss reached its floor by epoch 120 while its
    # validation loss, lowest then, climbed back 88% (confident on the examples it gets wrong)
    train = [2.0 / (e + 1) + 0.1 for e in range(200)]
    val = [2.2 / (e + 1) + 0.15 + max(0, e - 120) * 0.002 for e in range(200)]
    task = TaskInfo("classification", num_classes=10)

    # when it is judged, it is overfitting since then, said as it is
    verdict = diagnose(history(train, val), task, final=True)
    assert verdict.kind == "overfitting", verdict.headline
    assert verdict.headline.startswith("Overfitting since epoch 12")
    assert "while training loss stayed near 0.11" in verdict.headline

    # and a drift of the same validation curve within a few thresholds is not (10% over its
    # best), nor a climb after the training loss itself climbed back (a knocked-off model)
    drift = [2.2 / (e + 1) + 0.15 + max(0, e - 120) * 0.0003 for e in range(200)]
    assert diagnose(history(train, drift), task, final=True).kind != "overfitting"
    knocked = [t + max(0, e - 120) * 0.004 for e, t in enumerate(train)]
    assert diagnose(history(knocked, val), task, final=True).kind != "overfitting"


def test_warm_restarts_whose_validation_recovers_slower_are_not_overfitting():
    # given SGDR (a restart every 10 epochs) where the training loss recovers from each
    # restart faster than the validation loss: at epoch 24 validation was still far above
    # its best of epoch 20 while training was back near its own
    train, val = [], []
    for epoch in range(30):
        phase, base = (epoch % 10) / 10, 0.4 + 0.8 * math.exp(-epoch / 8)
        train.append(base * (1 + (1 - phase) ** 6))
        val.append((base + 0.1) * (1 + 0.8 * (1 - phase) ** 1.5))
    task = TaskInfo("classification", num_classes=10)

    # then no epoch of it, live or final, reads as overfitting: the training loss climbed
    # at the restart too
    kinds = [diagnose(history(train[:n], val[:n]), task, final=n == 30).kind
             for n in range(12, 31)]
    assert "overfitting" not in kinds, kinds


def test_two_high_last_epochs_over_a_flat_training_loss_are_not_a_climb():
    train = [0.3 + 0.7 * math.exp(-e) for e in range(30)]
    val = [0.4 + 0.7 * math.exp(-e) for e in range(28)] + [0.6, 0.6]

    assert diagnose(history(train, val), TaskInfo("classification", num_classes=10),
                    final=True).kind != "overfitting"


def test_three_epochs_of_validation_rising_while_training_falls_are_not_underfitting(
        make_spec: SpecFactory) -> None:
    # given a run of 3 epochs, its training loss falling 38% while validation climbs from
    # 1.8 to 2.0: too short for the overfitting rule (3 epochs past validation's best)
    spec = make_spec({"model": {"dropout": 0.2}})
    curves = history([2.1, 1.6, 1.3], [1.8, 1.9, 2.0])

    # when the finished run is diagnosed
    verdict = diagnose(curves, TEN_CLASSES, spec, final=True)

    # then it is undetermined with an early overfitting warning, and nothing prescribes a
    # larger model or less regularisation (it was "underfitting", with those remedies first)
    assert verdict.kind == "undetermined", verdict.headline
    assert verdict.headline.startswith("Too early to tell, an early sign of overfitting: "
                                       "validation loss rose from 1.8 (epoch 1) to 2 (epoch 3)")
    assert verdict.remedies == []


def test_a_nan_validation_loss_beside_a_finite_training_loss_is_no_divergence() -> None:
    # given a healthy run whose validation loss is NaN in epochs 5 and 6 (an evaluation that
    # overflowed in fp16, or epochs a script did not validate), its training loss finite
    train = [2.0 * 0.8 ** e for e in range(12)]
    val = [t * 1.1 for t in train]
    val[4] = val[5] = math.nan

    # when diagnosed
    verdict = diagnose(history(train, val), TEN_CLASSES, final=True)

    # then it is judged on the epochs with a validation loss, and says what it left out (it
    # was "diverging since epoch 5")
    assert verdict.kind == "healthy", verdict.headline
    assert "no finite validation loss at epochs 5, 6, the training loss finite" in \
        verdict.headline
    assert ("validation loss not finite", 2) in [(e.label, e.value) for e in verdict.evidence]


def test_a_validation_loss_every_third_epoch_is_read_at_its_epochs() -> None:
    # given 30 epochs of training loss and a validation loss logged every 3rd epoch (10
    # values), best at epoch 12 and 40% above it by the end while training keeps falling
    train = [2.0 * 0.85 ** e for e in range(30)]
    val = [1.6, 1.0, 0.7, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    every_epoch = [math.nan if e % 3 != 2 else val[e // 3] for e in range(30)]

    # when diagnosed from the short list, and from one with NaN where it did not validate
    short = diagnose(history(train, val), TEN_CLASSES, final=True)
    holes = diagnose(history(train, every_epoch), TEN_CLASSES, final=True)

    # then both read the validation losses at epochs 3, 6, ..., 30 (the short list was cut to
    # the training loss's first 10 epochs): overfitting since epoch 12
    assert (short.kind, short.onset_epoch) == ("overfitting", 12), short.headline
    assert (holes.kind, holes.onset_epoch) == ("overfitting", 12), holes.headline
    assert short.headline.startswith("Overfitting since epoch 12")
