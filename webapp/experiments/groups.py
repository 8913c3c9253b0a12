"""Repeats: a spec over several seeds (``RunGroup``), trained together when the engine can,
read back as mean ± spread per epoch, and compared with Welch's t (``training.significance``).

The executor behind the ``experiments.repeat`` task trains a group's queued runs in one job
(``training.repeats.run_seeds``), each run with its own reporter and row; the rest are plain
functions of the stored rows for the pages.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import stats

from training.diagnostics import remedy_measure
from training.significance import Comparison, compare
from webapp.experiments import diagnosis, metric_store
from webapp.experiments.jobs import (
    Outcome,
    job_meta,
    loop_options,
    placement,
    run_device,
    run_jobs,
    run_workdir,
    training_summary,
)
from webapp.experiments.models import Experiment, RunGroup
from webapp.experiments.reporting import DjangoReporter

logger = logging.getLogger(__name__)

# The curves a group page offers, and the final metrics its table shows.
EPOCH_METRICS = ("val_acc", "val_loss", "train_loss", "train_acc", "val_rmse", "val_mae")
BANDS = ("std", "ci95")


def ordered_runs(group: RunGroup) -> list[Experiment]:
    """The group's runs in the order of its seeds (one query)."""
    by_seed = {run.spec.get("run", {}).get("seed"): run for run in group.runs.all()}
    return [by_seed[seed] for seed in group.seeds if seed in by_seed]


def execute_group(group_id: int, worker: str) -> None:
    """Train a group's queued runs together, each ending on its own row; runs another worker
    took already are left to it."""
    group = RunGroup.objects.filter(pk=group_id).first()
    if group is None:
        return
    runs = [run for run in ordered_runs(group)
            if run.status == Experiment.Status.QUEUED and run.start(worker)]
    if not runs:
        logger.info("group %s has no queued run left; skipping", group_id)
        return
    spec = runs[0].experiment_spec

    def train(reporters: list[DjangoReporter]) -> list[Outcome]:
        from training.loop import RunOptions, primary_metric
        from training.repeats import run_seeds

        metas = [job_meta(run, group_id=group.pk) for run in runs]
        for reporter in reporters:
            reporter.status("starting", seeds_together=len(runs), **placement(run_device(spec)))
        options = RunOptions(**loop_options(spec, runs[0], metas[0]))
        seeds = [run.experiment_spec.run.seed for run in runs]
        results = run_seeds(spec, seeds, reporters, [run_workdir(run.pk) for run in runs],
                            options)
        key, _ = primary_metric(_task(spec.data.dataset))
        return [Outcome(result.status, training_summary(result, key, meta))
                for result, meta in zip(results, metas, strict=True)]

    run_jobs(runs, train)


def _task(dataset: str) -> str:
    from training.data.catalog import dataset_info

    return dataset_info(dataset).task


# Reading a group back ------------------------------------------------------------------------


def epoch_curves(runs: list[Experiment], metrics: list[str]) -> dict[str, dict[int, list[float]]]:
    """Each run's per-epoch values (the points logged with an epoch) of each metric, by metric
    and run id; one query for all of them."""
    stored = metric_store.read_many([run.pk for run in runs], [*metrics, "epoch"])
    curves: dict[str, dict[int, list[float]]] = {metric: {} for metric in metrics}
    for run in runs:
        series = stored.get(run.pk, {})
        for metric in metrics:
            if metric not in series or "epoch" not in series:
                curves[metric][run.pk] = []
                continue
            at_epoch = np.isin(series[metric].steps, series["epoch"].steps)
            curves[metric][run.pk] = series[metric].values[at_epoch].tolist()
    return curves


def band(curves: list[list[float]], kind: str) -> dict[str, list[float | None]]:
    """Per epoch: the mean over the seeds that reached it and the band around it, the sample
    standard deviation (``std``) or the 95% t interval of the mean (``ci95``)."""
    length = max((len(c) for c in curves), default=0)
    rows: list[tuple[float | None, float | None, float | None]] = []
    for epoch in range(length):
        values = np.array([c[epoch] for c in curves if len(c) > epoch and math.isfinite(c[epoch])])
        if not len(values):
            rows.append((None, None, None))
            continue
        centre = float(values.mean())
        spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        if kind == "ci95" and len(values) > 1:
            spread *= float(stats.t.ppf(0.975, len(values) - 1)) / math.sqrt(len(values))
        rows.append((centre, centre - spread, centre + spread))
    return {"epochs": list(range(1, length + 1)), "mean": [r[0] for r in rows],
            "low": [r[1] for r in rows], "high": [r[2] for r in rows]}


def charts(group: RunGroup, metrics: list[str]) -> dict[str, dict[str, Any]]:
    """The group page's charts, by metric and band: each seed's curve and the mean with its
    band (the sample std, or the 95% interval of the mean)."""
    runs = ordered_runs(group)
    curves = epoch_curves(runs, metrics)
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        seeds = [{"id": run.pk, "seed": seed_of(run), "values": curves[metric][run.pk]}
                 for run in runs]
        out[metric] = {kind: {"metric": metric, "band": kind, "seeds": seeds,
                              **band([s["values"] for s in seeds], kind)}
                       for kind in BANDS}
    return out


def seed_of(run: Experiment) -> int | None:
    seed = run.spec.get("run", {}).get("seed")
    return seed if isinstance(seed, int) else None


def final_value(run: Experiment, metric: str) -> float | None:
    """A finished run's value of ``metric`` (its best epoch's; ``gap``: its final validation
    minus training loss), or None when it has none."""
    summary = run.summary or {}
    if metric == "gap":
        return diagnosis.generalisation_gap(run)
    value = (summary.get("best_metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def finals(runs: list[Experiment], metric: str) -> list[float]:
    """The succeeded runs' values of ``metric``."""
    values = [final_value(run, metric) for run in runs
              if run.status == Experiment.Status.SUCCEEDED]
    return [v for v in values if v is not None and math.isfinite(v)]


def final_table(runs: list[Experiment]) -> list[dict[str, Any]]:
    """Mean ± std of every final metric the runs have, over their succeeded seeds."""
    rows = []
    for metric in ("gap", *EPOCH_METRICS):
        values = finals(runs, metric)
        if values:
            spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            rows.append({"metric": metric, "mean": float(np.mean(values)), "std": spread,
                         "n": len(values), "values": values})
    return rows


def data_set(group: RunGroup) -> str:
    """The data set a group's seeds train on (its spec's; "" for a spec without one)."""
    return str((group.spec.get("data") or {}).get("dataset", ""))


def incomparable(a: RunGroup, b: RunGroup) -> str | None:
    """Why two groups' metrics cannot be set against each other, or None: a loss or an
    accuracy on one data set says nothing against one on another (a text regression's MSE
    was "better by 0.757" than an image classifier's cross-entropy). Versions of one data set
    compare: that is how a relabelled version is judged."""
    if data_set(a) == data_set(b):
        return None
    return (f"{a.name} trains on {data_set(a)} and {b.name} on {data_set(b)}: their metrics "
            "measure different data, so neither is better; compare groups on one data set")


def unmeasured(a: list[Experiment], b: list[Experiment], metric: str,
               measured: list[str]) -> str | None:
    """Why groups whose seeds finished have no ``metric`` to compare (a regression's have no
    accuracy), or None."""
    if metric in measured or not any(run.status == Experiment.Status.SUCCEEDED
                                     for run in a + b):
        return None
    return (f"these seeds measured no {metric}: compare them on "
            f"{', '.join(measured) or 'another metric'}")


def compare_sides(a: list[Experiment], b: list[Experiment], metric: str,
                  names: tuple[str, str]) -> Comparison | None:
    """B against A on ``metric`` over their succeeded seeds; None until each has 2."""
    values_a, values_b = finals(a, metric), finals(b, metric)
    if len(values_a) < 2 or len(values_b) < 2:
        return None
    return compare(values_a, values_b, metric, names=names)


def remedy_verdicts(group: RunGroup) -> list[Comparison]:
    """A verified remedy's group against its original side: on the measure of the original's
    verdict (``remedy_measure``), then the monitored metric (empty until both sides have 2
    succeeded seeds)."""
    if group.baseline is None:
        return []
    original, remedied = ordered_runs(group.baseline), ordered_runs(group)
    if not original:
        return []
    first = remedy_measure(original[0].verdict_kind)
    metric = (original[0].summary.get("best_metric") or ["val_loss"])[0]
    names = ("the original", "the remedy")
    found = [compare_sides(original, remedied, m, names)
             for m in dict.fromkeys((first, metric))]
    return [c for c in found if c is not None]


def ranking_check(study: Experiment, objective: str, maximize: bool) -> dict[str, Any] | None:
    """The study's best trials repeated over seeds ("Check the best trials"): each with its
    trial's value and its seeds' mean ± std, in the study's order and in the seeds' order, and
    whether the order survives; with the first two compared by Welch's t. None before a check."""
    checks = list(RunGroup.objects.filter(source__parent=study).select_related("source")
                  .prefetch_related("runs").order_by("pk"))
    if not checks:
        return None
    rows = []
    for group in checks:
        values = finals(ordered_runs(group), objective)
        rows.append({"group": group, "trial": group.source,
                     "trial_value": (group.source.summary.get("trial") or {}).get("value"),
                     "values": values, "mean": float(np.mean(values)) if values else None,
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else None})
    sign = -1.0 if maximize else 1.0
    by_trial = sorted(rows, key=lambda r: sign * (r["trial_value"] or 0.0))
    measured = [r for r in rows if r["mean"] is not None]
    by_seeds = sorted(measured, key=lambda r: sign * r["mean"])
    comparison = None
    if len(by_trial) > 1:
        first, second = by_trial[0], by_trial[1]
        comparison = compare_sides(ordered_runs(second["group"]), ordered_runs(first["group"]),
                                   objective, (second["group"].name, first["group"].name))
    complete = len(measured) == len(rows) and all(len(r["values"]) > 1 for r in rows)
    return {"rows": by_trial, "objective": objective, "complete": complete,
            "survives": complete and [r["group"].pk for r in by_trial]
            == [r["group"].pk for r in by_seeds],
            "comparison": comparison}
