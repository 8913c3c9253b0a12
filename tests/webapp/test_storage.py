"""Checkpoints through Django's storage: with the S3 backend against a real local S3-compatible
server (moto in server mode on a free port), a worker's checkpoint lands in the bucket, the
download view streams it from there, and it loads and verifies in another process's hands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from tests.stack import free_port
from training import checkpoints
from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "fitboard-test"
KEYS = {"access_key": "testing", "secret_key": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with one empty bucket; its URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Iterator[Any]:
    """Django's default storage pointed at the bucket (as FITBOARD_S3_BUCKET would)."""
    import boto3

    storages = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": s3_endpoint,
                    "region_name": "us-east-1", "file_overwrite": True, "default_acl": None,
                    **KEYS},
    }}
    with override_settings(STORAGES=storages):
        yield boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")


def test_a_workers_checkpoint_is_stored_in_s3_and_downloads_from_there(
        s3_storage, make_experiment, owner_client, tmp_path):
    # given a queued iris MLP, trained by the worker code while storage is the S3 bucket
    spec = ExperimentSpec.from_dict({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                                     "run": {"epochs": 3, "device": "cpu"}})
    experiment = make_experiment(spec=spec.to_dict())
    execute_training(experiment.pk, worker="test-worker")
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.SUCCEEDED, experiment.error

    # then the best checkpoint is an object in the bucket under the row's name
    stored = experiment.checkpoints.get(tag="best")
    listed = s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert stored.path in {item["Key"] for item in listed}

    # when the worker's local copy is gone and a user downloads the checkpoint
    (Path(settings.MEDIA_ROOT) / stored.path).unlink()
    response = owner_client.get(f"/experiments/{experiment.pk}/checkpoint/best/")

    # then the view streamed it from the bucket, and it loads with its recorded digest
    assert response.status_code == 200
    archive = tmp_path / "best.zip"
    archive.write_bytes(b"".join(response.streaming_content))
    loaded = checkpoints.load(archive, sha256=stored.sha256)
    assert loaded.spec == spec
    assert loaded.meta["experiment_id"] == experiment.pk


def test_a_checkpoint_missing_from_the_bucket_is_a_404(s3_storage, make_experiment,
                                                       owner_client):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)
    experiment.checkpoints.create(tag="best", path=f"runs/{experiment.pk}/best.zip",
                                  sha256="0" * 64, size=1)

    response = owner_client.get(f"/experiments/{experiment.pk}/checkpoint/best/")

    assert response.status_code == 404


def test_a_compression_job_reads_its_source_checkpoint_from_the_bucket(
        s3_storage, make_experiment):
    # given a finished run whose checkpoint lives only in the bucket
    spec = ExperimentSpec.from_dict({"data": {"dataset": "iris"}, "model": {"arch": "mlp"},
                                     "run": {"epochs": 2, "device": "cpu"}})
    source = make_experiment(spec=spec.to_dict())
    execute_training(source.pk, worker="test-worker")
    stored = source.checkpoints.get(tag="best")
    (Path(settings.MEDIA_ROOT) / stored.path).unlink()

    # when a worker needs it on its disk
    from webapp.experiments import files

    local = files.local_copy(stored.path, stored.sha256)

    # then it has a verified copy in its cache, not the deleted original
    assert local != Path(settings.MEDIA_ROOT) / stored.path
    assert checkpoints.load(local, sha256=stored.sha256).spec == spec
