"""The text a member's scripts log counts towards their storage quota (FITBOARD_STORAGE_QUOTA_GB):
their external runs' params, tags and dataset inputs and their logged models' params and tags,
as the database holds them (``tracking.models.text_stored_by``). Only the request rate bounded
it before: up to 2 MB a run, 1,000 runs an hour, 2 GB an hour that no quota counted. Past the
quota, a write that adds text is refused in MLflow's format and stores nothing, while points
still reach the run; deleting the run frees its room."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import mlflow
import pytest
from django.db import connection, transaction
from django.test import Client
from mlflow.exceptions import MlflowException

from webapp.experiments import metric_store
from webapp.experiments.models import POINT_BYTES, Experiment, chunk_row_bytes
from webapp.projects import storage
from webapp.tracking import ingest
from webapp.tracking.models import LoggedModel

from ..races import second_while_first_holds

M, N = "/api/2.0/mlflow/", "/api/fitboard/v1/"
ROOM = 3000  # bytes of quota left beside what the owner stores when a test begins


def noise(chars: int) -> str:
    """Text no database compresses: what it holds is as long as what was sent."""
    return secrets.token_urlsafe(chars)[:chars]


def send(token: str, path: str, body: Any, method: str = "post") -> Any:
    return getattr(Client(), method)(path, json.dumps(body), content_type="application/json",
                                     HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def script(tracking: Any) -> None:
    """The mlflow client logging to the owner's project, as a script would."""
    mlflow.set_experiment("vision")


@pytest.fixture
def room(owner: Any, settings: Any) -> int:
    """A quota of what the owner stores now and ROOM bytes more."""
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(owner) + ROOM
    return ROOM


def test_a_runs_params_and_tags_count_towards_its_creators_storage(script, owner):
    with mlflow.start_run() as active:
        before = storage.stored_bytes(owner)

        # when the script logs a param and a tag of 2,000 characters each
        mlflow.log_param("config", noise(2000))
        mlflow.set_tag("notes", noise(2000))

        # then its user stores that text
        assert storage.stored_bytes(owner) >= before + 4000
    run = Experiment.objects.get(pk=active.info.run_id)
    assert len(run.spec["params"]["config"]) == 2000


def test_past_the_quota_text_is_refused_while_points_still_reach_the_run(script, owner, room,
                                                                         settings):
    # (with room for the three rows its points below write: a row counts what it takes)
    settings.FITBOARD_STORAGE_QUOTA_BYTES += 3 * (POINT_BYTES + chunk_row_bytes("train_loss"))
    with mlflow.start_run() as active:
        # given a first param that fits
        mlflow.log_param("config", noise(2000))
        run = Experiment.objects.get(pk=active.info.run_id)
        spec = run.spec

        # when the script logs more text than is left: a param, a tag, a batch with params
        for log in (lambda: mlflow.log_param("more", noise(2000)),
                    lambda: mlflow.set_tag("notes", noise(2000)),
                    lambda: mlflow.log_params({"a": noise(1000), "b": noise(1000)})):
            with pytest.raises(MlflowException, match="storage quota") as refused:
                log()
            # then each is MLflow's 400, saying the quota, and stores nothing
            assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
            run.refresh_from_db()
            assert run.spec == spec

        # and its metrics are still logged
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"loss": 0.25, "accuracy": 0.9}, step=2)
    assert list(metric_store.read(run.pk)["train_loss"].values) == [0.5, 0.25]


def test_deleting_the_run_frees_the_room_its_text_took(script, owner, token, room):
    # given a run whose params took the room, and a second run refused a param
    with mlflow.start_run() as first:
        mlflow.log_param("config", noise(2000))
    with mlflow.start_run(), pytest.raises(MlflowException, match="storage quota"):
        mlflow.log_param("config", noise(2000))

    # when the first run is deleted
    response = send(token, f"/api/v1/runs/{first.info.run_id}/", {}, method="delete")

    # then a new run takes the param
    assert response.status_code == 204
    with mlflow.start_run():
        mlflow.log_param("config", noise(2000))


@pytest.mark.django_db
def test_dataset_inputs_logged_models_and_native_runs_count_too(owner, project, token, room):
    run = ingest.create_run(owner, project, "okapi", {})
    big = noise(room + 1)

    # when a script logs text past the quota as a dataset input, a logged model's params or
    # tags, or a native run's params
    inputs = send(token, M + "runs/log-inputs", {"run_id": str(run.pk), "datasets": [
        {"dataset": {"name": "d", "digest": "1", "profile": big}}]})
    model = send(token, M + "logged-models", {"experiment_id": str(project.pk),
                                              "params": [{"key": "p", "value": big[:6000]}]})
    small = send(token, M + "logged-models", {"experiment_id": str(project.pk)}).json()
    path = f"{M}logged-models/{small['model']['info']['model_id']}"
    model_params = send(token, path + "/params", {"params": [{"key": "p", "value": big}]})
    model_tags = send(token, path + "/tags", {"tags": [{"key": "t", "value": big}]},
                      method="patch")
    native = send(token, N + "runs/create", {"project": project.name, "params": {"p": big}})

    # then each is refused, saying the quota, and none of that text is stored
    answers = [inputs, model, model_params, model_tags, native]
    assert [a.status_code for a in answers] == [400] * 5
    assert all("storage quota" in a.json()["message"] for a in answers)
    run.refresh_from_db()
    assert "inputs" not in run.spec
    assert list(LoggedModel.objects.values_list("params", "tags")) == [({}, {})]
    assert Experiment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_writes_at_once_do_not_both_take_the_last_room(owner, project, settings):
    # given two runs of the owner's, room for one param of 2,000 characters, and a write of one
    # holding its transaction open before it commits
    runs = [ingest.create_run(owner, project, name, {}) for name in ("first", "second")]
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(owner) + ROOM
    first_in, commit = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def log(run: Experiment, hold: bool) -> None:
        try:
            with transaction.atomic():
                ingest.log_to_run(run, params={"config": noise(2000)})
                if hold:
                    first_in.set()
                    commit.wait(timeout=60)
            outcomes[run.name] = "stored"
        except ingest.IngestError:
            outcomes[run.name] = "refused"
        finally:
            connection.close()

    # when the other run's write arrives before the first commits (it waits for the user's lock)
    second_while_first_holds(lambda: log(runs[0], True), first_in,
                             lambda: log(runs[1], False), commit)

    # then it counted the first's text, and was refused
    assert outcomes == {"first": "stored", "second": "refused"}
    assert [run.spec["params"] != {} for run in Experiment.objects.order_by("pk")] == [True, False]
