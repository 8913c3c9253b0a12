"""The Celery app. Workers run training on the ``gpu`` queue, one job per process (-P solo)."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready

from webapp import hardware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("fitboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _limit_memory(**_: object) -> None:
    """A job that allocates more than the worker's share fails with the reason; the worker
    lives on (FITBOARD_WORKER_MEMORY_GB; -P solo: jobs run in this very process)."""
    from django.conf import settings

    if settings.FITBOARD_WORKER_MEMORY_GB:
        hardware.limit_memory(settings.FITBOARD_WORKER_MEMORY_GB)


@worker_ready.connect
def _start_housekeeping(**_: object) -> None:
    """Every worker looks after the jobs of the dead ones and the messages a broker lost."""
    from webapp.experiments.housekeeping import start_thread

    start_thread()
