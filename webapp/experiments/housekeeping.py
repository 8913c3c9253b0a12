"""Housekeeping every worker runs: jobs never left "running" by a dead worker, queued jobs never
lost with a broker's message.

``take_back_lost_jobs`` finds running training and compression jobs whose lease has not been
renewed for ``FITBOARD_LEASE_TIMEOUT`` (their worker was killed, or its machine went away) and
queues them again to resume from their last saved state (``Experiment.take_back``: at most
``FITBOARD_MAX_RESTARTS`` times, then the job fails with the reason). Trials are left to
Optuna's heartbeats, which fail and retry them (``tuning``); a study has no worker of its own.

``resend_lost_messages`` sends again the message of every job queued for longer than
``FITBOARD_REQUEUE_GRACE`` whose queue in the broker is empty (a Redis restarted without
persistence lost it; the database is the record), and, after ten graces, whatever the queue
holds (a message lost alone). A job sent twice runs once: ``Experiment.start`` is conditional.

Every worker runs both every ``FITBOARD_HOUSEKEEPING_INTERVAL`` in a daemon thread
(``start_thread``, from the worker's ``worker_ready`` signal), so ``manage.py up`` needs nothing
more; several workers doing it at once never act twice on a job, since each change is a
conditional UPDATE on the row as it was read.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from training.spec import SpecError
from webapp.experiments.enqueue import COMPRESS, TRAIN, TRIAL, TUNE, send
from webapp.experiments.launch import DEFAULT_QUEUE, GPU_QUEUE, queue_for
from webapp.experiments.models import Experiment

logger = logging.getLogger(__name__)

# Kinds whose lost workers the housekeeper handles (trials: Optuna's heartbeats, see tuning).
LEASED_KINDS = (Experiment.Kind.TRAIN, Experiment.Kind.COMPRESS)
RESEND_ANYWAY = 10  # graces after which a queued job's message is sent again whatever the queue


def housekeeping() -> dict[str, int]:
    """One round of both duties; how many jobs each outcome touched."""
    counts = take_back_lost_jobs()
    counts["resent"] = resend_lost_messages()
    counts["silent"] = fail_silent_external_runs()
    return counts


def fail_silent_external_runs() -> int:
    """Fail the running external runs (logged by a script through the tracking API) whose
    script went silent: FITBOARD_EXTERNAL_HEARTBEAT_S without a request where its client beats
    (``Experiment.beats``), FITBOARD_EXTERNAL_SILENCE_S where it does not (MLflow's REST API:
    a quiet script may be alive in a long epoch). Every request for such a run renews its
    ``heartbeat_at``."""
    now = timezone.now()
    failed = 0
    for beats, silence in ((True, settings.FITBOARD_EXTERNAL_HEARTBEAT),
                           (False, settings.FITBOARD_EXTERNAL_SILENCE)):
        for run in Experiment.objects.filter(
                kind=Experiment.Kind.EXTERNAL, status=Experiment.Status.RUNNING, beats=beats,
                heartbeat_at__lt=now - timedelta(seconds=silence)):
            # Conditional on the lease epoch read: a run that ends meanwhile is left alone.
            if run.finish(Experiment.Status.FAILED, lease=run.lease_epoch,
                          error=f"no data from the script for {silence} s"):
                failed += 1
                logger.warning("external run %s sent nothing for %s s; failed", run.pk,
                               silence)
    return failed


def take_back_lost_jobs() -> dict[str, int]:
    """Re-queue (or end) the running jobs whose worker stopped renewing its lease."""
    cutoff = timezone.now() - timedelta(seconds=settings.FITBOARD_LEASE_TIMEOUT)
    counts = {"queued": 0, "cancelled": 0, "failed": 0}
    lost = Experiment.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff),
        status=Experiment.Status.RUNNING, kind__in=LEASED_KINDS)
    for job in lost:
        worker = job.worker
        with transaction.atomic():
            outcome = job.take_back(settings.FITBOARD_MAX_RESTARTS)
            if outcome == Experiment.Status.QUEUED:
                transaction.on_commit(lambda job=job: enqueue(job))  # type: ignore[misc]
        if outcome:
            counts[outcome] += 1
            logger.warning("%s %s: its worker %s stopped renewing its lease; %s",
                           job.kind, job.pk, worker or "?", outcome)
    return counts


def resend_lost_messages() -> int:
    """Send again the messages of queued jobs that the broker no longer holds."""
    now = timezone.now()
    grace = timedelta(seconds=settings.FITBOARD_REQUEUE_GRACE)
    waiting = list(Experiment.objects.filter(status=Experiment.Status.QUEUED,
                                             enqueued_at__lt=now - grace)
                   .exclude(kind=Experiment.Kind.EXTERNAL).order_by("pk"))
    if not waiting:
        return 0
    sizes = queue_sizes({queue_of(job) for job in waiting})
    if not sizes:
        return 0  # the broker does not answer: nothing could be sent to it either
    resent = 0
    for job in waiting:
        empty = sizes.get(queue_of(job)) == 0
        if not empty and job.enqueued_at >= now - grace * RESEND_ANYWAY:
            continue
        # Conditional on the time read: of several housekeepers, one sends it.
        if Experiment.objects.filter(pk=job.pk, status=Experiment.Status.QUEUED,
                                     enqueued_at=job.enqueued_at).update(enqueued_at=now):
            enqueue(job)
            resent += 1
    if resent:
        logger.warning("sent again the messages of %s queued jobs the broker had lost", resent)
    return resent


def queue_sizes(queues: set[str]) -> dict[str, int]:
    """Messages waiting in each queue of the broker (all priorities); a queue the broker
    cannot be asked about is left out."""
    sizes: dict[str, int] = {}
    try:
        with current_app.connection_for_read() as conn:
            channel: Any = conn.default_channel
            for queue in queues:
                sizes[queue] = int(channel._size(queue))
    except Exception:  # noqa: BLE001 - no broker now: nothing can be sent either
        logger.warning("could not read the broker's queues", exc_info=True)
    return sizes


def queue_of(job: Experiment) -> str:
    """The queue the job's message goes to: a training run's by what it needs (see
    ``launch.queue_for``), the others' by ``settings.CELERY_TASK_ROUTES``."""
    if job.kind == Experiment.Kind.TRAIN:
        try:
            return queue_for(job.experiment_spec)
        except SpecError:
            return GPU_QUEUE  # it fails at start, wherever it lands
    return DEFAULT_QUEUE if job.kind == Experiment.Kind.TUNE else GPU_QUEUE


def enqueue(job: Experiment) -> None:
    """Send the job's task message (the same one its creation sent, to the same queue)."""
    task = {Experiment.Kind.TRAIN: TRAIN, Experiment.Kind.COMPRESS: COMPRESS,
            Experiment.Kind.TRIAL: TRIAL, Experiment.Kind.TUNE: TUNE}
    send(task[Experiment.Kind(job.kind)], job.pk, queue_of(job))


_started = threading.Lock()
_thread: threading.Thread | None = None


def start_thread() -> None:
    """Run ``housekeeping`` every FITBOARD_HOUSEKEEPING_INTERVAL in a daemon thread of this
    process (once per process)."""
    global _thread
    with _started:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_serve, name="housekeeping", daemon=True)
        _thread.start()


def _serve() -> None:
    while True:
        try:
            housekeeping()
        except Exception:  # noqa: BLE001 - the next round tries again
            logger.exception("housekeeping failed")
            connection.close()
        time.sleep(settings.FITBOARD_HOUSEKEEPING_INTERVAL)
