"""Fixtures for the REST API: users, projects, tokens and a client that sends a token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from training.data import catalog
from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment
from webapp.projects.actions import create_project
from webapp.projects.models import Project
from webapp.tracking import tokens

IRIS = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
        "run": {"epochs": 3, "batch_size": 32, "device": "cpu"}}


@pytest.fixture(autouse=True)
def _forget_uploads() -> Iterator[None]:
    yield
    catalog.forget()


@dataclass
class Api:
    """A client speaking JSON to /api/v1/ with one token (or a session when ``raw`` is None)."""

    client: Client
    raw: str | None

    def _headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.raw}"} if self.raw else {}

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.client.get("/api/v1/" + path, query or {}, **self._headers())

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post("/api/v1/" + path, json.dumps(body or {}),
                                content_type="application/json", **self._headers())

    def patch(self, path: str, body: Any = None) -> Any:
        return self.client.patch("/api/v1/" + path, json.dumps(body or {}),
                                 content_type="application/json", **self._headers())

    def delete(self, path: str) -> Any:
        return self.client.delete("/api/v1/" + path, **self._headers())


@pytest.fixture
def owner(db: Any) -> User:
    return User.objects.create_user("owner")  # no password: none to hash


@pytest.fixture
def project(owner: User) -> Project:
    return create_project(owner, "vision")  # its creator maintains it


@pytest.fixture
def api(owner: User, project: Project) -> Api:
    """The owner's read-and-write token for all of their projects."""
    return Api(Client(), tokens.create_token(owner, "laptop", "write", None)[1])


@pytest.fixture
def make_run(owner: User, project: Project) -> Any:
    def make(name: str = "run", status: str = Experiment.Status.QUEUED, **fields: Any
             ) -> Experiment:
        return Experiment.objects.create(
            project=fields.pop("project", project), name=name,
            spec=fields.pop("spec", ExperimentSpec.from_dict(IRIS).to_dict()),
            created_by=fields.pop("created_by", owner), status=status, **fields)

    return make
