"""Round ten of attacks, as a plain member with an API token who logs from scripts.

What a script stored outside the storage quota: files of no bytes. The quota counted an
artifact as its bytes, so a loop uploading empty files (10,000 a run, 1,000 runs an hour)
added an inode on the disk and a row of up to 1 kB of name in the database for each, counted
as nothing: within any quota, enough to use up the disk's inodes for everyone."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from webapp.projects import storage
from webapp.tracking import ingest, tokens

from .webapp.conftest import _forget_uploads, mallory, owner, project  # noqa: F401

A = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    """Storage in the test's own folder, with the site's default charge per file."""
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    return tmp_path


def put(token: str, run: Any, path: str, data: bytes, method: str = "put") -> Any:
    return getattr(Client(), method)(
        f"{A}/{run.project_id}/{run.pk}/artifacts/{path}", data,
        content_type="application/octet-stream", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_an_empty_artifact_counts_towards_the_quota(media, mallory, project,  # noqa: F811
                                                    settings):
    # given room in mallory's quota for two files of 16 KiB (the least a file counts for)
    settings.FITBOARD_STORAGE_BYTES_PER_FILE = 16 * 1024
    run = ingest.create_run(mallory, project, "empties", {})
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 2 * 16 * 1024
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    # when her script uploads empty files in a loop
    codes = [put(token, run, f"empty/{n}", b"").status_code for n in range(3)]

    # then two are stored, each counted, and the third refused in MLflow's format, saying the
    # quota (every empty file was stored before, counted as nothing)
    assert codes == [200, 200, 400]
    third = put(token, run, "empty/2", b"")
    assert third.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "storage quota" in third.json()["message"]
    assert sorted(p.name for p in media.rglob("*") if p.is_file()) == ["0", "1"]
    # and replacing one of hers, or deleting one to make room, still works
    assert put(token, run, "empty/0", b"x" * 100).status_code == 200
    assert put(token, run, "empty/1", b"", method="delete").status_code == 200
    assert put(token, run, "empty/2", b"").status_code == 200
