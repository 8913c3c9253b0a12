"""The best epoch on an imbalanced set: breast cancer cut to 95/5, where validation accuracy
moves in steps of one of 60 rows and many epochs tie on it. Among tied epochs the lowest
validation loss is the best checkpoint; early stopping still counts only strict gains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from training import ExperimentSpec, MemoryReporter, run
from training.checkpoints import load
from training.data import DataSources
from training.data.uploads import TableOptions, prepare_table, save_prepared
from training.loop import RunOptions, RunResult
from training.repeats import run_seeds
from training.seeds import batch_problem

from .conftest import SpecFactory

NAME = "upload:900100"


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> DataSources:
    """Every benign tumour of breast cancer (357) and 19 malignant ones: 95/5."""
    loaded = load_breast_cancer()
    frame = pd.DataFrame(loaded.data, columns=[f"f{i}" for i in range(30)])
    frame["label"] = np.where(loaded.target == 1, "benign", "malignant")
    malignant = np.random.default_rng(0).choice(np.flatnonzero(loaded.target == 0), 19,
                                                replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(loaded.target == 1), malignant]))
    prepared = prepare_table(frame.iloc[keep].reset_index(drop=True), TableOptions())
    path = tmp_path_factory.mktemp("imbalanced") / "prepared.npz"
    with path.open("wb") as handle:
        save_prepared(prepared, NAME, handle)
    return DataSources(uploads={NAME: path})


def imbalanced_spec(make_spec: SpecFactory, **run_fields: Any) -> ExperimentSpec:
    return make_spec({"data": {"dataset": NAME, "test_fraction": 0.2},
                      "model": {"arch": "mlp", "hidden_sizes": [16]},
                      "optim": {"lr": run_fields.pop("lr", 0.001)},
                      "run": {"batch_size": 32, **run_fields}})


def train(spec: ExperimentSpec, sources: DataSources,
          workdir: Path) -> tuple[RunResult, list[dict[str, float]]]:
    """The run's result and the metrics each of its epochs logged, in order."""
    reporter = MemoryReporter()
    result = run(spec, reporter, workdir, sources=sources)
    return result, [m for _, m in reporter.points if "epoch" in m]


def first_top(epochs: list[dict[str, float]]) -> int:
    """The first epoch that reached the top validation accuracy."""
    top = max(m["val_acc"] for m in epochs)
    return next(int(m["epoch"]) for m in epochs if m["val_acc"] == top)


def lowest_loss_of_the_top(epochs: list[dict[str, float]]) -> int:
    """Among the epochs tied on the top validation accuracy, the one of lowest validation
    loss (the earlier on equal losses)."""
    top = max(m["val_acc"] for m in epochs)
    return int(min((m for m in epochs if m["val_acc"] == top),
                   key=lambda m: m["val_loss"])["epoch"])


def stop_by_strict_gains(accuracies: list[float], patience: int) -> int:
    """The epoch early stopping ends on when only a strict gain of accuracy resets patience."""
    best, stale = -1.0, 0
    for epoch, value in enumerate(accuracies, start=1):
        best, stale = (value, 0) if value > best else (best, stale + 1)
        if stale >= patience:
            return epoch
    return len(accuracies)


def test_among_tied_epochs_the_later_one_of_lower_loss_is_the_best_checkpoint(
        make_spec: SpecFactory, imbalanced: DataSources, tmp_path: Path) -> None:
    # given 30 epochs on the 95/5 set without early stopping
    spec = imbalanced_spec(make_spec, epochs=30, seed=0)

    # when it trains
    result, epochs = train(spec, imbalanced, tmp_path)

    # then several epochs tie on the top accuracy, and the best one is the tied epoch of the
    # lowest validation loss, not the first of them
    assert result.best_epoch == lowest_loss_of_the_top(epochs)
    assert result.best_epoch > first_top(epochs)
    first = epochs[first_top(epochs) - 1]
    assert result.best_metrics["val_acc"] == first["val_acc"]
    assert result.best_metrics["val_loss"] < first["val_loss"]
    # and best.zip holds that epoch, with what the test split scored under its weights
    checkpoint = load(tmp_path / "best.zip")
    assert checkpoint.meta["epoch"] == result.best_epoch
    assert checkpoint.meta["metrics"]["test_acc"] == result.test_metrics["test_acc"]


@pytest.mark.parametrize("seed", [0, 1])
def test_early_stopping_still_counts_only_strict_gains_of_the_monitored_metric(
        make_spec: SpecFactory, imbalanced: DataSources, tmp_path: Path, seed: int) -> None:
    # given patience 5 on the 95/5 set (seed 0: every epoch at the majority rate, 0.95)
    spec = imbalanced_spec(make_spec, epochs=30, seed=seed, early_stopping_patience=5)

    # when it trains
    result, epochs = train(spec, imbalanced, tmp_path)

    # then it stops where the accuracy's own sequence says: five epochs after the first epoch
    # that reached its top accuracy
    accuracies = [m["val_acc"] for m in epochs]
    assert result.stopped_early
    assert result.epochs == stop_by_strict_gains(accuracies, 5) == first_top(epochs) + 5
    # although the tie-break chose a later epoch: the last one, whose loss was still falling
    # (resetting patience on it would have run on)
    assert result.best_epoch == lowest_loss_of_the_top(epochs) == result.epochs
    assert result.best_epoch != first_top(epochs)


def test_without_ties_the_best_epoch_is_the_one_of_top_accuracy(
        make_spec: SpecFactory, imbalanced: DataSources, tmp_path: Path) -> None:
    # given a spec whose top validation accuracy is reached by one epoch only
    spec = imbalanced_spec(make_spec, epochs=12, seed=2, lr=0.1, early_stopping_patience=6)

    # when it trains
    result, epochs = train(spec, imbalanced, tmp_path)

    # then that epoch is the best one, and early stopping counts from it
    accuracies = [m["val_acc"] for m in epochs]
    assert accuracies.count(max(accuracies)) == 1
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    assert result.epochs == stop_by_strict_gains(accuracies, 6)


def test_seeds_trained_together_break_ties_as_a_run_alone_does(
        make_spec: SpecFactory, imbalanced: DataSources, tmp_path: Path) -> None:
    # given three seeds of the 95/5 spec trained together (stacked: no early stopping)
    spec = imbalanced_spec(make_spec, epochs=20)
    reporters = [MemoryReporter() for _ in range(3)]
    assert batch_problem(spec, RunOptions(sources=imbalanced), 3) is None

    # when they train
    results = run_seeds(spec, [0, 1, 2], reporters, [tmp_path / f"seed{s}" for s in range(3)],
                        RunOptions(sources=imbalanced))

    # then each seed's best epoch is its tied epoch of the lowest validation loss
    for result, reporter in zip(results, reporters, strict=True):
        epochs = [m for _, m in reporter.points if "epoch" in m]
        assert result.best_epoch == lowest_loss_of_the_top(epochs)
    assert any(r.best_epoch != first_top([m for _, m in rep.points if "epoch" in m])
               for r, rep in zip(results, reporters, strict=True))
