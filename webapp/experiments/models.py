"""Experiments (jobs that own their status), metric chunks and checkpoints."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.text import slugify

from training.spec import ExperimentSpec
from webapp.experiments import events, signals
from webapp.projects import access, storage
from webapp.projects.models import Project

# The largest primary key a bigint column holds: a larger number from a URL or query string
# cannot name a row, and SQLite's driver raises OverflowError on it inside an ``__in`` lookup.
MAX_PK = 2**63 - 1


def parse_pk(text: str) -> int | None:
    """A row id typed by a user: ASCII digits naming 1 to MAX_PK, else None. (``str.isdigit``
    also accepts "²" and other digits that ``int`` refuses, and ``int`` refuses more than
    4,300 digits.)"""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(MAX_PK)):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_PK else None


NAME_LENGTH = 200  # characters in a run's or a group's name (a varchar on PostgreSQL)


def derived_name(base: str, suffix: str) -> str:
    """The name of a row made from another: ``base`` then ``suffix`` (" · seed 3", " ×5"),
    the base cut so that the whole fits NAME_LENGTH. The suffix is kept whole: it is what
    tells a run's seeds, trials and remedies apart."""
    return base[:max(0, NAME_LENGTH - len(suffix))] + suffix


class Tag(models.Model):
    """A label users put on runs to find them again (``Experiment.tags``)."""

    name = models.CharField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def visible_to(self, user: Any, deleted: bool = False) -> ExperimentQuerySet:
        """Experiments the user sees (``access.visible``); those deleted through the tracking
        API only with ``deleted`` (the API lists and restores them, the pages never show
        them)."""
        rows = self if deleted else self.filter(deleted_at=None)
        return access.visible(rows, user)


class Experiment(models.Model):
    """One job: a training run (later also tuning studies, trials and compressions).

    Status changes go only through ``start``, ``finish``, ``request_cancel`` and
    ``take_back``; each is one conditional UPDATE, so a duplicate delivery or a race with cancel
    cannot run a job twice or revive a finished one. Events to browsers go out after the
    transaction commits.

    A running job is leased to its worker: ``start`` raises ``lease_epoch`` and the worker's
    reporter renews ``heartbeat_at`` while it holds it (``renew_lease``). A worker that stops
    beating (killed, its machine gone) loses the job to ``take_back``, which raises the epoch
    again and queues the job to resume from its last saved state; every write of the old worker
    (points, progress, its end) is conditional on the epoch it started with, so a worker that
    was only slow finds out and stops instead of running the job a second time.
    """

    class Kind(models.TextChoices):
        TRAIN = "train"
        TUNE = "tune"
        TRIAL = "trial"
        COMPRESS = "compress"
        # Trained elsewhere: a script logs it through the tracking API (webapp.tracking). Its
        # ``spec`` holds the script's params and tags, not an ExperimentSpec.
        EXTERNAL = "external"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=NAME_LENGTH)
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
    # The lease (see the class docstring): rises on every start and every take-back.
    lease_epoch = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # An external run whose script's client beats (the native client, the mlflow client's
    # fitboard+http store): failed after FITBOARD_EXTERNAL_HEARTBEAT_S of silence. A script on
    # MLflow's REST API sends no heartbeat, so it may be quiet for a long epoch:
    # FITBOARD_EXTERNAL_SILENCE_S (``housekeeping.fail_silent_external_runs``).
    beats = models.BooleanField(default=False)
    restarts = models.PositiveIntegerField(default=0)  # times a dead worker's job was re-queued
    # When the job's message last went to the broker: a queued job whose message a Redis
    # restart lost is sent again (``housekeeping.resend_lost_messages``).
    enqueued_at = models.DateTimeField(default=timezone.now)
    # Deleted by its script (MLflow's delete_run): hidden from lists and pages, its data kept
    # until restored (``visible_to``).
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def download_stem(self) -> str:
        """The start of its checkpoints' download names, ``<stem>-best.zip``; the archive's
        README names the file so."""
        return f"{slugify(self.name) or 'experiment'}-{self.pk}"

    @property
    def is_external(self) -> bool:
        return self.kind == self.Kind.EXTERNAL

    @property
    def compresses(self) -> bool:
        """Whether its kind holds a model a compression job can start from (once it ends)."""
        return self.kind in (self.Kind.TRAIN, self.Kind.COMPRESS)

    @property
    def compressed_from(self) -> int | None:
        """The run a compression job's model was made from (None for any other run)."""
        return self.parent_id if self.kind == self.Kind.COMPRESS else None

    @property
    def study_problem(self) -> str:
        """Why a tuning study cannot take this run's spec as its base ("" when it can). A
        compression job's model came from its source by pruning, distilling or quantizing,
        which trials do not repeat: each would train its spec from scratch (a quantized
        job's for one epoch) and the study would tune something else than the job."""
        if (source := self.compressed_from) is not None:
            return (f"a compression job's model was made from run #{source}, and a "
                    "study's trials would train its spec from scratch without the compression: "
                    f"tune run #{source}, or compress it again with other settings")
        return ""

    @property
    def remedy_refusal(self) -> str:
        """Why this run's remedies are advice only ("" when Apply may queue one). A compression
        job's spec describes the model it started from, so a remedy applied to it queued that
        spec as a plain run from scratch, without the compression (a distilled student
        without its teacher)."""
        if (source := self.compressed_from) is not None:
            return (f"a compression job's remedies are advice: applied, one would train its "
                    f"model from scratch without the compression; apply it to run "
                    f"#{source}, or compress that run again with other settings")
        return ""

    @property
    def compressible(self) -> bool:
        """Whether a compression job may start from it now: a model that finished training."""
        return self.compresses and self.status == self.Status.SUCCEEDED

    @property
    def experiment_spec(self) -> ExperimentSpec:
        if self.is_external:  # callers show its params instead, or offer nothing to rerun
            raise ValueError(f"run {self.pk} was trained elsewhere: it has no spec")
        # A compression job also stores the job itself under "compression" (its own spec).
        return ExperimentSpec.from_dict({k: v for k, v in self.spec.items() if k != "compression"})

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    def _transition(self, allowed_from: tuple[str, ...], lease: int | None = None,
                    **changes: Any) -> bool:
        """Apply ``changes`` only if the row's status is still one of ``allowed_from`` (and,
        with ``lease``, its lease epoch is still that one)."""
        rows = Experiment.objects.filter(pk=self.pk, status__in=allowed_from)
        if lease is not None:
            rows = rows.filter(lease_epoch=lease)
        with transaction.atomic():
            updated = rows.update(**changes)
            if updated:
                for field, value in changes.items():
                    setattr(self, field, value)
                transaction.on_commit(self._publish_status)
                if changes.get("status") in self.TERMINAL:
                    transaction.on_commit(self._signal_end)
        return bool(updated)

    def _signal_end(self) -> None:
        ended = signals.study_ended if self.kind == self.Kind.TUNE else signals.run_ended
        signals.send(ended, experiment_id=self.pk, kind=self.kind, status=self.status)

    def signal_verdict(self, kind: str, previous: str | None, final: bool) -> None:
        """After commit, tell of a verdict that became a flagged kind (not of one that was it
        already: a live "overfitting" confirmed at the end is one piece of news)."""
        if kind in signals.FLAGGED_VERDICTS and kind != previous:
            transaction.on_commit(lambda: signals.send(
                signals.verdict_flagged, experiment_id=self.pk, verdict=kind, final=final))

    def _stored_verdict_kind(self, new_kind: str) -> str | None:
        """The row's verdict kind before ``new_kind`` replaces it; read only when ``new_kind``
        is one that may need telling (call inside the transaction that writes it)."""
        if new_kind not in signals.FLAGGED_VERDICTS:
            return None
        return Experiment.objects.filter(pk=self.pk).values_list(
            "verdict_kind", flat=True).first()

    def renew_lease_with_verdict(self, lease: int, verdict_kind: str, **changes: Any) -> bool:
        """``renew_lease`` that also stores the live verdict's kind (the list filters on it);
        one that became flagged is signalled after commit."""
        with transaction.atomic():
            previous = self._stored_verdict_kind(verdict_kind)
            renewed = self.renew_lease(lease, verdict_kind=verdict_kind, **changes)
            if renewed:
                self.signal_verdict(verdict_kind, previous, final=False)
        return renewed

    def _publish_status(self) -> None:
        # The worker's flusher writes ``progress`` (its last message number among it) through
        # its own queries, so this instance's copy may be older: a final status carrying an
        # old number would hide a dropped last points message from the viewers' backfill.
        fresh = Experiment.objects.filter(pk=self.pk).values_list("progress", flat=True).first()
        if fresh is not None:
            self.progress = fresh
        events.publish_status(self)

    def start(self, worker: str) -> bool:
        """Queued → running, leased to ``worker`` (``lease_epoch`` holds its epoch). False when
        the job was cancelled or already taken."""
        current = Experiment.objects.filter(pk=self.pk).values(
            "lease_epoch", "started_at").first()
        if current is None:
            return False
        now = timezone.now()
        # A resumed job keeps the time it first started: its page shows the whole job's length.
        return self._transition(
            (self.Status.QUEUED,), lease=current["lease_epoch"], status=self.Status.RUNNING,
            started_at=current["started_at"] or now, worker=worker,
            lease_epoch=current["lease_epoch"] + 1, heartbeat_at=now,
        )

    def renew_lease(self, lease: int, **changes: Any) -> bool:
        """The holder of ``lease`` is alive (and sets ``changes``, e.g. progress); False when
        the lease was taken back: the caller must stop working on the job."""
        return bool(Experiment.objects.filter(pk=self.pk, lease_epoch=lease).update(
            heartbeat_at=timezone.now(), **changes))

    def take_back(self, max_restarts: int) -> str:
        """This running job's worker stopped beating: queue it again to resume elsewhere, or
        end it (cancelled when a cancel was asked for; failed after ``max_restarts``
        re-queues). Conditional on the lease epoch this row was read with, so two housekeepers
        never both act. Returns what happened: "queued", "cancelled", "failed" or ""."""
        seen = self.heartbeat_at or self.started_at
        when = seen.strftime("%Y-%m-%d %H:%M:%S UTC") if seen else "never"
        if self.cancel_requested:
            outcome, changes = self.Status.CANCELLED, {
                "finished_at": timezone.now(),
                "error": "cancelled by user (its worker stopped before it could stop the job)"}
        elif self.restarts >= max_restarts:
            outcome, changes = self.Status.FAILED, {"finished_at": timezone.now(), "error": (
                f"worker died {self.restarts + 1} times; the last one ({self.worker or '?'}) "
                f"stopped answering after {when}. The job may be killing its worker (out of "
                "memory?): try a smaller batch or model.")}
        else:
            outcome, changes = self.Status.QUEUED, {
                "restarts": self.restarts + 1, "enqueued_at": timezone.now(), "worker": ""}
        taken = self._transition((self.Status.RUNNING,), lease=self.lease_epoch, status=outcome,
                                 lease_epoch=self.lease_epoch + 1, **changes)
        return str(outcome) if taken else ""

    def finish(self, status: str, error: str = "", summary: dict[str, Any] | None = None,
               verdict: dict[str, Any] | None = None, lease: int | None = None) -> bool:
        """Running (or queued, for cancel) → a terminal status, with the reason on failure.
        A worker passes its ``lease``: a job taken back from it is not its to end."""
        changes: dict[str, Any] = {"status": status, "finished_at": timezone.now(), "error": error}
        if summary is not None:
            changes["summary"] = summary
            best = summary.get("best_metric")
            if best:
                changes["best_metric_name"], changes["best_metric_value"] = best
        if verdict:
            changes["verdict"], changes["verdict_kind"] = verdict, verdict["kind"]
        with transaction.atomic():
            previous = self._stored_verdict_kind(verdict["kind"]) if verdict else None
            ended = self._transition((self.Status.QUEUED, self.Status.RUNNING), lease=lease,
                                     **changes)
            if ended and verdict:
                self.signal_verdict(verdict["kind"], previous, final=True)
        return ended

    def reopen(self) -> bool:
        """An ended external run → running again: its script resumed it (MLflow's
        ``start_run(run_id=...)``), and its next end stores a new summary and verdict. False
        when it was not ended. Whether it ``beats`` is its resuming client's to say again
        (the mlflow client's store beats at once; over MLflow's REST API nothing does)."""
        if not self.is_external:
            raise ValueError(f"run {self.pk} is trained by Fitboard: only its worker runs it")
        return self._transition(self.TERMINAL, status=self.Status.RUNNING, finished_at=None,
                                error="", cancel_requested=False, heartbeat_at=timezone.now(),
                                beats=False)

    def request_cancel(self) -> bool:
        """Cancel: a queued job (re-queued to resume, too) ends at once; a running one is
        flagged in the database and its loop stops at the next step, or, if its worker died,
        the housekeeper that takes it back ends it."""
        if self._transition(
            (self.Status.QUEUED,), status=self.Status.CANCELLED, finished_at=timezone.now(),
            error="cancelled by user",
        ):
            return True
        with transaction.atomic():
            flagged = Experiment.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
                cancel_requested=True
            )
            if flagged:
                # The flag is the record; the nudge only makes the worker read it now.
                transaction.on_commit(lambda: events.nudge_workers(self.pk))
        return bool(flagged)


# Bytes of one stored metric point: its int64 step, float64 value and float64 time.
POINT_BYTES = 24
# What one MetricChunk row counts for in the storage quota beside its points' POINT_BYTES: a
# fixed part (its columns, its summary, its index entries) and its metric's name, held twice
# (in the row and in its index). A script logging a point a request writes a row a point,
# merged only when its run ends (``metric_store.compact``); counted at 24 bytes a point, it
# stored 5 to 9 times what its quota said. Measured with 20,000 rows of one point (table and
# indexes: pg_total_relation_size, SQLite's dbstat), since rows keep their first and last
# times: PostgreSQL 239 bytes a row for a name of 10 characters and 784 for one of 250, SQLite
# 124 and 644; counted 300 and 780.
ROW_BYTES = 256
NAME_COPIES = 2


def chunk_row_bytes(key: str) -> int:
    """What one MetricChunk row of metric ``key`` counts for in the quota beside its points."""
    return ROW_BYTES + NAME_COPIES * len(key.encode())


class MetricChunk(models.Model):
    """A batch of points of one metric, stored as packed arrays (see ``metric_store``)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="chunks")
    key = models.CharField(max_length=250)  # external.STORED_CHARS
    first_step = models.BigIntegerField()
    last_step = models.BigIntegerField()
    count = models.PositiveIntegerField()
    steps = models.BinaryField()  # int64 little-endian
    values = models.BinaryField()  # float64 little-endian
    times = models.BinaryField()  # float64 seconds since the epoch
    # The min and max point of each block of the batch (metric_store.SUMMARY_BLOCK points), as
    # int64 steps, float64 values and float64 times in one blob; empty for rows written before.
    summary = models.BinaryField(default=b"")
    # The earliest and latest time of its points (seconds since the epoch): a page of a
    # metric's history in time order reads only the rows that can hold it. None for rows
    # written before (every page reads those).
    first_time = models.FloatField(null=True)
    last_time = models.FloatField(null=True)

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


class StoredArtifact(models.Model):
    """A file a script uploaded through the artifacts proxy (a run's artifact, a logged model's
    file, a native client's checkpoint): its storage name, size and uploader, which the storage
    quota counts. Written and deleted with the file (``webapp.tracking.artifacts``)."""

    name = models.CharField(max_length=1100, unique=True)  # in the default storage
    size = models.BigIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)


@storage.count_with
def stored_by(user: Any) -> int:
    """Bytes of the checkpoints and metric points of ``user``'s runs (their rows too:
    ``chunk_row_bytes``) and of the artifacts they uploaded (the storage quota)."""
    checkpoints = Checkpoint.objects.filter(experiment__created_by=user).aggregate(
        n=Sum("size"))["n"]
    artifacts = StoredArtifact.objects.filter(created_by=user).aggregate(
        n=Sum(storage.files_bytes("size")))["n"]
    chunks = MetricChunk.objects.filter(experiment__created_by=user).aggregate(
        points=Sum("count"), rows=Count("id"), names=Sum(storage.TextBytes("key")))
    points = (int(chunks["points"] or 0) * POINT_BYTES + int(chunks["rows"]) * ROW_BYTES
              + int(chunks["names"] or 0) * NAME_COPIES)
    return int(checkpoints or 0) + int(artifacts or 0) + points


class RunGroup(models.Model):
    """One spec over several seeds (``webapp.experiments.groups``): its runs are ordinary
    training runs, one per seed, that may belong to other groups too (a run repeated keeps its
    seed as the group's first; a verified remedy's original side reuses the original's runs).
    A verified remedy's group names its original side (``baseline``) and the remedy applied."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="run_groups")
    name = models.CharField(max_length=NAME_LENGTH)
    spec = models.JSONField()  # the ExperimentSpec's dict; each run's differs only in run.seed
    seeds = models.JSONField(default=list)  # in the runs' order
    runs = models.ManyToManyField(Experiment, related_name="groups")
    source = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="repeats")  # the run "Repeat" was pressed on
    baseline = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="remedies")
    remedy = models.JSONField(default=dict)  # key, title, patch: for a verified remedy
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (group #{self.pk})"
