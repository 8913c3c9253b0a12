"""Fixtures for the tracking API: users, projects, tokens and the mlflow client pointed at a
live Fitboard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
from django.contrib.auth.models import User
from mlflow import MlflowClient

from webapp.projects.actions import create_project
from webapp.projects.models import Project
from webapp.tracking import tokens


@pytest.fixture
def owner(db: Any) -> User:
    return User.objects.create_user("owner", password="owner-pass-123")


@pytest.fixture
def project(owner: User) -> Project:
    return create_project(owner, "vision")


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
