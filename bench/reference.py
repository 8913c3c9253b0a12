"""What the reference model (``training.reference``) costs, against the data preparation every
run pays anyway, per data set: the figure to hold is Fashion-MNIST under 10 s on 2 cores.

For each data set, rounds alternate (a) ``prepare`` alone and (b) ``compute_reference`` on the
prepared data (what the first run on a split adds; later runs read a small JSON file), after one
warm-up of each. It prints the median and spread of each arm, their ratio, and the reference's
scores. ``--threads`` sets torch's threads for ``prepare``; the reference itself fits on one
thread whatever it is (see ``compute_reference``). Usage, from the repo root (with
``FITBOARD_DATA_DIR`` holding the MNIST files):
``.venv/bin/python bench/reference.py [--rounds N] [--threads T] [dataset ...]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training.data import prepare  # noqa: E402
from training.reference import compute_reference  # noqa: E402

DATASETS = ("fashion_mnist", "mnist", "digits", "breast_cancer", "diabetes", "imdb_sentences")
TARGET_S = 10.0  # Fashion-MNIST's reference, on 2 cores


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench(name: str, rounds: int) -> None:
    data = prepare(name, 0.2, 0)
    compute_reference(data)  # warm-up of both arms
    prep, ref = [], []
    for _ in range(rounds):
        prep.append(timed(lambda: prepare(name, 0.2, 0)))
        ref.append(timed(lambda: compute_reference(data)))
    reference = compute_reference(data)
    mp, mr = statistics.median(prep), statistics.median(ref)
    print(f"{name:15s} prepare {mp:6.2f} s (spread {min(prep):.2f}–{max(prep):.2f})  "
          f"reference {mr:6.2f} s (spread {min(ref):.2f}–{max(ref):.2f})  "
          f"reference/prepare {mr / mp:5.2f}  val_acc {reference.val_acc}  "
          f"val_loss {reference.val_loss:.3f}"
          + (f"  target < {TARGET_S:g} s: {'met' if mr < TARGET_S else 'MISSED'}"
             if name == "fashion_mnist" else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, rounds {args.rounds}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name in args.datasets:
        bench(name, args.rounds)


if __name__ == "__main__":
    main()
