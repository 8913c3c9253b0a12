"""Celery tasks: take an id, call one function."""

from celery import shared_task

from webapp.experiments.runner import execute_training


@shared_task(name="experiments.train", bind=True, acks_late=True, ignore_result=True)
def train(self, experiment_id: int) -> None:  # type: ignore[no-untyped-def]
    execute_training(experiment_id, worker=self.request.hostname or "unknown")
