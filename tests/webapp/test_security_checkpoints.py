"""Checkpoints are files addressed by their row, verified by sha256 wherever the web app reads
one, and never unpickled: the source tree holds no pickle loader at all."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.checkpoints import store_checkpoint
from training import ExperimentSpec, MemoryReporter, run
from training.compression.spec import CompressionSpec
from webapp.experiments.actions import create_compression
from webapp.experiments.compression import execute_compression
from webapp.experiments.models import Checkpoint, Experiment

ROOT = Path(__file__).resolve().parents[2]
IRIS_MLP = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
            "run": {"epochs": 2, "batch_size": 32, "device": "cpu"}}


def tamper(checkpoint: Checkpoint) -> None:
    path = settings.MEDIA_ROOT / checkpoint.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def trained(make_experiment, tmp_path) -> Experiment:
    """A finished iris run with its real best checkpoint."""
    spec = ExperimentSpec.from_dict(IRIS_MLP)
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED, spec=spec.to_dict(),
                                 best_metric_name="val_acc", best_metric_value=0.9)
    run(spec, MemoryReporter(), tmp_path)
    store_checkpoint(experiment, (tmp_path / "best.zip").read_bytes())
    return experiment


# --- download ----------------------------------------------------------------------------------


def test_an_intact_archive_downloads(owner_client, make_experiment):
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)
    store_checkpoint(experiment, b"PK archive bytes")

    response = owner_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"PK archive bytes"


def test_a_tampered_archive_is_refused_with_a_clear_error(owner_client, make_experiment):
    # given an archive altered on disk after it was recorded
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)
    tamper(store_checkpoint(experiment, b"PK archive bytes"))

    # when it is downloaded
    response = owner_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    # then nothing of it is served, and the answer says why
    assert response.status_code == 409
    assert "does not match its recorded sha256" in response.content.decode()
    assert "altered or corrupted" in response.content.decode()
    assert b"archive" not in response.content


def test_a_row_pointing_outside_the_media_folder_serves_nothing(owner_client, make_experiment,
                                                                  tmp_path):
    # given a checkpoint row whose path climbs out of the media folder (a forged row)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED)
    Checkpoint.objects.create(experiment=experiment, tag="best", size=10,
                              sha256=hashlib.sha256(b"top secret").hexdigest(),
                              path=str(Path("..") / ".." / ".." / secret))

    response = owner_client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))

    assert response.status_code == 404
    assert b"top secret" not in response.content


# --- compression source ------------------------------------------------------------------------


# Committed rows: the job's reporter writes from its own thread (the system metrics' last
# reading, at least), which a test transaction would hide the job's row from.
@pytest.mark.django_db(transaction=True)
def test_compressing_a_tampered_source_fails_with_a_clear_error(owner, trained):
    # given a compression job queued from an intact source
    job = create_compression(owner, trained, "pruned",
                             CompressionSpec(source=trained.pk, method="prune_weights",
                                             sparsity=0.5, finetune_epochs=0))
    # whose archive is then altered on disk
    tamper(trained.checkpoints.get(tag="best"))

    # when the worker runs it
    execute_compression(job.pk, worker="test")

    # then the job fails, saying the checkpoint does not match, and writes no checkpoint
    job.refresh_from_db()
    assert job.status == Experiment.Status.FAILED
    assert "sha256 does not match" in job.error
    assert not job.checkpoints.exists()


# --- no pickle anywhere ------------------------------------------------------------------------


def python_files() -> list[Path]:
    return sorted(p for folder in ("training", "webapp") for p in (ROOT / folder).rglob("*.py"))


def pickle_uses(source: str) -> list[str]:
    """Calls and imports that can unpickle: pickle/dill/joblib/shelve/marshal, torch.load
    without weights_only=True, numpy loads that allow pickles."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            bad = [n for n in names if n.split(".")[0] in (
                "pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal")]
            found += [f"line {node.lineno}: import {n}" for n in bad]
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                found.append(f"line {node.lineno}: {name} without weights_only=True")
            if name.endswith(("np.load", "numpy.load")) and keywords.get("allow_pickle") != \
                    "False":
                found.append(f"line {node.lineno}: {name} without allow_pickle=False")
            if keywords.get("allow_pickle") == "True":
                found.append(f"line {node.lineno}: allow_pickle=True")
    return found


def test_the_scanner_finds_pickle_loaders():
    assert len(pickle_uses("import pickle\nimport torch\ntorch.load(f)\n"
                           "import numpy as np\nnp.load(f)\nfrom joblib import load\n")) == 4
    assert pickle_uses("torch.load(f, weights_only=True)\nnp.load(f, allow_pickle=False)") == []


def test_no_code_of_the_project_can_unpickle():
    found = {str(p.relative_to(ROOT)): uses for p in python_files()
             if (uses := pickle_uses(p.read_text()))}

    assert found == {}


def test_every_checkpoint_load_in_the_web_app_verifies_the_digest():
    # checkpoints.load(path, sha256) refuses an altered archive only when given the digest
    calls = []
    for path in (ROOT / "webapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("checkpoints.load"):
                keywords = {k.arg: k.value for k in node.keywords}
                digest = keywords.get("sha256", node.args[1] if len(node.args) > 1 else None)
                calls.append((f"{path.name}:{node.lineno}",
                              digest is not None and ast.unparse(digest) != "None"))

    assert calls and all(verified for _, verified in calls), calls
