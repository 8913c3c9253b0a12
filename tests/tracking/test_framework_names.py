"""What popular frameworks log through MLflow, logged through the unmodified mlflow client with
their names, steps and order, and what Fitboard's diagnostics read of it: which logged name
each diagnostics name holds, how many evaluations the verdict counts, and the task.

The patterns are those of the frameworks' own MLflow code (mlflow 3.17's keras/callback.py and
pytorch/_lightning_autolog.py, transformers' MLflowCallback, Lightning's MLFlowLogger) and of
timm's and torchmetrics' metric names; a synthetic curve (falling losses, rising accuracy)
stands for the values."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from webapp.experiments import external, metric_store
from webapp.experiments.models import Experiment

EPOCHS = 6
STEPS = 10  # per epoch


def loss(step: int) -> float:
    return 2.3 * math.exp(-step / 20) + 0.1


def accuracy(step: int) -> float:
    return 0.1 + 0.85 * (1 - math.exp(-step / 20))


def trainer_eval_per_epoch() -> None:
    """transformers' Trainer(report_to="mlflow", eval_strategy="epoch", logging_steps=5) with
    compute_metrics returning accuracy and f1: params from TrainingArguments and the model's
    config (id2label as a dict's text), "loss" / "grad_norm" / "learning_rate" / "epoch" every 5
    steps, eval_* at each epoch's last step, the end-of-training summary."""
    mlflow.log_params({"learning_rate": "5e-05", "num_train_epochs": str(EPOCHS),
                       "id2label": str({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})})
    for step in range(5, EPOCHS * STEPS + 1, 5):
        mlflow.log_metrics({"loss": loss(step), "grad_norm": 1.5, "learning_rate": 5e-5,
                            "epoch": step / STEPS}, step=step)
        if step % STEPS == 0:
            mlflow.log_metrics({"eval_loss": loss(step) + 0.1, "eval_accuracy": accuracy(step),
                                "eval_f1": accuracy(step) - 0.02, "eval_runtime": 0.41,
                                "eval_samples_per_second": 78.0,
                                "eval_steps_per_second": 2.4, "epoch": step / STEPS},
                               step=step)
    mlflow.log_metrics({"train_runtime": 12.5, "train_samples_per_second": 40.0,
                        "train_steps_per_second": 5.0, "total_flos": 1.2e12,
                        "train_loss": 0.9, "epoch": float(EPOCHS)}, step=EPOCHS * STEPS)


def lightning_logger() -> None:
    """Lightning's MLFlowLogger, self.log("train_loss", on_step=True, on_epoch=True) and
    self.log_dict({"val_loss", "val_acc"}): train_loss_step at every global step (0-based),
    validation and train_loss_epoch at the epoch's last step, "epoch" with every log."""
    mlflow.log_params({"lr": "0.001", "num_classes": "10"})
    for epoch in range(EPOCHS):
        for step in range(epoch * STEPS, (epoch + 1) * STEPS):
            mlflow.log_metrics({"train_loss_step": loss(step), "epoch": epoch}, step=step)
        last = (epoch + 1) * STEPS - 1
        mlflow.log_metrics({"val_loss": loss(last) + 0.1, "val_acc": accuracy(last),
                            "epoch": epoch}, step=last)
        mlflow.log_metrics({"train_loss_epoch": loss(last), "epoch": epoch}, step=last)


def lightning_autolog() -> None:
    """mlflow.pytorch.autolog() on Lightning (log_every_n_epoch=1): the epoch's callback
    metrics at step = epoch."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"train_loss": loss(step), "val_loss": loss(step) + 0.1,
                            "val_acc": accuracy(step)}, step=epoch)


def lightning_autolog_every_step() -> None:
    """mlflow.pytorch.autolog(log_every_n_step=1) on Lightning: train_loss_step at each global
    step (from 1), and at each epoch's end the epoch's metrics (train_loss, train_loss_epoch,
    val_loss, val_acc) at step = epoch: two step axes in one run."""
    for epoch in range(EPOCHS):
        for step in range(epoch * STEPS + 1, (epoch + 1) * STEPS + 1):
            mlflow.log_metrics({"train_loss_step": loss(step) + 0.05}, step=step)
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"train_loss": loss(step), "train_loss_epoch": loss(step),
                            "val_loss": loss(step) + 0.1, "val_acc": accuracy(step)},
                           step=epoch)


def keras_callback() -> None:
    """mlflow.keras.MlflowCallback / autolog with validation_data: the validation logs at the
    end of each evaluation as "validation_*" without a step (step 0), then the epoch's logs at
    step = epoch (Keras 3 puts the learning rate in them)."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        validation = {"loss": loss(step) + 0.1, "accuracy": accuracy(step)}
        mlflow.log_metrics({f"validation_{k}": v for k, v in validation.items()})
        mlflow.log_metrics({"loss": loss(step), "accuracy": accuracy(step) + 0.02,
                            "val_loss": validation["loss"], "val_accuracy": validation["accuracy"],
                            "learning_rate": 1e-3}, step=epoch)


def torchmetrics_collection() -> None:
    """A MetricCollection([MulticlassAccuracy, MulticlassF1Score], prefix="val_") logged with
    the loss each epoch: torchmetrics names metrics by class."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"train_loss": loss(step), "val_loss": loss(step) + 0.1,
                            "val_MulticlassAccuracy": accuracy(step),
                            "val_MulticlassF1Score": accuracy(step) - 0.03,
                            "train_MulticlassAccuracy": accuracy(step) + 0.01}, step=epoch)


def timm_summary() -> None:
    """timm's train.py summary row each epoch: accuracies in percent."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"train_loss": loss(step), "eval_loss": loss(step) + 0.1,
                            "eval_top1": 100 * accuracy(step),
                            "eval_top5": min(100.0, 100 * accuracy(step) + 8), "lr": 0.01},
                           step=epoch)


def regression_script() -> None:
    """A regression loop logging its loss, RMSE, MSE and R²."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"train_loss": loss(step), "val_loss": loss(step) + 0.1,
                            "val_rmse": math.sqrt(loss(step) + 0.1),
                            "val_mse": loss(step) + 0.1, "r2": 1 - loss(step) / 2.4},
                           step=epoch)


def tensorboard_style() -> None:
    """Names ported from SummaryWriter.add_scalar("Loss/train", ...): the measure first."""
    for epoch in range(EPOCHS):
        step = (epoch + 1) * STEPS
        mlflow.log_metrics({"Loss/train": loss(step), "Loss/val": loss(step) + 0.1,
                            "Accuracy/val": accuracy(step)}, step=epoch)


# pattern: (script, {logged: stored} it must give, task kind, classes the verdict reads)
PATTERNS: dict[str, tuple[Callable[[], None], dict[str, str], str, int | None]] = {
    "trainer_eval_per_epoch": (trainer_eval_per_epoch, {
        "loss": "train_loss", "eval_loss": "val_loss", "eval_accuracy": "val_acc",
        "learning_rate": "lr", "eval_f1": "eval_f1", "eval_runtime": "eval_runtime",
        "eval_samples_per_second": "eval_samples_per_second", "grad_norm": "grad_norm",
        "epoch": "epoch", "train_runtime": "train_runtime", "total_flos": "total_flos",
        "train_samples_per_second": "train_samples_per_second",
        "train_loss": "ext/train_loss"}, "classification", 3),
    "lightning_logger": (lightning_logger, {
        "train_loss_step": "train_loss", "train_loss_epoch": "train_loss_epoch",
        "val_loss": "val_loss", "val_acc": "val_acc", "epoch": "epoch"}, "classification", 10),
    "lightning_autolog": (lightning_autolog, {
        "train_loss": "train_loss", "val_loss": "val_loss", "val_acc": "val_acc"},
        "classification", None),
    "lightning_autolog_every_step": (lightning_autolog_every_step, {
        "train_loss_step": "train_loss", "train_loss": "ext/train_loss",
        "train_loss_epoch": "train_loss_epoch", "val_loss": "val_loss", "val_acc": "val_acc"},
        "classification", None),
    "keras_callback": (keras_callback, {
        "loss": "train_loss", "accuracy": "train_acc", "val_loss": "val_loss",
        "val_accuracy": "val_acc", "learning_rate": "lr",
        "validation_loss": "validation_loss", "validation_accuracy": "validation_accuracy"},
        "classification", None),
    "torchmetrics_collection": (torchmetrics_collection, {
        "train_loss": "train_loss", "val_loss": "val_loss", "val_MulticlassAccuracy": "val_acc",
        "train_MulticlassAccuracy": "train_acc",
        "val_MulticlassF1Score": "val_MulticlassF1Score"}, "classification", None),
    "timm_summary": (timm_summary, {
        "train_loss": "train_loss", "eval_loss": "val_loss", "eval_top1": "val_acc",
        "eval_top5": "eval_top5", "lr": "lr"}, "classification", None),
    "regression_script": (regression_script, {
        "train_loss": "train_loss", "val_loss": "val_loss", "val_rmse": "val_rmse",
        "val_mse": "val_mse", "r2": "r2"}, "regression", None),
    "tensorboard_style": (tensorboard_style, {
        "Loss/train": "train_loss", "Loss/val": "val_loss", "Accuracy/val": "val_acc"},
        "classification", None),
}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_frameworks_names_are_read_as_they_mean(tracking: MlflowClient, pattern: str) -> None:
    script, expected, kind, classes = PATTERNS[pattern]

    # given a script logging what the framework logs, through the mlflow client
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        script()

    # then each name is stored where it means, and no other name took a diagnostics name
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    keys: dict[str, Any] = stored.progress["keys"]
    assert {name: keys[name] for name in expected} == expected
    held = {target for target in keys.values() if target in external.EPOCH_KEYS}
    assert held == {target for target in expected.values() if target in external.EPOCH_KEYS}
    # and the verdict counts one evaluation per epoch, on the task the run is
    evaluations = external.evaluation_history(stored.pk, keys)
    assert evaluations.validated and len(evaluations.history["val_loss"]) == EPOCHS
    task = external.task_of(stored.spec, evaluations.history, evaluations.first_loss)
    assert (task.kind, task.num_classes) == (kind, classes)
    assert all(0.0 <= acc <= 1.0 for acc in evaluations.history.get("val_acc", []))
    assert stored.verdict_kind == "healthy", stored.verdict["headline"]
    # and mlflow reads each metric back under the name it logged
    for name in expected:
        assert tracking.get_metric_history(run.info.run_id, name)


def test_training_logged_per_step_beside_evaluations_per_epoch_is_read_per_epoch(
        tracking: MlflowClient) -> None:
    # given mlflow.pytorch.autolog(log_every_n_step=1): the training loss per global step,
    # the evaluations (and the epoch's training loss) at step = epoch
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        lightning_autolog_every_step()

    # then each evaluation's training loss is its epoch's, not the mean of global steps up to
    # the epoch's number (epoch 3 read steps 1-3 of the first epoch)
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    history = external.evaluation_history(stored.pk, stored.progress["keys"]).history
    assert history["train_loss"] == pytest.approx(
        [loss((epoch + 1) * STEPS) for epoch in range(EPOCHS)])


def test_a_script_logging_without_steps_keeps_every_point_in_the_order_it_came(
        tracking: MlflowClient) -> None:
    # given a quick script that never passes a step (mlflow sends step 0 for each call): a
    # training loss per batch, a validation loss and accuracy after each epoch (before, each
    # metric kept its last point only, in Fitboard and in mlflow's own reader)
    mlflow.set_experiment("vision")
    logged = []
    with mlflow.start_run() as run:
        for epoch in range(EPOCHS):
            for step in range(epoch * STEPS, (epoch + 1) * STEPS):
                mlflow.log_metric("loss", loss(step))
                logged.append(loss(step))
            last = (epoch + 1) * STEPS - 1
            mlflow.log_metrics({"val_loss": loss(last) + 0.1, "val_acc": accuracy(last)})

    # then mlflow reads back every value, in order, each at the step it was sent with (0), as
    # MLflow's own server answers, and so does the run's latest value
    history = tracking.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in history] == logged
    assert {m.step for m in history} == {0}
    assert tracking.get_run(run.info.run_id).data.metrics["loss"] == logged[-1]
    # while the run's curve has them one after another, on the axis the evaluations share
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    curve = metric_store.read(stored.pk, ["train_loss"])["train_loss"]
    assert curve.values.tolist() == pytest.approx(logged)
    assert len(set(curve.steps.tolist())) == len(logged)
    # and each evaluation's training loss is the mean of its epoch's batches
    evaluations = external.evaluation_history(stored.pk, stored.progress["keys"])
    assert evaluations.history["train_loss"] == pytest.approx(
        [sum(logged[e * STEPS:(e + 1) * STEPS]) / STEPS for e in range(EPOCHS)])
    assert stored.verdict_kind == "healthy"


def test_system_metrics_keep_their_own_steps_in_a_run_logged_without_steps(
        tracking: MlflowClient) -> None:
    # given a run logged without steps, and system metrics counted from 0 as mlflow's monitor
    # counts its samples
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for step in range(5):
            mlflow.log_metric("loss", loss(step))
        for sample in range(3):
            mlflow.log_metric("system/cpu_utilization_percentage", 50.0 + sample, step=sample)

    # then the samples keep their steps
    history = tracking.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert [(m.step, m.value) for m in history] == [(0, 50.0), (1, 51.0), (2, 52.0)]


def test_a_first_point_at_step_0_arriving_after_later_steps_keeps_its_step(
        tracking: MlflowClient) -> None:
    # given a run whose step-0 point arrives after its later steps, as mlflow's asynchronous
    # logging may send them (its batches go out from several threads at once)
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for step in (1, 2, 3):
            mlflow.log_metric("loss", loss(step), step=step)
        mlflow.log_metric("loss", loss(0), step=0)

    # then every point keeps the step it was logged at
    history = tracking.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, loss(s)) for s in range(4)]



def test_evaluations_logged_without_steps_are_read_at_the_training_steps_of_their_times(
        tracking: MlflowClient) -> None:
    # given Keras's autolog with log_every_n_steps=1: the loss at each step from 1, each
    # evaluation without a step (step 0), sent asynchronously: each evaluation arrives after a
    # few of the next epoch's steps, so the first comes when no other metric has a step 0
    mlflow.set_experiment("vision")
    run_id = tracking.create_run(mlflow.get_experiment_by_name("vision").experiment_id
                                 ).info.run_id
    late = 3  # steps of the next epoch that arrive before an evaluation

    def at(step: int) -> int:  # the script's clock (ms) at a step; an evaluation half a step on
        return 1_700_000_000_000 + 1000 * step

    def send(steps: range) -> None:
        tracking.log_batch(run_id, [Metric("loss", loss(step), at(step), step) for step in steps])

    def evaluate(step: int) -> None:
        tracking.log_batch(run_id, [Metric("validation_loss", loss(step) + 0.1, at(step) + 500,
                                           0)])

    for epoch in range(EPOCHS):
        first = epoch * STEPS + 1
        send(range(first, first + late))
        if epoch:
            evaluate(epoch * STEPS)
        send(range(first + late, first + STEPS))
    evaluate(EPOCHS * STEPS)
    tracking.set_terminated(run_id)

    # then each evaluation is read at its epoch's last training step: the training loss at
    # each is the mean of its epoch's steps, and the first evaluation is not lost before them
    stored = Experiment.objects.get(pk=int(run_id))
    evaluations = external.evaluation_history(stored.pk, stored.progress["keys"],
                                              external.unstepped(stored.progress))
    assert evaluations.history["val_loss"] == pytest.approx(
        [loss((epoch + 1) * STEPS) + 0.1 for epoch in range(EPOCHS)])
    assert evaluations.history["train_loss"] == pytest.approx(
        [sum(loss(step) for step in range(epoch * STEPS + 1, (epoch + 1) * STEPS + 1)) / STEPS
         for epoch in range(EPOCHS)])
    assert stored.verdict_kind == "healthy", stored.verdict["headline"]


def test_points_of_step_0_sent_again_are_not_new_points(tracking: MlflowClient) -> None:
    # given a run that logged an epoch at step 0 and evaluations without steps, then had its
    # model logged, which sends every point of step 0 again (as MLflow's log_model does)
    mlflow.set_experiment("vision")
    run_id = tracking.create_run(mlflow.get_experiment_by_name("vision").experiment_id
                                 ).info.run_id
    logged = [Metric("loss", loss(0), 1_000, 0), Metric("loss", loss(10), 2_000, 1)] + [
        Metric("validation_loss", loss(10 * epoch) + 0.1, 1_500 + 1_000 * epoch, 0)
        for epoch in range(2)]
    tracking.log_batch(run_id, logged)
    again = [metric for metric in logged if metric.step == 0]
    tracking.log_batch(run_id, again)

    # when a new point logged without a step carries a value logged before
    tracking.log_batch(run_id, [Metric("validation_loss", loss(0) + 0.1, 3_500, 0)])

    # then the points sent again were not stored again, and the new one was
    stored = Experiment.objects.get(pk=int(run_id))
    curves = metric_store.read(stored.pk)
    assert curves["train_loss"].values.tolist() == [loss(0), loss(10)]
    assert curves["val_loss"].values.tolist() == pytest.approx(
        [loss(0) + 0.1, loss(10) + 0.1, loss(0) + 0.1])
    assert len(tracking.get_metric_history(run_id, "validation_loss")) == 3
