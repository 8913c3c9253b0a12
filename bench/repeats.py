"""Wall time of a repeat over N seeds against one run of the same spec (target: ≤ 2×).

Arms, in one process, alternating in every round after one warm-up of each (so that load from
other processes falls on all of them alike), in reverse order every other round:
(1) one run: ``training.loop.run`` of seed 0;
(N) the repeat: ``training.repeats.run_seeds`` over seeds 0..N-1, the seeds stacked into one
    model (``training.grouped``: batched matrix products, grouped convolutions);
(s) for reference, the naive repeat: N separate ``loop.run`` calls one after the other.
Each timing covers everything a job does in-process: data preparation, model set-up, training,
evaluation every epoch, the verdict, and the checkpoint writes (fsynced); the reporters are
``MemoryReporter``s (no database). Printed per spec: each arm's seconds and the ratios (N)/(1)
and (s)/(1), per round, as median and spread (min–max); the load average before and after (the
machine may be shared: the ratios are what counts); and the arithmetic bound: the FLOPs of one
run (``torch.utils.flop_counter``) and the rate it ran them at, which says how far batching
can go when the seeds' arithmetic alone is N times one run's. Specs: the digits MLP (the default
spec with ``arch=mlp``) and the digits CNN (the default CNN, batch norm on).
Usage, from the repo root: ``.venv/bin/python bench/repeats.py [--rounds 5] [--seeds 5]
[--device cpu]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch intra-op threads. One: on a machine other processes keep busy, two threads spin-wait on
# each other and a run's time then says more about the load than about the run.
THREADS = 1
TARGET = 2.0  # the repeat's wall time over one run's
SPECS: dict[str, dict[str, Any]] = {
    "digits MLP": {"model": {"arch": "mlp"}, "run": {"epochs": 15}},
    "digits CNN": {"model": {"arch": "cnn"}, "run": {"epochs": 3}},
}


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def arms(spec_dict: dict[str, Any], seeds: int, device: str) -> dict[str, Callable[[], object]]:
    from training import ExperimentSpec, MemoryReporter
    from training.loop import run
    from training.repeats import run_seeds

    spec = ExperimentSpec().patched({**spec_dict, "run": {**spec_dict["run"], "device": device}})
    folder = Path(tempfile.mkdtemp(prefix="bench-repeats-"))
    chosen = list(range(seeds))

    def one() -> object:
        return run(spec, MemoryReporter(), folder / "one")

    def together() -> object:
        return run_seeds(spec, chosen, [MemoryReporter() for _ in chosen],
                         [folder / f"seed{s}" for s in chosen])

    def separate() -> object:
        return [run(spec.patched({"run": {"seed": s}}), MemoryReporter(), folder / f"sep{s}")
                for s in chosen]

    return {"1 run": one, f"{seeds} seeds together": together, f"{seeds} separate": separate}


def run_flops(work: Callable[[], object]) -> int:
    """The floating-point operations of one call of ``work`` (matrix products and
    convolutions, forward and backward: what grows with the seeds)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        work()
    return int(counter.get_total_flops())


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def bench(name: str, spec_dict: dict[str, Any], rounds: int, seeds: int, device: str) -> bool:
    runs = arms(spec_dict, seeds, device)
    for work in runs.values():
        work()  # warm-up: imports, the data set's first load, kernel selection
    times: dict[str, list[float]] = {arm: [] for arm in runs}
    load_before = load()
    for round_ in range(rounds):
        order = list(runs.items())
        for arm, work in order if round_ % 2 == 0 else reversed(order):
            times[arm].append(timed(work))
    base = times["1 run"]
    print(f"{name} on {device}, {rounds} rounds, load average (1/5/15 min) {load_before} before, "
          f"{load()} after; seconds median (min-max):")
    for arm, values in times.items():
        print(f"  {arm:>18}: {statistics.median(values):7.3f} s ({min(values):.3f}-"
              f"{max(values):.3f})")
    verdict = True
    for arm in list(runs)[1:]:
        ratios = [t / b for t, b in zip(times[arm], base, strict=True)]
        median = statistics.median(ratios)
        print(f"  ratio {arm} / 1 run: median {median:.2f}x, spread {min(ratios):.2f}-"
              f"{max(ratios):.2f}x")
        if arm.endswith("together"):
            verdict = median <= TARGET
            print(f"  target <= {TARGET:.1f}x: {'met' if verdict else 'MISSED'}")
    flops = run_flops(runs["1 run"])
    rate = flops / statistics.median(base)
    print(f"  arithmetic: one run {flops / 1e9:.2f} GFLOP, at {rate / 1e9:.1f} GFLOP/s over its "
          f"whole wall time; {seeds} seeds {seeds * flops / 1e9:.2f} GFLOP, which at "
          f"{TARGET:.0f}x its time needs {seeds * rate / TARGET / 1e9:.1f} GFLOP/s")
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=sorted(SPECS), default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    met = [bench(name, spec, args.rounds, args.seeds, args.device)
           for name, spec in SPECS.items() if args.only in (None, name)]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
