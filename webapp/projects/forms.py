"""The projects page's forms: a new project, a member to add, and a member's new role."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from webapp.projects.models import Membership, Project


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
    username = forms.CharField(
        max_length=150, label="Invite a member by username",
        help_text="an existing account; they become a member once they accept on their "
                  "Projects page; staff create accounts in the admin (/admin/)")

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


class MemberRoleForm(forms.Form):
    """A member's new role: a maintainer manages the members and cancels any run."""

    role = forms.ChoiceField(choices=Membership.Role.choices)
