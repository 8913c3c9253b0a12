"""Tuning studies in the web app: the Tune form's errors sit on their fields, the driver keeps
at most ``parallelism`` trials in flight, a finished trial starts the next, cancel reaches the
trials, and the best trial is promoted. Trials train for real (iris, one epoch) in this process;
the Celery messages go to the test Redis and nobody consumes them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from training import checkpoints
from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.datasets.models import Dataset
from webapp.experiments import actions, files, metric_store, tuning
from webapp.experiments.models import Experiment

from ..hostile import table_csv

pytestmark = pytest.mark.django_db(transaction=True)

IRIS = ExperimentSpec().patched({
    "data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
    "run": {"epochs": 2, "batch_size": 64, "device": "cpu"},
})


def form_data(project: Any, **overrides: Any) -> dict[str, Any]:
    """A valid Tune form: learning rate on a log range, 4 random trials, 2 at once."""
    data = {"name": "study", "project": project.pk, "algorithm": "random",
            "objective": "val_acc", "n_trials": 4, "timeout": 0, "parallelism": 2,
            "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1,
            "lr_log": "on"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def source(make_experiment: Any) -> Experiment:
    return make_experiment(name="iris", status=Experiment.Status.SUCCEEDED, spec=IRIS.to_dict())


@pytest.fixture
def make_study(owner: Any, project: Any, source: Experiment) -> Any:
    def make(enqueue: tuple[float, ...] = (), **fields: Any) -> Experiment:
        spec = TuningSpec.from_dict({
            "base": IRIS.to_dict(), "algorithm": "random", "n_trials": 3, "parallelism": 2,
            "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}},
            **fields,
        })
        study = actions.create_study(owner, project, "study", spec, source)
        for lr in enqueue:  # trials with these learning rates come first
            tuning.open_study(study).enqueue_trial({"optim.lr": lr})
        tuning.drive_study(study.pk, worker="test")
        return study

    return make


def trials_of(study: Experiment) -> list[Experiment]:
    return list(study.children.filter(kind=Experiment.Kind.TRIAL).order_by("pk"))


# --- the form ---------------------------------------------------------------------------------


@pytest.mark.django_db  # the form needs no commits: no flush after it
@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"lr_on": None}, None, "choose at least one field to tune"),
    ({"weight_decay_on": "on", "weight_decay_low": 0, "weight_decay_high": 0.1,
      "weight_decay_log": "on"}, "weight_decay_low", "a log range needs a positive lower bound"),
    ({"algorithm": "grid"}, "lr_low", "grid search needs a step for a float range"),
    ({"n_trials": 0, "timeout": 0}, "n_trials", "give a number of trials, a time limit, or both"),
    ({"parallelism": 0}, "parallelism", "must be between 1 and 64"),
    ({"batch_size_on": "on", "batch_size_choices": "32; 5000"}, "batch_size_choices",
     "larger than the training split"),
    # Adam reads no momentum: a search of it alone would vary nothing
    ({"momentum_on": "on", "momentum_low": 0.5, "momentum_high": 0.9}, "momentum_low",
     "this run does not use it: it applies when optim.optimizer is sgd, and here it is adam"),
])
def test_the_tune_form_shows_each_error_on_its_field(owner_client, project, source, overrides,
                                                     field, message):
    # when a bad study is submitted
    response = owner_client.post(reverse("study-new", args=[source.pk]),
                                 form_data(project, **overrides))

    # then the form comes back with the message on the field, and no study exists
    page = response.content.decode()
    assert response.status_code == 200
    assert message in page
    if field:
        assert f'data-field-error="{field}"' in page
    assert not Experiment.objects.filter(kind=Experiment.Kind.TUNE).exists()


@pytest.mark.django_db
def test_each_search_space_box_names_its_field_in_the_summary_and_to_a_screen_reader(
        owner_client, project, source):
    # given the search-space table, whose boxes sit under one column head each ("Low")
    page = owner_client.get(reverse("study-new", args=[source.pk])).content.decode()

    # then each box names its row's field
    assert 'aria-label="Learning rate: low"' in page and 'aria-label="Learning rate: step"' in page
    assert 'aria-label="Optimizer: choices"' in page

    # and a refused box is named so in the error summary
    response = owner_client.post(reverse("study-new", args=[source.pk]), form_data(
        project, weight_decay_on="on", weight_decay_low=0, weight_decay_high=0.1,
        weight_decay_log="on"))
    summary = response.content.decode().split('id="error-summary"')[1].split("</div>")[0]
    assert "Weight decay: low: a log range needs a positive lower bound" in summary


@pytest.mark.django_db
def test_the_form_offers_only_fields_the_run_reads(owner_client, source, make_experiment):
    # given a finished MLP run and a finished CNN run
    cnn = make_experiment(name="cnn", status=Experiment.Status.SUCCEEDED,
                          spec=IRIS.patched({"data": {"dataset": "digits"},
                                             "model": {"arch": "cnn"}}).to_dict())

    # when each is tuned
    mlp_page = owner_client.get(reverse("study-new", args=[source.pk])).content.decode()
    cnn_page = owner_client.get(reverse("study-new", args=[cnn.pk])).content.decode()

    # then the MLP's table has hidden sizes and no CNN width, the CNN's the other way round,
    # and both have momentum (the optimizer may be searched with it)
    assert 'name="hidden_sizes_on"' in mlp_page and 'name="width_on"' not in mlp_page
    assert 'name="width_on"' in cnn_page and 'name="hidden_sizes_on"' not in cnn_page
    assert 'name="momentum_on"' in mlp_page and 'name="momentum_on"' in cnn_page
    # and only the MLP's has the activation (a CNN's blocks use ReLU whatever it says)
    assert 'name="activation_on"' in mlp_page and 'name="activation_on"' not in cnn_page


def test_a_regressions_study_starts_with_an_objective_it_has(owner_client, project, source,
                                                               make_experiment):
    # given a finished regression run (diabetes) beside the classification one (iris)
    regression = make_experiment(
        name="diabetes", status=Experiment.Status.SUCCEEDED,
        spec=IRIS.patched({"data": {"dataset": "diabetes"}, "optim": {"loss": "mse"}}).to_dict())

    # when each is tuned, the form submitted with the objective it starts with
    forms = {run.name: owner_client.get(reverse("study-new", args=[run.pk])).context["form"]
             for run in (source, regression)}
    objective = forms["diabetes"]["objective"].value()
    response = owner_client.post(reverse("study-new", args=[regression.pk]),
                                 form_data(project, objective=objective))

    # then the regression's is its validation loss (val_acc was refused: "no val_acc"), and
    # the classification's still its accuracy
    assert objective == "val_loss" and forms["iris"]["objective"].value() == "val_acc"
    assert response.status_code == 302, response.context["form"].errors


def test_each_runs_objective_list_offers_only_the_metrics_its_task_logs(
        owner_client, source, make_experiment):
    # given a finished regression run (diabetes) beside the classification one (iris)
    regression = make_experiment(
        name="diabetes", status=Experiment.Status.SUCCEEDED,
        spec=IRIS.patched({"data": {"dataset": "diabetes"}, "optim": {"loss": "mse"}}).to_dict())

    # when each is tuned
    offered = {run.name: [key for key, _ in owner_client.get(reverse(
        "study-new", args=[run.pk])).context["form"].fields["objective"].choices]
        for run in (source, regression)}

    # then the regression is offered no accuracy (picking it was refused: "no val_acc") and
    # the classification no error in target units
    assert offered["diabetes"] == ["val_loss", "val_rmse", "val_mae", "train_loss"]
    assert offered["iris"] == ["val_acc", "val_loss", "train_loss", "train_acc"]


def test_a_field_that_applies_to_a_searched_choice_may_be_searched_with_it(owner_client,
                                                                          project, source):
    # when momentum is searched together with the optimizer that reads it
    response = owner_client.post(reverse("study-new", args=[source.pk]), form_data(
        project, momentum_on="on", momentum_low=0.5, momentum_high=0.9, optimizer_on="on",
        optimizer_choices="adam; sgd"))

    # then the study starts
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Experiment.objects.filter(kind=Experiment.Kind.TUNE).exists()


@pytest.mark.django_db
def test_the_form_counts_grid_points_before_submitting(owner_client, project, source):
    # given a grid of 3 learning rates by 2 optimizers
    data = form_data(project, algorithm="grid", lr_step=0.04, lr_low=0.01, lr_high=0.09,
                     lr_log=None, optimizer_on="on", optimizer_choices="adam; sgd")

    # when the user asks for the count
    response = owner_client.post(reverse("study-new", args=[source.pk]), {**data, "count": "1"})

    # then the page says 6 points and nothing was created
    assert "The grid has <strong>6</strong> points" in response.content.decode()
    assert not Experiment.objects.filter(kind=Experiment.Kind.TUNE).exists()


# --- the driver ---------------------------------------------------------------------------------


def test_submitting_creates_a_study_with_trials_capped_by_parallelism(owner_client, project,
                                                                      source):
    # when the form is submitted (4 trials, 2 at once) and the study's task runs
    response = owner_client.post(reverse("study-new", args=[source.pk]), form_data(project))
    study = Experiment.objects.get(kind=Experiment.Kind.TUNE)
    tuning.drive_study(study.pk, worker="test")

    # then the study runs with exactly two queued trials, each its own Optuna trial
    assert response["Location"] == reverse("study-detail", args=[study.pk])
    trials = trials_of(study)
    assert [t.status for t in trials] == ["queued", "queued"]
    assert sorted(tuning.trial_info(t)["number"] for t in trials) == [0, 1]
    lrs = [t.experiment_spec.optim.lr for t in trials]
    assert all(1e-3 <= lr <= 1e-1 for lr in lrs) and lrs[0] != lrs[1]
    assert Experiment.objects.get(pk=study.pk).status == "running"


def test_a_finished_trial_enqueues_the_next(make_study):
    # given a running study with two trials queued out of three
    study = make_study()
    first = trials_of(study)[0]

    # when a worker trains the first
    tuning.execute_trial(first.pk, worker="test")

    # then it succeeded with its objective, and a third trial is queued in its place
    first.refresh_from_db()
    assert first.status == "succeeded"
    assert 0.0 <= tuning.trial_info(first)["value"] <= 1.0
    assert tuning.trial_info(first)["state"] == "complete"
    trials = trials_of(study)
    assert len(trials) == 3
    assert [t.status for t in trials[1:]] == ["queued", "queued"]
    # (asked in a later call of the driver, it does not replay the first call's random draws)
    lrs = {t.experiment_spec.optim.lr for t in trials}
    assert len(lrs) == 3


def test_the_study_ends_when_its_budget_is_spent_and_promotes_its_best(owner_client,
                                                                        make_study):
    # given a study of three trials, all trained
    study = make_study()
    for _ in range(3):
        queued = [t for t in trials_of(study) if t.status == "queued"]
        tuning.execute_trial(queued[0].pk, worker="test")

    # then it succeeded with its best trial recorded
    study.refresh_from_db()
    assert study.status == "succeeded"
    best = tuning.best_trial(study)
    assert best is not None
    assert study.summary["best_trial"]["experiment_id"] == best.pk

    # when the best trial is promoted
    response = owner_client.post(reverse("study-promote", args=[study.pk]))

    # then a regular run with the best trial's spec is queued
    run = Experiment.objects.get(kind=Experiment.Kind.TRAIN, parent=best)
    assert response["Location"] == reverse("experiment-detail", args=[run.pk])
    assert run.spec == best.spec and run.status == "queued"


def test_cancelling_a_study_cancels_its_queued_and_running_trials(owner_client, make_study):
    # given a study with one trial running and one queued
    study = make_study()
    running, queued = trials_of(study)
    running.start(worker="w1")

    # when the study is cancelled
    owner_client.post(reverse("experiment-cancel", args=[study.pk]))

    # then the study and its queued trial end cancelled; the running one is told to stop
    study.refresh_from_db()
    queued.refresh_from_db()
    running.refresh_from_db()
    assert (study.status, queued.status) == ("cancelled", "cancelled")
    assert running.cancel_requested is True
    # and the driver starts nothing more
    tuning.advance_study(study.pk)
    assert len(trials_of(study)) == 2


def test_a_pruned_trial_stops_early_and_shows_pruned_not_failed(make_study):
    # given a median-pruned study of 6-epoch trials: three that learn, then one that cannot
    study = make_study(pruner="median", n_trials=4, parallelism=1,
                       enqueue=(0.1, 0.1, 0.1, 1e-4),
                       space={"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1,
                                           "log": True}},
                       base=IRIS.patched({"run": {"epochs": 6}}).to_dict())

    # when the four trials train one after the other
    for _ in range(4):
        queued = [t for t in trials_of(study) if t.status == "queued"]
        tuning.execute_trial(queued[0].pk, worker="test")

    # then the last one was pruned before its sixth epoch: "pruned", not failed
    last = trials_of(study)[-1]
    info = tuning.trial_info(last)
    assert info["params"] == {"optim.lr": 1e-4}
    assert info["state"] == "pruned" and info["pruned_at"] < 6
    assert last.status == "cancelled" and last.error.startswith("pruned after epoch")
    assert last.summary["epochs"] < 6
    study.refresh_from_db()
    assert study.status == "succeeded" and study.summary["trials"] == {"complete": 3, "pruned": 1}


def test_a_trial_whose_worker_died_is_failed_and_retried_and_the_study_finishes(make_study,
                                                                                settings):
    # given heartbeats every second, and a study whose first trial's worker beat once and died
    settings.FITBOARD_TRIAL_HEARTBEAT = 1
    study = make_study(n_trials=2, parallelism=1)
    (lost,) = trials_of(study)
    lost.start(worker="doomed")
    optuna_study = tuning.open_study(study)
    number = tuning.trial_info(lost)["number"]
    optuna_study._storage.record_heartbeat(optuna_study.trials[number]._trial_id)
    time.sleep(3.2)  # two missed heartbeats, and SQLite stores their times to the second

    # when the study's watchdog looks
    tuning.advance_study(study.pk)

    # then the lost trial is failed (never left running) and queued again with its parameters
    lost.refresh_from_db()
    assert lost.status == "failed" and tuning.trial_info(lost)["state"] == "lost"
    retry = trials_of(study)[-1]
    assert retry.status == "queued"
    assert tuning.trial_info(retry)["params"] == tuning.trial_info(lost)["params"]

    # and when the remaining trials train, the study spends its budget of two and succeeds
    tuning.execute_trial(retry.pk, worker="test")
    tuning.execute_trial(trials_of(study)[-1].pk, worker="test")
    study.refresh_from_db()
    assert study.status == "succeeded"
    assert study.summary["trials"] == {"complete": 2, "lost": 1}


def test_the_study_page_and_its_data_show_the_trials(owner_client, stranger_client, make_study):
    # given a running study with two queued trials
    study = make_study()

    # when its owner opens the page and the data, and another user tries
    page = owner_client.get(reverse("study-detail", args=[study.pk]))
    data = owner_client.get(reverse("study-data", args=[study.pk])).json()
    foreign = stranger_client.get(reverse("study-data", args=[study.pk]))

    # then the owner sees both trials with their parameters; the stranger gets a 404
    assert page.status_code == 200 and "Promote best trial" in page.content.decode()
    assert [t["state"] for t in data["trials"]] == ["queued", "queued"]
    assert all("optim.lr" in t["params"] for t in data["trials"])
    assert foreign.status_code == 404
    # and the run page of the study leads to the study page; cloning a study clones its base
    assert owner_client.get(reverse("experiment-detail", args=[study.pk]))["Location"] == \
        reverse("study-detail", args=[study.pk])
    assert owner_client.get(reverse("experiment-new") + f"?from={study.pk}").status_code == 200
    assert owner_client.get(reverse("experiment-diagnostics", args=[study.pk])).status_code == 302


def test_only_a_study_of_two_parameters_or_more_offers_their_pair_chart(owner_client,
                                                                       make_study):
    # given a study of the learning rate alone and one of it and the weight decay
    alone = make_study(n_trials=1, parallelism=1)
    both = make_study(n_trials=1, parallelism=1, space={
        "optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True},
        "optim.weight_decay": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}})

    # when their pages are opened
    pages = {name: owner_client.get(reverse("study-detail", args=[study.pk])).content.decode()
             for name, study in (("alone", alone), ("both", both))}

    # then the learning rate is not drawn against itself: the pair card shows for two only
    assert '<div class="card" id="pair-card" hidden>' in pages["alone"]
    assert '<div class="card" id="pair-card">' in pages["both"]


def test_a_study_whose_samples_are_all_invalid_fails_instead_of_looping(make_study):
    # given a time-limited study whose two choices are each valid but never together (half of
    # iris held out leaves 75 training rows, fewer than a batch of 100)
    study = make_study(n_trials=0, timeout=3600, parallelism=1, space={
        "data.val_fraction": {"type": "categorical", "choices": [0.5]},
        "run.batch_size": {"type": "categorical", "choices": [100]},
    })

    # then the driver stopped after a few failed trials and failed the study with the reason
    study.refresh_from_db()
    assert study.status == "failed"
    assert "5 sampled configurations in a row were invalid" in study.error
    assert "larger than the training split" in study.error
    assert [t.status for t in trials_of(study)] == ["failed"] * 5


# --- trials run like any other job --------------------------------------------------------------


def run_all_trials(study: Experiment) -> list[Experiment]:
    """Train the study's trials in this process, one after the other, until none is queued."""
    while queued := [t for t in trials_of(study) if t.status == "queued"]:
        tuning.execute_trial(queued[0].pk, worker="test")
    return trials_of(study)


def test_a_study_of_a_run_on_an_uploaded_dataset_trains_its_trials_on_the_upload(
        owner, owner_client, project):
    # given an uploaded CSV and a study whose base spec trains on it
    response = owner_client.post(reverse("dataset-new"), {
        "name": "flowers", "project": project.pk, "kind": "csv", "missing": "drop",
        "drop_duplicates": "on", "drop_unlabelled": "on", "standardise": "on",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("data.csv", table_csv(80))})
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    base = IRIS.patched({"data": {"dataset": dataset.spec_name}, "run": {"batch_size": 16}})
    spec = TuningSpec.from_dict({
        "base": base.to_dict(), "algorithm": "random", "n_trials": 2, "parallelism": 1,
        "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}}})
    study = actions.create_study(owner, project, "upload study", spec)
    tuning.drive_study(study.pk, worker="test")

    # when a worker trains its trials
    trials = run_all_trials(study)

    # then every trial trained on the upload, and the study succeeded
    assert [(t.status, t.error) for t in trials] == [("succeeded", "")] * 2
    assert all(t.experiment_spec.data.dataset == dataset.spec_name for t in trials)
    assert all(t.summary["epochs"] == 2 for t in trials)
    study.refresh_from_db()
    assert study.status == "succeeded", study.error


def test_a_study_on_a_cpu_spec_trains_its_trials_on_the_cpu_of_a_gpu_worker(make_study,
                                                                              settings):
    # given a worker told to train on CUDA, and a study whose base spec says "cpu"
    settings.FITBOARD_DEVICE = "cuda"
    study = make_study(n_trials=1, parallelism=1)
    assert IRIS.run.device == "cpu"

    # when the worker trains its trial
    (trial,) = run_all_trials(study)

    # then the trial succeeded, and its checkpoint says it trained on the CPU
    assert (trial.status, trial.error) == ("succeeded", "")
    stored = trial.checkpoints.get(tag="best")
    checkpoint = checkpoints.load(files.local_copy(stored.path, stored.sha256),
                                  sha256=stored.sha256)
    assert checkpoint.meta["device"] == "cpu"


def test_a_trial_records_system_metrics_like_a_training_run(make_study, settings):
    # given a worker that samples the machine every second
    settings.FITBOARD_SYSTEM_METRICS_INTERVAL = 1
    study = make_study(n_trials=1, parallelism=1)

    # when it trains a trial
    (trial,) = run_all_trials(study)

    # then the trial's metrics hold the machine's readings beside its training curves
    assert trial.status == "succeeded", trial.error
    keys = set(metric_store.read(trial.pk))
    assert {"sys/cpu_percent", "sys/ram_percent", "sys/ram_used_gb"} <= keys
    assert "val_acc" in keys


def test_a_plain_member_sees_no_cancel_on_another_users_study(owner_client, stranger,
                                                              stranger_client, project,
                                                              make_study):
    # given a running study of the owner's and a plain member of its project
    study = make_study()
    project.members.add(stranger, through_defaults={"role": "member"})

    # when each opens the study page
    mine = owner_client.get(reverse("study-detail", args=[study.pk])).content.decode()
    theirs = stranger_client.get(reverse("study-detail", args=[study.pk])).content.decode()

    # then only its creator is offered Cancel (the member's click was refused after the fact)
    assert 'id="cancel-form"' in mine
    assert 'id="cancel-form"' not in theirs and "Promote best trial" in theirs


def test_a_tie_between_trials_goes_to_the_first_to_reach_it(owner, project, source):
    # given a study whose trials 1 and 2 completed with the same value (trial 2 the newer row,
    # which the trials' newest-first order put first)
    spec = TuningSpec.from_dict({
        "base": IRIS.to_dict(), "algorithm": "random", "n_trials": 2,
        "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}}})
    study = Experiment.objects.create(project=project, name="study", spec=spec.to_dict(),
                                      created_by=owner, kind=Experiment.Kind.TUNE, parent=source)
    for number in (1, 2):
        Experiment.objects.create(
            project=project, name=f"trial {number}", spec=IRIS.to_dict(), created_by=owner,
            kind=Experiment.Kind.TRIAL, parent=study, status=Experiment.Status.SUCCEEDED,
            summary={"trial": {"number": number, "state": "complete", "value": 0.9917}})

    # when the best is asked for (Promote, the study's summary)
    best = tuning.best_trial(study)

    # then it is trial 1, the one the study page's "Best:" line names
    assert best is not None and tuning.trial_info(best)["number"] == 1
