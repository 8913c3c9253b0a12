"""Training time of the built-in CNNs on a CPU in the channels-last layout that the engine
trains them in (``training.models.laid_out``) against the default contiguous layout.

Arms, in one process, alternating in every round after one warm-up of each (in reverse order
every other round): ``training.loop.run`` of the same spec and seed, once as shipped (channels
last) and once with ``laid_out`` replaced by the identity (the model as ``build_model`` returns
it). Each timing is the whole in-process job: data preparation, set-up, training, evaluation
every epoch, the test pass, the verdict and the checkpoint writes; the reporter is a
``MemoryReporter`` (no database). Printed per workload: each arm's wall and CPU seconds, and the
ratio contiguous / channels last per round (above 1: channels last is faster), as median and
spread (min-max), with the load average before and after. Workloads: the default spec (the
digits CNN, 8x8 images), the Fashion-MNIST recipe's CNN on a subset (28x28), and a ResNet on
Fashion-MNIST images.

Usage, from the repo root: ``FITBOARD_DATA_DIR=... .venv/bin/python bench/channels_last.py
[--rounds 5] [--threads 1] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.repeats import spread, timed  # noqa: E402


def workloads() -> dict[str, Any]:
    """The specs timed, by name (``ExperimentSpec``s)."""
    from training import ExperimentSpec
    from training.recipes import RECIPES

    fmnist = RECIPES["fmnist_cnn"].spec().patched({"data": {"subset": 3000},
                                                   "run": {"epochs": 1, "seed": 0}})
    resnet = fmnist.patched({"model": {"arch": "resnet", "width": 16, "blocks": 2, "depth": 1}})
    digits = ExperimentSpec().patched({"model": {"arch": "cnn"}, "run": {"epochs": 4,
                                                                         "seed": 0}})
    return {"digits CNN": digits, "fmnist CNN": fmnist, "fmnist ResNet": resnet}


def arms(spec: Any) -> dict[str, Callable[[], object]]:
    from training import MemoryReporter, loop

    spec = spec.patched({"run": {"device": "cpu"}})
    folder = Path(tempfile.mkdtemp(prefix="bench-layout-"))
    shipped = loop.laid_out

    def channels_last() -> object:
        return loop.run(spec, MemoryReporter(), folder / "channels-last")

    def contiguous() -> object:
        loop.laid_out = lambda model, device: model  # type: ignore[assignment]
        try:
            return loop.run(spec, MemoryReporter(), folder / "contiguous")
        finally:
            loop.laid_out = shipped

    return {"channels last": channels_last, "contiguous": contiguous}


def bench(name: str, spec: Any, rounds: int) -> float:
    runs = arms(spec)
    for work in runs.values():
        work()  # warm-up: imports, the data set's first load, kernel selection
    wall: dict[str, list[float]] = {arm: [] for arm in runs}
    cpu: dict[str, list[float]] = {arm: [] for arm in runs}
    before = "/".join(f"{v:.1f}" for v in os.getloadavg())
    for round_ in range(rounds):
        order = list(runs.items())
        for arm, work in order if round_ % 2 == 0 else reversed(order):
            seconds, cpu_seconds = timed(work)
            wall[arm].append(seconds)
            cpu[arm].append(cpu_seconds)
    after = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{name}, {rounds} rounds, load average {before} before, {after} after; "
          "median (min-max):")
    for arm in runs:
        print(f"  {arm:>13}: wall {spread(wall[arm], 's')}, CPU {spread(cpu[arm], 's')}")
    ratio = {kind: [c / s for c, s in zip(times["contiguous"], times["channels last"],
                                           strict=True)]
             for kind, times in (("wall", wall), ("CPU", cpu))}
    print(f"  contiguous / channels last: wall {spread(ratio['wall'], 'x')}, "
          f"CPU {spread(ratio['CPU'], 'x')}")
    return statistics.median(ratio["wall"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads} (of {os.cpu_count()} cores)")
    for name, spec in workloads().items():
        if args.only in (None, name):
            bench(name, spec, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
