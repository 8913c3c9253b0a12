"""How the engine talks to the world: the Reporter protocol and an in-memory implementation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class Reporter(Protocol):
    """Receives metric points, status, checkpoints; answers whether to stop."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Metric values at a global optimizer step (1-based)."""

    def status(self, message: str, **fields: Any) -> None:
        """A human-readable progress message plus structured progress (epoch, step, ...)."""

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        """A checkpoint archive was written at ``path`` (tag "best" or "last"); ``sha256`` is
        its digest, which ``checkpoints.save`` returns, so nobody reads the file again."""

    def should_stop(self) -> bool:
        """True when the run should stop at the next step (cancellation)."""

    # Optional (the loop calls it when present): ``sync()`` returns once every point logged so
    # far is stored for good. A resumable run calls it before saving its state, so that a run
    # resumed from the state at step k has every point up to k.


class MemoryReporter:
    """Keeps everything in lists: for tests, notebooks and scripts."""

    def __init__(self, stop_after_step: int | None = None) -> None:
        self.points: list[tuple[int, dict[str, float]]] = []
        self.statuses: list[tuple[str, dict[str, Any]]] = []
        self.checkpoints: list[tuple[Path, str, dict[str, float]]] = []
        self.stop_after_step = stop_after_step

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.points.append((step, dict(metrics)))

    def status(self, message: str, **fields: Any) -> None:
        self.statuses.append((message, fields))

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        self.checkpoints.append((path, tag, dict(metrics)))

    def sync(self) -> None:
        """Points are stored as they are logged: nothing to wait for."""

    def should_stop(self) -> bool:
        last = self.points[-1][0] if self.points else 0
        return self.stop_after_step is not None and last >= self.stop_after_step

    def series(self, key: str) -> list[tuple[int, float]]:
        """Every (step, value) logged for one metric, in order."""
        return [(step, m[key]) for step, m in self.points if key in m]
