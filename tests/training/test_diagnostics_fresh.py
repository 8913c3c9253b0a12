"""The diagnosis on curves it was never tuned on (``curves/fresh.json``, real training recorded
by ``bench/fresh_curves.py``): new data sets and models, step and warm-restart schedules, a late
drop, 3 and 500 epochs, losses near 1e-4 and 1e4, validation every 5th or 10th epoch, 100
classes. A plain loop's run is judged once finished with its task known, and as a script's run
known only from its curves, with and without its untrained network's loss; an engine run with
its spec and reference, once finished and epoch by epoch as the loop judges it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from training.diagnostics import TaskInfo, Verdict, diagnose, task_from_curves
from training.reference import Reference

from .curves import fresh, stress

CURVES = fresh.scripts()
KNOWN_TASK = [item for item in CURVES if item.get("standardised", True)]
ENGINE = fresh.engine_runs()
LETTERS = {"diverging": "D", "overfitting": "O", "underfitting": "U", "slow": "S",
           "healthy": "h"}


def accepted(item: dict[str, Any]) -> set[str]:
    return {item["label"], *item["also"]}


def script_verdict(item: dict[str, Any], untrained: bool) -> Verdict:
    """As an external run that says neither its classes nor its units: its scale read from
    the untrained network's loss (its first step's), or, without it, from its first epochs."""
    history = fresh.per_evaluation(item)
    start = item["loss"][0] if untrained else math.nan
    task = task_from_curves(history, item["task"]["kind"], start=start)
    return diagnose(history, task, None, final=True)


# Known limits of a script's run judged from its curves alone, each for a reason the curves
# cannot overcome; such a run is judged right once its task is known (the first test below
# takes every curve, these included), and a script says it with a num_classes param
# (tests/tracking/test_fresh_curves.py):
# - without its untrained loss, a classifier's chance level is unknown and underfitting
#   means a loss that did not go down, or an accuracy that did not rise from a coin's or
#   below: one unit on Fashion-MNIST sheds a third of its first epoch's loss while its
#   accuracy rises from 10% to 32%. (A CNN knocked above chance by SGD at 3, falling from its
#   first epoch's 3.5 to 2.4 at 10% accuracy throughout, is underfitting by its accuracy.)
# - a regression's untrained loss is its target's mean square plus the network's own output
#   variance, above a constant prediction's: at MSE 0.88 against 1.0 (R² 0.12), heavy weight
#   decay has shed 39% of the untrained 1.44.
UNKNOWN_CHANCE = {"fashion_one_unit", "diabetes_ridge_heavy"}
UNTRAINED_ABOVE_CONSTANT = {"diabetes_ridge_heavy"}


def judged_from_curves(misses: set[str]) -> list[Any]:
    """The curves a script's run is judged right from alone: all but the known limits."""
    return [pytest.param(item, id=item["name"]) for item in CURVES
            if item["name"] not in misses]


def test_the_known_limits_are_runs_of_the_fresh_curves_judged_right_with_their_task() -> None:
    limits = [item for item in KNOWN_TASK if item["name"] in UNKNOWN_CHANCE]
    assert len(limits) == len(UNKNOWN_CHANCE)  # every limit names a curve whose task is known
    for item in limits:
        verdict = diagnose(fresh.per_evaluation(item), TaskInfo(**item["task"]), final=True)
        assert verdict.kind in accepted(item), (item["why"], verdict.headline)


def test_the_fresh_curves_span_every_verdict_and_say_how_they_were_made() -> None:
    verdicts = {"overfitting", "underfitting", "diverging", "slow", "healthy"}
    assert {item["label"] for item in CURVES} == verdicts
    assert {item["label"] for item in ENGINE} == verdicts
    assert all(item["how"] and item["why"] for item in CURVES + ENGINE)


@pytest.mark.parametrize("item", KNOWN_TASK, ids=[item["name"] for item in KNOWN_TASK])
def test_a_finished_run_with_its_task_known_gets_the_experts_call(item: dict[str, Any]) -> None:
    # given a run the diagnosis was not tuned on, per evaluation, with its task
    history = fresh.per_evaluation(item)

    # when it is diagnosed once finished
    verdict = diagnose(history, TaskInfo(**item["task"]), final=True)

    # then the verdict is the expert's call, or one the expert could defend
    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", judged_from_curves(UNTRAINED_ABOVE_CONSTANT))
def test_a_scripts_run_with_its_untrained_loss_gets_the_experts_call(item: dict[str, Any]
                                                                      ) -> None:
    verdict = script_verdict(item, untrained=True)

    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


@pytest.mark.parametrize("item", judged_from_curves(UNKNOWN_CHANCE))
def test_a_scripts_run_logged_per_epoch_gets_the_experts_call(item: dict[str, Any]) -> None:
    verdict = script_verdict(item, untrained=False)

    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


def test_a_blow_up_in_the_first_epoch_is_diverging_without_a_chance_level() -> None:
    # given Adam at 0.5 on SST-2, logged once per epoch: a first epoch averaging 102 (steps
    # at 2,557), then 11, 6.5, ... down to ln 2, where it stays
    item = next(item for item in CURVES if item["name"] == "sst2_adam_lr_0_5")
    history = fresh.per_evaluation(item)
    task = task_from_curves(history, "classification")

    # when it is judged without its untrained loss
    verdict = diagnose(history, task, None, final=True)

    # then no untrained classifier scores 102 (ln 1000 is 6.9): the first epoch is the
    # blow-up. Measured from itself, the fall from it read as "healthy".
    assert task.blow_up_from == pytest.approx(math.log(1000))
    assert verdict.kind == "diverging", verdict.headline
    assert "14.8× what an untrained classifier of up to 1,000 classes scores (6.91)" in \
        verdict.headline


def engine_verdict(item: dict[str, Any], epochs: int | None = None, final: bool = True
                   ) -> Verdict:
    """As the loop (live) and the web app (finished) judge an engine run."""
    history = {key: values[:epochs] for key, values in fresh.per_evaluation(item).items()}
    return diagnose(history, TaskInfo(**item["task"]), stress.spec_of(item["patch"]),
                    final=final, reference=Reference(**item["reference"]))


@pytest.mark.parametrize("item", ENGINE, ids=[item["name"] for item in ENGINE])
def test_a_finished_engine_run_gets_the_experts_call(item: dict[str, Any]) -> None:
    verdict = engine_verdict(item)

    assert verdict.kind in accepted(item), (item["why"], verdict.headline)


PINNED = [item for item in ENGINE if item["live"]]


@pytest.mark.parametrize("item", PINNED, ids=[item["name"] for item in PINNED])
def test_an_engine_runs_live_verdicts_change_only_as_the_expert_expects(item: dict[str, Any]
                                                                        ) -> None:
    # given an engine run, judged after every epoch with its spec and reference
    epochs = len(item["history"]["train_loss"])
    letters = [LETTERS.get(engine_verdict(item, n, final=False).kind, "")
               for n in range(1, epochs + 1)]

    # then its verdicts go through the expert's sequence, each kind once
    told = "".join(k for i, k in enumerate(letters) if k and (i == 0 or k != letters[i - 1]))
    assert told == item["live"], letters
