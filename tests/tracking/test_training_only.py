"""A script that logs only its training loss (a quick loop, Trainer without evaluation) gets what
can honestly be said from that curve: diverging, underfitting (a loss that did not go down),
learning slowly or healthy, and its pages say that overfitting cannot be judged without a
validation metric. The runs are real: a small MLP trained here on sklearn's digits, logged
step by step through the unmodified mlflow client into a live Fitboard."""

from __future__ import annotations

import math
from typing import Any

import mlflow
import pytest
import torch
from django.test import Client
from sklearn.datasets import load_digits

from tests.training.curves import stress
from webapp.experiments import external
from webapp.experiments.models import Experiment

NOT_JUDGED = "overfitting cannot be judged without a validation metric"
CURVES = {item["name"]: item for item in stress.load()}


def train_digits(optimizer: str, lr: float, epochs: int, seed: int = 0) -> list[float]:
    """Each step's training loss of a 64-unit MLP on the 1,797 digits, batches of 128."""
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    step_size = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    opt = step_size(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for batch in order.split(128):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def log_training_loss(losses: list[float], tags: dict[str, str] | None = None,
                      name: str = "loss") -> tuple[Experiment, str]:
    """Log each step's loss as a quick script does (one call per step), and return the run
    as stored while it is still running, and its id."""
    mlflow.set_experiment("vision")
    with mlflow.start_run(tags=tags or {}) as run:
        for step, loss in enumerate(losses):
            mlflow.log_metric(name, loss, step=step)
        live = Experiment.objects.get(pk=int(run.info.run_id))
    return live, run.info.run_id


def pages(owner: Any, run_id: str) -> tuple[str, str]:
    client = Client()
    client.force_login(owner)
    return (client.get(f"/experiments/{run_id}/").content.decode(),
            client.get(f"/experiments/{run_id}/diagnostics/").content.decode())


def test_a_run_that_logs_only_its_training_loss_is_judged_and_says_what_it_cannot_judge(
        tracking, owner):
    # given a real run (Adam at 3e-3, 12 epochs) that logs its training loss at every step and
    # nothing else (before: no verdict at all, "no metric of this run maps to val_loss")
    live, run_id = log_training_loss(train_digits("adam", 3e-3, epochs=12))

    # then it had a live verdict while it ran, and once ended a final one from its training
    # loss alone, which says overfitting could not be judged
    run = Experiment.objects.get(pk=int(run_id))
    assert live.verdict_kind == "healthy"
    assert run.verdict["kind"] == "healthy" and NOT_JUDGED in run.verdict["headline"]
    assert {"label": "overfitting", "value": "not judged"} in [
        {"label": e["label"], "value": e["value"]} for e in run.verdict["evidence"]]
    # and both pages say it, with no "no verdict" excuse
    page, diagnostics = pages(owner, run_id)
    for html in (page, diagnostics):
        assert "Overfitting cannot be judged without a validation metric" in html
        assert "30 equal stretches (a point each, when fewer) that it counts as epochs" in html
        assert "No verdict" not in html
    assert 'id="verdict-kind">healthy<' in diagnostics


def test_a_training_loss_that_blows_up_is_diverging(tracking):
    # given a real run with SGD at a learning rate of 100: from 2.3 its loss jumps to tens
    losses = train_digits("sgd", 100.0, epochs=3)
    assert min(losses[10:]) > 3 * losses[0]

    # when a script logs it
    _, run_id = log_training_loss(losses)

    # then the run is diverging, measured against its first loss
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "diverging", run.verdict["headline"]


def test_a_training_loss_that_becomes_nan_is_diverging(tracking):
    # given a real run (SGD with momentum at 1.5) whose epoch loss overflows to NaN in epoch 13
    history = CURVES["sgd_momentum_lr_1_5"]["history"]["train_loss"]
    losses = [math.nan if v is None else v for v in history]
    assert math.isnan(losses[12]) and all(math.isfinite(v) for v in losses[:12])

    # when a script logs it (mlflow sends the NaN as it is)
    _, run_id = log_training_loss(losses)

    # then the run is diverging, with the epoch it became NaN in
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "diverging"
    assert "the loss became NaN or infinite in epoch 13" in run.verdict["headline"]


def test_a_step_skipped_for_a_nan_loss_is_not_a_divergence(tracking):
    # given a real run (Adam at 3e-3, 12 epochs) in which one step's loss overflowed to NaN
    # and the script skipped that step and trained on, as fp16's loss scaling does (before:
    # "diverging: the loss became NaN or infinite in epoch 11")
    losses = train_digits("adam", 3e-3, epochs=12)
    losses[60] = math.nan

    # when a script logs it
    _, run_id = log_training_loss(losses)

    # then the run is judged on its finite steps: healthy, as without that step
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "healthy", run.verdict["headline"]


def test_a_run_whose_losses_end_nan_has_its_pages_and_its_diagnostics(tracking, owner, token):
    # given a script whose training and validation losses both become NaN in epoch 8 (its
    # final metrics are stored as null: before, the diagnostics page and the REST diagnostics
    # raised TypeError reading its generalisation gap, a 500)
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for epoch in range(12):
            loss = 2 / (epoch + 1) if epoch < 7 else math.nan
            mlflow.log_metrics({"train_loss": loss, "val_loss": loss + 0.1}, step=epoch)

    # when its pages and its diagnostics are read
    page, diagnostics = pages(owner, run.info.run_id)
    answer = Client().get(f"/api/v1/runs/{run.info.run_id}/diagnostics/",
                          HTTP_AUTHORIZATION=f"Bearer {token}")

    # then they are there, diverging, with no gap to tell
    assert 'id="verdict-kind">diverging<' in diagnostics
    assert answer.status_code == 200 and answer.json()["gap"] is None
    assert "diverging" in page


def test_a_training_loss_that_does_not_go_down_is_underfitting(tracking, owner):
    # given a real run whose learning rate (SGD at 1e-5) leaves its loss where it started
    losses = train_digits("sgd", 1e-5, epochs=6)

    # when a script logs it without saying its classes
    _, run_id = log_training_loss(losses)

    # then it is underfitting by the only measure left: the loss did not go down; its first
    # point could be a mean after many steps, so no chance level is read from it
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "underfitting"
    assert "has not gone down" in run.verdict["headline"]
    _, diagnostics = pages(owner, run_id)
    assert "The chance level is unknown" in diagnostics


def test_told_its_classes_a_training_only_run_is_judged_against_chance(tracking):
    # given the same stuck run, and a script that tags its ten classes
    losses = train_digits("sgd", 1e-5, epochs=6)

    # when it is logged
    _, run_id = log_training_loss(losses, tags={"fitboard.num_classes": "10"})

    # then the underfitting verdict measures the loss against ln 10, the majority-class loss,
    # and its page draws it as the classification it is (it logs no accuracy)
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "underfitting"
    assert "majority-class baseline (2.3)" in run.verdict["headline"]
    assert external.page_context(run)["task"] == "classification"


def test_a_training_loss_still_falling_steadily_at_the_end_is_slow(tracking):
    # given a real run with plain SGD at 1e-2: 12 epochs take its loss from 2.31 to 2.21, in a
    # straight line
    _, run_id = log_training_loss(train_digits("sgd", 1e-2, epochs=12))

    # then it learns too slowly
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == "slow", run.verdict["headline"]


@pytest.mark.parametrize(("name", "kind"), [
    # plain SGD on Fashion-MNIST for 4 epochs: still falling in a straight line
    ("four_epochs_plain_sgd_fashion", "slow"),
    # a spike at epoch 9 from which the training loss never comes back down
    ("spike_that_does_not_recover", "diverging"),
    # a 100-class run that memorises: from its training loss alone, healthy
    ("hundred_classes", "healthy"),
])
def test_the_stress_curves_training_loss_alone_gets_what_it_can_tell(tracking, name, kind):
    # given a real run's per-epoch training loss (tests/training/curves/stress.json), logged
    # as Hugging Face Trainer does without evaluation: "loss" at each epoch's last step
    item = CURVES[name]
    losses = [math.nan if v is None else v for v in item["history"]["train_loss"]]

    # when the script ends
    _, run_id = log_training_loss(losses)

    # then the verdict is what the training curve can tell
    run = Experiment.objects.get(pk=int(run_id))
    assert run.verdict["kind"] == kind, run.verdict["headline"]
