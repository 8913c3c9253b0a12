"""PyTorch Lightning logs into Fitboard unchanged: a small classifier of sklearn's digits trained
for a few epochs by a real ``lightning.Trainer``, through Lightning's ``MLFlowLogger`` (with its
``LearningRateMonitor``) and through ``mlflow.pytorch.autolog()``, pointed at a live Fitboard."""

from __future__ import annotations

from typing import Any

import lightning
import mlflow
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import MLFlowLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional

from webapp.experiments import external, metric_store
from webapp.experiments.models import Experiment

EPOCHS = 4
BATCH = 64


class DigitsClassifier(lightning.LightningModule):
    """A small MLP on the 8x8 digits, logging as Lightning's documentation does."""

    def __init__(self, num_classes: int = 10, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        loss = functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def digits_loaders() -> tuple[Any, Any]:
    """sklearn's bundled digits (1,797 images), four fifths to train, a fifth to validate."""
    images, labels = load_digits(return_X_y=True)
    data = torch.utils.data.TensorDataset(torch.tensor(images / 16.0, dtype=torch.float32),
                                          torch.tensor(labels))
    train, val = torch.utils.data.random_split(data, [0.8, 0.2],
                                               generator=torch.Generator().manual_seed(0))
    return (torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True),
            torch.utils.data.DataLoader(val, batch_size=BATCH))


def trainer(tmp_path: Any, **arguments: Any) -> lightning.Trainer:
    """A quiet CPU Trainer for EPOCHS epochs, saving nothing of its own."""
    return lightning.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", devices=1, default_root_dir=tmp_path,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **arguments)


def mlflow_logger(live_server: Any, token: str, monkeypatch: Any, run_name: str
                  ) -> MLFlowLogger:
    """Lightning's MLFlowLogger pointed at Fitboard, the token in the environment (as mlflow
    reads it), the seeds fixed."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    lightning.seed_everything(0, verbose=False)
    return MLFlowLogger(experiment_name="vision", run_name=run_name,
                        tracking_uri=live_server.url)


def test_a_lightning_script_with_mlflow_logger_is_read_as_it_means(live_server, token, project,
                                                                   monkeypatch, tmp_path):
    # given a Lightning script logging through MLFlowLogger pointed at Fitboard (the token in
    # the environment, as mlflow reads it), with a LearningRateMonitor
    logger = mlflow_logger(live_server, token, monkeypatch, "digits-mlp")
    train, val = digits_loaders()

    # when it trains
    trainer(tmp_path, logger=logger, callbacks=[LearningRateMonitor()],
            log_every_n_steps=5).fit(DigitsClassifier(num_classes=10), train, val)

    # then its run is in the project, ended, with the per-step training loss, the validation
    # curves and the optimizer's learning rate under the diagnostics' names
    run = Experiment.objects.get(project=project, kind="external")
    keys = run.progress["keys"]
    assert run.name == "digits-mlp" and run.status == "succeeded"
    assert {name: keys[name] for name in ("train_loss_step", "train_loss_epoch", "val_loss",
                                          "val_acc", "lr-Adam", "epoch")} == {
        "train_loss_step": "train_loss", "train_loss_epoch": "train_loss_epoch",
        "val_loss": "val_loss", "val_acc": "val_acc", "lr-Adam": "lr", "epoch": "epoch"}
    assert metric_store.read(run.pk, ["lr"])["lr"].values.tolist()[0] == 1e-2
    # and a verdict from one evaluation per epoch, on ten classes (save_hyperparameters)
    evaluations = external.evaluation_history(run.pk, keys, external.unstepped(run.progress))
    assert len(evaluations.history["val_loss"]) == EPOCHS
    task = external.task_of(run.spec, evaluations.history, evaluations.first_loss)
    assert (task.kind, task.num_classes) == ("classification", 10)
    assert run.verdict_kind and run.verdict_kind != "undetermined", run.verdict["headline"]


class BatchValidationClassifier(DigitsClassifier):
    """Validation logged per batch as well as per epoch (``on_step=True, on_epoch=True``)."""

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", functional.cross_entropy(logits, y), on_step=True, on_epoch=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), on_step=True,
                 on_epoch=True)


def test_validation_logged_per_batch_too_is_judged_per_evaluation(live_server, token, project,
                                                                  monkeypatch, tmp_path):
    # given a Lightning script whose validation logs each batch ("val_loss_step", at the
    # validation loop's own batch count, first to come) and each evaluation ("val_loss_epoch")
    logger = mlflow_logger(live_server, token, monkeypatch, "batch-validation")
    train, val = digits_loaders()

    # when it trains
    trainer(tmp_path, logger=logger, log_every_n_steps=5).fit(
        BatchValidationClassifier(num_classes=10), train, val)

    # then the evaluations are the epochs' validation curves, one point an epoch (before: each
    # of the 24 validation batches was an "evaluation", and the verdict read the training loss
    # of the first epochs only: "learning slowly, from 2.2 to 1.33", of a run that reached 0.2)
    run = Experiment.objects.get(project=project, kind="external")
    keys = run.progress["keys"]
    assert (keys["val_loss_epoch"], keys["val_acc_epoch"]) == ("val_loss", "val_acc")
    evaluations = external.evaluation_history(run.pk, keys, external.unstepped(run.progress))
    assert len(evaluations.history["val_loss"]) == EPOCHS
    assert evaluations.history["train_loss"][-1] < 0.5
    assert run.verdict_kind == "healthy", run.verdict["headline"]


def test_mlflow_pytorch_autolog_on_lightning_is_read_as_it_means(tracking, project, tmp_path):
    # given mlflow.pytorch.autolog() on a Lightning script with no logger of its own (its
    # model logged at the end, which sends the first epoch's points, at step 0, again)
    mlflow.set_experiment("vision")
    mlflow.pytorch.autolog()
    lightning.seed_everything(0, verbose=False)
    train, val = digits_loaders()

    # when it trains
    try:
        with mlflow.start_run(run_name="digits-autolog"):
            trainer(tmp_path, logger=False).fit(DigitsClassifier(num_classes=10), train, val)
    finally:
        mlflow.pytorch.autolog(disable=True)

    # then the epoch's metrics, logged at step = epoch, are the diagnostics' curves, one point
    # an epoch, and the verdict counts one evaluation per epoch
    run = Experiment.objects.get(project=project, kind="external", name="digits-autolog")
    keys = run.progress["keys"]
    assert {name: keys[name] for name in ("train_loss", "val_loss", "val_acc")} == {
        "train_loss": "train_loss", "val_loss": "val_loss", "val_acc": "val_acc"}
    stored = metric_store.read(run.pk, ["train_loss", "val_loss"])
    assert [len(stored[key]) for key in ("train_loss", "val_loss")] == [EPOCHS, EPOCHS]
    evaluations = external.evaluation_history(run.pk, keys, external.unstepped(run.progress))
    assert len(evaluations.history["val_loss"]) == EPOCHS
    assert run.verdict_kind and run.verdict_kind != "undetermined", run.verdict["headline"]
