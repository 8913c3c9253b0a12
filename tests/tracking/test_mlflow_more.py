"""Calls of the mlflow client beyond the everyday ones of test_mlflow_coverage.py, each through
the real client (3.17, pinned) against Fitboard's live server: tables and images, NaN metrics,
resuming an ended run or ending it again, asynchronous logging, system metrics, MLflow's search
aliases and dataset filters, and the model registry's refusal. A request only an older client
sends is sent as that client sends it, with ``requests``."""

from __future__ import annotations

import math
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from django.test import Client
from mlflow.exceptions import MlflowException

from webapp.experiments.models import Experiment


def test_a_table_and_an_image_go_up_and_the_table_loads_back(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_table(pd.DataFrame({"text": ["cat", "dog"], "label": [0, 1]}), "preds.json")
        mlflow.log_image(np.zeros((8, 8, 3), dtype=np.uint8), "sample.png")
        mlflow.log_image(np.zeros((8, 8, 3), dtype=np.uint8), key="digits", step=2)

    table = mlflow.load_table("preds.json", run_ids=[run.info.run_id])
    listed = {f.path for f in tracking.list_artifacts(run.info.run_id)}
    images = [f.path for f in tracking.list_artifacts(run.info.run_id, "images")]
    assert table[["text", "label"]].to_dict("list") == {"text": ["cat", "dog"], "label": [0, 1]}
    assert {"preds.json", "sample.png", "images"} <= listed
    assert any(path.startswith("images/digits+step+2+") for path in images)


def test_listing_a_file_answers_no_files_as_mlflows_server_does(tracking, token):
    # mlflow 2.x (2.9 to 2.22) takes a path whose list is not empty for a folder: it lists
    # the file it is asked to download and, given the file itself, asks for <file>/<file>.
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_text("all good", "notes/today.txt")
    root = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    url = f"{mlflow.get_tracking_uri()}/api/2.0/mlflow-artifacts/artifacts"

    def listed(path: str) -> dict:
        answer = requests.get(url, params={"path": f"{root}/{path}"}, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        return answer.json()

    assert listed("notes/today.txt").get("files", []) == []
    assert listed("notes")["files"] == [{"path": "today.txt", "is_dir": False,
                                         "file_size": 8}]
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/today.txt") == "all good"


def test_nan_and_infinite_metrics_read_back_through_get_run_history_and_search(tracking,
                                                                              project):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", float("nan"), step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metric("grad_norm", float("inf"))
        mlflow.log_metric("margin", float("-inf"))

    metrics = tracking.get_run(run.info.run_id).data.metrics
    history = [m.value for m in tracking.get_metric_history(run.info.run_id, "loss")]
    found = tracking.search_runs([str(project.pk)], "metrics.grad_norm > 1000")
    assert metrics["loss"] == 0.5 and metrics["grad_norm"] == math.inf
    assert metrics["margin"] == -math.inf
    assert math.isnan(history[0]) and history[1] == 0.5
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_a_nan_metric_orders_after_the_numbers_and_before_runs_without_it(tracking, project):
    mlflow.set_experiment("vision")
    names = {}
    for loss in (0.5, float("nan"), None, 0.2, float("inf")):
        with mlflow.start_run() as run:
            if loss is not None:
                mlflow.log_metric("loss", loss)
        names[run.info.run_id] = str(loss)

    def ordered(direction: str) -> list[str]:
        runs = tracking.search_runs([str(project.pk)], order_by=[f"metrics.loss {direction}"])
        return [names[r.info.run_id] for r in runs]

    # as MLflow's server orders them, either way (a NaN among them had scrambled the order)
    assert ordered("ASC") == ["0.2", "0.5", "inf", "nan", "None"]
    assert ordered("DESC") == ["inf", "0.5", "0.2", "nan", "None"]


def test_a_resumed_run_runs_again_and_ends_with_its_new_status(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.9, step=0)

    with mlflow.start_run(run_id=run.info.run_id):
        during = tracking.get_run(run.info.run_id).info.status
        mlflow.log_metric("loss", 0.4, step=1)
        mlflow.end_run(status="FAILED")

    after = tracking.get_run(run.info.run_id)
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert during == "RUNNING"
    assert after.info.status == "FAILED" and after.data.metrics["loss"] == 0.4
    assert stored.status == Experiment.Status.FAILED
    assert stored.summary["final_metrics"]["train_loss"] == 0.4


def test_set_terminated_after_the_end_ends_it_again_unless_fitboard_ended_it(tracking, owner):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.9)

    # when a scheduler marks a run its script ended as finished killed, then failed
    tracking.set_terminated(run.info.run_id, "KILLED")
    killed = tracking.get_run(run.info.run_id).info.status
    tracking.set_terminated(run.info.run_id, "FAILED")

    # then it reads back as MLflow's server answers, and the run is failed, its summary kept
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert killed == "KILLED" and tracking.get_run(run.info.run_id).info.status == "FAILED"
    assert stored.status == Experiment.Status.FAILED
    assert stored.summary["final_metrics"]["train_loss"] == 0.9

    # but a run cancelled on its page stays cancelled when its script ends it afterwards
    cancelled = int(mlflow.start_run().info.run_id)
    page = Client()
    page.force_login(owner)
    page.post(f"/experiments/{cancelled}/cancel/")
    mlflow.end_run()
    assert Experiment.objects.get(pk=cancelled).status == Experiment.Status.CANCELLED


def test_asynchronous_logging_lands_every_point(tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for step in range(50):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_params({"lr": 0.1})
        mlflow.set_tag("mode", "async")
        mlflow.log_metric("acc", 0.7, synchronous=False).wait()

    fetched = tracking.get_run(run.info.run_id)
    steps = [m.step for m in tracking.get_metric_history(run.info.run_id, "loss")]
    assert steps == list(range(50))
    assert fetched.data.params == {"lr": "0.1"} and fetched.data.tags["mode"] == "async"
    assert fetched.data.metrics["acc"] == 0.7


def test_system_metrics_are_logged_while_the_run_runs(tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    mlflow.set_experiment("vision")
    with mlflow.start_run(log_system_metrics=True) as run:
        # the monitor's thread samples, checks the run still runs (get_run), then logs
        for _ in range(300):
            if any(key.startswith("system/") for key in
                   tracking.get_run(run.info.run_id).data.metrics):
                break
            time.sleep(0.1)

    metrics = tracking.get_run(run.info.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics


def test_search_runs_takes_mlflows_names_created_and_run_name(tracking, project):
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="first") as first:
        pass
    with mlflow.start_run(run_name="second") as second:
        pass

    def search(filter_string: str, order_by: list[str] | None = None) -> list[str]:
        runs = tracking.search_runs([str(project.pk)], filter_string, order_by=order_by)
        return [r.info.run_name for r in runs]

    assert search(f"attributes.created >= {second.info.start_time}") == ["second"]
    assert search("", ["attributes.created ASC"]) == ["first", "second"]
    assert search("attributes.`Run name` = 'first'") == ["first"]
    assert first.info.run_id != second.info.run_id


def test_search_runs_filters_on_the_datasets_a_run_read(tracking, project):
    mlflow.set_experiment("vision")
    digits = mlflow.data.from_numpy(np.arange(6.0).reshape(3, 2), name="digits")
    with mlflow.start_run(run_name="trained") as trained:
        mlflow.log_input(digits, context="training")
        mlflow.log_input(mlflow.data.from_numpy(np.ones((2, 2)), name="holdout"), context="eval")
    with mlflow.start_run(run_name="plain"):
        pass

    def search(filter_string: str) -> list[str]:
        return [r.info.run_name for r in tracking.search_runs([str(project.pk)], filter_string)]

    assert search("datasets.name = 'digits'") == ["trained"]
    assert search(f"dataset.digest = '{digits.digest}' and datasets.context = 'eval'") == [
        "trained"]
    assert search("datasets.name LIKE 'hold%'") == ["trained"]
    assert search("datasets.context = 'testing'") == []
    assert trained.info.run_id


def test_register_model_is_refused_with_what_to_use_instead(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_text("weights", "model/weights.txt")

    with pytest.raises(MlflowException) as caught:
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "okapi")

    assert caught.value.error_code == "ENDPOINT_NOT_FOUND"
    assert "no model registry" in caught.value.message
    assert "runs:/<run_id>/<path>" in caught.value.message
