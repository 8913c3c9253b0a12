"""Training runs on this worker: the work behind the ``experiments.train`` task (the job's
lifecycle around it is ``jobs.run_job``)."""

from __future__ import annotations

import logging

from training.data.catalog import dataset_info
from training.spec import SpecError
from webapp.experiments import parallel
from webapp.experiments.jobs import (
    Outcome,
    forget_unsaved_points,
    job_meta,
    loop_options,
    placement,
    run_device,
    run_job,
    run_workdir,
    training_summary,
)
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter

__all__ = ["execute_training", "run_job"]  # run_job: the runner every kind shares, see jobs

logger = logging.getLogger(__name__)


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

    # torch loads only on a worker that trains (see jobs).
    from training import resume

    workdir = run_workdir(experiment.pk)
    if experiment.restarts:
        # The points the dead worker logged after its last saved state are logged again.
        forget_unsaved_points(experiment, after_step=resume.saved_step(workdir))
    if spec.run.devices > 1:
        # torchrun's processes train; rank 0 reports through a reporter of its own. A
        # data-parallel run saves no resumable state: re-queued, it starts over.
        def train_in_parallel(reporter: DjangoReporter) -> Outcome:
            return Outcome(*parallel.launch(experiment.pk, spec.run.devices, workdir))

        if run_job(experiment, train_in_parallel):
            resume.discard(workdir)
        return

    def train(reporter: DjangoReporter) -> Outcome:
        from training.loop import primary_metric, run

        meta = job_meta(experiment)
        reporter.status("starting", **placement(run_device(spec)))
        result = run(spec, reporter, workdir, **loop_options(spec, experiment, meta),
                     resume=True)
        key, _ = primary_metric(dataset_info(spec.data.dataset).task)
        return Outcome(result.status, training_summary(result, key, meta))

    if run_job(experiment, train):
        resume.discard(workdir)
