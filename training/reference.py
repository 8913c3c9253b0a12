"""What the data allows: a cheap reference model per data set, cached on disk.

Underfitting means "poor on the training set", and poor must be measured against what the data
allows, not only against a constant prediction: a 2-unit MLP that reaches 50% training accuracy
has learned a lot next to the 10% majority class, and very little next to the 96% a linear
model reaches on the same digits. ``reference_for`` fits that linear model — a softmax
regression for classification (on flattened images, tabular features, or a bag of the most
frequent words for text), ridge regression for regression — on a subsample of the run's own
training split, and scores it on both splits. It takes a second or two on a CPU (Fashion-MNIST
included, see ``bench/reference.py``), and is computed once per data set split: the result is a
small JSON file in the cache folder, keyed by what decides the split.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.data.loading import PreparedData
from training.data.text import Tokens
from training.spec import ExperimentSpec

# Bumped when the reference model changes, so that older cached scores are not reused.
VERSION = 1
# Rows the reference is fitted on, and scored on, at most: enough for a linear model's score
# to settle within about a point, few enough for about a second on a CPU.
MAX_ROWS = 6000
# L-BFGS iterations of the softmax regression: a linear model converges within a hundred on
# standardised features; more would buy a fraction of a point for seconds.
LBFGS_STEPS = 40
# L2 penalty of both linear models, per row and feature: small, so the reference reports what a
# linear model can fit, yet enough to keep 784-pixel softmax weights finite on separable data.
L2 = 1e-3
# Text: the bag of words keeps the most frequent token ids of the training split.
MAX_WORDS = 2000


@dataclass(frozen=True)
class Reference:
    """A reference model's scores on a data set split: losses in the run's own units
    (cross-entropy, or MSE on standardised targets), accuracies for classification."""

    model: str  # what it is, in words a user reads: "a logistic regression"
    train_loss: float
    val_loss: float
    train_acc: float | None = None
    val_acc: float | None = None
    seconds: float = 0.0  # the time it took to compute
    cached: bool = False  # read from the cache rather than computed now

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``cached`` is not stored: it says where this copy came from)."""
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        """The reference ``to_dict()`` stored."""
        return cls(**{k: v for k, v in data.items() if k != "cached"})


def cache_key(dataset: str, val_fraction: float, seed: int, subset: int = 0,
              test_fraction: float = 0.0) -> str:
    """The file name of a split's reference: the fields that decide which rows train, so that a
    spec alone finds it (the web app reads it back without loading the data)."""
    text = json.dumps([VERSION, dataset, val_fraction, seed, subset, test_fraction])
    safe = "".join(c if c.isalnum() else "_" for c in dataset)
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def reference_key(spec: ExperimentSpec) -> str:
    """The cache key of the split a spec trains on."""
    d = spec.data
    return cache_key(d.dataset, d.val_fraction, spec.run.seed, d.subset, d.test_fraction)


def cached_reference(cache_dir: Path, key: str) -> Reference | None:
    """The reference stored under ``key``, or None when there is none (or it is unreadable)."""
    path = cache_dir / key
    try:
        return Reference(**{**json.loads(path.read_text()), "cached": True})
    except (OSError, ValueError, TypeError):
        return None


def reference_for(data: PreparedData, cache_dir: Path, key: str) -> Reference:
    """The reference of ``data``, read from ``cache_dir`` when computed before, else computed
    and stored there (written to a temporary name first, so readers never see half a file)."""
    found = cached_reference(cache_dir, key)
    if found is not None:
        return found
    reference = compute_reference(data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{key}.{time.monotonic_ns()}"
    partial.write_text(json.dumps(reference.to_dict()))
    partial.replace(cache_dir / key)
    return reference


def compute_reference(data: PreparedData) -> Reference:
    """Fit and score the reference model of ``data`` (see the module's docstring), on one
    torch thread: on two cores that other processes keep busy, two OpenMP threads spinning for
    each other made Fashion-MNIST's reference four times slower (bench/reference.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_reference(data)
    finally:
        torch.set_num_threads(threads)


def _fit_reference(data: PreparedData) -> Reference:
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    train_rows = _sample(len(data.y_train), generator)
    val_rows = _sample(len(data.y_val), generator)
    x_train, x_val = _features(data, train_rows, val_rows)
    y_train, y_val = data.y_train[train_rows], data.y_val[val_rows]
    scores: tuple[float, ...]
    with torch.enable_grad():
        if data.info.task == "classification":
            num_classes = data.info.num_classes or int(y_train.max()) + 1
            scores = _softmax_regression(x_train, y_train, x_val, y_val, num_classes)
            model = "a logistic regression"
        else:
            scores = _ridge(x_train, y_train.float(), x_val, y_val.float())
            model = "a linear regression"
    train_loss, val_loss, *accuracies = scores
    train_acc, val_acc = accuracies or (None, None)
    return Reference(model, train_loss, val_loss, train_acc, val_acc,
                     seconds=round(time.perf_counter() - started, 3))


def _sample(rows: int, generator: torch.Generator) -> torch.Tensor:
    if rows <= MAX_ROWS:
        return torch.arange(rows)
    return torch.randperm(rows, generator=generator)[:MAX_ROWS].sort().values


def _features(data: PreparedData, train_rows: torch.Tensor, val_rows: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened inputs (a bag of words for text), as ``prepare`` normalised them."""
    x_train, x_val = data.x_train, data.x_val
    if isinstance(x_train, Tokens) and isinstance(x_val, Tokens):
        train, val = _bag_of_words(x_train[train_rows], x_val[val_rows])
    else:
        assert isinstance(x_train, torch.Tensor) and isinstance(x_val, torch.Tensor)
        train = x_train[train_rows].reshape(len(train_rows), -1).float().cpu()
        val = x_val[val_rows].reshape(len(val_rows), -1).float().cpu()
    return train, val


def _bag_of_words(train: Tokens, val: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts of the training split's most frequent tokens (padding left out), log-scaled."""
    ids = train.input_ids.cpu()
    counts = torch.bincount(ids[train.attention_mask.cpu().bool()])
    counts[0] = 0  # the padding id, were it counted
    words = counts.argsort(descending=True)[:MAX_WORDS]
    column = torch.full((len(counts),), -1, dtype=torch.long)
    column[words] = torch.arange(len(words))

    def bag(tokens: Tokens) -> torch.Tensor:
        ids, mask = tokens.input_ids.cpu(), tokens.attention_mask.cpu().bool()
        ids = ids.clamp_max(len(column) - 1)
        cols = column[ids]
        keep = mask & (cols >= 0)
        out = torch.zeros(len(ids), len(words))
        rows = torch.arange(len(ids)).unsqueeze(1).expand_as(ids)
        out.index_put_((rows[keep], cols[keep]), torch.ones(int(keep.sum())), accumulate=True)
        return torch.log1p(out)

    return bag(train), bag(val)


def _softmax_regression(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                        y_val: torch.Tensor, num_classes: int
                        ) -> tuple[float, float, float, float]:
    """(train loss, validation loss, train accuracy, validation accuracy) of a linear softmax
    classifier fitted by full-batch L-BFGS."""
    linear = nn.Linear(x_train.shape[1], num_classes)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=LBFGS_STEPS,
                                  history_size=10, line_search_fn="strong_wolfe")
    loss_fn = nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(linear(x_train), y_train) + L2 * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_out, val_out = linear(x_train), linear(x_val)
        return (float(loss_fn(train_out, y_train)), float(loss_fn(val_out, y_val)),
                float((train_out.argmax(1) == y_train).float().mean()),
                float((val_out.argmax(1) == y_val).float().mean()))


def _ridge(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
           y_val: torch.Tensor) -> tuple[float, float]:
    """(train MSE, validation MSE) of ridge regression, solved in closed form."""
    design = torch.cat([x_train, torch.ones(len(x_train), 1)], 1).double()
    penalty = L2 * len(x_train) * torch.eye(design.shape[1], dtype=torch.float64)
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    target = y_train.reshape(len(y_train), -1).double()
    weights = torch.linalg.solve(design.T @ design + penalty, design.T @ target)

    def mse(x: torch.Tensor, y: torch.Tensor) -> float:
        out = torch.cat([x, torch.ones(len(x), 1)], 1).double() @ weights
        value = float((out - y.reshape(len(y), -1).double()).square().mean())
        return value if math.isfinite(value) else math.inf

    return mse(x_train, y_train), mse(x_val, y_val)
