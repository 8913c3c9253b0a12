"""The part of MLflow's tracking REST API (mlflow/protos/service.proto) that the unmodified
``mlflow`` client uses to log runs: an MLflow experiment is a Fitboard project (by name), an
MLflow run is a Fitboard run (its id is the run's number). Thin views: validate, then call
``ingest``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from webapp.experiments import metric_store
from webapp.experiments.diagnosis import flatten_spec
from webapp.experiments.models import Experiment, parse_pk
from webapp.projects import actions as project_actions
from webapp.projects.forms import ProjectForm
from webapp.projects.models import Project
from webapp.tracking import access, ingest
from webapp.tracking.api import ApiError, endpoint, integer, not_found, number, text
from webapp.tracking.models import ApiToken

DEFAULT_EXPERIMENT = "0"  # what the client sends when no experiment was set
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # per log-batch, as MLflow's server
RUN_STATUS = {Experiment.Status.QUEUED: "SCHEDULED", Experiment.Status.RUNNING: "RUNNING",
              Experiment.Status.SUCCEEDED: "FINISHED", Experiment.Status.FAILED: "FAILED",
              Experiment.Status.CANCELLED: "KILLED"}
END_STATUS = {"FINISHED": Experiment.Status.SUCCEEDED, "FAILED": Experiment.Status.FAILED,
              "KILLED": Experiment.Status.CANCELLED}


def _ms(when: Any) -> int | None:
    return int(when.timestamp() * 1000) if when else None


# --- Experiments (projects) ----------------------------------------------------------------

def experiment_json(project: Project) -> dict[str, Any]:
    return {"experiment_id": str(project.pk), "name": project.name,
            "artifact_location": f"mlflow-artifacts:/{project.pk}",
            "lifecycle_stage": "active", "creation_time": _ms(project.created_at),
            "last_update_time": _ms(project.created_at), "tags": []}


def _project(token: ApiToken, experiment_id: str) -> Project:
    reachable = access.projects(token)
    if experiment_id == DEFAULT_EXPERIMENT:
        # No experiment set: the token's one project, when it reaches exactly one.
        only = list(reachable[:2])
        if len(only) == 1:
            return only[0]
        raise ApiError("RESOURCE_DOES_NOT_EXIST", "no default experiment: set "
                       "MLFLOW_EXPERIMENT_NAME (or mlflow.set_experiment) to a project's name")
    pk = parse_pk(experiment_id)
    project = reachable.filter(pk=pk).first() if pk else None
    if project is None:
        raise not_found(f"experiment {experiment_id[:40]!r}")
    return project


@endpoint(("GET",))
def experiment_get_by_name(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                           ) -> dict[str, Any]:
    name = text(body, "experiment_name")
    project = access.projects(token).filter(name=name).first()
    if project is None:
        raise not_found(f"experiment {name[:100]!r}")
    return {"experiment": experiment_json(project)}


@endpoint(("GET",))
def experiment_get(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                   ) -> dict[str, Any]:
    return {"experiment": experiment_json(_project(token, text(body, "experiment_id")))}


@endpoint(("POST",), write=True)
def experiment_create(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    """A new project, its creator the token's user: only a token for all of its user's
    projects may create one (a token limited to some projects reaches no new one)."""
    name = text(body, "name").strip()
    if not token.all_projects:
        raise ApiError("PERMISSION_DENIED", "this token is limited to chosen projects and "
                       "cannot create one; use a token for all your projects")
    form = ProjectForm({"name": name})
    if not form.is_valid():
        message = " ".join(form.errors.get("name", ["invalid name"]))
        code = "RESOURCE_ALREADY_EXISTS" if "exists" in message else "INVALID_PARAMETER_VALUE"
        raise ApiError(code, f"experiment {name[:100]!r}: {message}")
    project = project_actions.create_project(token.user, form.cleaned_data["name"])
    return {"experiment_id": str(project.pk)}


@endpoint(("POST", "GET"))
def experiment_search(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    if body.get("filter"):
        raise ApiError("INVALID_PARAMETER_VALUE", "experiment filters are not supported")
    return {"experiments": [experiment_json(p) for p in access.projects(token).order_by("pk")]}


# --- Runs ----------------------------------------------------------------------------------

def _run(token: ApiToken, body: Mapping[str, Any], write: bool = False) -> Experiment:
    run_id = str(body.get("run_id") or body.get("run_uuid") or "")
    pk = parse_pk(run_id)
    run = access.runs(token).select_related("project", "created_by").filter(pk=pk).first() \
        if pk else None
    if run is None:
        raise not_found(f"run {run_id[:40]!r}")
    if write and not run.is_external:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is trained by Fitboard: only "
                       "runs created through this API take logs")
    return run


def run_info(run: Experiment) -> dict[str, Any]:
    return {"run_id": str(run.pk), "run_uuid": str(run.pk), "run_name": run.name,
            "experiment_id": str(run.project_id),
            "user_id": run.created_by.username if run.created_by else "",
            "status": RUN_STATUS[Experiment.Status(run.status)],
            "start_time": _ms(run.started_at or run.created_at), "end_time": _ms(run.finished_at),
            "artifact_uri": f"mlflow-artifacts:/{run.project_id}/{run.pk}/artifacts",
            "lifecycle_stage": "active"}


def run_json(run: Experiment, latest: Mapping[str, metric_store.Series]) -> dict[str, Any]:
    if run.is_external:
        params, tags = run.spec.get("params", {}), run.spec.get("tags", {})
        names = {stored: name for name, stored in run.progress.get("keys", {}).items()}
    else:  # a form run: its spec, flattened, stands for its params
        params = {k: str(v) for k, v in flatten_spec(run.spec).items()}
        tags, names = {}, {}
    metrics = [{"key": names.get(key, key), "value": float(s.values[-1]),
                "timestamp": round(float(s.times[-1]) * 1000), "step": int(s.steps[-1])}
               for key, s in latest.items() if len(s)]
    return {"info": run_info(run), "inputs": {},
            "data": {"metrics": metrics,
                     "params": [{"key": k, "value": v} for k, v in params.items()],
                     "tags": [{"key": k, "value": v} for k, v in tags.items()]}}


def _pairs(items: Any, what: str, limit: int) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list) or len(items) > limit:
        raise ApiError("INVALID_PARAMETER_VALUE", f"{what} must be a list of at most {limit}")
    pairs: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ApiError("INVALID_PARAMETER_VALUE", f"each of {what} must be an object")
        pairs[text(item, "key")] = text(item, "value", required=False)
    return pairs


def _columns(items: Any) -> Mapping[str, ingest.Columns]:
    """A log-batch's metrics as columns per name, for ``ingest.log_columns``: no object per
    point. A point the fast path cannot read goes through ``_point``, which says what is
    wrong with it."""
    if items is None:
        return {}
    if not isinstance(items, list) or len(items) > MAX_METRICS:
        raise ApiError("INVALID_PARAMETER_VALUE", f"metrics must be a list of at most "
                       f"{MAX_METRICS}")
    columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for item in items:
        try:  # the client's protobuf JSON: step and timestamp as strings or numbers
            key, value = item["key"], float(item["value"])
            step, stamp = int(item.get("step") or 0), int(item.get("timestamp") or 0)
            readable = type(key) is str and key != ""
        except (TypeError, KeyError, ValueError, AttributeError):
            readable = False
        if not readable:
            point = _point(item)
            key, value, step = point.key, point.value, point.step
            stamp = integer(item.get("timestamp"), "timestamp")
        steps, values, times = columns.setdefault(key, ([], [], []))
        steps.append(step)
        values.append(value)
        times.append(stamp / 1000)
    return columns


def _point(item: Any) -> ingest.Point:
    if not isinstance(item, dict):
        raise ApiError("INVALID_PARAMETER_VALUE", "each metric must be an object")
    timestamp = integer(item.get("timestamp"), "timestamp")
    return ingest.Point(text(item, "key"), number(item.get("value"), "value"),
                        integer(item.get("step"), "step"), timestamp / 1000)


@endpoint(("POST",), write=True)
def run_create(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    project = _project(token, text(body, "experiment_id", required=False) or DEFAULT_EXPERIMENT)
    tags = _pairs(body.get("tags"), "tags", MAX_TAGS)
    name = text(body, "run_name", required=False) or tags.get("mlflow.runName", "")
    tags.setdefault("mlflow.runName", name)
    start = integer(body.get("start_time"), "start_time", default=0)
    run = ingest.create_run(token.user, project, name, tags, start / 1000 if start else None)
    run.created_by = token.user
    return {"run": run_json(run, {})}


@endpoint(("POST",), write=True)
def run_update(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body, write=True)
    name = text(body, "run_name", required=False)
    if name:
        Experiment.objects.filter(pk=run.pk).update(name=name[:200])
        run.name = name[:200]
    status = text(body, "status", required=False)
    if status in END_STATUS and not run.is_terminal:
        end = integer(body.get("end_time"), "end_time", default=0)
        ingest.end_run(run, END_STATUS[status], end / 1000 if end else None)
    elif status and status not in (*END_STATUS, "RUNNING", "SCHEDULED"):
        raise ApiError("INVALID_PARAMETER_VALUE", f"unknown run status {status[:20]!r}")
    run.refresh_from_db()
    return {"run_info": run_info(run)}


@endpoint(("GET",))
def run_get(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body)
    return {"run": run_json(run, metric_store.read(run.pk))}


@endpoint(("POST", "GET"))
def run_search(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("filter"):
        raise ApiError("INVALID_PARAMETER_VALUE", "run filters are not supported")
    ids = body.get("experiment_ids") or []
    if isinstance(ids, str):
        ids = [ids]
    limit = min(max(integer(body.get("max_results"), "max_results", 1000), 1), 1000)
    runs = access.runs(token).select_related("created_by").filter(
        project__in=[_project(token, str(i)) for i in ids])[:limit]
    latest = metric_store.read_many([run.pk for run in runs])
    return {"runs": [run_json(run, latest.get(run.pk, {})) for run in runs]}


@endpoint(("POST",), write=True)
def log_batch(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body, write=True)
    ingest.log_columns(run, _columns(body.get("metrics")),
                       _pairs(body.get("params"), "params", MAX_PARAMS),
                       _pairs(body.get("tags"), "tags", MAX_TAGS))
    return {}


@endpoint(("POST",), write=True)
def log_metric(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body, write=True)
    ingest.log_to_run(run, [_point(body)])
    return {}


@endpoint(("POST",), write=True)
def log_param(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body, write=True)
    ingest.log_to_run(run, params={text(body, "key"): text(body, "value", required=False)})
    return {}


@endpoint(("POST",), write=True)
def set_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = _run(token, body, write=True)
    key, value = text(body, "key"), text(body, "value", required=False)
    ingest.log_to_run(run, tags={key: value})
    if key == "mlflow.runName" and value:
        with transaction.atomic():
            Experiment.objects.filter(pk=run.pk).update(name=value[:200])
    return {}


@endpoint(("GET",))
def metric_history(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                   ) -> dict[str, Any]:
    """Every point of one metric, under the name the script logged it as."""
    run = _run(token, body)
    name = text(body, "metric_key")
    stored = run.progress.get("keys", {}).get(name, name) if run.is_external else name
    series = metric_store.read(run.pk, [stored]).get(stored)
    return {"metrics": list(_history(name, series)) if series is not None else []}


def _history(name: str, series: metric_store.Series) -> Iterable[dict[str, Any]]:
    for step, value, when in zip(series.steps.tolist(), series.values.tolist(),
                                 series.times.tolist(), strict=True):
        yield {"key": name, "value": value, "timestamp": round(when * 1000), "step": step}


@endpoint(("POST", "GET"))
def logged_model_search(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                        ) -> dict[str, Any]:
    """A stub: Fitboard keeps no logged models, and the client asks for them when it lists a
    run's artifacts under a folder (a folder might be a model's)."""
    for experiment_id in body.get("experiment_ids") or []:
        _project(token, str(experiment_id))
    return {"models": []}
