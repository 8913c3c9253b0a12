"""Runs one experiment on this worker: the function behind the Celery task."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from training.data.catalog import dataset_info
from training.spec import SpecError
from webapp.datasets.services import DatasetUnavailable
from webapp.experiments import events, metric_store
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter
from webapp.experiments.sysmetrics import PREFIX as SYSTEM_PREFIX

logger = logging.getLogger(__name__)


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


def execute_training(experiment_id: int, worker: str) -> None:
    """Train one queued experiment and record the outcome on its row; never raises for a
    failed run (the reason goes to ``Experiment.error``). A job re-queued after its worker died
    resumes from the training state it last saved."""
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is None or not experiment.start(worker):
        logger.info("experiment %s is not queued any more; skipping", experiment_id)
        return
    try:
        spec = experiment.experiment_spec
    except SpecError as exc:
        experiment.finish(Experiment.Status.FAILED, error=f"invalid spec: {exc}",
                          lease=experiment.lease_epoch)
        return

    from training import resume

    workdir = run_workdir(experiment.pk)
    meta = {"experiment_id": experiment.pk, "git_revision": git_revision()}
    if experiment.restarts:
        # The points the dead worker logged after its last saved state are logged again.
        metric_store.truncate(experiment.pk, after_step=resume.saved_step(workdir),
                              keep=(SYSTEM_PREFIX,))
    if spec.run.devices > 1:
        from webapp.experiments.parallel import launch

        # torchrun's processes train; rank 0 reports through a reporter of its own. A
        # data-parallel run saves no resumable state: re-queued, it starts over.
        if run_job(experiment, lambda reporter: launch(experiment.pk, spec.run.devices,
                                                       workdir)):
            resume.discard(workdir)
        return

    def train(reporter: DjangoReporter) -> tuple[str, dict[str, Any]]:
        from training.loop import primary_metric, run

        reporter.status("starting", **placement(run_device(spec)))
        result = run(spec, reporter, workdir, device=run_device(spec), meta=meta,
                     checkpoint_interval=settings.FITBOARD_CHECKPOINT_INTERVAL,
                     sources=data_sources(spec, experiment),
                     min_batch=settings.FITBOARD_MIN_BATCH, resume=True)
        key, _ = primary_metric(dataset_info(spec.data.dataset).task)
        return result.status, _summary(result, key, meta)

    if run_job(experiment, train):
        resume.discard(workdir)


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
    import socket

    from webapp.experiments.sysmetrics import gpu_names

    where: dict[str, Any] = {"host": socket.gethostname(), "devices": devices}
    if device != "cpu":
        names = gpu_names()
        if names:
            where["gpus"] = [f"{index}: {name}" for index, name in names[:devices]]
    return where


def failure_reason(exc: Exception, experiment: Experiment) -> tuple[str, bool]:
    """What a job's failure says on its page, and whether its loss went non-finite. Errors the
    engine and the web app raise on purpose carry their own message; anything else is a crash,
    logged with its traceback."""
    import torch

    from training import checkpoints
    from training.loop import NonFiniteLossError, TrainingError

    if isinstance(exc, TrainingError | DatasetUnavailable | SpecError
                  | checkpoints.CheckpointError):
        return str(exc), isinstance(exc, NonFiniteLossError)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "out of GPU memory: lower the batch size or the model size", False
    logger.exception("%s %s crashed", experiment.kind, experiment.pk, exc_info=exc)
    return f"{type(exc).__name__}: {exc}", False


def run_job(experiment: Experiment, work: Callable[[DjangoReporter], tuple[str, dict[str, Any]]],
            *, always_diagnose: bool = True) -> bool:
    """Run a started job's ``work`` with its reporter and record the outcome on its row: the
    status and summary ``work`` returns, or the reason it failed; then the final verdict
    (``always_diagnose=False``: only when the job trained for an epoch or more) and compacted
    points. Never raises for a failed job. False when the job was taken back from this worker
    (its lease expired) and so is not this worker's to end."""
    from webapp.experiments.sysmetrics import SystemSampler

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
        status, summary = work(reporter)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the job's reason
        error, nonfinite_loss = failure_reason(exc, experiment)
    else:
        error = "cancelled by user" if status == Experiment.Status.CANCELLED else ""
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
    if reporter.lease_lost:
        logger.warning("%s %s was taken back from this worker; leaving it to its new one",
                       experiment.kind, experiment.pk)
        return False
    # The status event carries the row's progress: its last message number lets a viewer who
    # missed the final points notice and fetch them.
    experiment.refresh_from_db(fields=["progress"])
    diagnose = always_diagnose or bool(summary and summary.get("epochs"))
    verdict = _final_verdict(experiment, nonfinite_loss) if diagnose else None
    # A diverged run's metrics hold NaN or infinity, which JSON columns refuse.
    if not experiment.finish(status, error=error, summary=events.json_safe(summary),
                             verdict=events.json_safe(verdict), lease=experiment.lease_epoch):
        return False
    _compact_points(experiment.pk)
    return True


def _compact_points(experiment_id: int) -> None:
    """Fewer, larger metric rows for the ended run; a failure only leaves them as they were."""
    try:
        metric_store.compact(experiment_id)
    except Exception:  # noqa: BLE001
        logger.exception("could not compact the points of experiment %s", experiment_id)


def data_sources(spec: Any, experiment: Experiment) -> Any:
    """Where the engine finds this run's data: the data directory and the local files of the
    uploads it names (which must belong to the run's project)."""
    from training.data import DataSources
    from webapp.datasets.services import local_files

    return DataSources(
        data_dir=settings.FITBOARD_DATA_DIR,
        uploads=local_files([spec.data.dataset], experiment.project),
        allow_download=settings.FITBOARD_DATA_DOWNLOAD,
    )


def _final_verdict(experiment: Experiment, nonfinite_loss: bool) -> dict[str, Any] | None:
    """The ended run's verdict; a diagnostics error is logged, never the run's failure."""
    from webapp.experiments.diagnosis import final_verdict

    try:
        return final_verdict(experiment, nonfinite_loss)
    except Exception:  # noqa: BLE001
        logger.exception("could not diagnose experiment %s", experiment.pk)
        return None


def _summary(result: Any, key: str, meta: dict[str, Any]) -> dict[str, Any]:
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
