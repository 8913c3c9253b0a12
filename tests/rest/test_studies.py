"""A study's "Check the best trials" through /api/v1/: the best trials repeated over seeds,
and whether their ranking survives, as the study page says it."""

from __future__ import annotations

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.experiments import groups
from webapp.experiments.models import Experiment, RunGroup

from .conftest import IRIS

SPACE = {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}


def study_with_trials(make_run, values: list[float]) -> tuple[Experiment, list[Experiment]]:
    base = ExperimentSpec.from_dict(IRIS)
    tuning = TuningSpec.from_dict({"base": base.to_dict(), "space": SPACE,
                                   "objective": "val_acc", "direction": "maximize"})
    study = make_run("study", Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TUNE,
                     spec=tuning.to_dict())
    trials = [make_run(f"trial {n}", Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TRIAL,
                       parent=study,
                       spec=base.patched({"optim": {"lr": 10.0 ** -(n + 2)}}).to_dict(),
                       summary={"trial": {"number": n, "state": "complete", "value": v},
                                "best_metrics": {"val_acc": v}})
              for n, v in enumerate(values)]
    return study, trials


def test_checking_the_best_trials_repeats_them_and_says_whether_the_ranking_survives(
        api, make_run):
    # given a study whose three trials completed with 0.90, 0.95 and 0.80
    study, trials = study_with_trials(make_run, [0.90, 0.95, 0.80])
    before = api.get(f"studies/{study.pk}/checks/")

    # when its best 2 are checked over 3 seeds
    response = api.post(f"studies/{study.pk}/checks/", {"top": 2, "count": 3})

    # then each is repeated as a group, the trial itself its first seed
    assert response.status_code == 201, response.json()
    checks = [RunGroup.objects.get(pk=group["id"]) for group in response.json()]
    assert [groups.ordered_runs(g)[0] for g in checks] == [trials[1], trials[0]]
    assert all(len(group["seeds"]) == 3 for group in response.json())

    # when their new seeds end with the second-best trial ahead on average
    seeds_values = {checks[0].pk: [0.86, 0.87], checks[1].pk: [0.93, 0.92]}
    for group in checks:
        for run, value in zip(groups.ordered_runs(group)[1:], seeds_values[group.pk],
                              strict=True):
            Experiment.objects.filter(pk=run.pk).update(
                status=Experiment.Status.SUCCEEDED, summary={"best_metrics": {"val_acc": value}})

    # then the ranking does not survive, and Welch's t compares the first two
    ranking = api.get(f"studies/{study.pk}/checks/").json()["ranking"]
    assert before.json() == {"ranking": None}
    assert ranking["complete"] is True and ranking["survives"] is False
    assert [row["trial"] for row in ranking["rows"]] == [trials[1].pk, trials[0].pk]
    assert ranking["rows"][0]["values"] == [0.95, 0.86, 0.87]
    assert ranking["comparison"] is not None


def test_a_bad_check_is_refused_on_its_field(api, make_run, settings):
    settings.FITBOARD_MAX_REPEATS = 4
    study, _ = study_with_trials(make_run, [0.9])

    top = api.post(f"studies/{study.pk}/checks/", {"top": 11})
    count = api.post(f"studies/{study.pk}/checks/", {"count": 5})

    assert top.status_code == 400 and list(top.json()["errors"]) == ["top"]
    assert count.status_code == 400 and count.json()["errors"] == {
        "count": "at most 4 seeds (FITBOARD_MAX_REPEATS)"}
    assert not RunGroup.objects.exists()


def test_a_study_without_a_completed_trial_cannot_be_checked(api, make_run):
    study, _ = study_with_trials(make_run, [])
    run = make_run("plain")

    response = api.post(f"studies/{study.pk}/checks/", {})
    not_a_study = api.post(f"studies/{run.pk}/checks/", {})

    assert response.status_code == 400
    assert response.json()["errors"] == {"study": "no trial has completed yet"}
    assert not_a_study.status_code == 404
