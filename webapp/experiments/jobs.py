"""One job on this worker, whatever its kind: the part every executor shares.

A kind (training in ``runner``, trials in ``tuning``, compression in ``compression``, the
data-parallel ranks in ``parallel``) starts its row and supplies only its work: a function of
the job's reporter that returns an :class:`Outcome`. :func:`run_job` does the rest once: the
reporter and the system sampler around the work, the failure's reason on the page, the lease
check, the final verdict, the finish and the compaction of the points. The helpers every kind's
work uses (the device rule, the data sources, the working folder, the summary of a training
result) live here too.

torch and the training engine are imported inside the functions that use them: the web
process imports this module (through the task module) and never trains.
"""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from training.spec import SpecError
from webapp.datasets.services import DatasetUnavailable, local_files
from webapp.experiments import diagnosis, events, metric_store, warmstart
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter
from webapp.experiments.sysmetrics import PREFIX as SYSTEM_PREFIX
from webapp.experiments.sysmetrics import SystemSampler, gpu_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a job's work ended: the status its row ends with, its summary, and what its page
    says (``error=None``: "cancelled by user" for a cancelled job, nothing otherwise)."""

    status: str
    summary: dict[str, Any]
    error: str | None = None


Work = Callable[[DjangoReporter], Outcome]
# A kind's last word once the status is final, whatever happened: (status, the work's summary or
# None when it failed) -> the summary the row keeps. A trial tells Optuna here.
Conclude = Callable[[str, dict[str, Any] | None], dict[str, Any] | None]


@cache
def git_revision() -> str | None:
    """The checkout's commit, saved with every run for reproducibility (None outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True,
            timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def job_meta(experiment: Experiment, **extra: Any) -> dict[str, Any]:
    """What every checkpoint and summary of a job records about where it came from."""
    return {"experiment_id": experiment.pk, "git_revision": git_revision(),
            "download_stem": experiment.download_stem(), **extra}


def run_workdir(experiment_id: int) -> Path:
    """Where a run's checkpoints are written on this machine (then copied to the storage)."""
    return Path(settings.MEDIA_ROOT) / "runs" / str(experiment_id)


def run_device(spec: Any) -> str:
    """The device a run trains on: a CPU run stays on the CPU wherever it lands (GPU workers
    take the ``cpu`` queue too); anything else follows the worker's FITBOARD_DEVICE."""
    return "cpu" if spec.run.device == "cpu" else str(settings.FITBOARD_DEVICE)


def placement(device: str, devices: int = 1) -> dict[str, Any]:
    """Which machine and GPUs a run uses, for its page: host name, and the GPUs' indices (as
    the machine numbers them: CUDA_VISIBLE_DEVICES) and names when it trains on CUDA."""
    where: dict[str, Any] = {"host": socket.gethostname(), "devices": devices}
    if device != "cpu":
        names = gpu_names()
        if names:
            where["gpus"] = [f"{index}: {name}" for index, name in names[:devices]]
    return where


def data_sources(spec: Any, experiment: Experiment) -> Any:
    """Where the engine finds this run's data: the data directory and the local files of the
    uploads it names (which must belong to the run's project), at the spec's version."""
    from training.data import DataSources

    return DataSources(
        data_dir=settings.FITBOARD_DATA_DIR,
        uploads=local_files([spec.data.dataset], experiment.project, spec.data.version),
        allow_download=settings.FITBOARD_DATA_DOWNLOAD,
    )


def loop_options(spec: Any, experiment: Experiment, meta: dict[str, Any],
                 device: str | None = None) -> dict[str, Any]:
    """The options of ``training.loop.run`` that every job of this worker passes: the device
    (``run_device`` unless given), the data sources, the meta its checkpoints carry, the
    checkpoint interval, the smallest batch an out-of-memory step may be split down to, and
    the checkpoint file of the run a warm start begins from (recorded in the meta)."""
    weights, record = warmstart.init_weights(spec, experiment)
    return {
        "device": run_device(spec) if device is None else device,
        "sources": data_sources(spec, experiment),
        "meta": {**meta, **record},
        "init_weights": weights,
        "checkpoint_interval": settings.FITBOARD_CHECKPOINT_INTERVAL,
        "min_batch": settings.FITBOARD_MIN_BATCH,
        "reference_dir": settings.FITBOARD_REFERENCE_DIR,
    }


def training_summary(result: Any, key: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The summary a training result (``training.loop.RunResult``) leaves on its row; ``key``
    names the metric the run is judged by."""
    from training.checkpoints import library_versions

    best = result.best_metrics.get(key)
    return {
        "epochs": result.epochs,
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "best_metrics": result.best_metrics,
        "final_metrics": result.final_metrics,
        "stopped_early": result.stopped_early,
        "micro_batch": result.micro_batch,  # rows per forward pass it ended with
        "test_metrics": result.test_metrics,
        "best_metric": [key, best] if best is not None else None,
        "versions": library_versions(),
        **meta,
    }


def forget_unsaved_points(experiment: Experiment, after_step: int) -> None:
    """A job re-queued after its worker died logs again the points after ``after_step`` (its
    last saved state; 0 when it starts over): the dead attempt's are dropped. The system
    readings stay: their steps are seconds since the job began, never repeated."""
    metric_store.truncate(experiment.pk, after_step=after_step, keep=(SYSTEM_PREFIX,))


def failure_reason(exc: Exception, experiment: Experiment) -> tuple[str, bool]:
    """What a job's failure says on its page, and whether its loss went non-finite. Errors the
    engine and the web app raise on purpose carry their own message; anything else is a crash,
    logged with its traceback."""
    import torch

    from training import checkpoints
    from training.data.files import DataFileError
    from training.loop import NonFiniteLossError, TrainingError

    if isinstance(exc, TrainingError | DatasetUnavailable | SpecError | DataFileError
                  | checkpoints.CheckpointError):
        return str(exc), isinstance(exc, NonFiniteLossError)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of GPU memory: lower the batch size or the model size", False
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        return (f"out of memory: the job needed more than this worker's "
                f"{settings.FITBOARD_WORKER_MEMORY_GB} GB (FITBOARD_WORKER_MEMORY_GB); lower "
                "the batch size or the model size"), False
    logger.exception("%s %s crashed", experiment.kind, experiment.pk, exc_info=exc)
    return f"{type(exc).__name__}: {exc}", False


def final_verdict(experiment: Experiment, nonfinite_loss: bool) -> dict[str, Any] | None:
    """The ended run's verdict; a diagnostics error is logged, never the run's failure."""
    try:
        return diagnosis.final_verdict(experiment, nonfinite_loss)
    except Exception:  # noqa: BLE001
        logger.exception("could not diagnose experiment %s", experiment.pk)
        return None


def compact_points(experiment_id: int) -> None:
    """Fewer, larger metric rows for the ended run; a failure only leaves them as they were."""
    try:
        metric_store.compact(experiment_id)
    except Exception:  # noqa: BLE001
        logger.exception("could not compact the points of experiment %s", experiment_id)


def run_job(experiment: Experiment, work: Work, *, always_diagnose: bool = True,
            conclude: Conclude | None = None) -> bool:
    """Run a started job's ``work`` with its reporter and record the outcome on its row: the
    status, summary and error ``work`` returns, or the reason it failed; ``conclude`` (when
    given) then has the last word on the summary; then the final verdict
    (``always_diagnose=False``: only when the job trained for an epoch or more) and compacted
    points. Never raises for a failed job. False when the job was taken back from this worker
    (its lease expired) and so is not this worker's to end."""
    # The reporter first: it renews the job's lease, and importing torch and loading the data
    # can take longer than a lease lasts.
    reporter = DjangoReporter(experiment)
    status, error, summary = Experiment.Status.FAILED, "", None
    nonfinite_loss = False
    elapsed = (timezone.now() - experiment.started_at).total_seconds() \
        if experiment.restarts and experiment.started_at else 0.0
    sampler = SystemSampler(reporter, settings.FITBOARD_SYSTEM_METRICS_INTERVAL, elapsed)
    try:
        import torch

        torch.set_num_threads(settings.FITBOARD_TORCH_THREADS)
        sampler.start()
        outcome = work(reporter)
        status, summary = outcome.status, outcome.summary
    except Exception as exc:  # noqa: BLE001 - any failure becomes the job's reason
        error, nonfinite_loss = failure_reason(exc, experiment)
    else:
        error = outcome.error if outcome.error is not None else \
            "cancelled by user" if status == Experiment.Status.CANCELLED else ""
        # The loop ends a run stopped by its time limit as cancelled; the job failed. (A
        # data-parallel run's rank 0 stopped on its own reporter: this one reads the clock.)
        if status == Experiment.Status.CANCELLED and (reason := reporter.time_limit_reason()):
            status, error = Experiment.Status.FAILED, reason
    finally:
        sampler.stop()
        try:
            reporter.close()
        except RuntimeError as exc:
            status, error = Experiment.Status.FAILED, str(exc)
    return end_job(experiment, reporter, status, error, summary, nonfinite_loss,
                   always_diagnose=always_diagnose, conclude=conclude)


def end_job(experiment: Experiment, reporter: DjangoReporter, status: str, error: str,
            summary: dict[str, Any] | None, nonfinite_loss: bool, *,
            always_diagnose: bool = True, conclude: Conclude | None = None) -> bool:
    """Record a job's outcome on its row once its reporter is closed (see ``run_job``); False
    when the job was taken back from this worker."""
    if reporter.lease_lost:
        logger.warning("%s %s was taken back from this worker; leaving it to its new one",
                       experiment.kind, experiment.pk)
        return False
    if conclude is not None:
        summary = conclude(status, summary)
    # The status event carries the row's progress: its last message number lets a viewer who
    # missed the final points notice and fetch them.
    experiment.refresh_from_db(fields=["progress"])
    diagnose = always_diagnose or bool(summary and summary.get("epochs"))
    verdict = final_verdict(experiment, nonfinite_loss) if diagnose else None
    # A diverged run's metrics hold NaN or infinity, which JSON columns refuse.
    if not experiment.finish(status, error=error, summary=events.json_safe(summary),
                             verdict=events.json_safe(verdict), lease=experiment.lease_epoch):
        return False
    compact_points(experiment.pk)
    return True


GroupWork = Callable[[list[DjangoReporter]], list[Outcome]]


def run_jobs(experiments: list[Experiment], work: GroupWork) -> list[bool]:
    """``run_job`` for started jobs that one piece of ``work`` does together (the seeds of a
    repeat): one reporter each, one system sampler (on the first: they share the machine), and
    each row ends with its own outcome, or all with the reason the work failed."""
    reporters = [DjangoReporter(experiment) for experiment in experiments]
    outcomes: list[Outcome] | None = None
    error, nonfinite_loss = "", False
    sampler = SystemSampler(reporters[0], settings.FITBOARD_SYSTEM_METRICS_INTERVAL, 0.0)
    try:
        import torch

        torch.set_num_threads(settings.FITBOARD_TORCH_THREADS)
        sampler.start()
        outcomes = work(reporters)
    except Exception as exc:  # noqa: BLE001 - any failure becomes every job's reason
        error, nonfinite_loss = failure_reason(exc, experiments[0])
    finally:
        sampler.stop()
    ended = []
    for index, (experiment, reporter) in enumerate(zip(experiments, reporters, strict=True)):
        status, summary, reason = Experiment.Status.FAILED, None, error
        if outcomes is not None:
            outcome = outcomes[index]
            status, summary = outcome.status, outcome.summary
            reason = outcome.error if outcome.error is not None else \
                "cancelled by user" if status == Experiment.Status.CANCELLED else ""
            # As in run_job: a run its time limit stopped failed.
            if status == Experiment.Status.CANCELLED and (late := reporter.time_limit_reason()):
                status, reason = Experiment.Status.FAILED, late
        try:
            reporter.close()
        except RuntimeError as exc:
            status, reason = Experiment.Status.FAILED, str(exc)
        ended.append(end_job(experiment, reporter, status, reason, summary, nonfinite_loss))
    return ended
