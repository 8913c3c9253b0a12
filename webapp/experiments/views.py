"""Thin views: check access, validate, call an action, render."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from training.data.catalog import dataset_info
from training.recipes import RECIPES, available_recipes
from training.spec import ExperimentSpec
from webapp.experiments import actions, compression, diagnosis, events, metric_store
from webapp.experiments.forms import ARCH_FIELDS, ExperimentForm, RemedyForm, spec_initial
from webapp.experiments.models import Experiment, Project


def _dataset_initial(request: HttpRequest) -> dict[str, Any]:
    """"Train on it" from a dataset page: that dataset, its project, and a model family that
    fits it (a CNN on images, an LSTM on text, else an MLP)."""
    from webapp.datasets.models import Dataset, upload_id

    name = request.GET.get("dataset", "")
    pk = upload_id(name)
    dataset = Dataset.objects.visible_to(request.user).filter(pk=pk).first() if pk else None
    if dataset is None:
        return {}
    arch = {"image": "cnn", "text": "lstm"}.get(dataset.info.get("modality", ""), "mlp")
    return {"dataset": name, "arch": arch, "project": dataset.project,
            "name": f"{dataset.name}-{arch}"}


def _visible(request: HttpRequest, pk: int) -> Experiment:
    """The experiment if the user may see it; 404 otherwise (never 403: ids are not leaked)."""
    return get_object_or_404(
        Experiment.objects.visible_to(request.user).select_related("project"), pk=pk
    )


@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    experiments = Experiment.objects.visible_to(request.user).select_related("project")[:500]
    return render(request, "experiments/list.html", {"experiments": experiments})


@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ExperimentForm(request.POST, user=request.user)
        if form.is_valid() and form.spec is not None:
            experiment = actions.create_experiment(
                request.user, form.cleaned_data["project"], form.cleaned_data["name"], form.spec
            )
            return redirect("experiment-detail", pk=experiment.pk)
    else:
        spec = ExperimentSpec()
        initial = {"name": "digits-cnn",
                   "project": Project.objects.filter(members=request.user).order_by("name").first()}
        source_id = request.GET.get("from", "")
        if source_id.isdigit():
            source = _visible(request, int(source_id))
            # A study's spec is a TuningSpec: cloning it clones its base experiment.
            spec = (ExperimentSpec.from_dict(source.spec["base"])
                    if source.kind == Experiment.Kind.TUNE else source.experiment_spec)
            initial = {"name": f"{source.name} (copy)", "project": source.project}
        recipe = RECIPES.get(request.GET.get("recipe", ""))
        if recipe is not None and recipe.available():
            spec = recipe.spec()
            initial = {**initial, "name": recipe.name}
        initial = {**initial, **spec_initial(spec), **_dataset_initial(request)}
        form = ExperimentForm(initial=initial, user=request.user)
    return render(request, "experiments/new.html", {
        "form": form, "recipes": available_recipes(), "arch_fields": ARCH_FIELDS,
    })


@require_GET
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _visible(request, pk)
    if experiment.kind == Experiment.Kind.TUNE:
        return redirect("study-detail", pk=pk)
    spec = experiment.spec
    info = dataset_info(spec["data"]["dataset"])
    return render(request, "experiments/detail.html", {
        "experiment": experiment,
        "spec_json": json.dumps(spec, indent=2),
        "checkpoints": {c.tag: c for c in experiment.checkpoints.all()},
        "task": info.task,
        "dataset_title": info.title,
        "test_metrics": experiment.summary.get("test_metrics") or {},
        "initial": events.status_payload(experiment),
        **compression.detail_context(experiment),
    })


@require_GET
def experiment_diagnostics(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _visible(request, pk)
    if experiment.kind == Experiment.Kind.TUNE:  # a study has no curves of its own
        return redirect("study-detail", pk=pk)
    verdict = events.current_verdict(experiment)
    if verdict is None and experiment.is_terminal:  # ended before it could be diagnosed
        verdict = diagnosis.final_verdict(experiment, nonfinite_loss=False)
    parent = experiment.parent if experiment.remedy else None
    if parent is not None and not parent.project.members.filter(pk=request.user.pk).exists():
        parent = None
    return render(request, "experiments/diagnostics.html", {
        "experiment": experiment,
        "verdict": verdict,
        "task": dataset_info(experiment.spec["data"]["dataset"]).task,
        "history": diagnosis.epoch_history(experiment.pk),
        "parent": parent,
        "gap": diagnosis.generalisation_gap(experiment),
        "parent_gap": diagnosis.generalisation_gap(parent) if parent else None,
        "remedy_runs": experiment.children.exclude(remedy={}).order_by("pk"),
    })


@require_http_methods(["GET", "POST"])
def remedy_apply(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """Show what a remedy changes in the spec; on POST, queue the patched run."""
    experiment = _visible(request, pk)
    remedy = diagnosis.find_remedy(experiment, key)
    if remedy is None:
        raise Http404("this run has no such remedy")
    before = experiment.experiment_spec
    changes = diagnosis.spec_changes(before, before.patched(remedy["patch"]))
    if request.method == "POST":
        form = RemedyForm(request.POST)
        if form.is_valid():
            child = diagnosis.apply_remedy(request.user, experiment, remedy,
                                           form.cleaned_data["name"])
            return redirect("experiment-detail", pk=child.pk)
    else:
        form = RemedyForm(initial={"name": f"{experiment.name} · {remedy['title']}"[:200]})
    return render(request, "experiments/remedy.html", {
        "experiment": experiment, "remedy": remedy, "changes": changes, "form": form,
    })


@require_POST
def experiment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _visible(request, pk)
    if actions.cancel_experiment(experiment):
        messages.info(request, "Cancellation requested.")
    else:
        messages.warning(request, "This run has already ended.")
    return redirect("experiment-detail", pk=pk)


@require_GET
def experiment_metrics(request: HttpRequest, pk: int) -> JsonResponse:
    experiment = _visible(request, pk)
    series = metric_store.read(experiment.pk)
    return JsonResponse({"metrics": {key: s.to_json() for key, s in series.items()}})


@require_GET
def checkpoint_download(request: HttpRequest, pk: int, tag: str) -> FileResponse:
    experiment = _visible(request, pk)
    checkpoint = experiment.checkpoints.filter(tag=tag).first()
    if checkpoint is None:
        raise Http404("no such checkpoint")
    path = (settings.MEDIA_ROOT / checkpoint.path).resolve()
    if not path.is_relative_to(settings.MEDIA_ROOT.resolve()) or not path.is_file():
        raise Http404("checkpoint file missing")
    filename = f"{slugify(experiment.name) or 'experiment'}-{experiment.pk}-{tag}.zip"
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename,
                        content_type="application/zip")
