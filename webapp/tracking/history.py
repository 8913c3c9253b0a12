"""A page of a metric's history as MLflow's server answers ``get_metric_history``: its points in
the server's order (by time in milliseconds, then step, then value), read from the stored rows
that can hold the page, not from the whole series.

mlflow's client reads a history 25,000 points a page: a run of a million points is 40 pages, and
reading every point for each (the page token was an offset into the whole sorted series) read
the series 40 times. Rows keep their earliest and latest time (``MetricChunk.first_time``), so a
page reads, in the order of their earliest times, the rows that may hold a point after the last
one the previous page gave, until a page's worth is found and no unread row can hold an earlier
point; and each row that holds one of the page's steps, since the row written last of a step
holds its point (``metric_store.merge``). The token is that last point's place in the order (a
cursor), so the pages join to exactly the whole history however its times and steps lie; rows
written before rows kept their times are read for every page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from webapp.experiments import metric_store
from webapp.tracking.api import ApiError

TOKEN_PREFIX = "after:"


@dataclass(frozen=True)
class Cursor:
    """A point's place in the history's order: its time (ms), its step as logged, its value and
    its stored step (which tells apart two points alike in the rest)."""

    stamp: int
    step: int
    value: float
    stored: int

    def token(self) -> str:
        return f"{TOKEN_PREFIX}{self.stamp}:{self.step}:{self.stored}:{self.value!r}"

    @classmethod
    def of_token(cls, token: str) -> Cursor:
        try:
            stamp, step, stored, value = token.removeprefix(TOKEN_PREFIX).split(":")
            return cls(int(stamp), int(step), float(value), int(stored))
        except ValueError:
            raise ApiError("INVALID_PARAMETER_VALUE",
                           f"invalid page_token {token[:60]!r}") from None


@dataclass(frozen=True)
class Page:
    """The page's points as mlflow's client reads them, and the token of the next page."""

    steps: np.ndarray  # as logged
    values: np.ndarray
    stamps: np.ndarray  # ms since the epoch
    next_token: str | None


@dataclass(frozen=True)
class Ordered:
    """Points of a metric in the history's order, with the columns that order them."""

    stamps: np.ndarray
    steps: np.ndarray  # as logged
    values: np.ndarray
    stored: np.ndarray

    def __len__(self) -> int:
        return len(self.stamps)

    def cursor(self, at: int) -> Cursor:
        return Cursor(int(self.stamps[at]), int(self.steps[at]), float(self.values[at]),
                      int(self.stored[at]))


def stamps_of(times: np.ndarray) -> np.ndarray:
    """Times in seconds as MLflow's milliseconds."""
    return np.round(times * 1000).astype(np.int64)


@dataclass(frozen=True)
class Rows:
    """A metric's stored rows (``metric_store.spans``) as columns, their times as MLflow's
    milliseconds (from -inf to inf for a row that did not keep them: it may hold any)."""

    pks: np.ndarray
    first_steps: np.ndarray
    last_steps: np.ndarray
    first_stamps: np.ndarray
    last_stamps: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, spans: Sequence[metric_store.Span]) -> Rows:
        def stamps(times: list[float | None], unknown: float) -> np.ndarray:
            seconds = np.array([unknown if t is None else t for t in times], dtype=np.float64)
            return np.round(seconds * 1000)  # (an infinite unknown stays infinite)

        return cls(np.array([s.pk for s in spans], dtype=np.int64),
                   np.array([s.first_step for s in spans], dtype=np.int64),
                   np.array([s.last_step for s in spans], dtype=np.int64),
                   stamps([s.first_time for s in spans], -math.inf),
                   stamps([s.last_time for s in spans], math.inf),
                   np.array([s.count for s in spans], dtype=np.int64))

    def following(self, after: Cursor | None) -> np.ndarray:
        """Which rows may hold a point after ``after``."""
        return np.ones(len(self.pks), bool) if after is None else self.last_stamps >= after.stamp

    def earliest_until(self, which: np.ndarray, points: int) -> np.ndarray:
        """The rows of ``which``, earliest first, until they hold more than ``points``."""
        order = np.flatnonzero(which)[np.argsort(self.first_stamps[which], kind="stable")]
        held = np.cumsum(self.counts[order])
        return order[:int(np.searchsorted(held, points, side="right")) + 1]

    def holding(self, steps: np.ndarray) -> np.ndarray:
        """Which rows' steps reach one of ``steps`` (sorted)."""
        if not len(steps):
            return np.zeros(len(self.pks), bool)
        at = np.searchsorted(steps, self.first_steps)
        return (at < len(steps)) & (steps[np.minimum(at, len(steps) - 1)] <= self.last_steps)


def page(run_id: int, stored: str, logged: Callable[[np.ndarray], np.ndarray],
         after: Cursor | None, limit: int) -> Page:
    """The first ``limit`` points of metric ``stored`` of the run after ``after`` (from the
    first without it); ``logged`` gives the steps a script logged of the stored ones."""
    spans = Rows.of(metric_store.spans(run_id, stored))
    rows: dict[int, metric_store.Blobs] = {}
    read = np.zeros(len(spans.pks), bool)
    wanted = spans.earliest_until(spans.following(after), limit)
    ahead = Ordered(*(np.empty(0, dtype) for dtype in ("<i8", "<i8", "<f8", "<i8")))
    while len(wanted):
        read[wanted] = True
        asked = spans.pks[wanted].tolist()
        rows.update(metric_store.read_rows(asked))
        if not rows.keys() >= set(asked):  # compacted or truncated since: read it whole
            whole = metric_store.read(run_id, [stored]).get(stored, metric_store.merge({}))
            ahead = _ahead(whole, logged, after, limit + 1)
            break
        ahead = _ahead(metric_store.merge(rows), logged, after, limit + 1)
        wanted = _missing(spans, read, ahead, after, limit)
    more = len(ahead) > limit
    return Page(ahead.steps[:limit], ahead.values[:limit], ahead.stamps[:limit],
                ahead.cursor(limit - 1).token() if more else None)


def _ahead(series: metric_store.Series, logged: Callable[[np.ndarray], np.ndarray],
           after: Cursor | None, size: int) -> Ordered:
    """The first ``size`` points of ``series`` after ``after``, in the history's order."""
    points = Ordered(stamps_of(series.times), logged(series.steps), series.values,
                     series.steps)
    index = np.lexsort((points.stored, points.values, points.steps, points.stamps))
    if after is not None:
        index = index[_after(points, after)[index]]
    index = index[:size]
    return Ordered(points.stamps[index], points.steps[index], points.values[index],
                   points.stored[index])


def _after(points: Ordered, cursor: Cursor) -> np.ndarray:
    """Which points come after ``cursor`` in the history's order (a NaN value last, as
    ``np.lexsort`` places it)."""
    nan = np.isnan(points.values)
    if math.isnan(cursor.value):
        value_later, value_same = np.zeros_like(nan), nan
    else:
        value_later, value_same = nan | (points.values > cursor.value), \
            points.values == cursor.value
    later = value_later | (value_same & (points.stored > cursor.stored))
    later = (points.steps > cursor.step) | ((points.steps == cursor.step) & later)
    return (points.stamps > cursor.stamp) | ((points.stamps == cursor.stamp) & later)


def _missing(spans: Rows, read: np.ndarray, ahead: Ordered, after: Cursor | None,
             limit: int) -> np.ndarray:
    """The unread rows that may change the page ``ahead`` (a page's worth and one, the one
    telling that more follow): those holding one of its steps (a later write of the step
    replaces its point), and those that may hold a point before its last; when it is short,
    the next ones, earliest first, that may hold what it lacks."""
    unread = ~read
    missing = unread & spans.holding(np.sort(ahead.stored))
    following = unread & spans.following(after)
    if len(ahead) > limit:
        missing |= following & (spans.first_stamps <= ahead.stamps[-1])
    else:
        missing[spans.earliest_until(following, limit - len(ahead))] = True
    return np.flatnonzero(missing)
