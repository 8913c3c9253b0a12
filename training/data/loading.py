"""Load a dataset, split it reproducibly and normalise it with training-split statistics."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.data.catalog import (
    DatasetInfo,
    dataset_info,
    dataset_plugins,
    is_upload,
    plugin_info,
    validation_rows,
)
from training.data.text import Tokenizer, TokenizerFactory, Tokens


@dataclass(frozen=True)
class DataSources:
    """Where the engine finds data files. It never asks a database: the caller (the worker)
    resolves each uploaded dataset it may use to the local path of its prepared file."""

    data_dir: Path | None = None  # MNIST / Fashion-MNIST; None: $FITBOARD_DATA_DIR, else var/data
    uploads: Mapping[str, Path] = field(default_factory=dict)  # "upload:<id>" -> prepared file
    allow_download: bool = True  # fetch missing built-in files from their canonical source
    base_urls: Mapping[str, Sequence[str]] = field(default_factory=dict)  # per set: mirrors

    def __post_init__(self) -> None:
        # Specs naming these uploads validate in this process from now on (see catalog).
        if self.uploads:
            from training.data.catalog import remember
            from training.data.uploads import read_info

            for name, path in self.uploads.items():
                remember(read_info(Path(path), name))

    def directory(self) -> Path:
        return self.data_dir or Path(os.environ.get("FITBOARD_DATA_DIR") or "var/data")


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
    """Normalised train, validation (and test) tensors, or token ids and masks for text, plus
    what a checkpoint must remember."""

    info: DatasetInfo
    x_train: torch.Tensor | Tokens
    y_train: torch.Tensor
    x_val: torch.Tensor | Tokens
    y_val: torch.Tensor
    label_names: list[str]
    normalisation: Normalisation
    # Regression targets are standardised for training; predictions are mapped back with these.
    target_mean: float = 0.0
    target_std: float = 1.0
    # The test split, evaluated once at the end; None when the spec asks for none.
    x_test: torch.Tensor | Tokens | None = None
    y_test: torch.Tensor | None = None
    tokenizer: Tokenizer | None = None  # text only: built from the training split


@dataclass
class RawData:
    """A dataset as stored: features (with NaN where values are missing), targets, and the
    official test rows when the set has them."""

    info: DatasetInfo
    x: np.ndarray
    y: np.ndarray
    label_names: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    impute: str = ""  # for missing values: "mean", "median", "most_frequent"; "" = none
    standardise: bool = True  # scale features with training-split statistics


@functools.cache
def _sklearn_arrays(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A bundled set's features, targets and target names, parsed once per process: parsing
    digits' compressed CSV takes about as long as training a small MLP on it for an epoch, and
    the seeds of a repeat each load it."""
    from sklearn import datasets as sk

    loaders = {
        "digits": sk.load_digits,
        "wine": sk.load_wine,
        "breast_cancer": sk.load_breast_cancer,
        "iris": sk.load_iris,
        "diabetes": sk.load_diabetes,
    }
    bunch = loaders[name]()
    names = tuple(str(n) for n in getattr(bunch, "target_names", []))
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target), names


def _load_sklearn(name: str) -> RawData:
    data, target, target_names = _sklearn_arrays(name)
    info = dataset_info(name)
    # Copies: the cached arrays stay as parsed whatever a caller does with its own.
    x = data.reshape((-1, *info.input_shape)).copy()
    names = list(target_names) if info.num_classes else []
    if name == "digits":
        names = [str(d) for d in range(10)]
    return RawData(info, x, target.copy(), names)


def load_raw(name: str, sources: DataSources | None = None,
             options: Mapping[str, Any] | None = None) -> RawData:
    """A dataset by name: sklearn's bundled sets, MNIST / Fashion-MNIST from the data directory
    (downloaded when missing and allowed), an uploaded set from the file ``sources`` gives, or
    a plugin's, generated or read by its loader with ``options``."""
    sources = sources or DataSources()
    if name in dataset_plugins():
        return _load_plugin(name, options or {})
    if is_upload(name):
        from training.data.uploads import load_prepared

        path = sources.uploads.get(name)
        if path is None:
            raise FileNotFoundError(f"no file was given for the uploaded dataset {name!r}")
        return load_prepared(Path(path), name)
    if name in ("mnist", "fashion_mnist"):
        from training.data.catalog import FASHION_LABELS
        from training.data.files import load_idx_set

        x, y, x_test, y_test = load_idx_set(name, sources.directory(), sources.allow_download,
                                            sources.base_urls.get(name))
        labels = list(FASHION_LABELS) if name == "fashion_mnist" else [str(d) for d in range(10)]
        return RawData(dataset_info(name), x, y, labels, x_test, y_test)
    if name in ("sst2", "imdb_sentences"):
        from training.data.text import LABEL_NAMES, load_text_rows

        rows = load_text_rows(name, sources.directory())
        test = np.array(rows.test_texts, dtype=object) if rows.test_texts else None
        return RawData(dataset_info(name), np.array(rows.texts, dtype=object), rows.labels,
                       list(LABEL_NAMES), test, rows.test_labels if test is not None else None)
    return _load_sklearn(name)


def _load_plugin(name: str, options: Mapping[str, Any]) -> RawData:
    """A plugin data set: its loader's ``load(options)`` gives ``x`` (rows × input shape),
    ``y``, ``label_names`` and optionally its own ``x_test`` / ``y_test``; checked against what
    its ``info`` promised, so a faulty plugin fails here with its name."""
    from fitboard_model import plugins

    info = plugin_info(name, options)
    loader = plugins.load(plugins.DATASETS, name)
    arrays = loader.load(plugins.config_of(loader.Options, options))
    x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    if x.shape[1:] != info.input_shape or len(x) != len(y) or len(x) != info.rows:
        raise ValueError(f"the data set plugin {name!r} loaded x {x.shape} and y {y.shape}; its "
                         f"info promised {info.rows} rows of {info.input_shape}")
    x_test = arrays.get("x_test")
    y_test = arrays.get("y_test")
    return RawData(info, x.astype(np.float32), y, [str(n) for n in arrays["label_names"]],
                   None if x_test is None else np.asarray(x_test, dtype=np.float32),
                   None if y_test is None else np.asarray(y_test))


def _pick(rows: int, n_pick: int, rng: np.random.Generator, labels: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """(rest, picked) positions: ``n_pick`` rows drawn at random, stratified by class when
    labels are given (each class gives its share, largest remainders first)."""
    if labels is None:
        order = rng.permutation(rows)
        return np.sort(order[n_pick:]), np.sort(order[:n_pick])
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_pick / rows
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take))[: n_pick - take.sum()]:
        take[i] += 1
    picked = np.concatenate([
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)
    ])
    mask = np.ones(rows, dtype=bool)
    mask[picked] = False
    return np.flatnonzero(mask), np.sort(picked)


def split_indices(rows: int, val_fraction: float, seed: int, labels: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation index split, stratified by class when labels are given."""
    return _pick(rows, validation_rows(rows, val_fraction), np.random.default_rng(seed), labels)


def split_three(rows: int, labels: np.ndarray | None, seed: int, val_fraction: float,
                subset: int = 0, test_fraction: float = 0.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) row indices, seeded and stratified when labels are given.

    The cuts follow ``catalog.split_sizes``: test first (``test_fraction`` of every row), then
    ``subset`` of the rest, then ``val_fraction`` of that subset. Without a test cut the rows are
    those of a subset drawn by ``split_indices``'s sampler with the run's seed, and without a
    subset either, exactly ``split_indices``'s.
    """
    pool = np.arange(rows)
    test = np.empty(0, dtype=np.int64)
    if test_fraction > 0:
        n_test = validation_rows(rows, test_fraction)
        pool, test = _pick(rows, n_test, np.random.default_rng((seed, 1)), labels)
    if 0 < subset < len(pool):
        sub_labels = labels[pool] if labels is not None else None
        _, keep = _pick(len(pool), subset, np.random.default_rng(seed), sub_labels)
        pool = pool[keep]
    val_labels = labels[pool] if labels is not None else None
    train, val = split_indices(len(pool), val_fraction, seed, val_labels)
    return pool[train], pool[val], test


def _impute(strategy: str, train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Missing values (NaN) filled with the training split's statistic per column."""
    from sklearn.impute import SimpleImputer

    imputer = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(train)
    return [imputer.transform(a).astype(np.float32) if len(a) else a for a in (train, *others)]


def prepare(dataset: str, val_fraction: float, seed: int, subset: int = 0, *,
            test_fraction: float = 0.0, sources: DataSources | None = None,
            tokenizer: TokenizerFactory | None = None,
            options: Mapping[str, Any] | None = None) -> PreparedData:
    """Load, split and normalise a dataset, reproducibly for a given seed. ``subset`` draws that
    many rows first (0 = all); ``test_fraction`` holds rows out for the final test (a set with
    its own test file uses that instead). See ``split_three``. Texts become token ids by a
    tokenizer that ``tokenizer`` builds from the training split (default: a word vocabulary
    with the ModelSpec defaults)."""
    raw = load_raw(dataset, sources, options)
    info = raw.info
    if info.modality == "text":
        return _prepare_text(raw, val_fraction, seed, subset, test_fraction, tokenizer)
    labels = raw.y if info.task == "classification" else None
    official = raw.x_test is not None
    train_idx, val_idx, test_idx = split_three(
        len(raw.x), labels, seed, val_fraction, subset, 0.0 if official else test_fraction)
    x_train, x_val = raw.x[train_idx].astype(np.float32), raw.x[val_idx].astype(np.float32)
    y_train, y_val = raw.y[train_idx], raw.y[val_idx]
    if official:
        assert raw.x_test is not None and raw.y_test is not None
        x_test, y_test = raw.x_test.astype(np.float32), raw.y_test
    else:
        x_test, y_test = raw.x[test_idx].astype(np.float32), raw.y[test_idx]
    if raw.impute:
        x_train, x_val, x_test = _impute(raw.impute, x_train, x_val, x_test)
    xt_train = torch.from_numpy(x_train)
    norm = _normalisation(xt_train, raw.standardise)
    targets = Targets.fit(info.task, y_train)
    has_test = len(y_test) > 0
    return PreparedData(
        info=info,
        x_train=norm.apply(xt_train),
        y_train=targets(y_train),
        x_val=norm.apply(torch.from_numpy(x_val)),
        y_val=targets(y_val),
        label_names=raw.label_names,
        normalisation=norm,
        target_mean=targets.mean,
        target_std=targets.std,
        x_test=norm.apply(torch.from_numpy(x_test)) if has_test else None,
        y_test=targets(y_test) if has_test else None,
    )


@dataclass(frozen=True)
class Targets:
    """How a split's labels become what the loss reads: class indices, or regression targets
    in one column (the model's output's shape) standardised with the training split's mean and
    std, which predictions are mapped back with."""

    classification: bool
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, task: str, y_train: np.ndarray) -> Targets:
        if task == "classification":
            return cls(classification=True)
        train = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
        return cls(False, float(train.mean()), float(_scale(train.std())))

    def __call__(self, y: np.ndarray) -> torch.Tensor:
        if self.classification:
            return torch.from_numpy(np.array(y, dtype=np.int64))  # a copy: sets are shared
        return (torch.from_numpy(np.asarray(y, dtype=np.float32)).view(-1, 1) - self.mean
                ) / self.std


def _scale(std: torch.Tensor) -> torch.Tensor:
    """A std to divide by: one where the training split holds a single value, as
    scikit-learn's StandardScaler does. Dividing by a clamped ~0 would turn the first other
    value a validation row brings (a category seen only there) into a million."""
    return torch.where(std >= 1e-6, std, torch.ones_like(std))  # NaN (one row) too


def _normalisation(x_train: torch.Tensor, standardise: bool) -> Normalisation:
    """The training split's mean and std (or the identity when not ``standardise``): one per
    channel for images, one per feature for tables."""
    axes = (0, 2, 3) if x_train.dim() == 4 else (0,)
    if standardise:
        mean = x_train.mean(dim=axes)
        std = _scale(x_train.std(dim=axes))
    else:
        mean, std = torch.zeros(x_train.shape[1]), torch.ones(x_train.shape[1])
    return Normalisation(mean=mean.tolist(), std=std.tolist())


def _prepare_text(raw: RawData, val_fraction: float, seed: int, subset: int,
                  test_fraction: float, tokenizer: TokenizerFactory | None) -> PreparedData:
    """Split texts like any set, build the tokenizer from the training texts only (validation
    and test words stay unknown, as new text would be), and encode every split."""
    if tokenizer is None:
        from training.data.text import tokenizer_for
        from training.spec import ModelSpec

        tokenizer = tokenizer_for(ModelSpec(arch="lstm"))
    # Scores of a text regression are floats: only classes are stratified and made indices.
    labels = np.asarray(raw.y, np.int64) if raw.info.task == "classification" else None
    official = raw.x_test is not None
    train_idx, val_idx, test_idx = split_three(
        len(raw.x), labels, seed, val_fraction, subset, 0.0 if official else test_fraction)
    texts = [str(t) for t in raw.x]
    train_texts = [texts[i] for i in train_idx]
    built = tokenizer(train_texts)
    y = np.asarray(raw.y)
    targets = Targets.fit(raw.info.task, y[train_idx])
    if official:
        assert raw.x_test is not None and raw.y_test is not None
        test_texts, y_test = [str(t) for t in raw.x_test], np.asarray(raw.y_test)
    else:
        test_texts, y_test = [texts[i] for i in test_idx], y[test_idx]
    return PreparedData(
        info=raw.info,
        x_train=built.encode(train_texts),
        y_train=targets(y[train_idx]),
        x_val=built.encode([texts[i] for i in val_idx]),
        y_val=targets(y[val_idx]),
        label_names=raw.label_names,
        normalisation=Normalisation(mean=[], std=[]),  # token ids are not normalised
        target_mean=targets.mean,
        target_std=targets.std,
        x_test=built.encode(test_texts) if test_texts else None,
        y_test=targets(y_test) if test_texts else None,
        tokenizer=built,
    )
