"""The checkpoint loader outside Fitboard: a downloaded checkpoint's README snippet, run verbatim
in a fresh virtual environment that holds the ``fitboard-model`` package and cannot see the
repository, predicts what Fitboard's own engine predicts."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from sklearn import datasets

from tests.checkpoints import store_checkpoint
from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import load
from webapp.experiments.jobs import job_meta
from webapp.experiments.models import Experiment

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "fitboard-model"
# Small and short: the test is about the archive leaving Fitboard, not about accuracy.
DIGITS_CNN = {"data": {"subset": 400}, "model": {"arch": "cnn", "width": 8},
              "run": {"epochs": 1, "seed": 1, "device": "cpu"}}
IMDB_LSTM = {"data": {"dataset": "imdb_sentences", "subset": 400},
             "model": {"arch": "lstm", "embed_dim": 16, "hidden_size": 16, "min_freq": 1},
             "run": {"epochs": 1, "seed": 1, "device": "cpu"}}
# What the test adds around the snippet: inputs before it, the result printed after it.
IMAGES = "import numpy as np\nimages = np.load('images.npy')\n"
REPORT = ("\nimport json\nprint(json.dumps({'labels': result.labels, "
          "'logits': result.logits.tolist(), 'module': fitboard_model.__file__}))\n")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment outside the repository with the package installed from its path
    (no dependencies fetched): torch, safetensors and numpy come from the project's environment
    through a .pth line, which adds that folder alone (not its editable installs)."""
    folder = tmp_path_factory.mktemp("outside")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run([python, "-c", where], check=True, capture_output=True,
                             text=True).stdout.strip()
    Path(purelib, "project-libraries.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # Built from a copy: a build writes its build/ folder beside the sources it builds.
    source = shutil.copytree(PACKAGE, folder / "fitboard-model",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--ignore-installed", str(source)],
                   check=True, cwd=folder, env=clean_env(), capture_output=True)
    return python


def clean_env() -> dict[str, str]:
    """The environment less anything that would put the repository on the path."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP")}


def downloaded(client: Any, experiment: Experiment, folder: Path) -> Path:
    """The run's best checkpoint, downloaded from its page's link under the name it is
    served with."""
    response = client.get(reverse("checkpoint-download", args=[experiment.pk, "best"]))
    assert response.status_code == 200
    name = re.search(r'filename="([^"]+)"', response["Content-Disposition"]).group(1)
    path = folder / name
    path.write_bytes(b"".join(response.streaming_content))
    return path


def trained(make_experiment: Any, name: str, spec_data: dict[str, Any], tmp: Path) -> Experiment:
    spec = ExperimentSpec.from_dict(spec_data)
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED, name=name,
                                 spec=spec.to_dict())
    run(spec, MemoryReporter(), tmp / str(experiment.pk), meta=job_meta(experiment))
    store_checkpoint(experiment, (tmp / str(experiment.pk) / "best.zip").read_bytes())
    return experiment


def snippet(archive: Path) -> str:
    """The Python block of the archive's README, as written."""
    with zipfile.ZipFile(archive) as opened:
        readme = opened.read("README.md").decode()
    return re.search(r"```python\n(.*?)```", readme, re.S).group(1)


def run_outside(python: Path, folder: Path, code: str) -> dict[str, Any]:
    script = folder / "predict.py"
    script.write_text(code)
    done = subprocess.run([python, str(script)], cwd=folder, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_readme_snippet_predicts_a_digits_cnn_outside_the_repo(
        fresh_venv: Path, make_experiment: Any, owner_client: Any, tmp_path: Path) -> None:
    # given a digits CNN trained by Fitboard, its checkpoint downloaded from the run page
    experiment = trained(make_experiment, "Digits CNN", DIGITS_CNN, settings.MEDIA_ROOT)
    archive = downloaded(owner_client, experiment, tmp_path)
    assert archive.name == f"digits-cnn-{experiment.pk}-best.zip"
    # and sklearn's digits as 0-1 floats (ToTensor's scale), the inputs that once failed
    images = (datasets.load_digits().data[:40].reshape(-1, 1, 8, 8) / 16).astype(np.float32)
    np.save(tmp_path / "images.npy", images)

    # when the README's snippet runs verbatim in the fresh environment
    outside = run_outside(fresh_venv, tmp_path, IMAGES + snippet(archive) + REPORT)

    # then it used the installed package, not the repository
    assert Path(outside["module"]).is_relative_to(fresh_venv.parents[1])
    # and it predicts, with class names, what Fitboard's engine predicts from the digits' own
    # 0-16 pixels (the scale the model was trained on)
    inside = load(archive).classify(images * 16, scale="raw")
    assert outside["labels"] == inside.labels
    assert set(outside["labels"]) <= {str(d) for d in range(10)}
    assert np.allclose(outside["logits"], inside.logits.numpy(), atol=1e-5)


def test_the_readme_snippet_predicts_a_text_model_outside_the_repo(
        fresh_venv: Path, make_experiment: Any, owner_client: Any, tmp_path: Path) -> None:
    # given an LSTM trained on IMDb sentences, its checkpoint downloaded from the run page
    experiment = trained(make_experiment, "IMDb LSTM", IMDB_LSTM, settings.MEDIA_ROOT)
    archive = downloaded(owner_client, experiment, tmp_path)

    # when the README's snippet runs verbatim in the fresh environment
    outside = run_outside(fresh_venv, tmp_path, snippet(archive) + REPORT)

    # then its labels are the class names, and they and the logits are the engine's
    inside = load(archive).classify(["a fine, moving film"])
    assert outside["labels"] == inside.labels
    assert outside["labels"][0] in ("negative", "positive")
    assert np.allclose(outside["logits"], inside.logits.numpy(), atol=1e-5)
