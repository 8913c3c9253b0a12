"""The verdict of a run logged from a script: its training metrics averaged between evaluations,
and its task read from its own first loss when the script names neither its classes nor its
units (the curves are real runs from ``tests/training/curves/stress.json``)."""

from __future__ import annotations

import json
import math
from typing import Any

import mlflow
import numpy as np
import pytest
from django.test import Client
from mlflow.exceptions import MlflowException

from tests.training.curves import stress
from webapp.experiments import external
from webapp.experiments.models import Experiment
from webapp.tracking import ingest

CURVES = {item["name"]: item for item in stress.load()}



def log_run(token: str, run: Experiment, item: dict[str, Any]) -> None:
    """Log a stored curve as a script does: its first step's loss at step 0, then at the end
    of each epoch the epoch's training loss, validation loss and (classification) accuracy."""
    history = item["history"]
    batches = [[{"key": "loss", "value": item["start"], "timestamp": 1, "step": 0}]]
    for epoch, loss in enumerate(history["train_loss"], start=1):
        point = {"loss": loss, "eval_loss": history["val_loss"][epoch - 1]}
        if "val_acc" in history:
            point["eval_accuracy"] = history["val_acc"][epoch - 1]
        batches.append([{"key": key, "value": value, "timestamp": 1, "step": epoch * 100}
                        for key, value in point.items()])
    for metrics in batches:
        body = json.dumps({"run_id": str(run.pk), "metrics": metrics})
        answer = Client().post("/api/2.0/mlflow/runs/log-batch", body,
                               content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
        assert answer.status_code == 200


def test_training_points_between_evaluations_are_averaged() -> None:
    # given a loss logged at every step, and evaluations at steps 2 and 4 and 6
    steps, values = np.array([1, 2, 3, 4]), np.array([4.0, 2.0, 1.0, 3.0])

    # when each evaluation gets its training loss
    means = external.interval_means(steps, values, np.array([2, 4, 6]))

    # then it is the mean since the evaluation before, and the last value where none came
    assert means == [3.0, 2.0, 3.0]


def test_an_evaluation_before_the_first_training_point_has_none() -> None:
    means = external.interval_means(np.array([5]), np.array([1.0]), np.array([2, 5]))

    assert math.isnan(means[0]) and means[1] == 1.0


@pytest.mark.parametrize(("spec", "classes"), [
    ({"tags": {"fitboard.num_classes": "10"}}, 10),  # told by a tag
    ({"tags": {"fitboard.num_classes": "10"}, "params": {"num_labels": "3"}}, 10),  # tag first
    ({"params": {"num_labels": "3"}}, 3),  # Hugging Face's param
    ({"params": {"num_classes": "7"}}, 7),  # timm's, torchmetrics', a Lightning module's
    ({"params": {"model.num_classes": "7"}}, 7),  # a nested config, flattened
    ({"params": {"hparams/n_classes": "4"}}, 4),
    # what Trainer really logs: the model config's label map, as text or flattened
    ({"params": {"id2label": "{0: 'neg', 1: 'neutral', 2: 'pos'}"}}, 3),
    ({"params": {"id2label.0": "neg", "id2label.1": "pos", "label2id.neg": "0",
                 "label2id.pos": "1"}}, 2),
    ({"params": {"num_classes": "10", "num_labels": "5"}}, 100),  # params disagree: not told
    ({"params": {"id2label": "{0: 'LABEL_0'}"}}, 100),  # one label: Trainer's regression
    ({}, 100),  # read from the untrained network's first loss, ln 100
])
def test_a_classification_runs_classes_are_told_or_read_from_its_first_loss(
        spec: dict[str, Any], classes: int) -> None:
    history = {"train_loss": [2.0, 1.0], "val_loss": [2.1, 1.2], "val_acc": [0.3, 0.6]}

    task = external.task_of(spec, history, first_loss=math.log(100))

    assert task.kind == "classification" and task.num_classes == classes


def test_without_its_untrained_loss_a_runs_chance_level_is_unknown_not_guessed() -> None:
    # given a run whose first training point is an epoch's mean loss, already low
    history = {"train_loss": [0.6, 0.4, 0.3], "val_loss": [0.5, 0.45, 0.4], "val_acc": [0.8] * 3}

    # when its task is read without that point being an untrained network's
    task = external.task_of({}, history)

    # then no number of classes is guessed (it read as 2 before): the start the first epochs
    # tell, half an epoch before the first at its pace to the second, is a scale
    assert task.num_classes is None and not task.baseline_known
    assert task.baseline_loss == pytest.approx(0.6 * math.sqrt(0.6 / 0.4))


@pytest.mark.parametrize(("steps", "evals", "untrained"), [
    ([0, 1, 2, 3], [3], True),  # a plain loop logging every step from step 0, evaluating later
    ([1, 2, 3, 4], [2, 4], True),  # Trainer with logging_steps=1
    ([500, 1000], [1000], False),  # Trainer's default logging_steps=500: a mean of 500 steps
    ([49, 99], [99], False),  # Lightning's default: one batch's loss after 49 steps
    ([0, 1, 2], [0, 1, 2], False),  # Keras: one training point per evaluation, epochs' means
    ([0, 1, 2], [], False),  # no evaluation: an epoch's mean and a step's cannot be told apart
])
def test_a_first_training_point_is_the_untrained_networks_loss_only_when_logged_per_step(
        steps: list[int], evals: list[int], untrained: bool) -> None:
    validated = bool(evals)
    assert external.untrained_start(np.array(steps), np.array(evals), validated) is untrained


def test_a_regression_in_its_own_units_is_measured_against_its_first_loss() -> None:
    history = {"train_loss": [27_000.0, 3_000.0], "val_loss": [24_000.0, 2_900.0]}

    task = external.task_of({}, history, first_loss=25_000.0)

    assert task.kind == "regression" and task.baseline_loss == 25_000.0


@pytest.mark.parametrize(("name", "before"), [
    ("cosine_digits", "overfitting"),  # 10 classes read as 2
    ("hundred_classes", "diverging"),  # 100 classes: a first epoch "4× the chance of 2"
    ("raw_units_diabetes", "diverging"),  # MSE in the thousands "27,000× the chance loss"
])
def test_a_scripts_run_without_tags_gets_the_experts_call(
        token: str, run: Experiment, name: str, before: str) -> None:
    # given a real run logged by a script that names neither its classes nor its units
    # (judged `before` when 2 classes or standardised targets were assumed)
    item = CURVES[name]
    log_run(token, run, item)

    # when it ends
    verdict = external.final_verdict(run)

    # then its verdict is the expert's call
    assert verdict["kind"] in {item["label"], *item["also"]} and verdict["kind"] != before, \
        verdict["headline"]


def log_per_epoch(item: dict[str, Any], params: dict[str, Any]) -> Experiment:
    """Log a stored curve as Keras's MLflow callback does: once per epoch, at step = epoch,
    Keras's names, after the params."""
    names = {"train_loss": "loss", "val_loss": "val_loss", "train_acc": "accuracy",
             "val_acc": "val_accuracy"}
    history = item["history"]
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        for epoch in range(len(history["train_loss"])):
            mlflow.log_metrics({names[key]: values[epoch] for key, values in history.items()},
                               step=epoch)
    return Experiment.objects.get(pk=int(run.info.run_id))


TEN_LABELS = str({i: f"LABEL_{i}" for i in range(10)})  # Trainer's id2label param, as logged


@pytest.mark.parametrize("params", [{"num_classes": 10}, {"id2label": TEN_LABELS}],
                         ids=["num_classes", "id2label"])
@pytest.mark.parametrize("name", ["tiny_validation_digits", "plain_sgd_lr_0_6"])
def test_a_per_epoch_run_that_says_its_classes_in_a_param_is_judged_against_chance(
        tracking: Any, name: str, params: dict[str, Any]) -> None:
    # given a real 10-class run logged once per epoch (its first loss an epoch's mean, not
    # chance), whose script says its classes in a param; read as 2 classes (before), or from
    # its first epoch's loss (unknown), both runs are called overfitting
    item = CURVES[name]

    # when it is logged and ends
    run = log_per_epoch(item, params)

    # then it is judged against ten classes, and gets the expert's call
    evaluations = external.evaluation_history(run.pk)
    assert external.task_of(run.spec, evaluations.history).num_classes == 10
    assert run.verdict["kind"] in {item["label"], *item["also"]}, run.verdict["headline"]


def test_a_per_epoch_run_that_does_not_say_its_classes_is_told_its_chance_level_is_unknown(
        tracking: Any, owner: Any) -> None:
    # given a real run logged once per epoch with nothing that says its classes
    run = log_per_epoch(CURVES["cosine_digits"], {"lr": 0.05})

    # then its verdict measures no loss against a guessed chance, and its page says why
    task = external.task_of(run.spec, external.evaluation_history(run.pk).history)
    assert task.num_classes is None and not task.baseline_known
    client = Client()
    client.force_login(owner)
    page = client.get(f"/experiments/{run.pk}/diagnostics/").content.decode()
    assert "The chance level is unknown" in page and "fitboard.num_classes" in page
    assert run.verdict["kind"] == "healthy"


@pytest.mark.parametrize(("tags", "error"), [
    ({"fitboard.num_classes": "ten"}, "whole number of classes"),
    ({"fitboard.num_classes": "1"}, "whole number of classes"),
    ({"fitboard.task": "classifier"}, "must be one of classification, regression"),
])
def test_a_task_tag_the_verdict_could_not_read_is_refused_with_the_reason(
        tracking: Any, tags: dict[str, str], error: str) -> None:
    # (a task tag of "classifier" made every live verdict of the run fail with a 500)
    mlflow.set_experiment("vision")
    with mlflow.start_run(), pytest.raises(MlflowException, match=error):
        mlflow.set_tags(tags)


def test_a_task_tag_is_read_in_any_case(tracking: Any) -> None:
    mlflow.set_experiment("vision")
    with mlflow.start_run(tags={"fitboard.task": "Classification"}) as run:
        for step in range(4):
            mlflow.log_metrics({"loss": 1 / (step + 1), "val_loss": 1 / (step + 1)}, step=step)
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert external.task_of(stored.spec, {}).kind == "classification"


def test_a_run_tagged_with_unreadable_classes_before_they_were_checked_is_still_judged() -> None:
    # (a tag set before check_task_tags refused it: the verdict raised on int("ten"))
    history = {"train_loss": [2.0, 1.0, 0.8], "val_loss": [2.1, 1.2, 0.9], "val_acc": [0.3] * 3}

    task = external.task_of({"tags": {"fitboard.num_classes": "ten"}}, history, math.log(10))

    assert task.num_classes == 10  # read from the untrained loss instead


def test_evaluations_numbered_by_epoch_beside_training_by_step_are_placed_by_their_times(
        tracking: Any) -> None:
    # given a script logging its loss every 50 steps at the global step, and its validation
    # loss at step = epoch, 500 steps an epoch (before: every evaluation came before the first
    # training point, and the end of the run was a 500)
    mlflow.set_experiment("vision")
    with mlflow.start_run() as script:
        for epoch in range(1, 6):
            for step in range((epoch - 1) * 500 + 50, epoch * 500 + 1, 50):
                mlflow.log_metric("loss", 2.0 / step ** 0.3, step=step)
            mlflow.log_metric("val_loss", 2.0 / (epoch * 500) ** 0.3 + 0.05, step=epoch)

    # then the run ended, with one evaluation per epoch, each beside its epoch's training loss
    run = Experiment.objects.get(pk=int(script.info.run_id))
    evaluations = external.evaluation_history(run.pk, run.progress["keys"],
                                              external.unstepped(run.progress))
    assert run.status == "succeeded" and run.verdict_kind == "healthy"
    assert len(evaluations.history["val_loss"]) == 5
    assert evaluations.history["train_loss"][-1] < evaluations.history["train_loss"][0] / 1.5


def test_a_run_whose_only_evaluation_came_before_training_says_why_it_has_no_verdict(
        run: Experiment) -> None:
    # given a run that evaluated at step 5 and then trained at steps 10 and 11
    ingest.log_to_run(run, [ingest.Point("val_loss", 2.0, 5, 1.0),
                            ingest.Point("loss", 1.9, 10, 2.0), ingest.Point("loss", 1.8, 11, 3.0)])

    # when it ends (before: the verdict raised on no evaluations, a 500)
    ingest.end_run(run, Experiment.Status.SUCCEEDED)

    # then it has no verdict, and its page says why
    run.refresh_from_db()
    assert run.status == "succeeded" and not run.verdict
    assert "no evaluation of this run came after its first training point" in (
        external.page_context(run)["no_verdict_reason"])


def test_a_run_whose_loss_goes_below_zero_says_why_it_has_no_verdict(run: Experiment) -> None:
    # given a Gaussian negative log-likelihood below zero, its validation rising from epoch 11
    # while training falls on (before: "healthy, training and validation loss fell together":
    # every share of a negative loss read as no change)
    train = [-1 - 2 * (1 - math.exp(-epoch / 5)) for epoch in range(30)]
    val = [v + 0.1 if epoch <= 10 else -2.6 + 0.05 * (epoch - 10)
           for epoch, v in enumerate(train)]
    ingest.log_to_run(run, [ingest.Point(key, value, epoch, 1.0 + epoch)
                            for epoch in range(30)
                            for key, value in (("loss", train[epoch]), ("val_loss", val[epoch]))])

    # when it ends
    ingest.end_run(run, Experiment.Status.SUCCEEDED)

    # then it has no verdict, and its page says why
    run.refresh_from_db()
    assert not run.verdict
    assert "its loss goes below zero" in external.page_context(run)["no_verdict_reason"]


def test_an_evaluation_that_overflowed_once_is_not_a_divergence(run: Experiment) -> None:
    # given a run whose validation loss is NaN at epoch 6 only (an fp16 evaluation that
    # overflowed), finite before and after (before: "diverging: the loss became NaN or
    # infinite in epoch 6", of a run that trained on to 0.3)
    ingest.log_to_run(run, [ingest.Point(key, value, epoch, 1.0 + epoch)
                            for epoch in range(1, 16)
                            for key, value in (
                                ("loss", 0.2 + 2 * math.exp(-epoch / 4)),
                                ("val_loss", math.nan if epoch == 6
                                 else 0.3 + 2 * math.exp(-epoch / 4)))])

    # when it ends
    ingest.end_run(run, Experiment.Status.SUCCEEDED)

    # then it is judged on its other evaluations
    run.refresh_from_db()
    assert run.verdict_kind == "healthy", run.verdict["headline"]


def test_a_param_of_infinite_classes_is_not_read_as_a_count(owner: Any, run: Experiment) -> None:
    # given a run whose num_classes param is "inf" (before: OverflowError in its page, its live
    # verdicts and its end, each a 500)
    ingest.log_to_run(run, [ingest.Point(key, value / epoch, epoch, 1.0 + epoch)
                            for epoch in range(1, 6)
                            for key, value in (("loss", 1.0), ("val_loss", 1.1))],
                      params={"num_classes": "inf"})

    # when it ends and its page is read
    ingest.end_run(run, Experiment.Status.SUCCEEDED)
    client = Client()
    client.force_login(owner)
    page = client.get(f"/experiments/{run.pk}/")

    # then the page is there, and the run judged as one that does not say its classes
    run.refresh_from_db()
    assert page.status_code == 200 and run.verdict_kind
    assert external.declared_classes({}, run.spec["params"]) is None
