"""Who may see and cancel what, written once: every view, form, consumer and list asks here.

A user sees a project when they are one of its members, and everything in it (experiments,
datasets, checkpoints) with it; anonymous users see nothing. Staff see no more projects than
anyone (their own), but the queue and cancel reach every project's jobs (``overseen``), so
that a job holding the only worker for days can always be stopped by someone responsible.
Any member may cancel and change their own jobs; the project's maintainers and staff may
cancel and change any (``may_cancel``, ``may_change``): a member reads all of the project's
work but does not rename, tag, annotate, delete, restore, end or log into another member's run,
nor overwrite its artifacts or logged models, nor relabel or delete their data sets. Only the
maintainers and staff add and remove members and change their roles (``may_manage_members``):
otherwise any member could remove the maintainers and take the project over.

This module sits below the experiments and datasets apps and imports neither: what it needs
of a job (its project and creator) is the ``Job`` protocol, and lists are filtered through
their ``project`` foreign key.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from django.db.models import Model, QuerySet

from webapp.projects.models import Membership, Project

M = TypeVar("M", bound=Model)


class Job(Protocol):
    """What ``may_cancel`` and ``may_change`` read of an experiment (or a logged model)."""

    project_id: int
    created_by_id: int | None


def projects_visible_to(user: Any) -> QuerySet[Project]:
    """The projects ``user`` is a member of (none for anonymous users). The one definition of
    the rule: everything below filters through it."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(members=user)


def may_see_project(user: Any, project: Project | int) -> bool:
    """Whether ``user`` sees ``project`` (a row or its id)."""
    pk = project.pk if isinstance(project, Project) else project
    return projects_visible_to(user).filter(pk=pk).exists()


def visible(queryset: QuerySet[M], user: Any) -> QuerySet[M]:
    """The rows of ``queryset`` (of a model with a ``project`` foreign key: experiments,
    datasets) that ``user`` sees: those of their projects, in one query."""
    return queryset.filter(project__in=projects_visible_to(user))


def overseen(queryset: QuerySet[M], user: Any) -> QuerySet[M]:
    """The jobs of ``queryset`` whose place in the queue ``user`` sees and may ask to cancel:
    staff every project's, others those of their own projects."""
    return queryset if user.is_authenticated and user.is_staff else visible(queryset, user)


def maintained_project_ids(user: Any) -> set[int]:
    """The projects whose jobs ``user`` may cancel whoever started them."""
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(user=user, role=Membership.Role.MAINTAINER)
               .values_list("project_id", flat=True))


def may_manage_members(user: Any, project: Project | int) -> bool:
    """Whether ``user`` adds and removes ``project``'s members and changes their roles: its
    maintainers and staff. (Any member may leave; ``actions.remove_member`` says so.)"""
    if not user.is_authenticated:
        return False
    pk = project.pk if isinstance(project, Project) else project
    return bool(user.is_staff) or Membership.objects.filter(
        user=user, project_id=pk, role=Membership.Role.MAINTAINER).exists()


def may_cancel(user: Any, job: Job, maintained: set[int] | None = None) -> bool:
    """Whether ``user`` may cancel ``job``: staff any job; a maintainer of its project any of
    the project's; a member their own. (``maintained``: the user's
    ``maintained_project_ids``, read once for a list of jobs.)"""
    return may_change(user, job, maintained)


def may_change(user: Any, job: Job, maintained: set[int] | None = None,
               seen: bool = False) -> bool:
    """Whether ``user`` may change what ``job`` (a run, or a logged model) records: its name,
    tags, notes, params, metrics, artifacts, end and deletion. The rule of ``may_cancel``:
    staff any; a maintainer of its project any of the project's; a member their own.
    ``seen``: the caller read ``job`` through ``visible`` for this user, so its creator needs
    no second look (a script logging into its own run asks on every request)."""
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    if job.created_by_id == user.pk and (seen or may_see_project(user, job.project_id)):
        return True
    if maintained is None:
        maintained = maintained_project_ids(user)
    return job.project_id in maintained
