"""Hostile artifact paths sent to the artifacts proxy by a run's own script: each is the
client's 400 (never a 500 from the file system), and nothing is written outside the run's
folder nor replaces what it holds."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from webapp.tracking import artifacts, ingest, tokens

pytestmark = pytest.mark.django_db

HOSTILE = {
    "a name longer than a file system takes": "a" * 256,
    "a path deeper than any run's": "x/" * 2000 + "y",
    "a path longer than any run's": "/".join(["b" * 200] * 6),
    "a folder the run holds": "folder",
    "a file the run holds, as a folder": "folder/weights.bin/more",
    "a NUL byte": "%00x",
    "dot-dot, encoded": "..%2f..%2fescaped",
    "dot-dot, dots encoded": "%2e%2e/escaped",
    "a backslash": "a%5c..%5cescaped",
}


@pytest.fixture
def own_run(owner: Any, project: Any, settings: Any, tmp_path: Any) -> tuple[Any, str]:
    """The owner's external run holding ``folder/weights.bin``, and their write token."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "media"}}}
    run = ingest.create_run(owner, project, "run", {})
    artifacts.save(run, "folder/weights.bin", BytesIO(b"weights"))
    return run, tokens.create_token(owner, "laptop", "write", None)[1]


@pytest.mark.parametrize("path", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_artifact_path_is_refused_with_a_400(own_run, path, tmp_path):
    # given the owner's run, holding one file in a folder
    run, raw = own_run
    prefix = f"/api/2.0/mlflow-artifacts/artifacts/{run.project_id}/{run.pk}/artifacts/"

    # when its script uploads to a hostile path
    response = Client(raise_request_exception=False).put(
        prefix + path, b"hostile", content_type="application/octet-stream",
        HTTP_AUTHORIZATION=f"Bearer {raw}")

    # then it is refused as bad input, and the run holds what it held, nothing more
    assert response.status_code == 400, response.content[:200]
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    written = sorted(str(p.relative_to(tmp_path / "media")) for p in
                     (tmp_path / "media").rglob("*") if p.is_file())
    assert written == [f"{artifacts.storage_root(run)}/folder/weights.bin"]
    with default_storage.open(f"{artifacts.storage_root(run)}/folder/weights.bin") as stored:
        assert stored.read() == b"weights"
    assert not list(tmp_path.glob("escaped"))
