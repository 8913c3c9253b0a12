"""Thin views: list, upload and show datasets of the user's projects."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from webapp.datasets import services
from webapp.datasets.forms import DatasetForm
from webapp.datasets.models import Dataset
from webapp.datasets.uploads import TOO_LARGE
from webapp.projects import access


@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = Dataset.objects.visible_to(request.user).select_related("project")[:500]
    return render(request, "datasets/list.html", {"datasets": datasets})


@require_http_methods(["GET", "POST"])
def dataset_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = DatasetForm(request.POST, request.FILES, user=request.user,
                           too_large=getattr(request, TOO_LARGE, None))
        if form.is_valid() and form.prepared is not None:
            dataset = services.create_dataset(
                request.user, form.cleaned_data["project"], form.cleaned_data["name"],
                form.cleaned_data["kind"], form.options(), form.prepared,
                form.cleaned_data.get("file"))
            return redirect("dataset-detail", pk=dataset.pk)
    else:
        project = access.projects_visible_to(request.user).order_by("name").first()
        form = DatasetForm(initial={"project": project}, user=request.user)
    return render(request, "datasets/new.html", {"form": form})


@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.visible_to(request.user).select_related("project"), pk=pk)
    report = dataset.report
    counts = report.get("class_counts") or {}
    return render(request, "datasets/detail.html", {
        "dataset": dataset,
        "info": dataset.dataset_info,
        "report": report,
        "chart": {"labels": list(counts), "counts": list(counts.values())},
    })
