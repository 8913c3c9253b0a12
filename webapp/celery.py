"""The Celery app. Workers run training on the ``gpu`` queue, one job per process (-P solo)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("fitboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _start_housekeeping(**_: object) -> None:
    """Every worker looks after the jobs of the dead ones and the messages a broker lost."""
    from webapp.experiments.housekeeping import start_thread

    start_thread()
