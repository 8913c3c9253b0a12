"""Metric storage: the one module that knows how points are laid out in the database.

Points arrive in batches from the worker's reporter; each batch of one metric becomes one row
holding packed numpy arrays (steps, values, wall times). Reads concatenate a run's chunks and
keep the last value written for each step, so a re-sent batch never duplicates a point.

Charts never get more than about ``MAX_POINTS`` points per trace: ``downsample`` keeps the
minimum and the maximum of each bucket, so a spike survives any zoom level. Each row also holds
a summary of its batch, the minimum and maximum point of every ``SUMMARY_BLOCK`` consecutive
points (1/32 of the bytes): a chart of a long run is drawn from the summaries alone, so a run of
a million points per metric reads about 1.5 MB instead of 24 MB. A read limited to a step range
(a zoom) reads only the rows that overlap it, at full resolution when the range holds at most
``FULL_LIMIT`` points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum, Window

from webapp.experiments.models import MetricChunk

Point = tuple[int, float, float]  # (step, value, unix time)
MAX_POINTS = 2000  # per trace sent to a chart: 1000 buckets, each its minimum and maximum
SUMMARY_BLOCK = 64  # points per block of a chunk's summary (each block keeps its min and max)
# Up to this many points in a range, a chart reads them all; beyond it, the summaries (which
# then still hold at least MAX_POINTS points).
FULL_LIMIT = SUMMARY_BLOCK * MAX_POINTS // 2
COMPACT_POINTS = 50_000  # points per row once a run has ended (``compact``)
READ_ATTEMPTS = 5  # reads of a chart racing a compaction (``read_charts``)


@dataclass
class Series:
    """One metric's points, ordered by step, one value per step."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def to_json(self) -> dict[str, list[Any]]:
        """Columns for the browser; NaN/inf become null (JSON has no such numbers).

        Values keep 7 significant digits (float32 precision, more than a chart shows) and times
        millisecond precision: that halves the bytes of a 2000-point trace."""
        values = [float(f"{v:.7g}") if np.isfinite(v) else None for v in self.values.tolist()]
        times = np.round(self.times, 3).tolist()
        return {"steps": self.steps.tolist(), "values": values, "times": times}

    def between(self, x0: float | None, x1: float | None) -> Series:
        """The points with ``x0 <= step <= x1`` (an open end where a bound is None)."""
        lo = 0 if x0 is None else int(np.searchsorted(self.steps, x0, side="left"))
        hi = len(self.steps) if x1 is None else int(np.searchsorted(self.steps, x1, side="right"))
        return Series(self.steps[lo:hi], self.values[lo:hi], self.times[lo:hi])

    def take(self, index: np.ndarray | slice) -> Series:
        return Series(self.steps[index], self.values[index], self.times[index])


def append(experiment_id: int, points: Mapping[str, Sequence[Point]]) -> None:
    """Store a batch of points (one row per metric), in one INSERT."""
    rows = []
    for key, batch in points.items():
        if not batch:
            continue
        arr = np.asarray(batch, dtype=np.float64)
        rows.append(_row(experiment_id, key, Series(arr[:, 0].astype("<i8"), arr[:, 1], arr[:, 2])))
    MetricChunk.objects.bulk_create(rows)


def _row(experiment_id: int, key: str, series: Series) -> MetricChunk:
    return MetricChunk(
        experiment_id=experiment_id,
        key=key,
        first_step=int(series.steps.min()),
        last_step=int(series.steps.max()),
        count=len(series),
        steps=series.steps.astype("<i8").tobytes(),
        values=series.values.astype("<f8").tobytes(),
        times=series.times.astype("<f8").tobytes(),
        summary=_pack(_summarise(series)),
        first_time=float(series.times.min()),
        last_time=float(series.times.max()),
    )


def compact(experiment_id: int) -> int:
    """Rewrite an ended run's metrics that are spread over many small rows (a watched run's
    reporter writes one every 100 ms) as rows of COMPACT_POINTS points, so that every later
    chart reads a few rows instead of thousands. Returns how many rows fewer there are."""
    stats = (MetricChunk.objects.filter(experiment_id=experiment_id).values("key")
             .annotate(rows=Count("id"), points=Sum("count")))
    keys = [s["key"] for s in stats if s["rows"] > -(-s["points"] // COMPACT_POINTS)]
    if not keys:
        return 0
    with transaction.atomic():
        merged = read(experiment_id, keys)
        removed, _ = MetricChunk.objects.filter(experiment_id=experiment_id,
                                                key__in=keys).delete()
        rows = [_row(experiment_id, key, series.take(slice(first, first + COMPACT_POINTS)))
                for key, series in merged.items()
                for first in range(0, len(series), COMPACT_POINTS)]
        MetricChunk.objects.bulk_create(rows)
    return removed - len(rows)


def truncate(experiment_id: int, after_step: int, keep: tuple[str, ...] = ()) -> int:
    """Forget a run's points after ``after_step`` (a job resuming from the state it saved at
    that step logs them again), so each (run, metric, step) stays stored once; metrics whose
    key starts with one of ``keep`` stay whole (their steps count something else, e.g.
    seconds). Returns how many points were removed."""
    removed = 0
    chunks = MetricChunk.objects.filter(experiment_id=experiment_id)
    for prefix in keep:
        chunks = chunks.exclude(key__startswith=prefix)
    with transaction.atomic():
        later = chunks.filter(first_step__gt=after_step)
        removed += sum(later.values_list("count", flat=True))
        later.delete()
        for chunk in chunks.filter(last_step__gt=after_step):
            series = _merge([(chunk.steps, chunk.values, chunk.times)])
            kept = series.between(None, after_step)
            removed += chunk.count - len(kept)
            replacement = _row(experiment_id, chunk.key, kept)
            replacement.pk = chunk.pk
            replacement.save()
    return removed


def duplicates(experiment_id: int) -> int:
    """Points stored more than once for the same (metric, step): reads deduplicate them, so
    only this tells; a job that runs once and resumes cleanly has none."""
    extra = 0
    for key in MetricChunk.objects.filter(experiment_id=experiment_id).values_list(
            "key", flat=True).distinct():
        steps = [np.frombuffer(blob, dtype="<i8") for blob in MetricChunk.objects.filter(
            experiment_id=experiment_id, key=key).values_list("steps", flat=True)]
        merged = np.concatenate(steps)
        extra += len(merged) - len(np.unique(merged))
    return extra


def read(experiment_id: int, keys: Iterable[str] | None = None,
         x0: float | None = None, x1: float | None = None) -> dict[str, Series]:
    """Every stored metric of a run (or just ``keys``), deduplicated by step; with ``x0`` /
    ``x1``, only the points in that step range (and only the chunks that overlap it are read)."""
    return read_many([experiment_id], keys, x0, x1).get(experiment_id, {})


def read_many(experiment_ids: Iterable[int], keys: Iterable[str] | None = None,
              x0: float | None = None, x1: float | None = None) -> dict[int, dict[str, Series]]:
    """``read`` for several runs in one query (a study's trials, a comparison):
    {experiment id: {metric: series}}."""
    chunks = MetricChunk.objects.filter(experiment_id__in=list(experiment_ids))
    if keys is not None:
        chunks = chunks.filter(key__in=list(keys))
    if x0 is not None:
        chunks = chunks.filter(last_step__gte=x0)
    if x1 is not None:
        chunks = chunks.filter(first_step__lte=x1)
    out: dict[int, dict[str, Series]] = {}
    for run_id, metrics in _blobs_by_run(chunks).items():
        out[run_id] = {}
        for key, blobs in metrics.items():
            series = _merge(blobs)
            if x0 is not None or x1 is not None:
                series = series.between(x0, x1)
            out[run_id][key] = series
    return out


def latest_many(experiment_ids: Iterable[int]) -> dict[int, dict[str, Series]]:
    """The latest point of every metric of several runs (at its highest step, the last one
    written there), as ``read_many`` would end, in one query that reads only the rows holding
    it: a run's search lists each run's latest metrics, and read from every point it took a
    member's run of 100 million points (2.4 GB, within the storage quota) to answer every
    search of its project, for each of its members."""
    ids = list(experiment_ids)
    top = (MetricChunk.objects.filter(experiment_id__in=ids)
           .annotate(top=Window(Max("last_step"), partition_by=[F("experiment_id"), F("key")]))
           .filter(last_step=F("top")).values("pk"))
    return {run_id: {key: _merge(blobs).take(slice(-1, None)) for key, blobs in metrics.items()}
            for run_id, metrics in _blobs_by_run(
                MetricChunk.objects.filter(pk__in=top)).items()}


@dataclass(frozen=True)
class Span:
    """Where one stored row of a metric lies: its steps and times (``None``: a row written
    before rows kept their times, which may hold any), and how many points it holds."""

    pk: int
    first_step: int
    last_step: int
    first_time: float | None
    last_time: float | None
    count: int


def spans(experiment_id: int, key: str) -> list[Span]:
    """The rows of one metric of a run, in the order they were written, without their points:
    what a reader of part of them (``read_rows``) chooses from."""
    return [Span(*row) for row in MetricChunk.objects.filter(
        experiment_id=experiment_id, key=key).order_by("id").values_list(
        "pk", "first_step", "last_step", "first_time", "last_time", "count")]


ROWS_A_QUERY = 500  # ids in one ``read_rows`` query, below every database's limit of parameters


Blobs = tuple[bytes, bytes, bytes]  # a row's packed steps, values and times


def read_rows(pks: Sequence[int]) -> dict[int, Blobs]:
    """The packed points of the rows ``pks``, each row's as it was written (``merge`` them)."""
    rows: dict[int, Blobs] = {}
    for start in range(0, len(pks), ROWS_A_QUERY):
        for pk, steps, values, times in MetricChunk.objects.filter(
                pk__in=pks[start:start + ROWS_A_QUERY]).values_list(
                "pk", "steps", "values", "times"):
            rows[pk] = (steps, values, times)
    return rows


def merge(rows: Mapping[int, Blobs]) -> Series:
    """One series of rows read with ``read_rows``, as ``read`` keeps them: by step, the last
    written of each step. Exactly ``read``'s answer when no row left out holds one of its
    steps."""
    if not rows:
        return Series(np.empty(0, "<i8"), np.empty(0, "<f8"), np.empty(0, "<f8"))
    return _merge([rows[pk] for pk in sorted(rows)])


def _blobs_by_run(chunks: Any) -> dict[int, dict[str, list[Blobs]]]:
    """The packed columns of ``chunks`` (a MetricChunk queryset), by run and metric, in the
    order they were written."""
    parts: dict[int, dict[str, list[Blobs]]] = {}
    for run_id, key, steps, values, times in chunks.order_by("id").values_list(
            "experiment_id", "key", "steps", "values", "times"):
        parts.setdefault(run_id, {}).setdefault(key, []).append((steps, values, times))
    return parts


def _merge(blobs: list[Blobs]) -> Series:
    return _dedupe(
        np.concatenate([np.frombuffer(s, dtype="<i8") for s, _, _ in blobs]),
        np.concatenate([np.frombuffer(v, dtype="<f8") for _, v, _ in blobs]),
        np.concatenate([np.frombuffer(t, dtype="<f8") for _, _, t in blobs]),
    )


def _dedupe(steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> Series:
    if len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1])):
        return Series(steps, values, times)  # the usual case: written once, in order (no sort)
    # Keep the last write of each step: unique() on the reversed arrays finds last occurrences.
    _, last = np.unique(steps[::-1], return_index=True)
    keep = len(steps) - 1 - last
    return Series(steps[keep], values[keep], times[keep])


def _summarise(series: Series) -> Series:
    """The minimum and maximum point of every SUMMARY_BLOCK consecutive points, in order."""
    if len(series) <= 2:
        return series
    return series.take(_extremes(series.values, SUMMARY_BLOCK))


def _pack(series: Series) -> bytes:
    """steps, values and times of a (small) series, one after the other, in one blob."""
    return (series.steps.astype("<i8").tobytes() + series.values.astype("<f8").tobytes()
            + series.times.astype("<f8").tobytes())


def _unpack(blob: bytes | memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(blob) // 24  # 8 bytes each of step, value and time
    return (np.frombuffer(blob, "<i8", n, 0), np.frombuffer(blob, "<f8", n, 8 * n),
            np.frombuffer(blob, "<f8", n, 16 * n))


@dataclass
class Chart:
    """What a chart gets for one metric: at most MAX_POINTS points, and how many they stand for
    (an estimate to within a chunk at the edges of a range when drawn from summaries)."""

    series: Series
    total: int

    def to_json(self) -> dict[str, Any]:
        return {**self.series.to_json(), "total": self.total,
                "bucketed": len(self.series) < self.total}


StepRange = tuple[float | None, float | None]


def read_charts(ranges: Mapping[int, StepRange], keys: Iterable[str] | None = None,
                max_points: int = MAX_POINTS) -> dict[int, dict[str, Chart]]:
    """Chart data of several runs ({run id: (x0, x1) step range, None for an open end}) in one
    or two queries whatever the number of runs: the rows' summaries first, then the full points
    of the metrics whose range holds at most FULL_LIMIT of them (or that predate summaries)."""
    if not ranges:
        return {}
    # The two reads are two statements: a compaction (the run just ended) committed between
    # them replaces the rows the first one listed, and the second then misses them. Read again
    # until the second finds every row the first listed (compaction runs once per run).
    for _ in range(READ_ATTEMPTS - 1):
        charts = _read_charts(ranges, keys, max_points)
        if charts is not None:
            return charts
    return _read_charts(ranges, keys, max_points, consistent=False) or {}


def _read_charts(ranges: Mapping[int, StepRange], keys: Iterable[str] | None, max_points: int,
                 consistent: bool = True) -> dict[int, dict[str, Chart]] | None:
    """One read of ``read_charts``; None (with ``consistent``) when rows listed by the first
    query were gone by the second."""
    where = Q()
    for run_id, (x0, x1) in ranges.items():
        clause = Q(experiment_id=run_id)
        if x0 is not None:
            clause &= Q(last_step__gte=x0)
        if x1 is not None:
            clause &= Q(first_step__lte=x1)
        where |= clause
    chunks = MetricChunk.objects.filter(where)
    if keys is not None:
        chunks = chunks.filter(key__in=list(keys))
    groups: dict[tuple[int, str], list[tuple[int, int, bytes]]] = {}
    for pk, run_id, key, count, summary in chunks.order_by("id").values_list(
        "id", "experiment_id", "key", "count", "summary"
    ):
        groups.setdefault((run_id, key), []).append((pk, count, summary))
    full_ids = [pk for parts in groups.values()
                if sum(c for _, c, _ in parts) <= FULL_LIMIT or any(not s for _, _, s in parts)
                for pk, _, _ in parts]
    full: dict[tuple[int, str], list[tuple[bytes, bytes, bytes]]] = {}
    found = 0
    for run_id, key, steps, values, times in _full_rows(full_ids):
        full.setdefault((run_id, key), []).append((steps, values, times))
        found += 1
    if consistent and found < len(full_ids):
        return None
    out: dict[int, dict[str, Chart]] = {run_id: {} for run_id in ranges}
    for (run_id, key), parts in groups.items():
        x0, x1 = ranges[run_id]
        if (run_id, key) in full:
            series = _merge(full[run_id, key]).between(x0, x1)
            total = len(series)
        else:
            blocks = [_unpack(summary) for _, _, summary in parts]
            series = _dedupe(*(np.concatenate(column) for column in zip(*blocks, strict=True)))
            series = series.between(x0, x1)
            total = sum(c for _, c, _ in parts)
        out[run_id][key] = Chart(downsample(series, max_points), max(total, len(series)))
    return out


def _full_rows(ids: list[int]) -> list[tuple[int, str, bytes, bytes, bytes]]:
    """The points of the rows ``ids`` that still exist, in the order they were written."""
    if not ids:
        return []
    return list(MetricChunk.objects.filter(pk__in=ids).order_by("id").values_list(
        "experiment_id", "key", "steps", "values", "times"))


def downsample(series: Series, max_points: int = MAX_POINTS) -> Series:
    """At most ``max_points`` points of ``series`` that draw the same picture: the points are
    split into ``max_points // 2`` buckets of consecutive points, and each bucket keeps its
    minimum and its maximum (in step order), plus the first and last point of the series.

    Unlike averaging or taking every n-th point this never hides a spike. Non-finite values
    (a diverged run) never win a bucket over a finite one; an all-NaN bucket keeps one NaN."""
    n = len(series)
    if n <= max_points:
        return series
    buckets = max(1, (max_points - 2) // 2)
    return series.take(_extremes(series.values, -(-n // buckets)))  # ceil: buckets fit


def _extremes(values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the first and last value and of the minimum and maximum of every ``size``
    consecutive values, ascending."""
    n = len(values)
    buckets = -(-n // size)
    padded = buckets * size
    low = np.full(padded, np.inf)
    high = np.full(padded, -np.inf)
    finite = np.isfinite(values)
    low[:n] = np.where(finite, values, np.inf)
    high[:n] = np.where(finite, values, -np.inf)
    base = np.arange(buckets) * size
    arg_min = base + low.reshape(buckets, size).argmin(axis=1)
    arg_max = base + high.reshape(buckets, size).argmax(axis=1)
    index = np.unique(np.concatenate([[0, n - 1], arg_min, arg_max]))
    return index[index < n]
