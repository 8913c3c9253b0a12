"""Resuming: a run that dies at any step and is started again from its saved state ends exactly
where a run that never stopped ends: the same steps, the same weights, the same metrics."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from training import ExperimentSpec, MemoryReporter, run
from training import resume as resumable
from training.loop import RunResult

from .conftest import SpecFactory


class WorkerDied(BaseException):
    """Stands for SIGKILL: nothing in the loop catches it, nothing is written on the way out."""


class DiesAtStep(MemoryReporter):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.die_at = step

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if step >= self.die_at:
            raise WorkerDied
        super().log(step, metrics)


@pytest.fixture
def spec(make_spec: SpecFactory) -> ExperimentSpec:
    """Everything that carries state across steps: dropout (the global generator), Adam's
    moments, a warmup then one-cycle schedule, the best epoch and early stopping's count."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.2},
        "optim": {"optimizer": "adam", "lr": 0.01},
        "schedule": {"kind": "one_cycle", "warmup": 3},
        "run": {"epochs": 5, "batch_size": 16, "early_stopping_patience": 4},
    })


def interrupted_then_resumed(spec: ExperimentSpec, workdir: Path, die_at: int
                             ) -> tuple[RunResult, list[tuple[int, dict[str, float]]], int]:
    """Run until the step ``die_at`` (dying as it logs it), then again with resume; the points
    as the store would keep them (the first attempt's up to the saved step, then the second's),
    and the step the second attempt resumed after."""
    first = DiesAtStep(die_at)
    with pytest.raises(WorkerDied):
        run(spec, first, workdir, checkpoint_interval=0, resume=True)
    saved = resumable.saved_step(workdir)
    second = MemoryReporter()
    result = run(spec, second, workdir, checkpoint_interval=0, resume=True)
    points = [p for p in first.points if p[0] <= saved] + second.points
    return result, points, saved


# 8 steps per epoch (120 rows, batches of 16): the first step, one inside an epoch, the last
# step of an epoch (before its evaluation) and the first of the next, late in the run.
@pytest.mark.parametrize("die_at", [1, 5, 16, 17, 38])
def test_a_run_killed_at_any_step_and_resumed_ends_as_if_it_never_stopped(
        spec: ExperimentSpec, tmp_path: Path, die_at: int) -> None:
    # given a run that never stops
    reference = MemoryReporter()
    expected = run(spec, reference, tmp_path / "reference", checkpoint_interval=0)

    # when the same run dies at a step and is started again with resume
    result, points, saved = interrupted_then_resumed(spec, tmp_path / "resumed", die_at)

    # then it went on from the step before the one it died at (the state is saved each step)
    assert saved == die_at - 1
    # and it took the same number of steps, reached the same weights and logged the same points
    assert (result.steps, result.epochs, result.best_epoch) == (
        expected.steps, expected.epochs, expected.best_epoch)
    assert result.model is not None and expected.model is not None
    for name, tensor in expected.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], tensor), name
    assert points == reference.points
    assert result.best_metrics == expected.best_metrics
    assert result.final_metrics == expected.final_metrics


def test_a_resumed_run_says_where_it_went_on_from(spec: ExperimentSpec, tmp_path: Path) -> None:
    # given a run that died at step 10
    with pytest.raises(WorkerDied):
        run(spec, DiesAtStep(10), tmp_path, checkpoint_interval=0, resume=True)

    # when it is started again
    reporter = MemoryReporter()
    run(spec, reporter, tmp_path, checkpoint_interval=0, resume=True)

    # then its first status names the step it resumed after, and its first point is the next
    assert reporter.statuses[0][1]["resumed_from"] == 9
    assert reporter.points[0][0] == 10


def test_the_state_is_tensors_and_json_never_pickle(spec: ExperimentSpec,
                                                    tmp_path: Path) -> None:
    with pytest.raises(WorkerDied):
        run(spec, DiesAtStep(10), tmp_path, checkpoint_interval=0, resume=True)

    with zipfile.ZipFile(tmp_path / resumable.STATE_FILE) as archive:
        assert sorted(archive.namelist()) == ["state.json", "tensors.safetensors"]
        document = json.loads(archive.read("state.json"))
    assert document["loop"]["step"] == 9
    assert {"model", "optimizer", "schedule", "rng", "best_weights"} <= set(document)


def test_an_unreadable_state_starts_the_run_over(spec: ExperimentSpec, tmp_path: Path) -> None:
    # given a state file that is not one (a disk that lied about fsync, a hand edit)
    (tmp_path / resumable.STATE_FILE).write_bytes(b"not a zip")

    # when the run resumes
    reporter = MemoryReporter()
    run(spec, reporter, tmp_path, checkpoint_interval=0, resume=True)

    # then it starts from step 1
    assert reporter.points[0][0] == 1
    assert "resumed_from" not in reporter.statuses[0][1]


def test_without_resume_no_state_is_written(spec: ExperimentSpec, tmp_path: Path) -> None:
    run(spec, MemoryReporter(), tmp_path, checkpoint_interval=0)

    assert not (tmp_path / resumable.STATE_FILE).exists()
