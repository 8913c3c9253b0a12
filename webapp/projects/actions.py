"""Projects and their members: creating projects, adding and removing members, changing roles.

Only a project's maintainers (and staff) add members, remove others and change roles
(``access.may_manage_members``); a plain member may only leave. A user added is invited, and
a member once they accept. A project always keeps at least one maintainer, so nobody can be
locked out of managing it. Each change takes the
project's row lock first and checks under it, so two requests at once cannot both pass a
check that only one of them may (two maintainers each demoting the other). The pages and the
REST API both call these functions; who may see and cancel what is ``access``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Prefetch, Q
from django.http import Http404

from webapp.projects import access, signals, storage
from webapp.projects.models import Invitation, Membership, Project


class NotAllowed(PermissionDenied):
    """The user may not change this project's members (a plain member acting on others). A
    ``PermissionDenied``: the pages and the API answer 403 with its reason."""


class NotAMember(Http404):
    """The user acted on is not (or no longer) a member of the project: a 404 on the pages and
    in the API, as for any user outside it."""


class TooManyProjects(Exception):
    """The user created FITBOARD_MAX_PROJECTS_PER_HOUR projects in the last hour; nothing was
    created. The message says so, for the form and the APIs."""


class WouldOrphan(Exception):
    """The change would leave the project without a maintainer, or without members; nothing
    changed. The message says why, for the page and the API alike."""


LAST_MAINTAINER = ("A project keeps at least one maintainer: make another member a "
                   "maintainer first.")
LAST_MEMBER = "A project keeps at least one member."
NOT_A_MAINTAINER = ("Only the project's maintainers add and remove members and change their "
                    "roles; a member may only leave.")


def has_runs(project: Project) -> bool:
    """Whether the project holds a run (deleted ones aside, as in ``projects_of``'s count)."""
    return project.experiments.filter(deleted_at=None).exists()  # type: ignore[attr-defined]


def projects_of(user: Any) -> list[Project]:
    """The user's projects with their members and experiment counts, in a constant number of
    queries."""
    members = Prefetch("members", queryset=get_user_model().objects.order_by("username"))
    return list(
        access.projects_visible_to(user)
        # Runs deleted through the tracking API are not counted (nor listed).
        .annotate(experiment_count=Count("experiments", distinct=True,
                                         filter=Q(experiments__deleted_at=None)))
        .prefetch_related(members)
        .order_by("name")
    )


def memberships_of(project: Project) -> list[Membership]:
    """The project's members with their roles, by username."""
    return list(Membership.objects.filter(project=project).select_related("user")
                .order_by("user__username"))


def member_of(project: Project, user_id: int) -> Any:
    """The member ``user_id`` of ``project``; NotAMember (a 404) for anyone else."""
    member = get_user_model().objects.filter(pk=user_id, projects=project).first()
    if member is None:
        raise NotAMember("no such member of this project")
    return member


def create_project(user: Any, name: str) -> Project:
    """A new project whose first member, and maintainer, is its creator; TooManyProjects past
    FITBOARD_MAX_PROJECTS_PER_HOUR."""
    with transaction.atomic():
        _check_project_rate(user)
        project = Project.objects.create(name=name)
        enrol(project, user, Membership.Role.MAINTAINER)
    return project


def _check_project_rate(user: Any) -> None:
    """TooManyProjects when ``user`` created FITBOARD_MAX_PROJECTS_PER_HOUR projects in the
    last hour (those made in it that they maintain), counted under their row lock (the
    quotas'), so creations sent at once cannot all pass one count."""
    limit = settings.FITBOARD_MAX_PROJECTS_PER_HOUR
    if not limit:
        return
    made = storage.made_in_the_last_hour(
        user, Membership.objects.filter(user=user, role=Membership.Role.MAINTAINER),
        "project__created_at")
    if made >= limit:
        raise TooManyProjects(f"you created {made:,} projects in the last hour; the limit is "
                              f"{limit:,} (FITBOARD_MAX_PROJECTS_PER_HOUR): wait, or use one "
                              "of your projects")


def rename_project(project: Project, name: str) -> None:
    """Give ``project`` a new name (the caller checked it is free)."""
    Project.objects.filter(pk=project.pk).update(name=name)
    project.name = name


def enrol(project: Project, user: Any, role: str) -> None:
    """Make ``user`` a member of ``project`` with ``role`` (nothing changes for a member),
    asking nobody's leave: the site's own setup (a new project's creator, the first admin).
    A user's request goes through ``add_member``. Their open run list starts hearing of the
    project's runs."""
    with transaction.atomic():
        project.members.add(user, through_defaults={"role": role})
        transaction.on_commit(lambda: _tell_sockets(user.pk))


def add_member(user: Any, project: Project, member: Any) -> None:
    """``user`` invites ``member`` into ``project``: a plain member once they accept
    (``answer_invitation``; nothing changes for a member already, or one invited already).
    NotAllowed unless ``user`` maintains the project or is staff."""
    with transaction.atomic():
        _lock(project)
        _check_manages(user, project)
        if not Membership.objects.filter(project=project, user_id=member.pk).exists():
            Invitation.objects.get_or_create(project=project, user=member,
                                             defaults={"invited_by": user})


def invitations_of(user: Any) -> list[Invitation]:
    """The projects ``user`` is invited into and has not answered, oldest first."""
    return list(Invitation.objects.filter(user_id=user.pk).select_related(
        "project", "invited_by").order_by("created_at", "pk"))


def projectless(user: Any) -> list[Invitation] | None:
    """None when ``user`` sees a project; else their open invitations (maybe none): what the
    run list, New experiment and Upload dataset say instead of an empty project list."""
    if access.projects_visible_to(user).exists():
        return None
    return invitations_of(user)


def invited_to(project: Project) -> list[Invitation]:
    """The users invited into ``project`` who have not answered, by username."""
    return list(Invitation.objects.filter(project=project).select_related("user")
                .order_by("user__username"))


def invitation_of(user: Any, project_id: int, lock: bool = False) -> Invitation | None:
    """``user``'s invitation into project ``project_id``, if they have one (``lock``: read
    under its row lock, with its project, in the caller's transaction)."""
    if not 1 <= project_id < 2**63:  # no row has it, and SQLite's driver cannot compare it
        return None
    rows = Invitation.objects.filter(user_id=user.pk, project_id=project_id)
    if lock:
        rows = rows.select_for_update().select_related("project")
    return rows.first()


def answer_invitation(user: Any, project_id: int, accept: bool) -> Project:
    """``user`` joins the project they were invited into as a plain member (``accept``), or
    declines; either way the invitation is gone. NotAMember (a 404) without one."""
    with transaction.atomic():
        invitation = invitation_of(user, project_id, lock=True)  # one answer counts
        if invitation is None:
            raise NotAMember("no invitation into this project")
        invitation.delete()
        if accept:
            enrol(invitation.project, user, Membership.Role.MEMBER)
    return invitation.project


def remove_member(user: Any, project: Project, member: Any) -> None:
    """``user`` removes ``member`` from ``project``: a maintainer (or staff) anyone, a member
    only themselves. NotAllowed, NotAMember, or WouldOrphan for the last maintainer (or
    member), and nothing changes. Their open sockets check again what they may see, so they
    stop hearing of the project's runs."""
    with transaction.atomic():
        _lock(project)
        membership = _membership(project, member)
        if member.pk != user.pk:
            _check_manages(user, project)
        _check_keeps_a_maintainer(project, membership)
        if Membership.objects.filter(project=project).count() <= 1:
            raise WouldOrphan(LAST_MEMBER)
        membership.delete()  # its sockets are told by ``events.membership_deleted``


def set_role(user: Any, project: Project, member: Any, role: str) -> None:
    """``user`` makes ``member`` a maintainer or a plain member of ``project`` (maintainers
    and staff only: NotAllowed otherwise). Demoting the last maintainer is WouldOrphan;
    NotAMember for a user outside the project; a role that is no ``Membership.Role`` is a
    ValueError. Nothing changes when any is raised."""
    if role not in Membership.Role.values:
        raise ValueError(f"{role!r} is not a role")
    with transaction.atomic():
        _lock(project)
        membership = _membership(project, member)
        _check_manages(user, project)
        if membership.role == role:
            return
        if role != Membership.Role.MAINTAINER:
            _check_keeps_a_maintainer(project, membership)
        membership.role = role
        membership.save(update_fields=["role"])


def _lock(project: Project) -> None:
    """Hold the project's row until the transaction ends: membership changes of one project
    run one at a time, each checking what the one before it left."""
    Project.objects.select_for_update().get(pk=project.pk)


def _membership(project: Project, member: Any) -> Membership:
    membership = Membership.objects.filter(project=project, user_id=member.pk).first()
    if membership is None:
        raise NotAMember(f"{member} is not a member of {project}")
    return membership


def _check_manages(user: Any, project: Project) -> None:
    if not access.may_manage_members(user, project):
        raise NotAllowed(NOT_A_MAINTAINER)


def _check_keeps_a_maintainer(project: Project, leaving: Membership) -> None:
    """WouldOrphan when ``leaving`` (removed, or made a plain member) is the project's last
    maintainer."""
    if leaving.role != Membership.Role.MAINTAINER:
        return
    others = Membership.objects.filter(project=project, role=Membership.Role.MAINTAINER
                                       ).exclude(pk=leaving.pk)
    if not others.exists():
        raise WouldOrphan(LAST_MAINTAINER)


def _tell_sockets(user_id: int) -> None:
    signals.membership_changed.send(sender=Project, user_id=user_id)
