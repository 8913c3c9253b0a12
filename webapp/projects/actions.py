"""Projects and their members: creating projects, adding and removing members.

Any member may add or remove members (a team's own dashboard, not a multi-tenant service); a
project always keeps at least one member, so it never becomes unreachable. Who may see and
cancel what is ``access``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Prefetch, Q

from webapp.projects import signals
from webapp.projects.access import projects_visible_to
from webapp.projects.models import Membership, Project


def projects_of(user: Any) -> list[Project]:
    """The user's projects with their members and experiment counts, in a constant number of
    queries."""
    members = Prefetch("members", queryset=get_user_model().objects.order_by("username"))
    return list(
        projects_visible_to(user)
        # Runs deleted through the tracking API are not counted (nor listed).
        .annotate(experiment_count=Count("experiments", distinct=True,
                                         filter=Q(experiments__deleted_at=None)))
        .prefetch_related(members)
        .order_by("name")
    )


def create_project(user: Any, name: str) -> Project:
    """A new project whose first member, and maintainer, is its creator."""
    with transaction.atomic():
        project = Project.objects.create(name=name)
        add_member(project, user, Membership.Role.MAINTAINER)
    return project


def rename_project(project: Project, name: str) -> None:
    """Give ``project`` a new name (the caller checked it is free)."""
    Project.objects.filter(pk=project.pk).update(name=name)
    project.name = name


def add_member(project: Project, user: Any, role: str = Membership.Role.MEMBER) -> None:
    """Make ``user`` a member of ``project`` with ``role`` (nothing changes for a member);
    their open run list starts hearing of the project's runs."""
    with transaction.atomic():
        project.members.add(user, through_defaults={"role": role})
        transaction.on_commit(lambda: _tell_sockets(user.pk))


def remove_member(project: Project, user: Any) -> bool:
    """Remove ``user``; False (and nothing changes) when they are its last member. Their open
    sockets check again what they may see, so they stop hearing of the project's runs."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if not locked.members.filter(pk=user.pk).exists() or locked.members.count() <= 1:
            return False
        locked.members.remove(user)
        transaction.on_commit(lambda: _tell_sockets(user.pk))
    return True


def _tell_sockets(user_id: int) -> None:
    signals.membership_changed.send(sender=Project, user_id=user_id)
