"""The native client's API (``clients/python``, package ``fitboard``), under /api/fitboard/v1/:
create a run in a project named by the script (or resume one), log points in columns, beat
while the script is quiet, end the run. Checkpoints go through the artifacts proxy the mlflow
client uses.

It is compact where MLflow's API is not: a batch carries each metric as three columns (steps,
values, unix times in seconds) rather than one object per point, so a request of thousands of
points is a few hundred kilobytes that ``json`` parses in C. Behind it is the same path as
MLflow's (``ingest.log_columns``): the same storage, live messages and verdicts, and the same
token, scope and membership checks (``api.endpoint``, ``access``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest
from django.urls import reverse

from webapp.experiments.models import Experiment, MetricChunk, parse_pk
from webapp.tracking import access, ingest
from webapp.tracking.api import ApiError, endpoint, not_found, number, text
from webapp.tracking.models import ApiToken

MAX_POINTS = 50_000  # per request; the client sends at most 10,000
MAX_PAIRS = 1000  # params or tags per request (a flattened config can be long)
END_STATUS = {"succeeded": Experiment.Status.SUCCEEDED, "failed": Experiment.Status.FAILED,
              "cancelled": Experiment.Status.CANCELLED}


def heartbeat_interval() -> float:
    """How often the client beats: a third of the silence after which a run is failed, so a
    beat or two may be lost, and at most every 30 s."""
    return min(30.0, settings.FITBOARD_EXTERNAL_HEARTBEAT / 3)


def _run(token: ApiToken, body: dict[str, Any]) -> Experiment:
    pk = parse_pk(str(body.get("run_id") or ""))
    try:  # get(), not first(): one run by its key, and no ORDER BY to compile
        run = access.runs(token).get(pk=pk) if pk else None
    except Experiment.DoesNotExist:
        run = None
    if run is None:
        raise not_found(f"run {str(body.get('run_id'))[:40]!r}")
    if not run.is_external:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is trained by Fitboard: only "
                       "runs created through the API take logs")
    access.check_change(token, run, f"run {run.pk}")
    return run


def _strings(value: Any, what: str) -> dict[str, str]:
    """A JSON object of names to strings (params, tags)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_PAIRS:
        raise ApiError("INVALID_PARAMETER_VALUE", f"{what} must be an object of at most "
                       f"{MAX_PAIRS} names")
    if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
        raise ApiError("INVALID_PARAMETER_VALUE", f"{what} must map names to strings")
    return value


def columns(metrics: Any) -> dict[str, ingest.Columns]:
    """``{"name": [[steps], [values], [times]], ...}``, checked; ApiError for anything else
    (columns of unequal length, a step that is not an integer, more than MAX_POINTS)."""
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise ApiError("INVALID_PARAMETER_VALUE", "metrics must be an object of metric names "
                       "to [steps, values, times]")
    found: dict[str, ingest.Columns] = {}
    count = 0
    for key, column in metrics.items():
        if not (isinstance(column, list) and len(column) == 3
                and all(isinstance(c, list) for c in column)
                and len(column[0]) == len(column[1]) == len(column[2])):
            raise ApiError("INVALID_PARAMETER_VALUE", f"metric {key[:64]!r} must be three "
                           "lists of equal length: steps, values, times")
        count += len(column[0])
        if count > MAX_POINTS:
            raise ApiError("INVALID_PARAMETER_VALUE", f"at most {MAX_POINTS} points a request")
        if not all(type(step) is int for step in column[0]):  # bool is an int; not a step
            raise ApiError("INVALID_PARAMETER_VALUE", f"metric {key[:64]!r}: steps must be "
                           "integers")
        try:  # one conversion per column, not a checked call per point: batches are large
            values = [_NAN if v is None else float(v) for v in column[1]]
            times = [float(t) for t in column[2]]
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float's
            raise ApiError("INVALID_PARAMETER_VALUE", f"metric {key[:64]!r}: values and times "
                           "must be numbers") from None
        found[key] = (column[0], values, times)
    return found


# None is how a JSON encoder that refuses NaN writes it (the client writes NaN itself).
_NAN = float("nan")


@endpoint(("POST",), write=True)
def run_create(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """A new external run in the project named ``project`` (one the token reaches, made for
    it when there is none yet, as mlflow's ``set_experiment`` and W&B's ``init`` do), with the
    script's ``params`` (its flattened config) and ``tags``."""
    name = text(body, "project").strip()
    project = access.project_named(token, name) or access.create_project(token, name)
    params, tags = _strings(body.get("params"), "params"), _strings(body.get("tags"), "tags")
    started = body.get("started")
    run = ingest.create_run(token.user, project, text(body, "name", required=False), tags,
                            number(started, "started") if started is not None else None,
                            params, beats=True)
    return {"run_id": run.pk, "project_id": project.pk, "status": run.status,
            "url": request.build_absolute_uri(reverse("experiment-detail", args=[run.pk])),
            "heartbeat_s": heartbeat_interval()}


@endpoint(("POST",), write=True)
def run_resume(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """Carry on logging into the run ``run_id`` (W&B's ``init(id=..., resume=...)``): a script
    that crashed or was stopped starts again where it left off. An ended run runs again (its
    next end stores a new summary and verdict); ``params`` and ``tags`` are added to it; the
    answer names the last step stored, so the script can go on from the step after it."""
    run = _run(token, body)
    with transaction.atomic():
        if run.is_terminal:
            run.reopen()
        ingest.log_columns(run, {}, _strings(body.get("params"), "params"),
                           _strings(body.get("tags"), "tags"))
    last = MetricChunk.objects.filter(experiment=run).aggregate(step=Max("last_step"))["step"]
    run.refresh_from_db(fields=["status"])
    return {"run_id": run.pk, "project_id": run.project_id, "status": run.status,
            "url": request.build_absolute_uri(reverse("experiment-detail", args=[run.pk])),
            "heartbeat_s": heartbeat_interval(), "last_step": last}


@endpoint(("POST",), write=True)
def run_log(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """Store a batch of points (and params and tags), as the mlflow API's log-batch does."""
    run = _run(token, body)
    ingest.log_columns(run, columns(body.get("metrics")),
                       _strings(body.get("params"), "params"), _strings(body.get("tags"), "tags"))
    return {"status": run.status}


@endpoint(("POST",), write=True)
def run_heartbeat(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                  ) -> dict[str, Any]:
    """The script is alive; the answer's status says whether the run was cancelled, and
    ``heartbeat_s`` how often to beat (the mlflow client's store learns it here)."""
    return {"status": ingest.beat(_run(token, body)), "heartbeat_s": heartbeat_interval()}


@endpoint(("POST",), write=True)
def run_finish(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """End the run as ``status`` (succeeded, failed or cancelled) at ``ended`` (unix time);
    ``reason`` (a failed or killed end's: the exception, the signal) is shown with it."""
    run = _run(token, body)
    status = text(body, "status", required=False) or "succeeded"
    if status not in END_STATUS:
        raise ApiError("INVALID_PARAMETER_VALUE", f"status must be one of {', '.join(END_STATUS)}")
    ended = body.get("ended")
    if not run.is_terminal:
        ingest.end_run(run, END_STATUS[status],
                       number(ended, "ended") if ended is not None else None,
                       text(body, "reason", required=False))
    run.refresh_from_db(fields=["status"])
    return {"status": run.status}
