"""MLflow 3's logged models (``mlflow.<flavor>.log_model`` and ``load_model``): the client
creates one, uploads its files under its ``artifact_uri`` through the artifacts proxy
(``artifacts.py``), then finalizes it; ``load_model("models:/m-<id>")`` reads it back. A model
belongs to a project (its experiment) and usually to the run that logged it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from webapp.experiments.models import parse_pk
from webapp.projects import storage
from webapp.tracking import access, ingest, model_metrics, search
from webapp.tracking.api import ApiError, endpoint, integer, not_found, text
from webapp.tracking.mlflow_views import (
    MAX_PARAMS,
    MAX_SEARCH,
    MAX_TAGS,
    epoch_ms,
    find_project,
    find_projects,
    find_run,
    in_order,
    json_page,
    matching,
    pairs,
    repeated,
)
from webapp.tracking.models import ApiToken, LoggedModel

STATUS_NAMES = {LoggedModel.Status.PENDING: "LOGGED_MODEL_PENDING",
                LoggedModel.Status.READY: "LOGGED_MODEL_READY",
                LoggedModel.Status.UPLOAD_FAILED: "LOGGED_MODEL_UPLOAD_FAILED"}
STATUSES = {**{name: status for status, name in STATUS_NAMES.items()},
            **{str(int(status)): status for status in STATUS_NAMES}}


def model_json(model: LoggedModel) -> dict[str, Any]:
    return {"info": {
        "model_id": model.model_id, "experiment_id": str(model.project_id), "name": model.name,
        "creation_timestamp_ms": epoch_ms(model.created_at),
        "last_updated_timestamp_ms": epoch_ms(model.updated_at),
        "artifact_uri": f"mlflow-artifacts:/{model.project_id}/models/{model.model_id}/artifacts",
        "status": STATUS_NAMES[LoggedModel.Status(model.status)],
        "model_type": model.model_type, "status_message": model.status_message,
        "source_run_id": str(model.source_run_id or ""),
        "tags": [{"key": k, "value": v} for k, v in model.tags.items()]},
        "data": {"params": [{"key": k, "value": v} for k, v in model.params.items()],
                 "metrics": [{**m, "model_id": model.model_id} for m in model.metrics]}}


def _model(token: ApiToken, model_id: str, write: bool = False) -> LoggedModel:
    """The logged model ``m-<pk>`` the token reaches, or 404; ``write``: one its user may
    change (``access.check_change``), or 403."""
    model = access.logged_models(token).filter(pk=pk).first() \
        if (pk := _pk(model_id)) is not None else None
    if model is None:
        raise not_found(f"logged model {model_id[:40]!r}")
    if write:
        access.check_change(token, model, f"logged model {model.model_id}")
    return model


def _pk(model_id: str) -> int | None:
    return parse_pk(model_id.removeprefix("m-")) if model_id.startswith("m-") else None


def _writable(token: ApiToken) -> None:
    if not token.may_write:
        raise ApiError("PERMISSION_DENIED", "this token is read-only")


@endpoint(("POST",), write=True)
def create(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    project = find_project(token, text(body, "experiment_id"))
    run = find_run(token, {"run_id": body["source_run_id"]}, write=True) \
        if body.get("source_run_id") else None
    if run is not None and run.project_id != project.pk:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is not in experiment "
                       f"{project.pk}")
    params, tags = pairs(body.get("params"), "params", MAX_PARAMS), \
        pairs(body.get("tags"), "tags", MAX_TAGS)
    _check(params, tags)
    with transaction.atomic():
        check_model_rate(token.user)
        ingest.reserve_text(token.user, [{}, {}], [params, tags], "logged model not created")
        model = LoggedModel.objects.create(
            project=project, source_run=run, created_by=token.user,
            name=text(body, "name", required=False)[:250] or "model",
            model_type=text(body, "model_type", required=False)[:100], params=params,
            tags=tags)
    return {"model": model_json(model)}


def check_model_rate(user: Any) -> None:
    """INVALID_PARAMETER_VALUE when ``user``'s scripts created FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR
    logged models in the last hour, counted as runs are (``ingest.check_run_rate``). A model
    search reads every model of its projects: only the request rate bounded them before (6,000
    a minute)."""
    limit = settings.FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR
    if not limit:
        return
    made = storage.made_in_the_last_hour(user, LoggedModel.objects.filter(created_by=user))
    if made >= limit:
        raise ApiError("INVALID_PARAMETER_VALUE", f"your scripts created {made:,} logged models "
                       f"in the last hour; the limit is {limit:,} "
                       "(FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR): log fewer models, or wait")


def _check(params: dict[str, str], tags: dict[str, str]) -> None:
    """A logged model's params and tags within a run's limits (``ingest``: MLflow's lengths,
    and the characters one row holds)."""
    ingest.check_lengths("param", params, ingest.MAX_PARAM)
    ingest.check_lengths("tag", tags, ingest.MAX_TAG)
    ingest.check_held(params, tags, "a logged model")


@endpoint(("GET", "PATCH", "DELETE"))
def logged_model(request: HttpRequest, token: ApiToken, body: dict[str, Any], model_id: str
                 ) -> dict[str, Any]:
    """GET: the model; PATCH: finalize it (its upload ended, READY or UPLOAD_FAILED);
    DELETE: delete it with its files, freeing their room in its uploaders' quotas (hidden
    before, its files stayed counted until its run or project went: for a model of no run,
    for good, as nothing reaches a deleted model)."""
    model = _model(token, model_id)
    if request.method == "GET":
        return {"model": model_json(model)}
    _writable(token)
    access.check_change(token, model, f"logged model {model.model_id}")
    if request.method == "DELETE":
        with transaction.atomic():  # its files' rows with it, the files once it commits
            LoggedModel.objects.filter(pk=model.pk).delete()
        return {}
    status = STATUSES.get(text(body, "status"))
    if status is None:
        raise ApiError("INVALID_PARAMETER_VALUE", "status must be LOGGED_MODEL_READY or "
                       "LOGGED_MODEL_UPLOAD_FAILED")
    _update(model, status=status)
    return {"model": model_json(model)}


@endpoint(("POST",), write=True)
def log_params(request: HttpRequest, token: ApiToken, body: dict[str, Any], model_id: str
               ) -> dict[str, Any]:
    _add(_model(token, model_id, write=True), params=pairs(body.get("params"), "params",
                                                           MAX_PARAMS))
    return {}


@endpoint(("PATCH",), write=True)
def set_tags(request: HttpRequest, token: ApiToken, body: dict[str, Any], model_id: str
             ) -> dict[str, Any]:
    _add(_model(token, model_id, write=True), tags=pairs(body.get("tags"), "tags", MAX_TAGS))
    return {}


@endpoint(("DELETE",), write=True)
def delete_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any], model_id: str,
               tag_key: str) -> dict[str, Any]:
    """Remove a tag of the model (``delete_logged_model_tag``, a call Fitboard lacked: the
    client got ENDPOINT_NOT_FOUND); one it does not have is RESOURCE_DOES_NOT_EXIST, as MLflow's
    server answers."""
    model = _model(token, model_id, write=True)
    with transaction.atomic():
        row = LoggedModel.objects.select_for_update().get(pk=model.pk)
        if tag_key not in row.tags:
            raise not_found(f"tag {tag_key[:100]!r} of logged model {row.model_id}")
        _update(model, tags={k: v for k, v in row.tags.items() if k != tag_key})
    return {}


def _add(model: LoggedModel, params: dict[str, str] | None = None,
         tags: dict[str, str] | None = None) -> None:
    """Add ``params`` and ``tags`` to the model's, read and written under its row lock (two
    requests at once do not lose each other's), within its creator's storage quota."""
    with transaction.atomic():
        row = LoggedModel.objects.select_for_update().get(pk=model.pk)
        merged = {**row.params, **(params or {})}, {**row.tags, **(tags or {})}
        _check(*merged)
        ingest.reserve_text(row.created_by_id, [row.params, row.tags], list(merged),
                            f"logged model {row.model_id} not changed")
        _update(model, params=merged[0], tags=merged[1])


def _update(model: LoggedModel, **changes: Any) -> None:
    changes["updated_at"] = timezone.now()
    LoggedModel.objects.filter(pk=model.pk).update(**changes)
    for name, value in changes.items():
        setattr(model, name, value)


@endpoint(("POST", "GET"))
def search_models(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                  ) -> dict[str, Any]:
    """The models of the experiments, newest first, filtered and ordered by MLflow's grammar
    (on ``ATTRIBUTES``, params, tags and the metrics linked to them, on the data sets asked
    for: ``_fields``); a key no model has is refused (INVALID_PARAMETER_VALUE), as in a run's
    search. Read a chunk at a time (``matching``); a page ends early past MAX_PAGE_CHARS, as a
    search of runs does."""
    clauses = search.parse_filter(text(body, "filter", required=False), _numeric, _known)
    datasets = _datasets(body.get("datasets"))
    if datasets and not any(clause.kind == "metrics" for clause in clauses):
        # as MLflow's server: only the models with a metric on one of them
        clauses.append(search.Clause("datasets", "any", "IS NOT NULL", None))
    order, on = _order(body.get("order_by"))
    limit = min(max(integer(body.get("max_results"), "max_results", 100), 1), MAX_SEARCH)
    offset = max(integer(body.get("page_token"), "page_token"), 0)
    models = access.logged_models(token).filter(
        project__in=find_projects(token, body.get("experiment_ids")))
    ids = matching(models, clauses, order, _models_json,
                   lambda model: _fields(model, datasets, on))
    found, more = json_page(in_order(models, ids[offset:offset + limit + 1]), limit,
                            _models_json)
    return {"models": found, **({"next_page_token": str(offset + len(found))} if more else {})}


# (name, digest or "" for any) of a data set a search reads metrics on.
DatasetKey = tuple[str, str]
ORDERED = "ordered"  # the fields' kind of a metric an order reads: its value by order key


def _datasets(value: Any) -> list[DatasetKey]:
    """The data sets a search's metric filters read (``datasets=[{"dataset_name": ...,
    "dataset_digest": ...}]``; none: every point)."""
    found = []
    for item in search.at_most(repeated(value), "datasets"):
        if not isinstance(item, dict):
            raise ApiError("INVALID_PARAMETER_VALUE", "each of datasets must be an object")
        found.append((text(item, "dataset_name"), text(item, "dataset_digest", required=False)))
    return found


def _order(value: Any) -> tuple[list[tuple[str, str, bool]], list[tuple[str, DatasetKey]]]:
    """A search's ``order_by`` as ``search.ordered`` takes it, and (metric, data set) for each
    metric it orders by, as ``ORDERED`` keys "0", "1", ...: a metric is read on the data set
    the item names (``dataset_name``, ``dataset_digest``), on any without one."""
    order, metrics = [], []
    for item in search.at_most(repeated(value), "order_by keys"):
        if not isinstance(item, dict):
            continue
        kind, key = search.known_key(str(item.get("field_name", "")), _known)
        if kind == "metrics":
            metrics.append((key, (text(item, "dataset_name", required=False),
                                  text(item, "dataset_digest", required=False))))
            kind, key = ORDERED, str(len(metrics) - 1)
        order.append((kind, key, item.get("ascending", True) is not False))
    return order, metrics


def _models_json(models: list[LoggedModel]) -> list[dict[str, Any]]:
    return [model_json(model) for model in models]


# What a model's search may name besides metrics, params and tags: its info's fields, and the
# other names MLflow's server takes for them (``SqlLoggedModel.ALIASES``, its column
# ``artifact_location``). A misspelt key matched no model, where MLflow's server refuses it.
ATTRIBUTE_ALIASES = {"creation_time": "creation_timestamp_ms",
                     "creation_timestamp": "creation_timestamp_ms",
                     "last_updated_timestamp": "last_updated_timestamp_ms",
                     "artifact_location": "artifact_uri"}
ATTRIBUTES = frozenset(("model_id", "experiment_id", "name", "creation_timestamp_ms",
                        "last_updated_timestamp_ms", "artifact_uri", "status", "model_type",
                        "status_message", "source_run_id", *ATTRIBUTE_ALIASES))
TIMES = ("creation_timestamp_ms", "last_updated_timestamp_ms")


def _known(kind: str, key: str) -> bool:
    return key in ATTRIBUTES if kind == "attributes" else kind in ("metrics", "params", "tags")


def _numeric(kind: str, key: str) -> bool:
    return kind == "metrics" or (kind == "attributes" and
                                 ATTRIBUTE_ALIASES.get(key, key) in TIMES)


def _fields(model: dict[str, Any], datasets: list[DatasetKey],
            on: list[tuple[str, DatasetKey]]) -> search.Fields:
    """What a search reads of a model, as MLflow's server reads it: a metric filter holds when
    one of its points on ``datasets`` (any, none given) does, and an order reads each metric's
    latest point on its own data set (``_order``). Each had read the metric's last point
    whatever its data set: "the model best on the eval set" came out as the one best on what
    it was last measured on."""
    info, data = model["info"], model["data"]
    aliases = {alias: info[key] for alias, key in ATTRIBUTE_ALIASES.items()}
    read = [p for p in data["metrics"] if not datasets
            or any(model_metrics.on_dataset(p, dataset) for dataset in datasets)]
    grouped: dict[str, list[float]] = {}
    for point in read:
        grouped.setdefault(point["key"], []).append(float(point["value"]))
    metrics = {key: tuple(values) for key, values in grouped.items()}
    ordered = {str(i): value for i, (key, dataset) in enumerate(on)
               if (value := model_metrics.latest(data["metrics"], key, dataset)) is not None}
    return {"attributes": {**info, **aliases, "tags": None},
            "params": {p["key"]: p["value"] for p in data["params"]},
            "tags": {t["key"]: t["value"] for t in info["tags"]},
            "metrics": metrics, ORDERED: ordered,
            "datasets": {"any": True if read and datasets else None}}
