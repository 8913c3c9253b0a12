"""The naming convention that stores a script's metrics under the names the diagnostics read,
whatever the library's spelling (Hugging Face Trainer, Lightning, Keras, W&B-style slashes)."""

from __future__ import annotations

import json

import mlflow
import pytest

from webapp.experiments import metric_store
from webapp.experiments.external import MAP_TAG, STORED_CHARS, conventional
from webapp.experiments.models import Experiment, MetricChunk
from webapp.tracking import ingest


@pytest.mark.parametrize(("logged", "stored"), [
    # Hugging Face Trainer (report_to="mlflow")
    ("loss", "train_loss"), ("eval_loss", "val_loss"), ("eval_accuracy", "val_acc"),
    ("learning_rate", "lr"),
    # Lightning's self.log(..., on_step=True, on_epoch=True) and its usual names
    ("train_loss_step", "train_loss"), ("train_loss_epoch", "train_loss"),
    ("val_acc_epoch", "val_acc"), ("valid_loss", "val_loss"),
    # Keras
    ("accuracy", "train_acc"), ("val_accuracy", "val_acc"),
    # slashes, dots, dashes, spaces and capitals
    ("train/loss", "train_loss"), ("eval/accuracy", "val_acc"), ("Validation Loss", "val_loss"),
    ("val-acc", "val_acc"), ("train.acc", "train_acc"), ("dev_acc", "val_acc"),
    # regression, Keras's spelled-out metrics included
    ("val_rmse", "val_rmse"), ("eval/mae", "val_mae"), ("val_mean_absolute_error", "val_mae"),
    ("val_root_mean_squared_error", "val_rmse"),
    # the split last, as TensorBoard's add_scalar("Loss/train") habit has it
    ("Loss/train", "train_loss"), ("Accuracy/val", "val_acc"),
    # torchmetrics' class names, timm's and torchvision's accuracies (in percent)
    ("val_MulticlassAccuracy", "val_acc"), ("train_BinaryAccuracy", "train_acc"),
    ("eval_top1", "val_acc"), ("val_acc1", "val_acc"),
    # a bare top1 or acc1 is what timm's validate() and torchvision's evaluate() return
    ("top1", "val_acc"), ("acc1", "val_acc"), ("Top1", "val_acc"),
    # a unit after the measure
    ("val_acc_percent", "val_acc"), ("train/accuracy_pct", "train_acc"),
    # Keras's MLflow callback's evaluation logs
    ("validation_accuracy", "val_acc"),
    # Lightning's LearningRateMonitor: per optimizer, per parameter group
    ("lr-Adam", "lr"), ("lr-AdamW/pg2", "lr"), ("lr-SGD-1", "lr"), ("lr-Adam/backbone", "lr"),
])
def test_a_librarys_names_map_to_the_diagnostics_names(logged, stored):
    assert conventional(logged) == stored


@pytest.mark.parametrize("logged", [
    "epoch", "step", "grad_norm", "test_loss", "test/accuracy", "train_rmse", "val_f1",
    "eval_runtime", "loss_scale_factor", "",
    # LearningRateMonitor's momentum and weight decay; "lr-" and a word that names no optimizer
    "lr-Adam-momentum", "lr-Adam/pg1-momentum", "lr-SGD-weight_decay", "lr-decay", "lr-warmup",
    # Trainer's timings and sums, f1
    "train_runtime", "train_samples_per_second", "total_flos", "eval_f1",
    "eval_samples_per_second",
    # ambiguous: mse beside a loss; torchmetrics' MeanSquaredError is RMSE with
    # squared=False; top5, r2; a unit alone
    "percent", "val_mse", "val_MeanSquaredError", "eval_top5", "r2", "val_r2",
    "val_MulticlassF1Score",
    # Lightning's per-batch validation value (on_step=True in validation_step): the evaluation
    # is its "val_loss_epoch"
    "val_loss_step", "val/acc_step", "Loss/val_step",
])
def test_other_names_are_stored_as_logged(logged):
    assert conventional(logged) is None


def test_a_lightning_style_run_is_stored_under_the_diagnostics_names_and_judged(tracking):
    # given a script logging Lightning's names: per-step and per-epoch training loss, and
    # validation loss and accuracy with slashes
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for epoch in range(6):
            for step in range(epoch * 10, epoch * 10 + 10):
                mlflow.log_metric("train_loss_step", 1 / (step + 1), step=step)
            mlflow.log_metrics({"train_loss_epoch": 1 / (epoch + 1), "val/loss": 1.5 / (epoch + 1),
                                "val/acc": epoch / 6}, step=epoch * 10 + 9)

    # then the first training loss took train_loss, the epoch one kept its name, and the run
    # has its validation curves and a verdict
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert set(metric_store.read(stored.pk)) == {"train_loss", "train_loss_epoch", "val_loss",
                                                 "val_acc"}
    assert stored.verdict_kind
    assert tracking.get_metric_history(run.info.run_id, "val/acc")[-1].value == 5 / 6


LONG = "m" * STORED_CHARS  # the longest name a metric is stored under


@pytest.mark.django_db
def test_a_metric_map_to_a_name_longer_than_a_stored_one_is_refused(owner, project):
    # (PostgreSQL refused the 65th character on insert: a 500 at the first point)
    with pytest.raises(ingest.IngestError, match=f"at most {STORED_CHARS} characters"):
        ingest.create_run(owner, project, "script", {MAP_TAG: json.dumps({"a": LONG + "m"})})


@pytest.mark.django_db
def test_a_taken_name_that_ext_would_lengthen_past_a_stored_one_is_refused(owner, project):
    # given a run whose map stores "a" under the longest name, which the script then logs too
    run = ingest.create_run(owner, project, "script", {MAP_TAG: json.dumps({"a": LONG})})
    ingest.log_to_run(run, [ingest.Point("a", 1.0, 0, 1.0)])

    # when it logs that name itself, which would go to "ext/" + the name
    with pytest.raises(ingest.IngestError, match="give it a shorter one"):
        ingest.log_to_run(run, [ingest.Point(LONG, 2.0, 0, 1.0)])

    # then nothing of it is stored, and no stored name is past the limit
    assert list(MetricChunk.objects.values_list("key", flat=True)) == [LONG]
