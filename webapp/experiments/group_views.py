"""Repeat pages: "Repeat over N seeds" on a run, the group page (mean ± band, every seed), a
comparison of two groups with Welch's t, its export, and "Verify over N seeds" on a remedy.
Views validate and call ``actions``; what they show comes from ``groups``."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.experiments import actions, diagnosis, groups, quota
from webapp.experiments.models import Experiment, RunGroup, derived_name, parse_pk
from webapp.experiments.ownership import reference_problem, remedy_problem
from webapp.experiments.views import visible_experiment
from webapp.projects import access


class RepeatForm(forms.Form):
    """How many seeds: the run's own and the next ones."""

    count = forms.IntegerField(min_value=2, initial=3, label="Seeds")

    def clean_count(self) -> int:
        count = int(self.cleaned_data["count"])
        if count > settings.FITBOARD_MAX_REPEATS:
            raise forms.ValidationError(
                f"at most {settings.FITBOARD_MAX_REPEATS} seeds (FITBOARD_MAX_REPEATS)")
        return count


def visible_group(request: HttpRequest, pk: int) -> RunGroup:
    """The group if the user may see its project; 404 otherwise."""
    return get_object_or_404(
        RunGroup.objects.filter(project__in=access.projects_visible_to(request.user))
        .select_related("project", "baseline", "source"), pk=pk)


def _runnable(experiment: Experiment) -> None:
    if experiment.is_external or experiment.kind not in (Experiment.Kind.TRAIN,
                                                         Experiment.Kind.TRIAL):
        raise Http404("only a training run can be repeated")


@require_POST
def run_repeat(request: HttpRequest, pk: int) -> HttpResponse:
    """"Repeat over N seeds" on a run page: its spec over its seed and the next N − 1."""
    experiment = visible_experiment(request, pk)
    _runnable(experiment)
    form = RepeatForm(request.POST)
    if not form.is_valid():
        return _refused(form)
    count = form.cleaned_data["count"]
    problem = reference_problem(request.user, experiment.project,
                                experiment.experiment_spec.data.dataset)
    if problem:
        return _refused(form, problem)
    try:
        group = actions.create_repeat(request.user, experiment.project,
                                      derived_name(experiment.name, f" ×{count}"),
                                      experiment.experiment_spec, count, source=experiment)
    except quota.OverQuota as exc:
        return _refused(form, str(exc))
    return redirect("group-detail", pk=group.pk)


def _refused(form: RepeatForm, problem: str = "") -> HttpResponse:
    """The 400 of a repeat that was not queued: the form's errors, or ``problem``."""
    text = problem or "; ".join(m for ms in form.errors.values() for m in ms)
    return HttpResponse(text, status=400, content_type="text/plain")


@require_POST
def remedy_verify(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """"Verify over N seeds": the remedy ×N beside the original ×N, on the remedy's group page."""
    experiment = visible_experiment(request, pk)
    _runnable(experiment)
    remedy = diagnosis.find_remedy(experiment, key)
    if remedy is None or not remedy.get("patch"):
        raise Http404("this run has no such remedy")
    form = RepeatForm(request.POST)
    if not form.is_valid():
        return _refused(form)
    problem = remedy_problem(request.user, experiment, remedy)
    if problem:
        return _refused(form, problem)
    try:
        group = actions.verify_remedy(request.user, experiment, remedy,
                                      form.cleaned_data["count"])
    except quota.OverQuota as exc:
        return _refused(form, str(exc))
    return redirect("group-detail", pk=group.pk)


def group_context(group: RunGroup) -> dict[str, Any]:
    """What the group page shows: each seed's row, the final metrics' mean ± std, every
    metric's curves with both bands (switched in the page), a remedy's verdicts."""
    runs = groups.ordered_runs(group)
    metrics = [m for m in groups.EPOCH_METRICS
               if any(m in (run.summary.get("final_metrics") or {}) for run in runs)] \
        or ["val_loss"]
    charts = groups.charts(group, metrics)
    finals = groups.final_table(runs)
    return {"group": group, "runs": runs, "finals": finals,
            # before any seed finished, the metrics of the charts (a select is never empty)
            "compare_metrics": [row["metric"] for row in finals] or metrics,
            "charts": charts, "remedy_verdicts": groups.remedy_verdicts(group),
            "data_set": groups.data_set(group),
            # only groups whose metrics compare: those on the same data set
            "others": RunGroup.objects.filter(project=group.project,
                                              spec__data__dataset=groups.data_set(group)
                                              ).exclude(pk=group.pk)[:50]}


@require_GET
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    group = visible_group(request, pk)
    return render(request, "experiments/group.html", group_context(group))


def _side(request: HttpRequest, name: str) -> RunGroup:
    pk = parse_pk(request.GET.get(name, ""))
    if pk is None:
        raise Http404(f"no group {name}")
    return visible_group(request, pk)


def comparison(request: HttpRequest) -> dict[str, Any]:
    """Groups ``a`` and ``b`` of the query, on its ``metric``, with the Welch verdict."""
    a, b = _side(request, "a"), _side(request, "b")
    runs_a, runs_b = groups.ordered_runs(a), groups.ordered_runs(b)
    # Only what the seeds measured: a regression's groups have no val_acc, and comparing them
    # on it said "each side needs at least two finished seeds" of five finished ones.
    measured = [row["metric"] for row in groups.final_table(runs_a + runs_b)]
    metric = request.GET.get("metric") or (
        "val_acc" if "val_acc" in measured or not measured else "val_loss")
    if metric not in ("gap", *groups.EPOCH_METRICS):
        raise Http404("no such metric")
    problem = groups.incomparable(a, b) or groups.unmeasured(runs_a, runs_b, metric, measured)
    result = None if problem else groups.compare_sides(runs_a, runs_b, metric, (a.name, b.name))
    return {"a": a, "b": b, "metric": metric, "result": result, "problem": problem,
            "values_a": groups.finals(runs_a, metric), "values_b": groups.finals(runs_b, metric),
            "metrics": measured or ("gap", *groups.EPOCH_METRICS)}


@require_GET
def group_compare(request: HttpRequest) -> HttpResponse:
    return render(request, "experiments/group_compare.html", comparison(request))


@require_GET
def group_compare_export(request: HttpRequest) -> JsonResponse:
    """The comparison as JSON, with each side's per-seed values and run ids."""
    found = comparison(request)
    sides = {}
    for side in ("a", "b"):
        group = found[side]
        sides[side] = {"group": group.pk, "name": group.name, "seeds": [
            {"run": run.pk, "seed": groups.seed_of(run), "status": run.status,
             "value": groups.final_value(run, found["metric"])}
            for run in groups.ordered_runs(group)]}
    result = found["result"]
    return JsonResponse({"metric": found["metric"], **sides, "problem": found["problem"],
                         "comparison": None if result is None else json.loads(
                             json.dumps(result.to_dict()))})
