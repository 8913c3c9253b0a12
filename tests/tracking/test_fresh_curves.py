"""Curves the diagnosis was never tuned on (``tests/training/curves/fresh.json``, real training),
logged through the mlflow REST API as frameworks log them (``fresh.STYLES``: a hand-written
loop with accuracy in percent, Keras, Hugging Face Trainer, Lightning, timm, a bare ``top1``),
then ended: the stored verdict is the expert's call. And how a script's accuracy in percent
and a classifier's measures other than accuracy are read."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from django.test import Client

from tests.training.curves import fresh
from webapp.experiments import external
from webapp.experiments.models import Experiment
from webapp.tracking import ingest

CURVES = {item["name"]: item for item in fresh.scripts()}
PER_EPOCH = ("keras", "trainer", "timm")  # their first training point is no untrained loss
# Known limits (tests/training/test_diagnostics_fresh.py says why, and judges them right with
# their task known): without an untrained loss a classifier's chance level is unknown, which
# a num_classes param gives (tested below, also for a CNN stuck at 10% accuracy, underfitting
# by its accuracy without it); a regression's untrained loss is above a constant's.
NO_CHANCE_LEVEL = {(name, style) for style in PER_EPOCH
                   for name in ("fashion_one_unit", "fashion_cnn_sgd_lr_3")}
LIMITS = {(name, style) for name, style in NO_CHANCE_LEVEL if name == "fashion_one_unit"} | {
    ("diabetes_ridge_heavy", style) for style in ("loop", "keras", "trainer", "lightning")}


def cases(curves: dict[str, dict[str, Any]], limits: set[tuple[str, str]]) -> list[Any]:
    """(curve, style) parameters of every curve logged in every style that names its
    measures, less ``limits``."""
    found = []
    for name, item in curves.items():
        for style in fresh.STYLES:
            if item["task"]["kind"] == "regression" and style in ("timm", "top1"):
                continue  # no accuracy: the same names as the loop's
            if (name, style) not in limits:
                found.append(pytest.param(item, style, id=f"{name}-{style}"))
    return found


def post(token: str, path: str, body: dict[str, Any]) -> None:
    answer = Client().post(path, json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200, answer.content


def log_and_end(token: str, run: Experiment, item: dict[str, Any], style: str,
                params: dict[str, str] | None = None, rename: dict[str, str] | None = None
                ) -> Experiment:
    """Log the curve as a script of ``style`` does (a NaN as mlflow sends it), in batches of
    mlflow's 1,000 metrics, then end the run as its client does."""
    points = [{**point, "key": (rename or {}).get(point["key"], point["key"]),
               "value": point["value"] if math.isfinite(point["value"]) else "NaN"}
              for point in fresh.logged(item, style)]
    post(token, "/api/2.0/mlflow/runs/log-batch", {"run_id": str(run.pk), "params": [
        {"key": key, "value": value} for key, value in (params or {}).items()]})
    for i in range(0, len(points), ingest.MAX_METRICS):
        post(token, "/api/2.0/mlflow/runs/log-batch",
             {"run_id": str(run.pk), "metrics": points[i:i + ingest.MAX_METRICS]})
    post(token, "/api/2.0/mlflow/runs/update", {"run_id": str(run.pk), "status": "FINISHED"})
    return Experiment.objects.get(pk=run.pk)



@pytest.mark.parametrize(("item", "style"), cases(CURVES, LIMITS))
def test_a_scripts_run_logged_as_its_framework_logs_gets_the_experts_call(
        token: str, run: Experiment, item: dict[str, Any], style: str) -> None:
    # given a real run the diagnosis was not tuned on, logged under a framework's names
    # when it ends
    stored = log_and_end(token, run, item, style)

    # then its stored verdict is the expert's call, or one the expert could defend
    assert stored.verdict["kind"] in {item["label"], *item["also"]}, (
        item["why"], stored.verdict["headline"])


@pytest.mark.parametrize(("name", "style"), sorted(NO_CHANCE_LEVEL))
def test_a_per_epoch_run_that_says_its_classes_is_judged_against_chance(
        token: str, run: Experiment, name: str, style: str) -> None:
    # given a 10-class run logged once per epoch (Keras, Trainer, timm), judged healthy
    # without its classes (its loss went down from its first epoch's), with a num_classes param
    item = CURVES[name]

    # when it ends
    stored = log_and_end(token, run, item, style, params={"num_classes": "10"})

    # then its loss is measured against ln 10: stuck near or above it, it underfits
    assert stored.verdict["kind"] in {"underfitting", *item["also"]} - {"healthy"}
    assert "majority-class baseline (2.3" in stored.verdict["headline"]


def test_a_bare_top1_in_percent_makes_the_run_a_classification_read_in_percent(
        token: str, run: Experiment) -> None:
    # given a 100-class run at chance whose script logs its validation as timm's validate()
    # returns it, a bare "top1" in percent (0.69%: never past 1) beside val_loss
    item = CURVES["hundred_classes_start"]

    # when it ends
    stored = log_and_end(token, run, item, "top1")

    # then top1 is its validation accuracy, in percent, and the run a classification: read as
    # a regression before, the top1 stored as logged and its accuracy as 69%
    evaluations = external.evaluation_history(stored.pk, stored.progress["keys"])
    assert stored.progress["keys"]["top1"] == "val_acc"
    assert max(evaluations.history["val_acc"]) == pytest.approx(0.006944)
    task = external.task_of(stored.spec, evaluations.history, evaluations.first_loss,
                            evaluations.classifier)
    assert task.kind == "classification" and task.num_classes == 104  # e^4.64, its first loss


def test_a_run_that_logs_only_another_classifier_measure_is_a_classification(
        token: str, run: Experiment, owner: Any) -> None:
    # given a run logging its losses and a top-5 accuracy, which no diagnostics name reads
    item = CURVES["fashion_one_unit"]

    # when it ends
    stored = log_and_end(token, run, item, "loop", rename={"val_acc": "top5"})

    # then it is judged as a classification (a regression before), and its diagnostics page
    # says why it draws no accuracy curve instead of leaving the card blank
    evaluations = external.evaluation_history(stored.pk, stored.progress["keys"])
    assert "val_acc" not in evaluations.history and evaluations.classifier
    assert stored.verdict["kind"] == "underfitting", stored.verdict["headline"]
    client = Client()
    client.force_login(owner)
    page = client.get(f"/experiments/{stored.pk}/diagnostics/").content.decode()
    assert 'id="no-accuracy"' in page and "the script logs no accuracy" in page
    assert 'id="diag-loss"' in page


def test_an_accuracy_named_in_percent_is_read_in_percent_though_it_never_passes_1(
        token: str, run: Experiment) -> None:
    item = CURVES["hundred_classes_start"]

    stored = log_and_end(token, run, item, "loop", rename={"val_acc": "val_acc_percent"})

    history = external.evaluation_history(stored.pk, stored.progress["keys"]).history
    assert max(history["val_acc"]) == pytest.approx(0.006944)


@pytest.mark.parametrize(("history", "named", "read"), [
    # a curve past 1 is in percent, and so is the run's other accuracy, though it is not
    ({"train_acc": [0.5, 0.9], "val_acc": [40.0, 60.0], "train_loss": [4.6] * 2}, set(),
     {"train_acc": [0.005, 0.009], "val_acc": [0.4, 0.6]}),
    # named in percent (top1): in percent ...
    ({"val_acc": [0.7, 0.8], "val_loss": [4.6, 4.6]}, {"val_acc"},
     {"val_acc": [0.007, 0.008]}),
    # ... unless its loss rules it out: at a loss of 0.1, at least 86% are right
    ({"val_acc": [0.7, 0.95], "val_loss": [0.6, 0.1]}, {"val_acc"},
     {"val_acc": [0.7, 0.95]}),
    # the other accuracy's percent too: a share beside a low training loss stays one
    ({"train_acc": [0.9, 0.99], "val_acc": [90.0, 95.0], "train_loss": [0.3, 0.05]}, set(),
     {"train_acc": [0.9, 0.99], "val_acc": [0.9, 0.95]}),
    # nothing says percent: a share, as Keras, Hugging Face and Lightning log it
    ({"val_acc": [0.7, 0.8], "val_loss": [4.6, 4.6]}, set(), {"val_acc": [0.7, 0.8]}),
])
def test_an_accuracy_is_read_in_percent_when_the_run_says_so_and_its_loss_allows_it(
        history: dict[str, list[float]], named: set[str], read: dict[str, list[float]]) -> None:
    shares = external.as_shares({key: list(values) for key, values in history.items()}, named)

    for key, values in read.items():
        assert np.allclose(shares[key], values), key


NATIVE = ["breast_cancer_40_rows", "digits_l2_heavy", "iris_sgd_lr_30", "wine_adam_1e_5",
          "digits_warm_restarts", "diabetes_tiny_units"]  # one or two of each verdict


@pytest.mark.parametrize("name", NATIVE)
def test_a_run_logged_through_the_native_client_api_gets_the_experts_call(
        token: str, project: Any, name: str) -> None:
    # given a real run logged as the native client sends it (fitboard.init, run.log every
    # step): columns of steps, values and times per name, in batches
    item = CURVES[name]
    api = "/api/fitboard/v1/"
    made = Client().post(api + "runs/create", json.dumps({"project": project.name}),
                         content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}").json()
    points = fresh.logged(item, "lightning")
    for i in range(0, len(points), ingest.MAX_METRICS):
        columns: dict[str, list[list[Any]]] = {}
        for point in points[i:i + ingest.MAX_METRICS]:
            steps, values, times = columns.setdefault(point["key"], [[], [], []])
            steps.append(point["step"])
            values.append(point["value"] if math.isfinite(point["value"]) else None)
            times.append(1e9 + point["timestamp"])
        post(token, api + "runs/log", {"run_id": made["run_id"], "metrics": columns})

    # when it finishes
    post(token, api + "runs/finish", {"run_id": made["run_id"], "status": "succeeded"})

    # then its stored verdict is the expert's call
    verdict = Experiment.objects.get(pk=made["run_id"]).verdict
    assert verdict["kind"] in {item["label"], *item["also"]}, (item["why"], verdict["headline"])
