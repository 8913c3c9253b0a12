"""Transfer learning: epochs a fine-tune from an MNIST-trained CNN needs on 1,000 Fashion-MNIST
training images to reach what the same CNN from scratch reaches at its best.

Target (issue 23): the warm start reaches the from-scratch run's best validation accuracy in at
most half its epochs (median over seeds). For each seed, both arms train the same spec on the
same seeded data: ``data.subset`` 5,000 stratified rows of Fashion-MNIST's training file with
``val_fraction`` 0.8, so 1,000 training images and 4,000 validation images (one image is 0.025
points, not the 0.5 of a 200-image split). The warm arm only adds ``model.init_from`` and the
source's checkpoint file (``RunOptions.init_weights``), exactly what a worker passes. The target
of a seed is its from-scratch run's best validation accuracy; epochs-to-target is the first
epoch whose validation accuracy reaches it (the scratch arm's best epoch; for the warm arm,
"never" counts as epochs + 1). Arms alternate within each seed. The source (the same CNN on
MNIST, all 60,000 training images by default) is trained once and cached under
``var/bench/``, keyed by its rows and epochs (``--source`` gives another checkpoint);
``--jobs`` trains seeds in parallel processes. Usage, from the repo root (data from
$FITBOARD_DATA_DIR, else ../shared/data)::

    .venv/bin/python bench/warmstart.py [--seeds 3] [--epochs 20] [--source-rows 0] \\
        [--source-epochs 3] [--source best.zip] [--jobs 3] [--threads 1] [--freeze 0] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THREADS = 2  # torch threads per process by default: the 2-core machine, as a worker uses it
MODEL = {"arch": "cnn", "width": 16, "blocks": 2}  # small enough for a CPU, big enough to learn
# 5,000 stratified Fashion-MNIST training rows, 4,000 of them held out: 1,000 training images and
# a validation split large enough that its best epoch is not one lucky image.
DATA = {"dataset": "fashion_mnist", "subset": 5000, "val_fraction": 0.8}
SOURCE_VAL = 0.05  # validation share of the source's MNIST rows (all 60,000: 57,000 train)
CACHE = Path(__file__).resolve().parents[1] / "var" / "bench"


def history(spec: Any, workdir: Path, weights: Path | None) -> tuple[list[float], float]:
    """Validation accuracy after each epoch of one run, and its wall time in seconds."""
    from training import MemoryReporter, run
    from training.data import DataSources

    reporter = MemoryReporter()
    started = time.perf_counter()
    run(spec, reporter, workdir, init_weights=weights,
        sources=DataSources(data_dir=data_dir(), allow_download=False))
    seconds = time.perf_counter() - started
    return [value for _, value in reporter.series("val_acc")], seconds


def data_dir() -> Path:
    return Path(os.environ.get("FITBOARD_DATA_DIR")
                or Path(__file__).resolve().parents[2] / "shared/data")


def epochs_to(curve: list[float], target: float) -> int:
    """The first epoch (1-based) whose accuracy reaches ``target``; len + 1 when none does."""
    return next((epoch for epoch, value in enumerate(curve, 1) if value >= target),
                len(curve) + 1)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):g}, range {min(values):g}-{max(values):g}"


def one_seed(seed: int, epochs: int, freeze: int, lr: float, weights: Path, folder: Path,
             threads: int) -> tuple[int, dict[str, list[float]], dict[str, float]]:
    """Both arms of one seed, alternating which goes first: (seed, curves, seconds)."""
    import torch

    from training.spec import ExperimentSpec

    torch.set_num_threads(threads)
    base = {"data": DATA, "optim": {"lr": lr},
            "run": {"epochs": epochs, "seed": seed, "device": "cpu"}}
    arms = {
        "scratch": (ExperimentSpec.from_dict({**base, "model": MODEL}), None),
        "warm": (ExperimentSpec.from_dict({**base, "model": {
            **MODEL, "init_from": 1, "freeze_epochs": freeze}}), weights),
    }
    # Alternate which arm goes first, so a machine that slows down mid-seed hurts both.
    order = ["scratch", "warm"] if seed % 2 == 0 else ["warm", "scratch"]
    curves, seconds = {}, {}
    for arm in order:
        spec, init = arms[arm]
        curves[arm], seconds[arm] = history(spec, folder / f"{arm}-{seed}", init)
    return seed, curves, seconds


def source_checkpoint(rows: int, epochs: int) -> Path:
    """The source CNN's best checkpoint on MNIST, trained once and kept under ``var/bench/``."""
    from training.spec import ExperimentSpec

    cached = CACHE / f"warmstart-source-mnist-{rows or 'all'}-{epochs}ep.zip"
    if cached.exists():
        return cached
    source = ExperimentSpec.from_dict({
        "data": {"dataset": "mnist", "subset": rows, "val_fraction": SOURCE_VAL},
        "model": MODEL, "run": {"epochs": epochs, "device": "cpu"}})
    with tempfile.TemporaryDirectory(prefix="warmstart-source-") as folder:
        curve, seconds = history(source, Path(folder), None)
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(folder) / "best.zip", cached)
    label = f"{rows:,}" if rows else "all 60,000"
    print(f"source: CNN on {label} MNIST rows ({SOURCE_VAL:.0%} held out), {epochs} "
          f"epochs, val_acc by epoch {' '.join(f'{v:.3f}' for v in curve)} ({seconds:.0f} s)")
    return cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each fine-tune arm")
    parser.add_argument("--source-rows", type=int, default=0,
                        help="MNIST rows for the source; 0 = all 60,000")
    parser.add_argument("--source-epochs", type=int, default=3)
    parser.add_argument("--source", type=Path, help="a source checkpoint trained before")
    parser.add_argument("--freeze", type=int, default=0, help="model.freeze_epochs of the warm arm")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's lr, both arms")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds trained at once, in processes of --threads threads each")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads per process")
    args = parser.parse_args()


    weights = args.source or source_checkpoint(args.source_rows, args.source_epochs)
    print(f"source checkpoint: {weights}")

    with (tempfile.TemporaryDirectory(prefix="warmstart-bench-") as runs,
          ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool):
        folder = Path(runs)
        results = sorted(pool.map(one_seed, range(args.seeds), [args.epochs] * args.seeds,
                                  [args.freeze] * args.seeds, [args.lr] * args.seeds,
                                  [weights] * args.seeds,
                                  [folder] * args.seeds, [args.threads] * args.seeds))
    scratch_epochs: list[float] = []
    warm_epochs: list[float] = []
    for seed, curves, seconds in results:
        for arm in ("scratch", "warm"):
            print(f"seed {seed} {arm:>7}: {seconds[arm]:5.1f} s, val_acc by epoch "
                  + " ".join(f"{v:.3f}" for v in curves[arm]))
        target = max(curves["scratch"])
        scratch_epochs.append(epochs_to(curves["scratch"], target))
        warm_epochs.append(epochs_to(curves["warm"], target))
        print(f"seed {seed}: target {target:.3f}: scratch {scratch_epochs[-1]} epochs, "
              f"warm {warm_epochs[-1]} epochs")
    ratio = statistics.median(warm_epochs) / statistics.median(scratch_epochs)
    print(f"\n1,000 training / 4,000 validation images, lr {args.lr:g}, frozen {args.freeze} "
          f"epochs, {args.epochs} epochs; epochs to the from-scratch best val_acc over "
          f"{args.seeds} seeds:")
    print(f"  from scratch: {spread(scratch_epochs)} ({scratch_epochs})")
    print(f"  warm start:   {spread(warm_epochs)} ({warm_epochs})")
    print(f"  ratio (warm / scratch, medians): {ratio:.2f} (target <= 0.5: "
          f"{'met' if ratio <= 0.5 else 'not met'})")


if __name__ == "__main__":
    main()
