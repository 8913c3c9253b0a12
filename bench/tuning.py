"""Search algorithms on one fixed task: best validation accuracy and epochs spent by grid,
random, TPE, TPE + median pruning and TPE + Hyperband pruning.

Task: an MLP on sklearn's digits (1,437 training rows), 10 epochs per trial, Adam. Search space:
learning rate (log range 1e-4 to 1e-1), hidden width (32, 64 or 128 units), dropout (0 to 0.4 in
steps of 0.2). Grid search needs discrete values, so it takes the learning rate at 4 log-spaced
points of the same range (36 points, all trained); the others get ``TRIALS`` trials each, over
``SEEDS`` sampler seeds (the training seed is fixed, so differences come from the search).
Everything runs in this process with the in-memory Optuna storage and one torch thread.

Usage, from the repo root: ``.venv/bin/python bench/tuning.py [--seeds N] [--trials N]``
(about 3 minutes with the defaults on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import torch  # noqa: E402

from training import ExperimentSpec, MemoryReporter  # noqa: E402
from training.tuning import TuningSpec, optimize  # noqa: E402

EPOCHS = 10
TRIALS = 20  # per seed, for random and TPE variants
SEEDS = 3
BASE = ExperimentSpec().patched({
    "data": {"dataset": "digits"},
    "model": {"arch": "mlp", "hidden_sizes": [64]},
    "run": {"epochs": EPOCHS, "batch_size": 64, "device": "cpu", "seed": 0},
}).to_dict()
SPACE: dict[str, Any] = {
    "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "model.hidden_sizes": {"type": "categorical", "choices": ["32", "64", "128"]},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.4, "step": 0.2},
}
GRID_SPACE = {**SPACE, "optim.lr": {"type": "categorical", "choices": [1e-4, 1e-3, 1e-2, 1e-1]}}
VARIANTS = {  # name → (algorithm, pruner)
    "grid": ("grid", "none"),
    "random": ("random", "none"),
    "tpe": ("tpe", "none"),
    "tpe + median": ("tpe", "median"),
    "tpe + hyperband": ("tpe", "hyperband"),
}


def run_study(algorithm: str, pruner: str, seed: int, trials: int) -> dict[str, float]:
    """One study; its best validation accuracy, epochs trained and seconds."""
    spec = TuningSpec.from_dict({
        "base": BASE, "space": GRID_SPACE if algorithm == "grid" else SPACE,
        "algorithm": algorithm, "pruner": pruner, "seed": seed,
        "n_trials": 1000 if algorithm == "grid" else trials,
    })
    reporters: list[MemoryReporter] = []

    def reporter(_: int) -> MemoryReporter:
        reporters.append(MemoryReporter())
        return reporters[-1]

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        study = optimize(spec, Path(workdir), make_reporter=reporter)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {
        "best": study.best_value,
        "epochs": sum(len(r.series("val_acc")) for r in reporters),
        "trials": len(study.trials),
        "pruned": pruned,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--trials", type=int, default=TRIALS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, list[dict[str, float]]] = {}
    for name, (algorithm, pruner) in VARIANTS.items():
        seeds = [0] if algorithm == "grid" else list(range(args.seeds))
        results[name] = [run_study(algorithm, pruner, s, args.trials) for s in seeds]
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    grid_best = results["grid"][0]["best"]
    grid_epochs = results["grid"][0]["epochs"]
    print(f"\nMLP on digits, {EPOCHS} epochs per trial; grid: {results['grid'][0]['trials']:.0f} "
          f"points; others: {args.trials} trials x {args.seeds} seeds (mean, min-max)\n")
    print("| search | best val acc | epochs spent | % of grid epochs | pruned trials | time |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        best = [r["best"] for r in runs]
        epochs = statistics.mean(r["epochs"] for r in runs)
        print(f"| {name} | {statistics.mean(best):.4f} ({min(best):.4f}-{max(best):.4f}) "
              f"| {epochs:.0f} | {100 * epochs / grid_epochs:.0f}% "
              f"| {statistics.mean(r['pruned'] for r in runs):.1f} "
              f"| {statistics.mean(r['seconds'] for r in runs):.1f} s |")
    grid_points = 100 * grid_best
    print(f"\nTarget: within 0.5 points of the grid's best ({grid_points:.2f}) with at most 35% "
          "of its epochs. Worst seed of each pruned search:")
    for name in ("tpe + median", "tpe + hyperband"):
        worst = 100 * min(r["best"] for r in results[name])
        share = 100 * max(r["epochs"] for r in results[name]) / grid_epochs
        print(f"- {name}: best {worst:.2f} ({worst - grid_points:+.2f} points) with {share:.0f}% "
              f"of the grid's epochs")

if __name__ == "__main__":
    main()
