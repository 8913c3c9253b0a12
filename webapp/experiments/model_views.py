"""A finished run's model from its page: "Try it" predictions and the ONNX download. Thin
views: ownership as on the run page, the work in ``serving``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from training.checkpoints import CheckpointError
from training.export import ExportError
from webapp.experiments import serving
from webapp.experiments.views import visible_experiment


@require_POST
def try_model(request: HttpRequest, pk: int) -> JsonResponse:
    """Predict one uploaded image (``image``, ``invert``) or one typed text (``text``) with
    the run's best checkpoint; JSON ``{"predictions": [{label, probability}, ...]}`` or
    ``{"error": ...}``."""
    experiment = visible_experiment(request, pk)
    problem = serving.try_problem(experiment)
    if problem:
        return JsonResponse({"error": problem}, status=409)
    if not serving.within_rate(request.user):
        return JsonResponse({"error": f"at most {serving.TRY_PER_MINUTE} predictions a minute: "
                                      "try again shortly"}, status=429)
    upload = request.FILES.get("image")
    if upload is not None and upload.size is not None and upload.size > serving.MAX_IMAGE_BYTES:
        return JsonResponse({"error": f"the image is {upload.size:,} bytes: at most "
                                      f"{serving.MAX_IMAGE_BYTES:,}"}, status=400)
    try:
        answer = serving.predict(experiment, upload.read() if upload else None,
                                 request.POST.get("text", ""), request.POST.get("invert") == "on")
    except serving.TryError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except CheckpointError as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse(answer)


@require_GET
def checkpoint_onnx(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's best checkpoint exported to ONNX, as ``<name>-<id>-best.onnx``."""
    experiment = visible_experiment(request, pk)
    if experiment.is_external or not experiment.is_terminal:
        return HttpResponse("the run has no finished checkpoint to export", status=409,
                            content_type="text/plain; charset=utf-8")
    if not serving.within_rate(request.user):  # an export costs a model trace
        return HttpResponse(f"at most {serving.TRY_PER_MINUTE} exports and predictions a "
                            "minute: try again shortly", status=429,
                            content_type="text/plain; charset=utf-8")
    try:
        data = serving.onnx_file(experiment)
    except (serving.TryError, ExportError, CheckpointError) as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = (
        f'attachment; filename="{experiment.download_stem()}-best.onnx"')
    return response
