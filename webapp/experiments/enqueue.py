"""Sending a job's Celery message by the task's name: the code that creates jobs (actions,
tuning, compression, housekeeping) never imports the task module, which imports the executors,
so that no executor imports the module that imports it. The app is Celery's current one
(``webapp.celery``'s, made when ``webapp`` is imported), not imported from there: the worker's
start-up hook in ``webapp.celery`` imports the housekeeping, which enqueues."""

from __future__ import annotations

from celery import current_app

TRAIN = "experiments.train"
TUNE = "experiments.tune"
TRIAL = "experiments.trial"
COMPRESS = "experiments.compress"
REPEAT = "experiments.repeat"  # a repeat's seeds, trained together (its group's id)


def send(task: str, job_id: int, queue: str | None = None, countdown: float | None = None) -> None:
    """Send ``task`` for the job ``job_id``: to ``queue``, or where ``CELERY_TASK_ROUTES``
    routes the task; ``countdown``: seconds before a worker may run it."""
    current_app.send_task(task, (job_id,), queue=queue, countdown=countdown)
