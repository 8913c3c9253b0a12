"""Suspicious labels: rows whose given label is probably wrong, found by confident learning.

Every row gets out-of-sample predicted probabilities from k-fold cross-fitting of a quick model
(a row is never scored by a model that saw it, or its label), and cleanlab's confident learning
(``cleanlab.filter.find_label_issues``) ranks the rows whose given label the probabilities
contradict. The quick model is a logistic regression (standardised features, flattened pixels,
or TF-IDF words for text), refitted inside each fold so no statistic leaks across folds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Progress = Callable[[int, int], None]  # (folds done, folds in all)


@dataclass(frozen=True)
class FinderSpec:
    """How the suspicious labels are found."""

    folds: int = 5  # cross-fitting folds: each row is scored by a model fitted on the others
    seed: int = 0  # fold assignment and model initialisation
    max_iter: int = 200  # logistic regression solver iterations per fold
    c: float = 1.0  # inverse L2 strength of the logistic regression (sklearn's C)
    # "logistic", "mlp" (a small torch MLP: better on images of hundreds of pixels), or "auto":
    # the MLP for inputs of more than MLP_FEATURES features, logistic regression otherwise
    model: str = "auto"
    mlp_hidden: int = 256  # units of the MLP's hidden layer
    mlp_epochs: int = 10  # passes over the fold's training rows
    mlp_batch: int = 128  # rows per step
    mlp_lr: float = 1e-3  # Adam's step size


MLP_FEATURES = 256


@dataclass
class Suspicions:
    """The finder's answer for every row of a data set."""

    ranked: np.ndarray  # row positions, most suspicious first: flagged rows, then the rest
    flagged: int  # how many rows confident learning flags as label issues (the head of ranked)
    given: np.ndarray  # the given class of every row
    suggested: np.ndarray  # the most probable class of every row (out of sample)
    confidence: np.ndarray  # out-of-sample probability of the suggested class
    given_probability: np.ndarray  # out-of-sample probability of the given class
    confusion: np.ndarray  # rows given class i and predicted class j, (classes, classes)

    def to_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The flagged rows in rank order (at most ``limit``), as plain JSON-ready dicts."""
        head = self.ranked[: self.flagged if limit is None else min(limit, self.flagged)]
        return [{"row": int(i), "given": int(self.given[i]), "suggested": int(self.suggested[i]),
                 "confidence": round(float(self.confidence[i]), 4),
                 "given_probability": round(float(self.given_probability[i]), 4)}
                for i in head]


def features(x: np.ndarray) -> np.ndarray:
    """Rows as flat float64 feature vectors (images flattened); texts are returned as they are,
    for the fold's TF-IDF vectoriser."""
    if x.dtype == object:
        return np.asarray([str(t) for t in x], dtype=object)
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _model(text: bool, spec: FinderSpec) -> Any:
    """A fresh quick model; NaN features (missing values) are imputed inside the pipeline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=spec.c, max_iter=spec.max_iter)
    if text:
        return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=1, max_features=50_000),
                             classifier)
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), classifier)


def out_of_sample_probabilities(x: np.ndarray, y: np.ndarray, num_classes: int,
                                spec: FinderSpec | None = None,
                                progress: Progress | None = None) -> np.ndarray:
    """Predicted class probabilities (rows, classes) for every row, each from a model fitted on
    the other folds (stratified, seeded). A class missing from a fold's training rows gets
    probability 0 there."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    spec = spec or FinderSpec()
    data = features(x)
    labels = np.asarray(y, dtype=np.int64)
    folds = min(spec.folds, int(np.bincount(labels).max()))
    splitter = StratifiedKFold(n_splits=max(2, folds), shuffle=True, random_state=spec.seed)
    probabilities = np.zeros((len(labels), num_classes))
    with warnings.catch_warnings():
        # Splits smaller than the fold count and unconverged quick fits are expected here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        mlp = spec.model == "mlp" or (spec.model == "auto" and data.dtype != object
                                      and data.shape[1] > MLP_FEATURES)
        for done, (fit_rows, score_rows) in enumerate(splitter.split(data, labels), start=1):
            if mlp:
                probabilities[score_rows] = _mlp_probabilities(
                    data[fit_rows], labels[fit_rows], data[score_rows], num_classes, spec)
            else:
                model = _model(data.dtype == object, spec).fit(data[fit_rows], labels[fit_rows])
                probabilities[np.ix_(score_rows, model.classes_)] = model.predict_proba(
                    data[score_rows])
            if progress is not None:
                progress(done, splitter.get_n_splits())
    return probabilities


def _mlp_probabilities(x_fit: np.ndarray, y_fit: np.ndarray, x_score: np.ndarray,
                       num_classes: int, spec: FinderSpec) -> np.ndarray:
    """Fit a one-hidden-layer MLP (seeded, features standardised with the fit rows' statistics,
    missing values as the mean) and return its softmax on the scored rows."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(spec.seed)
    mean = np.nanmean(x_fit, axis=0)
    std = np.nanstd(x_fit, axis=0) + 1e-6

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.nan_to_num((x - mean) / std).astype(np.float32))

    torch.manual_seed(spec.seed)
    model = nn.Sequential(nn.Linear(x_fit.shape[1], spec.mlp_hidden), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(spec.mlp_hidden, num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.mlp_lr, weight_decay=1e-4)
    inputs, targets = tensor(x_fit), torch.from_numpy(y_fit)
    for _ in range(spec.mlp_epochs):
        for batch in torch.randperm(len(targets), generator=generator).split(spec.mlp_batch):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(tensor(x_score)), dim=1).double().numpy()


def rank_suspicions(y: np.ndarray, probabilities: np.ndarray) -> Suspicions:
    """Confident learning over out-of-sample ``probabilities``: the rows cleanlab flags, ranked
    by the probability of their given label (lowest first), then every other row in that order,
    so a reviewer can read past the flagged ones."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(y, dtype=np.int64)
    classes = probabilities.shape[1]
    # cleanlab needs each row's probabilities to sum to one; a class no fold saw leaves zeros.
    sums = probabilities.sum(axis=1, keepdims=True)
    probs = np.where(sums > 0, probabilities / np.maximum(sums, 1e-12), 1.0 / classes)
    # n_jobs=1: cleanlab otherwise forks a process pool, and a fork of a worker that holds
    # torch's threads and open connections can hang for ever in the child.
    flagged = np.asarray(find_label_issues(labels, probs, n_jobs=1,
                                           return_indices_ranked_by="self_confidence"),
                         dtype=np.int64)
    given_probability = probs[np.arange(len(labels)), labels]
    rest = np.setdiff1d(np.arange(len(labels)), flagged)
    rest = rest[np.argsort(given_probability[rest], kind="stable")]
    suggested = probs.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, suggested), 1)
    return Suspicions(ranked=np.concatenate([flagged, rest]), flagged=len(flagged),
                      given=labels, suggested=suggested, confidence=probs.max(axis=1),
                      given_probability=given_probability, confusion=confusion)


def find_suspicious(x: np.ndarray, y: np.ndarray, num_classes: int,
                    spec: FinderSpec | None = None,
                    progress: Progress | None = None) -> Suspicions:
    """Rank every row of a classification set by how likely its given label is wrong."""
    probabilities = out_of_sample_probabilities(x, y, num_classes, spec, progress)
    return rank_suspicions(y, probabilities)


def flip_labels(y: np.ndarray, num_classes: int, fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``y`` with ``fraction`` of the rows (seeded) given another class drawn
    uniformly; returns (noisy labels, flipped row positions, sorted). For tests and benches."""
    rng = np.random.default_rng(seed)
    noisy = np.array(y, dtype=np.int64)
    flipped = np.sort(rng.choice(len(noisy), size=round(len(noisy) * fraction), replace=False))
    shift = rng.integers(1, num_classes, size=len(flipped))
    noisy[flipped] = (noisy[flipped] + shift) % num_classes
    return noisy, flipped


def recall_at(suspicions: Suspicions, flipped: np.ndarray, budget: int) -> float:
    """Share of the ``flipped`` rows among the first ``budget`` ranked rows."""
    head = set(suspicions.ranked[:budget].tolist())
    return sum(int(i) in head for i in flipped) / max(len(flipped), 1)
