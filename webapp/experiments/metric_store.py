"""Metric storage: the one module that knows how points are laid out in the database.

Points arrive in batches from the worker's reporter; each batch of one metric becomes one row
holding packed numpy arrays (steps, values, wall times). Reads concatenate a run's chunks and
keep the last value written for each step, so a re-sent batch never duplicates a point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.experiments.models import MetricChunk

Point = tuple[int, float, float]  # (step, value, unix time)


@dataclass
class Series:
    """One metric's points, ordered by step, one value per step."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def to_json(self) -> dict[str, list[Any]]:
        """Columns for the browser; NaN/inf become null (JSON has no such numbers)."""
        values = [v if np.isfinite(v) else None for v in self.values.tolist()]
        return {"steps": self.steps.tolist(), "values": values, "times": self.times.tolist()}


def append(experiment_id: int, points: Mapping[str, Sequence[Point]]) -> None:
    """Store a batch of points (one row per metric), in one INSERT."""
    rows = []
    for key, batch in points.items():
        if not batch:
            continue
        arr = np.asarray(batch, dtype=np.float64)
        steps = arr[:, 0].astype("<i8")
        rows.append(
            MetricChunk(
                experiment_id=experiment_id,
                key=key,
                first_step=int(steps.min()),
                last_step=int(steps.max()),
                count=len(steps),
                steps=steps.tobytes(),
                values=arr[:, 1].astype("<f8").tobytes(),
                times=arr[:, 2].astype("<f8").tobytes(),
            )
        )
    MetricChunk.objects.bulk_create(rows)


def read(experiment_id: int, keys: Iterable[str] | None = None) -> dict[str, Series]:
    """Every stored metric of a run (or just ``keys``), deduplicated by step."""
    chunks = MetricChunk.objects.filter(experiment_id=experiment_id)
    if keys is not None:
        chunks = chunks.filter(key__in=list(keys))
    parts: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
    for key, steps, values, times in chunks.order_by("id").values_list(
        "key", "steps", "values", "times"
    ):
        parts.setdefault(key, []).append((bytes(steps), bytes(values), bytes(times)))
    return {key: _merge(blobs) for key, blobs in parts.items()}


def read_many(experiment_ids: Iterable[int], keys: Iterable[str]) -> dict[int, dict[str, Series]]:
    """``read`` for several runs in one query (a study's trials): run id → metric → series."""
    chunks = MetricChunk.objects.filter(experiment_id__in=list(experiment_ids), key__in=list(keys))
    parts: dict[int, dict[str, list[tuple[bytes, bytes, bytes]]]] = {}
    for run, key, steps, values, times in chunks.order_by("id").values_list(
        "experiment_id", "key", "steps", "values", "times"
    ):
        parts.setdefault(run, {}).setdefault(key, []).append(
            (bytes(steps), bytes(values), bytes(times))
        )
    return {run: {key: _merge(b) for key, b in blobs.items()} for run, blobs in parts.items()}


def _merge(blobs: list[tuple[bytes, bytes, bytes]]) -> Series:
    steps = np.concatenate([np.frombuffer(s, dtype="<i8") for s, _, _ in blobs])
    values = np.concatenate([np.frombuffer(v, dtype="<f8") for _, v, _ in blobs])
    times = np.concatenate([np.frombuffer(t, dtype="<f8") for _, _, t in blobs])
    # Keep the last write of each step: unique() on the reversed arrays finds last occurrences.
    _, last = np.unique(steps[::-1], return_index=True)
    keep = len(steps) - 1 - last
    return Series(steps[keep], values[keep], times[keep])
