"""Live messages sent from one long-lived thread, so that the request that stored the points
does not wait for Redis.

``async_to_sync(layer.group_send)`` from a request costs a fresh event loop (or a hop to the
server's) and two Redis round trips: about 10 ms of a 27 ms ``log-metric`` request
(bench/tracking.py). Here a request puts its message on a queue and returns; one daemon thread
with its own event loop sends the messages in the order they were queued, so a run's
``seq`` arrives in order. Best effort, as every live message: a page that misses one backfills
from the database by ``seq``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

MAX_QUEUED = 10_000  # messages waiting for Redis; beyond that new ones are dropped (and logged)

Message = tuple[str, dict[str, Any]]  # (group, message)


class Relay:
    """A queue of (group, message) and the thread that sends them, started on first use (and
    again in a forked child, where the parent's thread does not exist)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Message] = queue.Queue(MAX_QUEUED)
        self._lock = threading.Lock()
        self._pid = 0

    def send(self, group: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``group``; never blocks."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((group, message))
        except queue.Full:
            logger.warning("live message to %s dropped: %d waiting for Redis", group, MAX_QUEUED)

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every queued message was sent (or ``timeout`` seconds); True if so. Called
        before a status change goes out directly, so a run's last points precede its end."""
        if self._pid != os.getpid():
            return True
        done = threading.Event()
        try:
            self._queue.put(("", {"done": done}), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.Queue(MAX_QUEUED)
                threading.Thread(target=self._serve, name="live-relay", daemon=True).start()
                self._pid = os.getpid()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            group, message = self._queue.get()
            if not group:  # a drain() marker
                message["done"].set()
                continue
            layer = get_channel_layer()
            if layer is None:
                continue
            try:
                loop.run_until_complete(layer.group_send(group, message))
            except Exception:  # noqa: BLE001 - stored; viewers backfill by seq
                logger.warning("live message %s to %s not delivered", message.get("type"),
                               group, exc_info=True)


relay = Relay()
