"""The test split: held out from training and model selection, evaluated once when training
ends, with the best epoch's weights, and reported apart from validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from training import MemoryReporter, run
from training.checkpoints import load
from training.data import prepare
from training.loop import evaluate

from .conftest import SpecFactory


@pytest.fixture
def tested_run(make_spec: SpecFactory, workdir: Path):
    spec = make_spec({"data": {"dataset": "wine", "test_fraction": 0.2},
                      "model": {"arch": "mlp", "hidden_sizes": [16]},
                      "run": {"epochs": 6, "batch_size": 32}})
    reporter = MemoryReporter()
    return run(spec, reporter, workdir), reporter


def test_the_test_split_is_evaluated_once_at_the_end(tested_run) -> None:
    result, reporter = tested_run

    # then exactly one status carries test metrics, after the last epoch, and no metric point
    tested = [fields for message, fields in reporter.statuses if "test_metrics" in fields]
    assert len(tested) == 1
    assert not [m for _, m in reporter.points if any(k.startswith("test_") for k in m)]
    assert reporter.statuses[-1][1]["test_metrics"] == result.test_metrics


def test_the_test_metrics_are_those_of_the_best_weights(tested_run, workdir: Path) -> None:
    result, _ = tested_run

    # when the best checkpoint's model is evaluated on the test rows by hand
    data = prepare("wine", 0.2, seed=0, test_fraction=0.2)
    model = load(workdir / "best.zip").model
    assert data.x_test is not None and data.y_test is not None
    by_hand = evaluate(model, nn.CrossEntropyLoss(), data.x_test, data.y_test, data)

    # then they agree with what the run reported and stored in best.zip
    assert result.test_metrics == {"test_loss": pytest.approx(by_hand["loss"]),
                                   "test_acc": pytest.approx(by_hand["acc"])}
    assert load(workdir / "best.zip").meta["metrics"]["test_acc"] == result.test_metrics[
        "test_acc"]
    assert len(data.x_test) == 36  # ceil(178 * 0.2), never seen in training or validation


def test_without_a_test_split_there_are_no_test_metrics(iris_mlp, workdir: Path) -> None:
    result = run(iris_mlp, MemoryReporter(), workdir)

    assert result.test_metrics == {}


def test_a_cancelled_run_is_not_tested(make_spec: SpecFactory, workdir: Path) -> None:
    spec = make_spec({"data": {"dataset": "iris", "test_fraction": 0.2},
                      "model": {"arch": "mlp"}, "run": {"epochs": 3, "batch_size": 16}})
    reporter = MemoryReporter(stop_after_step=4)

    result = run(spec, reporter, workdir)

    assert result.status == "cancelled" and result.test_metrics == {}
