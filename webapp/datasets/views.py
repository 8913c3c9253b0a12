"""Thin views: list, upload and show datasets of the user's projects."""

from __future__ import annotations

import re
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training.data.uploads import counted
from training.data.versions import VersionError, diff, parse_changes
from webapp.datasets import labels, services
from webapp.datasets.forms import KIND_APPLIES, DatasetForm
from webapp.datasets.models import Dataset, LabelScan
from webapp.datasets.uploads import TOO_LARGE
from webapp.projects import access, storage
from webapp.projects import actions as project_actions


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
            dataset = form.create(request.user)
            if dataset is not None:
                return redirect("dataset-detail", pk=dataset.pk)
    else:
        project = access.projects_visible_to(request.user).order_by("name").first()
        form = DatasetForm(initial={"project": project}, user=request.user)
    return render(request, "datasets/new.html", {
        "form": form, "applies": KIND_APPLIES,
        "no_project": project_actions.projectless(request.user)})


@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.visible_to(request.user).select_related("project"), pk=pk)
    report = dataset.report
    counts = report.get("class_counts") or {}
    names = class_names(report)
    return render(request, "datasets/detail.html", {
        "dataset": dataset,
        "info": dataset.dataset_info,
        "report": report,
        "cleaning_steps": cleaning_steps(report),
        "chart": {"labels": names, "counts": [counts.get(name, 0) for name in names]},
        "may_delete": access.may_change(request.user, dataset),
    })


# A step's detail is stored as text, and reports written before it counted one as one say
# "in 1 rows" or "1 columns, 0 rows": a detail of that shape is said again from its numbers.
_COUNTS_DETAIL = re.compile(r"(in )?\d+ (rows?|columns?)(, \d+ (rows?|columns?))?")
_COUNT = re.compile(r"(\d+) (row|column)s?")


def cleaning_steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's cleaning steps as the page shows them, each count's noun in the number
    its count takes (whatever version of the upload code wrote the report)."""
    steps = []
    for step in report.get("steps") or []:
        detail = str(step.get("detail") or "")
        if _COUNTS_DETAIL.fullmatch(detail):
            detail = _COUNT.sub(lambda m: counted(int(m[1]), m[2]), detail)
        steps.append({**step, "detail": detail})
    return steps


def class_names(report: dict[str, Any]) -> list[str]:
    """A data set's class names in class-index order (the counts' keys for a data set stored
    before the report kept them: the order they were written in, which SQLite keeps)."""
    return list(report.get("labels") or report.get("class_counts") or {})


PAGE_ROWS = 25  # suspicious rows per page


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    # isascii too: "²" is a digit to isdigit that int refuses; and int refuses more than
    # 4,300 digits, where no row, label, version or scan is.
    digits = value.strip().removeprefix("-")
    return int(value) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else None


@require_GET
def dataset_labels(request: HttpRequest, pk: int) -> HttpResponse:
    """The suspicious labels of the latest (or a chosen) scan, paged and filtered by class pair,
    with the confusion matrix and the data set's versions."""
    dataset = get_object_or_404(
        Dataset.objects.visible_to(request.user).select_related("project")
        .prefetch_related("versions"), pk=pk)
    scans = dataset.label_scans.all()
    scan_id = _int_or_none(request.GET.get("scan"))
    scan = (scans.filter(pk=scan_id).first() if scan_id is not None
            else scans.filter(status=LabelScan.Status.DONE).first() or scans.first())
    chosen = labels.Filter(_int_or_none(request.GET.get("given")),
                           _int_or_none(request.GET.get("suggested")))
    label_names = (class_names(dataset.report)
                   or [str(i) for i in range(dataset.info.get("num_classes", 0))])
    context: dict[str, Any] = {
        "dataset": dataset, "scan": scan, "chosen": chosen, "label_names": label_names,
        "classes": list(enumerate(label_names)), "latest": dataset.latest_version,
        "versions": list(dataset.versions.all()), "running": False,
        "may_relabel": access.may_change(request.user, dataset),
        "not_yours": labels.RELABEL_REFUSED,
    }
    if scan is not None and scan.status == LabelScan.Status.DONE:
        listed = labels.listed_rows(scan, chosen, labels.changed_since(dataset, scan.version))
        page = Paginator(listed, PAGE_ROWS).get_page(request.GET.get("page"))
        shown = labels.previews(dataset, scan.version, [r["position"] for r in page])
        context.update(page=page, rows=[{**r, **shown[r["position"]],
                                         "given_name": label_names[r["given"]],
                                         "suggested_name": label_names[r["suggested"]]}
                                        for r in page],
                       **_confusion(scan.result["confusion"], label_names))
    elif scan is not None:
        context["running"] = scan.status in (LabelScan.Status.QUEUED, LabelScan.Status.RUNNING)
    return render(request, "datasets/labels.html", context)


# Classes the confusion matrix shows: past it, those the model confuses most. 300 classes drew
# 90,000 cells (2 MB of HTML) that the browser took over 30 s to lay out.
MATRIX_CLASSES = 20


def _confusion(matrix: list[list[int]], names: list[str]) -> dict[str, Any]:
    """The confusion matrix for the template, over the classes it shows (``matrix_classes``,
    all up to MATRIX_CLASSES): given class, then a cell per predicted class, off-diagonal
    cells marked (they link to that class pair)."""
    shown = _matrix_classes(matrix)
    return {
        "matrix_classes": [(j, names[j]) for j in shown],
        "confusion": [{"given": i, "name": names[i],
                       "cells": [{"predicted": j, "count": matrix[i][j],
                                  "off": i != j and matrix[i][j] > 0} for j in shown]}
                      for i in shown],
    }


def _matrix_classes(matrix: list[list[int]]) -> list[int]:
    """Every class, or past MATRIX_CLASSES those with the most rows given as or predicted as
    another class, in class order."""
    if len(matrix) <= MATRIX_CLASSES:
        return list(range(len(matrix)))
    confused = [sum(matrix[i]) + sum(row[i] for row in matrix) - 2 * matrix[i][i]
                for i in range(len(matrix))]
    ranked = sorted(range(len(matrix)), key=lambda i: (-confused[i], i))
    return sorted(ranked[:MATRIX_CLASSES])


@require_POST
def dataset_labels_scan(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a scan of the latest version."""
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)
    folds = _int_or_none(request.POST.get("folds")) or 5
    try:
        scan = labels.start_scan(request.user, dataset, dataset.latest_version,
                                 max(2, min(folds, 10)))
    except labels.ScanRefused as exc:
        return HttpResponseBadRequest(str(exc))
    return redirect(f"{reverse('dataset-labels', args=[dataset.pk])}?scan={scan.pk}")


@require_POST
def dataset_labels_apply(request: HttpRequest, pk: int) -> HttpResponse:
    """Relabel or exclude the ticked rows: a new version from the latest one (its uploader, its
    project's maintainers, staff: runs on the data set train on its latest version, so a
    version is a change to it, as a run's notes are to the run)."""
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)
    if not access.may_change(request.user, dataset):
        return HttpResponse(labels.RELABEL_REFUSED, status=403,
                            content_type="text/plain; charset=utf-8")
    rows = [r for r in map(_int_or_none, request.POST.getlist("rows")) if r is not None]
    if not rows:
        return HttpResponseBadRequest("tick at least one row")
    if request.POST.get("action") == "exclude":
        changes = parse_changes([], rows)
    else:
        pairs = [(r, _int_or_none(request.POST.get(f"label_{r}"))) for r in rows]
        if any(label is None for _, label in pairs):
            return HttpResponseBadRequest("every ticked row needs a new label")
        changes = parse_changes([(r, label) for r, label in pairs if label is not None], [])
    try:
        services.create_version(request.user, dataset, dataset.latest_version, changes,
                                note=request.POST.get("note", ""))
    except (VersionError, services.DatasetUnavailable, storage.OverStorageQuota) as exc:
        return HttpResponseBadRequest(str(exc))
    back = request.POST.get("next", "")
    return redirect(back if back.startswith(f"/datasets/{dataset.pk}/labels/")
                    else reverse("dataset-labels", args=[dataset.pk]))


@require_GET
def dataset_diff(request: HttpRequest, pk: int) -> JsonResponse:
    """Rows relabelled, removed and added between two versions (``?from=1&to=2``)."""
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)
    older = _int_or_none(request.GET.get("from")) or 1
    newer = _int_or_none(request.GET.get("to")) or dataset.latest_version
    try:
        found = diff(services.version_file(dataset, older), services.version_file(dataset, newer))
    except services.DatasetUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    return JsonResponse({"from": older, "to": newer, **found})
