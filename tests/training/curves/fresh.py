"""Curves the diagnosis was never tuned on (``fresh.json``, recorded by ``bench/fresh_curves.py``
from real training), and the two ways a run reaches the diagnosis: per epoch with its task (the
engine's loop) and as a script logs it under a framework's names (the tracking API).

Each item keeps every step's training loss (the first, before any update, is the untrained
network's) and accuracy, and each evaluation's validation loss and accuracy with its epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("fresh.json")
# Plain loops of the same form on still other data, models and optimisers, labelled by a written
# rule (``bench/unseen_curves.py``); read and logged by the functions below as the fresh ones.
UNSEEN = Path(__file__).with_name("unseen.json")
Point = dict[str, Any]  # an mlflow metric: key, value, step, timestamp


def load(path: Path = PATH) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text()))


def scripts(path: Path = PATH) -> list[dict[str, Any]]:
    """The plain PyTorch runs, with every step's loss: the ones a script logs."""
    return [item for item in load(path) if "loss" in item]


def engine_runs() -> list[dict[str, Any]]:
    """The engine's runs (``training.run``), with their spec patch and reference."""
    return [item for item in load() if "patch" in item]


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)


def per_evaluation(item: dict[str, Any]) -> dict[str, list[float]]:
    """One entry per evaluation, as the engine logs an epoch: the training loss and accuracy
    are the means over the steps since the evaluation before (an engine run's history as
    the loop logged it)."""
    if "history" in item:
        return {key: [_value(v) for v in values] for key, values in item["history"].items()}
    spe, loss, acc = item["steps_per_epoch"], item["loss"], item.get("acc")
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    if acc:
        history["train_acc"], history["val_acc"] = [], []
    begin = 0
    for point in item["evals"]:
        end = point["epoch"] * spe
        history["train_loss"].append(sum(map(_value, loss[begin:end])) / (end - begin))
        history["val_loss"].append(_value(point["val_loss"]))
        if acc:
            history["train_acc"].append(sum(acc[begin:end]) / (end - begin))
            history["val_acc"].append(_value(point["val_acc"]))
        begin = end
    return history


# How frameworks name and number what they log (the names are the ones they write):
# - loop: a hand-written loop, every step's ``train_loss`` from step 0, ``val_loss`` and
#   ``val_acc`` in percent (100 * correct / total) at the evaluation's step;
# - keras: Keras's autolog, per epoch (step = epoch - 1), ``loss`` ``accuracy``
#   ``val_loss`` ``val_accuracy``;
# - trainer: Hugging Face Trainer, the mean ``loss`` every ``logging_steps`` (here a quarter
#   of an epoch), ``eval_loss`` and ``eval_accuracy`` at the evaluation's step;
# - lightning: every step's ``train_loss_step``, ``train_loss_epoch`` and ``val_loss_epoch`` /
#   ``val_acc_epoch`` (``self.log(..., on_step=True, on_epoch=True)`` in validation_step) at
#   the epoch's last step;
# - timm: per epoch (step = epoch), ``train_loss``, ``eval_loss``, ``eval_top1`` in percent;
# - top1: every step's ``train_loss`` from step 0, ``val_loss`` and a bare ``top1`` in
#   percent at the evaluation (timm's validate() returns it under that name).
STYLES = ("loop", "keras", "trainer", "lightning", "timm", "top1")
NAMES = {  # style: (train loss, train accuracy, val loss, val accuracy, accuracy in percent)
    "loop": ("train_loss", None, "val_loss", "val_acc", True),
    "keras": ("loss", "accuracy", "val_loss", "val_accuracy", False),
    "trainer": ("loss", None, "eval_loss", "eval_accuracy", False),
    "lightning": ("train_loss_step", None, "val_loss_epoch", "val_acc_epoch", False),
    "timm": ("train_loss", None, "eval_loss", "eval_top1", True),
    "top1": ("train_loss", None, "val_loss", "top1", True),
}


def logged(item: dict[str, Any], style: str) -> list[Point]:
    """The points a script of ``style`` logs for the run, in the order it logs them."""
    train_key, acc_key, val_key, val_acc_key, percent = NAMES[style]
    spe, loss = item["steps_per_epoch"], [_value(v) for v in item["loss"]]
    per_epoch = style in ("keras", "timm")
    history = per_evaluation(item) if per_epoch else {}
    points: list[Point] = []
    clock = iter(range(1, 10**9))

    def add(key: str, value: float, step: int) -> None:
        points.append({"key": key, "value": value, "step": step, "timestamp": next(clock)})

    every = max(1, spe // 4) if style == "trainer" else 1
    begin = 0
    for n, point in enumerate(item["evals"]):
        end = point["epoch"] * spe
        step = n if style == "keras" else point["epoch"] if per_epoch else end
        if per_epoch:
            add(train_key, history["train_loss"][n], step)
            if acc_key and "train_acc" in history:
                add(acc_key, history["train_acc"][n], step)
        else:
            for s in range(begin, end, every):
                chunk = loss[s:min(s + every, end)]
                add(train_key, sum(chunk) / len(chunk),
                    s if style in ("loop", "top1") else s + len(chunk))
            if style == "lightning":
                add("train_loss_epoch", sum(loss[begin:end]) / (end - begin), end)
        add(val_key, _value(point["val_loss"]), step)
        if "val_acc" in point:
            add(val_acc_key, _value(point["val_acc"]) * (100 if percent else 1), step)
        begin = end
    return points
