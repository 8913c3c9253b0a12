"""A plain member of a shared project, with a read-and-write token, aims every write of the
tracking APIs (MLflow's, the native client's, the artifacts proxy, logged models) at another
member's run, model and project: they read all of it, but change none of it; only a run's
creator and the project's maintainers do (``access.may_change``). The routes come from the URL
resolver, so a write route added later is probed without editing this file."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.test import Client

from webapp.experiments import metric_store
from webapp.experiments.models import Experiment
from webapp.projects.actions import enrol
from webapp.projects.models import Membership
from webapp.tracking import artifacts, ingest, tokens
from webapp.tracking.models import ExperimentTag, LoggedModel

from .test_tokens import API_ROUTES, call, methods_of, snapshot

pytestmark = pytest.mark.django_db

# Writes that change nothing of anyone else's: a member makes their own project, run or model
# (the sweep's logged model names no source run), and a search is a read sent by POST.
OWN_WORK = {"mlflow-experiment-create", "mlflow-run-create", "fitboard-run-create",
            "mlflow-logged-model-create", "mlflow-experiment-search", "mlflow-run-search",
            "mlflow-logged-model-search"}
# The member's own work last: the sweep finds the victim's model as the project's only one.
TRACKING_WRITES = sorted([(route, name, method) for route, name in API_ROUTES
                          if not route.startswith("api/v1/")
                          and not name.startswith("mlflow-unknown")
                          for method in methods_of(name) if method != "GET"],
                         key=lambda write: (write[1] in OWN_WORK,
                                            write[1] == "mlflow-logged-model-create"))


@pytest.fixture
def attacker(victim_run: Any) -> tuple[User, str]:
    """A plain member of the victim's project, and their read-and-write token."""
    _, project = victim_run
    user = User.objects.create_user("attacker")
    enrol(project, user, Membership.Role.MEMBER)
    ExperimentTag.objects.create(project=project, key="mlflow.note.content", value="okapi")
    return user, tokens.create_token(user, "laptop", "write", None)[1]


def curves(run: Experiment) -> dict[str, list[int]]:
    """The steps of each metric the run stored."""
    return {key: series.steps.tolist() for key, series in metric_store.read(run.pk).items()}


def headers(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_the_sweep_probes_every_write_of_a_run():
    names = {name for _, name, _ in TRACKING_WRITES}
    assert {"mlflow-log-batch", "mlflow-log-metric", "mlflow-log-param", "mlflow-set-tag",
            "mlflow-delete-tag", "mlflow-run-update", "mlflow-run-delete", "mlflow-run-restore",
            "mlflow-log-inputs", "mlflow-log-outputs", "mlflow-log-model", "mlflow-artifact",
            "mlflow-logged-model", "mlflow-logged-model-params", "mlflow-logged-model-tags",
            "mlflow-experiment-set-tag", "mlflow-experiment-delete-tag",
            "mlflow-experiment-update", "fitboard-run-log", "fitboard-run-heartbeat",
            "fitboard-run-finish"} <= names


def test_a_member_changes_nothing_of_another_members_run_through_the_tracking_apis(
        victim_run, attacker):
    # given the victim's external run (a point, a param, a tag, an artifact), logged model
    # and project tag, and a plain member's write token
    run, project = victim_run
    _, raw = attacker
    client = Client()
    before, points = snapshot(), curves(run)
    problems = []
    for route, name, method in TRACKING_WRITES:
        # when the member sends every write route at them
        response = call(client, route, method, raw, run, project)
        # then each is refused (their own new work aside)
        expected = (200,) if name in OWN_WORK else (403,)
        if response.status_code not in expected:
            problems.append(f"{method} {route}: {response.status_code}")
    after = snapshot()

    assert problems == []
    # and no row that was there changed or went (the member's own new rows aside)
    changed = {table: sorted(set(rows) - set(after[table])) for table, rows in before.items()}
    assert {table: rows for table, rows in changed.items() if rows} == {}
    assert curves(run) == points
    with default_storage.open(f"{artifacts.storage_root(run)}/secret.txt") as stored:
        assert stored.read() == b"okapi weights"


def test_a_member_cannot_hang_a_model_on_another_members_run_nor_overwrite_its_files(
        victim_run, attacker):
    # given the victim's run and logged model (with a file), and a plain member's token
    run, project = victim_run
    _, raw = attacker
    model = LoggedModel.objects.get(project=project)
    folder = f"{project.pk}/models/{model.model_id}/artifacts"
    client = Client()

    # when the member logs a model from the victim's run and overwrites the victim's model
    created = client.post("/api/2.0/mlflow/logged-models", json.dumps(
        {"experiment_id": str(project.pk), "source_run_id": str(run.pk), "name": "fake"}),
        content_type="application/json", **headers(raw))
    put = client.put(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/MLmodel", b"hijacked",
                     content_type="application/octet-stream", **headers(raw))
    read = client.get(f"/api/2.0/mlflow-artifacts/artifacts/{folder}/MLmodel", **headers(raw))

    # then both writes are refused, while the member still reads the model
    assert (created.status_code, put.status_code, read.status_code) == (403, 403, 200)
    assert LoggedModel.objects.filter(project=project).count() == 1
    with default_storage.open(f"{model.artifacts_root}/MLmodel") as stored:
        assert stored.read() == b"okapi flavor"


def test_the_creator_and_a_maintainer_still_change_a_members_run(victim_run, attacker):
    # given a run the plain member created through the API, in the victim's project (which
    # the victim maintains)
    run, project = victim_run
    member, raw = attacker
    mine = ingest.create_run(member, project, "mine", {})
    victims_raw = tokens.create_token(run.created_by, "victim", "write", None)[1]
    client = Client()

    def post(path: str, body: dict[str, Any], token: str) -> int:
        return client.post(f"/api/2.0/mlflow/{path}", json.dumps(body),
                           content_type="application/json", **headers(token)).status_code

    # when the member logs to their own run, and the maintainer tags it and then deletes it
    logged = post("runs/log-metric", {"run_id": str(mine.pk), "key": "loss", "value": 0.3,
                                      "timestamp": 1, "step": 1}, raw)
    tagged = post("runs/set-tag", {"run_id": str(mine.pk), "key": "review", "value": "ok"},
                  victims_raw)
    deleted = post("runs/delete", {"run_id": str(mine.pk)}, victims_raw)

    # then all three are done
    assert (logged, tagged, deleted) == (200, 200, 200)
    mine.refresh_from_db()
    assert mine.spec["tags"] == {"review": "ok"} and mine.deleted_at is not None
    assert sum(len(steps) for steps in curves(mine).values()) == 1


def test_a_member_artifact_upload_to_their_own_run_still_works(victim_run, attacker):
    # given the plain member's own run in the shared project
    _, project = victim_run
    member, raw = attacker
    mine = ingest.create_run(member, project, "mine", {})

    # when they upload an artifact to it
    response = Client().put(
        f"/api/2.0/mlflow-artifacts/artifacts/{project.pk}/{mine.pk}/artifacts/notes.txt",
        b"mine", content_type="application/octet-stream", **headers(raw))

    # then it is stored
    assert response.status_code == 200
    with default_storage.open(f"{artifacts.storage_root(mine)}/notes.txt") as stored:
        assert stored.read() == b"mine"
