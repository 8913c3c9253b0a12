"""API tokens: how a script outside Fitboard (the mlflow client, later the native one) says
who it is. Only a digest of each token is stored; the token itself is shown once."""

from __future__ import annotations

import posixpath
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Sum
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from webapp.experiments.files import listing
from webapp.experiments.models import Experiment, StoredArtifact
from webapp.projects import storage
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


class ExperimentTag(models.Model):
    """A tag a script set on its MLflow experiment (``set_experiment_tag``): a project's,
    counted in the storage quota of the user who set it last (``text_stored_by``)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="mlflow_tags")
    key = models.CharField(max_length=250)
    value = models.TextField(blank=True)
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                               related_name="+")

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["project", "key"],
                                               name="unique_experiment_tag")]


class LoggedModel(models.Model):
    """A model a script logged with MLflow 3 (``mlflow.<flavor>.log_model``): its name, params
    and tags here, its files in storage under ``artifacts_root``. Its MLflow id is
    ``model_id`` ("m-<pk>")."""

    class Status(models.IntegerChoices):  # MLflow's LoggedModelStatus numbers
        PENDING = 1
        READY = 2
        UPLOAD_FAILED = 3

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    source_run = models.ForeignKey("experiments.Experiment", null=True, blank=True,
                                   on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=250)
    model_type = models.CharField(max_length=100, blank=True)
    status = models.PositiveSmallIntegerField(choices=Status.choices, default=Status.PENDING)
    status_message = models.TextField(blank=True)
    params = models.JSONField(default=dict)
    tags = models.JSONField(default=dict)
    # The metric points a script linked to the model (``log_metric(..., model_id=...)``), as
    # MLflow's protocol writes a Metric: one per name, step and data set, the last written.
    metrics = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_id})"

    @property
    def model_id(self) -> str:
        return f"m-{self.pk}"

    @property
    def artifacts_root(self) -> str:
        """Where its files live in the default storage."""
        return f"external/models/{self.pk}/artifacts"


@receiver(post_delete, sender=LoggedModel, dispatch_uid="logged-model-files")
def _delete_files(sender: Any, instance: LoggedModel, **kwargs: Any) -> None:
    """A logged model's row was deleted (its run was, from the run's page: the foreign key
    cascades): its files' rows go in the same transaction, freeing their place in the quota,
    and the files once it commits, or they would fill their uploader's quota for ever."""
    root = instance.artifacts_root
    StoredArtifact.objects.filter(name__startswith=f"{root}/").delete()
    transaction.on_commit(lambda: [default_storage.delete(posixpath.join(root, inner))
                                   for inner, _ in listing(root)])


@storage.count_with
def text_stored_by(user: Any) -> int:
    """Bytes of the text ``user``'s scripts logged, as the database holds it (the storage
    quota): their external runs' specs (params, tags, dataset inputs, model outputs) and
    progress (its table of up to 1,000 metric names, about 350 kB), their logged models'
    params, tags and linked metrics, and the experiment tags they set. A script could
    otherwise add 2 MB a run, 1,000 runs an hour, or 5 kB a tag without end, past any quota.
    Summed in SQL, without reading the text (``storage.StoredSize``)."""
    runs = Experiment.objects.filter(created_by=user, kind=Experiment.Kind.EXTERNAL).aggregate(
        n=Sum(storage.StoredSize("spec") + storage.StoredSize("progress")))["n"]
    logged = LoggedModel.objects.filter(created_by=user).aggregate(
        n=Sum(storage.StoredSize("params") + storage.StoredSize("tags")
              + storage.StoredSize("metrics")))["n"]
    tags = ExperimentTag.objects.filter(set_by=user).aggregate(
        n=Sum(storage.StoredSize("key") + storage.StoredSize("value")))["n"]
    return int(runs or 0) + int(logged or 0) + int(tags or 0)
