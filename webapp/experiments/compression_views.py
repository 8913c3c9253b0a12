"""The Compress page of a finished run: a thin view over the form and the action."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from training.spec import SpecError
from webapp.experiments import quota
from webapp.experiments.actions import create_compression
from webapp.experiments.compression import source_problem
from webapp.experiments.compression_forms import APPLIES, CompressionForm, compression_initial
from webapp.experiments.views import visible_experiment


@require_http_methods(["GET", "POST"])
def compress_new(request: HttpRequest, pk: int) -> HttpResponse:
    source = visible_experiment(request, pk)
    if source.is_external:
        raise Http404("a run trained elsewhere has no model here to compress")
    if request.method == "POST":
        form = CompressionForm(request.POST, source=source, user=request.user)
        if form.is_valid() and form.spec is not None:
            try:
                job = create_compression(request.user, source, form.cleaned_data["name"],
                                         form.spec)
            except (SpecError, quota.OverQuota) as exc:  # SpecError: the source changed
                form.add_error(None, str(exc))
            else:
                return redirect("experiment-detail", pk=job.pk)
    else:
        form = CompressionForm(initial=compression_initial(source), source=source,
                               user=request.user)
    return render(request, "experiments/compress.html", {
        "experiment": source, "form": form, "problem": source_problem(source),
        "applies": APPLIES,
    })
