"""Suspicious labels (issue 18): how many seeded label flips the finder ranks first, and how much
of the accuracy lost to the noise excluding its flagged rows wins back.

For each data set and seed: a clean, stratified test split is held out; 5% of the remaining
(training) rows get another class at random; ``training.labels.find_suspicious`` ranks the rows
(k-fold cross-fitted logistic regression + cleanlab). Printed: the share of flipped rows among
the first (flipped × 1.5) suggestions, and the clean test accuracy of a model retrained on the
clean labels, on the noisy labels, and on the noisy labels minus the rows the finder flags.
The retrained model is the finder's logistic regression (deterministic: the arms differ by their
labels alone), or with ``--retrain engine`` the engine itself (``training.run``, an MLP, the
same spec and seed, each set written as an uploaded data set). Recovered = (cleaned − noisy) /
(clean − noisy). The arms alternate within each seed; the summary is the median and spread
over seeds. Usage, from the repo root::

    FITBOARD_DATA_DIR=/path/to/data .venv/bin/python bench/labels.py [--sets digits fashion_mnist]
        [--seeds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOISE = 0.05  # share of training rows whose label is flipped
BUDGET = 1.5  # suggestions read per flipped row
FMNIST_ROWS = 10_000  # the Fashion-MNIST subset (training pool), drawn stratified per seed
SETTINGS: dict[str, dict[str, Any]] = {
    # epochs and widths chosen so that one run takes seconds on a 2-core CPU
    "digits": {"folds": 5, "spec": {"model": {"arch": "mlp", "hidden_sizes": "128"},
                                    "run": {"epochs": 40, "batch_size": 32}}},
    "fashion_mnist": {"folds": 5, "spec": {"model": {"arch": "mlp", "hidden_sizes": "256"},
                                           "run": {"epochs": 15, "batch_size": 128}}},
}


def pools(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(x_train, y_train, x_test, y_test, class names): digits split 80/20 stratified;
    Fashion-MNIST a 10,000-image stratified subset of its training file and its test file."""
    from training.data.loading import _pick, load_raw

    raw = load_raw(name)
    rng = np.random.default_rng(seed)
    if raw.x_test is not None and raw.y_test is not None:
        _, keep = _pick(len(raw.y), FMNIST_ROWS, rng, raw.y)
        return raw.x[keep], raw.y[keep], raw.x_test, raw.y_test, raw.label_names
    train, test = _pick(len(raw.y), len(raw.y) // 5, rng, raw.y)
    return raw.x[train], raw.y[train], raw.x[test], raw.y[test], raw.label_names


def engine_accuracy(x: np.ndarray, y: np.ndarray, names: list[str], x_test: np.ndarray,
                    y_test: np.ndarray, patch: dict[str, Any], seed: int, folder: Path) -> float:
    """Train the engine on (x, y) written as an uploaded set; clean test accuracy of its best
    checkpoint."""
    import torch

    from training import ExperimentSpec, MemoryReporter, run
    from training.checkpoints import load
    from training.data.catalog import DatasetInfo, forget
    from training.data.loading import DataSources
    from training.data.uploads import Prepared, save_prepared

    forget()
    path = folder / f"set-{time.monotonic_ns()}.npz"
    info = DatasetInfo("upload:1", "bench", "classification", "image", len(y),
                       tuple(x.shape[1:]), len(names))
    with path.open("wb") as target:
        save_prepared(Prepared(info, x, np.asarray(y, np.int64), names, []), "upload:1", target)
    sources = DataSources(uploads={"upload:1": path})
    spec = ExperimentSpec.from_dict({"data": {"dataset": "upload:1"},
                                     "run": {**patch["run"], "seed": seed, "device": "cpu"},
                                     "model": patch["model"]})
    workdir = folder / f"run-{time.monotonic_ns()}"
    run(spec, MemoryReporter(), workdir, sources=sources)
    checkpoint = load(workdir / "best.zip")
    with torch.no_grad():
        predicted = checkpoint.predict(torch.from_numpy(np.asarray(x_test, np.float32))).argmax(1)
    return float((predicted.numpy() == y_test).mean())


def logreg_accuracy(x: np.ndarray, y: np.ndarray, names: list[str], x_test: np.ndarray,
                    y_test: np.ndarray, patch: dict[str, Any], seed: int, folder: Path) -> float:
    """Fit the finder's quick model (standardised logistic regression, deterministic) on (x, y);
    its clean test accuracy. No seed noise: the arms differ by their labels alone."""
    from training.labels import FinderSpec, _model, features

    model = _model(False, FinderSpec(max_iter=1000)).fit(features(x), y)
    return float((model.predict(features(x_test)) == y_test).mean())


RETRAIN = {"logreg": logreg_accuracy, "engine": engine_accuracy}


def one_seed(name: str, seed: int, folder: Path, retrain: str = "logreg") -> dict[str, float]:
    """Every figure of one data set and seed."""
    from training.labels import FinderSpec, find_suspicious, flip_labels, recall_at

    settings = SETTINGS[name]
    x, y, x_test, y_test, names = pools(name, seed)
    noisy, flipped = flip_labels(y, len(names), NOISE, seed)
    started = time.perf_counter()
    found = find_suspicious(x, noisy, len(names), FinderSpec(folds=settings["folds"], seed=seed))
    finder_s = time.perf_counter() - started
    budget = round(len(flipped) * BUDGET)
    keep = np.setdiff1d(np.arange(len(y)), found.ranked[:found.flagged])
    arms = {}
    # Alternating arm order per seed, so no arm always runs on a warmer (or busier) machine.
    order = ["clean", "noisy", "cleaned"] if seed % 2 == 0 else ["cleaned", "noisy", "clean"]
    for arm in order:
        xs, ys = {"clean": (x, y), "noisy": (x, noisy), "cleaned": (x[keep], noisy[keep])}[arm]
        arms[arm] = RETRAIN[retrain](xs, ys, names, x_test, y_test, settings["spec"], seed,
                                     folder)
    lost = arms["clean"] - arms["noisy"]
    flagged = set(found.ranked[:found.flagged].tolist())
    return {"rows": len(y), "flipped": len(flipped), "flagged": found.flagged,
            "flipped_flagged": sum(int(i) in flagged for i in flipped),
            "recall_at_budget": recall_at(found, flipped, budget), "finder_s": finder_s,
            **arms, "lost": lost,
            "recovered": (arms["cleaned"] - arms["noisy"]) / lost if lost > 0 else float("nan")}


def summary(values: list[float]) -> str:
    finite = [v for v in values if v == v]
    if not finite:
        return "n/a"
    spread = (max(finite) - min(finite)) / 2
    return f"{statistics.median(finite):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--retrain", choices=list(RETRAIN), default="logreg",
                        help="the model retrained on each arm: the finder's logistic regression "
                             "(deterministic), or the engine's MLP (training.run)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        for name in args.sets:
            rows = []
            for seed in range(args.seeds):
                row = one_seed(name, seed, Path(tmp), args.retrain)
                rows.append(row)
                print(f"{name} seed {seed}: " + ", ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in row.items()), flush=True)
            print(f"{name} ({args.seeds} seeds, retrained: {args.retrain}, "
                  "median ± half-range):")
            for key in ("recall_at_budget", "clean", "noisy", "cleaned", "lost", "recovered",
                        "finder_s"):
                print(f"  {key:17s} {summary([r[key] for r in rows])}")


if __name__ == "__main__":
    main()
