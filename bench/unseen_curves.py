"""Learning curves none of the other sets use, from real training, labelled by a written rule.

    FITBOARD_DATA_DIR=/work/shared/data .venv/bin/python -m bench.unseen_curves   # unseen.json

70-105 s on one busy core (one torch thread). Each run is a plain PyTorch loop
(``bench.fresh_curves.run``: every step's training loss and accuracy, the first before any
update, and each evaluation's validation loss and accuracy) on data, models and optimisers the
corpus, stress, real-run and fresh sets do not use: sklearn's generated sets (moons and circles
with flipped labels, a covtype-like 7-class table, Friedman #1 and a linear regression) and
MNIST subsets through MLPs under SGD with momentum, RMSprop, Adagrad, NAdam and AdamW; with
label-smoothed cross-entropy, MAE beside MSE, cosine restarts and step schedules, batches of 2
and 4, weight decay up to 30, dropout 0.7, a late escape from a plateau, 50 validation rows,
and validation every 3rd, 4th or 5th epoch. ``tests/training/test_diagnostics_unseen.py`` and
``tests/tracking/test_unseen_curves.py`` replay them as the fresh set's tests do.

Each run's ``label``, ``also`` and ``why`` come from ``call``, a rule on the curves' numbers
written (and the runs recorded) before any diagnosis was run on them; it does not read
``training.diagnostics``. The rule, on the per-evaluation history (training loss: the mean of
the steps since the evaluation before), with ``chance`` the untrained network's loss (ln K;
a regression's constant-prediction loss) and ``baseline`` the best constant prediction's
(the class frequencies' cross-entropy, label-smoothed; the target's variance for MSE, its
mean absolute deviation for MAE); "now" is the median of the last three evaluations:

1. **diverging**: a non-finite loss; or an evaluation's training loss at 3× chance or more;
   or training loss now at least a quarter of chance above its lowest 3-evaluation average.
2. **overfitting**: the best validation loss is 3 or more evaluations before the end, the
   training loss fell 10% or more since (from its 3-evaluation average there), and one of:
   validation loss now 15% and 2% of the baseline above its best; the validation-minus-
   training gap grown by 15% of the baseline since; validation accuracy now 5 points under
   its best 3-evaluation average.
3. **underfitting**: the better of training and validation loss now has shed less than half
   (classification; a quarter for regression) of the way from the baseline to the lowest
   reachable loss (0, or the smoothed labels' entropy) — unless still falling (4), then slow.
4. **slow**: over the last quarter of the evaluations (at least 2), the 3-evaluation average
   of the training loss fell at a pace that would shed 5% of the baseline over a run as long
   again, at least 0.4 of its average pace since the second evaluation, and validation fell
   too, by at least a quarter of the training loss's fall.
5. **healthy** otherwise.

``also`` adds the calls an expert could defend at the rule's edges: a sign within half its
threshold (overfitting's at 0.5-1.5×, a shed share within 0.1 of underfitting's), a pace of
3% or more with validation following (slow), and underfitting beside a divergence or a slow
descent that ends poor.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fresh_curves import Fresh, cnn, images, record, regression, run, seeded, task_of
from tests.training.curves.fresh import per_evaluation
from tests.training.curves.stress import mlp, split_of

PATH = Path(__file__).resolve().parent.parent / "tests" / "training" / "curves" / "unseen.json"

Arrays = tuple[Any, Any, Any, Any]
Made = tuple[dict[str, Any], dict[str, Any]]

# The rule's thresholds (see the docstring).
EXPLODE = 3.0
CLIMB = 0.25
AFTER_BEST = 3
TRAIN_FELL = 0.10
VAL_ROSE, VAL_ROSE_FLOOR = 0.15, 0.02
GAP_GREW = 0.15
ACC_FELL = 0.05
LEARNED = {"classification": 0.5, "regression": 0.25}
PACE, PACE_ALSO, PACE_KEPT, VAL_FOLLOWS = 0.05, 0.03, 0.4, 0.25


# --- data -------------------------------------------------------------------------------------


def table(x: Any, y: Any, val: int, *, target: str = "class", seed: int = 0) -> Arrays:
    """A seeded split of a generated table with ``val`` validation rows, features standardised
    with the training rows; a regression target standardised too (``target="standard"``) or
    kept in its units (``"raw"``)."""
    import numpy as np
    import torch

    order = np.random.default_rng(seed).permutation(len(x))
    x, y = np.asarray(x, np.float32)[order], np.asarray(y)[order]
    x_train, x_val = x[val:], x[:val]
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    y_train, y_val = y[val:], y[:val]
    if target == "class":
        return (torch.tensor((x_train - mean) / std), torch.tensor(y_train, dtype=torch.long),
                torch.tensor((x_val - mean) / std), torch.tensor(y_val, dtype=torch.long))
    y_train, y_val = y_train.astype(np.float32), y_val.astype(np.float32)
    if target == "standard":
        centre, scale = y_train.mean(), y_train.std()
        y_train, y_val = (y_train - centre) / scale, (y_val - centre) / scale
    return (torch.tensor((x_train - mean) / std), torch.tensor(y_train),
            torch.tensor((x_val - mean) / std), torch.tensor(y_val))


def moons(rows: int, noise: float, flip: float, val: int) -> Arrays:
    """sklearn's two moons, a ``flip`` share of all labels flipped (seeded)."""
    import numpy as np
    from sklearn.datasets import make_moons

    x, y = make_moons(rows, noise=noise, random_state=0)
    flipped = np.random.default_rng(1).random(rows) < flip
    return table(x, np.where(flipped, 1 - y, y), val)


def circles(rows: int, val: int) -> Arrays:
    from sklearn.datasets import make_circles

    x, y = make_circles(rows, noise=0.1, factor=0.5, random_state=0)
    return table(x, y, val)


def blobs_table(rows: int, classes: int, informative: int, flip: float, val: int,
                sep: float = 1.0, weights: list[float] | None = None) -> Arrays:
    """sklearn's make_classification: 30 features, ``informative`` of them, clusters of
    ``sep`` apart, ``flip`` of the labels at random."""
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, 30, n_informative=informative, n_redundant=4,
                               n_classes=classes, n_clusters_per_class=2, flip_y=flip,
                               class_sep=sep, weights=weights, random_state=0)
    return table(x, y, val)


def covtype_like(rows: int, val: int) -> Arrays:
    """A covtype-like table: 7 unbalanced classes (36/49/6/1/2/3/3%) from 54 features, 10
    of them informative, 44 noise, classes overlapping."""
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, 54, n_informative=10, n_redundant=0, n_classes=7,
                               n_clusters_per_class=3, class_sep=0.8, flip_y=0.05,
                               weights=[0.36, 0.49, 0.06, 0.01, 0.02, 0.03, 0.03],
                               random_state=0)
    return table(x, y, val)


def friedman(rows: int, noise: float, val: int, target: str = "standard") -> Arrays:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(rows, 10, noise=noise, random_state=0)
    return table(x, y, val, target=target)


def linear_table(rows: int, val: int, target: str = "standard") -> Arrays:
    from sklearn.datasets import make_regression

    x, y = make_regression(rows, 20, n_informative=12, noise=10.0, random_state=0)
    return table(x, y, val, target=target)


def diabetes_standard() -> Arrays:
    """Diabetes, target standardised with the training rows (as the engine does)."""
    x_train, y_train, x_val, y_val = split_of("diabetes")
    mean, std = y_train.mean(), y_train.std(unbiased=False)
    return x_train, (y_train - mean) / std, x_val, (y_val - mean) / std


def mnist(rows: int, val: float = 0.2) -> Arrays:
    return split_of("mnist", n=rows, val=val)


def digits(rows: int) -> Arrays:
    """Digits as pixels / 16 (a 200-row sample leaves pixels constant that the rest do not:
    standardised by it, they blow up), ``rows`` for training, the rest held out."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = torch.randperm(len(bunch.target), generator=torch.Generator().manual_seed(0))
    x = torch.tensor(bunch.data, dtype=torch.float32)[order] / 16
    y = torch.tensor(bunch.target)[order]
    return x[:rows], y[:rows], x[rows:], y[rows:]


def mae_task(y_train: Any) -> dict[str, Any]:
    """MAE's task: a constant prediction's loss is √(2/π) of the target's deviation (normal)."""
    return {"kind": "regression", "loss": "mae",
            "loss_scale": float(y_train.float().std(unbiased=False))}


def smoothed(y_train: Any, k: int, eps: float) -> dict[str, Any]:
    return {**task_of(y_train, k), "label_smoothing": eps}


def sgd(model: Any, lr: float, momentum: float = 0.9, decay: float = 0.0) -> Any:
    import torch

    return torch.optim.SGD(model.parameters(), lr, momentum=momentum, weight_decay=decay)


def adam(model: Any, lr: float, decay: float = 0.0) -> Any:
    import torch

    return torch.optim.Adam(model.parameters(), lr, weight_decay=decay)


def cosine_restarts(peak: float, cycle: int) -> Callable[[int], float]:
    return lambda s: peak * 0.5 * (1 + math.cos(math.pi * (s % cycle) / cycle))


def per_epoch(d: Arrays, batch: int) -> int:
    return math.ceil(len(d[0]) / batch)


# --- overfitting ------------------------------------------------------------------------------


def moons_flipped_wide() -> Made:
    """Two moons (noise 0.25), 20% of labels flipped, 200 training rows and 400 held out,
    512x512 MLP, Adam 3e-3, batches of 50, 150 epochs."""
    seeded()
    d = moons(600, 0.25, 0.2, 400)
    model = mlp(2, [512, 512], 2)
    return task_of(d[1], 2), run(model, d, 150, adam(model, 3e-3), batch=50)


def table_flipped_150_rows() -> Made:
    """make_classification (30 features, 6 informative, 20% random labels), 150 training rows,
    1,000 held out, 256x256 MLP, NAdam 2e-3, batches of 16, 60 epochs."""
    import torch

    seeded()
    d = blobs_table(1150, 2, 6, 0.2, 1000)
    model = mlp(30, [256, 256], 2)
    return task_of(d[1], 2), run(model, d, 60, torch.optim.NAdam(model.parameters(), 2e-3),
                                 batch=16)


def mnist_mlp_400_rows() -> Made:
    """400 MNIST rows, 1024-unit MLP, SGD momentum 0.9 at 0.05, batches of 32, 60 epochs,
    validation on 1,600 rows."""
    seeded()
    d = mnist(2000, val=0.8)
    model = mlp(784, [1024], 10)
    return task_of(d[1], 10), run(model, d, 60, sgd(model, 0.05), batch=32)


def friedman_80_rows_mse() -> Made:
    """Friedman #1 (noise 1.0, target standardised), 80 training rows, 512x512 MLP, Adam 2e-3,
    batches of 16, 200 epochs, MSE."""
    seeded()
    d = friedman(480, 1.0, 400)
    model = mlp(10, [512, 512], 1)
    return regression(d[1]), run(model, d, 200, adam(model, 2e-3), regression=True, batch=16)


def digits_smoothed_small() -> Made:
    """Digits (pixels / 16, 200 training rows), 512x512 MLP, Adam 1e-3, cross-entropy with
    label smoothing 0.1 (the logged loss too), batches of 20, 120 epochs."""
    from torch import nn

    seeded()
    d = digits(200)
    model = mlp(64, [512, 512], 10)
    return smoothed(d[1], 10, 0.1), run(model, d, 120, adam(model, 1e-3), batch=20,
                                        criterion=nn.CrossEntropyLoss(label_smoothing=0.1))


def covtype_like_every_4() -> Made:
    """The covtype-like table, 500 training rows, 256x256x256 MLP, RMSprop 1e-3, batches of
    25, 80 epochs, validation (2,000 rows) every 4th epoch."""
    import torch

    seeded()
    d = covtype_like(2500, 2000)
    model = mlp(54, [256, 256, 256], 7)
    return task_of(d[1], 7), run(model, d, 80, torch.optim.RMSprop(model.parameters(), 1e-3),
                                 batch=25, val_every=4)


def table_val_50_rows() -> Made:
    """make_classification (3 classes, 8 informative, 10% random labels), 300 training rows,
    50 validation rows, 512-unit MLP, Adam 3e-3, batches of 32, 80 epochs."""
    seeded()
    d = blobs_table(350, 3, 8, 0.1, 50)
    model = mlp(30, [512], 3)
    return task_of(d[1], 3), run(model, d, 80, adam(model, 3e-3), batch=32)


def linear_mae_overparam() -> Made:
    """make_regression (20 features, noise 10, target standardised), 60 training rows,
    1024x1024 MLP, Adam 1e-3, MAE, batches of 10, 150 epochs."""
    from torch import nn

    seeded()
    d = linear_table(460, 400)
    model = mlp(20, [1024, 1024], 1)
    return mae_task(d[1]), run(model, d, 150, adam(model, 1e-3), regression=True, batch=10,
                               criterion=nn.L1Loss())


# --- underfitting -----------------------------------------------------------------------------


def circles_linear() -> Made:
    """Concentric circles through logistic regression (no hidden layer), Adam 1e-2, 40
    epochs: no line separates them."""
    seeded()
    d = circles(1000, 300)
    model = mlp(2, [], 2)
    return task_of(d[1], 2), run(model, d, 40, adam(model, 1e-2))


def table_adamw_decay_30() -> Made:
    """make_classification (4 classes, 10 informative), 2,000 training rows, 128-unit MLP,
    AdamW 1e-2 with weight decay 30, 30 epochs."""
    import torch

    seeded()
    d = blobs_table(2500, 4, 10, 0.02, 500)
    model = mlp(30, [128], 4)
    opt = torch.optim.AdamW(model.parameters(), 1e-2, weight_decay=30.0)
    return task_of(d[1], 4), run(model, d, 30, opt)


def covtype_like_two_units() -> Made:
    """The covtype-like table, 4,000 training rows, a 2-unit MLP, Adam 3e-3, 30 epochs."""
    seeded()
    d = covtype_like(5000, 1000)
    model = mlp(54, [2], 7)
    return task_of(d[1], 7), run(model, d, 30, adam(model, 3e-3))


def mnist_dropout_07_narrow() -> Made:
    """3,000 MNIST rows, a 16-unit MLP with dropout 0.7, SGD momentum 0.9 at 0.02, 25
    epochs."""
    seeded()
    d = mnist(3750)
    model = mlp(784, [16], 10, dropout=0.7)
    return task_of(d[1], 10), run(model, d, 25, sgd(model, 0.02))


def friedman_sgd_decay_5() -> Made:
    """Friedman #1 (target standardised), 1,000 training rows, 64-unit MLP, SGD momentum 0.9
    at 0.01 with weight decay 5, 40 epochs, MSE."""
    seeded()
    d = friedman(1300, 1.0, 300)
    model = mlp(10, [64], 1)
    return regression(d[1]), run(model, d, 40, sgd(model, 0.01, decay=5.0), regression=True)


def diabetes_mae_one_unit() -> Made:
    """Diabetes (target standardised), a 1-unit MLP whose unit starts dead (bias -5), Adam
    1e-3, MAE, 40 epochs."""
    import torch
    from torch import nn

    seeded()
    d = diabetes_standard()
    model = mlp(10, [1], 1)
    with torch.no_grad():
        model[0].bias.fill_(-5.0)
    return mae_task(d[1]), run(model, d, 40, adam(model, 1e-3), regression=True,
                               criterion=nn.L1Loss())


# --- diverging --------------------------------------------------------------------------------


def mnist_sgd_momentum_lr_1() -> Made:
    """2,000 MNIST rows, 256x256 MLP, SGD momentum 0.9 at 1.0, batches of 32, 10 epochs."""
    seeded()
    d = mnist(2500)
    model = mlp(784, [256, 256], 10)
    return task_of(d[1], 10), run(model, d, 10, sgd(model, 1.0), batch=32)


def friedman_raw_sgd() -> Made:
    """Friedman #1 in its own units (target variance ~25), 64-unit MLP, SGD momentum 0.9 at
    0.05, batches of 16, 15 epochs, MSE."""
    seeded()
    d = friedman(1000, 1.0, 200, target="raw")
    model = mlp(10, [64], 1)
    return regression(d[1]), run(model, d, 15, sgd(model, 0.05), regression=True, batch=16)


def table_adam_lr_1() -> Made:
    """make_classification (5 classes, 12 informative), 256x256 MLP, Adam at 1.0, 20
    epochs."""
    seeded()
    d = blobs_table(3000, 5, 12, 0.02, 600)
    model = mlp(30, [256, 256], 5)
    return task_of(d[1], 5), run(model, d, 20, adam(model, 1.0))


def digits_restart_too_high() -> Made:
    """Digits, 128-unit MLP, SGD momentum 0.9: a cosine from 0.05 for 15 epochs, then a warm
    restart at 3.0 for the 15 more (a restart's peak mistyped)."""
    seeded()
    d = split_of("digits")
    model = mlp(64, [128], 10)
    cycle = 15 * per_epoch(d, 64)
    return task_of(d[1], 10), run(model, d, 30, sgd(model, 0.05), lr_at=lambda s: (
        0.05 if s < cycle else 3.0) * 0.5 * (1 + math.cos(math.pi * (s % cycle) / cycle)))


def moons_batch_2_sgd_lr_3() -> Made:
    """Two moons (noise 0.2), 400 training rows, 64x64 MLP, SGD momentum 0.9 at 3, batches of
    2, 8 epochs."""
    seeded()
    d = moons(500, 0.2, 0.0, 100)
    model = mlp(2, [64, 64], 2)
    return task_of(d[1], 2), run(model, d, 8, sgd(model, 3.0), batch=2)


def mnist_smoothed_rmsprop_lr_0_1() -> Made:
    """2,000 MNIST rows, 256-unit MLP, RMSprop at 0.1, cross-entropy with label smoothing
    0.1, batches of 64, 10 epochs."""
    import torch
    from torch import nn

    seeded()
    d = mnist(2500)
    model = mlp(784, [256], 10)
    opt = torch.optim.RMSprop(model.parameters(), 0.1)
    return smoothed(d[1], 10, 0.1), run(model, d, 10, opt,
                                        criterion=nn.CrossEntropyLoss(label_smoothing=0.1))


def mnist_warmup_too_high() -> Made:
    """2,000 MNIST rows, 256-unit MLP, SGD momentum 0.9 warmed up linearly from 0 to 0.6 over
    8 epochs (a peak ten times too high), 15 epochs: the loss falls, then climbs back."""
    seeded()
    d = mnist(2500)
    model = mlp(784, [256], 10)
    ramp = 8 * per_epoch(d, 64)
    return task_of(d[1], 10), run(model, d, 15, sgd(model, 0.6),
                                  lr_at=lambda s: 0.6 * min(1.0, s / ramp))


def mnist_adam_lr_0_02() -> Made:
    """2,000 MNIST rows, 256-unit MLP, Adam at 2e-2 (twenty times its default), 15 epochs."""
    seeded()
    d = mnist(2500)
    model = mlp(784, [256], 10)
    return task_of(d[1], 10), run(model, d, 15, adam(model, 2e-2))


# --- slow -------------------------------------------------------------------------------------


def mnist_sgd_momentum_lr_1e_4() -> Made:
    """3,000 MNIST rows, 256-unit MLP, SGD momentum 0.9 at 1e-4, batches of 64, 20 epochs."""
    seeded()
    d = mnist(3750)
    model = mlp(784, [256], 10)
    return task_of(d[1], 10), run(model, d, 20, sgd(model, 1e-4))


def linear_sgd_lr_1e_4() -> Made:
    """make_regression (target standardised), 1,600 training rows, a linear model, plain SGD
    at 1e-4, batches of 32, 30 epochs, MSE."""
    from torch import nn

    seeded()
    d = linear_table(2000, 400)
    model = nn.Linear(20, 1)
    return regression(d[1]), run(model, d, 30, sgd(model, 1e-4, momentum=0.0),
                                 regression=True, batch=32)


def friedman_mae_adagrad() -> Made:
    """Friedman #1 (target standardised), 64x64 MLP, Adagrad 3e-3, MAE, 30 epochs."""
    import torch
    from torch import nn

    seeded()
    d = friedman(1500, 1.0, 300)
    model = mlp(10, [64, 64], 1)
    return mae_task(d[1]), run(model, d, 30, torch.optim.Adagrad(model.parameters(), 3e-3),
                               regression=True, criterion=nn.L1Loss())


def covtype_like_rmsprop_1e_5() -> Made:
    """The covtype-like table, 4,000 training rows, 128x128 MLP, RMSprop 1e-5, 40 epochs."""
    import torch

    seeded()
    d = covtype_like(5000, 1000)
    model = mlp(54, [128, 128], 7)
    return task_of(d[1], 7), run(model, d, 40, torch.optim.RMSprop(model.parameters(), 1e-5))


def moons_sgd_lr_1e_3_every_3() -> Made:
    """Two moons (noise 0.2), 1,000 training rows, 32x32 MLP, plain SGD at 1e-3, batches of
    16, 60 epochs, validation every 3rd."""
    seeded()
    d = moons(1300, 0.2, 0.0, 300)
    model = mlp(2, [32, 32], 2)
    return task_of(d[1], 2), run(model, d, 60, sgd(model, 1e-3, momentum=0.0), batch=16,
                                 val_every=3)


def friedman_sgd_lr_1e_3() -> Made:
    """Friedman #1 (target standardised), 1,000 training rows, 64-unit MLP, plain SGD at
    1e-3, batches of 32, 30 epochs, MSE."""
    seeded()
    d = friedman(1300, 1.0, 300)
    model = mlp(10, [64], 1)
    return regression(d[1]), run(model, d, 30, sgd(model, 1e-3, momentum=0.0),
                                 regression=True, batch=32)


def mnist_smoothed_adagrad_slow() -> Made:
    """3,000 MNIST rows, 128-unit MLP, Adagrad 2e-4, cross-entropy with label smoothing 0.1,
    batches of 64, 20 epochs."""
    import torch
    from torch import nn

    seeded()
    d = mnist(3750)
    model = mlp(784, [128], 10)
    opt = torch.optim.Adagrad(model.parameters(), 2e-4)
    return smoothed(d[1], 10, 0.1), run(model, d, 20, opt,
                                        criterion=nn.CrossEntropyLoss(label_smoothing=0.1))


# --- healthy ----------------------------------------------------------------------------------


def moons_step_decay() -> Made:
    """Two moons (noise 0.2, 10% flipped), 800 training rows, 64x64 MLP, Adam 1e-2 halved
    every 10 epochs, 40 epochs."""
    seeded()
    d = moons(1000, 0.2, 0.1, 200)
    model = mlp(2, [64, 64], 2)
    per = per_epoch(d, 64)
    return task_of(d[1], 2), run(model, d, 40, adam(model, 1e-2),
                                 lr_at=lambda s: 1e-2 * 0.5 ** (s // (10 * per)))


def mnist_sgdr_momentum() -> Made:
    """4,000 MNIST rows, 256-unit MLP with dropout 0.2, SGD momentum 0.9, weight decay 5e-4,
    SGDR: a cosine from 0.05 restarted every 5 epochs, 20 epochs, batches of 128."""
    seeded()
    d = mnist(5000)
    model = mlp(784, [256], 10, dropout=0.2)
    return task_of(d[1], 10), run(model, d, 20, sgd(model, 0.05, decay=5e-4), batch=128,
                                  lr_at=cosine_restarts(0.05, 5 * per_epoch(d, 128)))


def table_smoothed_adam() -> Made:
    """make_classification (4 classes, 10 informative), 2,000 training rows, 128-unit MLP,
    Adam 1e-3, cross-entropy with label smoothing 0.2, 30 epochs."""
    from torch import nn

    seeded()
    d = blobs_table(2500, 4, 10, 0.02, 500)
    model = mlp(30, [128], 4)
    return smoothed(d[1], 4, 0.2), run(model, d, 30, adam(model, 1e-3),
                                       criterion=nn.CrossEntropyLoss(label_smoothing=0.2))


def moons_batch_2() -> Made:
    """Two moons (noise 0.2), 300 training rows, 32x32 MLP, SGD momentum 0.9 at 2e-3,
    batches of 2, 12 epochs."""
    seeded()
    d = moons(400, 0.2, 0.0, 100)
    model = mlp(2, [32, 32], 2)
    return task_of(d[1], 2), run(model, d, 12, sgd(model, 2e-3), batch=2)


def circles_late_escape() -> Made:
    """Concentric circles, a 16x16x16 ReLU MLP started at half its default weights, plain SGD
    at 0.05, batches of 32, 40 epochs: flat at ln 2 for 20 epochs, then a late fall."""
    return circles_small_start(0.5, 0.05)


def circles_escape_at_the_end() -> Made:
    """As ``circles_late_escape`` but started at 0.3 of the default weights, SGD at 0.1: flat
    at ln 2 for 35 of the 40 epochs, starting down in the last ones."""
    return circles_small_start(0.3, 0.1)


def circles_small_start(scale: float, lr: float) -> Made:
    import torch

    seeded()
    d = circles(1300, 300)
    model = mlp(2, [16, 16, 16], 2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return task_of(d[1], 2), run(model, d, 40, sgd(model, lr, momentum=0.0), batch=32)


def moons_val_50_rows() -> Made:
    """Two moons (noise 0.3), 600 training rows, 50 validation rows, 64x64 MLP, Adam 3e-3
    with weight decay 1e-3, 40 epochs."""
    seeded()
    d = moons(650, 0.3, 0.0, 50)
    model = mlp(2, [64, 64], 2)
    return task_of(d[1], 2), run(model, d, 40, adam(model, 3e-3, 1e-3))


def friedman_mse_regularised() -> Made:
    """Friedman #1 (target standardised), 1,200 training rows, 128x128 MLP, AdamW 3e-3 with
    weight decay 1e-2, MSE, 60 epochs."""
    import torch

    seeded()
    d = friedman(1500, 1.0, 300)
    model = mlp(10, [128, 128], 1)
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-2)
    return regression(d[1]), run(model, d, 60, opt, regression=True)


def diabetes_mae_adam() -> Made:
    """Diabetes (target standardised), 32-unit MLP, Adam 3e-3, MAE, batches of 16, 50
    epochs."""
    from torch import nn

    seeded()
    d = diabetes_standard()
    model = mlp(10, [32], 1)
    return mae_task(d[1]), run(model, d, 50, adam(model, 3e-3), regression=True, batch=16,
                               criterion=nn.L1Loss())


def mnist_dropout_07_wide() -> Made:
    """4,000 MNIST rows, 512-unit MLP with dropout 0.7, Adam 1e-3, batches of 64, 15 epochs:
    training loss held above validation."""
    seeded()
    d = mnist(5000)
    model = mlp(784, [512], 10, dropout=0.7)
    return task_of(d[1], 10), run(model, d, 15, adam(model, 1e-3))


def table_every_5() -> Made:
    """make_classification (3 classes, 10 informative, 5% random), 3,000 training rows,
    128-unit MLP, SGD momentum 0.9 at 0.01, 60 epochs, validation every 5th."""
    seeded()
    d = blobs_table(3500, 3, 10, 0.05, 500)
    model = mlp(30, [128], 3)
    return task_of(d[1], 3), run(model, d, 60, sgd(model, 0.01), val_every=5)


def imbalanced_table_adam() -> Made:
    """make_classification with 90/10 classes, 2,000 training rows, 64-unit MLP, Adam 1e-3,
    25 epochs."""
    seeded()
    d = blobs_table(2500, 2, 8, 0.02, 500, weights=[0.9])
    model = mlp(30, [64], 2)
    return task_of(d[1], 2), run(model, d, 25, adam(model, 1e-3))


def mnist_cnn_batch_4() -> Made:
    """A two-block CNN on 1,200 MNIST rows, SGD momentum 0.9 at 3e-3, batches of 4, 5
    epochs."""
    seeded()
    d = images(mnist(1500))
    model = cnn()
    return task_of(d[1], 10), run(model, d, 5, sgd(model, 3e-3), batch=4)


def friedman_raw_adam() -> Made:
    """Friedman #1 in its own units (target variance ~25), 128x128 MLP, Adam 3e-3, MSE,
    batches of 32, 40 epochs."""
    seeded()
    d = friedman(1500, 1.0, 300, target="raw")
    model = mlp(10, [128, 128], 1)
    return {**regression(d[1]), "standardised": False}, run(
        model, d, 40, adam(model, 3e-3), regression=True, batch=32)


RUNS: dict[str, Callable[[], Made]] = {f.__name__: f for f in (
    moons_flipped_wide, table_flipped_150_rows, mnist_mlp_400_rows, friedman_80_rows_mse,
    digits_smoothed_small, covtype_like_every_4, table_val_50_rows, linear_mae_overparam,
    circles_linear, table_adamw_decay_30, covtype_like_two_units, mnist_dropout_07_narrow,
    friedman_sgd_decay_5, diabetes_mae_one_unit,
    mnist_sgd_momentum_lr_1, friedman_raw_sgd, table_adam_lr_1, digits_restart_too_high,
    moons_batch_2_sgd_lr_3, mnist_smoothed_rmsprop_lr_0_1, mnist_warmup_too_high,
    mnist_adam_lr_0_02,
    mnist_sgd_momentum_lr_1e_4, linear_sgd_lr_1e_4, friedman_mae_adagrad,
    covtype_like_rmsprop_1e_5, moons_sgd_lr_1e_3_every_3, friedman_sgd_lr_1e_3,
    mnist_smoothed_adagrad_slow,
    moons_step_decay, mnist_sgdr_momentum, table_smoothed_adam, moons_batch_2,
    circles_late_escape, circles_escape_at_the_end, moons_val_50_rows, friedman_mse_regularised,
    diabetes_mae_adam,
    mnist_dropout_07_wide, table_every_5, imbalanced_table_adam, mnist_cnn_batch_4,
    friedman_raw_adam)}


# --- the rule ---------------------------------------------------------------------------------


def levels(task: dict[str, Any]) -> tuple[float, float, float]:
    """(chance, baseline, floor) of a task, as the docstring defines them."""
    if task["kind"] == "regression":
        scale = task["loss_scale"]
        base = math.sqrt(2 / math.pi) * scale if task.get("loss") == "mae" else scale
        return base, base, 0.0
    k, eps = task["num_classes"], task.get("label_smoothing", 0.0)
    m = task.get("majority_fraction") or 1 / k

    def entropy(p: float) -> float:  # one class at p, the others sharing the rest
        rest = (1 - p) / (k - 1)
        return -p * math.log(p) - (k - 1) * rest * math.log(rest) if rest > 0 else 0.0
    return math.log(k), entropy((1 - eps) * m + eps / k), entropy(1 - eps + eps / k)


def now(values: list[float]) -> float:
    return statistics.median(values[-3:])


def smooth(values: list[float]) -> list[float]:
    return [statistics.fmean(values[max(0, i - 1):i + 2]) for i in range(len(values))]


def call(item: dict[str, Any]) -> dict[str, Any]:
    """The rule's ``label``, ``also`` and ``why`` for a recorded run."""
    h = per_evaluation(item)
    chance, base, floor = levels(item["task"])
    tr, va = h["train_loss"], h["val_loss"]
    blown = [i for i, v in enumerate(item["loss"]) if v is None]
    if blown or not all(math.isfinite(v) for v in tr + va):
        step = blown[0] if blown else None
        return verdict("diverging", [], f"a non-finite loss (step {step})")
    if max(tr) >= EXPLODE * chance:
        epoch = item["evals"][tr.index(max(tr))]["epoch"]
        return diverging(h, base, floor, item["task"]["kind"],
                         f"training loss {max(tr):.3g} by epoch {epoch}, "
                         f"{max(tr) / chance:.1f}x chance {chance:.3g}")
    low = min(smooth(tr[:-3])) if len(tr) > 3 else now(tr)
    if now(tr) - low >= CLIMB * chance:
        return diverging(h, base, floor, item["task"]["kind"],
                         f"training loss climbed back from {low:.3g} to {now(tr):.3g} "
                         f"(chance {chance:.3g})")
    signs, said = overfit_signs(h, base)
    learned = (base - min(now(tr), now(va))) / (base - floor)
    needed = LEARNED[item["task"]["kind"]]
    pace, gain, pace_why = slow_pace(h, base)
    slow_too = gain >= PACE_ALSO
    shed = f"shed {learned:.0%} of the baseline {base:.3g} (poor below {needed:.0%})"
    if max(signs, default=0.0) >= 1:
        return verdict("overfitting", ["healthy"] if max(signs) < 1.5 else [], said)
    if learned < needed:
        if pace >= 1:
            return verdict("slow", ["underfitting"], f"{shed}; {pace_why}")
        also = (["slow"] if slow_too else []) + (
            ["healthy"] if learned >= needed - 0.1 else [])
        return verdict("underfitting", also, f"{shed}; {pace_why}")
    if pace >= 1:
        return verdict("slow", ["healthy"] if learned >= 0.8 else [], f"{shed}; {pace_why}")
    also = (["overfitting"] if max(signs, default=0.0) >= 0.5 else []) + (
        ["slow"] if slow_too else []) + (
        ["underfitting"] if learned < needed + 0.1 else [])
    return verdict("healthy", also, f"{shed}; {said}; {pace_why}")


def diverging(h: dict[str, list[float]], base: float, floor: float, kind: str, why: str
              ) -> dict[str, Any]:
    learned = (base - min(now(h["train_loss"]), now(h["val_loss"]))) / (base - floor)
    poor = learned < LEARNED[kind]
    return verdict("diverging", ["underfitting"] if poor else [],
                   f"{why}; ends having shed {learned:.0%} of the baseline {base:.3g}")


def overfit_signs(h: dict[str, list[float]], base: float) -> tuple[list[float], str]:
    """Each overfitting sign over its threshold (0 when the stall or the fall is missing)."""
    tr, va = h["train_loss"], h["val_loss"]
    best = va.index(min(va))
    after = len(va) - 1 - best
    fell = (smooth(tr)[best] - now(tr)) / smooth(tr)[best]
    rose = now(va) - va[best]
    grew = (now(va) - now(tr)) - max(va[best] - tr[best], 0.0)
    signs = [rose / max(VAL_ROSE * va[best], VAL_ROSE_FLOOR * base), grew / (GAP_GREW * base)]
    said = (f"best validation loss {va[best]:.3g} at evaluation {best + 1} of {len(va)}, now "
            f"{now(va):.3g} ({rose / va[best]:+.0%}); gap grew by {grew:.3g}; training loss "
            f"fell {fell:.0%} since")
    if "val_acc" in h:
        acc = h["val_acc"]
        dropped = max(smooth(acc)) - now(acc)
        signs.append(dropped / ACC_FELL)
        said += f"; validation accuracy {now(acc):.1%}, best {max(smooth(acc)):.1%}"
    if after < AFTER_BEST or fell < TRAIN_FELL:
        signs = [0.0]
    return signs, said


def slow_pace(h: dict[str, list[float]], base: float) -> tuple[float, float, str]:
    """Rule 4's pace over its threshold (0 when it levels off or validation does not follow),
    and the share of the baseline it would shed while validation follows (0 when not)."""
    tr, va = smooth(h["train_loss"]), smooth(h["val_loss"])
    n = len(tr)
    k = max(2, math.ceil(n / 4))
    if n < k + 2:
        return 0.0, 0.0, "too few evaluations for a pace"
    fall, val_fall = tr[-k - 1] - tr[-1], va[-k - 1] - va[-1]
    pace, average = fall / k, (tr[1] - tr[-1]) / (n - 2)
    gain = pace * n / base
    kept = pace / average if average > 0 else 0.0
    why = (f"last quarter's pace would shed {gain:.1%} of the baseline in a run as long again, "
           f"{kept:.2f} of its average pace; validation fell {val_fall:.3g}")
    if val_fall < VAL_FOLLOWS * fall:
        return 0.0, 0.0, why
    return (gain / PACE if kept >= PACE_KEPT else 0.0), gain, why


def verdict(label: str, also: list[str], why: str) -> dict[str, Any]:
    return {"label": label, "also": also, "why": why}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    only = set(sys.argv[1:])
    old = {item["name"]: item for item in load()} if PATH.exists() else {}
    for name, make in RUNS.items():
        if only and name not in only:
            continue
        began = time.monotonic()
        item = record(name, Fresh("", "", make))
        old[name] = {**item, **call(item)}
        print(f"{name}: {old[name]['label']} {old[name]['also']} "
              f"({time.monotonic() - began:.1f} s): {old[name]['why']}", flush=True)
    items = [old[name] for name in RUNS if name in old]
    PATH.write_text("[\n" + ",\n".join(json.dumps(item) for item in items) + "\n]\n")


def load() -> list[dict[str, Any]]:
    return list(json.loads(PATH.read_text()))


if __name__ == "__main__":
    main()
