"""Fixtures for the training engine's tests: small specs that train in well under a second."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import torch

from training import ExperimentSpec

SpecFactory = Callable[[Mapping[str, Mapping[str, Any]]], ExperimentSpec]


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    # These models are tiny: a second thread gains little, and when the two cores are shared
    # with another process OpenMP's spinning threads make a run many times slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_spec() -> SpecFactory:
    """Build a validated spec from a ``{"section": {"field": value}}`` patch, on the CPU.

    The CPU is pinned so that a run's numbers are the ones a checkpoint reproduces on the CPU,
    whatever hardware the suite runs on.
    """

    def build(patch: Mapping[str, Mapping[str, Any]]) -> ExperimentSpec:
        run = {"device": "cpu", **patch.get("run", {})}
        return ExperimentSpec().patched({**patch, "run": run})

    return build


@pytest.fixture
def iris_mlp(make_spec: SpecFactory) -> ExperimentSpec:
    """A small MLP on iris: 120 training rows, two steps per epoch."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16]},
        "run": {"epochs": 3, "batch_size": 64},
    })
