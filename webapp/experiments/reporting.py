"""The worker's Reporter: buffers points, writes them in bulk and streams them to browsers.

The training thread only appends to a buffer. One flusher thread per worker process serves every
open reporter (a worker's database connection and Redis pool outlive a run, so a run does not pay
for them). For each reporter it sends at once when nothing went out in the last interval and
otherwise coalesces everything logged meanwhile into the next send (a leading-edge throttle), so
latency stays low and a fast loop never floods the browser. Each flush writes the batch to the
database (the record) before publishing it, which is what lets a late viewer take the history
from the database and the rest live without a gap.

The flusher also keeps each run's lease (see ``Experiment``): every write of a run is
conditional on the lease epoch its job started with and renews its heartbeat, a run with
nothing to write renews it every quarter of ``FITBOARD_LEASE_TIMEOUT``, and the same poll that
reads cancel flags notices a lease taken back. A reporter whose lease is gone writes nothing
more and asks the loop to stop: another worker resumes the job.

The interval is ``FITBOARD_LIVE_INTERVAL`` while someone watches the run and ``UNWATCHED_INTERVAL``
while nobody does: then points only need to reach the database, and fewer, larger writes take
less from the training process. Whether anyone watches is read from the run's group in the
channel layer every ``VIEWERS_POLL``, so a new viewer gets live points within that time (and the
history from the database at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from webapp.experiments import events, files, metric_store
from webapp.experiments.models import Checkpoint, Experiment
from webapp.experiments.sysmetrics import PREFIX as SYSTEM_PREFIX

logger = logging.getLogger(__name__)

# Seconds between reads of the cancel flags and lease epochs (one indexed query for all of the
# process's runs, ~0.1 ms). A cancel also nudges the workers over Redis pub/sub
# (``events.nudge_workers``), which stops its run at the next step; the poll is the fallback
# when Redis is away, and notices leases taken back. Every wake-up of the flusher takes the GIL
# from the training thread; on a machine with more runnable threads than cores, the training
# thread then waits for the flusher's next time slice, so wake-ups cost a loaded worker far
# more than their CPU time. The poll therefore wakes it no more often than the viewers' poll,
# with which it shares its wake-ups (it was 0.1 s: ten more a second). (A 20 ms poll broke the
# live viewers' backfill test, tests/reliability/test_robust_live.py, likewise.)
CANCEL_POLL = 0.5
VIEWERS_POLL = 0.5  # seconds between looks at who watches each run
UNWATCHED_INTERVAL = 2.0  # seconds between writes of a run nobody watches


class DjangoReporter:
    """Reporter for one experiment, used by the Celery task. Call ``close()`` when done."""

    def __init__(self, experiment: Experiment, interval: float | None = None) -> None:
        self.experiment_id = experiment.pk
        self.project_id = experiment.project_id
        self.interval = settings.FITBOARD_LIVE_INTERVAL if interval is None else interval
        self.group = events.run_group(experiment.pk)
        study_id = events.study_of(experiment)
        self.study_group = events.study_group(study_id) if study_id is not None else None
        self._lock = threading.Lock()
        self._pending: dict[str, list[metric_store.Point]] = {}
        self._progress: dict[str, Any] = dict(experiment.progress)
        self._progress_dirty = False
        # (step, time.time()) of the first and the latest training point this reporter logged:
        # the pace behind ``progress["eta_s"]``.
        self._first_step: tuple[int, float] | None = None
        self._last_step: tuple[int, float] | None = None
        # Read and written by the flusher thread only.
        self.sent_at = -math.inf  # monotonic time of the last flush
        self.watched: bool | None = None  # None until the flusher has looked
        # The run's last message number: a run started again goes on from it.
        self.seq = int(experiment.progress.get("seq", 0))
        self.failure: BaseException | None = None
        self.stop_requested = False
        self.lease = experiment.lease_epoch
        self.lease_lost = False
        self.beat_at = time.monotonic()  # the last renewal of the lease (flusher thread)
        # FITBOARD_JOB_TIME_LIMIT_S, counted from the job's first start (a resumed job keeps
        # it), so that no job holds a worker for longer however often it resumes.
        self.time_limit = settings.FITBOARD_JOB_TIME_LIMIT
        started = experiment.started_at
        self.deadline = started.timestamp() + self.time_limit \
            if self.time_limit and started else None
        self._syncs: list[threading.Event] = []  # callers of sync() waiting for a flush
        self.closed = threading.Event()
        self._flusher = Flusher.for_this_process()
        self._flusher.add(self)

    # The Reporter protocol (called from the training thread) ---------------------------------

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.time()
        with self._lock:
            idle = not self._pending
            for key, value in metrics.items():
                self._pending.setdefault(key, []).append((step, float(value), now))
            # System readings count seconds, not steps: they do not move the progress.
            if not all(key.startswith(SYSTEM_PREFIX) for key in metrics):
                self._last_step = (step, now)
                self._first_step = self._first_step or self._last_step
        if idle:  # only the first point after a flush can make a send due sooner
            self._flusher.wake()

    def status(self, message: str, **fields: Any) -> None:
        with self._lock:
            self._progress.update(events.json_safe(fields), message=message)
            self._progress_dirty = True
        self._flusher.wake()

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        if self.lease_lost:  # the job is another worker's now: its files are its to record
            return
        if sha256 is None:  # a caller that did not keep the digest of what it wrote
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        name = files.storage_name(path)
        files.publish(path, name)  # to the shared store, before the row points at it
        Checkpoint.objects.update_or_create(
            experiment_id=self.experiment_id,
            tag=tag,
            defaults={
                "path": name,
                "sha256": sha256,
                "size": path.stat().st_size,
                "metrics": events.json_safe(dict(metrics)),
                "updated_at": timezone.now(),
            },
        )

    def should_stop(self) -> bool:
        # Read at every step: the clock, not the flusher's poll, so the limit holds even
        # while the flusher waits on the database.
        return self.stop_requested or self.past_time_limit()

    def past_time_limit(self) -> bool:
        """Whether the job has run for its time limit."""
        return self.deadline is not None and time.time() >= self.deadline

    def time_limit_reason(self) -> str:
        """Why a job this reporter stopped failed: its time limit ran out ("" when it was
        stopped for another reason: a user's cancel, a lease taken back)."""
        if self.stop_requested or not self.past_time_limit():
            return ""
        return (f"stopped after the time limit of {self.time_limit} s "
                "(FITBOARD_JOB_TIME_LIMIT_S); its last checkpoint is kept")

    def sync(self) -> None:
        """Return once everything logged so far is in the database (the flusher writes it at
        once). The loop calls this before it saves a resumable state."""
        done = threading.Event()
        with self._lock:
            self._syncs.append(done)
        self._flusher.wake()
        done.wait()

    def close(self) -> None:
        """Flush everything still buffered and detach from the flusher; raise if points could
        not be stored."""
        self._flusher.remove(self)
        self.closed.wait()
        if self.failure is not None:
            raise RuntimeError(f"metric points could not be stored: {self.failure}")

    # Called by the flusher thread -------------------------------------------------------------

    def has_news(self) -> bool:
        with self._lock:
            return bool(self._pending) or self._progress_dirty

    def sync_asked(self) -> bool:
        with self._lock:
            return bool(self._syncs)

    def release_syncs(self) -> None:
        """Wake the callers of sync() (after a flush; one that failed is retried later, and
        waiting on it would stop the training until the database is back)."""
        with self._lock:
            syncs, self._syncs = self._syncs, []
        for done in syncs:
            done.set()

    def next_send(self) -> float:
        """Monotonic time from which news may go out."""
        interval = self.interval if self.watched is not False else UNWATCHED_INTERVAL
        return self.sent_at + interval

    def flush(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        """Store and publish what was logged since the last flush. A database error keeps the
        points for the next try (close() reports it if it never clears).

        Each flush is one message with the next sequence number of the run, and the run's row
        records that number (``progress["seq"]``) once the points are stored: a viewer whose
        snapshot or backfill read ``seq`` n (before the points) holds every point of messages
        1..n, so a live message numbered above n + 1 tells it exactly that it missed some."""
        self.sent_at = time.monotonic()
        sent_at = time.time()  # the same instant, as the message tells it (the epoch's seconds)
        with self._lock:
            points, self._pending = self._pending, {}
            changed = self._progress_dirty
            self._progress_dirty = False
            progress = {**self._progress, **self._pace(), "seq": self.seq + 1}
        if not points and not changed:
            return
        try:
            # Conditional on the lease: a run taken back from this worker logs nothing more
            # (its new holder logs these steps again).
            if not self.renew_lease():
                return
            if points:
                metric_store.append(self.experiment_id, points)
            # After the points are committed (no transaction around both: a long one would
            # lock SQLite against the training thread's checkpoint rows).
            if changed:
                live_verdict = progress.get("verdict") or {}
                self.renew_lease(progress=progress, verdict_kind=live_verdict.get("kind", ""))
            else:
                self.renew_lease(progress=progress)
        except Exception as exc:
            with self._lock:  # put the batch back in front of what arrived meanwhile
                for key, batch in self._pending.items():
                    points.setdefault(key, []).extend(batch)
                self._pending = points
                self._progress_dirty = self._progress_dirty or changed
            self.failure = exc
            raise
        self.failure = None
        self.seq += 1
        with self._lock:
            self._progress["seq"] = self.seq
        if layer is not None:
            self._publish(loop, layer, points_message(self.seq, points, progress, sent_at),
                          progress, changed)

    def _pace(self) -> dict[str, Any]:
        """The step of the latest training point, and the seconds left at the pace since the
        first (``eta_s``, once two steps apart): every message carries them, not only the
        epoch ends' status updates (call with the lock held)."""
        if self._last_step is None or self._first_step is None:
            return {}
        (first, started), (step, now) = self._first_step, self._last_step
        pace: dict[str, Any] = {"step": step}
        total = self._progress.get("total_steps")
        if isinstance(total, int) and step > first:
            pace["eta_s"] = round(max(0, total - step) * (now - started) / (step - first), 1)
        return pace

    def renew_lease(self, **changes: Any) -> bool:
        """Renew the lease (writing ``changes`` with it); on finding it taken back, stop."""
        self.beat_at = time.monotonic()
        if self.lease_lost:
            return False
        row = Experiment(pk=self.experiment_id)
        if (row.renew_lease_with_verdict(self.lease, **changes) if "verdict_kind" in changes
                else row.renew_lease(self.lease, **changes)):
            return True
        logger.warning("experiment %s was taken back from this worker (lease %s); stopping",
                       self.experiment_id, self.lease)
        self.lease_lost = self.stop_requested = True
        return False

    def _publish(self, loop: asyncio.AbstractEventLoop, layer: Any, message: dict[str, Any],
                 progress: dict[str, Any], changed: bool) -> None:
        """Send the batch's ``message`` to the run's viewers; a status change (``changed``)
        also goes to the run list and the study page."""
        try:
            loop.run_until_complete(layer.group_send(self.group, message))
            if changed:
                loop.run_until_complete(layer.group_send(
                    events.project_group(self.project_id),
                    list_message(self.project_id, self.experiment_id, progress),
                ))
                if self.study_group is not None:  # a trial's epoch: its study page redraws
                    loop.run_until_complete(layer.group_send(self.study_group, {
                        "type": "study.update", "id": self.experiment_id, "progress": progress,
                    }))
        except Exception:  # noqa: BLE001 - the database has the points; viewers backfill
            logger.warning("live update for experiment %s not delivered", self.experiment_id,
                           exc_info=True)


def points_message(seq: int, points: Mapping[str, Sequence[metric_store.Point]],
                   progress: dict[str, Any] | None, sent_at: float) -> dict[str, Any]:
    """The live message of one stored batch of a run's points (numbered ``seq``, see
    ``DjangoReporter.flush``), for the run's group: what every writer of points sends.
    ``sent_at`` (seconds since the epoch) is when the server took the batch to send: the clock
    the live throttle keeps, which a client's read times are not (a socket that fell behind
    hands over many messages at once)."""
    return {
        "type": "run.points",
        "seq": seq,
        "sent_at": sent_at,
        # JSON has no NaN: a diverged metric goes out as null (a gap in the curve).
        "points": {key: [[p[0], p[1] if math.isfinite(p[1]) else None] for p in batch]
                   for key, batch in points.items()},
        "progress": progress,
    }


def list_message(project_id: int, experiment_id: int, progress: dict[str, Any]
                 ) -> dict[str, Any]:
    """The run list's update for a run's new progress, for the project's group."""
    return {"type": "list.update", "project": project_id, "id": experiment_id,
            "progress": progress}


class Flusher:
    """The thread that stores and publishes for every open DjangoReporter of this process."""

    _instance: Flusher | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def for_this_process(cls) -> Flusher:
        with cls._instance_lock:
            # A forked child inherits the object but not the thread: it needs its own.
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._open: list[DjangoReporter] = []
        self._closing: list[DjangoReporter] = []
        self._wake = threading.Event()
        self._polled_at = -math.inf
        self._viewers_polled_at = -math.inf
        self._thread = threading.Thread(target=self._serve, name="reporter-flusher", daemon=True)
        self._thread.start()
        self._listener = threading.Thread(target=self._listen, name="cancel-listener",
                                          daemon=True)
        self._listener.start()

    def add(self, reporter: DjangoReporter) -> None:
        with self._lock:
            self._open.append(reporter)
        # Look at the new run's cancel flag and viewers at once.
        self._polled_at = self._viewers_polled_at = -math.inf
        self.wake()

    def remove(self, reporter: DjangoReporter) -> None:
        with self._lock:
            self._closing.append(reporter)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _listen(self) -> None:
        """Read the cancel flags as soon as a worker is nudged (``events.nudge_workers``):
        a cancel then takes about one step, not a poll interval plus a step."""
        import redis

        while True:
            try:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None,
                                              decode_responses=True)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(events.nudge_channel())
                for message in pubsub.listen():
                    # Sent only after a running job's cancel flag was committed: stop its loop
                    # now, and read every flag (the record) at once.
                    with self._lock:
                        reporters = list(self._open)
                    for reporter in reporters:
                        if str(reporter.experiment_id) == message["data"]:
                            reporter.stop_requested = True
                    self._polled_at = -math.inf
                    self.wake()
            except Exception:  # noqa: BLE001 - Redis away: the poll still works; try again
                logger.debug("cancel listener lost Redis; retrying", exc_info=True)
                time.sleep(1.0)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            try:
                self._serve_once(loop)
            except Exception:  # noqa: BLE001 - the thread must outlive any error or close() hangs
                logger.exception("reporter flusher error")
                time.sleep(CANCEL_POLL)

    def _serve_once(self, loop: asyncio.AbstractEventLoop) -> None:
        layer = get_channel_layer()
        with self._lock:
            reporters, closing = list(self._open), list(self._closing)
        now = time.monotonic()
        if now - self._polled_at >= CANCEL_POLL and reporters:
            self._polled_at = now
            self._poll_cancel(reporters)
            self._beat(reporters, now)
        if now - self._viewers_polled_at >= VIEWERS_POLL and reporters:
            self._viewers_polled_at = now
            self._poll_viewers(loop, layer, reporters)
        for reporter in reporters:
            syncing = reporter.sync_asked()
            if (reporter in closing or syncing
                    or (reporter.has_news() and reporter.next_send() <= now)):
                self._flush(reporter, loop, layer)
            if syncing:
                reporter.release_syncs()
        for reporter in closing:
            with self._lock:
                self._open.remove(reporter)
                self._closing.remove(reporter)
            reporter.closed.set()
        self._sleep(reporters, closing)

    def _sleep(self, reporters: list[DjangoReporter], closed: list[DjangoReporter]) -> None:
        """Until the next send, cancel poll or wake-up; with no reporter left, the database
        connection is closed (a test database or a restarted server must not see it held)."""
        with self._lock:
            idle = not self._open
        if idle:
            if closed:
                connection.close()
            self._wake.wait()
        else:
            now = time.monotonic()
            due = [r.next_send() for r in reporters if r not in closed and r.has_news()]
            polls = [self._polled_at + CANCEL_POLL, self._viewers_polled_at + VIEWERS_POLL]
            until = min(polls + due)
            self._wake.wait(max(0.0, until - now))
        self._wake.clear()

    def _flush(self, reporter: DjangoReporter, loop: asyncio.AbstractEventLoop,
               layer: Any) -> None:
        try:
            reporter.flush(loop, layer)
        except Exception:  # noqa: BLE001 - kept for the next try; close() reports it
            logger.warning("reporter for experiment %s could not write; retrying",
                           reporter.experiment_id, exc_info=True)
            connection.close()  # a broken connection is reopened by the next query

    def _poll_cancel(self, reporters: list[DjangoReporter]) -> None:
        """Read every open run's cancel flag and lease epoch in one query."""
        try:
            rows = {pk: (cancel, lease) for pk, cancel, lease in Experiment.objects.filter(
                pk__in=[r.experiment_id for r in reporters]
            ).values_list("pk", "cancel_requested", "lease_epoch")}
        except Exception:  # noqa: BLE001 - a database blip must not stop the flusher
            logger.warning("could not read cancel flags", exc_info=True)
            connection.close()
            return
        for reporter in reporters:
            cancel, lease = rows.get(reporter.experiment_id, (False, reporter.lease))
            if cancel:
                reporter.stop_requested = True
            if lease != reporter.lease:
                reporter.renew_lease()  # fails, and says so once

    def _beat(self, reporters: list[DjangoReporter], now: float) -> None:
        """Renew the lease of every run that has not written for a quarter of the timeout."""
        every = settings.FITBOARD_LEASE_TIMEOUT / 4
        for reporter in reporters:
            if now - reporter.beat_at >= every and not reporter.lease_lost:
                try:
                    reporter.renew_lease()
                except Exception:  # noqa: BLE001 - retried at the next poll
                    logger.warning("could not renew the lease of experiment %s",
                                   reporter.experiment_id, exc_info=True)
                    connection.close()

    def _poll_viewers(self, loop: asyncio.AbstractEventLoop, layer: Any,
                      reporters: list[DjangoReporter]) -> None:
        """Whether anyone watches each run; a run with a new viewer sends its buffer at once."""
        for reporter in reporters:
            watched = True
            if layer is not None:
                try:
                    watched = loop.run_until_complete(
                        events.group_has_members(layer, reporter.group)
                    )
                except Exception:  # noqa: BLE001 - unknown: keep live updates on
                    logger.warning("could not read the viewers of %s", reporter.group,
                                   exc_info=True)
            if watched and reporter.watched is False:
                reporter.sent_at = -math.inf
            reporter.watched = watched
