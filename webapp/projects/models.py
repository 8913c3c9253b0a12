"""Projects and their members. The tables keep the names they had when these models lived in
the experiments app (``db_table``), so moving them here moved no rows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Project(models.Model):
    """A group of experiments and datasets; only its members see them (``access``)."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="projects",
                                     through="Membership")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "experiments_project"

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in a project. Every member sees the project's runs and cancels their
    own; a maintainer (the project's creator, and whom maintainers name) cancels any of them.
    The table is the one the plain many-to-many field used (experiments migration 0005 kept
    its rows)."""

    class Role(models.TextChoices):
        MEMBER = "member"
        MAINTAINER = "maintainer"

    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        db_table = "experiments_project_members"
        unique_together = [("project", "user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Invitation(models.Model):
    """A user asked into a project by one of its maintainers: a member once they accept it
    (``actions.answer_invitation``), not before. Any user maintains projects of their own, and
    a user added without being asked had their scripts log into a project someone else named
    ahead of them (``set_experiment("alice-mnist")`` finds it by name), whose maintainer then
    read their runs."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="project_invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        unique_together = [("project", "user")]

    def __str__(self) -> str:
        return f"{self.user} invited to {self.project}"
