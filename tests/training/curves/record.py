"""Train small real runs made to show each verdict, and record their histories.

    python -m tests.training.curves.record   # rewrites real_runs.json (about 15 s on 2 cores)

Each run is a spec patch with the verdict it was built to show (the label) and why. The JSON
keeps the spec, the task, the per-epoch history, the per-step training loss and, for a run
that stopped on a non-finite loss, the loop's error; ``test_diagnostics.py`` diagnoses them.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training import ExperimentSpec, MemoryReporter, run
from training.data import prepare
from training.diagnostics import TaskInfo, task_info
from training.loop import NonFiniteLossError

PATH = Path(__file__).with_name("real_runs.json")
EPOCH_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc")


@dataclass(frozen=True)
class Plan:
    label: str  # the verdict the run was built to show
    why: str
    patch: Mapping[str, Mapping[str, Any]]


def mlp(*sizes: int) -> dict[str, Any]:
    return {"arch": "mlp", "hidden_sizes": list(sizes)}


PLANS: dict[str, Plan] = {
    "digits_wide_mlp_on_a_fifth": Plan(
        "overfitting", "512×512 MLP, 20% of digits to train on, no regularisation: it fits the "
        "training set perfectly while validation stalls far behind",
        {"data": {"dataset": "digits", "val_fraction": 0.8}, "model": mlp(512, 512),
         "run": {"epochs": 40}}),
    "iris_wide_mlp_on_two_fifths": Plan(
        "overfitting", "256×256 MLP on 40% of iris in batches of 8: validation loss is best at "
        "epoch 5, then climbs 40% while the training loss goes to zero",
        {"data": {"dataset": "iris", "val_fraction": 0.6}, "model": mlp(256, 256),
         "optim": {"lr": 0.01}, "run": {"epochs": 40, "batch_size": 8}}),
    "breast_cancer_wide_mlp_on_a_third": Plan(
        "overfitting", "256×256 MLP on 30% of breast cancer: validation loss is best after the "
        "first epoch and rises steadily from there",
        {"data": {"dataset": "breast_cancer", "val_fraction": 0.7}, "model": mlp(256, 256),
         "optim": {"lr": 0.003}, "run": {"epochs": 40, "batch_size": 16}}),
    "wine_wide_mlp_on_half": Plan(
        "overfitting", "256×256 MLP on half of wine, small batches: validation loss rises "
        "twentyfold after epoch 7",
        {"data": {"dataset": "wine", "val_fraction": 0.5}, "model": mlp(256, 256),
         "optim": {"lr": 0.01}, "run": {"epochs": 40, "batch_size": 16}}),
    "diabetes_wide_mlp_on_a_third": Plan(
        "overfitting", "512×512 MLP on 30% of diabetes: training MSE goes to 0.03 while "
        "validation MSE climbs",
        {"data": {"dataset": "diabetes", "val_fraction": 0.7}, "model": mlp(512, 512),
         "optim": {"loss": "mse", "lr": 0.003}, "run": {"epochs": 40, "batch_size": 32}}),
    "digits_two_units_tiny_lr": Plan(
        "underfitting", "two hidden units and SGD at 1e-5 without momentum: the loss never "
        "leaves the chance level",
        {"data": {"dataset": "digits"}, "model": mlp(2),
         "optim": {"optimizer": "sgd", "lr": 1e-5, "momentum": 0.0}, "run": {"epochs": 15}}),
    "wine_heavy_dropout": Plan(
        "underfitting", "four hidden units behind dropout 0.9: the training loss stays near the "
        "majority-class loss",
        {"data": {"dataset": "wine"}, "model": {**mlp(4), "dropout": 0.9}, "optim": {"lr": 0.01},
         "run": {"epochs": 30}}),
    "wine_heavy_weight_decay": Plan(
        "underfitting", "weight decay 1.0 holds every weight near zero",
        {"data": {"dataset": "wine"}, "model": mlp(32), "optim": {"weight_decay": 1.0,
                                                                 "lr": 0.01},
         "run": {"epochs": 30}}),
    "diabetes_one_unit_sgd": Plan(
        "slow", "one tanh unit with SGD at 1e-4 without momentum: the MSE falls in a straight "
        "line, barely (2% of the mean predictor's in 20 epochs), and still falls at the end",
        {"data": {"dataset": "diabetes"}, "model": {**mlp(1), "activation": "tanh"},
         "optim": {"loss": "mse", "optimizer": "sgd", "lr": 1e-4, "momentum": 0.0},
         "run": {"epochs": 20}}),
    "digits_sgd_lr10": Plan(
        "diverging", "SGD at lr 10: the first epoch's loss is twenty times chance",
        {"data": {"dataset": "digits"}, "model": mlp(64),
         "optim": {"optimizer": "sgd", "lr": 10.0}, "run": {"epochs": 5}}),
    "digits_sgd_lr5": Plan(
        "diverging", "SGD at lr 5: the loss jumps to 78 in the first steps, the network dies",
        {"data": {"dataset": "digits"}, "model": mlp(64),
         "optim": {"optimizer": "sgd", "lr": 5.0}, "run": {"epochs": 5}}),
    "diabetes_sgd_lr1": Plan(
        "diverging", "SGD at lr 1 with momentum: the loss overflows in epoch 2",
        {"data": {"dataset": "diabetes"}, "model": mlp(16),
         "optim": {"loss": "mse", "optimizer": "sgd", "lr": 1.0, "momentum": 0.9},
         "run": {"epochs": 30, "batch_size": 89, "seed": 1}}),
    "wine_adam_lr1": Plan(
        "diverging", "Adam at lr 1: the first epoch's loss is twenty times chance",
        {"data": {"dataset": "wine"}, "model": mlp(64), "optim": {"lr": 1.0},
         "run": {"epochs": 20}}),
    "digits_cnn": Plan(
        "healthy", "the default CNN on digits: both losses fall together and level off",
        {"run": {"epochs": 15}}),
    "diabetes_mlp": Plan(
        "healthy", "a small MLP on diabetes for ten epochs",
        {"data": {"dataset": "diabetes"}, "model": mlp(32), "optim": {"loss": "mse",
                                                                       "lr": 0.01},
         "run": {"epochs": 10}}),
    "breast_cancer_mlp": Plan(
        "healthy", "a small MLP on breast cancer, converging over 40 epochs",
        {"data": {"dataset": "breast_cancer"}, "model": mlp(32), "run": {"epochs": 40}}),
    "iris_mlp_fast": Plan(
        "healthy", "a small MLP on iris with Adam at 1e-2",
        {"data": {"dataset": "iris"}, "model": mlp(16), "optim": {"lr": 0.01},
         "run": {"epochs": 30, "batch_size": 16}}),
    "wine_mlp": Plan(
        "slow", "Adam at 1e-3 with two steps per epoch: the loss falls in a straight line",
        {"data": {"dataset": "wine"}, "model": mlp(32), "run": {"epochs": 30}}),
    "digits_sgd_no_momentum": Plan(
        "slow", "SGD at 1e-3 without momentum: steady, slow descent",
        {"data": {"dataset": "digits"}, "model": mlp(64),
         "optim": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0}, "run": {"epochs": 30}}),
    "diabetes_sgd_no_momentum": Plan(
        "slow", "SGD at 1e-3 without momentum on diabetes",
        {"data": {"dataset": "diabetes"}, "model": mlp(32),
         "optim": {"loss": "mse", "optimizer": "sgd", "lr": 1e-3, "momentum": 0.0},
         "run": {"epochs": 30}}),
}


@dataclass(frozen=True)
class Recorded:
    """One real run: what it was, and what it logged."""

    name: str
    label: str
    spec: ExperimentSpec
    task: TaskInfo
    history: dict[str, list[float]]
    error: str | None


def spec_of(plan: Plan) -> ExperimentSpec:
    """The plan's spec, on the CPU (as the test suite trains)."""
    run_section = {"device": "cpu", **plan.patch.get("run", {})}
    return ExperimentSpec().patched({**plan.patch, "run": run_section})


def train(name: str, workdir: Path | None = None) -> Recorded:
    """Run one plan and keep its history. A run stopped by a non-finite loss keeps the points
    it logged, and ends its per-step loss with NaN, the value the loop refused."""
    plan = PLANS[name]
    spec = spec_of(plan)
    reporter, error = MemoryReporter(), None
    try:
        run(spec, reporter, workdir or Path(tempfile.mkdtemp(prefix="fitboard-curves-")))
    except NonFiniteLossError as exc:
        error = str(exc)
    history = {key: [value for _, value in reporter.series(key)] for key in (*EPOCH_KEYS, "loss")}
    if error is not None:
        history["loss"].append(math.nan)
    return Recorded(name, plan.label, spec, task_of(spec), history, error)


def task_of(spec: ExperimentSpec) -> TaskInfo:
    """The task of a spec's dataset, with the class counts of its training split."""
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    if data.info.task == "regression":
        return task_info(spec.data.dataset)
    return task_info(spec.data.dataset, torch.bincount(data.y_train).tolist())


def to_json(recorded: Recorded) -> dict[str, Any]:
    def number(value: float) -> float | None:
        return float(f"{value:.6g}") if math.isfinite(value) else None

    return {
        "name": recorded.name,
        "label": recorded.label,
        "why": PLANS[recorded.name].why,
        "spec": recorded.spec.to_dict(),
        "task": {"kind": recorded.task.kind, "num_classes": recorded.task.num_classes,
                 "majority_fraction": recorded.task.majority_fraction},
        "history": {key: [number(v) for v in values]
                    for key, values in recorded.history.items() if values},
        "error": recorded.error,
    }


def from_json(data: Mapping[str, Any]) -> Recorded:
    history = {key: [math.nan if v is None else float(v) for v in values]
               for key, values in data["history"].items()}
    return Recorded(data["name"], data["label"], ExperimentSpec.from_dict(data["spec"]),
                    TaskInfo(**data["task"]), history, data["error"])


def load() -> list[Recorded]:
    """The recorded runs, as ``main()`` last wrote them."""
    return [from_json(item) for item in json.loads(PATH.read_text())]


def main() -> None:
    torch.set_num_threads(1)
    runs = [json.dumps(to_json(train(name)), allow_nan=False) for name in PLANS]
    PATH.write_text("[\n" + ",\n".join(runs) + "\n]\n")  # one run per line
    print(f"wrote {len(runs)} runs to {PATH}")


if __name__ == "__main__":
    main()
