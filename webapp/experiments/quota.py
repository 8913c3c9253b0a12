"""How many jobs one user may have waiting for or holding the workers at once
(FITBOARD_MAX_ACTIVE_JOBS_PER_USER).

One rule, kept by the actions that queue jobs (``actions``), inside the transaction that stores
them: ``reserve`` locks the user's row, counts what they have queued or running and what the
launch adds, and raises ``OverQuota`` (nothing is stored) past the limit. A study counts as
the trials it runs at once (its parallelism, or fewer when its budget is smaller): its trials
are its own doing, paced by it. Checked beforehand in each view, the limit was only a floor: a
user one job short of it queued a "check the best trials" of 10 × 10 runs, a study held 64
workers, and launches sent at once all passed the same count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from webapp.datasets import labels
from webapp.experiments.models import Experiment
from webapp.projects import storage

ACTIVE = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)


class OverQuota(Exception):
    """The launch would take its user past FITBOARD_MAX_ACTIVE_JOBS_PER_USER; the message
    says the limit and the count, for the form or the API's 409."""


def study_jobs(spec: Mapping[str, Any]) -> int:
    """The jobs a study (its spec as stored) runs at once: its parallelism, or its number of
    trials when that is smaller."""
    parallelism = int(spec.get("parallelism") or 1)
    trials = int(spec.get("n_trials") or 0)
    return max(1, min(parallelism, trials) if trials else parallelism)


def active_jobs(user: Any) -> int:
    """The user's queued and running jobs, each study as the trials it runs at once (its
    trials themselves left out), and their label scans of data sets."""
    mine = (Experiment.objects.filter(created_by=user, status__in=ACTIVE)
            .exclude(kind=Experiment.Kind.TRIAL))
    studies = mine.filter(kind=Experiment.Kind.TUNE).values_list("spec", flat=True)
    return (mine.exclude(kind=Experiment.Kind.TUNE).count() + sum(map(study_jobs, studies))
            + labels.live_scans(user))


def quota_problem(user: Any, adding: int = 1) -> str | None:
    """Why ``user`` may not queue ``adding`` more jobs now (the limit and their count), or
    None."""
    limit = settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER
    if not limit:
        return None
    active = active_jobs(user)
    if active + adding <= limit:
        return None
    advice = "Wait for one to end, or cancel one on the Queue page."
    if active >= limit:
        return f"You have {active} jobs queued or running; the limit is {limit} per user. {advice}"
    return (f"This would queue {adding} jobs beside the {active} you have queued or running; "
            f"the limit is {limit} per user. Queue fewer, or {advice[0].lower()}{advice[1:]}")


def reserve(user: Any, adding: int) -> None:
    """Call inside the transaction that stores ``adding`` new jobs of ``user``: OverQuota past
    the limit, or while the user is at their storage quota (FITBOARD_STORAGE_QUOTA_GB). The
    user's row stays locked until the transaction ends, so two launches of one
    user run one after the other, the second counting the first's jobs."""
    if user is None or not (settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER
                            or settings.FITBOARD_STORAGE_QUOTA_BYTES):
        return
    storage.lock_user(user)
    # A user at their storage quota launches nothing more: the jobs' checkpoints need room,
    # and a worker never refuses to save one (that would lose the run).
    problem = quota_problem(user, adding) or storage.problem(user, 0)
    if problem is not None:
        raise OverQuota(problem)
