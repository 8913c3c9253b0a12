"""Thin views of tuning studies: the Tune form, the live study page and its data, promotion."""

from __future__ import annotations

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.experiments import actions, groups, live_urls, quota, tuning
from webapp.experiments.models import Experiment, derived_name
from webapp.experiments.ownership import reference_problem
from webapp.experiments.tuning_forms import TuneForm
from webapp.experiments.views import visible_experiment
from webapp.projects import access


def _study(request: HttpRequest, pk: int) -> Experiment:
    study = visible_experiment(request, pk)
    if study.kind != Experiment.Kind.TUNE:
        raise Http404("not a tuning study")
    return study


@require_http_methods(["GET", "POST"])
def study_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Tune the experiment ``pk``: its spec is the study's base."""
    source = visible_experiment(request, pk)
    if source.kind == Experiment.Kind.TUNE:
        raise Http404("tune a run, not a study")
    if source.is_external:
        raise Http404("a run trained elsewhere has no spec to tune")
    if source.study_problem:
        raise Http404(source.study_problem)
    base = source.experiment_spec
    grid_size = None
    if request.method == "POST":
        form = TuneForm(request.POST, user=request.user, base=base, source=source)
        if form.is_valid() and form.spec is not None:
            if form.spec.algorithm == "grid":
                grid_size = form.spec.grid_size()
            if "count" not in request.POST:
                try:
                    study = actions.create_study(request.user, form.cleaned_data["project"],
                                                form.cleaned_data["name"], form.spec, source)
                except quota.OverQuota as exc:
                    form.add_error(None, str(exc))
                else:
                    return redirect("study-detail", pk=study.pk)
    else:
        form = TuneForm(initial={"name": derived_name(source.name, " · tuning"),
                                 "project": source.project},
                        user=request.user, base=base, source=source)
    return render(request, "experiments/study_new.html", {
        "form": form, "source": source, "grid_size": grid_size,
        "budget": form.spec.trial_budget() if form.spec else None,
    })


# The parallel-coordinates chart is WebGL (regl), which builds its draw calls with Function().
@csp_update({"script-src": ["'unsafe-eval'"]})
@require_GET
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = _study(request, pk)
    spec = study.spec
    return render(request, "experiments/study.html", {
        "study": study, "data": tuning.study_data(study), "live": live_urls.study_page(study.pk),
        "ranking": groups.ranking_check(study, spec.get("objective", "val_acc"),
                                        spec.get("direction") == "maximize"),
        "max_repeats": settings.FITBOARD_MAX_REPEATS,
        "may_cancel": access.may_cancel(request.user, study),
    })


@require_POST
def study_check(request: HttpRequest, pk: int) -> HttpResponse:
    """"Check the best trials": the top k trials, each repeated over N seeds."""
    study = _study(request, pk)
    try:
        top = int(request.POST.get("top", "3"))
        count = int(request.POST.get("count", "3"))
    except ValueError:
        top = count = 0
    if not (1 <= top <= 10 and 2 <= count <= settings.FITBOARD_MAX_REPEATS):
        messages.warning(request, f"Check 1 to 10 trials over 2 to "
                                  f"{settings.FITBOARD_MAX_REPEATS} seeds.")
        return redirect("study-detail", pk=pk)
    # As "Promote" and the API's checks: the trials train on the study's data set, which may
    # be another project's upload the user cannot see (a study made before its form checked).
    problem = reference_problem(request.user, study.project, study.spec["base"]["data"]["dataset"])
    if problem:
        messages.warning(request, f"Cannot check the best trials: {problem}.")
        return redirect("study-detail", pk=pk)
    try:
        actions.check_best_trials(request.user, study, top, count)
    except (ValueError, quota.OverQuota) as exc:  # ValueError: no trial has completed
        messages.warning(request, str(exc))
    return redirect("study-detail", pk=pk)


@require_GET
def study_data(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(tuning.study_data(_study(request, pk)))


@require_POST
def study_promote(request: HttpRequest, pk: int) -> HttpResponse:
    study = _study(request, pk)
    problem = reference_problem(request.user, study.project, study.spec["base"]["data"]["dataset"])
    if problem:  # a study made before its form checked this
        messages.warning(request, f"Cannot promote: {problem}.")
        return redirect("study-detail", pk=pk)
    try:
        run = actions.promote_best(request.user, study, derived_name(study.name, " · best trial"))
    except (ValueError, quota.OverQuota) as exc:  # ValueError: no trial has completed
        messages.warning(request, str(exc))
        return redirect("study-detail", pk=pk)
    return redirect("experiment-detail", pk=run.pk)
