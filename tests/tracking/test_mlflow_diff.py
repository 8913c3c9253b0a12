"""Answers that differed from MLflow's own server for the same calls of the mlflow client
(tools/mlflow_diff.py runs both), each now as MLflow's server answers, through the real client
(3.17) against Fitboard's live server. A request the client never sends without a field is
sent as a script's own HTTP call would send it, with ``requests``."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException


def _runs(tracking, project, filter_string: str = "", order_by: list[str] | None = None
          ) -> list[str]:
    found = tracking.search_runs([str(project.pk)], filter_string, order_by=order_by)
    return [r.info.run_name for r in found]


def _error_code(call, *args, **kwargs) -> str:
    with pytest.raises(MlflowException) as caught:
        call(*args, **kwargs)
    return caught.value.error_code


@pytest.mark.parametrize("filter_string", [
    "foo.bar = '1'", "attributes.foo = 'x'", "run_namez = 'r1'",
    "metrics.loss < 0.5 AND attributes.bogus = 'x'"])
def test_a_filter_on_a_key_no_run_has_is_refused_not_an_empty_answer(tracking, project,
                                                                      filter_string):
    # a misspelt entity or attribute matched no run, so a script read "nothing found"
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="r1"):
        mlflow.log_metric("loss", 0.1)

    assert _error_code(tracking.search_runs, [str(project.pk)], filter_string) == (
        "INVALID_PARAMETER_VALUE")
    assert _runs(tracking, project, "attributes.run_name = 'r1' AND metrics.loss < 0.5") == [
        "r1"]


@pytest.mark.parametrize("order", ["loss ASC", "attributes.foo", "foo.bar DESC",
                                   "datasets.name"])
def test_an_order_by_a_key_no_run_has_is_refused_not_ignored(tracking, project, order):
    # "loss ASC" (metrics. left out) listed the runs in their default order, unsorted
    mlflow.set_experiment("vision")
    for loss in (0.2, 0.1):
        with mlflow.start_run(run_name=str(loss)):
            mlflow.log_metric("loss", loss)

    assert _error_code(tracking.search_runs, [str(project.pk)], order_by=[order]) == (
        "INVALID_PARAMETER_VALUE")
    assert _runs(tracking, project, order_by=["metrics.loss ASC"]) == ["0.1", "0.2"]


@pytest.mark.parametrize("filter_string", ["bad.key = 'x'", "params.x = '1'",
                                           "metrics.m > 1", "namez = 'x'"])
def test_an_experiment_search_on_a_key_experiments_lack_is_refused(tracking, filter_string):
    assert _error_code(tracking.search_experiments, filter_string=filter_string) == (
        "INVALID_PARAMETER_VALUE")
    assert _error_code(tracking.search_experiments, order_by=["namez ASC"]) == (
        "INVALID_PARAMETER_VALUE")
    assert [e.name for e in tracking.search_experiments(
        filter_string="attribute.name = 'vision'", order_by=["tags.team"])] == ["vision"]


def test_is_null_and_is_not_null_find_runs_without_and_with_a_param_or_tag(tracking,
                                                                           project):
    # MLflow 3's grammar; Fitboard refused the clause as invalid
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="seeded"):
        mlflow.log_param("seed", 1)
        mlflow.set_tag("odd key", "x")
    with mlflow.start_run(run_name="plain"):
        pass

    assert _runs(tracking, project, "params.seed IS NULL") == ["plain"]
    assert _runs(tracking, project, "params.seed IS NOT NULL") == ["seeded"]
    assert _runs(tracking, project, "tags.`odd key` is not null AND params.seed IS NOT NULL"
                 ) == ["seeded"]
    assert _error_code(tracking.search_runs, [str(project.pk)], "metrics.loss IS NULL") == (
        "INVALID_PARAMETER_VALUE")


def test_a_batch_naming_one_param_twice_is_refused_whole(tracking):
    # the later value had been stored, where MLflow's server stores nothing
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        pass
    run_id = run.info.run_id

    code = _error_code(tracking.log_batch, run_id, params=[Param("lr", "0.1"),
                                                           Param("lr", "0.2")])
    again = _error_code(tracking.log_batch, run_id, params=[Param("seed", "1"),
                                                            Param("seed", "1")])

    assert code == again == "INVALID_PARAMETER_VALUE"
    assert tracking.get_run(run_id).data.params == {}


def test_renaming_a_run_renames_its_run_name_tag_too(tracking, project):
    # update_run(name=...) left tags["mlflow.runName"] (the runs table's column) at the old name
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="first") as run:
        pass

    tracking.update_run(run.info.run_id, status="KILLED", name="second")
    tracking.update_run(run.info.run_id, name="third")

    fetched = tracking.get_run(run.info.run_id)
    assert fetched.info.run_name == "third" and fetched.info.status == "KILLED"
    assert fetched.data.tags["mlflow.runName"] == "third"
    assert _runs(tracking, project, "tags.mlflow.runName = 'third'") == ["third"]
    frame = mlflow.search_runs([str(project.pk)])
    assert frame["tags.mlflow.runName"].tolist() == ["third"]


@pytest.mark.parametrize(("method", "route"), [("GET", "runs/get"), ("POST", "runs/update"),
                                               ("POST", "runs/delete"),
                                               ("POST", "runs/set-tag")])
def test_a_request_without_a_run_id_is_a_bad_request_not_a_missing_run(tracking, token,
                                                                        method, route):
    answer = requests.request(method, f"{mlflow.get_tracking_uri()}/api/2.0/mlflow/{route}",
                              json={"key": "k", "value": "v"}, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "run_id" in answer.json()["message"]


def test_a_logged_metric_needs_its_timestamp_as_mlflows_server_has_it(tracking, token):
    # one without was stored at 1970-01-01, first in the metric's history
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5, step=1)
    url = f"{mlflow.get_tracking_uri()}/api/2.0/mlflow/runs/log-metric"

    answer = requests.post(url, json={"run_id": run.info.run_id, "key": "loss", "value": 0.1,
                                      "step": 2}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "timestamp" in answer.json()["message"]
    assert [m.value for m in tracking.get_metric_history(run.info.run_id, "loss")] == [0.5]


def test_metrics_linked_to_a_logged_model_read_back_with_it_and_in_its_search(tracking,
                                                                            project):
    # get_logged_model(...).metrics was always empty, and a search on them found nothing
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        model = tracking.create_logged_model(str(project.pk), name="net",
                                             source_run_id=run.info.run_id)
        mlflow.log_metric("acc", 0.9, step=1, model_id=model.model_id)
        tracking.log_batch(run.info.run_id, metrics=[
            Metric("loss", 0.3, 1000, 2, model_id=model.model_id),
            Metric("loss", float("nan"), 1001, 3, model_id=model.model_id)])

    def found(filter_string: str) -> list[str]:
        return [m.name for m in mlflow.search_logged_models(
            experiment_ids=[str(project.pk)], filter_string=filter_string,
            output_format="list")]

    linked = tracking.get_logged_model(model.model_id).metrics
    assert [(m.key, m.value, m.step, m.run_id) for m in linked[:2]] == [
        ("acc", 0.9, 1, run.info.run_id), ("loss", 0.3, 2, run.info.run_id)]
    assert math.isnan(linked[2].value) and linked[2].model_id == model.model_id
    assert found("metrics.acc > 0.5") == ["net"] and found("metrics.acc > 0.95") == []
    assert tracking.get_run(run.info.run_id).data.metrics["acc"] == 0.9


@pytest.mark.parametrize(("filter_string", "order_key"), [
    ("namez = 'net'", "namez"), ("attributes.bogus = 'x'", "attributes.bogus"),
    ("datasets.name = 'digits'", "datasets.name"),
    ("metrics.acc > 0.5 AND artifact_urix LIKE '%'", "foo.bar")])
def test_a_logged_model_search_on_a_key_no_model_has_is_refused_not_an_empty_answer(
        tracking, project, filter_string, order_key):
    # a misspelt attribute matched no model (or ordered nothing), so a script read "no model"
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        model = tracking.create_logged_model(str(project.pk), name="net",
                                             source_run_id=run.info.run_id)
        mlflow.log_metric("acc", 0.9, step=1, model_id=model.model_id)

    def search(filter_string: str | None = None, order_key: str | None = None) -> list[str]:
        order_by = [{"field_name": order_key}] if order_key else None
        return [m.name for m in tracking.search_logged_models(
            [str(project.pk)], filter_string=filter_string, order_by=order_by)]

    with pytest.raises(MlflowException) as refused_filter:
        search(filter_string)
    with pytest.raises(MlflowException) as refused_order:
        search(order_key=order_key)

    assert refused_filter.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "invalid search key" in refused_filter.value.message
    assert refused_order.value.error_code == "INVALID_PARAMETER_VALUE"
    assert order_key in refused_order.value.message
    # while the keys MLflow's server takes, its other names of the times included, still work
    assert search("attributes.name = 'net' AND metrics.acc > 0.5") == ["net"]
    assert search("creation_time > 0", order_key="last_updated_timestamp") == ["net"]
    assert search("creation_timestamp_ms < 0") == []


def test_a_metric_linked_to_a_model_the_run_cannot_reach_is_refused(tracking, project):
    mlflow.set_experiment("vision")
    with mlflow.start_run():
        code = _error_code(mlflow.log_metric, "acc", 0.9, model_id="m-999999")

    assert code == "RESOURCE_DOES_NOT_EXIST"


def test_set_experiment_finds_again_a_name_it_was_given_with_spaces_around_it(tracking):
    # the project was named without them; the script's next run found no "  vision-2 \n",
    # created it again (taken) and crashed in the client: AttributeError on None
    first = mlflow.set_experiment("  vision-2 \n")

    again = mlflow.set_experiment("  vision-2 \n")

    assert first.experiment_id == again.experiment_id
    assert again.name == "vision-2"
    assert tracking.get_experiment_by_name(" vision-2").experiment_id == first.experiment_id


def test_a_dataset_logged_again_is_one_input_of_the_run_as_first_logged(tracking, project):
    # each repeat with other tags or another context was added, and past 100 refused
    frame = pd.DataFrame({"x": [1, 2, 3]})
    digits = mlflow.data.from_pandas(frame, name="digits")
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        for epoch in range(101):
            mlflow.log_input(digits, context="training", tags={"epoch": str(epoch)})
        mlflow.log_input(digits, context="eval")
        mlflow.log_input(mlflow.data.from_pandas(frame.iloc[:2], name="digits"), context="eval")

    inputs = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, {t.key: t.value for t in i.tags}) for i in inputs] == [
        ("digits", {"mlflow.data.context": "training", "epoch": "0"}),
        ("digits", {"mlflow.data.context": "eval"})]
    assert _runs(tracking, project, "datasets.context = 'eval'") == [run.info.run_name]


def test_a_call_of_mlflow_3s_api_fitboard_lacks_is_its_json_error_not_a_page(tracking):
    # a GenAI data set's or a scorer's call (under /api/3.0/) quoted the HTML of a 404 page
    with pytest.raises(MlflowException) as caught:
        mlflow.genai.datasets.search_datasets()

    assert caught.value.error_code == "ENDPOINT_NOT_FOUND"
    assert caught.value.message.startswith(
        "ENDPOINT_NOT_FOUND: Fitboard does not serve /api/3.0/mlflow/datasets/search")


def test_a_logged_models_tag_is_deleted_and_a_missing_one_is_not_found(tracking, project):
    # delete_logged_model_tag was ENDPOINT_NOT_FOUND
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        model = tracking.create_logged_model(str(project.pk), name="net",
                                             source_run_id=run.info.run_id,
                                             tags={"stage": "dev", "team": "a"})

    tracking.delete_logged_model_tag(model.model_id, "stage")

    assert tracking.get_logged_model(model.model_id).tags == {"team": "a"}
    assert _error_code(tracking.delete_logged_model_tag, model.model_id, "stage") == (
        "RESOURCE_DOES_NOT_EXIST")


def test_a_long_run_name_reads_back_whole_and_is_found_by_it(tracking, project):
    # the name was cut to 200 characters (its tag kept it whole): a search for it found nothing
    name = "lr=0.001_batch=32_" * 14  # 252 characters, as a sweep names its runs
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name=name) as run:
        pass

    assert tracking.get_run(run.info.run_id).info.run_name == name
    assert _runs(tracking, project, f"attributes.run_name = '{name}'") == [name]
    assert mlflow.search_runs([str(project.pk)])["tags.mlflow.runName"].tolist() == [name]


def test_a_run_created_with_two_different_names_is_refused(tracking, project):
    # it took the argument's, and its tag mlflow.runName kept the other
    code = _error_code(tracking.create_run, str(project.pk), run_name="a",
                       tags={"mlflow.runName": "b"})

    assert code == "INVALID_PARAMETER_VALUE"
    assert tracking.create_run(str(project.pk), run_name="c",
                               tags={"mlflow.runName": "c"}).info.run_name == "c"
    assert _runs(tracking, project) == ["c"]


def test_a_model_search_reads_metrics_on_the_data_set_it_names(tracking, project):
    # a metric's last point was read whatever its data set: the model best on "eval" came
    # second, and a filter missed a model whose earlier point on another data set held
    train = mlflow.data.from_numpy(np.zeros((2, 2)), name="train")
    held_out = mlflow.data.from_numpy(np.ones((2, 2)), name="eval")
    mlflow.set_experiment("vision")
    with mlflow.start_run():
        first = mlflow.initialize_logged_model(name="first")
        second = mlflow.initialize_logged_model(name="second")
        mlflow.log_metric("acc", 0.9, model_id=first.model_id, dataset=held_out)
        mlflow.log_metric("acc", 0.5, model_id=first.model_id, dataset=train)
        mlflow.log_metric("acc", 0.7, model_id=second.model_id, dataset=held_out)
        mlflow.log_metric("acc", 0.8, model_id=second.model_id, dataset=train)

    def names(**kwargs) -> list[str]:
        return [m.name for m in mlflow.search_logged_models(
            experiment_ids=[str(project.pk)], output_format="list", **kwargs)]

    best = {"field_name": "metrics.acc", "ascending": False}
    assert names(order_by=[{**best, "dataset_name": "eval"}]) == ["first", "second"]
    assert names(order_by=[{**best, "dataset_name": "train"}]) == ["second", "first"]
    assert names(filter_string="metrics.acc > 0.85") == ["first"]
    assert names(filter_string="metrics.acc > 0.75", datasets=[
        {"dataset_name": "train", "dataset_digest": train.digest}]) == ["second"]
    assert names(datasets=[{"dataset_name": "test", "dataset_digest": "0"}]) == []


def test_the_models_a_run_evaluated_are_its_model_inputs(tracking, project):
    # they were dropped, and the client sent them again with each metric linked to a model
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        model = tracking.create_logged_model(str(project.pk), name="net")
        for step in range(3):
            mlflow.log_metric("acc", 0.5 + step / 10, step=step, model_id=model.model_id)

    inputs = tracking.get_run(run.info.run_id).inputs
    assert [i.model_id for i in inputs.model_inputs] == [model.model_id]
    assert [m.value for m in tracking.get_logged_model(model.model_id).metrics] == [
        0.5, 0.6, 0.7]
