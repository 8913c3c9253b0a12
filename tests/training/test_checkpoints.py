"""Checkpoint archives: what they hold, how they are verified, and that a loaded model gives
back exactly what the run measured."""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from sklearn import datasets
from torch import nn

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import FORMAT, Checkpoint, CheckpointError, dataset_meta, load, save
from training.data import dataset_info, prepare
from training.data.loading import split_indices
from training.loop import RunResult
from training.models import build_model


class Saved(NamedTuple):
    path: Path
    digest: str
    model: nn.Module
    spec: ExperimentSpec
    raw: torch.Tensor  # un-normalised inputs the model was not trained on


def save_untrained(spec: ExperimentSpec, workdir: Path) -> Saved:
    """Build ``spec``'s model, give its batch-norm layers non-default statistics, and save it
    with its dataset's real normalisation."""
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    torch.manual_seed(0)
    model = build_model(spec.model, data.info.input_shape, data.info.num_classes or 1)
    model.train()
    with torch.no_grad():
        model(data.x_train[:64])  # moves the running statistics of any batch-norm layer
    model.eval()
    meta = {
        **dataset_meta(data.info),
        "normalisation": data.normalisation.to_dict(),
        "target_mean": data.target_mean,
        "target_std": data.target_std,
    }
    path = workdir / "model.zip"
    digest = save(path, model, spec, meta)
    raw = torch.rand(32, *data.info.input_shape) * 16  # any raw inputs will do
    return Saved(path, digest, model, spec, raw)


@pytest.fixture(params=["mlp", "cnn"])
def saved(request: pytest.FixtureRequest, workdir: Path) -> Saved:
    """An MLP on wine or a batch-norm CNN on digits, saved untrained."""
    patch: dict[str, dict[str, Any]]
    if request.param == "mlp":
        patch = {"data": {"dataset": "wine"}, "model": {"arch": "mlp", "hidden_sizes": [8, 8]}}
    else:
        patch = {"model": {"arch": "cnn", "width": 4}}
    return save_untrained(ExperimentSpec().patched(patch), workdir)


def test_a_loaded_model_predicts_exactly_like_the_saved_one(saved: Saved) -> None:
    # given a saved model and raw inputs
    expected = saved.model(load(saved.path).normalisation.apply(saved.raw))

    # when the archive is loaded and asked to predict from the raw inputs
    predicted = load(saved.path).predict(saved.raw, scale="raw")

    # then the outputs are bit-for-bit the saved model's on the normalised inputs
    assert torch.equal(predicted, expected)


def test_a_loaded_model_is_in_evaluation_mode(saved: Saved) -> None:
    # given a saved model
    # when it is loaded
    checkpoint = load(saved.path)

    # then it is ready to predict: in evaluation mode, on the CPU
    assert not checkpoint.model.training
    assert next(checkpoint.model.parameters()).device.type == "cpu"


def test_the_archive_holds_weights_spec_and_readme_and_no_pickle(saved: Saved) -> None:
    # given a saved archive
    # when its members are listed
    with zipfile.ZipFile(saved.path) as archive:
        names = set(archive.namelist())

    # then it holds exactly the safetensors weights, the JSON spec and the README
    assert names == {"model.safetensors", "spec.json", "README.md"}


def test_the_weights_are_safetensors(saved: Saved) -> None:
    # given a saved archive
    with zipfile.ZipFile(saved.path) as archive:
        weights = archive.read("model.safetensors")

    # when the weights are read with safetensors alone
    from safetensors.torch import load as load_safetensors

    tensors = load_safetensors(weights)

    # then they are the model's state, tensor for tensor
    state = saved.model.state_dict()
    assert tensors.keys() == state.keys()
    assert all(torch.equal(tensors[k], state[k]) for k in state)


def test_the_readme_says_how_to_load_the_archive(saved: Saved) -> None:
    # given a saved archive
    # when its README is read
    with zipfile.ZipFile(saved.path) as archive:
        readme = archive.read("README.md").decode()

    # then it says how to install the loader, names the file and the input shape predict takes
    assert "pip install ./packages/fitboard-model" in readme
    assert 'fitboard_model.load("model.zip")' in readme
    shape = ", ".join(str(s) for s in saved.raw.shape[1:])
    assert f"shaped (N, {shape})" in readme


def test_the_readme_names_the_file_as_it_is_downloaded(workdir: Path) -> None:
    # given a run's checkpoint saved with the stem of its download name
    spec = ExperimentSpec().patched({"model": {"arch": "cnn", "width": 4}})
    info = dataset_info("digits")
    meta = {**dataset_meta(info), "normalisation": {"mean": [0.0], "std": [1.0]},
            "download_stem": "small-cnn-12"}
    save(workdir / "best.zip", build_model(spec.model, info.input_shape, 10), spec, meta)

    # when its README is read
    with zipfile.ZipFile(workdir / "best.zip") as archive:
        readme = archive.read("README.md").decode()

    # then its snippet loads the file the run page serves, and names digits' own pixel scale
    assert 'fitboard_model.load("small-cnn-12-best.zip")' in readme
    assert "0-16" in readme


def test_saving_leaves_no_temporary_file(saved: Saved) -> None:
    # given an archive saved into a folder of its own
    # when the folder is listed
    entries = [p.name for p in saved.path.parent.iterdir()]

    # then only the archive is there
    assert entries == ["model.zip"]


def test_save_returns_the_archives_sha256(saved: Saved) -> None:
    # given a saved archive and the digest save returned
    # when the file's bytes are hashed
    digest = hashlib.sha256(saved.path.read_bytes()).hexdigest()

    # then it is that digest
    assert digest == saved.digest


def test_loading_with_the_recorded_digest_succeeds(saved: Saved) -> None:
    # given a saved archive and its digest
    # when it is loaded with the digest to check
    checkpoint = load(saved.path, sha256=saved.digest)

    # then it loads
    assert checkpoint.spec == saved.spec


def test_loading_with_a_wrong_digest_is_refused(saved: Saved) -> None:
    # given a digest that is not the archive's
    wrong = hashlib.sha256(b"another file").hexdigest()

    # when the archive is loaded with it
    with pytest.raises(CheckpointError) as caught:
        load(saved.path, sha256=wrong)

    # then the error says the digest does not match, naming the file and not its folder
    assert "sha256" in str(caught.value)
    assert str(saved.path.parent) not in str(caught.value)


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_a_weight_byte(data: bytes) -> bytes:
    at = data.index(b"model.safetensors") + 200  # inside the stored weights
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("damage", [truncate, flip_a_weight_byte, lambda _: b"not a zip"],
                         ids=["truncated", "flipped-byte", "not-a-zip"])
def test_a_damaged_archive_is_refused(saved: Saved, damage: Callable[[bytes], bytes]) -> None:
    # given an archive whose bytes were damaged on disk
    saved.path.write_bytes(damage(saved.path.read_bytes()))

    # when it is loaded
    # then it is refused as a checkpoint error that names the file but not the server's folder
    # (pages and the API show the message to members)
    with pytest.raises(CheckpointError) as caught:
        load(saved.path)
    assert "model.zip" in str(caught.value)
    assert str(saved.path.parent) not in str(caught.value)


def test_an_archive_of_another_format_is_refused(saved: Saved) -> None:
    # given a zip with the right members but another format tag
    with zipfile.ZipFile(saved.path) as archive:
        document = json.loads(archive.read("spec.json"))
        weights = archive.read("model.safetensors")
    document["format"] = "someone-else/9"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.safetensors", weights)
        archive.writestr("spec.json", json.dumps(document))
    saved.path.write_bytes(buffer.getvalue())

    # when it is loaded
    with pytest.raises(CheckpointError) as caught:
        load(saved.path)

    # then the error names the format
    assert "someone-else/9" in str(caught.value)


# --- checkpoints written by a run -----------------------------------------------------------


class Trained(NamedTuple):
    spec: ExperimentSpec
    result: RunResult
    best: Checkpoint


def train(spec: ExperimentSpec, workdir: Path) -> Trained:
    meta = {"experiment_id": 41, "git_revision": "0123abc"}
    result = run(spec, MemoryReporter(), workdir, meta=meta)
    return Trained(spec, result, load(workdir / "best.zip"))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A narrow batch-norm CNN trained on digits for two epochs, on the CPU."""
    spec = ExperimentSpec().patched({
        "model": {"width": 8},
        "run": {"epochs": 2, "seed": 4, "device": "cpu"},
    })
    return train(spec, tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """An MLP regression on diabetes, on the CPU."""
    spec = ExperimentSpec().patched({
        "data": {"dataset": "diabetes"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "optim": {"loss": "mse", "lr": 0.01},
        "run": {"epochs": 5, "device": "cpu"},
    })
    return train(spec, tmp_path_factory.mktemp("diabetes"))


def raw_validation_rows(trained: Trained) -> tuple[torch.Tensor, np.ndarray]:
    """The run's validation rows, un-normalised, and their targets, as sklearn ships them."""
    spec = trained.spec
    bunch = {"digits": datasets.load_digits, "diabetes": datasets.load_diabetes}[
        spec.data.dataset]()
    x = bunch.data.astype(np.float32).reshape(-1, *trained.best.meta["input_shape"])
    stratify = bunch.target if trained.best.meta["task"] == "classification" else None
    _, val = split_indices(len(x), spec.data.val_fraction, spec.run.seed, stratify)
    return torch.from_numpy(x[val]), bunch.target[val]


def test_the_checkpoint_carries_the_runs_spec(digits_run: Trained) -> None:
    # given a trained run and its best checkpoint
    # when the checkpoint's spec is read back
    spec = digits_run.best.spec

    # then it is the spec the run was given
    assert spec == digits_run.spec


def test_the_checkpoint_records_what_reproduces_the_run(digits_run: Trained) -> None:
    # given a run started with an experiment id and a git revision
    # when its checkpoint's metadata is read
    meta = digits_run.best.meta

    # then it holds them, with the seed, the library versions and the best epoch's metrics
    assert meta["format"] == FORMAT
    assert (meta["experiment_id"], meta["git_revision"]) == (41, "0123abc")
    assert meta["spec"]["run"]["seed"] == 4
    assert {"python", "torch", "numpy", "safetensors"} <= meta["versions"].keys()
    assert meta["epoch"] == digits_run.result.best_epoch
    assert meta["metrics"] == digits_run.result.best_metrics


def test_predict_reproduces_the_runs_validation_accuracy(digits_run: Trained) -> None:
    # given the best checkpoint of a run and the raw pixels of its validation split
    x_raw, labels = raw_validation_rows(digits_run)

    # when the checkpoint classifies them
    predicted = digits_run.best.predict(x_raw, scale="raw").argmax(1).numpy()

    # then its accuracy is exactly the one the run reported for that epoch
    accuracy = float((predicted == labels).mean())
    assert accuracy == digits_run.result.best_metrics["val_acc"]


def test_the_model_reproduces_the_accuracy_on_prepared_data(digits_run: Trained) -> None:
    # given the best checkpoint and the validation split rebuilt by prepare (already normalised)
    spec = digits_run.spec
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)

    # when the bare model classifies it
    with torch.no_grad():
        predicted = digits_run.best.model(data.x_val).argmax(1)

    # then its accuracy is exactly the one the run reported
    accuracy = int((predicted == data.y_val).sum()) / len(data.y_val)
    assert accuracy == digits_run.result.best_metrics["val_acc"]


def test_predict_gives_regression_values_in_target_units(diabetes_run: Trained) -> None:
    # given the best checkpoint of a regression run and its raw validation rows and targets
    x_raw, targets = raw_validation_rows(diabetes_run)

    # when the checkpoint predicts them
    predicted = diabetes_run.best.predict(x_raw).view(-1).double().numpy()

    # then the error, in the target's own units, is the RMSE the run reported
    rmse = math.sqrt(float(((predicted - targets) ** 2).mean()))
    assert rmse == pytest.approx(diabetes_run.result.best_metrics["val_rmse"], rel=1e-4)


def test_garbage_weights_are_a_checkpoint_error(tmp_path) -> None:
    # given an archive whose spec is fine but whose weights are not safetensors
    spec = ExperimentSpec.from_dict({"data": {"dataset": "iris"}, "model": {"arch": "mlp"}})
    path = tmp_path / "model.zip"
    save(path, build_model(spec.model, (4,), 3), spec,
         {"input_shape": [4], "num_classes": 3, "task": "classification"})
    with zipfile.ZipFile(path) as archive:
        document = archive.read("spec.json")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spec.json", document)
        archive.writestr("model.safetensors", b"not safetensors at all")

    # when it is loaded, then the error says it is not a valid checkpoint
    with pytest.raises(CheckpointError, match="not a valid Fitboard checkpoint"):
        load(path)
