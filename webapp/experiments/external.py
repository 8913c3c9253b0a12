"""Runs trained elsewhere (logged through the tracking API, ``webapp.tracking``): the names
scripts log under and the names the diagnostics read, their verdict, and what their pages show
in place of a spec.

A run's first point of a metric fixes where that metric is stored: under the diagnostics' name
when the run's ``fitboard.metric_map`` tag (a JSON object) or the convention below maps it and
no other metric of the run took that name first; under its own name otherwise (prefixed
``ext/`` when that name is already taken, e.g. Hugging Face's end-of-training ``train_loss``
after ``loss`` became train_loss). The mlflow API reads each metric back under the script's
name, so a script never sees the mapping.

The verdict of an external run counts each validation point as one evaluation (an "epoch" of
``training.diagnostics``): the training metrics' values at an evaluation are the means of their
points logged since the evaluation before, up to its step.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from training.diagnostics import TaskInfo, diagnose, task_from_curves
from webapp.experiments import files, metric_store
from webapp.experiments.models import Experiment

# The per-epoch metrics the diagnostics read (also those of a form run: ``diagnosis``).
EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_rmse", "val_mae")

class MetricMapError(ValueError):
    """A run's metric map tag that is not a JSON object of names to names."""


MAP_TAG = "fitboard.metric_map"
STORED_CHARS = 250  # of the name a metric is stored under (MetricChunk.key): MLflow's own limit
TASK_TAG = "fitboard.task"  # "classification" (the default when accuracy is logged) or "regression"
TASKS = ("classification", "regression")
CLASSES_TAG = "fitboard.num_classes"  # classes of a classification task (default: the params')
UNMAPPED_PREFIX = "ext/"
# Params that give a classifier's number of classes, by the last word of their name (so
# "model.num_classes" and "hparams/num_labels" count): Hugging Face's, timm's and
# torchmetrics' names, and the label maps Hugging Face Trainer logs from the model's config
# (``id2label`` as a dict's text, or one param per label with MLFLOW_FLATTEN_PARAMS).
CLASS_PARAMS = ("num_classes", "num_labels", "n_classes", "nb_classes")
LABEL_MAPS = ("id2label", "label2id")
# Params that give a cross-entropy's label smoothing, by the last word of their name: Hugging
# Face Trainer's ``label_smoothing_factor``, torch's CrossEntropyLoss ``label_smoothing``,
# timm's ``smoothing``. Smoothed targets keep a share on every class, so the lowest loss is
# their entropy, not 0: 0.79 on 4 classes smoothed by 0.2 has shed 75% of what can be shed,
# not the 43% it has of ln 4.
SMOOTHING_PARAMS = ("label_smoothing_factor", "label_smoothing", "smoothing")

# The convention: a logged name is read as a split and a measure, in any case, its words joined
# by "_", "/", ".", "-" or spaces ("eval_accuracy", "train/loss", "val-acc", "Validation Loss"),
# the split first or last ("loss/train", TensorBoard's habit), with Lightning's "_step" /
# "_epoch" suffix dropped ("train_loss_epoch"; a validation name with "_step" is not read, see
# ``conventional``); a measure alone is a training one ("loss", "accuracy": Hugging Face
# Trainer's and Keras's names).
SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val",
          "validation": "val", "eval": "val", "evaluation": "val", "dev": "val"}
# Measures by their words joined with "_": Keras spells its metrics out, torchmetrics names them
# by class ("val_MulticlassAccuracy"), torchvision's and timm's scripts call accuracy "acc1" /
# "top1" (in percent: see ``as_shares``). Not mapped, being ambiguous: "mse" (the loss
# or a metric beside it), torchmetrics' "MeanSquaredError" (RMSE with squared=False), "f1",
# "top5", "r2".
MEASURES = {"loss": "loss", "acc": "acc", "accuracy": "acc", "acc1": "acc", "top1": "acc",
            "multiclassaccuracy": "acc", "binaryaccuracy": "acc",
            "rmse": "rmse", "root_mean_squared_error": "rmse", "mae": "mae",
            "mean_absolute_error": "mae", "meanabsoluteerror": "mae"}
# A measure logged without a split is a training one only for these (Keras, Hugging Face) ...
IMPLICIT = ("loss", "acc", "accuracy", "rmse", "mae", "root", "mean", "multiclassaccuracy",
            "binaryaccuracy", "meanabsoluteerror")
# ... and a validation one for these: a bare "top1" or "acc1" is what timm's validate() and
# torchvision's evaluate() return (their training loops log no accuracy).
IMPLICIT_VAL = ("top1", "acc1")
# Words that name a classifier's measure, mapped or not ("top5", "eval_f1", "val_auroc"): a
# run that logs one is a classification, whatever else it says. Before, a bare "top1" beside
# "val_loss" (no accuracy under a diagnostics name) made the run a regression, its losses
# measured against a regression's baseline.
CLASSIFIER_WORDS = frozenset({
    "acc", "accuracy", "acc1", "acc5", "top1", "top5", "f1", "auroc", "auc", "precision",
    "recall", "multiclassaccuracy", "binaryaccuracy", "multiclassf1score", "binaryf1score",
    "multiclassauroc", "binaryauroc", "error_rate"})
# Accuracies that timm and torchvision log in percent (and names that say it): read in percent
# even where they never pass 1 (a 100-class run at chance scores 0.8%).
PERCENT_WORDS = frozenset({"top1", "top5", "acc1", "acc5", "percent", "pct"})
RATES = ("lr", "learning_rate")  # stored as "lr"
# Lightning's LearningRateMonitor names a rate "lr-" and the optimizer's class ("lr-Adam"), with
# "-1", "-2" for more optimizers of one class and "/pg1", "/pg2" (or the group's "name") for
# each of several parameter groups: each is a rate, and the first to come is stored as "lr". Its
# "-momentum" and "-weight_decay" are not. A class name starts with a capital, so "lr-decay" or
# "lr-warmup" are not read as rates.
RATE_MONITOR = re.compile(r"lr-[A-Z]\w*(?:-\d+)?(?:/[^/]+)?(?<!-momentum)(?<!-weight_decay)")
SUFFIXES = ("step", "epoch")
UNITS = ("percent", "pct")  # a unit after the measure ("val_acc_pct": see PERCENT_WORDS)
WORDS = re.compile(r"[\s_/.\-]+")


def conventional(name: str) -> str | None:
    """The diagnostics' name for a logged metric ``name`` by the convention above, or None."""
    words = [word for word in WORDS.split(name.strip().lower()) if word]
    per_batch = len(words) > 1 and words[-1] == "step"
    if len(words) > 1 and words[-1] in SUFFIXES:
        words = words[:-1]
    if len(words) > 1 and words[-1] in UNITS:  # "val_acc_percent": the unit, read apart
        words = words[:-1]
    if "_".join(words) in RATES or RATE_MONITOR.fullmatch(name.strip()):
        return "lr"
    if not words:
        return None
    if words[0] in SPLITS and len(words) > 1:
        split, measure = SPLITS[words[0]], "_".join(words[1:])
    elif words[-1] in SPLITS and len(words) > 1:
        split, measure = SPLITS[words[-1]], "_".join(words[:-1])
    elif words[0] in IMPLICIT:
        split, measure = "train", "_".join(words)
    elif words == [words[0]] and words[0] in IMPLICIT_VAL:
        split, measure = "val", words[0]
    else:
        return None
    # Lightning's "val_loss_step" is one validation batch's value, logged at the validation
    # loop's own batch count beside the evaluation's "val_loss_epoch": as evaluations, its
    # batches would outnumber the epochs several times, each with a batch's noise.
    if measure not in MEASURES or (split == "val" and per_batch):
        return None
    stored = f"{split}_{MEASURES[measure]}"
    return stored if stored in EPOCH_KEYS else None


def parse_map(text: str) -> dict[str, str]:
    """A metric map tag's value: a JSON object of script names to names; MetricMapError if
    not."""
    try:
        mapping = json.loads(text)
    except ValueError:
        raise MetricMapError(f"tag {MAP_TAG} must be a JSON object such as "
                          '{"my_loss": "train_loss"}') from None
    if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()):
        raise MetricMapError(f"tag {MAP_TAG} must map metric names to metric names")
    if any(len(v) > STORED_CHARS for v in mapping.values()):
        raise MetricMapError(f"tag {MAP_TAG} maps to names of at most {STORED_CHARS} characters")
    return mapping


def overrides(tags: Mapping[str, str]) -> dict[str, str]:
    return parse_map(tags[MAP_TAG]) if MAP_TAG in tags else {}


def assign(name: str, mapping: Mapping[str, str], keys: dict[str, str]) -> str:
    """Where the first point of ``name`` is stored, recorded in ``keys`` ({script name: stored
    name}, the run's table)."""
    taken = set(keys.values())
    target = mapping.get(name) or conventional(name) or name
    if target in taken:
        target = name if name not in taken else UNMAPPED_PREFIX + name
    if len(target) > STORED_CHARS:
        raise MetricMapError(f"metric {name!r} would be stored as {target!r}, past "
                             f"{STORED_CHARS} characters: its name is taken, give it a shorter one")
    keys[name] = target
    return target


class Evaluations(NamedTuple):
    """An external run's history for the diagnostics, and what else its verdict needs."""

    history: dict[str, list[float]]  # one value per evaluation for each diagnostics metric
    reason: str  # why there is no history ("" when there is)
    # The untrained network's loss, when the run logged it: its first training point, one
    # batch's before any step (NaN when its first point came later; see untrained_start).
    first_loss: float = math.nan
    validated: bool = True  # False: no validation loss, judged on the training loss alone
    classifier: bool = False  # it logs a classifier's measure (CLASSIFIER_WORDS)


# A run that logs no validation loss is judged on its training loss cut into this many
# stretches of equal numbers of points, each one "epoch" (the mean of its points, as an
# epoch's training loss is the mean of its batches); a run of fewer points, one per point.
TRAINING_ONLY_EVALS = 30


def evaluation_history(run_id: int, keys: Mapping[str, str] | None = None,
                       unstepped: Collection[str] = ()) -> Evaluations:
    """One value per evaluation for each diagnostics metric of an external run, and why there
    is none ("" when there is). Without a validation loss, the training loss's stretches (see
    TRAINING_ONLY_EVALS) stand for the evaluations. ``keys`` is the run's table of names
    ({logged: stored}), which tells where other training curves are (see epoch_axis);
    ``unstepped`` the stored metrics logged without steps (see ``unstepped``), whose points
    are placed on the training loss's steps by their times (see on_training_steps)."""
    series = {key: without_skipped_steps(points) if key in SKIPPABLE else points
              for key, points in metric_store.read(run_id, keys=EPOCH_KEYS).items()}
    if "train_loss" not in series:
        return Evaluations({}, (
            "no metric of this run maps to train_loss: log `loss` or `train_loss`, or name "
            f"yours in the run's `{MAP_TAG}` tag, e.g. {{\"my_loss\": \"train_loss\"}}"))
    if any((points.values < 0).any() for key, points in series.items() if key.endswith("_loss")):
        return Evaluations({}, (
            "its loss goes below zero (a negative log-likelihood's can): the verdict measures a "
            "loss's changes as shares of a positive scale, and would misread this one"))
    train = series["train_loss"]
    validated = "val_loss" in series
    if "train_loss" not in unstepped:
        series.update({key: on_training_steps(points, train) for key, points in series.items()
                       if key.startswith("val_") and key in unstepped})
        validated = validated and len(series["val_loss"]) > 0
    if validated:
        evals = series["val_loss"].steps
        per_epoch = epoch_axis(run_id, series, evals, keys or {})
        series.update(per_epoch)
        train = series["train_loss"]
        if "train_loss" not in per_epoch and counted_apart(train.steps, evals):
            # evaluations numbered by epoch beside a training loss numbered by step, and no
            # training curve per epoch: the evaluations go where their times put them
            series.update({key: on_training_steps(points, train) for key, points
                           in series.items() if key.startswith("val_")})
            evals = series["val_loss"].steps
        # an evaluation before any training point says nothing
        evals = evals[evals >= int(train.steps[0])]
        if not len(evals):
            return Evaluations({}, (
                "no evaluation of this run came after its first training point: log "
                "`val_loss` after training steps, at the step it was taken"))
    else:
        ends = np.linspace(0, len(train), min(len(train), TRAINING_ONLY_EVALS) + 1)[1:]
        evals = train.steps[np.ceil(ends).astype(int) - 1]
    history: dict[str, list[float]] = {}
    for key, points in series.items():
        values = points.values
        if key.startswith("val_"):
            if not validated:  # a validation metric without a validation loss: no evaluations
                continue
            by_step = dict(zip(points.steps.tolist(), values.tolist(), strict=True))
            history[key] = [by_step.get(step, math.nan) for step in evals.tolist()]
        else:
            history[key] = interval_means(points.steps, values, evals)
    start = float(train.values[0]) if untrained_start(train.steps, evals, validated) else math.nan
    names = keys or {}
    return Evaluations(as_shares(history, percent_named(names)), "", start, validated,
                       any(classifier_measure(name) for name in names))


# The curves whose non-finite points a finite one follows are left out (without_skipped_steps).
SKIPPABLE = ("train_loss", "train_acc", "val_loss")


def without_skipped_steps(points: metric_store.Series) -> metric_store.Series:
    """A curve less its NaN or infinite points that a finite point follows: training steps
    whose loss overflowed and that the script skipped and trained on past (fp16's loss scaling
    skips such a step; Hugging Face Trainer leaves them out of its logs itself, its
    ``logging_nan_inf_filter``), or an evaluation that overflowed in fp16 while the weights, as
    the next one shows, were sound. One would make the run "diverging" after it recovered.
    Non-finite points at the end stay: that run diverged."""
    finite = np.isfinite(points.values)
    if finite.all() or not finite.any():
        return points
    keep = finite | (np.arange(len(points)) > np.flatnonzero(finite)[-1])
    return metric_store.Series(points.steps[keep], points.values[keep], points.times[keep])


def unstepped(progress: Mapping[str, Any]) -> frozenset[str]:
    """The stored metrics of an external run whose every point was logged without a step
    (mlflow sends step 0), from its progress (``webapp.tracking.ingest.Numbering``)."""
    return frozenset(progress.get("numbering", {}).get("zero_steps", ()))


def on_training_steps(points: metric_store.Series, train: metric_store.Series
                      ) -> metric_store.Series:
    """A validation curve logged without steps beside a training loss logged with them, on
    the training loss's steps: each point at the last training step logged at or before its
    time (both from the script's clock). Keras's autolog with ``log_every_n_steps`` logs the
    loss at each n-th step and ``validation_loss`` at step 0 after each evaluation: numbered in
    the order they arrive, mlflow's asynchronous logging put the first evaluation before all
    training and the others steps late. Points before any training are dropped; of points at
    one step, the last is kept."""
    order = np.argsort(points.times, kind="stable")
    clock = np.maximum.accumulate(train.times)
    index = np.searchsorted(clock, points.times[order], side="right") - 1
    order, index = order[index >= 0], index[index >= 0]
    steps = train.steps[index]
    last = np.append(steps[1:] != steps[:-1], True) if len(steps) else np.zeros(0, dtype=bool)
    return metric_store.Series(steps[last], points.values[order][last],
                               points.times[order][last])


def epoch_axis(run_id: int, series: Mapping[str, metric_store.Series], evals: np.ndarray,
               keys: Mapping[str, str]) -> dict[str, metric_store.Series]:
    """The training curves to read at evaluations counted in epochs while the training metric
    that took a diagnostics name counts steps: mlflow.pytorch.autolog(log_every_n_step=...)
    logs ``train_loss_step`` at each global step and the epoch's ``train_loss`` and
    ``val_loss`` at step = epoch, so steps 0..5 of the first would stand for six epochs. When
    the training steps run on past twice the last evaluation's, another curve the convention
    reads as the same metric (stored under its own name) that was logged at the evaluations'
    steps takes its place."""
    if not len(evals):
        return {}
    found: dict[str, metric_store.Series] = {}
    for key in ("train_loss", "train_acc"):
        held = series.get(key)
        if held is None or not counted_apart(held.steps, evals):
            continue
        others = [stored for logged, stored in keys.items()
                  if stored != key and conventional(logged) == key]
        candidates = metric_store.read(run_id, keys=others) if others else {}
        best = max(candidates.values(), default=None,
                   key=lambda s: len(np.intersect1d(s.steps, evals)))
        if best is not None and len(np.intersect1d(best.steps, evals)) == len(evals):
            found[key] = best
    return found


def counted_apart(steps: np.ndarray, evals: np.ndarray) -> bool:
    """Whether a training curve's steps run on past twice the last evaluation's: evaluations
    counted in epochs (step = epoch) beside training counted in steps."""
    return len(evals) > 0 and int(steps[-1]) > 2 * max(int(evals[-1]), 0) + 1


def untrained_start(steps: np.ndarray, evals: np.ndarray, validated: bool) -> bool:
    """Whether a run's first training point is its untrained network's loss, which tells its
    chance level: logged at step 0 or 1, and followed by more training points before its first
    evaluation (a per-step log, as a plain loop, Lightning with log_every_n_steps=1 or Trainer
    with logging_steps=1 write). A first point logged later is a mean over many steps
    (Trainer's default logging_steps=500) or a partly trained batch (Lightning's step 49); one
    training point per evaluation is an epoch's mean (Keras); and without evaluations, the two
    cannot be told apart."""
    if not validated or not len(steps) or not len(evals) or steps[0] > 1:
        return False
    return int(np.searchsorted(steps, evals[0], side="right")) >= 2


def _words(name: str) -> list[str]:
    return [word for word in WORDS.split(name.strip().lower()) if word]


def classifier_measure(name: str) -> bool:
    """Whether a logged name is a classifier's measure (CLASSIFIER_WORDS), mapped or not."""
    words = _words(name)
    return any(word in CLASSIFIER_WORDS for word in words) or "_".join(words) in CLASSIFIER_WORDS


def percent_named(keys: Mapping[str, str]) -> set[str]:
    """The stored accuracies whose logged name says percent (PERCENT_WORDS: timm's top1)."""
    return {stored for logged, stored in keys.items()
            if stored.endswith("_acc") and PERCENT_WORDS & set(_words(logged))}


def as_shares(history: dict[str, list[float]], named: Collection[str] = ()
              ) -> dict[str, list[float]]:
    """The history with its accuracies as shares. One passing 1 is in percent, and so are the
    run's others (one script writes its accuracies one way), and those named in percent
    (``named``): each unless its loss rules percent out, an accuracy (``percent_possible``)
    of at most 1% beside a loss too low for it. Without any of these, a share: Keras, Hugging
    Face, Lightning and torchmetrics log shares. Before, only a curve passing 1 was read in
    percent, and a 100-class run's top1 at 0.7% was read as 70%."""
    accuracies = {key: np.asarray(values, dtype=float) for key, values in history.items()
                  if key.endswith("_acc")}
    # finite values only: an infinite accuracy is no share of anything (the diagnosis drops it)
    passed = {key for key, values in accuracies.items()
              if values[np.isfinite(values)].max(initial=0) > 1}
    for key, values in accuracies.items():
        told = key in named or bool(passed)
        loss = history.get(key.replace("_acc", "_loss"), [])
        if key in passed or (told and percent_possible(values / 100, loss)):
            history[key] = (values / 100).tolist()
    return history


def percent_possible(shares: np.ndarray, losses: Sequence[float]) -> bool:
    """Whether a cross-entropy loss allows these accuracies: an example whose loss is below
    ln 2 gave its class more than half the probability, and is right, so (Markov) at least
    1 - loss / ln 2 of the examples are (a point of slack for rounding)."""
    pairs = [(a, loss) for a, loss in zip(shares.tolist(), losses, strict=False)
             if math.isfinite(a) and math.isfinite(loss)]
    return all(a >= 1 - loss / math.log(2) - 0.01 for a, loss in pairs)


def interval_means(steps: np.ndarray, values: np.ndarray, evals: np.ndarray) -> list[float]:
    """A training metric at each evaluation: the mean of its points since the evaluation
    before (as an epoch's training loss is the mean over its batches), else its last value
    before (a metric logged less often than the evaluations); NaN before its first point. A
    per-step loss is one batch's: the last one alone would be as noisy as a batch."""
    ends = np.searchsorted(steps, evals, side="right")
    starts = np.concatenate(([0], ends[:-1]))
    return [float(values[a:b].mean()) if b > a else float(values[b - 1]) if b > 0 else math.nan
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def declared_classes(tags: Mapping[str, str], params: Mapping[str, str]) -> int | None:
    """A classifier's number of classes as the run says it: the tag ``fitboard.num_classes``,
    else its params (CLASS_PARAMS, LABEL_MAPS) when they agree; None when nothing says it, or
    when params disagree (a guess would be wrong half the time)."""
    if tags.get(CLASSES_TAG):
        # checked when the tag is set (ingest.check_tags); a run tagged before that may hold
        # anything
        told = _integer(tags[CLASSES_TAG])
        return told if told >= 2 else None
    counts: set[int] = set()
    flattened: dict[str, int] = {}
    for name, value in params.items():
        words = [w for w in re.split(r"[./]", name.lower()) if w]
        if words and words[-1] in CLASS_PARAMS:
            counts.add(_integer(value))
        elif words and words[-1] in LABEL_MAPS:
            counts.add(_mapping_size(value))
        elif len(words) > 1 and words[-2] in LABEL_MAPS:
            prefix = ".".join(words[:-1])
            flattened[prefix] = flattened.get(prefix, 0) + 1
    counts.update(flattened.values())
    counts = {count for count in counts if count >= 2}  # 1 label: Trainer's regression
    return counts.pop() if len(counts) == 1 else None


def declared_smoothing(params: Mapping[str, str]) -> float:
    """A classifier's label smoothing as its params say it (SMOOTHING_PARAMS); 0 when none
    does, or when one is not a share in [0, 1) or two disagree."""
    told: set[float] = set()
    for name, value in params.items():
        words = [w for w in re.split(r"[./]", name.lower()) if w]
        if words and words[-1] in SMOOTHING_PARAMS:
            try:
                told.add(float(value))
            except ValueError:
                return 0.0
    share = told.pop() if len(told) == 1 else 0.0
    return share if 0.0 <= share < 1.0 else 0.0


def _integer(text: str) -> int:
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # "nan"; "inf" or "1e999"
        return 0


def _mapping_size(text: str) -> int:
    """The entries of a dict logged as its text ("{0: 'neg', 1: 'pos'}"); 0 if it is not one."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return 0
    return len(value) if isinstance(value, dict) else 0


def task_of(spec: Mapping[str, Any], history: Mapping[str, Any],
            first_loss: float = math.nan, classifier: bool = False) -> TaskInfo:
    """The run's task from its tags; classification when it logs an accuracy or another
    classifier's measure (``classifier``) or says its classes, regression otherwise. Classes
    the tags or params do not say, and a regression target's units, are read from the
    untrained network's loss ``first_loss`` when the run logged it; without it the chance
    level is unknown (``task_from_curves``). A label smoothing the params say
    (``declared_smoothing``) sets the lowest loss a classifier can reach."""
    tags = spec.get("tags", {})
    params = spec.get("params", {})
    classes = declared_classes(tags, params)
    measures = {"val_acc", "train_acc"} & set(history) or ({"classifier"} if classifier else set())
    kind = task_kind(tags, classes, measures)
    if kind != "classification":
        return task_from_curves(history, "regression", start=first_loss)
    task = task_from_curves(history, "classification", classes, start=first_loss)
    return dataclasses.replace(task, label_smoothing=declared_smoothing(params))


def task_kind(tags: Mapping[str, str], classes: int | None, accuracies: set[str]) -> str:
    """The tag's task, else classification when the run logs an accuracy or another
    classifier's measure (``accuracies``, their names) or says its classes, else regression."""
    told = str(tags.get(TASK_TAG, "")).strip().lower()
    if told in TASKS:
        return told
    return "classification" if accuracies or classes else "regression"


def check_task_tags(tags: Mapping[str, str]) -> None:
    """ValueError, in words, for a task or classes tag the verdict could not read."""
    if TASK_TAG in tags and tags[TASK_TAG].strip().lower() not in TASKS:
        raise ValueError(f"tag {TASK_TAG} must be one of {', '.join(TASKS)}")
    if CLASSES_TAG in tags:
        try:
            classes = int(tags[CLASSES_TAG])
        except ValueError:
            classes = 0
        if classes < 2:
            raise ValueError(f"tag {CLASSES_TAG} must be a whole number of classes, 2 or more")


def verdict(evaluations: Evaluations, spec: Mapping[str, Any], final: bool) -> dict[str, Any]:
    """``training.diagnostics.diagnose`` on an external run: no spec, so no remedies."""
    history = evaluations.history
    task = task_of(spec, history, evaluations.first_loss, evaluations.classifier)
    return diagnose(history, task, None, final=final).to_dict()


def live_verdict(run_id: int, spec: Mapping[str, Any], progress: Mapping[str, Any]
                 ) -> dict[str, Any] | None:
    """The verdict of a running external run so far (None before its first evaluation)."""
    evaluations = evaluation_history(run_id, progress.get("keys", {}), unstepped(progress))
    if not evaluations.history:
        return None
    return verdict(evaluations, spec, final=False)


def final_verdict(run: Experiment) -> dict[str, Any]:
    """The verdict stored when an external run ends ({} when its names do not map)."""
    evaluations = evaluation_history(run.pk, run.progress.get("keys", {}),
                                     unstepped(run.progress))
    return verdict(evaluations, run.spec, final=True) if evaluations.history else {}


# Stored names the run page already draws (run.js); an external run's others get a chart.
DRAWN = {"loss", "train_loss", "val_loss", "train_acc", "val_acc", "val_rmse", "val_mae", "lr"}
# MLflow's system metrics (``log_system_metrics=True``: "system/cpu_utilization_percentage",
# "system/gpu_0_memory_usage_percentage", ... one sample every 10 s, stepped by sample): the
# percentages on the System chart, the rest (megabytes, watts) on one of their own.
SYSTEM = "system/"
PERCENT = "_percentage"


def page_context(run: Experiment) -> dict[str, Any]:
    """What the run and diagnostics pages show of an external run in place of its spec."""
    keys: dict[str, str] = run.progress.get("keys", {})
    stored = set(keys.values())
    tags = run.spec.get("tags", {})
    task = task_kind(tags, declared_classes(tags, run.spec.get("params", {})),
                     {"val_acc", "train_acc"} & stored or {name for name in keys
                                                           if classifier_measure(name)})
    evaluations = (evaluation_history(run.pk, keys, unstepped(run.progress)) if keys
                   else Evaluations({}, "the script logged no metrics" if run.is_terminal
                                    else "no metrics logged yet"))
    return {
        "params": sorted(run.spec.get("params", {}).items()),
        "tags": sorted(run.spec.get("tags", {}).items()),
        "metric_names": sorted(keys.items()),
        "artifacts": files.listing(artifacts_root(run.pk)),
        "task": task,
        "extra_keys": sorted(k for k in stored
                             if k not in DRAWN and k != "epoch" and not k.startswith(SYSTEM)),
        "system_keys": sorted(k for k in stored if k.startswith(SYSTEM) and k.endswith(PERCENT)),
        "system_other_keys": sorted(k for k in stored
                                    if k.startswith(SYSTEM) and not k.endswith(PERCENT)),
        "no_verdict_reason": evaluations.reason,
        "verdict_notes": verdict_notes(evaluations, run.spec),
        "map_tag": MAP_TAG,
    }


def verdict_notes(evaluations: Evaluations, spec: Mapping[str, Any]) -> list[str]:
    """What the verdict of a run with a history could not judge, and how the script can say
    more: no validation metric (no overfitting verdict), an unknown chance level (underfitting
    only as a loss that did not go down)."""
    if not evaluations.history:
        return []
    notes = []
    if not evaluations.validated:
        notes.append("Overfitting cannot be judged without a validation metric: this run logs "
                     "only its training loss (log `val_loss` or `eval_loss` to have it judged); "
                     "the verdict reads the training loss alone, its points cut into "
                     f"{TRAINING_ONLY_EVALS} equal stretches (a point each, when fewer) that it "
                     "counts as epochs")
    task = task_of(spec, evaluations.history, evaluations.first_loss, evaluations.classifier)
    if not task.baseline_known:
        what = ("its number of classes" if task.kind == "classification"
                else "its number of classes or its target's scale")
        notes.append(f"The chance level is unknown: the run does not say {what}, and its first "
                     "training point is not an untrained network's loss; losses are measured "
                     "against the start its first epochs tell, and underfitting means a loss "
                     f"that did not go down (tag `{CLASSES_TAG}`, or log a `num_classes` or "
                     "`num_labels` param, to have it judged against chance)")
    return notes


def artifacts_root(run_id: int) -> str:
    """Where an external run's artifacts live in the default storage."""
    return f"external/{run_id}/artifacts"
