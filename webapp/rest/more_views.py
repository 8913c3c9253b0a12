"""The pages beyond one run, for scripts: run groups (repeats over seeds), a study's best trial
promoted, runs compared, and uploaded data sets listed, uploaded and read with their versions.
Thin views over the pages' own code: the same checks, the same actions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.datasets.forms import DatasetForm, with_page_defaults
from webapp.datasets.models import Dataset
from webapp.datasets.uploads import TOO_LARGE
from webapp.experiments import actions, compare, deletion, events, groups, tuning
from webapp.experiments.models import MAX_PK, Experiment, derived_name, parse_pk
from webapp.experiments.ownership import reference_problem
from webapp.projects import access
from webapp.rest import auth, errors
from webapp.rest import serializers as s
from webapp.rest.parsers import FormParser, MultiPartParser
from webapp.rest.views import (
    BAD,
    QUEUES_A_JOB,
    READ_ONLY,
    REFUSED,
    _detail,
    _one,
    launched_spec,
)

NOT_YOURS = {404: OpenApiResponse(s.DetailSerializer, "none such among those you may see")}


def _row(queryset: QuerySet[Any], pk: int, what: str) -> Any:
    row = queryset.filter(pk=pk).first() if pk <= MAX_PK else None
    if row is None:
        raise NotFound(f"no such {what}")
    return row


class GroupList(APIView):
    @extend_schema(operation_id="groups_launch", request=s.GroupLaunchSerializer,
                   responses={201: s.GroupSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request) -> Response:
        """Queue a spec over ``count`` seeds as a group (the launch form with "Repeat over
        seeds" above 1), checked as a launch is."""
        body = s.GroupLaunchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project, spec = launched_spec(request, body.validated_data)
        group = actions.create_repeat(request.user, project, body.validated_data["name"], spec,
                                      body.validated_data["count"])
        return Response(s.group_json(group), status=status.HTTP_201_CREATED)


class GroupDetail(APIView):
    @extend_schema(operation_id="groups_read", responses={200: s.GroupSerializer, **REFUSED,
                                                          **NOT_YOURS})
    def get(self, request: Request, pk: int) -> Response:
        """A run group: its seeds' runs, each final metric's mean ± std over the succeeded
        seeds, and for a verified remedy Welch's comparison with the original group."""
        group = _row(auth.groups(request).select_related("project", "baseline"), pk, "group")
        return Response(s.group_json(group))


def _study(request: Request, pk: int) -> Experiment:
    study = _one(auth.runs(request), pk)
    if study.kind != Experiment.Kind.TUNE:
        raise NotFound("no such study")
    return study


class StudyDetail(APIView):
    @extend_schema(operation_id="studies_read", responses={200: s.StudySummarySerializer,
                                                           **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """A study as its live page draws it: every trial (params, state, objective value,
        curve), the best value so far after each, and the parameters' importances."""
        return Response(events.json_safe(tuning.study_data(_study(request, pk))))


class GroupCompare(APIView):
    @extend_schema(operation_id="groups_compare", parameters=[s.GroupCompareQuerySerializer],
                   responses={200: s.GroupComparisonSerializer, **BAD, **REFUSED, **NOT_YOURS})
    def get(self, request: Request) -> Response:
        """Two groups' final values of one metric compared with Welch's t (the group compare
        page's export): null while either side has fewer than 2 succeeded seeds, or with
        ``problem`` saying why for groups on different data sets."""
        query = s.GroupCompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        visible = auth.groups(request)
        a = _row(visible, query.validated_data["a"], "group")
        b = _row(visible, query.validated_data["b"], "group")
        metric = query.validated_data["metric"]
        runs_a, runs_b = groups.ordered_runs(a), groups.ordered_runs(b)
        problem = groups.incomparable(a, b)
        result = None if problem else groups.compare_sides(runs_a, runs_b, metric,
                                                           (a.name, b.name))
        return Response({"metric": metric, "a": s.group_json(a), "b": s.group_json(b),
                         "problem": problem,
                         "comparison": None if result is None
                         else events.json_safe(result.to_dict())})


def _study_job(request: Request, pk: int, serializer: type[serializers.Serializer[Any]]
               ) -> tuple[Experiment, dict[str, Any]]:
    """The study ``pk`` and the validated body of a request that queues jobs from it: 400 on
    ``study`` when its data set is no longer the user's to train on, 429 past the job quota."""
    study = _study(request, pk)
    body = serializer(data=request.data)
    body.is_valid(raise_exception=True)
    problem = reference_problem(request.user, study.project,
                                study.spec["base"]["data"]["dataset"])
    if problem:
        raise errors.invalid({"study": problem})
    return study, body.validated_data


class StudyPromote(APIView):
    @extend_schema(operation_id="studies_promote", request=s.NameSerializer,
                   responses={201: s.RunDetailSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int) -> Response:
        """Queue a training run with the study's best trial's spec (the study page's
        "Promote")."""
        study, body = _study_job(request, pk, s.NameSerializer)
        try:
            name = body.get("name") or derived_name(study.name, " · best trial")
            run = actions.promote_best(request.user, study, name)
        except ValueError as exc:  # no trial has completed yet
            raise errors.invalid({"study": str(exc)}) from None
        return _detail(run, status.HTTP_201_CREATED)


def _ranking(study: Experiment) -> dict[str, Any] | None:
    objective = study.spec.get("objective", "val_acc")
    ranking = groups.ranking_check(study, objective, study.spec.get("direction") == "maximize")
    if ranking is None:
        return None
    comparison = ranking["comparison"]
    return {**ranking, "comparison": None if comparison is None
            else events.json_safe(comparison.to_dict()),
            "rows": [{"group": row["group"].pk, "trial": row["trial"].pk,
                      **{key: row[key] for key in ("trial_value", "values", "mean", "std")}}
                     for row in ranking["rows"]]}


class StudyChecks(APIView):
    @extend_schema(operation_id="studies_ranking",
                   responses={200: s.RankingAnswerSerializer, **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """Whether the study's best trials keep their order when repeated over seeds (the
        study page's ranking check): each checked trial's value and its seeds' mean ± std,
        and the first two compared by Welch's t; ``ranking`` is null before a check."""
        return Response({"ranking": _ranking(_study(request, pk))})

    @extend_schema(operation_id="studies_check", request=s.StudyCheckSerializer,
                   responses={201: s.GroupSerializer(many=True), **BAD, **REFUSED,
                              **QUEUES_A_JOB})
    def post(self, request: Request, pk: int) -> Response:
        """Repeat the study's ``top`` best trials over ``count`` seeds each, the trial itself
        the first (the study page's "Check the best trials"); 201 with the groups, 400 on
        ``study`` while no trial has completed. Read the ranking with GET."""
        study, body = _study_job(request, pk, s.StudyCheckSerializer)
        try:
            checks = actions.check_best_trials(request.user, study, body["top"], body["count"])
        except ValueError as exc:  # no trial has completed yet
            raise errors.invalid({"study": str(exc)}) from None
        return Response([s.group_json(group) for group in checks],
                        status=status.HTTP_201_CREATED)


class Compare(APIView):
    @extend_schema(operation_id="runs_compare", parameters=[s.CompareQuerySerializer],
                   responses={200: s.CompareSerializer, **BAD, **REFUSED, **NOT_YOURS})
    def get(self, request: Request) -> Response:
        """2 to 20 runs side by side, as on the compare page (and its export)."""
        query = s.CompareQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            ids = compare.parse_ids([query.validated_data["ids"]])
        except compare.CompareError as exc:
            raise errors.invalid({"ids": str(exc)}) from None
        rows = auth.runs(request).select_related("project").in_bulk(ids)
        if len(rows) != len(ids):
            raise NotFound("no such run")
        runs = [rows[pk] for pk in ids]
        answer: dict[str, Any] = {
            "runs": compare.export_rows(runs),
            "differences": [{"field": row.field, "values": list(row.cells)}
                            for row in compare.config_diff(runs) if row.differs]}
        key = query.validated_data.get("key")
        if key:
            try:
                answer["curves"] = compare.chart_data(runs, key, query.validated_data["x"])
            except ValueError as exc:
                raise errors.invalid({"key": str(exc)}) from None
        return Response(answer)


class DatasetList(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(operation_id="datasets_list",
                   responses={200: s.DatasetSerializer(many=True), 401: REFUSED[401]})
    def get(self, request: Request) -> Response:
        """The uploaded data sets of your projects, newest first."""
        datasets = auth.datasets(request).prefetch_related("versions").order_by("-pk")[:500]
        return Response(s.DatasetSerializer(datasets, many=True).data)

    @extend_schema(operation_id="datasets_upload",
                   request={"multipart/form-data": s.DatasetUploadSerializer},
                   responses={201: s.DatasetDetailSerializer, **BAD, **REFUSED, **READ_ONLY})
    def post(self, request: Request) -> Response:
        """Upload a data set (CSV, ZIP of images or Hugging Face), checked and cleaned as the
        upload page does: one error per field."""
        asked = parse_pk(str(request.data.get("project", "")))
        if asked is not None and not auth.projects(request).filter(pk=asked).exists():
            raise NotFound("no such project among yours")  # as the launch of a run
        form = DatasetForm(with_page_defaults(request.data), request.FILES, user=request.user,
                           too_large=getattr(request._request, TOO_LARGE, None))
        form.fields["project"].queryset = auth.projects(request).order_by("name")  # type: ignore[attr-defined]
        if not form.is_valid() or form.prepared is None:
            raise errors.form_invalid(form)
        dataset = form.create(request.user)
        if dataset is None:
            raise errors.form_invalid(form)
        return Response(s.DatasetDetailSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    @extend_schema(operation_id="datasets_read",
                   responses={200: s.DatasetDetailSerializer, **REFUSED, **NOT_YOURS})
    def get(self, request: Request, pk: int) -> Response:
        """A data set: its facts, the cleaning report and its versions (relabelled or
        excluded rows make a new one)."""
        dataset: Dataset = _row(auth.datasets(request).prefetch_related("versions"), pk,
                                "data set")
        return Response(s.DatasetDetailSerializer(dataset).data)

    @extend_schema(operation_id="datasets_delete", responses={
        204: None, **REFUSED, **NOT_YOURS,
        403: OpenApiResponse(description="a read-only token, or not your data set and not a "
                                         "maintainer"),
        409: OpenApiResponse(s.DetailSerializer, "a queued or running job uses it")})
    def delete(self, request: Request, pk: int) -> Response:
        """Delete an uploaded data set, its versions and their files (its uploader, its
        project's maintainers, staff); refused while a queued or running job trains on it.
        Ended runs that trained on it keep their pages."""
        dataset: Dataset = _row(auth.datasets(request), pk, "data set")
        if not access.may_change(request.user, dataset):
            raise PermissionDenied("only the data set's uploader, its project's maintainers "
                                   "and staff can delete it")
        deletion.delete_dataset(dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)
