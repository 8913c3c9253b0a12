"""The everyday calls of a demanding MLflow user, each through the real client against Fitboard
(pytest-django's live server): experiments, nested runs, tags, dicts and texts, folders of
artifacts, datasets, search with filters, delete and restore, and a PyTorch model logged and
loaded back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import requests
import torch
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project, enrol
from webapp.projects.models import Membership, Project
from webapp.tracking import tokens


def test_a_nested_run_names_its_parent(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="sweep") as parent:
        with mlflow.start_run(run_name="trial-1", nested=True) as child:
            mlflow.log_param("lr", 0.1)

    fetched = tracking.get_run(child.info.run_id)
    assert fetched.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert fetched.info.run_name == "trial-1" and fetched.info.status == "FINISHED"


def test_metrics_params_and_tags_read_back_through_get_run(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": 0.01, "optimizer": "adamw"})
        mlflow.log_metrics({"loss": 0.5, "acc": 0.8}, step=3, timestamp=1_790_000_000_000)
        mlflow.set_tags({"team": "vision", "stage": "draft"})
        mlflow.set_tag("stage", "final")
        mlflow.delete_tag("team")

    fetched = tracking.get_run(run.info.run_id)
    assert fetched.data.params == {"lr": "0.01", "optimizer": "adamw"}
    assert fetched.data.metrics == {"loss": 0.5, "acc": 0.8}
    assert fetched.data.tags["stage"] == "final" and "team" not in fetched.data.tags
    history = tracking.get_metric_history(run.info.run_id, "acc")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(3, 0.8, 1_790_000_000_000)]


def test_deleting_an_unknown_tag_is_404(tracking):
    mlflow.set_experiment("vision")
    with mlflow.start_run():
        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|does not exist"):
            mlflow.delete_tag("never-set")


def test_dicts_texts_and_a_folder_of_artifacts_come_back(tracking, tmp_path):
    mlflow.set_experiment("vision")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta")
    with mlflow.start_run() as run:
        mlflow.log_dict({"classes": ["cat", "dog"]}, "config/labels.json")
        mlflow.log_text("all good", "notes.txt")
        mlflow.log_artifacts(str(folder), artifact_path="plots")

    run_id = run.info.run_id
    top = {f.path: f.is_dir for f in tracking.list_artifacts(run_id)}
    inner = [f.path for f in tracking.list_artifacts(run_id, "plots")]
    local = Path(tracking.download_artifacts(run_id, "plots", str(tmp_path / "back")))
    labels = mlflow.artifacts.load_dict(f"runs:/{run_id}/config/labels.json")
    assert top == {"config": True, "notes.txt": False, "plots": True}
    assert inner == ["plots/a.txt", "plots/sub"]
    assert (local / "a.txt").read_text() == "alpha"
    assert (local / "sub" / "b.txt").read_text() == "beta"
    assert labels == {"classes": ["cat", "dog"]}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes.txt") == "all good"


def test_a_logged_dataset_is_an_input_of_the_run(tracking):
    mlflow.set_experiment("vision")
    dataset = mlflow.data.from_numpy(np.arange(12.0).reshape(4, 3), name="toy")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_metric("loss", 0.5)  # a later log keeps the inputs

    inputs = tracking.get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["toy"]
    assert inputs[0].dataset.digest == dataset.digest
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"


@pytest.mark.parametrize(("status", "stored"), [("FAILED", "failed"), ("KILLED", "cancelled")])
def test_end_run_with_a_status_reads_back_as_that_status(tracking, status, stored):
    mlflow.set_experiment("vision")
    run_id = mlflow.start_run().info.run_id
    mlflow.end_run(status=status)

    assert tracking.get_run(run_id).info.status == status
    assert Experiment.objects.get(pk=int(run_id)).status == stored


def _three_runs() -> dict[str, str]:
    """Runs a, b and c of "vision" with rising lr, loss and a tag on b only: their ids."""
    mlflow.set_experiment("vision")
    ids = {}
    for name, lr, loss in (("a", "0.1", 0.9), ("b", "0.01", 0.5), ("c", "0.001", 0.7)):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("loss", loss)
            if name == "b":
                mlflow.set_tag("best", "yes")
        ids[name] = run.info.run_id
    return ids


def test_search_runs_filters_on_metrics_params_and_tags_and_orders(tracking, project):
    ids = _three_runs()
    names = {v: k for k, v in ids.items()}
    experiment = [str(project.pk)]

    def search(filter_string: str, order_by: list[str] | None = None) -> list[str]:
        runs = tracking.search_runs(experiment, filter_string, order_by=order_by)
        return [names[r.info.run_id] for r in runs]

    assert search("metrics.loss < 0.8", ["metrics.loss ASC"]) == ["b", "c"]
    assert search("params.lr = '0.1'") == ["a"]
    assert search("tags.best = 'yes'") == ["b"]
    assert search("metrics.loss > 0.4 and params.lr != '0.01'", ["metrics.loss DESC"]) \
        == ["a", "c"]
    assert search("attributes.run_name LIKE 'b%'") == ["b"]
    assert search("", ["params.lr ASC"]) == ["c", "b", "a"]
    frame = mlflow.search_runs(experiment_names=["vision"], filter_string="metrics.loss <= 0.7",
                               order_by=["metrics.loss"])
    assert list(frame["tags.mlflow.runName"]) == ["b", "c"]


def test_a_bad_filter_is_invalid_parameter_value(tracking, project):
    with pytest.raises(MlflowException) as caught:
        tracking.search_runs([str(project.pk)], "metrics.loss >>> 1")

    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_deleted_run_leaves_search_and_the_pages_and_comes_back_on_restore(
        tracking, project, owner):
    ids = _three_runs()
    page = Client()
    page.force_login(owner)

    tracking.delete_run(ids["b"])
    active = {r.info.run_id for r in tracking.search_runs([str(project.pk)])}
    deleted = tracking.search_runs([str(project.pk)], run_view_type=ViewType.DELETED_ONLY)
    every = tracking.search_runs([str(project.pk)], run_view_type=ViewType.ALL)
    listing = page.get(reverse("experiment-list")).content.decode()
    run_page = page.get(f"/experiments/{ids['b']}/")
    projects = page.get(reverse("project-list")).content.decode()

    assert active == {ids["a"], ids["c"]}
    assert [r.info.run_id for r in deleted] == [ids["b"]]
    assert deleted[0].info.lifecycle_stage == "deleted"
    assert len(every) == 3
    assert tracking.get_run(ids["b"]).info.lifecycle_stage == "deleted"
    assert f"/experiments/{ids['b']}/" not in listing
    assert f"/experiments/{ids['a']}/" in listing
    assert run_page.status_code == 404
    assert f'?project={project.pk}">2</a>' in projects  # the project counts 2 runs

    tracking.restore_run(ids["b"])

    assert {r.info.run_id for r in tracking.search_runs([str(project.pk)])} == set(ids.values())
    assert tracking.get_run(ids["b"]).info.lifecycle_stage == "active"
    assert page.get(f"/experiments/{ids['b']}/").status_code == 200


def test_a_run_of_another_project_cannot_be_deleted(tracking, project, owner):
    # given a run in "vision" and a user who is not a member of it, with a token of their own
    ids = _three_runs()
    stranger = type(owner).objects.create_user("stranger", password="stranger-pass-1")
    create_project(stranger, "theirs")
    raw = tokens.create_token(stranger, "laptop", "write", None)[1]

    # when they try to delete it
    with pytest.raises(MlflowException) as caught:
        _with_token(raw, lambda: MlflowClient().delete_run(ids["a"]))

    # then it is not found for them, and it stays
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert ids["a"] in {r.info.run_id for r in tracking.search_runs([str(project.pk)])}


def _with_token(raw: str, call: Any) -> Any:
    previous = mlflow.environment_variables.MLFLOW_TRACKING_TOKEN.get()
    mlflow.environment_variables.MLFLOW_TRACKING_TOKEN.set(raw)
    try:
        return call()
    finally:
        mlflow.environment_variables.MLFLOW_TRACKING_TOKEN.set(previous)


def test_an_unknown_run_is_resource_does_not_exist(tracking):
    for call in (lambda: tracking.get_run("999999"), lambda: tracking.delete_run("999999"),
                 lambda: tracking.restore_run("nope")):
        with pytest.raises(MlflowException) as caught:
            call()
        assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_experiments_are_found_tagged_and_renamed(tracking, project):
    experiment_id = str(project.pk)

    tracking.set_experiment_tag(experiment_id, "owner", "vision-team")
    tracking.rename_experiment(experiment_id, "vision-2")

    renamed = tracking.get_experiment_by_name("vision-2")
    assert renamed.experiment_id == experiment_id and renamed.tags["owner"] == "vision-team"
    assert tracking.get_experiment_by_name("vision") is None
    assert [e.name for e in tracking.search_experiments()] == ["vision-2"]
    assert [e.name for e in tracking.search_experiments(filter_string="name = 'vision-2'")] \
        == ["vision-2"]
    assert Project.objects.get(pk=project.pk).name == "vision-2"


def test_renaming_to_a_taken_name_is_refused(tracking, project, owner):
    create_project(owner, "audio")

    with pytest.raises(MlflowException) as caught:
        tracking.rename_experiment(str(project.pk), "audio")

    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert Project.objects.get(pk=project.pk).name == "vision"


def test_set_experiment_on_another_teams_project_name_says_what_to_do(tracking, db):
    # given a project another user made, which the token's user is not a member of
    stranger = User.objects.create_user("stranger", password="stranger-pass-123")
    create_project(stranger, "speech")

    # when a script sets that experiment by name
    with pytest.raises(MlflowException) as caught:
        mlflow.set_experiment("speech")

    # then mlflow raises Fitboard's reason (not an AttributeError from reading back a project
    # it cannot see), and nothing was made
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert "ask one of its maintainers to add you" in caught.value.message
    assert list(Project.objects.filter(name__iexact="speech").values_list("name", flat=True)) \
        == ["speech"]


def test_set_experiment_finds_its_project_whatever_the_case(tracking, project):
    # given the project "vision"
    # when a script sets "Vision"
    experiment = mlflow.set_experiment("Vision")

    # then it logs into that project, and no second one is made
    assert experiment.experiment_id == str(project.pk)
    assert Project.objects.filter(name__iexact="vision").count() == 1


def test_deleting_an_experiment_is_refused_and_keeps_its_runs(tracking, project):
    ids = _three_runs()

    with pytest.raises(MlflowException, match="cannot be deleted through the API") as caught:
        tracking.delete_experiment(str(project.pk))

    assert caught.value.error_code == "PERMISSION_DENIED"
    assert Experiment.objects.filter(pk__in=[int(i) for i in ids.values()]).count() == 3


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_a_pytorch_model_is_logged_and_loaded_back(tracking, project):
    torch.manual_seed(0)
    model = _Tiny()
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        # pip_requirements given: inferring them runs a subprocess in the client (15 s here)
        # and sends Fitboard nothing more
        info = mlflow.pytorch.log_model(model, name="tiny", params={"width": 2},
                                        input_example=np.zeros((4, 3), dtype=np.float32),
                                        pip_requirements=["torch"])

    loaded = mlflow.pytorch.load_model(info.model_uri)
    logged = tracking.get_logged_model(info.model_id)
    found = tracking.search_logged_models([str(project.pk)])
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x))
    assert logged.name == "tiny" and logged.source_run_id == run.info.run_id
    assert logged.status.to_int() == 2 and logged.params == {"width": "2"}  # READY
    assert [m.model_id for m in found] == [info.model_id]
    outputs = tracking.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]


def test_an_unknown_logged_model_is_resource_does_not_exist(tracking):
    with pytest.raises(MlflowException) as caught:
        tracking.get_logged_model("m-999999")

    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_call_fitboard_does_not_serve_gets_mlflows_error_not_a_page(tracking):
    # the model registry is not served: the client is told so in MLflow's own format
    with pytest.raises(MlflowException, match="Fitboard does not serve") as caught:
        tracking.create_registered_model("okapi")

    assert caught.value.error_code == "ENDPOINT_NOT_FOUND"


def test_a_logged_model_finalized_with_an_unknown_status_is_refused(tracking, project, token):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        model = tracking.create_logged_model(str(project.pk), name="tiny",
                                             source_run_id=run.info.run_id)

    answer = Client().patch(f"/api/2.0/mlflow/logged-models/{model.model_id}",
                            json.dumps({"status": "DONE"}), content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert tracking.get_logged_model(model.model_id).status.to_int() == 1  # still PENDING


def test_only_a_maintainer_renames_an_experiment(tracking, project, owner):
    member = type(owner).objects.create_user("member", password="member-pass-123")
    enrol(project, member, Membership.Role.MEMBER)
    raw = tokens.create_token(member, "laptop", "write", None)[1]

    with pytest.raises(MlflowException) as caught:
        _with_token(raw, lambda: MlflowClient().rename_experiment(str(project.pk), "mine"))

    assert caught.value.error_code == "PERMISSION_DENIED"
    assert Project.objects.get(pk=project.pk).name == "vision"


def test_a_member_cannot_delete_end_or_log_into_another_members_run(tracking, project, owner):
    # given the owner's run, logged by the client, and a plain member's write token
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 1.0)
    run_id = run.info.run_id
    member = type(owner).objects.create_user("member", password="member-pass-123")
    enrol(project, member, Membership.Role.MEMBER)
    raw = tokens.create_token(member, "laptop", "write", None)[1]

    # when the member's client deletes, renames, logs into and uploads to it
    refusals = []
    for call in (lambda c: c.delete_run(run_id), lambda c: c.set_tag(run_id, "x", "y"),
                 lambda c: c.log_metric(run_id, "loss", 9.0, step=9),
                 lambda c: c.set_terminated(run_id, "FAILED")):
        with pytest.raises(MlflowException) as caught:
            _with_token(raw, lambda call=call: call(MlflowClient()))
        refusals.append(caught.value.error_code)
    with pytest.raises(requests.HTTPError, match="another member"):
        _with_token(raw, lambda: MlflowClient().log_text(run_id, "hijacked", "notes.txt"))

    # then each is PERMISSION_DENIED, while the member still reads the run
    assert refusals == ["PERMISSION_DENIED"] * 4
    read = _with_token(raw, lambda: MlflowClient().get_run(run_id))
    assert read.info.lifecycle_stage == "active" and read.info.status == "FINISHED"
    assert read.data.metrics == {"loss": 1.0} and "x" not in read.data.tags


def test_a_deleted_run_takes_no_logs_but_its_files_still_read(tracking, tmp_path):
    mlflow.set_experiment("vision")
    with mlflow.start_run() as run:
        mlflow.log_text("kept", "notes.txt")
    run_id = run.info.run_id
    tracking.delete_run(run_id)

    with pytest.raises(MlflowException, match="is deleted") as caught:
        tracking.log_metric(run_id, "loss", 1.0)

    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert Path(tracking.download_artifacts(run_id, "notes.txt", str(tmp_path))).read_text() \
        == "kept"
    with pytest.raises(requests.HTTPError, match="is deleted"):
        tracking.log_text(run_id, "overwritten", "notes.txt")


@pytest.mark.parametrize("filter_string", ["", "metrics.loss > 0"])
def test_search_runs_pages_with_its_token(tracking, project, filter_string):
    ids = _three_runs()

    first = tracking.search_runs([str(project.pk)], filter_string, max_results=2)
    rest = tracking.search_runs([str(project.pk)], filter_string, max_results=2,
                                page_token=first.token)

    assert len(first) == 2 and first.token and rest.token is None
    assert {r.info.run_id for r in [*first, *rest]} == set(ids.values())


def test_compare_diffs_params_not_the_logged_datasets(tracking, owner):
    mlflow.set_experiment("vision")
    ids = []
    for lr in ("0.1", "0.01"):
        with mlflow.start_run() as run:
            mlflow.log_param("lr", lr)
            mlflow.log_input(mlflow.data.from_numpy(np.zeros((2, 2)), name="toy"))
        ids.append(run.info.run_id)
    client = Client()
    client.force_login(owner)

    page = client.get("/compare/", {"ids": ",".join(ids)}).content.decode()

    assert "params.lr" in page and "inputs" not in page and "mlflow.data.context" not in page


def test_an_unnamed_run_gets_a_name_of_its_own(tracking, project):
    # given two runs a script starts without names (autolog's children, a bare start_run)
    runs = [tracking.create_run(str(project.pk)) for _ in range(2)]

    # then each is named as MLflow's server would name it, under its runName tag too
    names = [tracking.get_run(r.info.run_id).info.run_name for r in runs]
    assert all(re.fullmatch(r"[a-z]+-[a-z]+-\d{3}", name) for name in names), names
    assert [tracking.get_run(r.info.run_id).data.tags["mlflow.runName"] for r in runs] == names
    assert list(Experiment.objects.filter(kind="external").order_by("pk")
                .values_list("name", flat=True)) == names
