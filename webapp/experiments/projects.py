"""Projects and their members: who may see which experiments, datasets and checkpoints.

Any member may add or remove members (a team's own dashboard, not a multi-tenant service); a
project always keeps at least one member, so it never becomes unreachable. Any member may
cancel their own jobs; the project's maintainers and staff may cancel any (``may_cancel``), so
that a job holding the only worker for days can always be stopped by someone responsible.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Prefetch

from webapp.experiments import events
from webapp.experiments.models import Experiment, Membership, Project


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=100)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the project a name.")
        if Project.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A project with this name exists.")
        return name


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user is called {username!r}.")
        if self.project.members.filter(pk=user.pk).exists():
            raise forms.ValidationError(f"{username} is already a member.")
        return user


def projects_of(user: Any) -> list[Project]:
    """The user's projects with their members and experiment counts, in a constant number of
    queries."""
    members = Prefetch("members", queryset=get_user_model().objects.order_by("username"))
    return list(
        Project.objects.filter(members=user)
        .annotate(experiment_count=Count("experiments", distinct=True))
        .prefetch_related(members)
        .order_by("name")
    )


def create_project(user: Any, name: str) -> Project:
    """A new project whose first member, and maintainer, is its creator."""
    with transaction.atomic():
        project = Project.objects.create(name=name)
        project.members.add(user, through_defaults={"role": Membership.Role.MAINTAINER})
    return project


def maintained_project_ids(user: Any) -> set[int]:
    """The projects whose jobs ``user`` may cancel whoever started them."""
    return set(Membership.objects.filter(user=user, role=Membership.Role.MAINTAINER)
               .values_list("project_id", flat=True))


def may_cancel(user: Any, experiment: Experiment,
               maintained: set[int] | None = None) -> bool:
    """Whether ``user`` may cancel ``experiment``: staff any job; a maintainer of its project
    any of the project's; a member their own. (``maintained``: the user's
    ``maintained_project_ids``, read once for a list of jobs.)"""
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    if maintained is None:
        maintained = maintained_project_ids(user)
    if experiment.project_id in maintained:
        return True
    return bool(experiment.created_by_id == user.pk
                and Membership.objects.filter(project_id=experiment.project_id,
                                              user=user).exists())


def remove_member(project: Project, user: Any) -> bool:
    """Remove ``user``; False (and nothing changes) when they are its last member. Their open
    sockets check again what they may see, so they stop hearing of the project's runs."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if not locked.members.filter(pk=user.pk).exists() or locked.members.count() <= 1:
            return False
        locked.members.remove(user)
        transaction.on_commit(lambda: events.membership_changed(user.pk))
    return True
