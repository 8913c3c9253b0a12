"""The worker's Reporter: buffers points, writes them in bulk and streams them to browsers.

The training thread only appends to a buffer. A flusher thread sends at once when nothing went
out in the last ``interval`` seconds and otherwise coalesces everything logged meanwhile into the
next send (a leading-edge throttle), so latency stays low and a fast loop never floods the
browser. Each flush writes the batch to the database (the record) before publishing it, which is
what lets a late viewer take the history from the database and the rest live without a gap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from webapp.experiments import events, metric_store
from webapp.experiments.models import Checkpoint, Experiment

logger = logging.getLogger(__name__)

CANCEL_POLL = 0.25  # seconds between reads of the cancel flag
IDLE_WAKE = 0.5  # seconds the flusher sleeps when nothing is logged


class DjangoReporter:
    """Reporter for one experiment, used by the Celery task. Call ``close()`` when done."""

    def __init__(self, experiment: Experiment, interval: float | None = None) -> None:
        self.experiment_id = experiment.pk
        self.project_id = experiment.project_id
        self.interval = settings.FITBOARD_LIVE_INTERVAL if interval is None else interval
        self._lock = threading.Lock()
        self._pending: dict[str, list[metric_store.Point]] = {}
        self._progress: dict[str, Any] = dict(experiment.progress)
        self._progress_dirty = False
        self._seq = 0
        self._stop_requested = False
        self._last_cancel_poll = 0.0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._serve, name=f"reporter-{self.experiment_id}", daemon=True
        )
        self._thread.start()

    # The Reporter protocol (called from the training thread) ---------------------------------

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.time()
        with self._lock:
            for key, value in metrics.items():
                self._pending.setdefault(key, []).append((step, float(value), now))
        self._wake.set()

    def status(self, message: str, **fields: Any) -> None:
        with self._lock:
            self._progress.update(fields, message=message)
            self._progress_dirty = True
        self._wake.set()

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float]) -> None:
        data = path.read_bytes()
        Checkpoint.objects.update_or_create(
            experiment_id=self.experiment_id,
            tag=tag,
            defaults={
                "path": str(path.relative_to(settings.MEDIA_ROOT)),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "metrics": dict(metrics),
                "updated_at": timezone.now(),
            },
        )

    def should_stop(self) -> bool:
        return self._stop_requested

    def close(self) -> None:
        """Flush everything still buffered, stop the flusher; raise if points could not be
        stored."""
        self._closing.set()
        self._wake.set()
        self._thread.join()
        if self._failure is not None:
            raise RuntimeError(f"metric points could not be stored: {self._failure}")

    # The flusher thread -------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        try:
            while not self._closing.is_set():
                self._wake.wait(IDLE_WAKE)
                self._wake.clear()
                self._flush_or_keep(loop, layer)
                # Coalesce whatever arrives during the next interval into one message.
                self._closing.wait(self.interval)
            self._flush_or_keep(loop, layer)
        finally:
            if layer is not None and hasattr(layer, "close_pools"):
                loop.run_until_complete(layer.close_pools())
            loop.close()
            close_old_connections()
            connection.close()

    def _flush_or_keep(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        """One flush and cancel poll. A database error keeps the points for the next try and
        the thread alive (so cancel still works); close() reports it if it never clears."""
        try:
            self._flush(loop, layer)
            self._poll_cancel()
            self._failure = None
        except Exception as exc:  # noqa: BLE001
            logger.warning("reporter for experiment %s could not write; retrying",
                           self.experiment_id, exc_info=True)
            self._failure = exc

    def _flush(self, loop: asyncio.AbstractEventLoop, layer: Any) -> None:
        with self._lock:
            points, self._pending = self._pending, {}
            progress = dict(self._progress) if self._progress_dirty else None
            self._progress_dirty = False
        if not points and progress is None:
            return
        try:
            if points:
                metric_store.append(self.experiment_id, points)
            if progress is not None:
                Experiment.objects.filter(pk=self.experiment_id).update(progress=progress)
        except Exception:
            with self._lock:  # put the batch back in front of what arrived meanwhile
                for key, batch in self._pending.items():
                    points.setdefault(key, []).extend(batch)
                self._pending = points
                self._progress_dirty = self._progress_dirty or progress is not None
            raise
        if layer is None:
            return
        self._seq += 1
        message = {
            "type": "run.points",
            "seq": self._seq,
            "points": {key: [[p[0], p[1]] for p in batch] for key, batch in points.items()},
            "progress": progress,
        }
        try:
            loop.run_until_complete(
                layer.group_send(events.run_group(self.experiment_id), message)
            )
            if progress is not None:
                loop.run_until_complete(layer.group_send(
                    events.project_group(self.project_id),
                    {"type": "list.update", "id": self.experiment_id, "progress": progress},
                ))
        except Exception:  # noqa: BLE001 - the database has the points; viewers backfill
            logger.warning("live update for experiment %s not delivered", self.experiment_id,
                           exc_info=True)

    def _poll_cancel(self) -> None:
        now = time.monotonic()
        if now - self._last_cancel_poll < CANCEL_POLL:
            return
        self._last_cancel_poll = now
        self._stop_requested = Experiment.objects.filter(
            pk=self.experiment_id, cancel_requested=True
        ).exists()
