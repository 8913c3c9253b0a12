"""Metrics a script links to a logged model (MLflow 3: ``mlflow.log_metric(..., model_id=...)``,
the evaluations ``mlflow.<flavor>.autolog`` links to the model it logged): stored with the run's
points as any, and also in the model's row, which ``get_logged_model`` and
``search_logged_models`` (its ``metrics.<name>`` filters and orders) read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.experiments.models import Experiment, parse_pk
from webapp.tracking import access, ingest
from webapp.tracking.api import ApiError, integer, metric_value, not_found, number, text
from webapp.tracking.models import ApiToken, LoggedModel

# Points one model holds (one per name, step and data set): an evaluation logs a few metrics
# a data set, and a model is read whole by every search of its project.
MAX_POINTS = 1000
DATASET_FIELDS = ("dataset_name", "dataset_digest")


def linked(items: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """The points of a log-metric or log-batch request that name a model, by model id, as the
    model keeps them (a NaN or infinity as MLflow's JSON writes it)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("model_id"):
            continue
        value = number(item.get("value"), "value")
        found.setdefault(text(item, "model_id"), []).append({
            "key": text(item, "key"), "value": metric_value(value),
            "timestamp": integer(item.get("timestamp"), "timestamp"),
            "step": integer(item.get("step"), "step"),
            **{field: text(item, field, required=False) for field in DATASET_FIELDS}})
    return found


def link(token: ApiToken, run: Experiment, points: Mapping[str, list[dict[str, Any]]]) -> None:
    """Add ``points`` (``linked``) logged to ``run`` to their models, each read and written
    under its row lock, within its creator's storage quota: a model of the run's project that
    the token's user may change, else RESOURCE_DOES_NOT_EXIST or PERMISSION_DENIED."""
    for model_id, entries in points.items():
        pk = parse_pk(model_id.removeprefix("m-")) if model_id.startswith("m-") else None
        model = access.logged_models(token).filter(pk=pk or 0, project_id=run.project_id).first()
        if model is None:
            raise not_found(f"logged model {model_id[:40]!r}")
        access.check_change(token, model, f"logged model {model.model_id}")
        with transaction.atomic():
            row = LoggedModel.objects.select_for_update().get(pk=model.pk)
            held = {_slot(m): m for m in row.metrics}
            held.update({_slot(m): {**m, "run_id": str(run.pk)} for m in entries})
            if len(held) > MAX_POINTS:
                raise ApiError("INVALID_PARAMETER_VALUE", f"logged model {model_id[:40]} holds "
                               f"at most {MAX_POINTS:,} metric points")
            metrics = list(held.values())
            ingest.reserve_text(row.created_by_id, row.metrics, metrics,
                                f"metrics of logged model {model_id[:40]} not stored")
            LoggedModel.objects.filter(pk=row.pk).update(metrics=metrics,
                                                         updated_at=timezone.now())


def _slot(point: Mapping[str, Any]) -> tuple[Any, ...]:
    return (point["key"], point["step"], *(point.get(f, "") for f in DATASET_FIELDS))


def on_dataset(point: Mapping[str, Any], dataset: tuple[str, str]) -> bool:
    """Whether ``point`` was measured on ``dataset`` (name, digest; "" for any name or
    digest)."""
    name, digest = dataset
    return (not name or point.get("dataset_name", "") == name) and (
        not digest or point.get("dataset_digest", "") == digest)


def latest(metrics: Iterable[Mapping[str, Any]], key: str, dataset: tuple[str, str]
           ) -> float | None:
    """The value of metric ``key``'s latest point on ``dataset`` (``on_dataset``), by its time
    then its step, as MLflow's server orders a search of models by it; None without one."""
    points = [p for p in metrics if p["key"] == key and on_dataset(p, dataset)]
    if not points:
        return None
    return float(max(points, key=lambda p: (p["timestamp"], p["step"]))["value"])
