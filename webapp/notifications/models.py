"""What users asked to be told (e-mail choices, project webhooks), what happened
(``Notification``) and each attempt to deliver it to a webhook (``Delivery``)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.experiments.models import Experiment
from webapp.projects.models import Project


class Event(models.TextChoices):
    """The events one may subscribe to; the value is the payload's ``event``."""

    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_OVERFITTING = "run.overfitting"
    RUN_DIVERGING = "run.diverging"
    STUDY_ENDED = "study.ended"


# What the settings page calls each event.
EVENT_CHOICES = [
    (Event.RUN_SUCCEEDED, "a run succeeded"),
    (Event.RUN_FAILED, "a run failed"),
    (Event.RUN_OVERFITTING, "a run's verdict became overfitting"),
    (Event.RUN_DIVERGING, "a run's verdict became diverging"),
    (Event.STUDY_ENDED, "a tuning study ended"),
]


class EmailSubscription(models.Model):
    """The events of one project that one of its members wants by e-mail. Only members get
    mail: a user who leaves the project gets none, whatever this row says."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    events = models.JSONField(default=list)  # Event values

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"],
                                               name="one_email_subscription_per_project")]

    def __str__(self) -> str:
        return f"{self.user} on {self.project}: {', '.join(self.events)}"


class Webhook(models.Model):
    """A URL a project's maintainers want its events POSTed to, signed with ``secret``. The
    secret is kept (it signs every payload) but shown only once, when the webhook is made."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list)  # Event values
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.url} ({self.project})"


class Notification(models.Model):
    """One event that someone subscribed to, with the payload every webhook receives (stored,
    so that a retry sends the same bytes under the same signature)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(Experiment, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # The run's creator, kept here for FITBOARD_NOTIFY_MAX_PER_HOUR: the run may be deleted.
    caused_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                  related_name="+")
    event = models.CharField(max_length=32, choices=EVENT_CHOICES)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]


class Delivery(models.Model):
    """One attempt to POST a notification to a webhook: its HTTP status or error, and whether
    another attempt follows (``will_retry``)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE,
                                     related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()  # 1 for the first
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)
    will_retry = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-created_at"])]
