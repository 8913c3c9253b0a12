"""Out of device memory: a step is retried with forward passes of half as many rows whose
gradients add up to the same optimizer step, down to a floor, and the size that worked is
reported; below the floor the run fails with a reason naming the batch size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training import ExperimentSpec, MemoryReporter, run
from training.data import dataset_info
from training.loop import TrainingError
from training.models import build_model

from ..faults import OutOfMemoryAbove
from .conftest import SpecFactory


@pytest.fixture
def iris_plain(make_spec: SpecFactory) -> ExperimentSpec:
    """An MLP without dropout or batch norm, so passes of any size give the same gradient."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.0, "batch_norm": False},
        "run": {"epochs": 3, "batch_size": 64},
    })


def fresh_model(spec: ExperimentSpec) -> torch.nn.Module:
    torch.manual_seed(spec.run.seed)
    info = dataset_info(spec.data.dataset)
    return build_model(spec.model, info.input_shape, info.num_classes or 1)


def test_a_step_that_runs_out_of_memory_is_retried_with_half_the_rows(
        iris_plain: ExperimentSpec, workdir: Path) -> None:
    # given a device on which passes of more than 20 rows run out of memory
    model = OutOfMemoryAbove(fresh_model(iris_plain), rows=20)
    reporter = MemoryReporter()

    # when a run with batches of 64 rows trains on it
    result = run(iris_plain, reporter, workdir, model=model, min_batch=8)

    # then it succeeds with 16-row passes (64 → 32 → 16), reported when they were chosen
    assert result.status == "succeeded"
    assert result.micro_batch == 16
    assert max(model.passes) <= 16
    halvings = [fields["micro_batch"] for _, fields in reporter.statuses
                if "micro_batch" in fields]
    assert halvings == [32, 16]
    # and every optimizer step was still taken, once, with the spec's rows
    assert [s for s, m in reporter.points if "lr" in m] == list(range(1, 3 * 2 + 1))


def test_halved_passes_train_the_same_model_as_whole_batches(
        iris_plain: ExperimentSpec, tmp_path: Path) -> None:
    # given the same run on a device with plenty of memory and on one that fits 20 rows
    roomy = run(iris_plain, MemoryReporter(), tmp_path / "a", model=fresh_model(iris_plain))
    tight = run(iris_plain, MemoryReporter(), tmp_path / "b",
                model=OutOfMemoryAbove(fresh_model(iris_plain), rows=20))

    # then the gradients added up to the same steps: the same weights and metrics
    assert roomy.model is not None and tight.model is not None
    for (name, a), b in zip(roomy.model.state_dict().items(),
                            tight.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert tight.final_metrics["val_loss"] == pytest.approx(roomy.final_metrics["val_loss"],
                                                            rel=1e-5)


def test_the_plain_out_of_memory_error_of_a_cpu_allocator_also_halves(
        iris_plain: ExperimentSpec, workdir: Path) -> None:
    model = OutOfMemoryAbove(fresh_model(iris_plain), rows=40, plain=True)

    result = run(iris_plain, MemoryReporter(), workdir, model=model)

    assert result.micro_batch == 32


def test_out_of_memory_at_the_floor_fails_with_the_batch_size(
        iris_plain: ExperimentSpec, workdir: Path) -> None:
    # given a device on which even 8-row passes run out of memory
    model = OutOfMemoryAbove(fresh_model(iris_plain), rows=7)

    # when the run trains with a floor of 8 rows, then it stops with a reason naming the size
    with pytest.raises(TrainingError, match=r"out of memory at a batch of 8 rows"):
        run(iris_plain, MemoryReporter(), workdir, model=model, min_batch=8)


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(
        iris_plain: ExperimentSpec, workdir: Path) -> None:
    class Broken(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        run(iris_plain, MemoryReporter(), workdir, model=Broken())
