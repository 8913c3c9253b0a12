"""The queue page's rows: what is queued and running on the workers, in the projects a user
can see (staff: every project), with where it runs, its place in line, how long it has run or
waited, and how long it will still hold its worker (a rough figure from its progress)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from webapp.experiments.models import Experiment
from webapp.projects.access import maintained_project_ids, may_cancel, overseen
from webapp.projects.models import Project

ACTIVE = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)


@dataclass(frozen=True)
class QueueRow:
    job: Experiment
    position: int | None  # 1 = next to start; None for a running job
    elapsed: timedelta  # running: since it first started; queued: since it was submitted
    remaining: timedelta | None  # running: the rest of the run, from its progress; else None
    may_cancel: bool

    @property
    def host(self) -> str:
        return str(self.job.progress.get("host") or "")

    @property
    def elapsed_text(self) -> str:
        return duration(self.elapsed)

    @property
    def remaining_text(self) -> str:
        return duration(self.remaining)


def queue_rows(user: Any, now: datetime | None = None,
               within: QuerySet[Project] | None = None) -> list[QueueRow]:
    """Running jobs, then queued ones in the order they start, of the projects ``user`` sees
    (and of ``within`` alone when given: an API token's chosen projects). A study's driver
    holds no worker and is left out (its trials are listed). Positions count every project's
    queued jobs, so a user sees how many wait ahead without seeing them."""
    now = now or timezone.now()
    jobs = Experiment.objects.filter(status__in=ACTIVE, deleted_at=None).exclude(
        kind=Experiment.Kind.TUNE)
    order = list(jobs.filter(status=Experiment.Status.QUEUED)
                 .order_by("enqueued_at", "pk").values_list("pk", flat=True))
    positions = {pk: index for index, pk in enumerate(order, start=1)}
    jobs = overseen(jobs, user)
    if within is not None:
        jobs = jobs.filter(project__in=within)
    maintained = maintained_project_ids(user)
    rows = []
    for job in jobs.select_related("project", "created_by", "parent"):
        running = job.status == Experiment.Status.RUNNING
        since = job.started_at if running and job.started_at else job.created_at
        elapsed = now - since
        rows.append(QueueRow(job, None if running else positions.get(job.pk), elapsed,
                             _remaining(job, elapsed) if running else None,
                             may_cancel(user, job, maintained)))
    rows.sort(key=lambda r: (r.position is not None, r.position or 0, r.job.started_at or now))
    return rows


def _remaining(job: Experiment, elapsed: timedelta) -> timedelta | None:
    """The rest of a running job at the pace of its steps so far; None before its first
    progress report (or for a job that reports none, e.g. a compression's first phase)."""
    step, total = job.progress.get("step") or 0, job.progress.get("total_steps") or 0
    if step <= 0 or total <= step:
        return None
    return elapsed * ((total - step) / step)


def duration(value: timedelta | None) -> str:
    """3 d 4 h, 2 h 5 min, 4 min 10 s, 12 s."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
