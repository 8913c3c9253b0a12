"""Fixtures for the tracking API: users, projects, tokens and the mlflow client pointed at a
live Fitboard."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import mlflow
import pytest
from django.contrib.auth.models import User
from mlflow import MlflowClient

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset, LabelScan
from webapp.experiments.models import Checkpoint, Experiment, RunGroup
from webapp.notifications.models import Webhook
from webapp.projects.actions import create_project
from webapp.projects.models import Project
from webapp.tracking import artifacts, ingest, tokens
from webapp.tracking.models import LoggedModel


@pytest.fixture
def owner(db: Any) -> User:
    return User.objects.create_user("owner", password="owner-pass-123")


@pytest.fixture
def project(owner: User) -> Project:
    return create_project(owner, "vision")


@pytest.fixture
def run(owner: User, project: Project) -> Experiment:
    """A script's run of the owner's, as mlflow's runs/create makes it, with nothing logged."""
    return ingest.create_run(owner, project, "script", {})


@pytest.fixture
def token(owner: User, project: Project) -> str:
    """A read-and-write token for all of the owner's projects."""
    return tokens.create_token(owner, "laptop", "write", None)[1]


@pytest.fixture
def tracking(live_server: Any, token: str, project: Project, monkeypatch: Any,
             settings: Any, tmp_path: Any) -> Iterator[MlflowClient]:
    """The mlflow client pointed at Fitboard, as a script would be: two environment
    variables (and no retries: a refusal fails the test at once)."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(live_server.url)
    yield MlflowClient()
    if mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def victim_run(db: Any, settings: Any, tmp_path: Any) -> tuple[Experiment, Project]:
    """Another user's external run with a point, a param and an artifact."""
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    victim = User.objects.create_user("victim", password="victim-pass-123")
    project = create_project(victim, "zoo")
    run = ingest.create_run(victim, project, "okapi", {"team": "okapi"})
    ingest.log_to_run(run, [ingest.Point("loss", 0.5, 1, 1.0)], params={"lr": "0.1"})
    artifacts.save(run, "secret.txt", BytesIO(b"okapi weights"))
    model = LoggedModel.objects.create(project=project, source_run=run, name="okapi model",
                                       params={"okapi": "1"}, created_by=victim)
    artifacts.store(victim, model.artifacts_root, "MLmodel", BytesIO(b"okapi flavor"), model)
    _victims_other_objects(victim, project, tmp_path)
    return run, project


def _victims_other_objects(victim: User, project: Project, media: Any) -> None:
    """A run trained here (a remedy in its verdict, a checkpoint), a study, a group and an
    uploaded data set of the victim, for the routes that name them."""
    spec = ExperimentSpec.from_dict({"data": {"dataset": "iris"},
                                     "model": {"arch": "mlp"}}).to_dict()
    remedy = {"key": "dropout", "title": "Add dropout 0.3", "why": "okapi",
              "patch": {"model": {"dropout": 0.3}}}
    form = Experiment.objects.create(
        project=project, name="okapi form", spec=spec, created_by=victim,
        status=Experiment.Status.SUCCEEDED, verdict={"kind": "overfitting", "remedies": [remedy]})
    data = b"okapi checkpoint"
    (media / "okapi.zip").write_bytes(data)
    Checkpoint.objects.create(experiment=form, tag="best", path="okapi.zip", size=len(data),
                              sha256=hashlib.sha256(data).hexdigest())
    Experiment.objects.create(project=project, name="okapi study", kind=Experiment.Kind.TUNE,
                              spec={"base": spec, "space": {"optim.lr": {
                                  "type": "float", "low": 0.001, "high": 0.1}}},
                              created_by=victim, parent=form)
    group = RunGroup.objects.create(project=project, name="okapi seeds", spec=spec, seeds=[0],
                                    source=form, created_by=victim)
    group.runs.add(form)
    dataset = Dataset.objects.create(project=project, name="okapi data", kind="csv",
                                     folder="okapi", prepared="datasets/okapi/prepared.npz",
                                     created_by=victim)
    Webhook.objects.create(project=project, url="https://93.184.216.34/okapi", secret="okapi",
                           events=["run.failed"], created_by=victim)
    LabelScan.objects.create(dataset=dataset, version=1, created_by=victim,
                             status=LabelScan.Status.DONE, result={
                                 "flagged": 1, "label_names": ["okapi", "zebra"],
                                 "rows": [{"row": 0, "position": 0, "given": 0, "suggested": 1,
                                           "confidence": 0.9, "given_probability": 0.1}],
                                 "confusion": [[0, 1], [0, 0]]})
