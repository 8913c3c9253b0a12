"""Runs trained elsewhere: creating them, storing what their scripts log, ending them.

``log_columns`` (``log_to_run`` for points one by one) is the one way points, params and tags of
an external run reach the database and the live pages, whichever API carries them (the
MLflow-compatible views, the native client's): one
transaction per call, the points in one bulk insert through ``metric_store``, then one live
"run.points" message with the run's next ``seq`` after commit, exactly what a worker's reporter
sends for a form run (``reporting.points_message``), so the run page cannot tell them apart.

Metric names are mapped to the ones the diagnostics read (``experiments.external``); a run whose
names do not map still gets its curves, and its page says why it has no verdict.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from webapp.experiments import events, external, metric_store
from webapp.experiments.compare import higher_is_better
from webapp.experiments.models import POINT_BYTES, Experiment, MetricChunk, chunk_row_bytes
from webapp.experiments.relay import relay
from webapp.experiments.reporting import list_message, points_message
from webapp.projects import storage
from webapp.projects.models import Project

WORKER = "external"  # the run's ``worker``: no Fitboard worker holds it
MAX_KEY = external.STORED_CHARS  # characters of a metric name
# Characters of the text a script sends, MLflow's own limits (mlflow/utils/validation.py), each
# answered as MLflow's server answers it (INVALID_PARAMETER_VALUE): a 100 MB tag value was
# stored, and every later write to the run read and rewrote it.
MAX_NAME = 250  # a param's or tag's name (MAX_ENTITY_KEY_LENGTH)
MAX_PARAM = 6000  # a param's value (MAX_PARAM_VAL_LENGTH)
MAX_TAG = 8000  # a run's or logged model's tag value (MAX_TAG_VAL_LENGTH)
MAX_EXPERIMENT_TAG = 20_000  # an experiment's tag value (MLflow 3's MAX_EXPERIMENT_TAG_VAL_LENGTH)
# Characters of the names and values of one run's (or logged model's) params and tags together.
# MLflow stores a row per param; here they live in the run's row, which every write to the run
# reads and rewrites, so their sum is bounded: 100 requests of 100 tags of 8000 characters made
# an 80 MB row. A flattened config of 1,000 params of 100 characters is a tenth of it.
MAX_HELD = 1_000_000
# Distinct metric names one run holds. The run's table of names (logged → stored) lives in its
# progress, which every log request rewrites and sends to the run's viewers, and its page draws
# a trace per name: a script logging 1,000 new names a request had made it 850 kB and 2 s a
# request after 40 requests (and growing), and a run page of 1.2 MB. MLflow's log_batch carries
# at most 1,000 metrics, and a model with a metric per class of 100 classes logs a few hundred.
MAX_METRICS = 1000
# Points of a run between two looks at its creator's storage quota (2.4 MB of them, or their
# worth in bytes: POINT_BYTES a point, and its rows' ``chunk_row_bytes``).
ROOM_CHECK_POINTS = 100_000
# Points from which a run's quota looks double (``_room_look``).
ROOM_FIRST_DOUBLING = 1024
# A step is an int64 and a time an int64 count of milliseconds, as in MLflow's protocol: a point
# past them (a step of 10**30, a time of inf) was stored, and every later read of the run (its
# JSON, a search of its project, its charts) failed on it, for every member of the project.
INT64 = 2**63
MAX_SECONDS = INT64 / 1000  # of a point's time, either side of 1970
# Seconds between two live verdicts of one run: each reads the run's whole evaluation history,
# and a script logging eval points one request at a time would pay that on every request. The
# first evaluation gets one at once, the end of the run the final one.
VERDICT_EVERY = 2.0


class IngestError(ValueError):
    """Input a run cannot take (a param changed, a bad metric map): the caller's 400."""


# One metric's points as three columns: steps, values, unix times (seconds).
Columns = tuple[Sequence[int], Sequence[float], Sequence[float]]


@dataclass(frozen=True)
class Point:
    """One logged value: the script's metric name, its value, step and unix time (seconds)."""

    key: str
    value: float
    step: int
    time: float


def create_run(user: Any, project: Project, name: str, tags: Mapping[str, str],
               started: float | None = None, params: Mapping[str, str] | None = None,
               beats: bool = False) -> Experiment:
    """A new external run, running from now, with its ``tags`` and ``params``: queued and
    started in one transaction, so no worker or housekeeper ever sees it queued. ``beats``:
    its client sends heartbeats (``Experiment.beats``)."""
    params = dict(params or {})
    check_tags(tags)
    check_lengths("param", params, MAX_PARAM)
    check_held(params, tags, "run")
    when = moment(started) if started is not None else None
    spec = {"params": params, "tags": dict(tags)}
    with transaction.atomic():
        check_run_rate(user)
        reserve_text(user, {}, spec, "run not created")
        run = Experiment.objects.create(
            project=project, name=name[:200] or generated_name(), kind=Experiment.Kind.EXTERNAL,
            spec=spec, created_by=user, progress={"message": "logging from a script", "seq": 0},
            beats=beats)
        run.start(WORKER)
        if when is not None:  # the script's own clock, for the run's duration
            Experiment.objects.filter(pk=run.pk).update(started_at=when)
            run.started_at = when
    return run


# A run a script did not name gets a name of two words and a number, as MLflow's server gives
# one ("bold-fox-417"): a project of unnamed runs (GridSearchCV's children under autolog) lists
# each by a name of its own, not a column of "external run".
NAME_WORDS = (
    ("amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "gentle", "golden", "keen",
     "lucky", "mellow", "nimble", "quiet", "rapid", "silver", "steady", "sunny", "swift", "vivid"),
    ("badger", "crane", "dolphin", "falcon", "fox", "gecko", "heron", "ibex", "jaguar", "koala",
     "lynx", "marten", "newt", "otter", "panda", "quail", "raven", "seal", "tiger", "wren"))


def generated_name() -> str:
    adjective, animal = (secrets.choice(words) for words in NAME_WORDS)
    return f"{adjective}-{animal}-{secrets.randbelow(1000):03}"


def check_run_rate(user: Any) -> None:
    """IngestError when ``user``'s scripts created FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR runs in
    the last hour. Counted under the user's row lock (the quotas'), so creations sent at once
    cannot all pass one count."""
    limit = settings.FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR
    if not limit or user is None:
        return
    made = storage.made_in_the_last_hour(
        user, Experiment.objects.filter(created_by=user, kind=Experiment.Kind.EXTERNAL))
    if made >= limit:
        raise IngestError(f"your scripts created {made:,} runs in the last hour; the limit is "
                          f"{limit:,} (FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR): log into fewer "
                          "runs, or wait")


def reserve_text(user: Any, old: Any, new: Any, refused: str) -> None:
    """IngestError (``refused``, and why) when text ``new`` replacing ``old`` (a run's spec, a
    logged model's params and tags) takes ``user`` (or the user of that id: who the quota
    counts it for, ``tracking.models.text_stored_by``) past their storage quota. Called in the
    write's transaction, under the row lock of what it changes, where text is added: a write
    that adds none (points alone, a param sent again) does not count."""
    growth = text_bytes(new) - text_bytes(old)
    if growth <= 0:
        return
    try:
        storage.reserve(user, growth)
    except storage.OverStorageQuota as exc:
        raise IngestError(f"{refused}: {exc}") from None


def text_bytes(value: Any) -> int:
    """Bytes of ``value`` as JSON, as Django writes a JSON field (what SQLite stores; about
    what PostgreSQL stores before it compresses)."""
    return len(json.dumps(value))


def log_to_run(run: Experiment, points: Sequence[Point] = (),
               params: Mapping[str, str] | None = None,
               tags: Mapping[str, str] | None = None, locked: bool = False) -> None:
    """Store ``points``, ``params`` and ``tags`` of an external run (see ``log_columns``)."""
    columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for point in points:
        steps, values, times = columns.setdefault(point.key, ([], [], []))
        steps.append(point.step)
        values.append(point.value)
        times.append(point.time)
    log_columns(run, columns, params, tags, locked)


def log_columns(run: Experiment, columns: Mapping[str, Columns],
                params: Mapping[str, str] | None = None,
                tags: Mapping[str, str] | None = None, locked: bool = False) -> None:
    """Store points given as columns per metric ({name: (steps, values, times)}), ``params``
    and ``tags`` of an external run in one transaction and send its viewers one live message
    after commit. A param logged again must keep its value (as in MLflow): IngestError
    otherwise, and nothing is stored. ``locked``: the caller read ``run`` under its row lock
    in the transaction it has open (a view checks the run it logs into with that one read),
    so it is not read again."""
    params, tags = dict(params or {}), dict(tags or {})
    check_tags(tags)
    check_columns(columns)
    if locked and not transaction.get_connection().in_atomic_block:
        raise RuntimeError("locked=True outside the transaction that read the run")
    # No savepoint inside the transaction of a caller that locked the run: an error here
    # rolls all of it back.
    with transaction.atomic(savepoint=not locked):
        # The row lock orders concurrent requests of one run: each gets the next seq.
        row = run if locked else Experiment.objects.select_for_update().get(pk=run.pk)
        spec = _spec_with(row, params, tags)
        progress = dict(row.progress)
        keys = dict(progress.get("keys", {}))
        numbering = Numbering.of(progress)
        batch = _stored_points(row.pk, columns, keys, external.overrides(spec["tags"]),
                               numbering)
        last_step = max((point[0] for points in batch.values() for point in points),
                        default=0)
        held, held_bytes = _room_for(row, progress, batch)
        if batch:
            metric_store.append(row.pk, batch)
        evaluated = any(key.startswith("val_") for key in batch)
        # A run that logs no validation loss is judged on its training loss alone: its
        # training points make a verdict due (still at most one per VERDICT_EVERY).
        training_only = "train_loss" in batch and "val_loss" not in keys.values()
        seq = int(progress.get("seq", 0)) + 1
        progress.update(seq=seq, keys=keys, numbering=numbering.state(), stored_points=held,
                        stored_bytes=held_bytes)
        if len(keys) > len(row.progress.get("keys", {})):  # its table of names grows
            reserve_text(row.created_by_id, row.progress, progress,
                         f"new metric names of run {row.pk} not stored")
        if batch:
            progress["step"] = max(int(progress.get("step", 0)), last_step)
        now = timezone.now()
        changes: dict[str, Any] = {"progress": progress, "heartbeat_at": now}
        if params or tags:  # else the spec is the row's: not written again with every point
            changes["spec"] = spec
        judged = ((evaluated or training_only) and not row.is_terminal
                  and _verdict_due(progress, now.timestamp()))
        if judged:
            verdict = external.live_verdict(row.pk, spec, progress)
            progress["verdict"], progress["verdict_at"] = verdict, now.timestamp()
            changes["verdict_kind"] = (verdict or {}).get("kind", "")
            row.signal_verdict(changes["verdict_kind"], row.verdict_kind, final=False)
        Experiment.objects.filter(pk=row.pk).update(**changes)
        run.spec, run.progress = spec, progress
        # The list shows the run's progress and verdict: told when an evaluation arrives (or a
        # training-only run's verdict, and at the first batch), not on every batch of a fast
        # script.
        listed = evaluated or judged or seq == 1
        transaction.on_commit(lambda: _publish(row, seq, batch, progress, listed))


def _spec_with(row: Experiment, params: Mapping[str, str], tags: Mapping[str, str]
               ) -> dict[str, Any]:
    """The run's spec with ``params`` and ``tags`` added; IngestError for a param logged again
    with another value, past the limits, or past its creator's storage quota (checked only
    when text is added: never on the points' path)."""
    spec = {**row.spec, "params": dict(row.spec.get("params", {})),
            "tags": dict(row.spec.get("tags", {}))}
    _merge_params(spec["params"], params)
    spec["tags"].update(tags)
    check_held(spec["params"], spec["tags"], f"run {row.pk}")
    if params or tags:
        reserve_text(row.created_by_id, row.spec, spec,
                     f"params and tags of run {row.pk} not stored")
    return spec


def _room_for(row: Experiment, progress: Mapping[str, Any],
              batch: Mapping[str, Sequence[metric_store.Point]]) -> tuple[int, int]:
    """The run's points, and the bytes they count for, once ``batch`` is stored; IngestError
    past FITBOARD_MAX_POINTS_PER_RUN, or when its creator is at their storage quota, which
    metric points and their rows count towards (``Experiment``'s storage counter: a batch
    writes a row per metric, ``chunk_row_bytes`` each, so a script logging a point a request
    counts what its rows take, not 24 bytes a point).
    Looked at with a run's first points, then as its bytes double and once every
    ROOM_CHECK_POINTS points' worth of them (``_room_look``), so that a script logging point
    by point pays for the count rarely, and a member's scripts cannot fill the database far
    past their quota. The bytes are summed from the batch, in the run's progress: no query."""
    held = int(progress.get("stored_points", 0))
    held_bytes = int(progress.get("stored_bytes", held * POINT_BYTES))  # (runs before rows)
    adding = sum(len(points) for points in batch.values())
    adding_bytes = sum(len(points) * POINT_BYTES + chunk_row_bytes(key)
                       for key, points in batch.items() if points)
    most = settings.FITBOARD_MAX_POINTS_PER_RUN
    if adding and most and held + adding > most:
        raise IngestError(f"{adding:,} points of run {row.pk} not stored: a run holds at most "
                          f"{most:,} (FITBOARD_MAX_POINTS_PER_RUN), and it holds {held:,}; "
                          "log into a new run, or less often")
    if adding and (_room_look(held_bytes // POINT_BYTES)
                   != _room_look((held_bytes + adding_bytes) // POINT_BYTES)):
        problem = storage.problem(row.created_by_id, adding_bytes)
        if problem:
            raise IngestError(f"{adding:,} points of run {row.pk} not stored: {problem}")
    return held + adding, held_bytes + adding_bytes


def _room_look(points: int) -> int:
    """Which look at the quota a run holding ``points`` (points' worth of bytes: POINT_BYTES
    each, its rows' included) is past: one with its first points,
    one at each power of two from ROOM_FIRST_DOUBLING to ROOM_CHECK_POINTS, then one every
    ROOM_CHECK_POINTS. Between two looks a run adds at
    most what it held at the first, so a user's runs together go at most their quota past it:
    with a look only every ROOM_CHECK_POINTS, a script that gave 1,000 runs a point each while
    under the quota then added 99,998 points to each, unlooked at (2.4 GB past it)."""
    if points < ROOM_FIRST_DOUBLING:
        # One look with the first points, none at the next few: a script logging point by
        # point pays no count per request (1,024 points' worth is 24 kB: a hundred rows).
        return min(points, 1)
    if points < ROOM_CHECK_POINTS:
        return points.bit_length()
    return ROOM_CHECK_POINTS.bit_length() + points // ROOM_CHECK_POINTS


def _stored_points(run_id: int, columns: Mapping[str, Columns], keys: dict[str, str],
                   mapping: Mapping[str, str], numbering: Numbering
                   ) -> dict[str, list[metric_store.Point]]:
    """The points of ``columns`` under their stored names and steps, taking names for new
    metrics into ``keys`` ({logged: stored}); IngestError past MAX_METRICS names or for a name
    the run's map cannot take."""
    new_names = sum(1 for key, (steps, _, _) in columns.items() if steps and key not in keys)
    if len(keys) + new_names > MAX_METRICS:
        raise IngestError(f"a run holds at most {MAX_METRICS:,} metric names: run {run_id} "
                          f"has {len(keys):,}, and this request adds {new_names:,} new ones")
    batch: dict[str, list[metric_store.Point]] = {}
    for key, (logged_steps, values, times) in columns.items():
        if not logged_steps:
            continue
        _reclaim(run_id, key, logged_steps, keys, mapping, batch, numbering)
        try:
            stored = keys.get(key) or external.assign(key, mapping, keys)
        except external.MetricMapError as exc:
            raise IngestError(str(exc)) from None
        logged_steps, values, times = _not_resent(run_id, stored, logged_steps, values, times,
                                                  numbering)
        if not logged_steps:
            continue
        steps = numbering.number(stored, logged_steps, times)
        batch.setdefault(stored, []).extend(zip(steps, values, times, strict=True))
    return batch


def _not_resent(run_id: int, stored: str, steps: Sequence[int], values: Sequence[float],
                times: Sequence[float], numbering: Numbering) -> Columns:
    """A metric's points less those logged at step 0 that the run already holds, sent again:
    ``mlflow.<flavor>.log_model()`` re-sends every point the run logged at step 0 (to link it
    to the model: Keras's autolog logs its evaluations so, and its first epoch), and MLflow's
    server ignores a point whose name, step, value and time it holds. A point at another step
    replaces its step's, but one at step 0 is numbered anew (``Numbering``), so it is compared
    with the stored points of the metric: read only when it is no later than the metric's
    latest point at step 0 (a script logging without steps sends later ones)."""
    if 0 not in steps:
        return steps, values, times
    latest = numbering.zero_times.get(stored)
    held: set[tuple[float | None, float]] = set()
    if latest is not None and any(s == 0 and t <= latest for s, t in zip(steps, times,
                                                                         strict=True)):
        found = metric_store.read(run_id, [stored]).get(stored)
        if found is not None:
            held = {(_comparable(v), t) for v, t in zip(found.values.tolist(),
                                                         found.times.tolist(), strict=True)}
    kept = []
    for step, value, time in zip(steps, values, times, strict=True):
        if step == 0:
            if (_comparable(value), time) in held:
                continue
            held.add((_comparable(value), time))
        kept.append((step, value, time))
    return [p[0] for p in kept], [p[1] for p in kept], [p[2] for p in kept]


def _comparable(value: float) -> float | None:
    """A value as points are compared: NaN equals NaN (MLflow stores it as a flag)."""
    return None if math.isnan(value) else value


@dataclass
class Numbering:
    """Steps for points a script logs without one. MLflow's client sends step 0 when a call
    gives none (``mlflow.log_metric("loss", v)`` in a loop, Keras's callback after each
    evaluation); the metric store keeps one point per step, so all but the last were lost, to
    the curves, the verdict and mlflow's own reader. A point at step 0 of a metric that already
    has one there (or of a new metric, once the run logs without steps) is numbered one past
    the run's last step instead, so that the run's metrics share one axis, the order they arrived
    in (a validation point lands after the training points logged before it): the points keep
    their order, values and times, and the metric is marked as logged without steps. System
    metrics (``system/...``) count their own samples from 0 and are left as they are. A metric
    whose every point came at step 0 is read back by mlflow's client at step 0, as MLflow's
    server would answer (``zero_steps``, see ``logged_step``). A first point at step 0 that
    arrives after later steps (mlflow's asynchronous logging sends its batches from several
    threads at once) keeps its step."""

    seen: set[str]  # stored metrics with points (the run's table of names says which)
    run_last: int  # the run's last step, all metrics: at or past each metric's last
    stepless: set[str]  # stored metrics that were numbered so
    zero_steps: set[str]  # stored metrics whose every point was logged at step 0
    zeroed: set[str]  # stored metrics that have a point at step 0
    # the latest time (unix seconds) of a point logged at step 0, by stored metric: a point
    # sent again is no later (see _not_resent)
    zero_times: dict[str, float]

    @classmethod
    def of(cls, progress: Mapping[str, Any]) -> Numbering:
        state = progress.get("numbering", {})
        return cls(set(progress.get("keys", {}).values()), int(progress.get("step", 0)),
                   stepless=set(state.get("stepless", ())),
                   zero_steps=set(state.get("zero_steps", ())),
                   zeroed=set(state.get("zeroed", ())),
                   zero_times=dict(state.get("zero_times", {})))

    def state(self) -> dict[str, Any]:
        """What the run's progress keeps of it (``numbering``; never sent to its pages)."""
        return {"stepless": sorted(self.stepless), "zero_steps": sorted(self.zero_steps),
                "zeroed": sorted(self.zeroed), "zero_times": self.zero_times}

    def number(self, stored: str, steps: Sequence[int], times: Sequence[float]) -> list[int]:
        for step, time in zip(steps, times, strict=True):
            if step == 0:
                self.zero_times[stored] = max(time, self.zero_times.get(stored, time))
        if stored.startswith("system/"):
            return list(steps)
        new = stored not in self.seen
        if new and steps[0] == 0:
            self.zero_steps.add(stored)
        if any(steps):
            self.zero_steps.discard(stored)
        numbered = []
        for step in steps:
            if step == 0 and (stored in self.zeroed or stored in self.stepless
                              or (new and self.stepless and self.run_last > 0)):
                step = self.run_last + 1
                self.stepless.add(stored)
            elif step == 0:
                self.zeroed.add(stored)
            numbered.append(step)
            new = False
            self.run_last = max(self.run_last, step)
        self.seen.add(stored)
        return numbered

    def rename(self, old: str, new: str) -> None:
        for names in (self.seen, self.stepless, self.zero_steps, self.zeroed):
            if old in names:
                names.discard(old)
                names.add(new)
        if old in self.zero_times:
            self.zero_times[new] = self.zero_times.pop(old)


def logged_step(progress: Mapping[str, Any], stored: str, step: int) -> int:
    """The step a script logged a stored point at, for mlflow's readers: 0 for every point of
    a metric logged only without steps (stored in the order they came, see ``Numbering``)."""
    return 0 if _zero_steps(progress, stored) else step


def logged_steps(progress: Mapping[str, Any], stored: str, steps: np.ndarray) -> np.ndarray:
    """``logged_step`` of each of a stored metric's ``steps``."""
    return np.zeros_like(steps) if _zero_steps(progress, stored) else steps


def _zero_steps(progress: Mapping[str, Any], stored: str) -> bool:
    return stored in progress.get("numbering", {}).get("zero_steps", ())


def _reclaim(run_id: int, key: str, steps: Sequence[int], keys: dict[str, str],
             mapping: Mapping[str, str], batch: dict[str, list[metric_store.Point]],
             numbering: Numbering) -> None:
    """Hand the diagnostics' name that ``key`` maps to by the convention over to ``key`` when
    the metric holding it has all its points at one step (a curve logged without steps) and
    ``key`` is that very name, or a curve over two steps or more. Keras's MLflow callback logs
    ``validation_loss`` and ``validation_accuracy`` at step 0 after each evaluation and then
    ``val_loss`` and ``val_accuracy`` at the epoch: the first would otherwise hold the
    validation names and leave the run one evaluation forever. The holder's points (stored,
    and in ``batch``) move to its own name, ``key``'s to the diagnostics' name."""
    target = external.conventional(key)
    if target is None or key in mapping or keys.get(key) == target:
        return
    holder = next((name for name, stored in keys.items() if stored == target), None)
    if holder is None or holder in mapping:
        return
    if target not in numbering.stepless and len(
            _steps_of(run_id, target, batch.get(target, ()))) != 1:
        return  # the holder is a curve: it keeps the name
    current = keys.get(key)
    if key != target and len(_steps_of(run_id, current, (), steps) if current else set(
            steps)) < 2:
        return  # two curves without steps: the first keeps the name
    taken = set(keys.values())
    moved = holder if holder not in taken else external.UNMAPPED_PREFIX + holder
    if len(moved) > external.STORED_CHARS:
        return
    MetricChunk.objects.filter(experiment_id=run_id, key=target).update(key=moved)
    if target in batch:
        batch[moved] = batch.pop(target)
    keys[holder] = moved
    numbering.rename(target, moved)
    if current is not None:
        MetricChunk.objects.filter(experiment_id=run_id, key=current).update(key=target)
        keys[key] = target
        numbering.rename(current, target)


def _steps_of(run_id: int, stored: str, pending: Sequence[metric_store.Point],
              steps: Sequence[int] = ()) -> set[int]:
    """The first and last steps of a stored metric, its pending points' and ``steps``: one
    value when all its points share a step."""
    held = MetricChunk.objects.filter(experiment_id=run_id, key=stored).aggregate(
        low=Min("first_step"), high=Max("last_step"))
    found = {int(point[0]) for point in pending} | {int(step) for step in steps}
    return found | {int(s) for s in (held["low"], held["high"]) if s is not None}


def check_columns(columns: Mapping[str, Columns]) -> None:
    """IngestError for a metric name or a point that cannot be stored, before anything is."""
    for key, (steps, _, times) in columns.items():
        if not key:
            raise IngestError("a metric name must not be empty")
        if len(key) > MAX_KEY:
            # In MLflow's words, as a param's or tag's name past its limit.
            raise IngestError(f"metric name {key[:80]!r}… had length {len(key)}, which "
                              f"exceeded length limit of {MAX_KEY}")
        check_points(key, steps, times)


# Why a run its script ended as failed or killed failed, and what tells such an end from one
# Fitboard made (the Cancel button, a silent run failed by housekeeping).
SCRIPT_ENDS = {Experiment.Status.FAILED: "the script ended its run as failed",
               Experiment.Status.CANCELLED: "the script ended its run as killed"}


MAX_REASON = 1000  # characters of why a script says it ended its run (its exception)


def end_run(run: Experiment, status: str, ended: float | None = None, reason: str = "") -> bool:
    """End a running external run with ``status`` (succeeded, failed or cancelled), its
    summary (best and final metrics under the diagnostics' names) and its final verdict;
    ``reason``, the script's word on a failed or killed end, follows the run's error."""
    when = moment(ended) if ended is not None else None  # refused before the run ends
    final = metric_store.read(run.pk)
    finals = {key: float(s.values[-1]) for key, s in final.items() if len(s)}
    bests = {key: float(s.values.max() if higher_is_better(key) else s.values.min())
             for key, s in final.items() if len(s) and key.startswith("val_")}
    summary: dict[str, Any] = {"final_metrics": events.json_safe(finals),
                               "best_metrics": events.json_safe(bests)}
    for key in ("val_acc", "val_loss"):
        if key in bests and math.isfinite(bests[key]):
            summary["best_metric"] = [key, bests[key]]
            break
    verdict = external.final_verdict(run)
    relay.drain()  # the run's last points reach its viewers before its end does
    error = SCRIPT_ENDS.get(status, "")
    if error and reason:
        error = f"{error}: {reason[:MAX_REASON]}"
    ended_ok = run.finish(status, error=error, summary=summary, verdict=verdict)
    if ended_ok and when is not None:
        Experiment.objects.filter(pk=run.pk).update(finished_at=when)
        run.finished_at = when
    return ended_ok


def _change_spec(run: Experiment, change: Callable[[dict[str, Any]], dict[str, Any] | None]
                 ) -> bool:
    """Store ``change(spec)`` as the run's spec, read and written under the run's row lock (so
    concurrent requests of one run do not lose each other's changes), within its creator's
    storage quota when it grows; False when ``change`` returns None: nothing to change."""
    with transaction.atomic():
        row = Experiment.objects.select_for_update().get(pk=run.pk)
        spec = change(dict(row.spec))
        if spec is None:
            return False
        reserve_text(row.created_by_id, row.spec, spec, f"run {row.pk} not changed")
        Experiment.objects.filter(pk=row.pk).update(spec=spec)
        run.spec = spec
    return True


def delete_tag(run: Experiment, key: str) -> bool:
    """Remove the tag ``key`` of an external run; False when it has none of that name."""
    def without(spec: dict[str, Any]) -> dict[str, Any] | None:
        tags = dict(spec.get("tags", {}))
        return None if tags.pop(key, None) is None else {**spec, "tags": tags}
    return _change_spec(run, without)


def add_to_list(run: Experiment, name: str, entries: Sequence[Mapping[str, Any]],
                limit: int, key: Callable[[Mapping[str, Any]], Any] = dict) -> None:
    """Add ``entries`` the run does not hold yet (none of the same ``key``, the whole entry
    unless given; the first of a key is kept) to its spec's list ``name`` (the datasets it
    read, the models it wrote), keeping at most ``limit`` entries of MAX_HELD characters
    together: 100 dataset inputs of 64 kB each made a run of 6.5 MB, which a search of its
    project sent whole, 1,000 runs a page."""
    def added(spec: dict[str, Any]) -> dict[str, Any]:
        held = list(spec.get(name, []))
        keys = [key(entry) for entry in held]
        for entry in entries:
            if (entry_key := key(entry)) not in keys:
                held.append(entry)
                keys.append(entry_key)
        if len(held) > limit:
            raise IngestError(f"a run holds at most {limit} {name}")
        size = len(json.dumps(held))
        if size > MAX_HELD:
            raise IngestError(f"run {run.pk} would hold {size:,} characters of {name}; at most "
                              f"{MAX_HELD:,}")
        return {**spec, name: held}
    _change_spec(run, added)


def set_deleted(run: Experiment, deleted: bool) -> None:
    """Delete an external run (hide it from lists and pages, keeping its data) or restore it."""
    when = timezone.now() if deleted else None
    Experiment.objects.filter(pk=run.pk).update(deleted_at=when)
    run.deleted_at = when


def beat(run: Experiment) -> str:
    """The script of ``run`` is alive though it logs nothing now (its client's heartbeat):
    renew ``heartbeat_at`` while the run is running, so the housekeeper does not fail it.
    Returns the run's status, which tells the script when its run was cancelled on the page."""
    Experiment.objects.filter(pk=run.pk, status=Experiment.Status.RUNNING).update(
        heartbeat_at=timezone.now(), beats=True)
    return str(Experiment.objects.filter(pk=run.pk).values_list("status", flat=True).get())


def moment(seconds: float) -> datetime:
    """A run's start or end as a script sent it (unix seconds); IngestError for a time no
    calendar holds (not finite, or past the year 9999)."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise IngestError(f"time {seconds!r} is not a moment: send unix time") from None


def check_points(key: str, steps: Sequence[int], times: Sequence[float]) -> None:
    """IngestError for a step outside int64 or a time that is not a finite count of int64
    milliseconds (see INT64)."""
    if steps and not (-INT64 <= min(steps) and max(steps) < INT64):
        raise IngestError(f"metric {key[:80]!r}: a step must be a 64-bit integer")
    if len(times) and not np.all(np.abs(np.asarray(times, dtype=np.float64)) < MAX_SECONDS):
        raise IngestError(f"metric {key[:80]!r}: a time must be a finite unix time")


def check_tags(tags: Mapping[str, str], limit: int = MAX_TAG) -> None:
    """IngestError for a tag whose name or value is too long (past MAX_NAME, or ``limit``),
    or a metric map tag that is not a JSON object of names to names."""
    check_lengths("tag", tags, limit)
    try:
        if external.MAP_TAG in tags:
            external.parse_map(tags[external.MAP_TAG])
        external.check_task_tags(tags)
    except ValueError as exc:  # MetricMapError included
        raise IngestError(str(exc)) from None


def check_lengths(what: str, pairs: Mapping[str, str], limit: int) -> None:
    """IngestError for a ``what`` (param, tag) whose name is past MAX_NAME characters or whose
    value is past ``limit``, in MLflow's words."""
    for key, value in pairs.items():
        if len(key) > MAX_NAME:
            raise IngestError(f"{what} name {key[:80]!r}… had length {len(key)}, which "
                              f"exceeded length limit of {MAX_NAME}")
        if len(value) > limit:
            raise IngestError(f"{what} {key!r}: its value had length {len(value)}, which "
                              f"exceeded length limit of {limit}")


def check_held(params: Mapping[str, str], tags: Mapping[str, str], what: str) -> None:
    """IngestError when the params and tags ``what`` (a run, a logged model) would hold pass
    MAX_HELD characters, names and values together."""
    held = sum(len(k) + len(v) for pairs in (params, tags) for k, v in pairs.items())
    if held > MAX_HELD:
        raise IngestError(f"{what} would hold {held:,} characters of params and tags; at most "
                          f"{MAX_HELD:,}")


def _merge_params(stored: dict[str, str], new: Mapping[str, str]) -> None:
    check_lengths("param", new, MAX_PARAM)
    for key, value in new.items():
        if key in stored and stored[key] != value:
            raise IngestError(f"param {key!r} was logged as {stored[key]!r}; a param cannot "
                              f"change (got {value!r})")
        stored[key] = value


def _verdict_due(progress: Mapping[str, Any], now: float) -> bool:
    """Whether this evaluation gets a live verdict: the first one does, then one every
    ``VERDICT_EVERY`` seconds."""
    last = progress.get("verdict_at")
    return not isinstance(last, int | float) or now - last >= VERDICT_EVERY


def _publish(run: Experiment, seq: int, batch: Mapping[str, list[metric_store.Point]],
             progress: dict[str, Any], listed: bool) -> None:
    """The run page's live message and the list's update (``listed``: whether one is due), as
    a worker's reporter sends them, without the ingest's own bookkeeping (its names and
    numbering: ``events.shown_progress``), queued for the relay's thread: the request does not
    wait for Redis. Best effort: the points are stored, and a page that misses a message
    backfills by seq."""
    shown = events.shown_progress(progress)
    sent_at = timezone.now().timestamp()
    relay.send(events.run_group(run.pk), points_message(seq, batch, shown, sent_at))
    if listed:
        relay.send(events.project_group(run.project_id),
                   list_message(run.project_id, run.pk, shown))


# --- Verdicts ------------------------------------------------------------------------------

def metric_map_json(run: Experiment) -> str:
    """The run's metric names as stored, {script's name: stored name}, for its page."""
    return json.dumps(run.progress.get("keys", {}), indent=2, sort_keys=True)
