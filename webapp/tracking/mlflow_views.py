"""The part of MLflow's tracking REST API (mlflow/protos/service.proto) that the unmodified
``mlflow`` client uses to log runs: an MLflow experiment is a Fitboard project (by name), an
MLflow run is a Fitboard run (its id is the run's number). Thin views: validate, then call
``ingest``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from typing import Any, TypeVar

import numpy as np
import orjson
from django.db import transaction
from django.db.models import Model, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse

from webapp.experiments import metric_store
from webapp.experiments.diagnosis import flatten_spec
from webapp.experiments.models import Experiment, parse_pk
from webapp.projects import access as project_access
from webapp.projects import actions as project_actions
from webapp.projects import storage
from webapp.projects.forms import ProjectForm
from webapp.projects.models import Project
from webapp.tracking import access, history, ingest, model_metrics, search
from webapp.tracking.api import (
    INT64,
    MAX_DEPTH,
    ApiError,
    endpoint,
    integer,
    metric_value,
    nested_deeper_than,
    not_found,
    number,
    text,
)
from webapp.tracking.models import ApiToken, ExperimentTag

DEFAULT_EXPERIMENT = "0"  # what the client sends when no experiment was set
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # per log-batch, as MLflow's server
MAX_INPUTS = 100  # datasets (and logged models) one run holds
MAX_INPUT_JSON = 65536  # characters of one dataset input (its schema and profile included)
# Characters of what a search of runs reads of a dataset input (``datasets.name``, ``.digest``,
# ``.context``: its tags' values), MLflow's own limits (MAX_DATASET_NAME_SIZE and the others of
# mlflow/utils/validation.py): a name of 60,000 characters was read by every LIKE of a search
# for each of the run's inputs, 0.8 s a run for one ILIKE clause.
DATASET_LIMITS = {"name": 500, "digest": 36}
MAX_INPUT_TAG_KEY, MAX_INPUT_TAG_VALUE = 255, 500
MAX_SEARCH = 1000  # logged models a page of their search holds at most
# A page of a search of runs or experiments: 1,000 unless the client asks for another number,
# at most 50,000 (SEARCH_MAX_RESULTS_DEFAULT and _THRESHOLD of MLflow's server). Fitboard had
# cut any page at 1,000: a script's search_runs(max_results=5000) read 1,000 runs, no error.
PAGE, MAX_PAGE = 1000, 50_000
MAX_EXPERIMENTS = 1000  # different experiments one search names
# Tags one experiment holds: every read of the experiment (get, search, each member's list of
# them) sends them all, and a maintainer's script set 5 kB tags without end (MLflow's
# ``set_experiment_tags`` sets a few).
MAX_EXPERIMENT_TAGS = 1000
# The model registry's calls (under /api/2.0/), which Fitboard does not serve.
REGISTRY_CALLS = ("mlflow/registered-models/", "mlflow/model-versions/")
RUN_NAME_TAG = "mlflow.runName"  # a run's name, as its tag (the client's runs table shows it)
MODEL_HISTORY = "mlflow.log-model.history"  # the run tag listing its models (runs/log-model)
# search_runs' run_view_type: which lifecycle stages it lists.
VIEW_TYPES = {"ACTIVE_ONLY": (False,), "DELETED_ONLY": (True,), "ALL": (False, True),
              "1": (False,), "2": (True,), "3": (False, True)}
RUN_STATUS = {Experiment.Status.QUEUED: "SCHEDULED", Experiment.Status.RUNNING: "RUNNING",
              Experiment.Status.SUCCEEDED: "FINISHED", Experiment.Status.FAILED: "FAILED",
              Experiment.Status.CANCELLED: "KILLED"}
END_STATUS = {"FINISHED": Experiment.Status.SUCCEEDED, "FAILED": Experiment.Status.FAILED,
              "KILLED": Experiment.Status.CANCELLED}


def epoch_ms(when: Any) -> int | None:
    return int(when.timestamp() * 1000) if when else None


# --- Experiments (projects) ----------------------------------------------------------------

def experiment_json(project: Project) -> dict[str, Any]:
    """The experiment of a project (its ``mlflow_tags`` prefetched for a list)."""
    return {"experiment_id": str(project.pk), "name": project.name,
            "artifact_location": f"mlflow-artifacts:/{project.pk}",
            "lifecycle_stage": "active", "creation_time": epoch_ms(project.created_at),
            "last_update_time": epoch_ms(project.created_at),
            "tags": [{"key": t.key, "value": t.value} for t in project.mlflow_tags.all()]}


def _experiment_fields(experiment: Mapping[str, Any]) -> search.Fields:
    return {"attributes": {k: experiment[k] for k in EXPERIMENT_ATTRIBUTES},
            "tags": {t["key"]: t["value"] for t in experiment["tags"]}}


EXPERIMENT_ATTRIBUTES = ("name", "experiment_id", "creation_time", "last_update_time")


def _experiment_key(kind: str, key: str) -> bool:
    """Whether a search of experiments can name ``kind.key``: their tags and attributes."""
    return kind == "tags" or (kind == "attributes" and key in EXPERIMENT_ATTRIBUTES)


def find_project(token: ApiToken, experiment_id: str) -> Project:
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


def find_projects(token: ApiToken, ids: Any) -> list[Project]:
    """The projects a search names (``experiment_ids``, each found as ``find_project`` finds
    it), each once: a list of one id 20,000 times over (100 kB) cost 20,000 queries, 18 s."""
    distinct = list(dict.fromkeys(str(i) for i in repeated(ids)))
    if len(distinct) > MAX_EXPERIMENTS:
        raise ApiError("INVALID_PARAMETER_VALUE", f"a search names at most {MAX_EXPERIMENTS} "
                       "experiments")
    # One query for all of them: 999 spellings of one id (" 1", "01", ...) were 999 queries.
    named = {i: parse_pk(i) for i in distinct if i != DEFAULT_EXPERIMENT}
    found = {project.pk: project for project in access.projects(token).filter(
        pk__in={pk for pk in named.values() if pk})}
    for experiment_id, pk in named.items():
        if pk not in found:
            raise not_found(f"experiment {experiment_id[:40]!r}")
    projects = [found[pk] for pk in dict.fromkeys(pk for pk in named.values() if pk)]
    if DEFAULT_EXPERIMENT in distinct:
        projects.append(find_project(token, DEFAULT_EXPERIMENT))
    return projects


@endpoint(("GET",))
def experiment_get_by_name(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                           ) -> dict[str, Any]:
    name = text(body, "experiment_name")
    project = access.project_named(token, name)
    if project is None:
        raise not_found(f"experiment {name[:100]!r}")
    return {"experiment": experiment_json(project)}


@endpoint(("GET",))
def experiment_get(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                   ) -> dict[str, Any]:
    return {"experiment": experiment_json(find_project(token, text(body, "experiment_id")))}


@endpoint(("POST",), write=True)
def experiment_create(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    """A new project, its creator the token's user (``access.create_project``), with the tags
    ``create_experiment(name, tags=...)`` gives it (checked before it is made), set by the
    token's user and counted in their storage quota as ``set_experiment_tag`` counts them: they
    were set by no one and counted nowhere, 2 MB a project at 100 projects an hour."""
    tags = pairs(body.get("tags"), "tags", MAX_TAGS)
    ingest.check_lengths("tag", tags, ingest.MAX_EXPERIMENT_TAG)
    name = text(body, "name").strip()
    with transaction.atomic():
        project = access.create_project(token, name)
        try:
            storage.reserve(token.user, sum(_tag_bytes(k, v) for k, v in tags.items()))
        except storage.OverStorageQuota as exc:
            raise ApiError("INVALID_PARAMETER_VALUE", f"experiment {name[:100]!r} not created: "
                           f"{exc}") from None
        ExperimentTag.objects.bulk_create(
            ExperimentTag(project=project, key=key, value=value, set_by=token.user)
            for key, value in tags.items())
    return {"experiment_id": str(project.pk)}


@endpoint(("POST", "GET"))
def experiment_search(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    """The token's projects, filtered and ordered by MLflow's grammar, newest first unless
    ordered otherwise (ties by id, as MLflow's server), a page at a time (``page_of``, ended
    early past MAX_PAGE_CHARS); no project is ever deleted through the API, so DELETED_ONLY
    lists none."""
    clauses = search.parse_filter(text(body, "filter", required=False), lambda kind, key: (
        kind == "attributes" and key in ("creation_time", "last_update_time")),
        _experiment_key)
    order = search.parse_order(repeated(body.get("order_by")), _experiment_key)
    offset, size = page_of(body)
    if str(body.get("view_type") or "ACTIVE_ONLY") in ("DELETED_ONLY", "2"):
        return {"experiments": []}
    projects = access.projects(token).prefetch_related("mlflow_tags").order_by(
        *(("pk",) if order else ("-created_at", "pk")))
    # Two at a time: an experiment holds up to 20 MB of tags (each search read every project
    # of its user's whole).
    ids = matching(projects, clauses, order, _experiments_json, _experiment_fields, chunk=2)
    found, more = json_page(in_order(projects, ids[offset:offset + size + 1], chunk=2), size,
                            _experiments_json, chunk=2)
    return {"experiments": found,
            **({"next_page_token": str(offset + len(found))} if more else {})}


def _experiments_json(projects: list[Project]) -> list[dict[str, Any]]:
    return [experiment_json(project) for project in projects]


@endpoint(("POST",), write=True)
def experiment_update(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    """Rename a project (``rename_experiment``): its maintainers only, as on the pages."""
    project = find_project(token, text(body, "experiment_id"))
    if project.pk not in project_access.maintained_project_ids(token.user):
        raise ApiError("PERMISSION_DENIED", f"only a maintainer of {project.name!r} may "
                       "rename it")
    name = text(body, "new_name").strip()
    if name.lower() != project.name.lower():
        form = ProjectForm({"name": name})
        if not form.is_valid():
            raise access.name_refused(token, name, form)
    project_actions.rename_project(project, name)
    return {}


@endpoint(("POST",), write=True)
def experiment_delete(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                      ) -> dict[str, Any]:
    """Refused: a project holds its other members' runs too, and is not deleted by a script."""
    project = find_project(token, text(body, "experiment_id"))
    raise ApiError("PERMISSION_DENIED", f"experiment {project.name!r} is a Fitboard project "
                   "and cannot be deleted through the API; delete its runs (delete_run)")


def check_maintains(token: ApiToken, project: Project, doing: str) -> None:
    """PERMISSION_DENIED unless the token's user maintains ``project``: a project's own
    settings (its name, its tags: ``mlflow.note.content`` is its description) are its
    maintainers', as on the pages."""
    if project.pk not in project_access.maintained_project_ids(token.user):
        raise ApiError("PERMISSION_DENIED", f"only a maintainer of {project.name!r} may "
                       f"{doing}")


@endpoint(("POST",), write=True)
def experiment_set_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                       ) -> dict[str, Any]:
    project = find_project(token, text(body, "experiment_id"))
    check_maintains(token, project, "tag it")
    key, value = text(body, "key"), text(body, "value", required=False)
    ingest.check_lengths("tag", {key: value}, ingest.MAX_EXPERIMENT_TAG)
    with transaction.atomic():
        # Under the project's row lock (after the user's, which the quota takes first
        # everywhere): two tags sent at once are counted one after the other.
        storage.lock_user(token.user)
        Project.objects.select_for_update().filter(pk=project.pk).first()
        tags = ExperimentTag.objects.filter(project=project)
        old = tags.filter(key=key).first()
        if old is None and tags.count() >= MAX_EXPERIMENT_TAGS:
            raise ApiError("INVALID_PARAMETER_VALUE", f"experiment {project.pk} holds at most "
                           f"{MAX_EXPERIMENT_TAGS:,} tags: delete some (delete_experiment_tag)")
        mine = old is not None and old.set_by_id == token.user.pk
        try:  # the value it replaces frees room only in the quota that counted it
            storage.reserve(token.user, _tag_bytes(key, value),
                            freeing=_tag_bytes(old.key, old.value) if old and mine else 0)
        except storage.OverStorageQuota as exc:
            raise ApiError("INVALID_PARAMETER_VALUE", f"tag {key[:100]!r} of experiment "
                           f"{project.pk} not stored: {exc}") from None
        ExperimentTag.objects.update_or_create(project=project, key=key,
                                               defaults={"value": value, "set_by": token.user})
    return {}


def _tag_bytes(key: str, value: str) -> int:
    """Bytes an experiment tag takes in its setter's storage quota (``text_stored_by``)."""
    return len(key.encode()) + len(value.encode())


@endpoint(("POST",), write=True)
def experiment_delete_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                          ) -> dict[str, Any]:
    project = find_project(token, text(body, "experiment_id"))
    check_maintains(token, project, "remove its tags")
    key = text(body, "key")
    if not ExperimentTag.objects.filter(project=project, key=key).delete()[0]:
        raise not_found(f"tag {key[:100]!r} of experiment {project.pk}")
    return {}


# --- Runs ----------------------------------------------------------------------------------

def find_run(token: ApiToken, body: Mapping[str, Any], write: bool = False,
             deleted: bool = False, lock: bool = False) -> Experiment:
    """The run ``body`` names, deleted or not; ``write``: one that takes logs (created through
    this API, by the token's user unless they maintain the project, and not deleted unless
    ``deleted`` allows it); ``lock``: read under its row lock (see ``run_to_log``)."""
    run_id = str(body.get("run_id") or body.get("run_uuid") or "")
    if not run_id:  # as MLflow's server answers a request without one
        raise ApiError("INVALID_PARAMETER_VALUE", "missing value for parameter 'run_id'")
    pk = parse_pk(run_id)
    # A write reads neither the project nor the creator (a run's JSON does): a log-metric
    # request is mostly its queries.
    rows = access.runs(token, deleted=True)
    if lock:
        rows = rows.select_for_update(of=("self",))
    if not write:
        rows = rows.select_related("project", "created_by")
    try:  # get(), not first(): one run by its key, and no ORDER BY to compile
        run = rows.get(pk=pk) if pk else None
    except Experiment.DoesNotExist:
        run = None
    if run is None:
        raise not_found(f"run {run_id[:40]!r}")
    if write and not run.is_external:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is trained by Fitboard: only "
                       "runs created through this API take logs")
    if write:
        access.check_change(token, run, f"run {run.pk}")
    if write and run.deleted_at and not deleted:
        raise ApiError("INVALID_PARAMETER_VALUE", f"run {run.pk} is deleted: restore it "
                       "(restore_run) to log to it")
    return run


@contextmanager
def run_to_log(token: ApiToken, body: Mapping[str, Any]) -> Iterator[Experiment]:
    """``find_run(write=True)``, read under the run's row lock in a transaction that the
    block's writes join (``ingest.log_columns(locked=True)``): a request that logs reads its
    run once, for the access checks and for the update, not once for each."""
    with transaction.atomic():
        yield find_run(token, body, write=True, lock=True)


def run_info(run: Experiment) -> dict[str, Any]:
    return {"run_id": str(run.pk), "run_uuid": str(run.pk), "run_name": run_name(run),
            "experiment_id": str(run.project_id),
            "user_id": run.created_by.username if run.created_by else "",
            "status": RUN_STATUS[Experiment.Status(run.status)],
            "start_time": epoch_ms(run.started_at or run.created_at),
            "end_time": epoch_ms(run.finished_at),
            "artifact_uri": f"mlflow-artifacts:/{run.project_id}/{run.pk}/artifacts",
            "lifecycle_stage": "deleted" if run.deleted_at else "active"}


def run_name(run: Experiment) -> str:
    """A run's name; a script's run's whole, from its tag ``mlflow.runName``: the column holds
    NAME_LENGTH characters, and a name of 225 read back cut (``attributes.run_name = '<the
    name>'`` found nothing), where MLflow's server answers it whole. The tag is read only where
    it is the column's name, whole or cut (it is renamed with it)."""
    full = run.spec.get("tags", {}).get(RUN_NAME_TAG, "") if run.is_external else ""
    return full if full.startswith(run.name) else run.name


def run_json(run: Experiment, latest: Mapping[str, metric_store.Series]) -> dict[str, Any]:
    if run.is_external:
        params, tags = run.spec.get("params", {}), run.spec.get("tags", {})
        names = {stored: name for name, stored in run.progress.get("keys", {}).items()}
    else:  # a form run: its spec, flattened, stands for its params
        params = {k: str(v) for k, v in flatten_spec(run.spec).items()}
        tags, names = {}, {}
    metrics = [{"key": names.get(key, key), "value": metric_value(float(s.values[-1])),
                "timestamp": round(float(s.times[-1]) * 1000),
                "step": ingest.logged_step(run.progress, key, int(s.steps[-1]))}
               for key, s in latest.items() if len(s)]
    return {"info": run_info(run),
            "inputs": {"dataset_inputs": run.spec.get("inputs", []) if run.is_external else [],
                       "model_inputs": run.spec.get("model_inputs", []) if run.is_external
                       else []},
            "outputs": {"model_outputs": run.spec.get("outputs", []) if run.is_external
                        else []},
            "data": {"metrics": metrics,
                     "params": [{"key": k, "value": v} for k, v in params.items()],
                     "tags": [{"key": k, "value": v} for k, v in tags.items()]}}


def pairs(items: Any, what: str, limit: int, unique: bool = False) -> dict[str, str]:
    """The ``{"key", "value"}`` objects of ``items`` as a dict; ``unique``: a key given twice
    is refused, as MLflow's server refuses a batch's params (the later value had won)."""
    if items is None:
        return {}
    if not isinstance(items, list) or len(items) > limit:
        raise ApiError("INVALID_PARAMETER_VALUE", f"{what} must be a list of at most {limit}")
    pairs: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ApiError("INVALID_PARAMETER_VALUE", f"each of {what} must be an object")
        key = text(item, "key")
        if unique and key in pairs:
            raise ApiError("INVALID_PARAMETER_VALUE", f"Duplicate {what} keys have been "
                           f"submitted: {key[:100]!r}. Send one value per key.")
        pairs[key] = text(item, "value", required=False)
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
        try:
            key, value = item["key"], float(item["value"])
            # The client's protobuf JSON: int64s as strings (or numbers), a 0 left out. Read
            # here only as int() reads an integer (int() of any number read 1.5 and true as 1).
            step, stamp = item.get("step", 0), item.get("timestamp", 0)
            step = int(step) if type(step) is str else step
            stamp = int(stamp) if type(stamp) is str else stamp
            readable = (type(key) is str and key != "" and type(step) is int
                        and type(stamp) is int and -INT64 <= step < INT64
                        and -INT64 <= stamp < INT64)
            time = stamp / 1000
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            readable = False
        if not readable:
            point = _point(item)
            key, value, step, time = point.key, point.value, point.step, point.time
        steps, values, times = columns.setdefault(key, ([], [], []))
        steps.append(step)
        values.append(value)
        times.append(time)
    return columns


def _point(item: Any) -> ingest.Point:
    if not isinstance(item, dict):
        raise ApiError("INVALID_PARAMETER_VALUE", "each metric must be an object")
    timestamp = integer(item.get("timestamp"), "timestamp")
    return ingest.Point(text(item, "key"), number(item.get("value"), "value"),
                        integer(item.get("step"), "step"), timestamp / 1000)


@endpoint(("POST",), write=True)
def run_create(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    project = find_project(token, text(body, "experiment_id", required=False) or DEFAULT_EXPERIMENT)
    tags = pairs(body.get("tags"), "tags", MAX_TAGS)
    given, tagged = text(body, "run_name", required=False), tags.get(RUN_NAME_TAG, "")
    if given and tagged and given != tagged:  # as MLflow's server: the run had both names
        raise ApiError("INVALID_PARAMETER_VALUE", f"Both 'run_name' argument and "
                       f"'{RUN_NAME_TAG}' tag are specified, but with different values "
                       f"(run_name={given[:100]!r}, {RUN_NAME_TAG}={tagged[:100]!r}).")
    name = given or tagged or ingest.generated_name()  # as MLflow's server names one
    tags["mlflow.runName"] = tags.get("mlflow.runName") or name
    start = integer(body.get("start_time"), "start_time", default=0)
    run = ingest.create_run(token.user, project, name, tags, start / 1000 if start else None)
    run.created_by = token.user
    return {"run": run_json(run, {})}


@endpoint(("POST",), write=True)
def run_update(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = find_run(token, body, write=True)
    name = text(body, "run_name", required=False)
    if name:  # and its tag mlflow.runName, which MLflow's server renames with it
        ingest.log_to_run(run, tags={RUN_NAME_TAG: name})
        Experiment.objects.filter(pk=run.pk).update(name=name[:200])
        run.name = name[:200]
    status = text(body, "status", required=False)
    if status in END_STATUS and (not run.is_terminal or _ends_again(run, END_STATUS[status])):
        end = integer(body.get("end_time"), "end_time", default=0)
        with transaction.atomic():
            if run.is_terminal:
                run.reopen()
            ingest.end_run(run, END_STATUS[status], end / 1000 if end else None)
    elif status == "RUNNING" and run.is_terminal:  # start_run(run_id=...) resumes it
        run.reopen()
    elif status and status not in (*END_STATUS, "RUNNING", "SCHEDULED"):
        raise ApiError("INVALID_PARAMETER_VALUE", f"unknown run status {status[:20]!r}")
    run.refresh_from_db()
    return {"run_info": run_info(run)}


def _ends_again(run: Experiment, status: str) -> bool:
    """Whether an ended run takes another end ``status``, as MLflow's server takes it
    (``set_terminated(run_id, "FAILED")`` after ``end_run()``: the run read back as finished):
    when its script ended it. An end Fitboard made stands (the Cancel button on the run page, a
    silent run failed by housekeeping): the script's own ``end_run()`` comes after it."""
    return status != run.status and (run.status == Experiment.Status.SUCCEEDED
                                      or run.error.startswith(tuple(ingest.SCRIPT_ENDS.values())))


@endpoint(("GET",))
def run_get(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run = find_run(token, body)
    return {"run": run_json(run, metric_store.latest_many([run.pk]).get(run.pk, {}))}


@endpoint(("POST", "GET"))
def run_search(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """The runs of the experiments, latest started first (as MLflow's server: a run created
    with an earlier ``start_time`` comes after), or filtered and ordered by MLflow's grammar
    (then every run of the experiments is read: filters apply to what ``run_json`` shows);
    a page token is the offset of the next page, and a page ends early past MAX_PAGE_CHARS."""
    clauses = search.parse_filter(text(body, "filter", required=False), _numeric, _run_key)
    order = search.parse_order(repeated(body.get("order_by")), _run_order_key)
    stages = VIEW_TYPES.get(str(body.get("run_view_type") or "ACTIVE_ONLY"))
    if stages is None:
        raise ApiError("INVALID_PARAMETER_VALUE", "run_view_type must be ACTIVE_ONLY, "
                       "DELETED_ONLY or ALL")
    offset, limit = page_of(body)
    runs = access.runs(token, deleted=True).select_related("created_by").filter(
        project__in=find_projects(token, body.get("experiment_ids"))).order_by(
        Coalesce("started_at", "created_at").desc(), "-pk")  # run_info's start_time
    if stages != (False, True):
        runs = runs.filter(deleted_at__isnull=not stages[0])
    if not clauses and not order:
        found, more = json_page(runs[offset:offset + limit + 1].iterator(READ_CHUNK), limit,
                                _runs_json)
    else:
        ids = matching(runs, clauses, order, _runs_json, _run_fields)
        found, more = json_page(in_order(runs, ids[offset:offset + limit + 1]), limit,
                                _runs_json)
    return {"runs": found, **({"next_page_token": str(offset + len(found))} if more else {})}


# Characters of JSON a page of a search (of runs, logged models, experiments) holds, past which
# it ends early, its ``next_page_token`` where the next one starts: a run or a logged model holds
# up to 3 MB of text (params and tags, dataset inputs, model outputs, linked metrics), and a
# member's script made a thousand such runs in an hour, within its quota, so that every search of
# the project held 6 GB for a page of 1,000.
MAX_PAGE_CHARS = 32 * 2**20
READ_CHUNK = 25  # runs or logged models read from the database at a time (3 MB each at most)
Row = TypeVar("Row", bound=Model)
T = TypeVar("T")
ToJson = Callable[[list[Row]], list[dict[str, Any]]]


def _chunks(items: Iterable[T], size: int | None) -> Iterator[list[T]]:
    """``items`` ``size`` at a time (READ_CHUNK when None)."""
    taken = iter(items)
    while chunk := list(islice(taken, size or READ_CHUNK)):
        yield chunk


def _runs_json(runs: list[Experiment]) -> list[dict[str, Any]]:
    latest = metric_store.latest_many([run.pk for run in runs])
    return [run_json(run, latest.get(run.pk, {})) for run in runs]


def json_page(rows: Iterable[Row], limit: int, to_json: ToJson[Row], chunk: int | None = None
              ) -> tuple[list[dict[str, Any]], bool]:
    """The JSON of ``rows`` (``to_json`` of a chunk of them at a time) up to ``limit`` of them
    or MAX_PAGE_CHARS (one at least), and whether a row was left out."""
    found: list[dict[str, Any]] = []
    chars = 0
    for part in _chunks(rows, chunk):
        for answer in to_json(part):
            if len(found) == limit or chars > MAX_PAGE_CHARS:
                return found, True
            found.append(answer)
            chars += len(orjson.dumps(answer))
    return found, False


def matching(rows: QuerySet[Row], clauses: list[search.Clause],
             order: list[tuple[str, str, bool]], to_json: ToJson[Row],
             fields: Callable[[dict[str, Any]], search.Fields], chunk: int | None = None
             ) -> list[int]:
    """The ids of the ``rows`` whose JSON's ``fields`` the ``clauses`` hold for, in the
    search's ``order``: read a chunk at a time, and only each one's id and the values it is
    ordered by kept (every row, whole, was held at once)."""
    kept = []
    for part in _chunks(rows.iterator(chunk or READ_CHUNK), chunk):
        for row, answer in zip(part, to_json(part), strict=True):
            found = fields(answer)
            if search.matches(clauses, found):
                kept.append((row.pk, search.order_values(found, order)))
    return [pk for pk, _ in search.ordered(kept, order, lambda item: item[1])]


def in_order(rows: QuerySet[Row], ids: list[int], chunk: int | None = None) -> Iterator[Row]:
    """The ``rows`` of ``ids``, in their order (read a chunk at a time)."""
    for part in _chunks(ids, chunk):
        found = rows.in_bulk(part)
        yield from (found[pk] for pk in part if pk in found)


def page_of(body: Mapping[str, Any]) -> tuple[int, int]:
    """(offset, size) of the page of a search that ``body`` asks for: its ``page_token`` is
    the offset, its ``max_results`` the size (``PAGE`` unless given, 1 to ``MAX_PAGE``)."""
    size = integer(body.get("max_results"), "max_results", PAGE)
    if not 1 <= size <= MAX_PAGE:
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {size} for parameter "
                       f"'max_results' supplied. It must be a positive integer, at most "
                       f"{MAX_PAGE}")
    return max(integer(body.get("page_token"), "page_token"), 0), size


def repeated(value: Any) -> list[Any]:
    """A repeated field: a list in JSON, one value in a query string."""
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [value]


def at_most(value: Any, what: str, limit: int) -> list[Any]:
    """A repeated field of at most ``limit`` items, refused before any is read: a run holds no
    more, and 20,000 dataset inputs in one request took 24 s to compare with each other."""
    items = repeated(value)
    if len(items) > limit:
        raise ApiError("INVALID_PARAMETER_VALUE", f"at most {limit} {what} a request")
    return items


# MLflow's other names of run attributes in a filter or an order (its SearchUtils'
# translate_key_alias): the runs table's column titles.
START_ALIASES = ("created", "Created")
NAME_ALIASES = ("run name", "Run name", "Run Name")
DATASET_CONTEXT = "mlflow.data.context"  # the tag of a dataset input that says its use


# What a run's search may name besides metrics, params and tags: run_info's fields and
# MLflow's other names of them, and the fields of its dataset inputs.
RUN_ATTRIBUTES = frozenset(("run_id", "run_uuid", "run_name", "experiment_id", "user_id",
                            "status", "start_time", "end_time", "artifact_uri",
                            "lifecycle_stage", *START_ALIASES, *NAME_ALIASES))
DATASET_FIELDS = ("name", "digest", "context")


def _run_key(kind: str, key: str) -> bool:
    if kind == "attributes":
        return key in RUN_ATTRIBUTES
    return kind != "datasets" or key in DATASET_FIELDS


def _run_order_key(kind: str, key: str) -> bool:
    """An order takes a run's single values: not its datasets, of which it has several."""
    return kind != "datasets" and _run_key(kind, key)


def _numeric(kind: str, key: str) -> bool:
    return kind == "metrics" or (kind == "attributes" and key in (
        "start_time", "end_time", *START_ALIASES))


def _run_fields(run: Mapping[str, Any]) -> search.Fields:
    """What a search may read of a run, from its JSON; ``datasets.<name|digest|context>``
    holds one value per dataset input, and a clause on them holds when one of them does."""
    data, info = run["data"], run["info"]
    inputs = run["inputs"]["dataset_inputs"]
    contexts = tuple(t["value"] for i in inputs for t in i.get("tags", [])
                     if t["key"] == DATASET_CONTEXT)
    return {"metrics": {m["key"]: float(m["value"]) for m in data["metrics"]},
            "params": {p["key"]: p["value"] for p in data["params"]},
            "tags": {t["key"]: t["value"] for t in data["tags"]},
            "attributes": {**info, **dict.fromkeys(START_ALIASES, info["start_time"]),
                           **dict.fromkeys(NAME_ALIASES, info["run_name"])},
            "datasets": {"name": tuple(i["dataset"]["name"] for i in inputs),
                         "digest": tuple(i["dataset"]["digest"] for i in inputs),
                         "context": contexts}}


@endpoint(("POST",), write=True)
def run_delete(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    ingest.set_deleted(find_run(token, body, write=True, deleted=True), True)
    return {}


@endpoint(("POST",), write=True)
def run_restore(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    ingest.set_deleted(find_run(token, body, write=True, deleted=True), False)
    return {}


@endpoint(("POST",), write=True)
def delete_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    run, key = find_run(token, body, write=True), text(body, "key")
    if not ingest.delete_tag(run, key):
        raise not_found(f"tag {key[:100]!r} of run {run.pk}")
    return {}


@endpoint(("POST",), write=True)
def log_inputs(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """The datasets a run read (``mlflow.log_input``), as the client sent them, and the models
    it evaluated (MLflow 3's ``log_metric(..., model_id=...)`` sends them: they were dropped,
    and the client, reading none back, sent them again with each of its metrics)."""
    run = find_run(token, body, write=True)
    models = [{"model_id": text(m, "model_id")}
              for m in at_most(body.get("models"), "models", MAX_INPUTS) if isinstance(m, dict)]
    if models:
        ingest.add_to_list(run, "model_inputs", models, MAX_INPUTS)
    datasets = []
    for item in at_most(body.get("datasets"), "datasets", MAX_INPUTS):
        dataset = item.get("dataset") if isinstance(item, dict) else None
        if not isinstance(dataset, dict):
            raise ApiError("INVALID_PARAMETER_VALUE", "each dataset input needs a dataset")
        # A field the client left out stays out, as MLflow's server answers: mlflow 2's
        # client reads an absent schema as None, and "" broke json.loads(dataset.schema).
        fields = {k: text(dataset, k, required=k in ("name", "digest")) for k in (
            "name", "digest", "source_type", "source", "schema", "profile")
            if k in ("name", "digest") or dataset.get(k) is not None}
        tags = pairs(item.get("tags"), "dataset tags", MAX_TAGS)
        _check_input(fields, tags)
        entry = {"dataset": fields, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if len(json.dumps(entry)) > MAX_INPUT_JSON:
            raise ApiError("INVALID_PARAMETER_VALUE", f"dataset {fields['name'][:100]!r} is "
                           f"described in more than {MAX_INPUT_JSON} characters")
        datasets.append(entry)
    ingest.add_to_list(run, "inputs", datasets, MAX_INPUTS, key=_dataset_key)
    return {}


def _dataset_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    """What makes a run's dataset input one, as MLflow's server keeps them: its name and
    digest, the first logged kept (its context and tags). Each input logged again with other
    tags or another context was added, and a script logging its data set each epoch with the
    epoch in a tag was refused past 100 epochs."""
    return entry["dataset"]["name"], entry["dataset"]["digest"]


def _check_input(fields: Mapping[str, str], tags: Mapping[str, str]) -> None:
    """A dataset input within MLflow's limits (DATASET_LIMITS, its tags'), refused in its
    words."""
    for name, limit in DATASET_LIMITS.items():
        if len(fields[name]) > limit:
            raise ApiError("INVALID_PARAMETER_VALUE", f"'{name}' exceeds the maximum length of "
                           f"{limit} characters (dataset {fields['name'][:100]!r})")
    for key, value in tags.items():
        if len(key) > MAX_INPUT_TAG_KEY or len(value) > MAX_INPUT_TAG_VALUE:
            raise ApiError("INVALID_PARAMETER_VALUE", f"a dataset input's tag {key[:100]!r}: its "
                           f"key is at most {MAX_INPUT_TAG_KEY} characters and its value "
                           f"{MAX_INPUT_TAG_VALUE}")


@endpoint(("POST",), write=True)
def log_outputs(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """The models a run wrote (MLflow 3's log_model sends them)."""
    run = find_run(token, body, write=True)
    models = [{"model_id": text(m, "model_id"), "step": integer(m.get("step"), "step")}
              for m in at_most(body.get("models"), "models", MAX_INPUTS) if isinstance(m, dict)]
    ingest.add_to_list(run, "outputs", models, MAX_INPUTS)
    return {}


@endpoint(("POST",), write=True)
def log_model(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    """A model's description added to the run's tag ``mlflow.log-model.history``, as
    MLflow's server keeps it."""
    with run_to_log(token, body) as run:
        try:
            model = json.loads(text(body, "model_json"))
            history = json.loads(run.spec.get("tags", {}).get(MODEL_HISTORY) or "[]")
        except (ValueError, RecursionError):  # a string of 5,000 "[" was a server error
            raise ApiError("INVALID_PARAMETER_VALUE", "model_json must be JSON") from None
        if nested_deeper_than(model, MAX_DEPTH):
            raise ApiError("INVALID_PARAMETER_VALUE", f"model_json nests arrays and objects "
                           f"more than {MAX_DEPTH} levels deep")
        ingest.log_to_run(run, tags={MODEL_HISTORY: json.dumps([*history, model])},
                          locked=True)
    return {}


@endpoint(("POST",), write=True)
def log_batch(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    with run_to_log(token, body) as run:
        metrics = body.get("metrics")
        ingest.log_columns(run, _columns(metrics),
                           pairs(body.get("params"), "params", MAX_PARAMS, unique=True),
                           pairs(body.get("tags"), "tags", MAX_TAGS), locked=True)
        # read once _columns checked them: a list of at most MAX_METRICS
        model_metrics.link(token, run, model_metrics.linked(metrics or []))
    return {}


@endpoint(("POST",), write=True)
def log_metric(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    with run_to_log(token, body) as run:
        if body.get("timestamp") in (None, ""):  # required, as MLflow's server has it: not 1970
            raise ApiError("INVALID_PARAMETER_VALUE", "missing value for parameter 'timestamp'")
        ingest.log_to_run(run, [_point(body)], locked=True)
        model_metrics.link(token, run, model_metrics.linked([body]))
    return {}


@endpoint(("POST",), write=True)
def log_param(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    with run_to_log(token, body) as run:
        ingest.log_to_run(run, params={text(body, "key"): text(body, "value", required=False)},
                          locked=True)
    return {}


@endpoint(("POST",), write=True)
def set_tag(request: HttpRequest, token: ApiToken, body: dict[str, Any]) -> dict[str, Any]:
    with run_to_log(token, body) as run:
        key, value = text(body, "key"), text(body, "value", required=False)
        ingest.log_to_run(run, tags={key: value}, locked=True)
        if key == RUN_NAME_TAG and value:
            Experiment.objects.filter(pk=run.pk).update(name=value[:200])
    return {}


@endpoint(("GET",))
def metric_history(request: HttpRequest, token: ApiToken, body: dict[str, Any]
                   ) -> HttpResponse | dict[str, Any]:
    """Every point of one metric, under the name the script logged it as, in the order of
    MLflow's server (by time, then step, then value); with ``max_results``, a page of that
    many and the token of the next (mlflow's client reads 25,000 a page, and a script that
    asks for one page gets one, not every point), read from the rows that hold it
    (``history``). A page token that is a number (an offset, as tokens were) reads the whole
    series."""
    run = find_run(token, body)
    name = text(body, "metric_key")
    limit = integer(body.get("max_results"), "max_results")  # 0: every point
    if limit < 0 or (limit == 0 and body.get("max_results") not in (None, "")):
        raise ApiError("INVALID_PARAMETER_VALUE", f"Invalid value {limit} for parameter "
                       "'max_results' supplied. It must be a positive integer.")
    stored = run.progress.get("keys", {}).get(name, name) if run.is_external else name
    token_text = str(body.get("page_token") or "")
    if limit and not token_text.lstrip("-").isdigit():
        after = history.Cursor.of_token(token_text) if token_text else None
        page = history.page(run.pk, stored, lambda steps: ingest.logged_steps(
            run.progress, stored, steps), after, limit)
        more = f',"next_page_token":"{page.next_token}"'.encode() if page.next_token else b""
        return HttpResponse(_history_json(name, page.steps, page.values, page.stamps, more),
                            content_type="application/json")
    offset = max(integer(body.get("page_token"), "page_token"), 0)
    series = metric_store.read(run.pk, [stored]).get(stored)
    if series is None:
        return {"metrics": []}
    steps = ingest.logged_steps(run.progress, stored, series.steps)
    stamps = history.stamps_of(series.times)
    end = min(offset + limit, len(steps)) if limit else len(steps)
    order = np.lexsort((series.values, steps, stamps))[offset:end]
    more = f',"next_page_token":"{end}"'.encode() if end < len(steps) else b""
    return HttpResponse(_history_json(name, steps[order], series.values[order], stamps[order],
                                      more), content_type="application/json")


HISTORY_PIECE = 10_000  # points written at a time: the answer's objects exist a piece at once


def _history_json(name: str, steps: np.ndarray, values: np.ndarray, stamps: np.ndarray,
                  more: bytes) -> bytes:
    """The points as mlflow's client reads them, as JSON, written a piece at a time by orjson:
    the list of an object per point that Django's encoder wrote held 830 MB at once for a
    metric of 2 million points (48 MB stored), which any member's script could ask for again
    and again."""
    pieces = [b'{"metrics":[']
    for start in range(0, len(steps), HISTORY_PIECE):
        piece = slice(start, start + HISTORY_PIECE)
        written: list[Any] = values[piece].tolist()
        if not all(map(math.isfinite, written)):
            written = [metric_value(value) for value in written]
        points = orjson.dumps([{"key": name, "value": value, "timestamp": stamp, "step": step}
                               for value, stamp, step in zip(written, stamps[piece].tolist(),
                                                             steps[piece].tolist(), strict=True)])
        pieces.append((b"," if start else b"") + points[1:-1])
    pieces.append(b"]" + more + b"}")
    return b"".join(pieces)


@endpoint(("POST", "GET", "PUT", "PATCH", "DELETE"), raw=True)
def unknown_endpoint(request: HttpRequest, token: ApiToken, body: dict[str, Any],
                     unknown: str, api: str = "2.0") -> dict[str, Any]:
    """A call of MLflow's API (``/api/<api>/``) that Fitboard does not serve: MLflow's answer,
    not a page; a call of the model registry says so and names what a script uses instead."""
    if unknown.startswith(REGISTRY_CALLS):
        raise ApiError("ENDPOINT_NOT_FOUND", f"Fitboard does not serve /api/{api}/"
                       f"{unknown[:100]}: it has no model registry (register_model, "
                       "registered models, model versions and aliases, models:/<name>/"
                       "<version> URIs). Load a model by its run's URI, runs:/<run_id>/<path>, "
                       "or as a logged model, models:/m-<id>")
    raise ApiError("ENDPOINT_NOT_FOUND", f"Fitboard does not serve /api/{api}/{unknown[:100]} "
                   "(see docs/tracking.md for the calls it does)")
