"""Celery tasks: take an id, call one function."""

from celery import shared_task
from django.conf import settings

from webapp.experiments.compression import execute_compression
from webapp.experiments.groups import execute_group
from webapp.experiments.runner import execute_training
from webapp.experiments.tuning import drive_study, execute_trial


@shared_task(name="experiments.train", bind=True, acks_late=True, ignore_result=True)
def train(self, experiment_id: int) -> None:  # type: ignore[no-untyped-def]
    execute_training(experiment_id, worker=self.request.hostname or "unknown")


@shared_task(name="experiments.tune", bind=True, acks_late=True, ignore_result=True)
def tune(self, study_id: int) -> None:  # type: ignore[no-untyped-def]
    """Start or advance a study; while it runs, look again every FITBOARD_STUDY_WATCHDOG_S
    seconds for trials whose worker died (their heartbeat stopped)."""
    if drive_study(study_id, worker=self.request.hostname or "unknown"):
        tune.apply_async((study_id,), countdown=settings.FITBOARD_STUDY_WATCHDOG)


@shared_task(name="experiments.trial", bind=True, acks_late=True, ignore_result=True)
def trial(self, trial_id: int) -> None:  # type: ignore[no-untyped-def]
    execute_trial(trial_id, worker=self.request.hostname or "unknown")


@shared_task(name="experiments.compress", bind=True, acks_late=True, ignore_result=True)
def compress(self, experiment_id: int) -> None:  # type: ignore[no-untyped-def]
    execute_compression(experiment_id, worker=self.request.hostname or "unknown")


@shared_task(name="experiments.repeat", bind=True, acks_late=True, ignore_result=True)
def repeat(self, group_id: int) -> None:  # type: ignore[no-untyped-def]
    execute_group(group_id, worker=self.request.hostname or "unknown")
