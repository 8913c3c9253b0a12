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

import json
import math
import re
from collections.abc import Mapping
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
STORED_CHARS = 64  # of the name a metric is stored under (MetricChunk.key)
TASK_TAG = "fitboard.task"  # "classification" (the default when accuracy is logged) or "regression"
CLASSES_TAG = "fitboard.num_classes"  # classes of a classification task (default: guessed)
UNMAPPED_PREFIX = "ext/"

# The convention: a logged name is read as a split and a measure, in any case, its words joined
# by "_", "/", ".", "-" or spaces ("eval_accuracy", "train/loss", "val-acc", "Validation Loss"),
# with Lightning's "_step" / "_epoch" suffix dropped ("train_loss_epoch"); a measure alone is a
# training one ("loss", "accuracy": Hugging Face Trainer's and Keras's names).
SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val",
          "validation": "val", "eval": "val", "evaluation": "val", "dev": "val"}
MEASURES = {"loss": "loss", "acc": "acc", "accuracy": "acc", "rmse": "rmse", "mae": "mae"}
RATES = ("lr", "learning_rate")  # stored as "lr"
SUFFIXES = ("step", "epoch")
WORDS = re.compile(r"[\s_/.\-]+")


def conventional(name: str) -> str | None:
    """The diagnostics' name for a logged metric ``name`` by the convention above, or None."""
    words = [word for word in WORDS.split(name.strip().lower()) if word]
    if len(words) > 1 and words[-1] in SUFFIXES:
        words = words[:-1]
    if "_".join(words) in RATES:
        return "lr"
    if len(words) == 1:
        words = ["train", *words]
    if len(words) != 2 or words[0] not in SPLITS or words[1] not in MEASURES:
        return None
    stored = f"{SPLITS[words[0]]}_{MEASURES[words[1]]}"
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
    first_loss: float = math.nan  # the first training loss logged: the least trained one


def evaluation_history(run_id: int) -> Evaluations:
    """One value per evaluation for each diagnostics metric of an external run, and why there
    is none ("" when there is)."""
    series = metric_store.read(run_id, keys=EPOCH_KEYS)
    missing = [key for key in ("train_loss", "val_loss") if key not in series]
    if missing:
        return Evaluations({}, (
            f"no metric of this run maps to {' or '.join(missing)}: log `loss` and "
            "`eval_loss` (or `val_loss`), or name yours in the run's "
            f"`{MAP_TAG}` tag, e.g. {{\"my_val\": \"val_loss\"}}"))
    evals = series["val_loss"].steps
    first_train = int(series["train_loss"].steps[0])
    evals = evals[evals >= first_train]  # an evaluation before any training point says nothing
    history: dict[str, list[float]] = {}
    for key, points in series.items():
        if key.startswith("val_"):
            by_step = dict(zip(points.steps.tolist(), points.values.tolist(), strict=True))
            history[key] = [by_step.get(step, math.nan) for step in evals.tolist()]
        else:
            history[key] = interval_means(points.steps, points.values, evals)
    return Evaluations(history, "", float(series["train_loss"].values[0]))


def interval_means(steps: np.ndarray, values: np.ndarray, evals: np.ndarray) -> list[float]:
    """A training metric at each evaluation: the mean of its points since the evaluation
    before (as an epoch's training loss is the mean over its batches), else its last value
    before (a metric logged less often than the evaluations); NaN before its first point. A
    per-step loss is one batch's: the last one alone would be as noisy as a batch."""
    ends = np.searchsorted(steps, evals, side="right")
    starts = np.concatenate(([0], ends[:-1]))
    return [float(values[a:b].mean()) if b > a else float(values[b - 1]) if b > 0 else math.nan
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def task_of(spec: Mapping[str, Any], history: Mapping[str, Any],
            first_loss: float = math.nan) -> TaskInfo:
    """The run's task from its tags; classification when it logs an accuracy, regression
    otherwise. Classes the tags or params do not count, and a regression target's units, are
    read from the run's first losses, ``first_loss`` (the first training point logged)
    included (``training.diagnostics.task_from_curves``)."""
    tags = spec.get("tags", {})
    params = spec.get("params", {})
    kind = tags.get(TASK_TAG) or ("classification" if "val_acc" in history
                                  or "train_acc" in history else "regression")
    if kind != "classification":
        return task_from_curves(history, "regression", start=first_loss)
    try:
        classes = int(tags.get(CLASSES_TAG) or params.get("num_labels") or 0)
    except ValueError:
        classes = 0
    return task_from_curves(history, "classification", max(2, classes) if classes else None,
                            start=first_loss)


def verdict(evaluations: Evaluations, spec: Mapping[str, Any], final: bool) -> dict[str, Any]:
    """``training.diagnostics.diagnose`` on an external run: no spec, so no remedies."""
    history = evaluations.history
    task = task_of(spec, history, evaluations.first_loss)
    return diagnose(history, task, None, final=final).to_dict()


def live_verdict(run_id: int, spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verdict of a running external run so far (None before its first evaluation)."""
    evaluations = evaluation_history(run_id)
    if not evaluations.history:
        return None
    return verdict(evaluations, spec, final=False)


def final_verdict(run: Experiment) -> dict[str, Any]:
    """The verdict stored when an external run ends ({} when its names do not map)."""
    evaluations = evaluation_history(run.pk)
    return verdict(evaluations, run.spec, final=True) if evaluations.history else {}


def no_verdict_reason(run: Experiment) -> str:
    """Why an external run has no verdict ("" when it has one or can have one)."""
    return evaluation_history(run.pk).reason


# Stored names the run page already draws (run.js); an external run's others get a chart.
DRAWN = {"loss", "train_loss", "val_loss", "train_acc", "val_acc", "val_rmse", "val_mae", "lr"}


def page_context(run: Experiment) -> dict[str, Any]:
    """What the run and diagnostics pages show of an external run in place of its spec."""
    keys: dict[str, str] = run.progress.get("keys", {})
    stored = set(keys.values())
    task = "classification" if {"val_acc", "train_acc"} & stored else "regression"
    return {
        "params": sorted(run.spec.get("params", {}).items()),
        "tags": sorted(run.spec.get("tags", {}).items()),
        "metric_names": sorted(keys.items()),
        "artifacts": files.listing(artifacts_root(run.pk)),
        "task": task,
        "extra_keys": sorted(k for k in stored if k not in DRAWN and k != "epoch"),
        "no_verdict_reason": no_verdict_reason(run) if keys else "no metrics logged yet",
        "map_tag": MAP_TAG,
    }


def artifacts_root(run_id: int) -> str:
    """Where an external run's artifacts live in the default storage."""
    return f"external/{run_id}/artifacts"
