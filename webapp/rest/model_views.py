"""A finished run's model, for scripts: the run page's "Try it" (one prediction with its best
checkpoint) and its ONNX download. Thin views over ``experiments.serving``, the pages' own
code: the same input limits, the same per-user allowance, the same refusals."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, Throttled
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from training.checkpoints import CheckpointError
from training.export import ExportError
from training.spec import stored_dataset_info
from webapp.experiments import serving
from webapp.rest import auth, errors
from webapp.rest import serializers as s
from webapp.rest.parsers import FormParser, JSONParser, MultiPartParser
from webapp.rest.views import BAD, REFUSED, _one

NO_MODEL = {409: OpenApiResponse(s.DetailSerializer, "the run has no finished model to serve "
                                 "(or its checkpoint cannot be read)")}
OVER_RATE = {429: OpenApiResponse(s.DetailSerializer, "past the predictions and exports a user "
                                  "may ask for each minute")}


class NoModel(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_model"


class AnyScope(BasePermission):
    """A logged-in user or a token of either scope: a prediction reads the model and changes
    nothing, so a read-only token may ask for one though it is sent as a POST."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


def _within_rate(request: Request, what: str) -> None:
    if not serving.within_rate(request.user):
        raise Throttled(detail=f"at most {serving.TRY_PER_MINUTE} {what} a minute: try again "
                               "shortly")


class RunPredictions(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    permission_classes = [AnyScope]

    @extend_schema(operation_id="runs_predict",
                   request={"application/json": s.PredictionSerializer,
                            "multipart/form-data": s.PredictionSerializer},
                   responses={200: s.PredictionsSerializer, **BAD, **REFUSED, **NO_MODEL,
                              **OVER_RATE})
    def post(self, request: Request, pk: int) -> Response:
        """Predict one input with the run's best checkpoint (the run page's "Try it"): a
        ``text`` for a text model (JSON or a form), an ``image`` upload for an image model
        (multipart/form-data, ``invert`` for dark ink on white paper). The most probable
        classes with their probabilities, or a regression's value. A model of table rows is
        not served, as on the page."""
        run = _one(auth.runs(request), pk)
        problem = serving.try_problem(run)
        if problem:
            raise NoModel(problem)
        _within_rate(request, "predictions")
        body = s.PredictionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        field = "text" if stored_dataset_info(run.spec).modality == "text" else "image"
        upload = body.validated_data.get("image")
        if upload is not None and (upload.size or 0) > serving.MAX_IMAGE_BYTES:
            raise errors.invalid({"image": f"the image is {upload.size:,} bytes: at most "
                                           f"{serving.MAX_IMAGE_BYTES:,}"})
        try:
            answer = serving.predict(run, upload.read() if upload else None,
                                     body.validated_data.get("text", ""),
                                     body.validated_data["invert"])
        except serving.TryError as exc:
            raise errors.invalid({field: str(exc)}) from None
        except CheckpointError as exc:
            raise NoModel(str(exc)) from None
        return Response(answer)


class RunOnnx(APIView):
    @extend_schema(operation_id="runs_onnx", responses={
        (200, "application/octet-stream"): OpenApiResponse(
            OpenApiTypes.BINARY, "the best checkpoint as an ONNX model"),
        **REFUSED, **NO_MODEL, **OVER_RATE})
    def get(self, request: Request, pk: int) -> HttpResponse:
        """Download the run's best checkpoint exported to ONNX (the run page's download), as
        ``<name>-<id>-best.onnx``; 409 for a model the exporter does not take."""
        run = _one(auth.runs(request), pk)
        if run.is_external or not run.is_terminal:
            raise NoModel("the run has no finished checkpoint to export")
        _within_rate(request, "exports and predictions")  # an export costs a model trace
        try:
            data = serving.onnx_file(run)
        except (serving.TryError, ExportError, CheckpointError) as exc:
            raise NoModel(str(exc)) from None
        response = HttpResponse(data, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{run.download_stem()}-best.onnx"'
        return response

