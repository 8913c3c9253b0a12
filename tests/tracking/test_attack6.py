"""Text PostgreSQL cannot store: a NUL character (which it refuses in text and in JSON) or half
of a surrogate pair (which UTF-8 has no bytes for; ``json`` reads "\\ud800"). Sent in a run's
name, a tag, a param, a metric name, a dataset or a logged model, each was a server error on
PostgreSQL (and stored as sent on SQLite); in a query string, on the reads. Every such request
is refused with MLflow's 400 and stores nothing. A logged model's description nested past the
parser's recursion (``runs/log-model``'s ``model_json``) is refused, not a server error; and so
are the artifacts proxy's folder downloaded as a file and folder listed through a file.

``fitboard sync`` of an offline file someone else wrote (a record of the wrong shape, a line
too long, a checkpoint named outside the file's own folder) fails naming the line, before it
makes a run: nothing half-uploaded, and no local file sent as a checkpoint.

And a member's scripts spreading points over many runs stay near their storage quota: each run
was looked at with its first points and then every ``ingest.ROOM_CHECK_POINTS``, so runs given
a point each under the quota then took that many points each, unlooked at."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from fitboard import sync as offline
from fitboard.transport import FitboardError

from webapp.experiments import metric_store
from webapp.experiments.models import POINT_BYTES, Experiment
from webapp.projects import storage
from webapp.projects.models import Project
from webapp.tracking import artifacts, ingest
from webapp.tracking.models import ExperimentTag, LoggedModel, text_stored_by

from .test_points_quota import log_batch

pytestmark = pytest.mark.django_db

M, N = "/api/2.0/mlflow/", "/api/fitboard/v1/"
A = "/api/2.0/mlflow-artifacts/artifacts"
NUL, HALF = "a\x00b", "a\ud800b"
# (path, body), RUN standing for the run's id and TEXT for the text that cannot be stored
WRITES = {
    "log-batch metric name": (M + "runs/log-batch",
                              {"run_id": "RUN", "metrics": [{"key": "TEXT", "value": 1}]}),
    "log-batch param name": (M + "runs/log-batch",
                             {"run_id": "RUN", "params": [{"key": "TEXT", "value": "1"}]}),
    "log-batch tag value": (M + "runs/log-batch",
                            {"run_id": "RUN", "tags": [{"key": "t", "value": "TEXT"}]}),
    "log-parameter value": (M + "runs/log-parameter", {"run_id": "RUN", "key": "p",
                                                       "value": "TEXT"}),
    "set-tag run name": (M + "runs/set-tag", {"run_id": "RUN", "key": "mlflow.runName",
                                              "value": "TEXT"}),
    "update run name": (M + "runs/update", {"run_id": "RUN", "run_name": "TEXT"}),
    "create run name": (M + "runs/create", {"experiment_id": "PROJECT", "run_name": "TEXT"}),
    "experiment tag": (M + "experiments/set-experiment-tag",
                       {"experiment_id": "PROJECT", "key": "TEXT", "value": "v"}),
    "dataset name": (M + "runs/log-inputs", {"run_id": "RUN", "datasets": [
        {"dataset": {"name": "TEXT", "digest": "d"}}]}),
    "logged model name": (M + "logged-models", {"experiment_id": "PROJECT", "name": "TEXT"}),
    "native run name": (N + "runs/create", {"project": "vision", "name": "TEXT"}),
    "native param name": (N + "runs/create", {"project": "vision", "params": {"TEXT": "1"}}),
    "native metric name": (N + "runs/log", {"run_id": "RUN", "metrics": {
        "TEXT": [[1], [0.5], [1.0]]}}),
}


def stored(project: Project) -> list[Any]:
    """What the project holds that a write could have added to."""
    runs = [(r.pk, r.name, r.spec, {k: len(s) for k, s in metric_store.read(r.pk).items()})
            for r in Experiment.objects.filter(project=project).order_by("pk")]
    return [runs, list(ExperimentTag.objects.filter(project=project).values_list("key")),
            list(LoggedModel.objects.filter(project=project).values_list("pk"))]


def send(token: str, path: str, body: Any) -> Any:
    return Client().post(path, json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize("bad", [NUL, HALF], ids=["NUL", "lone surrogate"])
@pytest.mark.parametrize("case", list(WRITES))
def test_text_the_database_cannot_store_is_refused_and_nothing_is_stored(
        case, bad, owner, project, token):
    # given a run of the owner's script
    run = ingest.create_run(owner, project, "okapi", {})
    before = stored(project)
    path, body = WRITES[case]
    sent = json.dumps(body).replace("RUN", str(run.pk)).replace("PROJECT", str(project.pk))

    # when their token sends a text PostgreSQL refuses
    response = send(token, path, json.loads(sent.replace("TEXT", json.dumps(bad)[1:-1])))

    # then MLflow's 400 says why, and nothing of it is stored
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "NUL" in response.json()["message"]
    assert stored(project) == before


def test_a_nul_in_a_query_string_is_refused(owner, project, token):
    # when a read names an experiment with a NUL (a server error on PostgreSQL)
    response = Client().get(M + "experiments/get-by-name", {"experiment_name": NUL},
                            HTTP_AUTHORIZATION=f"Bearer {token}")

    # then it is MLflow's 400, and the same read of a real name still answers
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert Client().get(M + "experiments/get-by-name", {"experiment_name": "vision"},
                        HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize("levels", [100, 5000])
def test_a_model_description_nested_too_deep_is_refused(levels, owner, project, token):
    # given a run, and a model description of arrays nested far past MLflow's deepest
    run = ingest.create_run(owner, project, "okapi", {})
    model_json = "[" * levels + "]" * levels

    # when the script logs it as the run's model
    response = send(token, M + "runs/log-model", {"run_id": str(run.pk),
                                                  "model_json": model_json})

    # then it is refused, and the run's tags hold no model history
    assert response.status_code == 400, response.content[:200]
    run.refresh_from_db()
    assert "mlflow.log-model.history" not in run.spec["tags"]


@pytest.fixture
def files(owner: Any, project: Project, settings: Any, tmp_path: Any) -> str:
    """The artifacts URL of a run of the owner's whose artifacts hold ``dir/file.txt``."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    run = ingest.create_run(owner, project, "okapi", {})
    artifacts.save(run, "dir/file.txt", BytesIO(b"okapi"))
    return f"{project.pk}/{run.pk}/artifacts"


@pytest.mark.parametrize("inner", ["dir", "dir/"])
def test_downloading_a_folder_of_artifacts_is_not_found(inner, token, files):
    # when a script downloads a folder as if it were a file
    response = Client().get(f"{A}/{files}/{inner}", HTTP_AUTHORIZATION=f"Bearer {token}")

    # then it is MLflow's 404 (a server error before), and the file in it still downloads
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    found = Client().get(f"{A}/{files}/dir/file.txt", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert b"".join(found.streaming_content) == b"okapi"


def test_listing_a_path_through_a_file_lists_nothing(token, files):
    # when a script lists a folder whose path goes through a file
    response = Client().get(A, {"path": f"{files}/dir/file.txt/sub"},
                            HTTP_AUTHORIZATION=f"Bearer {token}")

    # then it lists nothing, as for any path that holds nothing (a server error before)
    assert response.status_code == 200
    assert response.json() == {}


HEADER = {"fitboard": 1, "project": "vision", "name": "offline", "params": {}, "tags": {}}
POINTS = {"metrics": {"loss": [[1], [0.5], [1700000000.0]]}}
HOSTILE_FILES = {
    "a record that is not an object": [HEADER, POINTS, [1, 2]],
    "metrics of the wrong shape": [HEADER, POINTS, {"metrics": {"loss": [1, 2, 3]}}],
    "metrics that are not an object": [HEADER, {"metrics": "loss"}],
    "a checkpoint outside its folder": [HEADER, POINTS, {"checkpoint": "../secret.txt",
                                                         "name": "model.pt"}],
    "a checkpoint at an absolute path": [HEADER, POINTS, {"checkpoint": "SECRET",
                                                          "name": "model.pt"}],
    "a checkpoint without a name": [HEADER, {"checkpoint": "run.jsonl.files/x"}],
}


def offline_file(folder: Path, records: list[Any]) -> Path:
    """An offline run's file of ``records`` (SECRET standing for a file outside it)."""
    (folder / "secret.txt").write_bytes(b"the syncing user's private key")
    (folder / "run").mkdir()
    path = folder / "run" / "run.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text.replace('"SECRET"', json.dumps(str(folder / "secret.txt"))))
    return path


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_syncing_a_hostile_offline_file_fails_on_its_line_and_makes_no_run(
        case, live_server, owner, project, token, tmp_path, settings):
    # given an offline run's file that fitboard's client did not write
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "media"}}}
    path = offline_file(tmp_path, HOSTILE_FILES[case])

    # when its owner syncs it
    with pytest.raises(FitboardError) as refused:
        offline.sync(path, live_server.url, token)

    # then the error names the file's line, and no run (nor any file) reached the server
    assert f"{path}:" in str(refused.value)
    assert not Experiment.objects.filter(project=project).exists()
    assert not (tmp_path / "media").exists()


def test_syncing_a_line_longer_than_a_run_writes_is_refused(live_server, owner, project,
                                                            token, tmp_path, monkeypatch):
    # given a file with a line past the longest a run's file holds
    monkeypatch.setattr(offline, "MAX_LINE", 1000)
    path = offline_file(tmp_path, [HEADER, {"metrics": {"loss": [[1] * 500, [0.5] * 500,
                                                                 [1.0] * 500]}}])

    # when it is synced, then it is refused on that line before any run is made
    with pytest.raises(FitboardError, match=r"run.jsonl:2: a line longer than 1,000"):
        offline.sync(path, live_server.url, token)
    assert not Experiment.objects.filter(project=project).exists()


def test_syncing_a_checkpoint_inside_its_folder_still_uploads_it(live_server, owner, project,
                                                                 token, tmp_path, settings):
    # given an offline file whose checkpoint lies in its own .files folder, as the client
    # writes it
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "media"}}}
    path = offline_file(tmp_path, [HEADER, POINTS, {
        "checkpoint": "run.jsonl.files/checkpoints/model.pt", "name": "model.pt"}])
    copy = path.parent / "run.jsonl.files" / "checkpoints" / "model.pt"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"weights")

    # when it is synced, then the run holds its point and its checkpoint
    run = Experiment.objects.get(pk=offline.sync(path, live_server.url, token)["run_id"])
    assert len(metric_store.read(run.pk)["train_loss"]) == 1
    assert artifacts.listing(artifacts.storage_root(run)) == [("checkpoints/model.pt", 7)]


def test_points_spread_over_many_runs_stay_within_the_quota(owner, project, token, settings,
                                                           monkeypatch):
    # given a quota of 100 points' bytes, a look every 300 points, and five runs that each
    # logged a first point while the owner was far under it
    # (the looks doubling from 2 points: from ROOM_FIRST_DOUBLING, 1,024, by default)
    monkeypatch.setattr(ingest, "ROOM_CHECK_POINTS", 300)
    monkeypatch.setattr(ingest, "ROOM_FIRST_DOUBLING", 2)
    runs = [ingest.create_run(owner, project, f"run {n}", {}) for n in range(5)]
    assert [log_batch(token, run, 0, 1)[0] for run in runs] == [200] * 5
    # (beside the runs' text: their specs, names and verdicts)
    settings.FITBOARD_STORAGE_QUOTA_BYTES = text_stored_by(owner) + 100 * POINT_BYTES

    # when the script adds 290 points to each, below the next look of the old rule
    codes = [log_batch(token, run, 1, 290)[0] for run in runs]

    # then the runs together hold no more than the quota (1,455 points before), and what did
    # not fit was refused with the quota's reason
    assert storage.stored_bytes(owner) - text_stored_by(owner) <= 100 * POINT_BYTES
    assert codes == [400] * 5


def test_a_users_scripts_create_a_bounded_number_of_logged_models_an_hour(owner, project,
                                                                         token, settings):
    # given a limit of 3 runs (and so logged models) an hour
    settings.FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR = 3
    body = {"experiment_id": str(project.pk), "params": [{"key": "p", "value": "v" * 6000}]}

    # when a script creates models in a loop
    codes = [send(token, M + "logged-models", body).status_code for _ in range(5)]

    # then the fourth and fifth are refused, saying the limit, and only three are stored
    assert codes == [200, 200, 200, 400, 400]
    refused = send(token, M + "logged-models", body).json()
    assert "FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR" in refused["message"]
    assert LoggedModel.objects.filter(created_by=owner).count() == 3


def test_a_runs_dataset_inputs_are_bounded_in_characters_not_only_in_number(owner, project,
                                                                          token):
    # given a run, and batches of 10 dataset inputs of 60,000 characters each (600 kB a request)
    run = ingest.create_run(owner, project, "okapi", {})

    def inputs(batch: int) -> dict[str, Any]:
        return {"run_id": str(run.pk), "datasets": [{"dataset": {
            "name": f"d{batch}-{n}", "digest": f"{batch}-{n}", "profile": "p" * 60_000}}
            for n in range(10)]}

    # when a script logs ten such batches (100 inputs, 6 MB: each search of the project sent
    # them all)
    codes = [send(token, M + "runs/log-inputs", inputs(batch)).status_code
             for batch in range(10)]

    # then what would take the run past a million characters of inputs is refused
    run.refresh_from_db()
    assert codes == [200] + [400] * 9
    assert len(json.dumps(run.spec.get("inputs", []))) <= ingest.MAX_HELD


def test_a_search_naming_one_experiment_in_many_spellings_reads_it_once(owner, project, token):
    # given a search naming the project 999 ways (" 1", "01", "1  ", ...: distinct strings)
    ids = [" " * n + str(project.pk) for n in range(500)] + [
        "0" * n + str(project.pk) for n in range(1, 500)]
    run = ingest.create_run(owner, project, "okapi", {})

    # when it is sent
    with CaptureQueriesContext(connection) as queries:
        response = send(token, M + "runs/search", {"experiment_ids": ids})

    # then it reads the project once (each spelling was a query of its own), and finds its run
    assert response.status_code == 200
    assert [r["info"]["run_id"] for r in response.json()["runs"]] == [str(run.pk)]
    assert len(queries) < 10
