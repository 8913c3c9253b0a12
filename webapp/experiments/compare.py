"""Comparing 2 to 20 runs side by side: their curves, a diff of their specs, a table of their
metrics, and that table exported as CSV or JSON.

Every function here takes the runs already loaded (``visible_runs``: one query for all of them)
and reads metric points through ``metric_store`` in one query, so a comparison costs the same
number of queries for 2 runs as for 20.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.http import Http404
from django.utils import timezone

from webapp.datasets.models import upload_names
from webapp.experiments import metric_store
from webapp.experiments.diagnosis import flatten_spec
from webapp.experiments.external import classifier_measure, declared_classes, task_kind
from webapp.experiments.models import Experiment, MetricChunk, parse_pk

MIN_RUNS, MAX_RUNS = 2, 20
X_AXES = ("step", "epoch", "time")  # time: seconds since the run started
# Metrics where a larger value is better; every other metric (losses, errors) is minimised.
HIGHER_IS_BETTER = ("acc", "accuracy", "f1", "auc", "r2", "precision", "recall")
# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CompareError(ValueError):
    """A selection that cannot be compared (too few, too many, not numbers)."""


def parse_ids(values: Iterable[str]) -> list[int]:
    """Run ids from ``?ids=1&ids=2`` or ``?ids=1,2`` in the order given, without repeats."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            pk = parse_pk(part)
            if pk is None:
                raise CompareError(f"{part[:40]!r} is not a run number")
            if pk not in ids:
                ids.append(pk)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise CompareError(f"select between {MIN_RUNS} and {MAX_RUNS} runs to compare "
                           f"({len(ids)} selected)")
    return ids


def visible_runs(user: Any, ids: Sequence[int]) -> list[Experiment]:
    """The runs in the order of ``ids``, in one query; 404 if the user may not see any of them
    (the same answer as for a run that does not exist)."""
    rows = Experiment.objects.visible_to(user).select_related("project").in_bulk(list(ids))
    if len(rows) != len(ids):
        raise Http404("no such experiment")
    return [rows[pk] for pk in ids]


def metric_keys(runs: Sequence[Experiment]) -> list[str]:
    """Every metric logged by any of the runs, epoch metrics first (validation before training),
    the per-batch ones after."""
    keys = set(
        MetricChunk.objects.filter(experiment_id__in=[r.pk for r in runs])
        .values_list("key", flat=True).distinct()
    )
    keys.discard("epoch")  # the x axis, not a curve
    return sorted(keys, key=_metric_order)


def _metric_order(key: str) -> tuple[int, str]:
    for rank, prefix in enumerate(("val_", "test_", "train_")):
        if key.startswith(prefix):
            return rank, key
    return 3, key


def higher_is_better(key: str) -> bool:
    return any(key.endswith(suffix) or f"_{suffix}_" in key for suffix in HIGHER_IS_BETTER)


# --- The config diff ---------------------------------------------------------------------------

@dataclass
class DiffRow:
    """One spec field across the runs: the text of each run's value, and whether they differ."""

    field: str
    cells: list[str]
    differs: bool


def spec_fields(run: Experiment) -> dict[str, Any]:
    """The run's spec as {"section.field": value}: for a run trained elsewhere its params and
    tags only (the datasets and models its script logged are not settings to diff)."""
    if run.is_external:
        return flatten_spec({key: run.spec.get(key, {}) for key in ("params", "tags")})
    return flatten_spec(run.spec)


def config_diff(runs: Sequence[Experiment]) -> list[DiffRow]:
    """Every spec field of any run as a row (in spec order), runs as columns; a field a run
    lacks (an older spec) shows as a dash and counts as a difference. A run trained elsewhere
    has params and tags instead of a spec: their rows and the spec's show a dash for the runs
    of the other kind, which is no difference (or beside a script's run every field of a
    form run's spec would be one, and "only differences" would hide nothing)."""
    flats = [spec_fields(run) for run in runs]
    fields: dict[str, None] = {}
    for flat in flats:
        fields.update(dict.fromkeys(flat))
    # An uploaded data set by its name, as the run list shows it ("upload:7" says nothing).
    uploads = upload_names(v for flat in flats if isinstance(v := flat.get("data.dataset"), str))
    rows = []
    for name in fields:
        values = [flat.get(name, _MISSING) for flat in flats]
        script_field = name.startswith(SCRIPT_FIELDS)
        distinct = {json.dumps(v, sort_keys=True, default=str)
                    for run, v in zip(runs, values, strict=True)
                    if run.is_external == script_field}
        cells = [_cell_text(v) for v in values]
        if name == "data.dataset":
            cells = [f"{uploads[cell]} ({cell})" if cell in uploads else cell for cell in cells]
        rows.append(DiffRow(name, cells, len(distinct) > 1))
    return rows


SCRIPT_FIELDS = ("params.", "tags.")  # the fields of a run trained elsewhere (``spec_fields``)


_MISSING = object()


def _cell_text(value: Any) -> str:
    if value is _MISSING or value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- The metrics table -------------------------------------------------------------------------

@dataclass(frozen=True)
class DataGroup:
    """Runs whose metrics can be set against each other: one data set and one task. A loss on
    wine says nothing against a loss on diabetes (as two groups on different data sets get no
    verdict: ``groups.incomparable``); versions of one uploaded set compare, as there."""

    label: str  # "wine · classification"
    columns: tuple[int, ...]  # the runs' places in the comparison


def data_groups(runs: Sequence[Experiment]) -> list[DataGroup]:
    """The runs by data set and task, in the order each first appears (one query, for the
    names of uploaded sets)."""
    keys = [_data_key(run) for run in runs]
    uploads = upload_names(name for name, _ in keys)
    columns: dict[tuple[str, str], list[int]] = {}
    for column, key in enumerate(keys):
        columns.setdefault(key, []).append(column)
    return [DataGroup(f"{uploads.get(name, name) or 'data set not logged'} · {task}",
                      tuple(places)) for (name, task), places in columns.items()]


def _data_key(run: Experiment) -> tuple[str, str]:
    """(data set, task) of a run: a form run's from its spec (the spec is refused unless its
    loss fits its data set's task); a script's from the data sets it logged
    (``mlflow.log_input``) and the task its tags and metric names say, as its run page does.
    Scripts that logged no data set group together: a sweep of one script is the usual case."""
    if run.is_external:
        names = sorted({str((entry.get("dataset") or {}).get("name", ""))
                        for entry in run.spec.get("inputs") or [] if isinstance(entry, dict)})
        tags = run.spec.get("tags", {})
        stored = run.progress.get("keys", {})
        task = task_kind(tags, declared_classes(tags, run.spec.get("params", {})),
                         {k for k in stored if classifier_measure(k)})
        return ", ".join(n for n in names if n), task
    data = run.spec.get("data") or {}
    loss = (run.spec.get("optim") or {}).get("loss", "cross_entropy")
    options = data.get("plugin_options") or {}
    name = str(data.get("dataset", ""))
    if options:  # a plugin's options can name other data (a file, a subset)
        name += " " + json.dumps(options, sort_keys=True, default=str)
    return name, "classification" if loss == "cross_entropy" else "regression"


@dataclass
class MetricRow:
    """One figure across the runs; ``best`` holds the column index of each best value (ties all
    marked) among runs on one data set and task, empty where the row has no direction;
    ``note`` says why a row of several data sets marks less (or nothing)."""

    label: str
    key: str
    values: list[float | None]
    best: set[int] = field(default_factory=set)
    unit: str = ""
    note: str = ""

    @property
    def cells(self) -> list[tuple[str, bool]]:
        """(text, is best) per run, for the page."""
        return [(_display(v, self.key), i in self.best) for i, v in enumerate(self.values)]


def _display(value: float | None, key: str) -> str:
    if value is None:
        return "—"
    if key == "duration_s":
        minutes, seconds = divmod(value, 60)
        return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
    if key in ("epochs", "parameters"):
        return f"{int(value):,}"
    return f"{value:.4g}"


def metrics_table(runs: Sequence[Experiment],
                  groups: Sequence[DataGroup] | None = None) -> list[MetricRow]:
    """Best and final metrics of each run (validation and test first), then epochs, duration
    and parameters; the best value of each metric row marked among the runs of each data
    group (``data_groups``)."""
    groups = data_groups(runs) if groups is None else groups
    keys: dict[str, None] = {}
    for run in runs:
        for part in ("best_metrics", "final_metrics"):
            keys.update(dict.fromkeys(run.summary.get(part) or {}))
    rows = []
    for part, word in (("best_metrics", "best"), ("final_metrics", "final")):
        for key in sorted(keys, key=_metric_order):
            values = [_number((run.summary.get(part) or {}).get(key)) for run in runs]
            if any(v is not None for v in values):
                row = MetricRow(f"{word} {key}", f"{word}_{key}", values)
                row.best = _best_columns(values, higher_is_better(key), groups)
                row.note = _best_note(values, row.best, groups)
                rows.append(row)
    rows.append(MetricRow("epochs", "epochs", [_number(_epochs(run)) for run in runs]))
    rows.append(MetricRow("duration", "duration_s", [duration_s(run) for run in runs], unit="s"))
    rows.append(MetricRow("parameters", "parameters",
                          [_number(run.progress.get("parameters")) for run in runs]))
    return rows


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _best_columns(values: list[float | None], higher: bool,
                  groups: Sequence[DataGroup]) -> set[int]:
    best_columns: set[int] = set()
    for group in groups:
        present = [v for i in group.columns if (v := values[i]) is not None]
        if len(present) < 2:
            continue
        best = max(present) if higher else min(present)
        best_columns.update(i for i in group.columns if values[i] == best)
    return best_columns


def _best_note(values: list[float | None], best: set[int], groups: Sequence[DataGroup]) -> str:
    """Empty when the row's values are all of one data group; else what its marks mean."""
    holding = [g for g in groups if any(values[i] is not None for i in g.columns)]
    if len(holding) < 2:
        return ""
    if not best:
        return "different data sets or tasks: no best"
    return "best marked among runs on the same data set and task"


def _epochs(run: Experiment) -> Any:
    return run.summary.get("epochs", run.progress.get("epoch"))


def duration_s(run: Experiment) -> float | None:
    """Seconds from start to end (to now while it runs); None before it started."""
    if run.started_at is None:
        return None
    end = run.finished_at or timezone.now()
    return round((end - run.started_at).total_seconds(), 1)


# --- Export ------------------------------------------------------------------------------------

def export_rows(runs: Sequence[Experiment]) -> list[dict[str, Any]]:
    """One flat record per run: identity, status, verdict, the metrics table's figures and every
    spec field (``spec.<section>.<field>``)."""
    table = metrics_table(runs)
    records = []
    for column, run in enumerate(runs):
        record: dict[str, Any] = {
            "id": run.pk, "name": run.name, "project": run.project.name, "kind": run.kind,
            "status": run.status, "verdict": run.verdict_kind,
            "created_at": run.created_at.isoformat(),
        }
        record.update({row.key: row.values[column] for row in table})
        record.update({f"spec.{k}": v for k, v in spec_fields(run).items()})
        records.append(record)
    return records


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """CSV with a header of every column any record has; text cells that a spreadsheet would
    run as a formula are prefixed with a quote (numbers we wrote stay numbers)."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(c) for c in columns])
    for record in records:
        writer.writerow([csv_cell(record.get(c)) for c in columns])
    return out.getvalue()


def csv_cell(value: Any) -> Any:
    """A value safe to open in a spreadsheet (OWASP's advice for CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


# --- Chart data --------------------------------------------------------------------------------

def chart_data(runs: Sequence[Experiment], key: str, x_axis: str, x0: float | None = None,
               x1: float | None = None,
               max_points: int = metric_store.MAX_POINTS) -> list[dict[str, Any]]:
    """One metric of every run for an overlaid chart, each trace at most ``max_points`` points
    (min/max buckets), in ``x_axis`` units; ``x0``/``x1`` limit it to a range of that axis (a
    zoom), which comes back at full resolution when it holds few enough points.

    A range on the epoch or time axis becomes a step range per run first (from the run's epoch
    ends, or from its overview's times), so the store still reads only the rows of the range."""
    if x_axis not in X_AXES:
        raise CompareError(f"x axis must be one of: {', '.join(X_AXES)}")
    ids = [run.pk for run in runs]
    starts = {run.pk: run.started_at.timestamp() if run.started_at else None for run in runs}
    epochs: dict[int, metric_store.Series] = {}
    if x_axis == "epoch":
        epochs = epoch_ends(ids)
    ranges: dict[int, metric_store.StepRange] = {pk: (x0, x1) for pk in ids}
    if x_axis != "step" and (x0 is not None or x1 is not None):
        overview = metric_store.read_charts({pk: (None, None) for pk in ids}, [key])
        ranges = {pk: _step_range(x0, x1, x_axis, epochs.get(pk), starts[pk],
                                  overview[pk].get(key)) for pk in ids}
    charts = metric_store.read_charts(ranges, [key], max_points)
    traces = []
    for run in runs:
        chart = charts[run.pk].get(key)
        if chart is None:
            traces.append({"id": run.pk, "steps": [], "values": [], "total": 0, "bucketed": False})
            continue
        trace = {"id": run.pk, **chart.to_json()}
        del trace["times"]
        x = _x_values(chart.series, x_axis, epochs.get(run.pk), starts[run.pk])
        if x is not None:
            trace["x"] = np.round(x, 4).tolist()
        traces.append(trace)
    return traces


def epoch_ends(ids: Sequence[int]) -> dict[int, metric_store.Series]:
    """Where each run's epochs ended, as epoch numbers at steps: its ``epoch`` metric (a form
    run's; Hugging Face Trainer and Lightning log one), else each point of its validation loss,
    the evaluation that an external run's verdict counts as an epoch (a plain script logs no
    epoch, and its curves would all stand at epoch 0)."""
    ends = {}
    # Read as a chart of FULL_LIMIT points: whole up to that, else from the rows' summaries (a
    # chart draws 2,000 points, and finer anchors change none of their places). Read whole,
    # 20 runs of 10 million evaluations each held 10 GB for one request of the epoch axis.
    charts = metric_store.read_charts({pk: (None, None) for pk in ids}, ["epoch", "val_loss"],
                                      max_points=metric_store.FULL_LIMIT)
    for pk, metrics in charts.items():
        epoch, val = metrics.get("epoch"), metrics.get("val_loss")
        if epoch is not None and len(epoch.series):
            ends[pk] = epoch.series
        elif val is not None and len(val.series):
            # the evaluations' numbers, spread over those read when not all were
            count = len(val.series)
            numbers = (np.linspace(1.0, val.total, count) if val.total > count
                       else np.arange(1.0, count + 1.0))
            ends[pk] = metric_store.Series(val.series.steps, numbers, val.series.times)
    return ends


def _step_range(x0: float | None, x1: float | None, x_axis: str,
                epoch: metric_store.Series | None, start: float | None,
                overview: metric_store.Chart | None) -> metric_store.StepRange:
    """The steps a range of epochs or seconds covers in one run (open where it cannot say)."""
    if x_axis == "epoch" and epoch is not None and len(epoch):
        anchors, marks = _epoch_anchors(epoch)
        inverse = lambda x: float(np.interp(x, marks, anchors)) if x <= marks[-1] else None
    elif x_axis == "time" and overview is not None and len(overview.series):
        points = overview.series
        since = points.times - (start if start is not None else float(points.times.min()))
        inverse = lambda x: float(np.interp(x, since, points.steps)) if x <= since[-1] else None
    else:
        return (None, None)
    # Widen by one step each side: interpolation lands between the points that bound the range.
    low = inverse(x0) if x0 is not None else None
    high = inverse(x1) if x1 is not None else None
    return (None if low is None else math.floor(low) - 1,
            None if high is None else math.ceil(high) + 1)


def _epoch_anchors(epoch: metric_store.Series) -> tuple[np.ndarray, np.ndarray]:
    """Steps where epochs ended (step 0 = epoch 0) and the epoch numbers there."""
    return (np.concatenate([[0], epoch.steps]).astype(np.float64),
            np.concatenate([[0.0], epoch.values]))


def _x_values(points: metric_store.Series, x_axis: str, epoch: metric_store.Series | None,
              start: float | None) -> np.ndarray | None:
    """x of each point: None for steps (the steps are the x), fractional epochs interpolated
    between the steps where epochs ended, or seconds since the run started."""
    if x_axis == "epoch":
        if epoch is None or not len(epoch):
            return np.zeros(len(points))
        anchors, marks = _epoch_anchors(epoch)
        per_epoch = anchors[-1] / max(marks[-1], 1.0)  # extrapolate past the last epoch end
        return np.where(
            points.steps <= anchors[-1],
            np.interp(points.steps, anchors, marks),
            marks[-1] + (points.steps - anchors[-1]) / max(per_epoch, 1.0),
        )
    if x_axis == "time":
        return points.times - (start if start is not None else float(points.times.min()))
    return None
