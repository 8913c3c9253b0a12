"""A run's size is estimated from its spec alone, and a run no worker can hold is refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from training import budget
from training.data.catalog import dataset_info
from training.models import build_model
from training.spec import DataSpec, ExperimentSpec, ModelSpec, RunSpec, SpecError

LIMITS = budget.Limits(memory_gb=64, max_devices=4)


def spec(dataset: str = "mnist", run: dict[str, Any] | None = None, **model: Any
         ) -> ExperimentSpec:
    return ExperimentSpec.from_dict({"data": {"dataset": dataset}, "model": model,
                                     "run": run or {}})


@pytest.mark.parametrize(("dataset", "model"), [
    ("mnist", {"arch": "mlp", "hidden_sizes": [300, 100]}),
    ("wine", {"arch": "mlp", "hidden_sizes": [7]}),
    ("mnist", {"arch": "cnn", "width": 8, "blocks": 3}),
    ("mnist", {"arch": "cnn", "width": 8, "blocks": 2, "batch_norm": False}),
    ("mnist", {"arch": "resnet", "width": 8, "blocks": 3, "depth": 2}),
    ("mnist", {"arch": "resnet", "width": 4, "blocks": 2, "depth": 1, "batch_norm": False}),
    ("sst2", {"arch": "lstm", "vocab_size": 500, "embed_dim": 16, "hidden_size": 8,
              "layers": 2}),
    ("sst2", {"arch": "gru", "vocab_size": 500, "embed_dim": 16, "hidden_size": 8,
              "bidirectional": False}),
    ("sst2", {"arch": "transformer", "vocab_size": 500, "embed_dim": 16, "heads": 2,
              "layers": 2}),
    ("sst2", {"arch": "transformer", "vocab_size": 500, "embed_dim": 16, "heads": 2,
              "positional": "sinusoidal"}),
])
def test_the_parameter_count_is_the_built_models(dataset, model):
    # given a spec, and its model built on the meta device (which allocates nothing)
    run_spec = spec(dataset, **model)
    info = dataset_info(dataset)
    with torch.device("meta"):
        built = build_model(run_spec.model, info.input_shape, info.num_classes or 1,
                            vocab_size=run_spec.model.vocab_size)

    # when its size is estimated from the spec, then the count is exact
    estimate = budget.estimate(run_spec, info)
    assert estimate is not None
    assert estimate.parameters == sum(p.numel() for p in built.parameters())


def test_a_huge_mlp_is_refused_on_its_sizes_with_the_estimate():
    # given the finding's MLP: 16 layers of 65,536 units
    # (built without validation, which would refuse it)
    huge = ExperimentSpec(data=DataSpec(dataset="mnist"),
                          model=ModelSpec(arch="mlp", hidden_sizes=(65536,) * 16))

    errors = budget.problems(huge, dataset_info("mnist"), LIMITS)

    assert list(errors) == ["model.hidden_sizes"]
    assert errors["model.hidden_sizes"].startswith("about 6.4e10 parameters: 1.03 TB for the "
                                                   "weights, gradients and Adam state")
    assert errors["model.hidden_sizes"].endswith("the limit is 64 GB per run")


def test_validation_refuses_the_largest_resnet():
    limits = budget.current_limits()
    budget.configure(LIMITS)
    try:
        with pytest.raises(SpecError) as error:
            spec(arch="resnet", width=1024, blocks=6, depth=32)
    finally:
        budget.configure(limits)

    assert error.value.errors["model.width"].startswith("about 8.2e11 parameters")


def test_a_batch_whose_activations_do_not_fit_is_refused_on_the_batch_size():
    big_batch = ExperimentSpec(data=DataSpec(dataset="mnist"),
                               model=ModelSpec(arch="cnn", width=256, blocks=2),
                               run=RunSpec(batch_size=40_000))

    errors = budget.problems(big_batch, dataset_info("mnist"), LIMITS)

    assert list(errors) == ["run.batch_size"]
    assert "of activations for a batch of 40000" in errors["run.batch_size"]


def test_a_model_that_fits_passes():
    assert budget.problems(spec(arch="cnn"), dataset_info("mnist"), LIMITS) == {}


def test_more_devices_than_the_workers_have_are_refused():
    asking = ExperimentSpec(data=DataSpec(dataset="mnist"),
                            run=RunSpec(device="cpu", devices=64))

    errors = budget.problems(asking, dataset_info("mnist"), LIMITS)

    assert errors == {"run.devices": "this deployment's workers have at most 4 devices for one "
                                     "run"}


@pytest.mark.parametrize("config", [{}, {"width": 64, "blocks": 6}])
def test_a_plugin_models_parameters_are_counted_as_built(config):
    # given the example plugin's model (packages/fitboard-example-plugin) on its own data set
    run_spec = ExperimentSpec.from_dict({"data": {"dataset": "shapes"},
                                         "model": {"arch": "mobilenet", "plugin_config": config}})
    info = run_spec.data.info()
    built = build_model(run_spec.model, info.input_shape, info.num_classes)

    # when its size is estimated, then its parameters are the built model's and its
    # activations at least its input and logits
    estimate = budget.estimate(run_spec, info)
    assert estimate is not None
    assert estimate.parameters == sum(p.numel() for p in built.parameters())
    assert estimate.activation_bytes > 0


def test_a_plugin_model_too_large_for_the_workers_is_refused_on_its_size_option():
    run_spec = ExperimentSpec.from_dict({"data": {"dataset": "shapes"},
                                         "model": {"arch": "mobilenet",
                                                   "plugin_config": {"width": 256, "blocks": 8}}})

    errors = budget.problems(run_spec, run_spec.data.info(), budget.Limits(memory_gb=0.001))

    assert list(errors) == ["model.plugin_config.width"]
    assert errors["model.plugin_config.width"].endswith("the limit is 1 MB per run")
