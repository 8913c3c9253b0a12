"""Learning curves the diagnosis was never tuned on, from real training, as scripts log them.

    FITBOARD_DATA_DIR=/work/shared/data .venv/bin/python -m bench.fresh_curves   # fresh.json

About two minutes on 2 busy cores (one torch thread). Each run is a plain PyTorch loop on data
or models the other curve sets do not use (SST-2 as a bag of words, a CNN on Fashion-MNIST
subsets, breast cancer and wine with tiny training shares, diabetes in 1e-4 and 1e4 units,
iris for 500 epochs) and keeps what a script logs: every step's training loss and accuracy
(the first before any update: the untrained network's), and each evaluation's validation loss
and accuracy, after every ``val_every``-th epoch. ``tests/training/test_diagnostics_fresh.py``
and ``tests/tracking/test_fresh_curves.py`` replay them: per epoch with the task known (as the
engine's loop judges), and through the tracking API under the names frameworks log (Keras,
Hugging Face Trainer, Lightning, timm, a hand-written loop with accuracy in percent).

``label`` is the call made from the curves' numbers before any diagnosis was run on them, and
``also`` what else an expert could defend; ``why`` says it in numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.training.curves.stress import classes, digit_pairs, mlp, split_of

PATH = Path(__file__).resolve().parent.parent / "tests" / "training" / "curves" / "fresh.json"

Arrays = tuple[Any, Any, Any, Any]
Log = dict[str, Any]


@dataclass(frozen=True)
class Fresh:
    label: str
    why: str
    make: Callable[[], tuple[dict[str, Any], Log]]
    also: tuple[str, ...] = ()


def seeded(seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)


def run(model: Any, data: Arrays, epochs: int, optimizer: Any, *, regression: bool = False,
        batch: int = 64, val_every: int = 1, lr_at: Callable[[int], float] | None = None,
        l2: float = 0.0, criterion: Any = None) -> Log:
    """A script's loop, logging every step's loss and accuracy (the step's batch, in train
    mode, before its update) and, every ``val_every`` epochs, the validation loss and
    accuracy; ``lr_at(step)`` sets the learning rate; ``l2`` adds a weight penalty to the loss
    the optimizer sees (the logged loss is the data loss); ``criterion`` (MSE or cross-entropy
    when not given) scores training and validation alike."""
    import torch
    from torch import nn

    x_train, y_train, x_val, y_val = data
    shuffle = torch.Generator().manual_seed(0)
    if criterion is None:
        criterion = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    log: Log = {"loss": [], "acc": [], "evals": [], "steps_per_epoch": 0}
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle)
        for i in range(0, len(x_train), batch):
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
            rows = order[i:i + batch]
            out = model(x_train[rows])
            target = y_train[rows].view(-1, 1) if regression else y_train[rows]
            loss = criterion(out, target)
            penalty = l2 * sum((p * p).sum() for p in model.parameters()) if l2 else 0.0
            optimizer.zero_grad()
            (loss + penalty).backward()
            optimizer.step()
            step += 1
            log["loss"].append(loss.item())
            if not regression:
                log["acc"].append(float((out.argmax(1) == y_train[rows]).float().mean()))
        log["steps_per_epoch"] = log["steps_per_epoch"] or step
        if epoch % val_every == 0 or epoch == epochs:
            model.eval()
            with torch.no_grad():
                out = model(x_val)
                target = y_val.view(-1, 1) if regression else y_val
                point = {"epoch": epoch, "val_loss": criterion(out, target).item()}
                if not regression:
                    point["val_acc"] = float((out.argmax(1) == y_val).float().mean())
            log["evals"].append(point)
    if regression:
        del log["acc"]
    return log


def task_of(y: Any, k: int) -> dict[str, Any]:
    return classes(y, k)


def regression(y_train: Any) -> dict[str, Any]:
    """A regression task in the target's own units: a constant prediction (the training
    mean) scores the training target's variance."""
    return {"kind": "regression", "loss_scale": float(y_train.float().var(unbiased=False))}


# --- overfitting ------------------------------------------------------------------------------


def wine_tiny_train_wide() -> tuple[dict[str, Any], Log]:
    """Wine with 27 training rows (85% held out), 512x512 MLP, Adam 1e-3, full batch, 150
    epochs, no regularisation."""
    import torch

    seeded()
    d = split_of("wine", val=0.85)
    model = mlp(13, [512, 512], 3)
    return task_of(d[1], 3), run(model, d, 150, torch.optim.Adam(model.parameters(), 1e-3),
                                 batch=64)


def breast_cancer_40_rows() -> tuple[dict[str, Any], Log]:
    """Breast cancer with 40 training rows, 1024-unit MLP, Adam 3e-3, batches of 8, 80
    epochs."""
    import torch

    seeded()
    d = split_of("breast_cancer", val=0.93)
    model = mlp(30, [1024], 2)
    return task_of(d[1], 2), run(model, d, 80, torch.optim.Adam(model.parameters(), 3e-3),
                                 batch=8)


def sst2_bag_of_words(rows: int, hidden: list[int], lr: float, epochs: int, *,
                      l2: float = 0.0, optimizer: str = "adam", batch: int = 32) -> tuple[
                          dict[str, Any], Log]:
    """SST-2 sentences as a bag of their 2,000 commonest words (counts), ``rows`` training
    sentences, validation on 872 dev sentences."""
    import collections

    import torch

    from training.data.catalog import data_dir

    def read(file: str) -> tuple[list[str], list[int]]:
        lines = (data_dir() / "sst2" / file).read_text().splitlines()[1:]
        pairs = [line.rsplit("\t", 1) for line in lines]
        return [p[0].lower().split() for p in pairs], [int(p[1]) for p in pairs]

    words, labels = read("train.tsv")
    dev_words, dev_labels = read("dev.tsv")
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(words), generator=g)[:rows].tolist()
    words, labels = [words[i] for i in order], [labels[i] for i in order]
    counts = collections.Counter(w for sentence in words for w in sentence)
    vocab = {w: i for i, (w, _) in enumerate(counts.most_common(2000))}

    def encode(sentences: list[list[str]]) -> Any:
        x = torch.zeros(len(sentences), len(vocab))
        for row, sentence in enumerate(sentences):
            for w in sentence:
                if w in vocab:
                    x[row, vocab[w]] += 1
        return x

    seeded()
    d = (encode(words), torch.tensor(labels), encode(dev_words), torch.tensor(dev_labels))
    model = mlp(len(vocab), hidden, 2)
    opt = (torch.optim.Adam(model.parameters(), lr) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr))
    return task_of(d[1], 2), run(model, d, epochs, opt, batch=batch, l2=l2)


def sst2_500_rows_wide() -> tuple[dict[str, Any], Log]:
    """SST-2 bag of words, 500 training sentences, 512-unit MLP, Adam 1e-3, 30 epochs."""
    return sst2_bag_of_words(500, [512], 1e-3, 30)


def digits_val_every_5() -> tuple[dict[str, Any], Log]:
    """Digits (pixels / 16) with 150 training rows, 512x512 MLP, Adam 2e-3, 100 epochs,
    validation scored every 5th epoch only."""
    import torch
    from sklearn.datasets import load_digits

    seeded()
    bunch = load_digits()
    order = torch.randperm(len(bunch.target), generator=torch.Generator().manual_seed(0))
    x = torch.tensor(bunch.data, dtype=torch.float32)[order] / 16
    y = torch.tensor(bunch.target)[order]
    d = (x[:150], y[:150], x[150:], y[150:])
    model = mlp(64, [512, 512], 10)
    return task_of(d[1], 10), run(model, d, 100, torch.optim.Adam(model.parameters(), 2e-3),
                                  batch=32, val_every=5)


def diabetes_raw_units_small() -> tuple[dict[str, Any], Log]:
    """Diabetes in its own units (targets 25-346, MSE ~ 2.9e4 at the start), 60 training rows,
    256x256 MLP, Adam 3e-3, batches of 16, 300 epochs."""
    import torch

    seeded()
    d = split_of("diabetes", val=0.86)
    model = mlp(10, [256, 256], 1)
    # Not centred, as the engine's targets are: judged as a script's run only.
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    return {**regression(d[1]), "standardised": False}, run(model, d, 300, opt,
                                                            regression=True, batch=16)


# --- underfitting -----------------------------------------------------------------------------


def digits_l2_heavy() -> tuple[dict[str, Any], Log]:
    """Digits, 128-unit MLP, Adam 1e-2 with an L2 penalty of 0.5 on every weight added to the
    loss, 30 epochs: the penalty holds the weights near zero."""
    import torch

    seeded()
    d = split_of("digits")
    model = mlp(64, [128], 10)
    return task_of(d[1], 10), run(model, d, 30, torch.optim.Adam(model.parameters(), 1e-2),
                                  l2=0.5)


def fashion_one_unit() -> tuple[dict[str, Any], Log]:
    """4,000 Fashion-MNIST rows through one hidden unit, Adam 3e-3, 25 epochs."""
    import torch

    seeded()
    d = split_of("fashion-mnist", n=5000)
    model = mlp(784, [1], 10)
    return task_of(d[1], 10), run(model, d, 25, torch.optim.Adam(model.parameters(), 3e-3))


def diabetes_ridge_heavy() -> tuple[dict[str, Any], Log]:
    """Diabetes, standardised target, a linear model with weight decay 50 under SGD 1e-3 (so
    the step stays stable), 60 epochs."""
    import torch
    from torch import nn

    seeded()
    x_train, y_train, x_val, y_val = split_of("diabetes")
    mean, std = y_train.mean(), y_train.std()
    d = (x_train, (y_train - mean) / std, x_val, (y_val - mean) / std)
    model = nn.Linear(10, 1)
    opt = torch.optim.SGD(model.parameters(), 1e-3, weight_decay=50.0)
    return regression(d[1]), run(model, d, 60, opt, regression=True, batch=32)


# --- diverging --------------------------------------------------------------------------------


def iris_sgd_lr_30() -> tuple[dict[str, Any], Log]:
    """Iris, 32-unit MLP, plain SGD at 30, batches of 16, 30 epochs."""
    import torch

    seeded()
    d = split_of("iris", val=0.3)
    model = mlp(4, [32], 3)
    return task_of(d[1], 3), run(model, d, 30, torch.optim.SGD(model.parameters(), 30.0),
                                 batch=16)


def sst2_adam_lr_0_5() -> tuple[dict[str, Any], Log]:
    """SST-2 bag of words, 3,000 sentences, 256x256 MLP, Adam at 0.5, 15 epochs."""
    return sst2_bag_of_words(3000, [256, 256], 0.5, 15, batch=64)


def fashion_cnn_sgd_lr_3() -> tuple[dict[str, Any], Log]:
    """A two-block CNN on 3,000 Fashion-MNIST rows, SGD at 3 with momentum 0.9, 10 epochs."""
    import torch

    seeded()
    d = images(split_of("fashion-mnist", n=3750))
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), 3.0, momentum=0.9)
    return task_of(d[1], 10), run(model, d, 10, opt, batch=64)


def images(d: Arrays) -> Arrays:
    return d[0].view(-1, 1, 28, 28), d[1], d[2].view(-1, 1, 28, 28), d[3]


def cnn(width: int = 8) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 49, 10))


# --- slow -------------------------------------------------------------------------------------


def digits_sgd_lr_2e_3() -> tuple[dict[str, Any], Log]:
    """Digits, 64-unit MLP, plain SGD at 2e-3, batches of 64, 40 epochs."""
    import torch

    seeded()
    d = split_of("digits")
    model = mlp(64, [64], 10)
    return task_of(d[1], 10), run(model, d, 40, torch.optim.SGD(model.parameters(), 2e-3))


def sst2_sgd_lr_1e_2() -> tuple[dict[str, Any], Log]:
    """SST-2 bag of words, 3,000 sentences, logistic regression, plain SGD at 1e-2, 20
    epochs."""
    return sst2_bag_of_words(3000, [], 1e-2, 20, optimizer="sgd", batch=64)


def wine_adam_1e_5() -> tuple[dict[str, Any], Log]:
    """Wine, 64-unit MLP, Adam 3e-5, batches of 16, 60 epochs."""
    import torch

    seeded()
    d = split_of("wine")
    model = mlp(13, [64], 3)
    return task_of(d[1], 3), run(model, d, 60, torch.optim.Adam(model.parameters(), 3e-5),
                                 batch=16)


# --- healthy, in the shapes of practice -------------------------------------------------------


def breast_cancer_step_decay() -> tuple[dict[str, Any], Log]:
    """Breast cancer, 64-unit MLP with dropout 0.3, SGD momentum 0.9 at 0.05 divided by 10 at
    epochs 10 and 20, weight decay 1e-3 (in the optimizer), 30 epochs."""
    import torch

    seeded()
    d = split_of("breast_cancer")
    model = mlp(30, [64], 2, dropout=0.3)
    per_epoch = math.ceil(len(d[0]) / 32)
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=1e-3)
    return task_of(d[1], 2), run(model, d, 30, opt, batch=32,
                                 lr_at=lambda s: 0.05 * 0.1 ** (s // (10 * per_epoch)))


def digits_warm_restarts() -> tuple[dict[str, Any], Log]:
    """Digits, 128-unit MLP with dropout 0.2, SGD momentum 0.9, weight decay 5e-4, SGDR:
    cosine from 0.1 to 0 over 10 epochs, restarted 3 times (40 epochs)."""
    import torch

    seeded()
    d = split_of("digits")
    model = mlp(64, [128], 10, dropout=0.2)
    per_epoch = math.ceil(len(d[0]) / 64)
    cycle = 10 * per_epoch
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=5e-4)
    return task_of(d[1], 10), run(
        model, d, 40, opt,
        lr_at=lambda s: 0.05 * (1 + math.cos(math.pi * (s % cycle) / cycle)))


def fashion_cnn_cosine() -> tuple[dict[str, Any], Log]:
    """A two-block CNN on 4,000 Fashion-MNIST rows, Adam 2e-3 with weight decay 1e-4, a
    cosine to zero over 12 epochs, batches of 32 (noisy per-step losses)."""
    import torch

    seeded()
    d = images(split_of("fashion-mnist", n=5000))
    model = cnn()
    steps = 12 * math.ceil(len(d[0]) / 32)
    opt = torch.optim.Adam(model.parameters(), 2e-3, weight_decay=1e-4)
    return task_of(d[1], 10), run(
        model, d, 12, opt, batch=32,
        lr_at=lambda s: 1e-3 * (1 + math.cos(math.pi * s / steps)))


def sst2_three_epochs() -> tuple[dict[str, Any], Log]:
    """SST-2 bag of words, 6,000 sentences, logistic regression, Adam 3e-3, 3 epochs."""
    return sst2_bag_of_words(6000, [], 3e-3, 3, batch=64)


def mnist_cnn_three_epochs() -> tuple[dict[str, Any], Log]:
    """A two-block CNN on 3,000 MNIST rows, Adam 2e-3, batches of 32, 3 epochs."""
    import torch

    seeded()
    d = images(split_of("mnist", n=3750))
    model = cnn()
    return task_of(d[1], 10), run(model, d, 3, torch.optim.Adam(model.parameters(), 2e-3),
                                  batch=32)


def iris_500_epochs() -> tuple[dict[str, Any], Log]:
    """Iris (30% held out), 8-unit MLP, Adam 3e-3 with weight decay 1e-3, batches of 32, 500
    epochs, validation every 10th."""
    import torch

    seeded()
    d = split_of("iris", val=0.3)
    model = mlp(4, [8], 3)
    opt = torch.optim.Adam(model.parameters(), 3e-3, weight_decay=1e-3)
    return task_of(d[1], 3), run(model, d, 500, opt, batch=32, val_every=10)


def diabetes_tiny_units() -> tuple[dict[str, Any], Log]:
    """Diabetes with its target standardised and scaled by 0.01 (a constant prediction's MSE
    1e-4), a linear model from zero weights, Adam 1e-3, 80 epochs."""
    import torch
    from torch import nn

    seeded()
    x_train, y_train, x_val, y_val = split_of("diabetes")
    mean, std = y_train.mean(), y_train.std()
    d = (x_train, (y_train - mean) / std * 0.01, x_val, (y_val - mean) / std * 0.01)
    model = nn.Linear(10, 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return regression(d[1]), run(model, d, 80, torch.optim.Adam(model.parameters(), 1e-3),
                           regression=True, batch=32)


def parity_late_drop() -> tuple[dict[str, Any], Log]:
    """The parity of 4 of 16 random ±1 bits, 4,000 training rows, 128-unit MLP, Adam 1e-3,
    batches of 64, 40 epochs: at chance for its first epochs, then a sudden fall."""
    import torch

    seeded()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (5000, 16), generator=g).float() * 2 - 1
    y = ((x[:, :4] < 0).sum(1) % 2).long()
    model = mlp(16, [128], 2)
    return task_of(y[:4000], 2), run(model, (x[:4000], y[:4000], x[4000:], y[4000:]), 40,
                                     torch.optim.Adam(model.parameters(), 1e-3))


def hundred_classes_start() -> tuple[dict[str, Any], Log]:
    """100 classes (two digits side by side, 10 x first + second) from 1,500 training pairs,
    256-unit MLP, plain SGD at 3e-4, 6 epochs: accuracy at most 1% throughout."""
    import torch

    seeded()
    x_train, y_train, x_val, y_val = split_of("digits", val=0.16)
    x_train, y_train = digit_pairs(x_train, y_train)
    x_val, y_val = digit_pairs(x_val, y_val)
    model = mlp(128, [256], 100)
    return task_of(y_train, 100), run(model, (x_train, y_train, x_val, y_val), 6,
                                      torch.optim.SGD(model.parameters(), 3e-4), batch=32)


FRESH: dict[str, Fresh] = {
    "wine_tiny_train_wide": Fresh(
        "healthy", "27 rows memorised (loss 3e-5), yet validation loss stays at 0.10-0.11 and "
        "validation accuracy ends at its best, 97%", wine_tiny_train_wide, also=("overfitting",)),
    "breast_cancer_40_rows": Fresh(
        "overfitting", "training loss to ~0; validation loss rises well above its best",
        breast_cancer_40_rows),
    "sst2_500_rows_wide": Fresh(
        "overfitting", "500 sentences memorised; dev loss climbs after its first epochs",
        sst2_500_rows_wide),
    "digits_val_every_5": Fresh(
        "overfitting", "150 rows memorised; validation loss (every 5th epoch) rises 14% from its "
        "low of 0.279 while its accuracy creeps up 0.5 points",
        digits_val_every_5, also=("healthy",)),
    "diabetes_raw_units_small": Fresh(
        "overfitting", "60 rows in raw units fitted far below the validation MSE, which rises",
        diabetes_raw_units_small),
    "digits_l2_heavy": Fresh(
        "underfitting", "an L2 penalty of 0.5 holds both losses near the majority class's",
        digits_l2_heavy),
    "fashion_one_unit": Fresh(
        "underfitting", "one hidden unit: both losses flat well above what a linear model reaches",
        fashion_one_unit),
    "diabetes_ridge_heavy": Fresh(
        "underfitting", "weight decay 50 holds the MSE near the mean predictor's 1.0",
        diabetes_ridge_heavy),
    "iris_sgd_lr_30": Fresh("diverging", "lr 30: the loss overflows or sits far above ln 3",
                            iris_sgd_lr_30),
    "sst2_adam_lr_0_5": Fresh(
        "diverging", "Adam at 0.5: steps at 2,557 and an epoch at 102, 150x ln 2; then stuck "
        "at chance", sst2_adam_lr_0_5, also=("underfitting",)),
    "fashion_cnn_sgd_lr_3": Fresh(
        "diverging", "SGD at 3: steps at 8-35 in the first epoch, then stuck above ln 10",
        fashion_cnn_sgd_lr_3, also=("underfitting",)),
    "digits_sgd_lr_2e_3": Fresh("slow", "plain SGD at 2e-3: both losses fall in a near line",
                                digits_sgd_lr_2e_3, also=("underfitting",)),
    "sst2_sgd_lr_1e_2": Fresh("slow", "logistic regression at SGD 1e-2: still falling steadily",
                              sst2_sgd_lr_1e_2, also=("underfitting",)),
    "wine_adam_1e_5": Fresh("slow", "Adam 3e-5: a straight, shallow fall from ln 3",
                            wine_adam_1e_5, also=("underfitting",)),
    "breast_cancer_step_decay": Fresh(
        "healthy", "step drops at epochs 10 and 20; both losses low and level",
        breast_cancer_step_decay),
    "digits_warm_restarts": Fresh(
        "healthy", "SGDR saw-tooth: each restart bumps then lowers both losses",
        digits_warm_restarts),
    "fashion_cnn_cosine": Fresh(
        "healthy", "a CNN under a cosine: both losses fall together to ~0.35-0.45",
        fashion_cnn_cosine, also=("overfitting",)),
    "sst2_three_epochs": Fresh("healthy", "3 epochs, both losses falling", sst2_three_epochs,
                               also=("slow",)),
    "mnist_cnn_three_epochs": Fresh("healthy", "3 epochs of a CNN: both losses fall fast",
                                    mnist_cnn_three_epochs, also=("slow",)),
    "iris_500_epochs": Fresh("healthy", "500 epochs: both losses settle low together "
                             "(validation 0.17-0.18, accuracy 93%)", iris_500_epochs,
                             also=("overfitting",)),
    "diabetes_tiny_units": Fresh(
        "healthy", "a linear model in units of 1e-4: MSE falls to its floor and stays",
        diabetes_tiny_units, also=("slow",)),
    "parity_late_drop": Fresh(
        "healthy", "at chance for a few epochs, then both losses drop to near 0",
        parity_late_drop, also=("overfitting",)),
    "hundred_classes_start": Fresh(
        "underfitting", "100 classes, SGD 3e-4 for 6 epochs: accuracy at most 1%, loss at ln 100",
        hundred_classes_start, also=("slow",)),
}


# The engine (``training.run`` on the CPU, its reference model on the same split), judged with
# its spec and reference as the loop judges it, every epoch (``live``: the live verdicts'
# stretches of one kind, in order).
ENGINE: dict[str, tuple[str, str, tuple[str, ...], str, dict[str, Any]]] = {
    "engine_breast_cancer_wide_subset": (
        "overfitting", "120 rows, a 512x512 MLP: validation loss doubles from its best",
        (), "hO",
        {"data": {"dataset": "breast_cancer", "subset": 120},
         "model": {"arch": "mlp", "hidden_sizes": [512, 512]}, "optim": {"lr": 3e-3},
         "run": {"epochs": 60, "batch_size": 16}}),
    "engine_wine_adamw_decay_5": (
        "healthy", "AdamW with weight decay 5: validation accuracy 100% as the reference's, "
        "but the small weights hold the loss at 0.26 against its 0.024 (underconfident)",
        ("underfitting",), "h",
        {"data": {"dataset": "wine"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
         "optim": {"optimizer": "adamw", "lr": 3e-2, "weight_decay": 5.0},
         "run": {"epochs": 40, "batch_size": 16}}),
    "engine_iris_sgd_lr_8": (
        "diverging", "SGD at 8 with momentum: the loss overflows", (), "D",
        {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [32]},
         "optim": {"optimizer": "sgd", "lr": 8.0}, "run": {"epochs": 20, "batch_size": 16}}),
    "engine_diabetes_sgd_lr_1e_4": (
        "slow", "SGD at 1e-4: the MSE falls in a near line, far from the ridge reference",
        ("underfitting",), "h",
        {"data": {"dataset": "diabetes"}, "model": {"arch": "mlp", "hidden_sizes": [32]},
         "optim": {"optimizer": "sgd", "lr": 1e-4, "loss": "mse"},
         "run": {"epochs": 40, "batch_size": 32}}),
    "engine_digits_adam_decay_1": (
        "underfitting", "Adam with an L2 of 1.0: both losses held at ln 10 (2.30), accuracy 10%",
        (), "U",
        {"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [64]},
         "optim": {"lr": 1e-2, "weight_decay": 1.0}, "run": {"epochs": 30}}),
    "engine_digits_cnn_step": (
        "healthy", "a CNN with the learning rate cut tenfold every 8 epochs: both losses drop "
        "at each cut and level off together", ("overfitting",), "h",
        {"data": {"dataset": "digits"}, "model": {"arch": "cnn", "width": 16},
         "optim": {"lr": 3e-3}, "schedule": {"kind": "step", "step_epochs": 8},
         "run": {"epochs": 20}}),
    "engine_fashion_cnn_step": (
        "underfitting", "step decay every 4 epochs cut the rate before the CNN learned: both "
        "losses flat at 1.18 (62%) from epoch 8, against 82% for a logistic regression",
        (), "hU",
        {"data": {"dataset": "fashion_mnist", "subset": 3000},
         "model": {"arch": "cnn", "width": 8}, "optim": {"lr": 2e-3},
         "schedule": {"kind": "step", "step_epochs": 4}, "run": {"epochs": 12}}),
    "engine_iris_500_epochs": (
        "healthy", "500 epochs of a small regularised MLP: both losses settle together",
        ("overfitting",), "h",
        {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
         "optim": {"lr": 3e-3, "weight_decay": 1e-3}, "run": {"epochs": 500, "batch_size": 32}}),
    "engine_sst2_lstm": (
        "overfitting", "2,000 SST-2 phrases through an LSTM: validation loss from 0.65 (epoch "
        "3) to 1.51 while training loss heads to 0.04", (), "hO",
        {"data": {"dataset": "sst2", "subset": 2000},
         "model": {"arch": "lstm", "hidden_size": 64, "embed_dim": 32, "max_length": 32},
         "optim": {"lr": 3e-3}, "run": {"epochs": 12, "batch_size": 32}}),
}


def sig(values: list[float]) -> list[float | None]:
    return [float(f"{v:.4g}") if math.isfinite(v) else None for v in values]


def record(name: str, fresh: Fresh) -> dict[str, Any]:
    task, log = fresh.make()
    standardised = task.pop("standardised", True)
    evals = [{key: (sig([v])[0] if key != "epoch" else v) for key, v in point.items()}
             for point in log["evals"]]
    item = {"name": name, "label": fresh.label, "also": list(fresh.also), "why": fresh.why,
            "how": " ".join((fresh.make.__doc__ or "").split()), "task": task,
            "steps_per_epoch": log["steps_per_epoch"], "loss": sig(log["loss"]),
            "evals": evals}
    if "acc" in log:
        item["acc"] = [round(v, 4) for v in log["acc"]]
    if not standardised:
        item["standardised"] = False
    return item


def record_engine(name: str, refs: Path) -> dict[str, Any]:
    """An engine run of ``ENGINE`` with its label, reasons and pinned live verdicts."""
    from tests.training.curves.stress import ENGINE_HOW

    label, why, also, live, patch = ENGINE[name]
    return {"name": name, "label": label, "also": list(also), "why": why, "live": live,
            "how": ENGINE_HOW, **engine_record(patch, refs)}


def engine_record(patch: dict[str, Any], refs: Path) -> dict[str, Any]:
    """The spec ``patch``'s engine run: its per-epoch history, task and reference; a run
    stopped on a NaN loss ends its losses with one, as the web app's final verdict reads it
    (``diagnosis.final_verdict``)."""
    import tempfile

    from tests.training.curves.record import task_of
    from tests.training.curves.stress import EPOCH_KEYS, rounded, spec_of
    from training import MemoryReporter, run
    from training.loop import NonFiniteLossError
    from training.reference import cached_reference, reference_key

    spec, reporter = spec_of(patch), MemoryReporter()
    try:
        run(spec, reporter, Path(tempfile.mkdtemp(prefix="fitboard-fresh-")), reference_dir=refs)
        stopped = False
    except NonFiniteLossError:
        stopped = True
    history = {key: [v for _, v in reporter.series(key)] for key in EPOCH_KEYS}
    history = {key: [*values, math.nan] if stopped else values
               for key, values in history.items() if values or key.endswith("_loss")}
    reference = cached_reference(refs, reference_key(spec))
    assert reference is not None
    return {"task": task_of(spec).__dict__, "patch": patch, "reference": reference.to_dict(),
            "history": {key: rounded(values) for key, values in history.items()}}


def main() -> None:
    import tempfile

    import torch

    torch.set_num_threads(1)
    only = set(sys.argv[1:])
    old = {item["name"]: item for item in load()} if PATH.exists() else {}
    refs = Path(tempfile.mkdtemp(prefix="fitboard-fresh-refs-"))
    for name in [*FRESH, *ENGINE]:
        if only and name not in only:
            continue
        began = time.monotonic()
        old[name] = record(name, FRESH[name]) if name in FRESH else record_engine(name, refs)
        print(f"{name}: {time.monotonic() - began:.1f} s", flush=True)
    items = [old[name] for name in [*FRESH, *ENGINE] if name in old]
    PATH.write_text("[\n" + ",\n".join(json.dumps(item) for item in items) + "\n]\n")


def load() -> list[dict[str, Any]]:
    return list(json.loads(PATH.read_text()))


if __name__ == "__main__":
    main()
