"""Warm start: a run begins from a checkpoint's weights, matching layers by name and shape, with
a new output layer when the class count differs and the loaded layers optionally frozen first."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import load
from training.data import catalog
from training.data.catalog import dataset_info
from training.data.uploads import read_image_zip
from training.loop import RunOptions, TrainingError, setup
from training.spec import SpecError
from training.warmstart import compatibility_problem, read_weights

from ..hostile import two_class_zip
from .test_uploads import store

# A small digits CNN: one block of two convolutions with batch norm, then the output layer.
CNN = {"arch": "cnn", "width": 4, "blocks": 1}
DIGITS = {"data": {"subset": 300}, "model": CNN, "run": {"epochs": 1, "batch_size": 32}}


class EpochWeights(MemoryReporter):
    """Keeps the weights of each "last" checkpoint the loop writes (one per epoch when the
    checkpoint interval is 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, torch.Tensor]] = []

    def checkpoint(self, path: Path, tag: str, metrics: Any, sha256: str | None = None) -> None:
        super().checkpoint(path, tag, metrics, sha256)
        if tag == "last":
            self.epochs.append(read_weights(path))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a one-epoch digits CNN (seed 5)."""
    folder = tmp_path_factory.mktemp("source")
    spec = ExperimentSpec().patched({**DIGITS, "run": {**DIGITS["run"], "seed": 5,
                                                       "device": "cpu"}})
    run(spec, MemoryReporter(), folder)
    return folder / "best.zip"


def warm(make_spec: Any, **changes: Any) -> ExperimentSpec:
    """The digits CNN spec (seed 0) starting from run #7, with ``changes`` to its sections."""
    patch = {**DIGITS, **changes}
    patch["model"] = {**CNN, "init_from": 7, **changes.get("model", {})}
    return make_spec(patch)


def test_every_matching_tensor_is_loaded_from_the_source_checkpoint(make_spec, source, workdir):
    # Given a spec that starts from the source run's checkpoint
    spec = warm(make_spec)

    # When the engine sets the run up
    t = setup(spec, MemoryReporter(), workdir, RunOptions(init_weights=source))

    # Then every tensor of the model, output layer and batch-norm statistics too, is the source's
    loaded, state = read_weights(source), t.model.state_dict()
    assert state.keys() == loaded.keys()
    for name, tensor in loaded.items():
        assert torch.equal(state[name], tensor), name
    assert t.transfer is not None and t.transfer.new == ()


def test_the_same_spec_without_a_source_starts_from_other_weights(make_spec, source, workdir):
    t = setup(make_spec(DIGITS), MemoryReporter(), workdir, RunOptions())
    loaded = read_weights(source)
    assert not torch.equal(t.model.state_dict()["features.0.weight"], loaded["features.0.weight"])


def test_a_different_class_count_gets_a_new_output_layer(make_spec, source, tmp_path, workdir):
    # Given a two-class image upload (12×12 night and day pictures, resized to 8×8)
    prepared = read_image_zip(io.BytesIO(two_class_zip(per_class=12)), image_size=8)
    sources = store(prepared, tmp_path, "upload:900023")
    spec = warm(make_spec, data={"dataset": "upload:900023", "subset": 0},
                run={"epochs": 1, "batch_size": 8})

    # When a run on it starts from the ten-class digits CNN
    t = setup(spec, MemoryReporter(), workdir, RunOptions(init_weights=source, sources=sources))

    # Then the convolutions are the source's and the output layer is new, shaped for two
    loaded, state = read_weights(source), t.model.state_dict()
    assert t.transfer is not None
    assert set(t.transfer.new) == {"head.3.weight", "head.3.bias"}
    assert state["head.3.weight"].shape == (2, 4)
    assert loaded["head.3.weight"].shape == (10, 4)
    assert torch.equal(state["features.0.weight"], loaded["features.0.weight"])
    catalog.forget()


def test_frozen_layers_hold_for_the_frozen_epochs_then_train(make_spec, source, workdir):
    # Given a two-epoch run from the source with its loaded layers frozen for one epoch
    spec = warm(make_spec, model={"freeze_epochs": 1}, run={"epochs": 2, "batch_size": 32})
    reporter = EpochWeights()

    # When it trains, writing its last checkpoint at each epoch's end
    run(spec, reporter, workdir, init_weights=source, checkpoint_interval=0.0)

    # Then after epoch 1 the body (weights and batch-norm statistics) is exactly the source's
    # while the output layer moved; after epoch 2 the body moved too
    loaded = read_weights(source)
    first, second = reporter.epochs
    body = [name for name in loaded if name.startswith("features.")
            and not name.endswith("num_batches_tracked")]
    assert body
    for name in body:
        assert torch.equal(first[name], loaded[name]), name
    assert not torch.equal(first["head.3.weight"], loaded["head.3.weight"])
    assert not torch.equal(second["features.0.weight"], loaded["features.0.weight"])
    assert not torch.equal(second["features.1.running_mean"], loaded["features.1.running_mean"])


def test_the_checkpoint_carries_the_warm_start(make_spec, source, workdir):
    spec = warm(make_spec, model={"freeze_epochs": 1}, run={"epochs": 2})
    run(spec, MemoryReporter(), workdir, init_weights=source, meta={"warm_start": {"from_run": 7}})
    checkpoint = load(workdir / "best.zip")
    assert checkpoint.spec.model.init_from == 7
    assert checkpoint.spec.model.freeze_epochs == 1
    assert checkpoint.meta["warm_start"] == {"from_run": 7, "loaded": 14, "new": [],
                                             "new_head": False, "frozen": 6}


def test_the_warm_start_fields_round_trip_through_the_spec_dict(make_spec):
    spec = warm(make_spec, model={"freeze_epochs": 1}, run={"epochs": 3})
    assert spec.to_dict()["model"]["init_from"] == 7
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(("model", "run_section", "field", "words"), [
    ({"freeze_epochs": 2}, {}, "model.freeze_epochs", "choose the run to start from"),
    ({"init_from": 3, "freeze_epochs": 4}, {"epochs": 4}, "model.freeze_epochs",
     "fewer than the run's 4 epochs"),
    ({"init_from": -1}, {}, "model.init_from", "must be 0 or more"),
])
def test_bad_warm_start_fields_are_refused_on_the_field(model, run_section, field, words):
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict({"model": {**CNN, **model}, "run": run_section})
    assert words in caught.value.errors[field]


def test_a_text_model_with_its_own_vocabulary_cannot_start_from_a_run():
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict({"data": {"dataset": "imdb_sentences"},
                                  "model": {"arch": "gru", "init_from": 3}})
    assert "builds its vocabulary per run" in caught.value.errors["model.init_from"]


def test_a_spec_started_from_a_run_without_its_weights_file_fails_clearly(make_spec, workdir):
    with pytest.raises(TrainingError, match="starts from run #7, but no weights file"):
        run(warm(make_spec), MemoryReporter(), workdir)


def test_an_incompatible_network_is_refused_before_and_at_training(make_spec, source, workdir):
    # Given a wider CNN than the source's: no convolution has the source's shape
    wider = warm(make_spec, model={"width": 8})
    digits = dataset_info("digits")
    source_spec = load(source).spec

    # Then the spec check says so, and so does the engine
    problem = compatibility_problem(source_spec, digits, wider, digits)
    assert problem is not None and "none of its layers fits" in problem
    assert compatibility_problem(source_spec, digits, warm(make_spec), digits) is None
    mlp = make_spec({"model": {"arch": "mlp", "init_from": 7}})
    assert "same architecture" in (compatibility_problem(source_spec, digits, mlp, digits) or "")
    with pytest.raises(TrainingError, match="none of its layers fits"):
        run(wider, MemoryReporter(), workdir, init_weights=source)
