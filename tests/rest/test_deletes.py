"""DELETE /api/v1/runs/<id>/ and /api/v1/datasets/<id>/: the pages' deletions, for scripts,
with their refusals as status codes (404 unseen, 403 not yours, 409 in use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from webapp.datasets.models import Dataset
from webapp.experiments.models import Checkpoint, Experiment
from webapp.projects import storage
from webapp.projects.actions import create_project
from webapp.projects.models import Membership, Project
from webapp.tracking import tokens

from ..hostile import table_csv
from .conftest import IRIS, Api


@pytest.fixture
def media(media: Path, settings: Any) -> Path:
    """The shared test storage, with room for a data set's files."""
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**6
    return media


@pytest.fixture
def member(project: Project) -> User:
    user = User.objects.create_user("member")  # no password: none to hash
    project.members.add(user, through_defaults={"role": Membership.Role.MEMBER})
    return user


def api_of(user: User, scope: str = "write") -> Api:
    return Api(Client(), tokens.create_token(user, "t", scope, None)[1])


def with_checkpoint(media: Path, run: Experiment, size: int = 50) -> Experiment:
    name = f"runs/{run.pk}/best.zip"
    (media / name).parent.mkdir(parents=True, exist_ok=True)
    (media / name).write_bytes(b"w" * size)
    Checkpoint.objects.create(experiment=run, tag="best", path=name, sha256="0" * 64, size=size)
    return run


def test_deleting_a_run_answers_204_and_frees_its_room(media, owner, api, make_run,
                                                       django_capture_on_commit_callbacks):
    run = with_checkpoint(media, make_run(status=Experiment.Status.FAILED))
    assert storage.stored_bytes(owner) == 50

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"runs/{run.pk}/")

    assert response.status_code == 204
    assert api.get(f"runs/{run.pk}/").status_code == 404
    assert storage.stored_bytes(owner) == 0
    assert not (media / f"runs/{run.pk}/best.zip").exists()


def test_a_queued_run_is_409_and_stays(api, make_run):
    run = make_run(status=Experiment.Status.QUEUED)

    response = api.delete(f"runs/{run.pk}/")

    assert response.status_code == 409
    assert "cancel it" in response.json()["detail"]
    assert Experiment.objects.filter(pk=run.pk).exists()


def test_a_run_is_404_outside_ones_projects_and_403_when_anothers(owner, member, make_run):
    stranger = User.objects.create_user("stranger")
    outside = make_run("outside", status=Experiment.Status.SUCCEEDED,
                       project=create_project(stranger, "theirs"), created_by=stranger)
    owners = make_run("owner's", status=Experiment.Status.SUCCEEDED)
    members = make_run("member's", status=Experiment.Status.SUCCEEDED, created_by=member)

    unseen = api_of(owner).delete(f"runs/{outside.pk}/")
    not_yours = api_of(member).delete(f"runs/{owners.pk}/")
    read_only = api_of(member, "read").delete(f"runs/{members.pk}/")
    by_maintainer = api_of(owner).delete(f"runs/{members.pk}/")

    assert (unseen.status_code, not_yours.status_code, read_only.status_code,
            by_maintainer.status_code) == (404, 403, 403, 204)
    assert set(Experiment.objects.values_list("name", flat=True)) == {"outside", "owner's"}


def upload(user: User, project: Project) -> Dataset:
    response = Client().post(
        "/api/v1/datasets/", {"name": "flowers", "project": project.pk, "kind": "csv",
                              "missing": "drop", "task": "classification", "image_size": "16",
                              "file": SimpleUploadedFile("d.csv", table_csv(40))},
        HTTP_AUTHORIZATION=f"Bearer {tokens.create_token(user, 'u', 'write', None)[1]}")
    assert response.status_code == 201, response.content
    return Dataset.objects.get(pk=response.json()["id"])


def test_deleting_a_data_set_is_409_while_a_job_trains_on_it_then_204(
        media, owner, project, api, make_run, django_capture_on_commit_callbacks):
    dataset = upload(owner, project)
    spec = {**IRIS, "data": {"dataset": dataset.spec_name}}
    job = make_run(status=Experiment.Status.RUNNING, spec=spec)

    busy = api.delete(f"datasets/{dataset.pk}/")
    Experiment.objects.filter(pk=job.pk).update(status=Experiment.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        deleted = api.delete(f"datasets/{dataset.pk}/")
    relaunch = api.post("runs/", {"project": project.pk, "name": "again", "spec": spec})

    assert busy.status_code == 409 and f"#{job.pk}" in busy.json()["detail"]
    assert deleted.status_code == 204
    assert not Dataset.objects.exists()
    assert storage.stored_bytes(owner) == 0
    assert not [p for p in media.rglob("*") if p.is_file()]
    # and the run that trained on it still reads, while a launch on it is refused on the field
    assert api.get(f"runs/{job.pk}/").status_code == 200
    assert relaunch.status_code == 400
    assert "not a dataset of your projects" in relaunch.json()["errors"]["spec.data.dataset"]


def test_a_data_set_is_404_outside_ones_projects_and_403_when_anothers(media, owner, member,
                                                                       project):
    dataset = upload(owner, project)
    stranger = User.objects.create_user("stranger")
    create_project(stranger, "theirs")

    unseen = api_of(stranger).delete(f"datasets/{dataset.pk}/")
    not_yours = api_of(member).delete(f"datasets/{dataset.pk}/")

    assert (unseen.status_code, not_yours.status_code) == (404, 403)
    assert Dataset.objects.filter(pk=dataset.pk).exists()
