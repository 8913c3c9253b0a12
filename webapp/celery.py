"""The Celery app. Workers run training on the ``gpu`` queue, one job per process (-P solo)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("fitboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
