"""Thin views: check access, validate, call an action, render."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.files import File
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training.recipes import RECIPES, available_recipes
from training.spec import ExperimentSpec, SpecError, stored_dataset_info
from webapp.datasets.models import Dataset, upload_id
from webapp.downloads import file_response
from webapp.experiments import (
    actions,
    browse,
    compare,
    compression,
    deletion,
    diagnosis,
    events,
    files,
    live_urls,
    metric_store,
    queue,
    quota,
    serving,
)
from webapp.experiments import external as external_runs
from webapp.experiments.forms import (
    ExperimentForm,
    RemedyForm,
    dataset_fits,
    form_applies,
    proposed_initial,
    spec_initial,
    upload_info,
)
from webapp.experiments.models import Experiment, RunGroup, derived_name, parse_pk
from webapp.experiments.ownership import remedy_problem
from webapp.projects import access
from webapp.projects import actions as project_actions


def _dataset_initial(request: HttpRequest) -> dict[str, Any]:
    """"Train on it" from a dataset page: that dataset, its project, and what ``proposed_for``
    offers for it: a model family that fits it (a CNN on images, an LSTM on text, else an
    MLP), a regression's loss, and a table's epochs and weight decay."""
    name = request.GET.get("dataset", "")
    pk = upload_id(name)
    dataset = Dataset.objects.visible_to(request.user).filter(pk=pk).first() if pk else None
    if dataset is None:
        return {}
    # Cross-entropy, the default, would be refused for a regression; a table gets epochs for
    # its size (``proposed_for``).
    info = upload_info(dataset)
    proposed = proposed_initial(info)
    initial = {**proposed, "dataset": name, "project": dataset.project,
               "name": f"{dataset.name}-{proposed['arch']}"}
    # A set whose training split is smaller than the default batch (a 6-row table trains on
    # 4) trains in one batch of it: the default was refused at the first submit.
    default = ExperimentSpec()
    train_rows = default.train_rows(info)
    if 2 <= train_rows < default.run.batch_size:
        initial["batch_size"] = train_rows
    return initial


def visible_experiment(request: HttpRequest, pk: int) -> Experiment:
    """The experiment if the user may see it; 404 otherwise (never 403: ids are not leaked)."""
    return get_object_or_404(
        Experiment.objects.visible_to(request.user).select_related("project"), pk=pk
    )


@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    form, page = browse.run_page(request.user, request.GET)
    query = request.GET.copy()
    query.pop("page", None)
    # A project without a single run: the empty list says how to start one, not "no match".
    project = form.cleaned_data.get("project")
    empty_project = (project if project is not None and not page.object_list
                     and not project_actions.has_runs(project) else None)
    run_groups = RunGroup.objects.filter(project__in=access.projects_visible_to(request.user))
    if project is not None:  # the repeats follow the project filter, like the runs below
        run_groups = run_groups.filter(project=project)
    return render(request, "experiments/list.html", {
        "experiments": page.object_list, "page": page, "filters": form,
        "empty_project": empty_project,
        "no_project": None if page.object_list else project_actions.projectless(request.user),
        "query": query.urlencode(), "max_compare": compare.MAX_RUNS,
        # The latest repeats, each one row whose seeds expand to their runs (3 queries).
        "run_groups": run_groups.select_related("project").prefetch_related("runs")[:10],
        "live": live_urls.run_list_page(),
    })


@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ExperimentForm(request.POST, user=request.user)
        if form.is_valid() and form.spec is not None:
            try:
                return _launch(request, form)
            except quota.OverQuota as exc:  # its fields keep what was typed
                form.add_error(None, str(exc))
    else:
        spec = ExperimentSpec()
        # "New experiment" from a project's page (``?project=``) starts in that project.
        projects = access.projects_visible_to(request.user).order_by("name")
        chosen = parse_pk(request.GET.get("project", ""))
        initial = {"name": "digits-cnn",
                   "project": (chosen is not None and projects.filter(pk=chosen).first())
                   or projects.first()}
        source_id = parse_pk(request.GET.get("from", ""))
        if source_id is not None:
            source = visible_experiment(request, source_id)
            if source.is_external:
                raise Http404("a run trained elsewhere has no spec to clone")
            # A study's spec is a TuningSpec: cloning it clones its base experiment.
            try:
                spec = (ExperimentSpec.from_dict(source.spec["base"])
                        if source.kind == Experiment.Kind.TUNE else source.experiment_spec)
            except SpecError as exc:  # e.g. its model's plugin is no longer installed
                messages.error(request, f"{source.name} cannot be cloned: {exc}")
                return redirect("experiment-detail", pk=source.pk)
            initial = {"name": f"{source.name} (copy)", "project": source.project}
        start = parse_pk(request.GET.get("init_from", ""))
        if start is not None:  # "Fine-tune": the run's weights start the new one
            weights = visible_experiment(request, start)
            spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, init_from=start))
            initial = {"name": f"{weights.name} (fine-tuned)", "project": weights.project}
        recipe = RECIPES.get(request.GET.get("recipe", ""))
        if recipe is not None and recipe.available():
            spec = recipe.spec()
            initial = {**initial, "name": recipe.name}
        initial = {**initial, **spec_initial(spec), **_dataset_initial(request)}
        form = ExperimentForm(initial=initial, user=request.user)
    fits = dataset_fits(request.user)
    return render(request, "experiments/new.html", {
        "form": form, "recipes": available_recipes(), "applies": form_applies(fits),
        "fits": fits, "no_project": project_actions.projectless(request.user),
    })


def _launch(request: HttpRequest, form: ExperimentForm) -> HttpResponse:
    """Queue the valid form's run, or its repeat over seeds, and go to its page."""
    assert form.spec is not None
    if (form.cleaned_data.get("repeats") or 1) > 1:
        group = actions.create_repeat(
            request.user, form.cleaned_data["project"], form.cleaned_data["name"],
            form.spec, form.cleaned_data["repeats"])
        return redirect("group-detail", pk=group.pk)
    experiment = actions.create_experiment(
        request.user, form.cleaned_data["project"], form.cleaned_data["name"], form.spec)
    return redirect("experiment-detail", pk=experiment.pk)


@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = visible_experiment(request, pk)
    if experiment.kind == Experiment.Kind.TUNE:
        return redirect("study-detail", pk=pk)
    spec = experiment.spec
    if experiment.is_external:  # trained elsewhere: its params, tags and artifacts instead
        external = external_runs.page_context(experiment)
        task, title = external["task"], "trained elsewhere"
    else:
        external = {}
        info = stored_dataset_info(spec)
        task, title = info.task, info.title
    return render(request, "experiments/detail.html", {
        "experiment": experiment,
        "spec_json": json.dumps(spec, indent=2),
        "checkpoints": {c.tag: c for c in experiment.checkpoints.all()},
        "task": task,
        "dataset_title": title,
        "external": external,
        "test_metrics": experiment.summary.get("test_metrics") or {},
        "initial": events.status_payload(experiment),
        "may_cancel": access.may_cancel(request.user, experiment),
        "may_change": access.may_change(request.user, experiment),
        "live": {**live_urls.run_page(experiment.pk, task),
                 "external": experiment.is_external,
                 # what the page's own charts draw, and the epoch counter, which none does
                 "drawn": sorted(external_runs.DRAWN | {"epoch"}),
                 "extra": external.get("extra_keys", []),
                 "system": external.get("system_keys", []),
                 "system_other": external.get("system_other_keys", [])},
        **compression.detail_context(experiment),
        "try_it": serving.page_context(experiment),
        "groups": experiment.groups.order_by("pk"),
        "max_repeats": settings.FITBOARD_MAX_REPEATS,
        "annotation": browse.AnnotationForm(initial={
            "tags": ", ".join(t.name for t in experiment.tags.all()), "notes": experiment.notes,
        }),
    })


@require_POST
def experiment_annotate(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the tags and notes edited on the run page (its creator, its project's maintainers
    or staff: another member reads them)."""
    experiment = visible_experiment(request, pk)
    if not access.may_change(request.user, experiment):
        messages.error(request, "Only the run's creator and its project's maintainers can "
                                "change its tags and notes.")
        return redirect("experiment-detail", pk=pk)
    form = browse.AnnotationForm(request.POST)
    if form.is_valid():
        actions.annotate_experiment(experiment, form.cleaned_data["tags"],
                                    form.cleaned_data["notes"])
        messages.info(request, "Tags and notes saved.")
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
    return redirect("experiment-detail", pk=pk)


@require_GET
def experiment_diagnostics(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = visible_experiment(request, pk)
    if experiment.kind == Experiment.Kind.TUNE:  # a study has no curves of its own
        return redirect("study-detail", pk=pk)
    verdict = events.current_verdict(experiment)
    if verdict is None and experiment.is_terminal:  # ended before it could be diagnosed
        try:
            verdict = diagnosis.final_verdict(experiment, nonfinite_loss=False)
        except SpecError:  # its spec names a plugin no longer installed: no verdict now
            verdict = None
    parent = experiment.parent if experiment.remedy else None
    if parent is not None and not access.may_see_project(request.user, parent.project_id):
        parent = None
    if experiment.is_external:
        external = external_runs.page_context(experiment)
        task = external["task"]
    else:
        external, task = {}, stored_dataset_info(experiment.spec).task
    history = diagnosis.history_of(experiment)
    reason = external.get("no_verdict_reason", "")
    return render(request, "experiments/diagnostics.html", {
        "experiment": experiment,
        "verdict": events.json_safe(verdict),
        "task": task,
        "no_verdict_reason": reason,
        "verdict_notes": external.get("verdict_notes", []),
        "no_curve": diagnosis.no_curve(experiment, history, reason),
        "no_accuracy": diagnosis.no_accuracy(experiment, history),
        # JSON for the page's script: a script's run can log NaN or infinity, which the
        # browser's JSON.parse refuses (the page drew nothing).
        "history": events.json_safe(history),
        "parent": parent,
        "outcome": diagnosis.remedy_outcome(experiment, parent) if parent else None,
        "remedy_runs": experiment.children.exclude(remedy={}).order_by("pk"),
        "remedy_groups": experiment.repeats.exclude(remedy={}).order_by("pk"),
        "max_repeats": settings.FITBOARD_MAX_REPEATS,
        "labels_url": labels_page(experiment),
    })


def labels_page(experiment: Experiment) -> str:
    """Where "check the labels" leads: the suspicious-labels page of the run's uploaded data
    set ("" for a built-in set, or an external run)."""
    pk = upload_id(str((experiment.spec.get("data") or {}).get("dataset", "")))
    if experiment.is_external or pk is None:
        return ""
    if not Dataset.objects.filter(pk=pk, project=experiment.project_id).exists():
        return ""
    return reverse("dataset-labels", args=[pk])


@require_http_methods(["GET", "POST"])
def remedy_apply(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """Show what a remedy changes in the spec; on POST, queue the patched run."""
    experiment = visible_experiment(request, pk)
    remedy = diagnosis.find_remedy(experiment, key)
    if remedy is None:
        raise Http404("this run has no such remedy")
    if experiment.is_external:  # its verdicts have no remedies: there is no spec to patch
        raise Http404("this run has no such remedy")
    if experiment.remedy_refusal:
        raise Http404(experiment.remedy_refusal)
    before = experiment.experiment_spec
    changes = diagnosis.spec_changes(before, before.patched(remedy["patch"]))
    if request.method == "POST":
        form = RemedyForm(request.POST)
        # The child goes to the run's project and trains on the run's dataset.
        problem = remedy_problem(request.user, experiment, remedy)
        if problem:
            form.add_error(None, problem)
        if form.is_valid():
            try:
                child = actions.apply_remedy(request.user, experiment, remedy,
                                             form.cleaned_data["name"])
            except quota.OverQuota as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("experiment-detail", pk=child.pk)
    else:
        form = RemedyForm(initial={"name": derived_name(experiment.name, f" · {remedy['title']}")})
    return render(request, "experiments/remedy.html", {
        "experiment": experiment, "remedy": remedy, "changes": changes, "form": form,
    })


@require_GET
def queue_page(request: HttpRequest) -> HttpResponse:
    """What is queued and running on the workers, where, and for how long."""
    return render(request, "experiments/queue.html", {"rows": queue.queue_rows(request.user)})


@require_POST
def experiment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel a queued or running job: its creator, its project's maintainers, or staff (who
    may stop any job, in any project, e.g. from the queue page)."""
    experiment = get_object_or_404(access.overseen(Experiment.objects.all(), request.user), pk=pk)
    back = _back(request, experiment)
    if not access.may_cancel(request.user, experiment):
        messages.error(request, "Only the run's creator, its project's maintainers and staff "
                                "can cancel it.")
        return redirect(back)
    if actions.cancel_experiment(experiment):
        messages.info(request, "Cancellation requested.")
    else:
        messages.warning(request, "This run has already ended.")
    return redirect(back)


@require_POST
def experiment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete an ended run with its checkpoints, artifacts and parts (a study's trials, its
    compressions): its creator, its project's maintainers, or staff."""
    experiment = visible_experiment(request, pk)
    if not access.may_change(request.user, experiment):
        messages.error(request, "Only the run's creator, its project's maintainers and staff "
                                "can delete it.")
        return redirect("experiment-detail", pk=pk)
    try:
        count = deletion.delete_run(request.user, experiment)
    except (deletion.InUse, deletion.NotYours) as exc:
        messages.error(request, str(exc))
        return redirect("experiment-detail", pk=pk)
    parts = f" and {count - 1} of its jobs" if count > 1 else ""
    messages.info(request, f"Deleted run {experiment.name}{parts}.")
    return redirect("experiment-list")


@require_POST
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete an uploaded data set and its versions: its uploader, its project's maintainers,
    or staff; refused while a job trains on it. (Here, not in the datasets app: it must know
    the jobs.)"""
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)
    if not access.may_change(request.user, dataset):
        messages.error(request, "Only the data set's uploader, its project's maintainers and "
                                "staff can delete it.")
        return redirect("dataset-detail", pk=pk)
    try:
        deletion.delete_dataset(dataset)
    except deletion.InUse as exc:
        messages.error(request, f"Not deleted: {exc}.")
        return redirect("dataset-detail", pk=pk)
    messages.info(request, f"Deleted data set {dataset.name}.")
    return redirect("dataset-list")


def _back(request: HttpRequest, experiment: Experiment) -> str:
    """Where a cancel returns: the queue page when asked from there, else the run's page (a
    staff member's view of another project's run is the queue page)."""
    if request.POST.get("next") == "queue" or not access.may_see_project(
            request.user, experiment.project_id):
        return reverse("queue")
    return reverse("experiment-detail", args=[experiment.pk])


def _range_params(request: HttpRequest) -> tuple[float | None, float | None]:
    """``x0`` / ``x1`` from the query string (either may be absent); ValueError if not a number."""
    bounds: list[float | None] = []
    for name in ("x0", "x1"):
        raw = request.GET.get(name, "").strip()
        try:
            value = float(raw) if raw else None
        except ValueError:
            value = math.nan
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
        bounds.append(value)
    return bounds[0], bounds[1]


@require_GET
def experiment_metrics(request: HttpRequest, pk: int) -> JsonResponse:
    """A run's curves, at most ~2000 points per metric (min/max buckets); ``x0``/``x1`` limit
    them to a step range (a zoom), at full resolution when the range holds few enough points;
    ``keys`` (comma-separated) limits the metrics. ``live=1`` (a page that missed live
    messages, asking for the points after its last step) adds the run's status and the message
    number (``seq``) the points are current to, read before them."""
    experiment = visible_experiment(request, pk)
    try:
        x0, x1 = _range_params(request)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    keys = [k for k in request.GET.get("keys", "").split(",") if k] or None
    live = {"seq": experiment.progress.get("seq", 0), "run": events.status_payload(experiment)
            } if request.GET.get("live") else {}
    charts = metric_store.read_charts({experiment.pk: (x0, x1)}, keys)[experiment.pk]
    return JsonResponse({"metrics": {key: chart.to_json() for key, chart in charts.items()},
                         **live})


def _compared(request: HttpRequest) -> list[Experiment]:
    """The runs named by ``ids``; 404 when one is not visible, CompareError when the selection
    is bad."""
    return compare.visible_runs(request.user, compare.parse_ids(request.GET.getlist("ids")))


@require_GET
def compare_page(request: HttpRequest) -> HttpResponse:
    """2 to 20 runs side by side: overlaid curves, the spec diff and the metrics table."""
    try:
        runs = _compared(request)
    except compare.CompareError as exc:
        # The list the user lands on is where runs are picked: say how, not just what failed.
        problem = str(exc)
        messages.error(request, f"{problem[:1].upper()}{problem[1:]}: tick them in the list "
                                "below, then press Compare.")
        return redirect("experiment-list")
    keys = compare.metric_keys(runs)
    live = [{"id": run.pk, "name": run.name, "status": run.status,
             "started": run.started_at.timestamp() if run.started_at else None} for run in runs]
    groups = compare.data_groups(runs)
    return render(request, "experiments/compare.html", {
        "runs": runs, "diff": compare.config_diff(runs),
        "table": compare.metrics_table(runs, groups),
        "data_groups": [{"label": group.label, "runs": [runs[i] for i in group.columns]}
                        for group in groups] if len(groups) > 1 else [],
        "ids": ",".join(str(run.pk) for run in runs), "keys": keys,
        "config": {"runs": live, "keys": keys, "ids": [run.pk for run in runs],
                   "key": "val_loss" if "val_loss" in keys else (keys[0] if keys else "")},
    })


@require_GET
def compare_data(request: HttpRequest) -> JsonResponse:
    """One metric of every compared run, bucketed, on the chosen x axis (and range)."""
    try:
        runs = _compared(request)
        x0, x1 = _range_params(request)
        traces = compare.chart_data(runs, request.GET.get("key", "val_loss"),
                                    request.GET.get("x", "step"), x0, x1)
    except ValueError as exc:  # CompareError is one
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"runs": traces})


@require_GET
def compare_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The comparison's metrics (and specs) as CSV or JSON, one record per run."""
    if fmt not in ("csv", "json"):
        raise Http404("export as csv or json")
    try:
        runs = _compared(request)
    except compare.CompareError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    records = compare.export_rows(runs)
    if fmt == "json":
        response: HttpResponse = JsonResponse({"runs": records})
    else:
        response = HttpResponse(compare.to_csv(records), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="fitboard-compare.{fmt}"'
    return response


@require_GET
def checkpoint_download(request: HttpRequest, pk: int, tag: str) -> HttpResponse:
    experiment = visible_experiment(request, pk)
    try:
        stored = _open_checkpoint(experiment, tag)  # local disk or the S3 bucket, streamed
    except files.AlteredFile:
        return HttpResponse(
            f"the {tag} checkpoint of run {experiment.pk} does not match its recorded sha256: "
            "it was altered or corrupted in storage, and is not served",
            status=409, content_type="text/plain; charset=utf-8")
    filename = f"{experiment.download_stem()}-{tag}.zip"
    return file_response(request, stored, filename, "application/zip")


def _open_checkpoint(experiment: Experiment, tag: str) -> File:
    """The checkpoint archive, verified against its recorded sha256. The worker may replace an
    archive and its row between our two reads, so a mismatch is looked at twice before it is
    called tampering."""
    for attempt in (1, 2):
        checkpoint = experiment.checkpoints.filter(tag=tag).first()
        if checkpoint is None:
            raise Http404("no such checkpoint")
        try:
            return files.open_verified(checkpoint.path, checkpoint.sha256)
        except files.MissingFile:
            raise Http404("checkpoint file missing") from None
        except files.AlteredFile:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
