"""Requests as mlflow 2.x clients send them, each answered as MLflow's server answers
(``tools/mlflow_diff.py --client-python`` ran its scenario with mlflow-skinny 2.22 and 2.16
against both servers): through the pinned client (3.17) where it sends the same request, else
as 2.x's own HTTP request, with ``requests``."""

from __future__ import annotations

import json

import mlflow
import requests
from mlflow.entities import Dataset, DatasetInput

A = "api/2.0/mlflow-artifacts/artifacts"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_dataset_logged_without_a_schema_reads_back_without_one(tracking):
    # mlflow 2.22's client sends no schema when it infers none (its numpy and pandas data sets
    # need scipy); it read back "", and json.loads(dataset.schema) failed where MLflow's None
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        tracking.log_inputs(run.info.run_id, [DatasetInput(Dataset(
            name="digits", digest="3efaaf32", source_type="code", source="{}"))])

    dataset = tracking.get_run(run.info.run_id).inputs.dataset_inputs[0].dataset

    assert (dataset.name, dataset.digest, dataset.source_type) == ("digits", "3efaaf32", "code")
    assert dataset.schema is None and dataset.profile is None


def test_an_image_mlflow_2_16_logged_downloads_under_the_name_that_client_lists(tracking,
                                                                                 token):
    # mlflow 2.16 names log_image(key=...)'s files "<key>%step%<n>%timestamp%<ms>%<uuid>",
    # uploads them under that name and decodes the names it lists before downloading them:
    # "%17" of the time became a control character, "%EF" of the id an invalid byte, and
    # download_artifacts failed on every such file
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        pass
    folder = (f"{mlflow.get_tracking_uri()}/{A}/{run.info.experiment_id}/{run.info.run_id}"
              "/artifacts/images/")

    # when 2.16 uploads the file, lists the folder and downloads what it read in the list
    put = requests.put(folder + "digits%25step%252%25timestamp%251796427979824%25EF8e30b6.png",
                       data=b"png", headers=_auth(token), timeout=30)
    listed = [f.path for f in tracking.list_artifacts(run.info.run_id, "images")]
    got = requests.get(folder + "digits%25step%252%25timestamp%1796427979824%EF%BF%BD8e30b6.png",
                       headers=_auth(token), timeout=30)

    # then the file is stored, listed and downloaded under the names MLflow's server has
    assert put.status_code == 200
    assert listed == ["images/digits%step%2%timestamp%1796427979824\ufffd8e30b6.png"]
    assert (got.status_code, got.content) == (200, b"png")


def test_an_image_name_of_mlflow_2_22_reads_back_as_logged(tracking):
    # 2.22 quotes the names it sends and starts the id with a letter: its names are kept as
    # logged ("%17" of the time is not read as a control character)
    name = "images/digits%step%2%timestamp%1796427620380%g32ba619-c728.png"
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_text("png", name)

    assert [f.path for f in tracking.list_artifacts(run.info.run_id, "images")] == [name]
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{name}") == "png"


def test_a_model_mlflow_2_logged_is_in_the_runs_model_history(tracking, token):
    # mlflow 2's log_model stores the files among the run's artifacts and sends the model's
    # description to runs/log-model, which MLflow's server appends to a tag of the run
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_text("flavors: {}", "net/MLmodel")
    model = {"artifact_path": "net", "run_id": run.info.run_id,
             "utc_time_created": "2026-12-04 23:45:38.000000",
             "flavors": {"pytorch": {"pytorch_version": "2.13.0"},
                         "python_function": {"loader_module": "mlflow.pytorch"}}}

    answer = requests.post(f"{mlflow.get_tracking_uri()}/api/2.0/mlflow/runs/log-model",
                           json={"run_id": run.info.run_id, "model_json": json.dumps(model)},
                           headers=_auth(token), timeout=30)

    assert (answer.status_code, answer.json()) == (200, {})
    history = json.loads(tracking.get_run(run.info.run_id).data.tags["mlflow.log-model.history"])
    assert history == [model]
    assert [f.path for f in tracking.list_artifacts(run.info.run_id, "net")] == ["net/MLmodel"]
