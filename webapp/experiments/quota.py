"""How many jobs one user may have waiting for or holding the workers at once
(FITBOARD_MAX_ACTIVE_JOBS_PER_USER), checked when a training, study or compression is launched.
A study counts once: its trials are its own doing, paced by its parallelism."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from webapp.experiments.models import Experiment


def active_jobs(user: Any) -> int:
    """The user's queued and running jobs (trials left out: their study counts)."""
    return (Experiment.objects.filter(created_by=user, status__in=(
        Experiment.Status.QUEUED, Experiment.Status.RUNNING))
        .exclude(kind=Experiment.Kind.TRIAL).count())


def quota_problem(user: Any) -> str | None:
    """Why ``user`` may not launch one more job now (the limit and their count), or None."""
    limit = settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER
    if not limit:
        return None
    active = active_jobs(user)
    if active < limit:
        return None
    return (f"You have {active} jobs queued or running; the limit is {limit} per user. Wait "
            "for one to end, or cancel one on the Queue page.")


def within_quota(form: forms.Form, user: Any) -> bool:
    """True when ``user`` may launch one more job; otherwise the form gets a non-field error
    naming the limit and the count (its fields keep what was typed)."""
    problem = quota_problem(user)
    if problem is None:
        return True
    form.add_error(None, problem)
    return False
