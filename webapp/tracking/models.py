"""API tokens: how a script outside Fitboard (the mlflow client, later the native one) says
who it is. Only a digest of each token is stored; the token itself is shown once."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.projects.models import Project


class ApiToken(models.Model):
    """A user's token, limited to some of their projects and to reading or also writing.

    The token grants at most what its user may do on the pages: a project the user leaves is
    out of reach of every one of their tokens at once (the access check reads memberships on
    every request, see ``webapp.tracking.access``)."""

    class Scope(models.TextChoices):
        READ = "read", "read"
        WRITE = "write", "read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the token, to tell tokens apart on the settings page.
    prefix = models.CharField(max_length=16)
    # sha256 of the whole token (hex): a 256-bit random token needs no slow hash.
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    # All of the user's projects (those they join later too, and those the token creates),
    # or only ``projects``.
    all_projects = models.BooleanField(default=True)
    projects = models.ManyToManyField(Project, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def may_write(self) -> bool:
        return self.scope == self.Scope.WRITE
