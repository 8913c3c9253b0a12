"""Thin views: authenticate (``auth``), validate with the specs, call ``experiments.actions``
(the pages' code path: the same checks of project, dataset, quota and memory budget), answer
JSON. Another project's run is 404, as on the pages: ids are not leaked."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training.compression.spec import CompressionSpec
from training.spec import ExperimentSpec, SpecError
from training.tuning import OBJECTIVES, TuningSpec, new_study_spec
from webapp.experiments import actions, browse, deletion, metric_store, warmstart
from webapp.experiments.models import MAX_PK, Experiment
from webapp.experiments.ownership import reference_problem
from webapp.projects import access
from webapp.projects.models import Project
from webapp.rest import auth, errors
from webapp.rest import serializers as s

S = TypeVar("S")
REFUSED = {401: OpenApiResponse(s.DetailSerializer, "no valid token or session"),
           404: OpenApiResponse(s.DetailSerializer, "no such run among those you may see")}
BAD = {400: OpenApiResponse(s.ErrorsSerializer, "one message per field path")}
READ_ONLY = {403: OpenApiResponse(description="a read-only token")}
# What a request that queues a job may also answer.
QUEUES_A_JOB = {**READ_ONLY, 409: OpenApiResponse(description="over your quota of jobs")}


def _parse(build: Callable[[Any], S], data: Any, prefix: str) -> S:
    """``build(data)`` (a spec's ``from_dict``), its SpecError as a 400 with one message per
    field path."""
    try:
        return build(data)
    except SpecError as exc:
        raise errors.invalid(exc.errors, prefix) from None


def _one(queryset: QuerySet[Experiment], pk: int) -> Experiment:
    run = queryset.select_related("project").filter(pk=pk).first() if pk <= MAX_PK else None
    if run is None:
        raise NotFound("no such run")
    return run


def _project(request: Request, pk: int | None) -> Project:
    project = auth.projects(request).filter(pk=pk).first() if pk and pk <= MAX_PK else None
    if project is None:
        raise NotFound("no such project among yours")
    return project


def _object(spec: Any) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise errors.invalid({"spec": "must be a JSON object"})
    return spec


def _dataset_named(spec: Mapping[str, Any]) -> str:
    """The dataset a spec JSON names ("" when it names none or is malformed: the spec's own
    validation then says so on the field)."""
    data = spec.get("data")
    name = data.get("dataset") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) else ""


def launched_spec(request: Request, body: Mapping[str, Any]) -> tuple[Project, ExperimentSpec]:
    """The project and spec of a launch (``project`` and ``spec`` of a validated body),
    checked as the launch form checks them."""
    project = _project(request, body["project"])
    raw = _object(body["spec"])
    # Before the spec is built: building it reads the dataset's facts (its rows, its
    # classes), which must not answer for another project's upload.
    problem = reference_problem(request.user, project, _dataset_named(raw))
    if problem:
        raise errors.invalid({"spec.data.dataset": problem})
    spec = _parse(ExperimentSpec.from_dict, raw, "spec.")
    if problem := warmstart.source_problem(request.user, project, spec):
        raise errors.invalid({f"spec.{warmstart.FIELD}": problem})
    return project, spec


def _detail(run: Experiment, code: int = status.HTTP_200_OK) -> Response:
    return Response(s.RunDetailSerializer(run).data, status=code)


class RunPages(PageNumberPagination):
    page_size = browse.PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = 500


class RunList(GenericAPIView[Experiment]):
    serializer_class = s.RunSerializer
    pagination_class = RunPages

    @extend_schema(operation_id="runs_list", parameters=[s.RunFilterSerializer],
                   responses={200: s.RunSerializer(many=True), **BAD, **REFUSED})
    def get(self, request: Request) -> Response:
        """The runs you may see, filtered and sorted as on the run list page."""
        form = browse.RunFilterForm(request.query_params, request.user)
        if not form.is_valid():
            raise errors.form_invalid(form)
        runs = form.filter(auth.runs(request).select_related("project")
                           .prefetch_related("tags").defer(*browse.LISTED_WITHOUT))
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(s.RunSerializer(page, many=True).data)

    @extend_schema(operation_id="runs_launch", request=s.LaunchSerializer,
                   responses={201: s.RunDetailSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request) -> Response:
        """Queue a training run of an ExperimentSpec (validated field by field)."""
        body = s.LaunchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project, spec = launched_spec(request, body.validated_data)
        run = actions.create_experiment(request.user, project, body.validated_data["name"],
                                        spec)
        return _detail(run, status.HTTP_201_CREATED)


class RunDetail(APIView):
    @extend_schema(operation_id="runs_read", responses={200: s.RunDetailSerializer, **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """A run: spec, status, verdict (live while it trains, final once it ended), summary."""
        return _detail(_one(auth.runs(request).prefetch_related("tags"), pk))

    @extend_schema(operation_id="runs_delete", responses={
        204: None, **REFUSED,
        403: OpenApiResponse(description="a read-only token, or not your run (nor a part of "
                                         "it, nor a model logged from it) and not a "
                                         "maintainer"),
        409: OpenApiResponse(s.DetailSerializer, "it (or a part of it, or the study it is a "
                                                 "trial of) is queued or running")})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete an ended run for good, with its checkpoints, artifacts and parts (a study's
        trials, the run's compressions), freeing their room in the storage quota (its
        creator, its project's maintainers, staff)."""
        run = _one(auth.runs(request), pk)
        if not access.may_change(request.user, run):
            raise PermissionDenied("only the run's creator, its project's maintainers and "
                                   "staff can delete it")
        deletion.delete_run(request.user, run)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunMetrics(APIView):
    @extend_schema(operation_id="runs_metrics", parameters=[s.MetricsQuerySerializer],
                   responses={200: s.MetricsSerializer, **BAD, **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """The run's curves, downsampled as the run page draws them: at most ~2000 points per
        metric (each bucket's minimum and maximum, so spikes stay); ``x0``/``x1`` zoom into a
        step range, at full resolution when it holds few enough points."""
        run = _one(auth.runs(request), pk)
        query = s.MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        bounds = (query.validated_data.get("x0"), query.validated_data.get("x1"))
        bad = {name: "must be a finite number" for name, value in zip(("x0", "x1"), bounds,
                                                                        strict=True)
               if value is not None and not math.isfinite(value)}
        if bad:
            raise errors.invalid(bad)
        keys = [k for k in query.validated_data.get("keys", "").split(",") if k] or None
        charts = metric_store.read_charts({run.pk: bounds}, keys)[run.pk]
        return Response({"metrics": {key: chart.to_json() for key, chart in charts.items()}})


class RunCancel(APIView):
    @extend_schema(operation_id="runs_cancel", request=None,
                   responses={200: s.CancelSerializer, **REFUSED, 403: OpenApiResponse(
                       description="a read-only token, or not your run and not a maintainer")})
    def post(self, request: Request, pk: int) -> Response:
        """Cancel a queued or running job (its creator, its project's maintainers, staff)."""
        run = _one(auth.cancellable(request), pk)
        if not access.may_cancel(request.user, run):
            raise PermissionDenied("only the run's creator, its project's maintainers and "
                                   "staff can cancel it")
        cancelled = actions.cancel_experiment(run)
        run.refresh_from_db(fields=["status"])
        return Response({"cancelled": cancelled, "status": run.status})


def _source(request: Request, pk: int, what: str) -> Experiment:
    """A visible run that has a spec to start from: not a study, not trained elsewhere."""
    run = _one(auth.runs(request), pk)
    if run.kind == Experiment.Kind.TUNE:
        raise errors.invalid({"run": f"{what} starts from a run, not from a study"})
    if run.is_external:
        raise errors.invalid({"run": f"{what} needs a run trained here: a run trained "
                                     "elsewhere has no spec or model here"})
    return run


class RunStudy(APIView):
    @extend_schema(operation_id="runs_tune", request=s.StudySerializer,
                   responses={201: s.RunDetailSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int) -> Response:
        """Start a tuning study whose base is this run's spec (the Tune page)."""
        source = _source(request, pk, "a study")
        if source.study_problem:
            raise errors.invalid({"run": source.study_problem})
        body = s.StudySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = _project(request, body.validated_data.get("project", source.project_id))
        problem = reference_problem(request.user, project, source.experiment_spec.data.dataset,
                                    source)
        if problem:
            raise errors.invalid({"project": problem})
        spec = _study_spec(source, body.validated_data["spec"])
        if unfit := warmstart.study_problems(request.user, project, spec):
            raise errors.invalid({f"spec.{path}": message for path, message in unfit.items()})
        study = actions.create_study(request.user, project, body.validated_data["name"], spec,
                                     source)
        return _detail(study, status.HTTP_201_CREATED)


def _study_spec(source: Experiment, raw: Any) -> TuningSpec:
    raw = _object(raw)
    if "base" in raw:
        raise errors.invalid({"spec.base": "the base is the run's own spec: launch a run with "
                                           "another spec and tune that one"})
    data = {**raw, "base": source.experiment_spec.to_dict()}
    objective = data.get("objective", "val_acc")
    if "direction" not in data and isinstance(objective, str) and objective in OBJECTIVES:
        data["direction"] = OBJECTIVES[objective][0]  # as the form: it follows the metric
    return _parse(new_study_spec, data, "spec.")


class RunCompression(APIView):
    @extend_schema(operation_id="runs_compress", request=s.CompressionSerializer,
                   responses={201: s.RunDetailSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int) -> Response:
        """Start a compression job of this finished run (the Compress page)."""
        source = _source(request, pk, "compression")
        body = s.CompressionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        raw = _object(body.validated_data["spec"])
        if "source" in raw:
            raise errors.invalid({"spec.source": "the source is the run in the URL"})
        problem = reference_problem(request.user, source.project,
                                    source.experiment_spec.data.dataset, source)
        if problem:
            raise errors.invalid({"run": problem})
        spec = _parse(CompressionSpec.from_dict, {**raw, "source": source.pk}, "spec.")
        job = _parse(lambda checked: actions.create_compression(
            request.user, source, body.validated_data["name"], checked), spec, "spec.")
        return _detail(job, status.HTTP_201_CREATED)

