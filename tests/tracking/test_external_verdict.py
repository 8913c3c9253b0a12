"""The verdict of a run logged from a script: its training metrics averaged between evaluations,
and its task read from its own first loss when the script names neither its classes nor its
units (the curves are real runs from ``tests/training/curves/stress.json``)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from django.test import Client

from tests.training.curves import stress
from webapp.experiments import external
from webapp.experiments.models import Experiment
from webapp.tracking import ingest

CURVES = {item["name"]: item for item in stress.load()}


@pytest.fixture
def run(owner: Any, project: Any) -> Experiment:
    return ingest.create_run(owner, project, "script", {})


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
    ({"params": {"num_labels": "3"}}, 3),  # Hugging Face's param
    ({}, 100),  # read from the first loss, ln 100
])
def test_a_classification_runs_classes_are_told_or_read_from_its_first_loss(
        spec: dict[str, Any], classes: int) -> None:
    history = {"train_loss": [2.0, 1.0], "val_loss": [2.1, 1.2], "val_acc": [0.3, 0.6]}

    task = external.task_of(spec, history, first_loss=math.log(100))

    assert task.kind == "classification" and task.num_classes == classes


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
