"""Projects, experiments (jobs that own their status), metric chunks and checkpoints."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from training.spec import ExperimentSpec


class Project(models.Model):
    """A group of experiments; only its members see them."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="projects")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A label users put on runs to find them again (``Experiment.tags``)."""

    name = models.CharField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def visible_to(self, user: Any) -> ExperimentQuerySet:
        """Experiments in projects the user is a member of (nothing for anonymous users)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(project__members=user)


class Experiment(models.Model):
    """One job: a training run (later also tuning studies, trials and compressions).

    Status changes go only through ``start``, ``finish`` and ``request_cancel``; each is one
    conditional UPDATE, so a duplicate delivery or a race with cancel cannot run a job twice or
    revive a finished one. Events to browsers go out after the transaction commits.
    """

    class Kind(models.TextChoices):
        TRAIN = "train"
        TUNE = "tune"
        TRIAL = "trial"
        COMPRESS = "compress"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRAIN)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    spec = models.JSONField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    # Latest progress from the reporter: epoch, epochs, step, total_steps, device, parameters.
    progress = models.JSONField(default=dict)
    # Outcome: best/final metrics, best epoch, versions, git revision.
    summary = models.JSONField(default=dict)
    best_metric_name = models.CharField(max_length=64, blank=True)
    best_metric_value = models.FloatField(null=True, blank=True)
    # training.diagnostics.Verdict.to_dict() of the ended run (the live one is in progress);
    # its kind is a column of its own so that lists can filter on it.
    verdict = models.JSONField(default=dict)
    verdict_kind = models.CharField(max_length=16, blank=True, db_index=True)
    # For a run made by "Apply remedy": the remedy (key, title, patch) applied to ``parent``.
    remedy = models.JSONField(default=dict)
    # Set by users on the run page (``actions.annotate_experiment``); the list filters on tags.
    tags = models.ManyToManyField(Tag, blank=True, related_name="experiments")
    notes = models.TextField(blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def experiment_spec(self) -> ExperimentSpec:
        # A compression job also stores the job itself under "compression" (its own spec).
        return ExperimentSpec.from_dict({k: v for k, v in self.spec.items() if k != "compression"})

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    def _transition(self, allowed_from: tuple[str, ...], **changes: Any) -> bool:
        """Apply ``changes`` only if the row's status is still one of ``allowed_from``."""
        with transaction.atomic():
            updated = Experiment.objects.filter(pk=self.pk, status__in=allowed_from).update(
                **changes
            )
            if updated:
                for field, value in changes.items():
                    setattr(self, field, value)
                from webapp.experiments import events

                transaction.on_commit(lambda: events.publish_status(self))
        return bool(updated)

    def start(self, worker: str) -> bool:
        """Queued → running. False when the job was cancelled or already taken."""
        return self._transition(
            (self.Status.QUEUED,), status=self.Status.RUNNING, started_at=timezone.now(),
            worker=worker,
        )

    def finish(self, status: str, error: str = "", summary: dict[str, Any] | None = None,
               verdict: dict[str, Any] | None = None) -> bool:
        """Running (or queued, for cancel) → a terminal status, with the reason on failure."""
        changes: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "error": error}
        if summary is not None:
            changes["summary"] = summary
            best = summary.get("best_metric")
            if best:
                changes["best_metric_name"], changes["best_metric_value"] = best
        if verdict:
            changes["verdict"], changes["verdict_kind"] = verdict, verdict["kind"]
        return self._transition((self.Status.QUEUED, self.Status.RUNNING), **changes)

    def request_cancel(self) -> bool:
        """Cancel: a queued job ends at once; a running one is flagged and its loop stops at
        the next step."""
        if self._transition(
            (self.Status.QUEUED,), status=self.Status.CANCELLED, finished_at=timezone.now(),
            error="cancelled by user",
        ):
            return True
        return bool(
            Experiment.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
                cancel_requested=True
            )
        )


class MetricChunk(models.Model):
    """A batch of points of one metric, stored as packed arrays (see ``metric_store``)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="chunks")
    key = models.CharField(max_length=64)
    first_step = models.BigIntegerField()
    last_step = models.BigIntegerField()
    count = models.PositiveIntegerField()
    steps = models.BinaryField()  # int64 little-endian
    values = models.BinaryField()  # float64 little-endian
    times = models.BinaryField()  # float64 seconds since the epoch
    # The min and max point of each block of the batch (metric_store.SUMMARY_BLOCK points), as
    # int64 steps, float64 values and float64 times in one blob; empty for rows written before.
    summary = models.BinaryField(default=b"")

    class Meta:
        indexes = [models.Index(fields=["experiment", "key", "first_step"])]


class Checkpoint(models.Model):
    """A checkpoint archive of an experiment ("best" or "last"), stored under MEDIA_ROOT."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="checkpoints"
    )
    tag = models.CharField(max_length=32)
    path = models.CharField(max_length=500)  # relative to MEDIA_ROOT; never from user input
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    metrics = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "tag"], name="one_checkpoint_per_tag")
        ]
