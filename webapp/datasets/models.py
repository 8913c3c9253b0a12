"""Uploaded datasets: a project's reusable data, stored under MEDIA_ROOT and named by id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Sum
from django.utils import timezone

from training.data.catalog import UPLOAD_PREFIX, DatasetInfo, is_upload
from webapp.projects import access, storage
from webapp.projects.models import Project


def _folder(instance: Dataset) -> str:
    # A random folder per dataset: file names never come from the user.
    if not instance.folder:
        instance.folder = uuid.uuid4().hex
    return f"datasets/{instance.folder}"


def source_path(instance: Dataset, filename: str) -> str:
    suffix = {"csv": ".csv", "images": ".zip"}.get(instance.kind, "")
    return f"{_folder(instance)}/source{suffix}"


def prepared_path(instance: Dataset, filename: str) -> str:
    return f"{_folder(instance)}/prepared.npz"


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def visible_to(self, user: Any) -> DatasetQuerySet:
        """Datasets the user sees (``access.visible``)."""
        return access.visible(self, user)


class Dataset(models.Model):
    """An uploaded (or Hugging Face) dataset, checked and cleaned once when it is created.

    ``prepared`` is the file the engine trains from; ``info`` its catalog facts
    (``DatasetInfo.to_dict()``); ``report`` what cleaning did, the class balance and samples.
    Specs refer to it as ``"upload:<id>"``.
    """

    class Kind(models.TextChoices):
        CSV = "csv", "CSV table"
        IMAGES = "images", "ZIP of images (class folders, or beside a labels CSV)"
        HF = "hf", "Hugging Face dataset (name or local path)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    folder = models.CharField(max_length=32, editable=False)
    source = models.FileField(upload_to=source_path, blank=True, max_length=300)
    prepared = models.FileField(upload_to=prepared_path, max_length=300)
    options = models.JSONField(default=dict)  # the form's choices: columns, task, cleaning
    info = models.JSONField(default=dict)
    report = models.JSONField(default=dict)
    size = models.BigIntegerField(default=0)  # bytes uploaded (0 for Hugging Face)
    stored_size = models.BigIntegerField(default=0)  # bytes kept: the upload and its prepared file
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def spec_name(self) -> str:
        """How a spec names this dataset."""
        return f"{UPLOAD_PREFIX}{self.pk}"

    @property
    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo.from_dict({**self.info, "name": self.spec_name})

    @property
    def latest_version(self) -> int:
        """The highest version number (1: never changed since the upload)."""
        numbers = [v.number for v in self.versions.all()]  # prefetched on list pages
        return max(numbers, default=1)


def upload_id(name: str) -> int | None:
    """The row id in an "upload:<id>" name, or None for other names."""
    return int(name[len(UPLOAD_PREFIX):]) if is_upload(name) else None


def upload_names(datasets: Iterable[str]) -> dict[str, str]:
    """``upload:<id>`` → the upload's name, for the uploads among ``datasets``."""
    ids = {pk for name in datasets if (pk := upload_id(name)) is not None}
    return {f"upload:{pk}": name
            for pk, name in Dataset.objects.filter(pk__in=ids).values_list("pk", "name")}


def resolve_info(name: str) -> DatasetInfo | None:
    """The catalog facts of an uploaded dataset, for ``training.data.catalog``."""
    pk = upload_id(name)
    if pk is None:
        return None
    # The dataset's info is its latest version's (rows change when rows are removed).
    info = Dataset.objects.filter(pk=pk).values_list("info", flat=True).first()
    return DatasetInfo.from_dict({**info, "name": name}) if info else None


def version_path(instance: DatasetVersion, filename: str) -> str:
    return f"{_folder(instance.dataset)}/v{instance.number}.npz"


class DatasetVersion(models.Model):
    """A later version of an uploaded data set (version 1 is the upload itself, the dataset's
    own ``prepared`` file). Immutable once written: a change makes the next number."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    prepared = models.FileField(upload_to=version_path, max_length=300)
    info = models.JSONField(default=dict)
    # Against the version it derives from: {"relabelled": [[row, old, new]], "removed": [rows],
    # "added": []}, rows named by their position in version 1.
    changes = models.JSONField(default=dict)
    note = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(default=0)  # bytes of its prepared file
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset", "number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"],
                                               name="one_number_per_dataset_version")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"


class LabelScan(models.Model):
    """A search for suspicious labels in one version of a data set, run by a worker
    (``datasets.find_labels``). ``start()`` and ``finish()`` own ``status``."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="label_scans")
    version = models.PositiveIntegerField()
    folds = models.PositiveSmallIntegerField(default=5)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.JSONField(default=dict)  # {"folds_done": k, "folds": n}
    # {"flagged": n, "rows": [{"row", "given", "suggested", "confidence", ...}], "confusion"}
    result = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def start(self) -> bool:
        """Queued → running, once (a second delivery of the task finds it started)."""
        started = LabelScan.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.RUNNING)
        if started:
            self.status = self.Status.RUNNING
        return bool(started)

    def finish(self, status: str, result: dict[str, Any] | None = None, error: str = "") -> None:
        """Running → done or failed, with the result or the reason."""
        now = timezone.now()
        LabelScan.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
            status=status, result=result or {}, error=error, finished_at=now)
        self.status, self.result, self.error, self.finished_at = status, result or {}, error, now


@storage.count_with
def stored_by(user: Any) -> int:
    """Bytes of the data sets and data set versions ``user`` made (the storage quota)."""
    # Each counted as at least a file (FITBOARD_STORAGE_BYTES_PER_FILE), as artifacts are.
    datasets = Dataset.objects.filter(created_by=user).aggregate(
        n=Sum(storage.files_bytes("stored_size")))["n"]
    versions = DatasetVersion.objects.filter(created_by=user).aggregate(
        n=Sum(storage.files_bytes("size")))["n"]
    return int(datasets or 0) + int(versions or 0)
