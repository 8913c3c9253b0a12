"""Verdicts of stored runs, and the runs that apply their remedies.

The verdict itself is ``training.diagnostics.diagnose``; this module feeds it a run's per-epoch
history from the metric store and turns a remedy into a new queued experiment.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings

from training.diagnostics import diagnose, remedy_measure, task_info
from training.reference import cached_reference, reference_key
from training.spec import ExperimentSpec
from webapp.experiments import external, metric_store, warmstart
from webapp.experiments.models import Experiment

# The per-epoch metrics the loop logs together with an "epoch" point at the epoch's last step.
EPOCH_KEYS = external.EPOCH_KEYS


def epoch_history(experiment_id: int) -> dict[str, list[float]]:
    """One value per completed epoch for each epoch metric of a run, epoch 1 first."""
    series = metric_store.read(experiment_id, keys=(*EPOCH_KEYS, "epoch"))
    epochs = series.pop("epoch", None)
    if epochs is None:
        return {}
    epoch_steps = epochs.steps.tolist()
    history = {}
    for key, points in series.items():
        by_step = dict(zip(points.steps.tolist(), points.values.tolist(), strict=True))
        history[key] = [by_step.get(step, math.nan) for step in epoch_steps]
    return history


def final_verdict(experiment: Experiment, nonfinite_loss: bool) -> dict[str, Any]:
    """The verdict stored when a run ends (``nonfinite_loss``: it failed on a NaN/inf loss)."""
    if experiment.is_external:  # its script's names, mapped (webapp.tracking)
        return external.final_verdict(experiment)
    history = epoch_history(experiment.pk)
    if nonfinite_loss:
        history = {key: [*values, math.nan] for key, values in history.items()}
        # The per-step loss that overflowed: a run that blew up before its first epoch ended
        # has no epoch history to end with NaN, and was "too short to tell" without it.
        history["loss"] = [math.nan]
    spec = experiment.experiment_spec
    # The run computed its data set's reference when it started (RunOptions.reference_dir).
    reference = cached_reference(settings.FITBOARD_REFERENCE_DIR, reference_key(spec))
    verdict = diagnose(history, task_info(spec.data.info()), spec, final=True,
                       reference=reference).to_dict()
    if verdict["kind"] == "slow":
        verdict["remedies"] = [*warm_start_remedy(experiment), *verdict["remedies"]]
    return verdict


def warm_start_remedy(experiment: Experiment) -> list[dict[str, Any]]:
    """"Start from run #N" when a finished run of the project fits this run's network: a
    network that starts from trained features needs fewer epochs than one from scratch."""
    source = warmstart.compatible_source(experiment)
    if source is None:
        return []
    return [{"key": "warm_start", "title": f"Start from run #{source.pk} ({source.name})",
             "why": "Layers already trained on similar data start from useful features, so "
                    "fewer epochs reach the same accuracy than from random weights.",
             "patch": {"model": {"init_from": source.pk}}, "advice_only": False}]


def history_of(experiment: Experiment) -> dict[str, list[float]]:
    """The run's per-epoch history (an external run's: one entry per validation point)."""
    if experiment.is_external:
        return external.evaluation_history(experiment.pk, experiment.progress.get("keys", {}),
                                           external.unstepped(experiment.progress)).history
    return epoch_history(experiment.pk)


def no_curve(experiment: Experiment, history: dict[str, list[float]], reason: str = "") -> str:
    """Why the diagnostics page has no loss curve to draw ("" when it has one): an external
    run's ``reason`` (its names do not map, say), or where a run stands. Its chart cards were
    left blank, with nothing on the page saying why."""
    if any(history.get(key) for key in ("train_loss", "val_loss")):
        return ""
    if reason:
        return reason
    if experiment.is_external:
        return "the script has logged no loss"
    if experiment.status == Experiment.Status.QUEUED:
        return "the run has not started: its curves grow from its first epoch on"
    if not experiment.is_terminal:
        return "no epoch has completed: the curves grow from the first one on"
    how = {Experiment.Status.FAILED: "failed", Experiment.Status.CANCELLED: "was cancelled"}
    ended = f"the run {how.get(experiment.status, 'ended')} before its first epoch completed"
    return f"{ended} ({experiment.error})" if experiment.error else ended


def no_accuracy(experiment: Experiment, history: dict[str, list[float]]) -> str:
    """Why a classification's accuracy card has no curve ("" when it has one): a script's run
    may log only losses, or a classifier's measure other than accuracy (top5, F1)."""
    if any(history.get(key) for key in ("train_acc", "val_acc")):
        return ""
    if experiment.is_external:
        return (f"the script logs no accuracy (log `val_acc` or `accuracy`, or name yours in "
                f"the run's `{external.MAP_TAG}` tag)")
    return "the run has logged no accuracy yet"


def find_remedy(experiment: Experiment, key: str) -> dict[str, Any] | None:
    """The remedy ``key`` among the run's current verdict's, if it has a spec patch."""
    verdict = experiment.verdict or experiment.progress.get("verdict") or {}
    for remedy in verdict.get("remedies", []):
        if remedy["key"] == key and remedy["patch"]:
            return dict(remedy)
    return None


def spec_changes(before: ExperimentSpec, after: ExperimentSpec) -> list[tuple[str, Any, Any]]:
    """(dotted field, old value, new value) for every field a patch changes."""
    old, new = flatten_spec(before.to_dict()), flatten_spec(after.to_dict())
    return [(path, old.get(path), new[path]) for path in new if old.get(path) != new[path]]


def flatten_spec(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A spec dict as {"section.field": value} (remedy diffs and the comparison's diff table)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_spec(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat



def remedy_outcome(run: Experiment, original: Experiment) -> dict[str, Any] | None:
    """What a remedy run changed on the measure of its original's verdict (``remedy_measure``:
    a higher learning rate for a slow run widened a gap of 0.011 to 0.016 while the validation
    loss fell from 0.62 to 0.57, and the gap alone said it failed). None until both have it."""
    if remedy_measure((original.verdict or {}).get("kind", "")) == "gap":
        measure, before, after = ("train/validation loss gap", generalisation_gap(original),
                                  generalisation_gap(run))
        better, worse = "the gap shrank", "the gap did not shrink"
    else:
        measure, before, after = ("validation loss", _final(original, "val_loss"),
                                  _final(run, "val_loss"))
        better, worse = "it fell", "it did not fall"
    if before is None or after is None:
        return None
    improved = after < before
    return {"measure": measure, "before": before, "after": after, "improved": improved,
            "words": better if improved else worse}


def _final(experiment: Experiment, key: str) -> float | None:
    value = (experiment.summary.get("final_metrics") or {}).get(key)
    return None if value is None else float(value)


def generalisation_gap(experiment: Experiment) -> float | None:
    """Final validation loss minus final training loss: what a remedy for overfitting shrinks;
    None without both (a loss that ended NaN is stored as null)."""
    final = experiment.summary.get("final_metrics") or {}
    val, train = final.get("val_loss"), final.get("train_loss")
    if not isinstance(val, int | float) or not isinstance(train, int | float):
        return None
    return float(val) - float(train)
