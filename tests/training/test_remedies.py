"""Remedies do what the verdict says they will: a real overfitting run, remedied, overfits less."""

from __future__ import annotations

from pathlib import Path

from tests.training.conftest import SpecFactory
from training import MemoryReporter
from training.diagnostics import diagnose, task_info
from training.loop import run
from training.spec import ExperimentSpec


def epoch_history(reporter: MemoryReporter) -> dict[str, list[float]]:
    """The per-epoch metrics a run logged (the points that carry an "epoch")."""
    history: dict[str, list[float]] = {}
    for _, metrics in reporter.points:
        if "epoch" in metrics:
            for key, value in metrics.items():
                if key != "epoch":
                    history.setdefault(key, []).append(value)
    return history


def final_gap(history: dict[str, list[float]]) -> float:
    return history["val_loss"][-1] - history["train_loss"][-1]


def test_applying_the_first_overfitting_remedy_shrinks_the_gap(make_spec: SpecFactory,
                                                                tmp_path: Path) -> None:
    # given a wide MLP without regularization trained on a fifth of digits, with a fixed seed
    spec: ExperimentSpec = make_spec({
        "data": {"dataset": "digits", "val_fraction": 0.8},
        "model": {"arch": "mlp", "hidden_sizes": [512, 512]},
        "run": {"epochs": 40, "seed": 0},
    })
    overfit = MemoryReporter()
    run(spec, overfit, tmp_path / "overfit")
    verdict = diagnose(epoch_history(overfit), task_info("digits"), spec, final=True)
    assert verdict.kind == "overfitting" and verdict.onset_epoch is not None

    # when the first remedy the verdict suggests is applied and the run is made again
    remedy = next(r for r in verdict.remedies if r.patch)
    remedied = MemoryReporter()
    run(spec.patched(remedy.patch), remedied, tmp_path / "remedied")

    # then the final train/validation loss gap is smaller
    before, after = final_gap(epoch_history(overfit)), final_gap(epoch_history(remedied))
    assert after < before, f"{remedy.key}: gap {before:.3f} -> {after:.3f}"
