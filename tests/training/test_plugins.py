"""Model and data set plugins in the engine: the example package's MobileNet on its synthetic
shapes, found through entry points only; validated like built-in fields; recorded in and loaded
back from checkpoints (in this process, a fresh one, and one without the package); tuned and
compressed where the operations apply."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import fitboard_model
import pytest
import torch
from torch import nn

from tests.conftest import EXAMPLE_PACKAGE
from tests.plugin_env import fresh_python
from training import MemoryReporter, run
from training.checkpoints import CheckpointError, load
from training.compression.spec import CompressionSpec
from training.spec import ExperimentSpec, SpecError
from training.tuning import TuningSpec, new_study_spec

PLUGIN_SPEC = {
    "data": {"dataset": "shapes", "plugin_options": {"rows": 160, "size": 12}},
    "model": {"arch": "mobilenet", "plugin_config": {"width": 8, "blocks": 2}},
    "optim": {"lr": 0.01}, "run": {"epochs": 1, "batch_size": 32, "device": "cpu"},
}
MISSING = (f"this checkpoint needs the plugin package '{EXAMPLE_PACKAGE}' (model 'mobilenet'); "
           "pip install it")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a one-epoch MobileNet on 160 generated shapes."""
    folder = tmp_path_factory.mktemp("mobilenet")
    run(ExperimentSpec.from_dict(PLUGIN_SPEC), MemoryReporter(), folder)
    return folder / "best.zip"


def test_a_plugin_spec_stores_every_option_of_its_model_and_data_set():
    # when a spec names the plugins with some of their options
    spec = ExperimentSpec.from_dict(PLUGIN_SPEC)

    # then the stored spec holds each option, defaults filled in, and round-trips
    assert spec.model.plugin_config == {"width": 8, "blocks": 2, "dropout": 0.0}
    assert spec.data.plugin_options == {"rows": 160, "size": 12, "noise": 0.15, "seed": 0}
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    assert spec.data.info().input_shape == (1, 12, 12) and spec.train_rows() == 128


def test_a_spec_saved_before_plugins_existed_loads_with_empty_plugin_fields():
    # given a stored spec without the plugin fields
    old = {"version": 1, "data": {"dataset": "digits"}, "model": {"arch": "cnn"}}

    # then it loads, and its plugin fields are empty
    spec = ExperimentSpec.from_dict(old)
    assert spec.model.plugin_config == {} and spec.data.plugin_options == {}


@pytest.mark.parametrize("name", ["os:system", "builtins.eval", "os.system",
                                  "fitboard_example_plugin.mobilenet:MobileNet"])
def test_a_module_path_is_refused_on_its_field_and_never_imported(name):
    # when a spec names code by its module path instead of a discovered plugin's name
    with pytest.raises(SpecError) as refused:
        ExperimentSpec.from_dict({"model": {"arch": name}})
    with pytest.raises(SpecError) as refused_data:
        ExperimentSpec.from_dict({"data": {"dataset": name}})

    # then each is refused on its field, the known names listed
    assert list(refused.value.errors) == ["model.arch"]
    assert "mobilenet" in refused.value.errors["model.arch"]
    assert "no installed plugin provides a model" in refused.value.errors["model.arch"]
    assert list(refused_data.value.errors) == ["data.dataset"]
    assert "shapes" in refused_data.value.errors["data.dataset"]


def test_each_bad_plugin_option_gets_its_own_error():
    # when options are out of range, of the wrong type, unknown, or given to a built-in
    with pytest.raises(SpecError) as refused:
        ExperimentSpec.from_dict({
            "data": {"dataset": "shapes", "plugin_options": {"rows": 5, "noise": "loud"}},
            "model": {"arch": "mobilenet", "plugin_config": {"width": 0, "depth": 3}}})
    with pytest.raises(SpecError) as builtin:
        ExperimentSpec.from_dict({"model": {"arch": "cnn", "plugin_config": {"width": 8}}})

    # then every one is named by its path, with the range and unit the plugin declared
    assert refused.value.errors == {
        "data.plugin_options.rows": "must be between 40 and 200000 rows",
        "data.plugin_options.noise": "must be a number",
        "model.plugin_config.width": "must be between 4 and 256 channels",
        "model.plugin_config.depth": "unknown field",
    }
    assert builtin.value.errors == {
        "model.plugin_config": "applies to plugin models only: leave it empty"}


def test_a_plugin_model_reads_only_the_modalities_it_declares():
    with pytest.raises(SpecError) as refused:
        ExperimentSpec.from_dict({"data": {"dataset": "iris"}, "model": {"arch": "mobilenet"}})
    assert refused.value.errors == {"model.arch": "mobilenet needs image data; iris is tabular"}


def test_its_checkpoint_records_the_package_and_loads_back_in_the_engine_and_the_loader(
        archive):
    # when the checkpoint is loaded by the engine and by the standalone loader
    with zipfile.ZipFile(archive) as zipped:
        document = json.loads(zipped.read("spec.json"))
    engine, loader = load(archive), fitboard_model.load(archive)
    images = torch.rand(3, 1, 12, 12)

    # then it says which packages its model and data came from, and both predict alike
    assert [(p["group"], p["name"], p["distribution"], p["version"])
            for p in document["plugins"]] == [
        ("fitboard.models", "mobilenet", EXAMPLE_PACKAGE, "0.1.0"),
        ("fitboard.datasets", "shapes", EXAMPLE_PACKAGE, "0.1.0")]
    assert type(engine.model).__name__ == type(loader.model).__name__ == "MobileNet"
    assert torch.allclose(engine.predict(images), loader.outputs(images), atol=1e-5)


@pytest.mark.usefixtures("uninstalled_plugin")
def test_without_the_plugin_the_engine_names_the_missing_package(archive):
    # when the plugin is gone and the checkpoint or a clone of its spec is loaded
    with pytest.raises(CheckpointError) as refused:
        load(archive)
    with pytest.raises(SpecError) as clone:
        ExperimentSpec.from_dict(PLUGIN_SPEC)

    # then each says what is missing
    assert str(refused.value) == f"best.zip: {MISSING}"
    assert set(clone.value.errors) == {"data.dataset", "model.arch"}


def test_a_fresh_process_loads_the_checkpoint_with_the_package_and_names_it_without(
        archive, tmp_path):
    # given the lines a downloaded checkpoint's README gives
    code = ("import fitboard_model, torch\n"
            f"c = fitboard_model.load({str(archive)!r})\n"
            "print(type(c.model).__name__, c.predict(torch.rand(2, 1, 12, 12)).labels)\n")

    # when they run in a new interpreter, with the plugin installed and with it absent
    present = fresh_python(code, tmp_path, without_example=False)
    absent = fresh_python(code, tmp_path, without_example=True)

    # then the first predicts with MobileNet, the second names the package to install
    assert present.returncode == 0, present.stderr
    assert present.stdout.startswith("MobileNet [")
    assert absent.returncode == 1
    assert absent.stderr.strip().endswith(f"CheckpointError: best.zip: {MISSING}"), absent.stderr


def test_a_study_searches_a_plugin_option():
    # when a study's space holds the model plugin's width and the data plugin's noise
    study = TuningSpec.from_dict({
        "base": ExperimentSpec.from_dict(PLUGIN_SPEC).to_dict(), "n_trials": 2,
        "space": {"model.plugin_config.width": {"type": "int", "low": 4, "high": 16},
                  "data.plugin_options.noise": {"type": "float", "low": 0.0, "high": 0.5}}})
    trial = study.trial_spec({"model.plugin_config.width": 12,
                              "data.plugin_options.noise": 0.3})

    # then a trial changes just those options
    assert trial.model.plugin_config == {"width": 12, "blocks": 2, "dropout": 0.0}
    assert trial.data.plugin_options["noise"] == 0.3 and trial.data.plugin_options["rows"] == 160


def test_a_study_refuses_an_option_the_plugin_lacks_or_a_value_out_of_its_range():
    with pytest.raises(SpecError) as refused:
        TuningSpec.from_dict({
            "base": ExperimentSpec.from_dict(PLUGIN_SPEC).to_dict(), "n_trials": 2,
            "space": {"model.plugin_config.depth": {"type": "int", "low": 1, "high": 3},
                      "model.plugin_config.width": {"type": "int", "low": 1, "high": 16}}})
    assert set(refused.value.errors) == {"space.model.plugin_config.depth",
                                         "space.model.plugin_config.width"}
    assert refused.value.errors["space.model.plugin_config.width"] == (
        "1: must be between 4 and 256 channels")


def test_a_study_of_a_plugin_model_searches_its_own_dropout_not_the_built_in_one():
    # given a plugin model run (MobileNet reads plugin_config.dropout, never model.dropout)
    base = ExperimentSpec.from_dict(PLUGIN_SPEC).to_dict()
    # when a study searches the built-in model.dropout, then it is refused on it (its trials
    # trained one network), while the plugin's own dropout is a study
    with pytest.raises(SpecError) as refused:
        new_study_spec({"base": base, "space": {"model.dropout": {
            "type": "float", "low": 0.0, "high": 0.5}}})
    assert refused.value.errors["space.model.dropout"].startswith(
        "this run does not use it: it applies when model.arch is mlp or cnn")
    new_study_spec({"base": base, "space": {"model.plugin_config.dropout": {
        "type": "float", "low": 0.0, "high": 0.5}}})


def test_compression_offers_the_methods_the_plugin_declares_and_refuses_others(monkeypatch):
    source = ExperimentSpec.from_dict(PLUGIN_SPEC)
    for method in ("prune_weights", "prune_channels", "quantize_dynamic", "distill"):
        CompressionSpec.from_dict({"source": 1, "method": method}).check_source(source)

    # when the model class declares weight pruning only
    from fitboard_example_plugin.mobilenet import MobileNet

    monkeypatch.setattr(MobileNet, "compression", ("prune_weights",))
    with pytest.raises(SpecError) as refused:
        CompressionSpec.from_dict({"source": 1, "method": "prune_channels"}).check_source(source)

    # then channel pruning is refused on the method field
    assert refused.value.errors == {"method": "prune_channels does not apply to the mobilenet "
                                              "plugin model (its package offers prune_weights, "
                                              "distill)"}


def test_quantizing_a_plugin_model_without_linear_layers_is_refused_before_and_at_the_job(
        monkeypatch):
    # given a plugin that lists dynamic quantization but whose head is a 1x1 convolution, so
    # that it has no Linear, LSTM or GRU layer (the job "succeeded" with nothing int8)
    from fitboard_example_plugin.mobilenet import MobileNet

    from training.compression.job import METHODS

    original = MobileNet.__init__

    def convolution_head(self, config, input_shape, outputs):
        original(self, config, input_shape, outputs)
        channels = self.head[-1].in_features
        self.head = nn.Sequential(nn.Conv2d(channels, outputs, 1), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())

    monkeypatch.setattr(MobileNet, "__init__", convolution_head)
    source = ExperimentSpec.from_dict(PLUGIN_SPEC)
    job = CompressionSpec.from_dict({"source": 1, "method": "quantize_dynamic"})

    # when the job is checked, or runs on such a model anyway
    with pytest.raises(SpecError) as refused:
        job.check_source(source)
    model = MobileNet(MobileNet.Config(), (1, 16, 16), 4)
    trainer = SimpleNamespace(spec=source)
    with pytest.raises(SpecError) as failed:
        METHODS["quantize_dynamic"](job, model, None, trainer)  # type: ignore[arg-type]

    # then both say on the method that nothing would be quantized
    message = ("the mobilenet model has no Linear, LSTM or GRU layer: dynamic int8 "
               "quantization would leave it as it is; choose another method")
    assert refused.value.errors == {"method": message} == failed.value.errors


def test_a_built_in_teacher_distills_into_a_plugin_student():
    source = ExperimentSpec.from_dict({**PLUGIN_SPEC, "model": {"arch": "cnn", "width": 8}})
    job = CompressionSpec.from_dict({"source": 1, "method": "distill", "student": {
        "arch": "mobilenet", "plugin_config": {"width": 4, "blocks": 1}}})
    job.check_source(source)
    assert job.target_spec(source).model.plugin_config == {"width": 4, "blocks": 1,
                                                           "dropout": 0.0}


def test_the_model_size_remedies_halve_and_double_the_plugins_size_option():
    from training.diagnostics import _resize_model

    spec = ExperimentSpec.from_dict(PLUGIN_SPEC)
    smaller, larger = _resize_model(spec, smaller=True), _resize_model(spec, smaller=False)

    assert spec.patched(smaller.patch).model.plugin_config["width"] == 4
    assert spec.patched(larger.patch).model.plugin_config["width"] == 16
    assert smaller.title == "Use a smaller model (width 4)"


def test_int8_quantization_converts_the_plugins_linear_head_and_loads_back(archive, tmp_path):
    # when the MobileNet's checkpoint is quantized (no fine-tuning: no training step)
    from training.compression.job import compress

    result = compress(CompressionSpec.from_dict({"source": 1, "method": "quantize_dynamic"}),
                      load(archive), MemoryReporter(), tmp_path)
    quantized = load(tmp_path / "best.zip")

    # then its Linear weights are int8, and the archive rebuilds the quantized MobileNet
    assert result.status == "succeeded"
    assert result.report["change"]["linear_weight_bytes_ratio"] > 3.0
    assert type(quantized.model.head[-1]).__name__ == "Int8Linear"
    assert quantized.predict(torch.rand(2, 1, 12, 12)).shape == (2, 4)


def test_the_dropout_remedies_set_the_plugins_dropout_option():
    from training.diagnostics import _overfitting_remedies, _underfitting_remedies

    spec = ExperimentSpec.from_dict(PLUGIN_SPEC)
    (add,) = [r for r in _overfitting_remedies(spec, 1) if r.key == "dropout"]
    with_dropout = spec.patched(add.patch)
    (remove,) = [r for r in _underfitting_remedies(with_dropout, False)
                 if r.key == "less_regularization"]

    assert with_dropout.model.plugin_config["dropout"] > 0 and with_dropout.model.dropout == 0
    assert with_dropout.patched(remove.patch).model.plugin_config["dropout"] == 0.0
