"""The storage quota (FITBOARD_STORAGE_QUOTA_GB): a member cannot fill the disk with artifacts,
data sets or the checkpoints of more runs; what anyone stored stays as it was, and deleting
frees room."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset
from webapp.experiments import actions, quota
from webapp.experiments.models import Experiment, StoredArtifact
from webapp.projects import storage
from webapp.tracking import artifacts, ingest, tokens
from webapp.tracking.api import ApiError
from webapp.tracking.models import text_stored_by

from ..conftest import STORAGE_QUOTA
from ..hostile import table_csv

pytestmark = pytest.mark.django_db
QUOTA = STORAGE_QUOTA  # bytes, the media fixture's


def stored_files(media: Path) -> dict[str, bytes]:
    return {str(p.relative_to(media)): p.read_bytes() for p in media.rglob("*") if p.is_file()}


def put(run: Experiment, path: str, data: bytes, token: str, method: str = "put") -> Any:
    url = f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts/{path}"
    send = getattr(Client(), method)
    return send(url, data, content_type="application/octet-stream",
                HTTP_AUTHORIZATION=f"Bearer {token}")


def test_an_artifact_past_the_quota_is_refused_in_mlflows_format_and_nothing_changes(
        media, owner, mallory, project):
    # given the owner's run holding 700 bytes (and its text, about 100) and mallory's 600
    owners_run = ingest.create_run(owner, project, "owner's", {})
    artifacts.save(owners_run, "weights.bin", BytesIO(b"o" * 700))
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    assert put(run, "first.bin", b"m" * 600, token).status_code == 200
    before = stored_files(media)

    # when mallory uploads 600 bytes more
    response = put(run, "second.bin", b"x" * 600, token)

    # then it is refused in MLflow's format, saying the quota, and no file changed
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "storage quota" in response.json()["message"]
    assert stored_files(media) == before
    # and the quota is each user's own: the owner still stores within theirs
    owners_token = tokens.create_token(owner, "laptop", "write", None)[1]
    assert put(owners_run, "more.bin", b"o" * 100, owners_token).status_code == 200


class ReadCountingBody(BytesIO):
    """A request body that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        block = super().read(size)
        self.read_bytes += len(block)
        return block


def put_declared(run: Experiment, path: str, body: ReadCountingBody, token: str) -> Any:
    """An upload whose body declares its length (Content-Length), as mlflow's client sends one."""
    url = f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts/{path}"
    return Client().generic("PUT", url, b"", content_type="application/octet-stream",
                            CONTENT_LENGTH=str(len(body.getvalue())), **{"wsgi.input": body},
                            HTTP_AUTHORIZATION=f"Bearer {token}")


def test_an_artifact_declared_past_the_room_is_refused_before_its_body_is_read(
        media, mallory, project):
    # given mallory's run, with about 900 of her 1000 bytes left
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    body = ReadCountingBody(b"x" * 2000)

    # when she uploads 2,000 bytes, declared in the request's Content-Length
    response = put_declared(run, "big.bin", body, token)

    # then it is refused with the message an upload of no declared length gets once read, and
    # not a byte of the body was read (nor copied to a temporary file), and nothing is stored
    with pytest.raises(ApiError) as read_whole:
        artifacts.save(run, "big.bin", BytesIO(body.getvalue()))
    assert response.status_code == 400
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                               "message": read_whole.value.message}
    assert "storage quota" in response.json()["message"]
    assert body.read_bytes == 0
    assert stored_files(media) == {} and not StoredArtifact.objects.exists()


def test_an_artifact_declared_past_the_upload_limit_is_refused_before_its_body_is_read(
        media, mallory, project, settings):
    # given an upload limit of 1 MB and no storage quota
    settings.FITBOARD_UPLOAD_MAX_BYTES = 2**20
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 0
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    body = ReadCountingBody(b"x" * (2**20 + 1))

    # when a file of a byte more is uploaded, its length declared
    response = put_declared(run, "big.bin", body, token)

    # then it is refused as one found larger while read is, having read none of it
    assert response.status_code == 400
    assert response.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message":
                               "artifact 'big.bin' is larger than 1 MB (FITBOARD_UPLOAD_MAX_MB)"}
    assert body.read_bytes == 0
    assert stored_files(media) == {} and not StoredArtifact.objects.exists()
    # and a file of the limit, declared so, is read and stored
    assert put_declared(run, "fits.bin", ReadCountingBody(b"x" * 2**20), token).status_code == 200


def test_an_artifact_declared_to_fill_the_room_exactly_is_stored_and_a_byte_more_is_not(
        media, mallory, project):
    # given mallory's run, her run's text taking part of her 1000 bytes
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    free = QUOTA - storage.stored_bytes(mallory)

    # when she uploads a file of exactly the room left, its length declared, then one byte
    fits = put_declared(run, "fits.bin", ReadCountingBody(b"f" * free), token)
    over = put_declared(run, "over.bin", ReadCountingBody(b"o"), token)

    # then the first is stored whole (its bytes counted once, not as declared and again as
    # read) and leaves her at the quota exactly; the byte past it is refused
    assert fits.status_code == 200, fits.content
    assert stored_files(media) == {f"{artifacts.storage_root(run)}/fits.bin": b"f" * free}
    assert storage.stored_bytes(mallory) == QUOTA
    assert over.status_code == 400 and "storage quota" in over.json()["message"]


def test_replacing_or_deleting_ones_own_artifact_frees_its_room(media, mallory, project):
    # given mallory's run holding 600 of her 1000 bytes
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    assert put(run, "first.bin", b"m" * 600, token).status_code == 200

    # when she replaces it with 800 bytes, then deletes it and uploads 800 bytes elsewhere
    # (her run's text takes about 100 bytes of the 1000)
    replaced = put(run, "first.bin", b"r" * 800, token)
    deleted = put(run, "first.bin", b"", token, method="delete")
    again = put(run, "other/second.bin", b"s" * 800, token)

    # then each fits: the replaced and the deleted file no longer count
    assert (replaced.status_code, deleted.status_code, again.status_code) == (200, 200, 200)
    root = artifacts.storage_root(run)
    assert not default_storage.exists(f"{root}/first.bin")
    assert stored_files(media) == {f"{root}/other/second.bin": b"s" * 800}
    # and deleting a folder deletes every file in it, freeing the quota but for her run's text
    assert put(run, "other", b"", token, method="delete").status_code == 200
    assert stored_files(media) == {}
    assert storage.stored_bytes(mallory) == text_stored_by(mallory)
    free = QUOTA - storage.stored_bytes(mallory)
    assert put(run, "last.bin", b"l" * free, token).status_code == 200


def test_a_member_cannot_delete_another_members_artifact(media, owner, mallory, project):
    owners_run = ingest.create_run(owner, project, "owner's", {})
    artifacts.save(owners_run, "weights.bin", BytesIO(b"o" * 10))
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    response = put(owners_run, "weights.bin", b"", token, method="delete")

    assert response.status_code == 403
    assert stored_files(media) == {f"{artifacts.storage_root(owners_run)}/weights.bin": b"o" * 10}


def test_a_data_set_past_the_quota_is_refused_on_its_field_on_the_page_and_in_the_api(
        media, mallory, project):
    # given mallory storing 800 bytes of artifacts (and her run's text, about 100)
    run = ingest.create_run(mallory, project, "mallory's", {})
    artifacts.save(run, "weights.bin", BytesIO(b"m" * 800))
    before = stored_files(media)
    client = Client()
    client.force_login(mallory)
    data = {"name": "flowers", "project": project.pk, "kind": "csv", "missing": "drop",
            "task": "classification", "image_size": "16"}

    # when she uploads a CSV of a few kilobytes, on the page and through the REST API
    page = client.post(reverse("dataset-new"),
                       {**data, "file": SimpleUploadedFile("a.csv", table_csv(200))})
    token = tokens.create_token(mallory, "api", "write", None)[1]
    api = Client().post("/api/v1/datasets/",
                        {**data, "file": SimpleUploadedFile("a.csv", table_csv(200))},
                        HTTP_AUTHORIZATION=f"Bearer {token}")

    # then both are refused on the file field, and nothing is stored
    assert page.status_code == 200
    assert "storage quota" in " ".join(page.context["form"].errors["file"])
    assert api.status_code == 400
    assert "storage quota" in api.json()["errors"]["file"]
    assert not Dataset.objects.exists()
    assert stored_files(media) == before


def test_a_data_set_counts_its_prepared_file_too(media, mallory, project, settings):
    # given a quota of 10 kB and a CSV of about 6 kB
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10_000
    client = Client()
    client.force_login(mallory)
    data = {"name": "flowers", "project": project.pk, "kind": "csv", "missing": "drop",
            "task": "classification", "image_size": "16"}
    content = table_csv(400)

    # when she uploads it twice
    first = client.post(reverse("dataset-new"), {**data, "file": SimpleUploadedFile("a.csv",
                                                                                     content)})
    second = client.post(reverse("dataset-new"), {**data, "file": SimpleUploadedFile("a.csv",
                                                                                      content)})

    # then the first is stored with its upload and prepared file counted, the second refused
    assert first.status_code == 302, first.context["form"].errors
    dataset = Dataset.objects.get()
    assert dataset.stored_size == len(content) + dataset.prepared.size
    assert second.status_code == 200
    assert "storage quota" in " ".join(second.context["form"].errors["file"])


def test_a_member_at_the_quota_launches_no_run_while_others_still_do(media, owner, mallory,
                                                                      project):
    # given mallory storing her whole quota
    run = ingest.create_run(mallory, project, "mallory's", {})
    artifacts.save(run, "weights.bin", BytesIO(b"m" * (QUOTA - storage.stored_bytes(mallory))))

    # when she launches a run, its checkpoints needing room
    with pytest.raises(quota.OverQuota, match="storage quota"):
        actions.create_experiment(mallory, project, "more", ExperimentSpec())

    # then nothing is queued for her, and the owner launches as before
    assert not Experiment.objects.filter(created_by=mallory, kind=Experiment.Kind.TRAIN).exists()
    assert actions.create_experiment(owner, project, "theirs", ExperimentSpec()).pk


def test_a_run_holds_at_most_max_files_and_still_takes_replacements(media, owner, mallory,
                                                                      project, monkeypatch):
    # given runs that may hold 3 files, mallory's holding 3
    monkeypatch.setattr(artifacts, "MAX_FILES", 3)
    run = ingest.create_run(mallory, project, "mallory's", {})
    token = tokens.create_token(mallory, "laptop", "write", None)[1]
    for i in range(3):
        assert put(run, f"plots/{i}.png", b"p", token).status_code == 200

    # when she uploads a fourth, and replaces the first
    fourth = put(run, "plots/3.png", b"p", token)
    replaced = put(run, "plots/0.png", b"q", token)

    # then the fourth is refused, saying the limit, the replacement stored
    assert (fourth.status_code, replaced.status_code) == (400, 200)
    assert "at most 3 files" in fourth.json()["message"]
    root = artifacts.storage_root(run)
    assert stored_files(media) == {f"{root}/plots/0.png": b"q", f"{root}/plots/1.png": b"p",
                                   f"{root}/plots/2.png": b"p"}
    # and the limit is each run's own
    owners_run = ingest.create_run(owner, project, "owner's", {})
    owners_token = tokens.create_token(owner, "laptop", "write", None)[1]
    assert put(owners_run, "plots/0.png", b"o", owners_token).status_code == 200


def test_a_hugging_face_read_leaves_nothing_in_the_shared_cache(media, mallory, project,
                                                                settings, tmp_path):
    # given a CSV in an allowed local folder (the library converts it to Arrow in its cache, as
    # it does a hub download)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "table.csv").write_bytes(table_csv(60))
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [allowed]
    settings.FITBOARD_STORAGE_QUOTA_BYTES = 10**9
    client = Client()
    client.force_login(mallory)
    form = {"name": "t", "project": project.pk, "kind": "hf", "missing": "drop",
            "task": "classification", "image_size": "16", "hf_split": "train",
            "label_column": "species"}

    # when it is read twice: once refused (a label column it lacks), once stored
    refused = client.post(reverse("dataset-new"), {**form, "label_column": "nothing",
                                                   "hf_source": str(allowed / "table.csv")})
    stored = client.post(reverse("dataset-new"), {**form, "hf_source": str(allowed / "table.csv")})

    # then only the stored data set's files are kept: the library's cache is gone each time
    assert refused.status_code == 200 and stored.status_code == 302
    cache = media / "hf-cache"
    assert not [p for p in cache.rglob("*") if p.is_file()]
    dataset = Dataset.objects.get()
    assert set(stored_files(media)) == {dataset.prepared.name}
