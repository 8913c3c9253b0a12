"""The resumable state's format: a state written by an earlier version of the loop still
resumes, and the options a run takes are typed."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import get_type_hints

import pytest
import torch

from training import ExperimentSpec, MemoryReporter, run
from training import resume as resumable
from training.loop import RunKeywords, RunOptions

from .conftest import SpecFactory

# Written by the loop before LoopState (its variables saved field by field), for the spec below,
# by a run that died as it logged step 10: 8 steps per epoch, so step 9 is inside epoch 2.
FIRST_FORMAT_STATE = Path(__file__).parent / "states" / "iris-step9-first-format.zip"


@pytest.fixture
def spec(make_spec: SpecFactory) -> ExperimentSpec:
    """test_resume's run: dropout, Adam, warmup then one-cycle, early stopping's count."""
    return make_spec({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.2},
        "optim": {"optimizer": "adam", "lr": 0.01},
        "schedule": {"kind": "one_cycle", "warmup": 3},
        "run": {"epochs": 5, "batch_size": 16, "early_stopping_patience": 4},
    })


def test_a_state_written_by_the_first_format_resumes_as_if_the_run_never_stopped(
        spec: ExperimentSpec, tmp_path: Path) -> None:
    # given the state an earlier version of the loop saved at step 9
    workdir = tmp_path / "resumed"
    workdir.mkdir()
    shutil.copy(FIRST_FORMAT_STATE, workdir / resumable.STATE_FILE)

    # when the run resumes from it
    reporter = MemoryReporter()
    result = run(spec, reporter, workdir, checkpoint_interval=0, resume=True)

    # then it goes on after step 9 and ends where a run that never stopped ends (within float
    # rounding: the state may come from another machine than the reference run)
    reference = MemoryReporter()
    expected = run(spec, reference, tmp_path / "reference", checkpoint_interval=0)
    assert reporter.statuses[0][1]["resumed_from"] == 9
    assert (result.steps, result.epochs, result.best_epoch) == (
        expected.steps, expected.epochs, expected.best_epoch)
    assert [step for step, _ in reporter.points] == [s for s, _ in reference.points if s > 9]
    for (_, got), (_, want) in zip(reporter.points, reference.points[-len(reporter.points):],
                                   strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert result.model is not None and expected.model is not None
    torch.testing.assert_close(result.model.state_dict(), expected.model.state_dict())


def test_a_saved_loop_state_loads_back_equal(tmp_path: Path) -> None:
    # given a loop state with every field away from its default
    state = resumable.LoopState(
        step=12, epoch=3, position=2, loss_sum=4.5, correct=7,
        epoch_shuffle=torch.Generator().manual_seed(3).get_state(), best_value=0.75,
        best_epoch=2, best_step=8, best_metrics={"val_acc": 0.75}, metrics={"val_acc": 0.5},
        history={"val_acc": [0.75, 0.5]}, stale=1, best_weights={"w": torch.arange(3.0)})
    model = torch.nn.Linear(2, 1)

    # when it is saved and loaded
    path = tmp_path / resumable.STATE_FILE
    resumable.save(path, state, {"model": model}, {})
    loaded = resumable.restore(resumable.load(path), {"model": torch.nn.Linear(2, 1)}, {})

    # then every field comes back
    for field in dataclasses.fields(resumable.LoopState):
        want, got = getattr(state, field.name), getattr(loaded, field.name)
        if field.name == "epoch_shuffle":
            assert torch.equal(got, want)
        elif field.name == "best_weights":
            assert got.keys() == want.keys() and torch.equal(got["w"], want["w"])
        else:
            assert got == want, field.name


def test_run_takes_exactly_the_options_as_keywords() -> None:
    # RunKeywords restates RunOptions' fields for typed keyword arguments: they must agree
    assert get_type_hints(RunKeywords) == get_type_hints(RunOptions)
    assert list(RunKeywords.__annotations__) == [f.name for f in dataclasses.fields(RunOptions)]
