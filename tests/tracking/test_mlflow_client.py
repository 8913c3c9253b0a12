"""The unmodified mlflow client against Fitboard (served by pytest-django's live server): what it
logs is stored under the diagnostics' names, read back exactly under its own, and judged.
The full stack (Daphne, workers, WebSocket) is tests/e2e/test_mlflow_tracking.py."""

from __future__ import annotations

import json
from datetime import timedelta

import mlflow
import pytest
from django.test import Client
from django.utils import timezone
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from webapp.experiments import housekeeping, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.models import Project
from webapp.tracking import tokens


def test_a_run_logged_with_mlflow_reads_back_exactly(tracking, project):
    # given a script that logs params, tags and three metrics with its own timestamps
    mlflow.set_experiment("vision")
    logged: dict[str, list[tuple[int, float, int]]] = {"loss": [], "eval_loss": [],
                                                       "eval_accuracy": []}
    with mlflow.start_run(run_name="bert", tags={"team": "nlp"}) as run:
        mlflow.log_params({"lr": 0.001, "batch": 32})
        for step in range(12):
            for key, value in (("loss", 1 / (step + 1)), ("eval_loss", 1.2 / (step + 1)),
                               ("eval_accuracy", step / 12)):
                stamp = 1_790_000_000_123 + step * 1000 + len(key)
                mlflow.log_metric(key, value, step=step, timestamp=stamp)
                logged[key].append((step, value, stamp))

    # then mlflow's own reader returns exactly what was logged, under the script's names
    for key, points in logged.items():
        history = tracking.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value, m.timestamp) for m in history] == points
    # and Fitboard stored them under the names its diagnostics read, and judged the run
    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert stored.kind == "external" and stored.status == "succeeded"
    assert set(metric_store.read(stored.pk)) == {"train_loss", "val_loss", "val_acc"}
    assert stored.spec == {"params": {"lr": "0.001", "batch": "32"},
                           "tags": {"team": "nlp", "mlflow.runName": "bert", **{
                               k: v for k, v in stored.spec["tags"].items()
                               if k.startswith("mlflow.") and k != "mlflow.runName"}}}
    assert stored.verdict_kind and stored.summary["final_metrics"]["val_acc"] == 11 / 12
    fetched = tracking.get_run(run.info.run_id)
    assert fetched.data.params == {"lr": "0.001", "batch": "32"}
    assert fetched.data.metrics["eval_accuracy"] == 11 / 12


def test_a_param_cannot_change_and_the_client_is_told(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run():
        mlflow.log_param("lr", 0.1)
        with pytest.raises(MlflowException, match="param 'lr' was logged as '0.1'"):
            mlflow.log_param("lr", 0.2)


def test_an_unknown_experiment_is_404_then_created_as_a_project(tracking, owner):
    # the client asks for the experiment by name (404), then creates it
    mlflow.set_experiment("brand-new")

    created = Project.objects.get(name="brand-new")
    assert created.members.filter(pk=owner.pk).exists()


def test_a_metric_map_tag_names_a_scripts_own_metrics(tracking):
    # given a script whose names follow no convention, and its map
    mlflow.set_experiment("vision")
    with mlflow.start_run(tags={"fitboard.metric_map": json.dumps(
            {"objective": "train_loss", "holdout": "val_loss"})}) as run:
        for step in range(6):
            mlflow.log_metrics({"objective": 1 / (step + 1), "holdout": 1.1 / (step + 1)},
                               step=step)

    stored = Experiment.objects.get(pk=int(run.info.run_id))
    assert set(metric_store.read(stored.pk)) == {"train_loss", "val_loss"}
    assert stored.verdict_kind
    assert [m.value for m in tracking.get_metric_history(run.info.run_id, "holdout")][-1] \
        == 1.1 / 6


def test_a_bad_metric_map_is_refused_with_the_reason(tracking):
    mlflow.set_experiment("vision")
    with pytest.raises(MlflowException, match="fitboard.metric_map must be a JSON object"):
        mlflow.start_run(tags={"fitboard.metric_map": "objective=train_loss"})


def test_a_run_whose_names_do_not_map_has_curves_and_says_why_it_has_no_verdict(
        tracking, owner):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for step in range(5):
            mlflow.log_metric("reward", step * 2.0, step=step)

    stored = Experiment.objects.get(pk=int(run.info.run_id))
    client = Client()
    client.force_login(owner)
    page = client.get(f"/experiments/{stored.pk}/").content.decode()
    diagnostics = client.get(f"/experiments/{stored.pk}/diagnostics/").content.decode()
    assert stored.verdict_kind == "" and len(metric_store.read(stored.pk)["reward"]) == 5
    assert "no metric of this run maps to train_loss" in page
    assert "no metric of this run maps to train_loss" in diagnostics
    assert "Clone" not in page and "Tune" not in page and "Download checkpoint" not in page


def test_end_run_killed_and_failed_map_to_cancelled_and_failed(tracking):
    mlflow.set_experiment("vision")
    outcomes, ended_again = {}, {}
    for status in ("KILLED", "FAILED"):
        with mlflow.start_run() as run:
            mlflow.log_metric("loss", 1.0)
        mlflow.end_run()
        tracking.set_terminated(run.info.run_id, status)  # ends it again, as MLflow's server
        ended_again[status] = Experiment.objects.get(pk=int(run.info.run_id)).status
        run_id = mlflow.start_run().info.run_id
        mlflow.end_run(status=status)
        outcomes[status] = Experiment.objects.get(pk=int(run_id)).status

    assert outcomes == ended_again == {"KILLED": "cancelled", "FAILED": "failed"}


def test_an_artifact_goes_up_and_comes_back_and_is_listed_on_the_run_page(
        tracking, owner, tmp_path):
    mlflow.set_experiment("vision")
    source = tmp_path / "report.txt"
    source.write_text("accuracy 0.9")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source), artifact_path="eval")

    files = tracking.list_artifacts(run.info.run_id, "eval")
    back = tracking.download_artifacts(run.info.run_id, "eval/report.txt", str(tmp_path / "d"))
    client = Client()
    client.force_login(owner)
    page = client.get(f"/experiments/{run.info.run_id}/").content.decode()
    download = client.get(f"/experiments/{run.info.run_id}/artifacts/eval/report.txt")

    assert [f.path for f in files] == ["eval/report.txt"]
    assert open(back).read() == "accuracy 0.9"
    assert "eval/report.txt" in page
    assert b"".join(download.streaming_content) == b"accuracy 0.9"


def test_a_running_external_run_that_goes_silent_is_failed_by_housekeeping(
        tracking, settings):
    # given a run whose script (MLflow's REST API: no heartbeat) stopped sending
    # FITBOARD_EXTERNAL_SILENCE_S ago, and one quiet for longer than a beating client may be
    settings.FITBOARD_EXTERNAL_HEARTBEAT = 300
    settings.FITBOARD_EXTERNAL_SILENCE = 3600
    mlflow.set_experiment("vision")
    run_id = int(mlflow.start_run().info.run_id)
    mlflow.log_metric("loss", 1.0)
    Experiment.objects.filter(pk=run_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=3601))
    lively_id = int(MlflowClient().create_run(
        Experiment.objects.get(pk=run_id).project_id).info.run_id)
    Experiment.objects.filter(pk=lively_id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=1800))

    # when the housekeeping runs
    counts = housekeeping.housekeeping()

    # then the silent run failed with the reason; the other, quiet for half an hour (a long
    # epoch), runs on
    silent = Experiment.objects.get(pk=run_id)
    assert counts["silent"] == 1
    assert silent.status == "failed" and silent.error == "no data from the script for 3600 s"
    assert Experiment.objects.get(pk=lively_id).status == "running"
    mlflow.end_run()


def test_cancel_on_the_run_page_ends_an_external_run_at_once(tracking, owner):
    mlflow.set_experiment("vision")
    run_id = int(mlflow.start_run().info.run_id)
    client = Client()
    client.force_login(owner)

    client.post(f"/experiments/{run_id}/cancel/")

    assert Experiment.objects.get(pk=run_id).status == "cancelled"
    mlflow.end_run()


def test_compare_diffs_params_of_external_runs(tracking, owner):
    mlflow.set_experiment("vision")
    ids = []
    for lr in ("0.1", "0.01"):
        with mlflow.start_run() as run:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("loss", 1.0)
        ids.append(run.info.run_id)
    client = Client()
    client.force_login(owner)

    page = client.get("/compare/", {"ids": ",".join(ids)}).content.decode()

    assert "params.lr" in page and "0.01" in page


def test_token_counting_needs_no_clear_token(token):
    # the digest is what is looked up
    assert tokens.authenticate(f"Bearer {token}") is not None
