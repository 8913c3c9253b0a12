"""What a run page does, for scripts: its remedies (listed, applied), its tags and notes, its
checkpoints and artifacts downloaded, its repeat over seeds. Thin views over the pages' own
actions and checks (``reference_problem``, the quota, ``access``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training.spec import SpecError
from webapp.downloads import file_response
from webapp.experiments import actions, browse, diagnosis, events, files
from webapp.experiments.external import artifacts_root
from webapp.experiments.models import Experiment, derived_name
from webapp.experiments.ownership import reference_problem, remedy_problem
from webapp.projects import access
from webapp.rest import auth, errors
from webapp.rest import serializers as s
from webapp.rest.views import (
    BAD,
    QUEUES_A_JOB,
    REFUSED,
    _detail,
    _one,
)
from webapp.tracking import artifacts


class AlteredCheckpoint(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "altered"


def _trained_here(run: Experiment, what: str) -> None:
    """A 400 on ``run`` for a run with no spec here (trained elsewhere) or no model (a study)."""
    if run.is_external or run.kind not in (Experiment.Kind.TRAIN, Experiment.Kind.TRIAL):
        raise errors.invalid({"run": f"{what} needs a training run trained here"})


def _remedies(run: Experiment) -> list[dict[str, Any]]:
    """The run's current verdict's remedies with a spec patch, each with what it changes."""
    if run.is_external:  # no spec to patch: its verdicts have no remedies
        return []
    verdict = run.verdict or run.progress.get("verdict") or {}
    before = run.experiment_spec
    listed = []
    for remedy in verdict.get("remedies", []):
        if not remedy.get("patch"):
            continue
        changes = diagnosis.spec_changes(before, before.patched(remedy["patch"]))
        listed.append({"key": remedy["key"], "title": remedy["title"],
                       "why": remedy.get("why", ""), "patch": remedy["patch"],
                       "changes": [{"field": f, "before": old, "after": new}
                                   for f, old, new in changes]})
    return listed


class RunRemedies(APIView):
    @extend_schema(operation_id="runs_remedies",
                   responses={200: s.RemedySerializer(many=True), **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """The remedies of the run's verdict (live while it trains, final once it ended), each
        with the spec fields it changes, as the diagnostics page lists them."""
        return Response(_remedies(_one(auth.runs(request), pk)))


class RunRemedyApply(APIView):
    @extend_schema(operation_id="runs_remedy_apply", request=s.NameSerializer,
                   responses={201: s.RunDetailSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int, key: str) -> Response:
        """Queue a run of this run's spec with the remedy's patch, as its child (the remedy
        page's "Apply")."""
        run = _one(auth.runs(request), pk)
        remedy = None if run.is_external else diagnosis.find_remedy(run, key)
        if remedy is None:
            raise NotFound("this run has no such remedy")
        if run.remedy_refusal:
            raise errors.invalid({"run": run.remedy_refusal})
        body = s.NameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name = body.validated_data.get("name") or derived_name(run.name, f" · {remedy['title']}")
        problem = remedy_problem(request.user, run, remedy)
        if problem:
            raise errors.invalid({"run": problem})
        child = actions.apply_remedy(request.user, run, remedy, name)
        return _detail(child, status.HTTP_201_CREATED)


class RunRemedyVerify(APIView):
    @extend_schema(operation_id="runs_remedy_verify", request=s.RepeatSerializer,
                   responses={201: s.GroupSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int, key: str) -> Response:
        """Verify a remedy over ``count`` seeds: the remedy's group beside the original's over
        the same seeds (the diagnostics page's "Verify over N seeds"); the answer is the
        remedy's group, its ``baseline`` the original's."""
        run = _one(auth.runs(request), pk)
        remedy = None if run.is_external else diagnosis.find_remedy(run, key)
        if remedy is None:
            raise NotFound("this run has no such remedy")
        _trained_here(run, "verifying a remedy")
        body = s.RepeatSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        problem = remedy_problem(request.user, run, remedy)
        if problem:
            raise errors.invalid({"run": problem})
        group = actions.verify_remedy(request.user, run, remedy, body.validated_data["count"])
        return Response(s.group_json(group), status=status.HTTP_201_CREATED)


def _verdict(run: Experiment) -> dict[str, Any] | None:
    """The run's verdict as its diagnostics page shows it: the live or final one, else, for a
    run that ended before it could be diagnosed, one made now from its history."""
    verdict = events.current_verdict(run)
    if verdict is None and run.is_terminal:
        try:
            verdict = diagnosis.final_verdict(run, nonfinite_loss=False)
        except SpecError:  # its spec names a plugin no longer installed: no verdict now
            verdict = None
    return verdict


class RunDiagnostics(APIView):
    @extend_schema(operation_id="runs_diagnostics",
                   responses={200: s.DiagnosticsSerializer, **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """What the run's diagnostics page shows: its verdict, its per-epoch history, its
        generalisation gap beside its parent's (a remedy's run), and the runs and groups its
        remedies started. A study has none (404): read it at /api/v1/studies/{id}/."""
        run = _one(auth.runs(request), pk)
        if run.kind == Experiment.Kind.TUNE:
            raise NotFound("a study has no diagnostics of its own")
        parent = run.parent if run.remedy else None
        if parent is not None and not auth.runs(request).filter(pk=parent.pk).exists():
            parent = None
        return Response(events.json_safe({
            "verdict": _verdict(run),
            "history": diagnosis.history_of(run),
            "gap": diagnosis.generalisation_gap(run),
            "parent": parent.pk if parent else None,
            "parent_gap": diagnosis.generalisation_gap(parent) if parent else None,
            "remedy_runs": list(run.children.exclude(remedy={}).order_by("pk")
                                .values_list("pk", flat=True)),
            "remedy_groups": list(run.repeats.exclude(remedy={}).order_by("pk")
                                  .values_list("pk", flat=True))}))


class RunAnnotations(APIView):
    @extend_schema(operation_id="runs_annotate", request=s.AnnotationSerializer,
                   responses={200: s.RunDetailSerializer, **BAD, **REFUSED, 403: OpenApiResponse(
                       description="a read-only token, or not your run and not a maintainer")})
    def post(self, request: Request, pk: int) -> Response:
        """Replace the run's tags and notes (the run page's form): its creator, its project's
        maintainers, staff."""
        run = _one(auth.runs(request), pk)
        if not access.may_change(request.user, run):
            raise PermissionDenied("only the run's creator, its project's maintainers and "
                                   "staff can change its tags and notes")
        # Read through its serializer: a body of another JSON type than an object (a list, a
        # number) was a server error, and notes of an object were stored as its Python text.
        body = s.AnnotationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tags = body.validated_data.get("tags", "")
        if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
            tags = ", ".join(tags)
        elif not isinstance(tags, str):
            raise errors.invalid({"tags": 'a list of tags, or "a, b" comma-separated'})
        form = browse.AnnotationForm({"tags": tags,
                                      "notes": body.validated_data.get("notes", "")})
        if not form.is_valid():
            raise errors.form_invalid(form)
        actions.annotate_experiment(run, form.cleaned_data["tags"], form.cleaned_data["notes"])
        return _detail(_one(auth.runs(request).prefetch_related("tags"), pk))


class RunCheckpoint(APIView):
    @extend_schema(operation_id="runs_checkpoint", responses={
        (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, "the checkpoint's zip: "
                                                  "safetensors weights and the JSON spec"),
        **REFUSED, 409: OpenApiResponse(s.DetailSerializer, "the stored file was altered")})
    def get(self, request: Request, pk: int, tag: str) -> HttpResponse:
        """Download a checkpoint (``best``, ``last`` …; the run's ``checkpoints`` lists them),
        verified against its recorded sha256 as the run page's download is."""
        run = _one(auth.runs(request), pk)
        checkpoint = run.checkpoints.filter(tag=tag).first()
        if checkpoint is None:
            raise NotFound("no such checkpoint")
        try:
            stored = files.open_verified(checkpoint.path, checkpoint.sha256)
        except files.MissingFile:
            raise NotFound("the checkpoint's file is missing") from None
        except files.AlteredFile:
            raise AlteredCheckpoint(f"the {tag} checkpoint of run {run.pk} does not match its "
                                    "recorded sha256: it is not served") from None
        return file_response(request, stored, f"{run.download_stem()}-{tag}.zip",
                             "application/zip")


class RunArtifacts(APIView):
    @extend_schema(operation_id="runs_artifacts",
                   responses={200: s.ArtifactSerializer(many=True), **REFUSED})
    def get(self, request: Request, pk: int) -> Response:
        """Every artifact a script logged with the run (path inside the run, bytes)."""
        run = _one(auth.runs(request), pk)
        # The path quoted in the URL: a name holding "?" or "#" ("model.pt?v2") made a URL
        # that downloads another artifact of the run ("model.pt").
        return Response([{"path": path, "size": size, "url": f"/api/v1/runs/{run.pk}/"
                          f"artifacts/{quote(path)}"} for path, size in
                         files.listing(artifacts_root(run.pk))])


class RunArtifact(APIView):
    @extend_schema(operation_id="runs_artifact", responses={
        (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, "the file"),
        **REFUSED})
    def get(self, request: Request, pk: int, path: str) -> HttpResponse:
        """Download one artifact of the run."""
        response = artifacts.download(request, _one(auth.runs(request), pk), path)
        if response.status_code == status.HTTP_404_NOT_FOUND:
            raise NotFound("no such artifact")
        return response


class RunRepeat(APIView):
    @extend_schema(operation_id="runs_repeat", request=s.RepeatSerializer,
                   responses={201: s.GroupSerializer, **BAD, **REFUSED, **QUEUES_A_JOB})
    def post(self, request: Request, pk: int) -> Response:
        """Repeat the run over ``count`` seeds (its own and the next ones) as a group, which
        reuses the runs already trained with one of them (the run page's "Repeat")."""
        run = _one(auth.runs(request), pk)
        _trained_here(run, "a repeat")
        body = s.RepeatSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        count = body.validated_data["count"]
        problem = reference_problem(request.user, run.project, run.experiment_spec.data.dataset)
        if problem:
            raise errors.invalid({"run": problem})
        name = body.validated_data.get("name") or derived_name(run.name, f" ×{count}")
        group = actions.create_repeat(request.user, run.project, name, run.experiment_spec,
                                      count, source=run)
        return Response(s.group_json(group), status=status.HTTP_201_CREATED)
