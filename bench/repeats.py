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
[--device cpu] [--threads 1]``.
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

# torch intra-op threads. One by default: on a machine other processes keep busy, two threads
# spin-wait on each other and a run's time then says more about the load than about the run.
# ``--threads`` sets another count, such as a worker's (FITBOARD_TORCH_THREADS: every core),
# where the seeds' wider kernels use the cores better than one small run does.
THREADS = 1
TARGET = 2.0  # the repeat's wall time over one run's
SPECS: dict[str, dict[str, Any]] = {
    "digits MLP": {"model": {"arch": "mlp"}, "run": {"epochs": 15}},
    "digits CNN": {"model": {"arch": "cnn"}, "run": {"epochs": 3}},
}


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (its threads' too) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


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
    wall: dict[str, list[float]] = {arm: [] for arm in runs}
    cpu: dict[str, list[float]] = {arm: [] for arm in runs}
    load_before = load()
    for round_ in range(rounds):
        order = list(runs.items())
        for arm, work in order if round_ % 2 == 0 else reversed(order):
            seconds, cpu_seconds = timed(work)
            wall[arm].append(seconds)
            cpu[arm].append(cpu_seconds)
    print(f"{name} on {device}, {rounds} rounds, load average (1/5/15 min) {load_before} before, "
          f"{load()} after; median (min-max):")
    for arm in runs:
        print(f"  {arm:>18}: wall {spread(wall[arm], 's')}, CPU {spread(cpu[arm], 's')}")
    verdict = True
    for arm in list(runs)[1:]:
        print(f"  ratio {arm} / 1 run: wall {spread(ratios(wall, arm), 'x')}, "
              f"CPU {spread(ratios(cpu, arm), 'x')}")
        if arm.endswith("together"):
            verdict = statistics.median(ratios(wall, arm)) <= TARGET
            print(f"  target (wall) <= {TARGET:.1f}x: {'met' if verdict else 'MISSED'}")
    print(arithmetic(run_flops(runs["1 run"]), statistics.median(cpu["1 run"]), seeds))
    return verdict


def ratios(times: dict[str, list[float]], arm: str) -> list[float]:
    """Per round: the arm's time over the one run's."""
    return [t / b for t, b in zip(times[arm], times["1 run"], strict=True)]


def spread(values: list[float], unit: str) -> str:
    return (f"{statistics.median(values):.3f}{unit} ({min(values):.3f}-{max(values):.3f})"
            if unit == "s" else
            f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})")


def arithmetic(flops: int, cpu_seconds: float, seeds: int) -> str:
    """The bound that the seeds' arithmetic sets: N seeds do N times one run's FLOPs, so N
    seeds in ``TARGET`` times one run's time need N / TARGET times its FLOP rate."""
    rate = flops / cpu_seconds
    return (f"  arithmetic: one run {flops / 1e9:.2f} GFLOP in {cpu_seconds:.3f} CPU s "
            f"({rate / 1e9:.1f} GFLOP/s); {seeds} seeds {seeds * flops / 1e9:.2f} GFLOP, which "
            f"in {TARGET:.0f}x its time need {seeds * rate / TARGET / 1e9:.1f} GFLOP/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=sorted(SPECS), default=None)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch intra-op threads (a worker uses every core)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads} (of {os.cpu_count()} cores)")
    met = [bench(name, spec, args.rounds, args.seeds, args.device)
           for name, spec in SPECS.items() if args.only in (None, name)]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
