"""Repeats in the web app: a run repeated over seeds (its own seed reused, the others trained
together in one job), the group page's band and finals, comparing groups with Welch's t, and
a remedy verified over the seeds of its original."""

from __future__ import annotations

import json

import pytest
from celery.signals import before_task_publish
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.webapp.test_diagnostics_pages import overfit_run  # noqa: F401 - a fixture
from training.seeds import batch_problem
from training.spec import ExperimentSpec
from webapp.experiments import groups
from webapp.experiments.models import Experiment, RunGroup
from webapp.projects.models import Project

SMALL = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 3, "batch_size": 16, "device": "cpu", "seed": 7},
})


def test_repeating_a_run_reuses_its_seed_and_trains_the_others_together(
        owner_client, make_experiment, django_capture_on_commit_callbacks):
    # given a finished run of a small MLP, seed 7
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict(),
                             name="iris mlp")

    # when "Repeat over 3 seeds" is pressed on its page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(reverse("run-repeat", args=[source.pk]), {"count": 3})

    # then a group of seeds 7, 8, 9 holds the run itself and two queued runs, sent as one job
    group = RunGroup.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/groups/{group.pk}/"
    runs = groups.ordered_runs(group)
    assert group.seeds == [7, 8, 9] and runs[0] == source
    assert [r.status for r in runs[1:]] == ["queued", "queued"]
    assert [r.spec["run"]["seed"] for r in runs] == [7, 8, 9]
    # (one message for the group: an MLP's seeds train together)
    assert len(callbacks) == 1 and batch_problem(SMALL) is None


# The worker's reporters write from their flusher threads: the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_a_repeat_job_trains_its_queued_seeds_together_each_on_its_row(
        owner, project, make_experiment):
    # given a group of a finished run and two queued seeds
    from webapp.experiments.actions import create_repeat

    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict())
    group = create_repeat(owner, project, "iris ×3", SMALL, 3, source=source)
    runs = groups.ordered_runs(group)

    # when the worker runs the group's job
    groups.execute_group(group.pk, worker="test-worker")

    # then each new seed trained, with its own curves and checkpoints, on its own row
    for run in runs[1:]:
        run.refresh_from_db()
        assert run.status == Experiment.Status.SUCCEEDED, run.error
        assert run.summary["epochs"] == 3 and run.checkpoints.count() == 2
        assert run.verdict_kind
    curves = groups.epoch_curves(runs[1:], ["val_loss"])["val_loss"]
    assert [len(c) for c in curves.values()] == [3, 3]
    assert curves[runs[1].pk] != curves[runs[2].pk]


def test_the_group_page_draws_mean_band_and_seeds_in_two_queries_for_the_curves(
        owner_client, project, owner, make_experiment):
    # given a group of three finished seeds with stored epoch curves
    from tests.webapp.test_diagnostics_pages import store_history

    runs = []
    for seed, shift in ((0, 0.0), (1, 0.1), (2, 0.2)):
        run = make_experiment(status=Experiment.Status.SUCCEEDED,
                              spec=SMALL.patched({"run": {"seed": seed}}).to_dict(),
                              summary={"best_metrics": {"val_acc": 0.8 + shift},
                                       "final_metrics": {"train_loss": 0.1, "val_loss": 0.5}})
        store_history(run, {"train_loss": [1.0, 0.5], "val_loss": [1.0 + shift, 0.5 + shift],
                            "val_acc": [0.5, 0.8 + shift]})
        runs.append(run)
    group = RunGroup.objects.create(project=project, name="three", spec=SMALL.to_dict(),
                                    seeds=[0, 1, 2], created_by=owner)
    group.runs.set(runs)

    # when its page is opened
    with CaptureQueriesContext(connection) as queries:
        page = owner_client.get(reverse("group-detail", args=[group.pk])).content.decode()

    # then the chart data holds each seed's curve and the mean with its band
    charts = json.loads(page.split('id="group-charts" type="application/json">')[1]
                        .split("</script>")[0])
    std = charts["val_loss"]["std"]
    assert [s["values"] for s in std["seeds"]] == [[1.0, 0.5], [1.1, 0.6], [1.2, 0.7]]
    assert std["mean"] == pytest.approx([1.1, 0.6])
    assert std["high"][0] - std["mean"][0] == pytest.approx(0.1)  # the sample std
    ci = charts["val_loss"]["ci95"]
    assert ci["high"][0] - ci["mean"][0] == pytest.approx(0.1 * 4.302653 / 3 ** 0.5)
    # and the finals as mean ± std, the metric read once for every seed
    assert "0.9000 ± 0.1000" in page
    assert sum("experiments_metricchunk" in q["sql"] for q in queries.captured_queries) == 1


def test_a_group_with_one_finished_seed_shows_no_spread_of_zero(
        owner_client, project, owner, make_experiment):
    # given a repeat whose first seed finished and whose second is still queued
    done = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict(),
                           summary={"best_metrics": {"val_acc": 0.9649}})
    waiting = make_experiment(status=Experiment.Status.QUEUED,
                              spec=SMALL.patched({"run": {"seed": 8}}).to_dict())
    group = RunGroup.objects.create(project=project, name="two", spec=SMALL.to_dict(),
                                    seeds=[7, 8], created_by=owner)
    group.runs.set([done, waiting])

    # when its page is opened
    page = owner_client.get(reverse("group-detail", args=[group.pk])).content.decode()

    # then the final metric has its mean, and no "± 0.0000" as if the seeds agreed exactly
    assert "0.9649 <span class=\"muted\">± needs a second seed</span>" in page
    assert "± 0.0000" not in page


def finished_group(project, owner, make_experiment, name: str, values: list[float],
                   first_seed: int, spec: ExperimentSpec = SMALL) -> RunGroup:
    runs = [make_experiment(status=Experiment.Status.SUCCEEDED, name=f"{name} {i}",
                            spec=spec.patched({"run": {"seed": first_seed + i}}).to_dict(),
                            summary={"best_metrics": {"val_acc": v}})
            for i, v in enumerate(values)]
    group = RunGroup.objects.create(project=project, name=name, spec=spec.to_dict(),
                                    seeds=[first_seed + i for i in range(len(values))],
                                    created_by=owner)
    group.runs.set(runs)
    return group


def test_a_lone_group_says_how_to_get_another_instead_of_an_empty_select(
        owner_client, project, owner, make_experiment):
    # given the project's only group of seeds
    lone = finished_group(project, owner, make_experiment, "only", [0.90, 0.91], 0)

    # when its page is opened
    page = owner_client.get(reverse("group-detail", args=[lone.pk])).content.decode()

    # then there is no "Compare with" select to choose nothing from, but what to do instead
    assert 'name="b"' not in page and 'id="group-compare-form"' not in page
    assert "No other group of seeds on iris in vision to compare this one with yet" in page
    assert f'{reverse("experiment-new")}?project={project.pk}' in page

    # and once a second group exists, the select offers it
    other = finished_group(project, owner, make_experiment, "second", [0.80, 0.82], 0)
    page = owner_client.get(reverse("group-detail", args=[lone.pk])).content.decode()
    assert f'<option value="{other.pk}">second (#{other.pk})</option>' in page
    assert 'id="group-compare-none"' not in page


def test_the_run_lists_repeats_follow_its_project_filter(owner_client, project, owner,
                                                        make_experiment):
    # given a group in the owner's project and an empty second project
    finished_group(project, owner, make_experiment, "iris seeds", [0.90, 0.91], 0)
    other = Project.objects.create(name="other")
    other.members.add(owner)

    # when the list is filtered to each project, the repeats are those of that project only
    shown = owner_client.get(reverse("experiment-list"), {"project": project.pk})
    assert [g.name for g in shown.context["run_groups"]] == ["iris seeds"]
    hidden = owner_client.get(reverse("experiment-list"), {"project": other.pk})
    assert list(hidden.context["run_groups"]) == []
    assert 'id="group-list"' not in hidden.content.decode()


def test_before_any_seed_finished_the_compare_metric_select_is_not_empty(
        owner_client, project, owner, make_experiment):
    # given two groups whose seeds are all still queued
    groups_ = []
    for name in ("queued a", "queued b"):
        group = RunGroup.objects.create(project=project, name=name, spec=SMALL.to_dict(),
                                        seeds=[0, 1], created_by=owner)
        group.runs.set([make_experiment(spec=SMALL.patched({"run": {"seed": s}}).to_dict())
                        for s in (0, 1)])
        groups_.append(group)

    # when the first one's page is opened
    page = owner_client.get(reverse("group-detail", args=[groups_[0].pk])).content.decode()

    # then "on" offers the metric its chart draws
    metric_select = page.split('<select name="metric">')[1].split("</select>")[0]
    assert '<option value="val_loss">val_loss</option>' in metric_select


def test_comparing_two_groups_says_which_is_better_and_exports_each_seed(
        owner_client, project, owner, make_experiment):
    # given two groups of five seeds, B clearly above A
    a = finished_group(project, owner, make_experiment, "lr 1e-5",
                       [0.30, 0.35, 0.28, 0.33, 0.31], 0)
    b = finished_group(project, owner, make_experiment, "lr 1e-3",
                       [0.95, 0.94, 0.96, 0.95, 0.93], 0)
    query = {"a": a.pk, "b": b.pk, "metric": "val_acc"}

    # when they are compared, on the page and as JSON
    page = owner_client.get(reverse("group-compare"), query).content.decode()
    export = owner_client.get(reverse("group-compare-export"), query).json()

    # then B is better beyond seed noise, and the export holds every seed's value
    assert "lr 1e-3 is better than lr 1e-5 on val_acc by 63.2 ± " in page
    assert export["comparison"]["verdict"] == "different"
    assert [s["value"] for s in export["b"]["seeds"]] == [0.95, 0.94, 0.96, 0.95, 0.93]
    assert export["comparison"]["method"] == "Welch's t"


def test_regression_groups_are_compared_on_what_their_seeds_measured(
        owner_client, project, owner, make_experiment):
    # given two groups of a diabetes regression, whose seeds measured RMSE and loss only
    spec = SMALL.patched({"data": {"dataset": "diabetes"}, "optim": {"loss": "mse"}})
    a, b = (finished_group(project, owner, make_experiment, name, values, 0, spec)
            for name, values in (("wide", [0.5, 0.52, 0.49]), ("narrow", [0.7, 0.72, 0.71])))
    for group, rmse in ((a, 55.0), (b, 60.0)):
        for i, run in enumerate(groups.ordered_runs(group)):
            loss = run.summary["best_metrics"].pop("val_acc")
            run.summary["best_metrics"].update(val_loss=loss, val_rmse=rmse + i)
            run.save(update_fields=["summary"])

    # when they are compared by an address without a metric, and on accuracy
    plain = owner_client.get(reverse("group-compare"), {"a": a.pk, "b": b.pk}).context
    on_acc = owner_client.get(reverse("group-compare"),
                              {"a": a.pk, "b": b.pk, "metric": "val_acc"}).context

    # then the default is their loss with a verdict, accuracy is not offered, and asking for
    # it says they measured none (it said "each side needs at least two finished seeds")
    assert plain["metric"] == "val_loss" and plain["result"].verdict == "different"
    assert "val_acc" not in plain["metrics"] and "val_rmse" in plain["metrics"]
    assert on_acc["result"] is None
    assert on_acc["problem"].startswith("these seeds measured no val_acc: compare them on")


def test_groups_on_different_data_sets_are_not_offered_nor_judged_against_each_other(
        owner_client, project, owner, make_experiment):
    # given a group on iris, another on iris and one on wine
    iris = finished_group(project, owner, make_experiment, "iris a", [0.90, 0.91], 0)
    same = finished_group(project, owner, make_experiment, "iris b", [0.80, 0.82], 0)
    wine = finished_group(project, owner, make_experiment, "wine", [0.95, 0.96], 0,
                          SMALL.patched({"data": {"dataset": "wine"}}))

    # when the iris group's page is opened, and it is compared with wine's by its address
    page = owner_client.get(reverse("group-detail", args=[iris.pk])).content.decode()
    query = {"a": iris.pk, "b": wine.pk, "metric": "val_acc"}
    compared = owner_client.get(reverse("group-compare"), query).content.decode()
    export = owner_client.get(reverse("group-compare-export"), query).json()

    # then only the other iris group is offered, and the comparison says why there is no
    # verdict (a text regression's loss was "better by 0.757" than an image classifier's)
    assert f'<option value="{same.pk}">' in page and f'<option value="{wine.pk}">' not in page
    assert "measure different data, so neither is better" in compared
    assert "is better than" not in compared
    assert export["comparison"] is None and "different data" in export["problem"]


def test_a_stranger_sees_no_group(stranger_client, project, owner, make_experiment):
    group = finished_group(project, owner, make_experiment, "private", [0.5, 0.6], 0)

    assert stranger_client.get(reverse("group-detail", args=[group.pk])).status_code == 404
    response = stranger_client.get(reverse("group-compare"), {"a": group.pk, "b": group.pk})
    assert response.status_code == 404


def test_more_seeds_than_the_limit_are_refused(owner_client, make_experiment, settings):
    settings.FITBOARD_MAX_REPEATS = 4
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict())

    response = owner_client.post(reverse("run-repeat", args=[source.pk]), {"count": 5})

    assert response.status_code == 400 and b"at most 4 seeds" in response.content
    assert not RunGroup.objects.exists()


def test_verifying_a_remedy_runs_it_beside_the_original_over_the_same_seeds(
        owner_client, overfit_run, django_capture_on_commit_callbacks):  # noqa: F811
    # given the overfitting run and its first remedy
    remedy = next(r for r in overfit_run.verdict["remedies"] if r["patch"])

    # when "Verify over 3 seeds" is pressed on the diagnostics page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(
            reverse("remedy-verify", args=[overfit_run.pk, remedy["key"]]), {"count": 3})

    # then the remedy's group and the original's share their seeds; the original's seed is
    # the run itself; the remedy's runs carry the patched spec
    remedied = RunGroup.objects.get(baseline__isnull=False)
    original = remedied.baseline
    assert response["Location"] == f"/groups/{remedied.pk}/"
    assert remedied.seeds == original.seeds == [0, 1, 2]
    assert groups.ordered_runs(original)[0] == overfit_run
    patched = ExperimentSpec.from_dict(overfit_run.spec).patched(remedy["patch"])
    assert all(ExperimentSpec.from_dict(r.spec).model == patched.model
               for r in groups.ordered_runs(remedied))
    assert remedied.remedy["key"] == remedy["key"]
    assert len(callbacks) == 2  # one job per side (two new seeds of each)
    # and the diagnostics page links forward to it
    page = owner_client.get(reverse("experiment-diagnostics", args=[overfit_run.pk]))
    assert reverse("group-detail", args=[remedied.pk]) in page.content.decode()


@pytest.mark.parametrize(("kind", "first"), [("slow", "val_loss"), ("overfitting", "gap")])
def test_a_verified_remedy_is_judged_first_on_what_its_originals_problem_is_about(
        project, owner, make_experiment, kind, first):
    # given an original run (slow, or overfitting) over 2 seeds, and its remedy over the same
    # seeds: a lower validation loss, a wider gap
    def side(name: str, val_loss: list[float], gap: float, verdict: str) -> RunGroup:
        runs = [make_experiment(status=Experiment.Status.SUCCEEDED, name=f"{name} {seed}",
                                spec=SMALL.patched({"run": {"seed": seed}}).to_dict(),
                                verdict={"kind": verdict}, verdict_kind=verdict,
                                summary={"best_metric": ["val_acc", 0.8],
                                         "best_metrics": {"val_acc": 0.8, "val_loss": v},
                                         "final_metrics": {"val_loss": v,
                                                           "train_loss": v - gap}})
                for seed, v in enumerate(val_loss)]
        group = RunGroup.objects.create(project=project, name=name, spec=SMALL.to_dict(),
                                        seeds=[0, 1], created_by=owner)
        group.runs.set(runs)
        return group

    original = side("original", [0.62, 0.63], 0.011, kind)
    remedied = side("remedy", [0.56, 0.57], 0.016, "healthy")
    remedied.baseline = original
    remedied.save()

    # when the two sides are compared, then first on the gap for an overfitting original, on
    # the validation loss for a slow one; then on the monitored metric
    assert [c.metric for c in groups.remedy_verdicts(remedied)] == [first, "val_acc"]


def test_the_form_with_repeats_makes_a_group(owner_client, project,
                                             django_capture_on_commit_callbacks):
    from webapp.experiments.forms import spec_initial

    data = {"name": "form repeat", "project": project.pk, "repeats": 3,
            **spec_initial(SMALL)}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner_client.post(reverse("experiment-new"), data)

    group = RunGroup.objects.get(name="form repeat")
    assert response["Location"] == f"/groups/{group.pk}/"
    assert group.runs.count() == 3 and len(callbacks) == 1


def test_checking_the_best_trials_says_whether_their_ranking_survives(
        owner_client, project, owner, make_experiment, django_capture_on_commit_callbacks):
    # given a study whose three trials completed with 0.90, 0.95 and 0.80
    from training.tuning import TuningSpec

    tuning = TuningSpec.from_dict({"base": SMALL.to_dict(), "space": {
        "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}})
    study = make_experiment(status=Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TUNE,
                            spec=tuning.to_dict(), name="study")
    trials = [make_experiment(status=Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TRIAL,
                              parent=study, name=f"trial {n}",
                              spec=SMALL.patched({"optim": {"lr": 10.0 ** -(n + 2)}}).to_dict(),
                              summary={"trial": {"number": n, "state": "complete", "value": v},
                                       "best_metrics": {"val_acc": v}})
              for n, v in enumerate([0.90, 0.95, 0.80])]

    # when the best 2 are checked over 3 seeds
    with django_capture_on_commit_callbacks(execute=False):
        owner_client.post(reverse("study-check", args=[study.pk]), {"top": 2, "count": 3})

    # then each of the two best trials is repeated, itself as the first seed
    checks = list(RunGroup.objects.order_by("pk"))
    assert [groups.ordered_runs(g)[0] for g in checks] == [trials[1], trials[0]]

    # when their new seeds end with the second-best trial ahead on average
    seeds_values = {checks[0].pk: [0.86, 0.87], checks[1].pk: [0.93, 0.92]}
    for group in checks:
        for run, value in zip(groups.ordered_runs(group)[1:], seeds_values[group.pk],
                              strict=True):
            Experiment.objects.filter(pk=run.pk).update(
                status=Experiment.Status.SUCCEEDED, summary={"best_metrics": {"val_acc": value}})

    # then the study page says the ranking does not survive, with the Welch comparison
    page = owner_client.get(reverse("study-detail", args=[study.pk])).content.decode()
    assert "The ranking does not survive" in page
    assert 'id="ranking-comparison"' in page and "Welch&#x27;s t over 3 + 3 seeds" in page


@pytest.fixture
def room_for_two_seeds():
    """A deployment whose runs may use the memory of 2.5 seeds of SMALL trained together."""
    from training import budget

    before = budget.current_limits()
    one = budget.estimate(SMALL, SMALL.data.info())
    assert one is not None
    budget.configure(budget.Limits(memory_gb=one.total_bytes * 2.5 / budget.GB,
                                   max_devices=before.max_devices))
    yield
    budget.configure(before)


def test_seeds_that_do_not_fit_together_are_queued_one_job_each(
        owner, project, make_experiment, room_for_two_seeds,
        django_capture_on_commit_callbacks):
    # given a deployment where one run of SMALL fits, and 2 of them stacked, but not 3
    from webapp.experiments import enqueue
    from webapp.experiments.actions import create_repeat

    assert batch_problem(SMALL, count=2) is None
    assert "3 seeds together need about" in (batch_problem(SMALL, count=3) or "")

    # when the run is repeated over 4 seeds (3 of them new), its messages sent to the broker
    sent: list[tuple[str, int]] = []

    def record(sender: str, headers: dict, body: tuple, **kwargs: object) -> None:
        sent.append((sender, body[0][0]))

    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=SMALL.to_dict())
    before_task_publish.connect(record)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            group = create_repeat(owner, project, "iris ×4", SMALL, 4, source=source)
    finally:
        before_task_publish.disconnect(record)

    # then each new seed is its own training job, never one stacked job past the budget
    new = [run.pk for run in groups.ordered_runs(group)[1:]]
    assert sorted(sent) == sorted((enqueue.TRAIN, pk) for pk in new)
