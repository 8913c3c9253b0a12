"""Sending this app's Celery messages by task name (the task module imports the delivery code,
which sends them), on ``FITBOARD_NOTIFY_QUEUE``."""

from __future__ import annotations

from celery import current_app
from django.conf import settings

DELIVER = "notifications.deliver"
EMAIL = "notifications.email"


def send(task: str, *args: int, countdown: float | None = None) -> None:
    current_app.send_task(task, args, queue=settings.FITBOARD_NOTIFY_QUEUE, countdown=countdown)
