"""Compression jobs: experiments of kind ``compress`` whose parent is the run they compress.

``create_compression`` queues one (atomic, enqueued after commit); ``execute_compression`` is
the function behind the Celery task; ``report_rows`` and ``trade_off`` feed the pages. The job's
row stores ``training.compression.spec.job_spec_dict``: the spec of the model it produces plus the
job itself under ``"compression"``, so the run page, the curves and diagnostics work unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from training.compression.spec import CompressionSpec, split_job_spec
from training.spec import SpecError
from webapp.experiments import files
from webapp.experiments.jobs import (
    Outcome,
    data_sources,
    forget_unsaved_points,
    job_meta,
    run_job,
    run_workdir,
)
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter

logger = logging.getLogger(__name__)

# Report columns shown in the tables: (key in a measurement, heading).
SIZE_COLUMNS = ("parameters", "nonzero_parameters", "weight_bytes", "latency_ms")


def source_problem(source: Experiment) -> str | None:
    """Why ``source`` cannot be compressed (or be a teacher) now, or None."""
    if source.status != Experiment.Status.SUCCEEDED:
        return (f"the source run has {source.status}, not succeeded: only a finished run's "
                "model can be compressed or used as a teacher")
    if not source.checkpoints.filter(tag="best").exists():
        return "the source run has no saved checkpoint"
    return None


def check_job(source: Experiment, spec: CompressionSpec) -> None:
    """Every check a job must pass before it is queued; SpecError keyed by spec field
    (``"source"`` for problems of the source run itself)."""
    problem = source_problem(source)
    if problem:
        raise SpecError({"source": problem})
    record = source.summary.get("compression_record") or {}
    spec.check_source(source.experiment_spec, record.get("methods", []))



def execute_compression(experiment_id: int, worker: str) -> None:
    """Run one queued compression job and record the outcome on its row; never raises for a
    failed job (the reason goes to ``Experiment.error``)."""
    job = Experiment.objects.filter(pk=experiment_id, kind=Experiment.Kind.COMPRESS).first()
    if job is None or not job.start(worker):
        logger.info("compression %s is not queued any more; skipping", experiment_id)
        return
    if job.restarts:  # its worker died: a compression starts over (it saves no state)
        forget_unsaved_points(job, after_step=0)

    def compress_model(reporter: DjangoReporter) -> Outcome:
        # torch loads only on a worker that runs a job (see jobs).
        from training import checkpoints
        from training.compression.job import compress

        _, spec = split_job_spec(job.spec)
        source = job.parent
        if spec is None or source is None:
            raise SpecError({"source": "the source run is gone"})
        check_job(source, spec)
        stored = source.checkpoints.get(tag="best")
        checkpoint = checkpoints.load(files.local_copy(stored.path, stored.sha256),
                                      sha256=stored.sha256)
        meta = job_meta(job)
        result = compress(spec, checkpoint, reporter, run_workdir(job.pk),
                          device=settings.FITBOARD_DEVICE, meta=meta,
                          sources=data_sources(checkpoint.spec, source))
        return Outcome(result.status, compression_summary(result, meta))

    # A job that only quantizes trains no epoch: there is no curve to diagnose.
    run_job(job, compress_model, always_diagnose=False)


def compression_summary(result: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The summary a compression result (``training.compression.job``) leaves on its row."""
    from training.checkpoints import library_versions

    measured = result.report.get("result", {})
    key = "val_acc" if "val_acc" in measured else "val_loss"
    out: dict[str, Any] = {
        "report": result.report,
        "compression_record": result.record,
        "epochs": sum(stage.epochs for stage in result.stages),
        "steps": sum(stage.steps for stage in result.stages),
        "final_metrics": {k: v for k, v in measured.items() if k.startswith(("val_", "test_"))},
        "best_metric": [key, measured[key]] if key in measured else None,
        "versions": library_versions(),
        **meta,
    }
    return out


# Pages -----------------------------------------------------------------------------------------

def _row(name: str, pk: int | None, method: str, measured: dict[str, Any],
         change: dict[str, float]) -> dict[str, Any]:
    return {"name": name, "pk": pk, "method": method, **measured,
            # a regression's rows change by RMSE (they have no accuracy to change)
            "val_change": change.get("val_acc_change", change.get("val_rmse_change")),
            "test_acc_change": change.get("test_acc_change"),
            "weight_bytes_ratio": change.get("weight_bytes_ratio"),
            "latency_ratio": change.get("latency_ms_ratio")}


def report_rows(source: Experiment, jobs: list[Experiment]) -> list[dict[str, Any]]:
    """Table rows: the source (as measured by the newest job) then each finished job."""
    done = [job for job in jobs if job.summary.get("report")]
    if not done:
        return []
    baseline = done[-1].summary["report"]["source"]
    rows = [_row(source.name, source.pk, "source", baseline, {})]
    for job in done:
        report = job.summary["report"]
        rows.append(_row(job.name, job.pk, report["method"], report["result"], report["change"]))
    return rows


def trade_off(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trade-off charts' points: validation accuracy, or a regression's RMSE (its rows have
    no accuracy: the charts were empty), against size and latency; ``metric`` names it."""
    if not rows:  # no job has finished yet
        return []
    regression = rows[0].get("val_acc") is None and rows[0].get("val_rmse") is not None
    key, label = ("val_rmse", "validation RMSE") if regression else ("val_acc",
                                                                      "validation accuracy")
    return [{"name": r["name"], "method": r["method"], "acc": r.get(key), "metric": label,
             "bytes": r["weight_bytes"], "latency_ms": r["latency_ms"],
             "parameters": r["nonzero_parameters"]} for r in rows]


def detail_context(experiment: Experiment) -> dict[str, Any]:
    """What the run page adds for compression: this job's report (when it is one) and the
    report and trade-off chart of the jobs that compressed it."""
    context: dict[str, Any] = {}
    if experiment.kind == Experiment.Kind.COMPRESS and experiment.parent is not None:
        context["compression_of"] = experiment.parent
        context["compression_rows"] = report_rows(experiment.parent, [experiment])
        parent = experiment.parent
        if parent.best_metric_name == "val_acc" and parent.best_metric_value is not None:
            method = experiment.spec.get("compression", {}).get("method")
            context["compression_reference"] = {
                "label": "teacher" if method == "distill" else "source",
                "value": parent.best_metric_value,
            }
    children = list(experiment.children.filter(kind=Experiment.Kind.COMPRESS).order_by("pk"))
    if children:
        context["compressed_children"] = children
        rows = report_rows(experiment, children)
        context["children_rows"] = rows
        context["trade_off"] = trade_off(rows)
    context["can_compress"] = experiment.compressible
    return context
