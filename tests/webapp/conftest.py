"""Fixtures for the web layer: users, a project, experiments in known states."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from training import MemoryReporter, run
from training.data import catalog
from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment
from webapp.projects.models import Membership, Project


@pytest.fixture(autouse=True)
def _forget_uploads() -> Iterator[None]:
    # Each test's database starts afresh and reuses upload ids; facts the engine remembered
    # about an earlier test's "upload:1" must not answer for this one's.
    yield
    catalog.forget()


@pytest.fixture
def owner(db: Any) -> User:
    return User.objects.create_user("owner", password="owner-pass-123")


@pytest.fixture
def stranger(db: Any) -> User:
    return User.objects.create_user("stranger", password="stranger-pass-123")


@pytest.fixture
def mallory(project: Project) -> User:
    """A plain member of the owner's project."""
    user = User.objects.create_user("mallory", password="mallory-pass-123")
    project.members.add(user)
    return user


@pytest.fixture
def project(owner: User) -> Project:
    """The owner's project; they maintain it, as a project's creator does."""
    project = Project.objects.create(name="vision")
    project.members.add(owner, through_defaults={"role": Membership.Role.MAINTAINER})
    return project


@pytest.fixture
def make_experiment(project: Project, owner: User) -> Callable[..., Experiment]:
    def make(status: str = Experiment.Status.QUEUED, **fields: Any) -> Experiment:
        return Experiment.objects.create(
            project=project, name=fields.pop("name", "run"),
            spec=fields.pop("spec", ExperimentSpec().to_dict()),
            created_by=owner, status=status, **fields,
        )

    return make


@pytest.fixture
def owner_client(owner: User) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def stranger_client(stranger: User) -> Client:
    client = Client()
    client.force_login(stranger)
    return client


# Short runs whose checkpoints the "Try it", ONNX and browser tests serve: what they test is the
# serving of a real archive, not its accuracy.
TRY_DIGITS = {"data": {"subset": 400}, "model": {"arch": "cnn", "width": 8},
              "run": {"epochs": 1, "seed": 2, "device": "cpu"}}
TRY_IMDB = {"data": {"dataset": "imdb_sentences", "subset": 400},
            "model": {"arch": "gru", "embed_dim": 16, "hidden_size": 16, "min_freq": 1},
            "run": {"epochs": 1, "seed": 2, "device": "cpu"}}


@pytest.fixture(scope="session")
def trained_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The best checkpoints of a short digits CNN and IMDb GRU, trained once per session."""
    out = {}
    for name, spec in (("digits", TRY_DIGITS), ("imdb", TRY_IMDB)):
        folder = tmp_path_factory.mktemp(name)
        run(ExperimentSpec.from_dict(spec), MemoryReporter(), folder)
        out[name] = (folder / "best.zip").read_bytes()
    return out
