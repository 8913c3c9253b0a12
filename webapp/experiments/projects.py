"""Projects and their members: who may see which experiments, datasets and checkpoints.

Any member may add or remove members (a team's own dashboard, not a multi-tenant service); a
project always keeps at least one member, so it never becomes unreachable.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Prefetch

from webapp.experiments import events
from webapp.experiments.models import Project


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
    """A new project whose first member is its creator."""
    with transaction.atomic():
        project = Project.objects.create(name=name)
        project.members.add(user)
    return project


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
