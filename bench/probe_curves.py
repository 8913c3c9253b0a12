"""Probe curves: real runs of shapes the other sets were not tuned on, labelled from their
numbers before the diagnosis was read (``LABELS``: the call, the calls an expert could defend,
and why, in numbers).

    FITBOARD_DATA_DIR=/work/shared/data PYTHONPATH=.:packages/fitboard-model/src \
        .venv/bin/python -m bench.probe_curves          # tests/training/curves/probe.json

About a minute on one thread. Engine runs (``training.run``, judged with spec and reference):
regression on diabetes (Adam, a wide net on half the rows, SGD at 3, dropout 0.9 with weight
decay 1), iris and wine with 23-36 validation rows, SGD at 2 and 5, Adam at 1e-6, AdamW decay 3,
dropout 0.85, cosine with a warmup, one-cycle SGD, step decay after a warmup, early stopping,
2 and 3 epochs, 2 hidden units, a Transformer and a GRU on SST-2 subsets, SGD at 1e-3 on
breast cancer. Plain loops (``bench.fresh_curves.run``, per epoch): 30% flipped labels on
breast cancer, digits and wine, SGD at 4 on iris, SGD at 1e-6 on diabetes, six sigmoid layers.
``tests/training/test_diagnostics_probe.py`` judges each.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parent.parent / "tests" / "training" / "curves" / "probe.json"
MLP = {"arch": "mlp"}
# Engine runs: name → spec patch.
RUNS: dict[str, dict[str, Any]] = {
    "diabetes_adam_mlp_60": {
        "data": {"dataset": "diabetes"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"loss": "mse", "lr": 1e-3},
        "run": {"epochs": 60, "batch_size": 32},
    },
    "diabetes_wide_overfit": {
        "data": {"dataset": "diabetes", "val_fraction": 0.5},
        "model": {**MLP, "hidden_sizes": [512, 512]},
        "optim": {"loss": "mse", "lr": 3e-3},
        "run": {"epochs": 60, "batch_size": 16},
    },
    "diabetes_sgd_lr_3": {
        "data": {"dataset": "diabetes"},
        "model": {**MLP, "hidden_sizes": [32]},
        "optim": {"loss": "mse", "optimizer": "sgd", "lr": 3.0, "momentum": 0.0},
        "run": {"epochs": 20},
    },
    "diabetes_dropout_09": {
        "data": {"dataset": "diabetes"},
        "model": {**MLP, "hidden_sizes": [16], "dropout": 0.9},
        "optim": {"loss": "mse", "lr": 1e-3, "weight_decay": 1.0, "optimizer": "adamw"},
        "run": {"epochs": 40},
    },
    "iris_sgd_lr_2_nomom": {
        "data": {"dataset": "iris"},
        "model": {**MLP, "hidden_sizes": [32]},
        "optim": {"optimizer": "sgd", "lr": 2.0, "momentum": 0.0},
        "run": {"epochs": 40, "batch_size": 16},
    },
    "wine_sgd_lr_5": {
        "data": {"dataset": "wine"},
        "model": {**MLP, "hidden_sizes": [32]},
        "optim": {"optimizer": "sgd", "lr": 5.0},
        "run": {"epochs": 30, "batch_size": 16},
    },
    "iris_adam_tiny_val": {
        "data": {"dataset": "iris", "val_fraction": 0.15},
        "model": {**MLP, "hidden_sizes": [16]},
        "optim": {"lr": 1e-2},
        "run": {"epochs": 60, "batch_size": 16},
    },
    "wine_adam_healthy": {
        "data": {"dataset": "wine", "val_fraction": 0.15},
        "model": {**MLP, "hidden_sizes": [32]},
        "optim": {"lr": 3e-3},
        "run": {"epochs": 40, "batch_size": 16},
    },
    "digits_adam_lr_1e_6": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"lr": 1e-6},
        "run": {"epochs": 15},
    },
    "digits_adamw_decay_heavy": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 3.0},
        "run": {"epochs": 20},
    },
    "digits_dropout_085": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [32], "dropout": 0.85},
        "optim": {"lr": 1e-3},
        "run": {"epochs": 20},
    },
    "digits_cosine_warmup": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [128]},
        "optim": {"lr": 1e-2},
        "schedule": {"kind": "cosine", "warmup": 3, "warmup_unit": "epochs"},
        "run": {"epochs": 25},
    },
    "digits_one_cycle_sgd": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [128]},
        "optim": {"optimizer": "sgd", "lr": 0.5},
        "schedule": {"kind": "one_cycle"},
        "run": {"epochs": 25},
    },
    "digits_step_warmup_sgd": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"optimizer": "sgd", "lr": 0.1},
        "schedule": {"kind": "step", "step_epochs": 8, "warmup": 2, "warmup_unit": "epochs"},
        "run": {"epochs": 24},
    },
    "digits_early_stop_wide": {
        "data": {"dataset": "digits", "val_fraction": 0.8},
        "model": {**MLP, "hidden_sizes": [512]},
        "optim": {"lr": 3e-3},
        "run": {"epochs": 60, "early_stopping_patience": 4},
    },
    "digits_two_epochs": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"lr": 1e-3},
        "run": {"epochs": 2},
    },
    "digits_three_epochs_slowish": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [64]},
        "optim": {"lr": 3e-4},
        "run": {"epochs": 3},
    },
    "digits_two_units_adam": {
        "data": {"dataset": "digits"},
        "model": {**MLP, "hidden_sizes": [2]},
        "optim": {"lr": 3e-3},
        "run": {"epochs": 30},
    },
    "sst2_transformer_1000": {
        "data": {"dataset": "sst2", "subset": 1000},
        "model": {
            "arch": "transformer",
            "embed_dim": 32,
            "heads": 2,
            "layers": 1,
            "max_length": 32,
        },
        "optim": {"lr": 1e-3},
        "run": {"epochs": 15, "batch_size": 32},
    },
    "sst2_gru_1500": {
        "data": {"dataset": "sst2", "subset": 1500},
        "model": {"arch": "gru", "hidden_size": 32, "embed_dim": 32, "max_length": 32},
        "optim": {"lr": 5e-3},
        "run": {"epochs": 12, "batch_size": 32},
    },
    "breast_cancer_plateau_sgd": {
        "data": {"dataset": "breast_cancer"},
        "model": {**MLP, "hidden_sizes": [16, 16, 16], "activation": "tanh"},
        "optim": {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.0},
        "run": {"epochs": 40, "batch_size": 128},
    },
    "fashion_two_units": {
        "data": {"dataset": "fashion_mnist", "subset": 2000},
        "model": {**MLP, "hidden_sizes": [2]},
        "optim": {"lr": 3e-3},
        "run": {"epochs": 20},
    },
}
LABELS = {
    "diabetes_adam_mlp_60": (
        "overfitting",
        ["healthy"],
        "validation MSE 0.479 at epoch 13, 0.504 at 60 (+5%) while training falls 0.457 to "
        "0.374: mild",
    ),
    "diabetes_wide_overfit": (
        "overfitting",
        [],
        "validation 0.49 at epoch 3, 0.76 at 60, training 0.47 to 0.008",
    ),
    "diabetes_sgd_lr_3": ("diverging", [], "NaN in the first epoch"),
    "diabetes_dropout_09": (
        "underfitting",
        ["slow"],
        "dropout 0.9 and weight decay 1: MSE 0.79-0.86 against the linear model's 0.49",
    ),
    "iris_sgd_lr_2_nomom": (
        "healthy",
        [],
        "noisy validation (30 rows) at the reference's 90-93% accuracy",
    ),
    "wine_sgd_lr_5": ("diverging", [], "3.8e4 in epoch 1, NaN in epoch 6"),
    "iris_adam_tiny_val": (
        "healthy",
        [],
        "23 validation rows, both losses settle together at the reference",
    ),
    "wine_adam_healthy": (
        "healthy",
        [],
        "both losses fall together to 0.01, validation accuracy 100%",
    ),
    "digits_adam_lr_1e_6": (
        "underfitting",
        ["slow"],
        "Adam at 1e-6: loss 2.34 unmoved for 15 epochs",
    ),
    "digits_adamw_decay_heavy": (
        "healthy",
        [],
        "AdamW decay 3 at 3e-3 holds the model only a little: 94% against 96%",
    ),
    "digits_dropout_085": (
        "slow",
        ["underfitting", "healthy"],
        "dropout 0.85: training 1.4, validation loss still falling 4% an epoch at 90% against 96%",
    ),
    "digits_cosine_warmup": (
        "healthy",
        ["overfitting"],
        "validation level at 0.124 (best 0.117) at its best accuracy while the training loss "
        "anneals to 0.002",
    ),
    "digits_one_cycle_sgd": (
        "overfitting",
        ["healthy"],
        "after the high-rate phase validation 0.13-0.15 (epochs 15-17) climbs to 0.177 and "
        "stays, training 0.01 to 1e-4",
    ),
    "digits_step_warmup_sgd": (
        "healthy",
        ["overfitting"],
        "validation level at 0.14 from epoch 7 at its best accuracy, training 0.02 to 0.005",
    ),
    "digits_early_stop_wide": (
        "healthy",
        [],
        "stopped by patience at epoch 18, validation at its best",
    ),
    "digits_two_epochs": ("undetermined", [], "two points"),
    "digits_three_epochs_slowish": (
        "slow",
        ["healthy"],
        "3 epochs, falling in a straight line, 71%",
    ),
    "digits_two_units_adam": ("underfitting", [], "2 hidden units: 25-29% against 96%"),
    "sst2_transformer_1000": (
        "overfitting",
        [],
        "validation 0.69 to 1.04 from epoch 2 while training 0.69 to 0.28",
    ),
    "sst2_gru_1500": ("overfitting", [], "validation 0.66 to 1.79 while training 0.69 to 0.05"),
    "breast_cancer_plateau_sgd": (
        "slow",
        ["underfitting"],
        "SGD at 1e-3: 0.773 to 0.714 in a straight line, below the majority class",
    ),
    "fashion_two_units": ("underfitting", [], "2 hidden units: 60-65% against 80%"),
    "breast_cancer_flip30_wide": (
        "overfitting",
        [],
        "30% flipped labels: validation 0.48 to 1.55, accuracy 86% to 63%",
    ),
    "digits_flip30_wide": (
        "overfitting",
        [],
        "30% flipped labels: validation 0.57 (epoch 9) to 0.74, accuracy 97% to 83%",
    ),
    "wine_flip30_sgd": (
        "overfitting",
        [],
        "30% flipped labels: validation 0.33-0.37 to 0.96 while training goes to 7e-4",
    ),
    "iris_sgd_lr_4_oscillating": (
        "diverging",
        ["healthy"],
        "SGD at 4: validation loss jumps between 0.08 and 3.4, accuracy 63-100%; never slow",
    ),
    "diabetes_sgd_lr_1e_6": (
        "underfitting",
        ["slow"],
        "SGD at 1e-6: validation MSE 0.997 to 0.995",
    ),
    "digits_deep_sigmoid_plateau": (
        "underfitting",
        [],
        "6 sigmoid layers under SGD 0.5: at chance for 60 epochs",
    ),
}


def engine(name: str, refs: Path) -> dict[str, Any]:
    from bench.fresh_curves import engine_record

    return engine_record(RUNS[name], refs)


def flipped(d: Any, share: float, k: int, seed: int = 3) -> Any:
    """The split with a ``share`` of its training labels moved to another class (seeded)."""
    import torch

    x_train, y_train, x_val, y_val = d
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(y_train), generator=g) < share
    other = (y_train + torch.randint(1, k, (len(y_train),), generator=g)) % k
    return x_train, torch.where(flip, other, y_train), x_val, y_val


def loops() -> dict[str, Any]:
    """The plain loops' (task, log), each seeded."""
    import torch

    from bench.fresh_curves import run, seeded, task_of
    from tests.training.curves.stress import mlp, split_of

    def adam(m: Any, lr: float) -> Any:
        return torch.optim.Adam(m.parameters(), lr)

    def sgd(m: Any, lr: float, momentum: float = 0.0) -> Any:
        return torch.optim.SGD(m.parameters(), lr, momentum=momentum)

    def sigmoid_net() -> Any:
        layers: list[Any] = []
        for n in (64, 32, 32, 32, 32, 32):
            layers += [torch.nn.Linear(n, 32), torch.nn.Sigmoid()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(32, 10))

    made = {}
    seeded()
    d, m = flipped(split_of("breast_cancer"), 0.3, 2), mlp(30, [256, 256], 2)
    made["breast_cancer_flip30_wide"] = (task_of(d[1], 2), run(m, d, 80, adam(m, 1e-3), batch=32))
    seeded()
    d, m = flipped(split_of("digits"), 0.3, 10), mlp(64, [256], 10)
    made["digits_flip30_wide"] = (task_of(d[1], 10), run(m, d, 60, adam(m, 1e-3)))
    seeded()
    d, m = flipped(split_of("wine"), 0.3, 3), mlp(13, [128, 128], 3)
    made["wine_flip30_sgd"] = (task_of(d[1], 3), run(m, d, 150, sgd(m, 0.05, 0.9), batch=16))
    seeded()
    d, m = split_of("iris"), mlp(4, [16], 3)
    made["iris_sgd_lr_4_oscillating"] = (task_of(d[1], 3), run(m, d, 40, sgd(m, 4.0), batch=16))
    seeded()
    x_train, y_train, x_val, y_val = split_of("diabetes")
    centre, scale = y_train.mean(), y_train.std()
    d = (x_train, (y_train - centre) / scale, x_val, (y_val - centre) / scale)
    m = mlp(10, [32], 1)
    made["diabetes_sgd_lr_1e_6"] = (
        {"kind": "regression"},
        run(m, d, 40, sgd(m, 1e-6), regression=True, batch=32),
    )
    seeded()
    d, m = split_of("digits"), sigmoid_net()
    made["digits_deep_sigmoid_plateau"] = (task_of(d[1], 10), run(m, d, 60, sgd(m, 0.5)))
    return made


def main() -> None:
    import torch

    from tests.training.curves.fresh import per_evaluation
    from tests.training.curves.stress import rounded

    torch.set_num_threads(1)
    refs = Path(tempfile.mkdtemp(prefix="probe-refs-"))
    recorded = {name: engine(name, refs) for name in RUNS}
    for name, (task, log) in loops().items():
        history = per_evaluation(log)
        recorded[name] = {"task": task, "history": {k: rounded(v) for k, v in history.items()}}
    items = [
        {
            "name": name,
            "label": LABELS[name][0],
            "also": LABELS[name][1],
            "why": LABELS[name][2],
            **recorded[name],
        }
        for name in LABELS
    ]
    PATH.write_text(json.dumps(items, indent=0) + "\n")


if __name__ == "__main__":
    main()
