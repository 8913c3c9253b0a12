"""Load a dataset, split it reproducibly and normalise it with training-split statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from training.data.catalog import DatasetInfo, dataset_info, validation_rows


@dataclass(frozen=True)
class Normalisation:
    """Per-feature (tabular) or per-channel (image) mean and std from the training split."""

    mean: list[float]
    std: list[float]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise raw inputs shaped (N, *input_shape)."""
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalisation:
        return cls(mean=[float(v) for v in data["mean"]], std=[float(v) for v in data["std"]])


@dataclass
class PreparedData:
    """Normalised train and validation tensors plus what a checkpoint must remember."""

    info: DatasetInfo
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    label_names: list[str]
    normalisation: Normalisation
    # Regression targets are standardised for training; predictions are mapped back with these.
    target_mean: float = 0.0
    target_std: float = 1.0


def _load_raw(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw features (float32, shaped as the catalog says) and targets for a built-in set."""
    from sklearn import datasets as sk

    loaders = {
        "digits": sk.load_digits,
        "wine": sk.load_wine,
        "breast_cancer": sk.load_breast_cancer,
        "iris": sk.load_iris,
        "diabetes": sk.load_diabetes,
    }
    bunch = loaders[name]()
    info = dataset_info(name)
    x = np.asarray(bunch.data, dtype=np.float32).reshape((-1, *info.input_shape))
    names = [str(n) for n in getattr(bunch, "target_names", [])] if info.num_classes else []
    if name == "digits":
        names = [str(d) for d in range(10)]
    y = np.asarray(bunch.target)
    return x, y, names


def split_indices(rows: int, val_fraction: float, seed: int, labels: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation index split, stratified by class when labels are given."""
    rng = np.random.default_rng(seed)
    n_val = validation_rows(rows, val_fraction)
    if labels is None:
        order = rng.permutation(rows)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    # Stratify: take each class's share of the validation rows, largest remainders first.
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_val / rows
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take))[: n_val - take.sum()]:
        take[i] += 1
    val = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)
    ])
    mask = np.ones(rows, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)


def prepare(dataset: str, val_fraction: float, seed: int) -> PreparedData:
    """Load, split and normalise a built-in dataset, reproducibly for a given seed."""
    info = dataset_info(dataset)
    x, y, label_names = _load_raw(dataset)
    classification = info.task == "classification"
    train_idx, val_idx = split_indices(len(x), val_fraction, seed, y if classification else None)
    x_train, x_val = torch.from_numpy(x[train_idx]), torch.from_numpy(x[val_idx])
    # Images share one statistic per channel; tabular features get one each.
    axes = (0, 2, 3) if x_train.dim() == 4 else (0,)
    mean = x_train.mean(dim=axes)
    std = x_train.std(dim=axes).clamp_min(1e-6)
    norm = Normalisation(mean=mean.tolist(), std=std.tolist())
    target_dtype = torch.long if classification else torch.float32
    y_t = torch.from_numpy(y).to(target_dtype)
    target_mean, target_std = 0.0, 1.0
    if not classification:
        y_t = y_t.view(-1, 1)
        target_mean = float(y_t[train_idx].mean())
        target_std = float(y_t[train_idx].std().clamp_min(1e-6))
        y_t = (y_t - target_mean) / target_std
    return PreparedData(
        info=info,
        x_train=norm.apply(x_train),
        y_train=y_t[train_idx],
        x_val=norm.apply(x_val),
        y_val=y_t[val_idx],
        label_names=label_names,
        normalisation=norm,
        target_mean=target_mean,
        target_std=target_std,
    )
