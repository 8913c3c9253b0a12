"""Training throughput of ``training.loop.run`` with the worker's DjangoReporter against a plain
hand-written PyTorch loop on the same model, data and epochs (target: ratio ≥ 0.97).

(a) plain: ``prepare`` + ``build_model``, Adam, the same seeded shuffling and batch size,
    ``loss.item()`` every step and one validation pass per epoch (what any real loop does);
(b) fitboard: ``training.loop.run`` reporting to a real ``DjangoReporter`` (SQLite database in a
    scratch folder, real Redis channel layer), from creating the reporter to ``close()``;
(c) for locating overhead: ``training.loop.run`` with the in-memory reporter.

Runs alternate a/b/c after one warm-up of each; figures are medians. For (b) it also prints where
the reporter's time went: seconds inside reporter calls on the training thread, and the CPU time
of the reporter's flusher thread. Usage, from the repo root:
``.venv/bin/python bench/overhead.py [--repeats N]`` (about a minute with the default 3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _stack  # noqa: E402

THREADS = 2  # torch intra-op threads, as a worker on this 2-core machine would use
REPEATS = 3  # timed runs of each variant
TRIES = 3  # attempts at one timed run on a machine that other processes keep busy
TARGET_RATIO = 0.97  # (b) / (a) throughput
QUIET_CORES = 0.1  # CPU (in cores) other processes may use during a run that counts
SPEC = {  # the default spec (digits CNN, batch 64), for long enough to time
    "data": {"dataset": "digits"},
    "model": {"arch": "cnn"},
    "run": {"epochs": 10, "device": "cpu", "seed": 0},
}


def plain_loop(spec_dict: dict[str, object]) -> float:
    """Seconds for a hand-written loop over the same model, data, optimizer and shuffling."""
    import torch
    from torch import nn

    from training.data import prepare
    from training.models import build_model
    from training.spec import ExperimentSpec

    spec = ExperimentSpec.from_dict(spec_dict)
    start = time.perf_counter()
    torch.manual_seed(spec.run.seed)
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    model = build_model(spec.model, data.info.input_shape, data.info.num_classes)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.optim.lr)
    shuffle = torch.Generator().manual_seed(spec.run.seed)
    batch, rows = spec.run.batch_size, len(data.x_train)
    for _ in range(spec.run.epochs):
        model.train()
        order = torch.randperm(rows, generator=shuffle)
        for first in range(0, rows, batch):
            index = order[first : first + batch]
            loss = loss_fn(model(data.x_train[index]), data.y_train[index])
            loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(data.x_val)
            loss_fn(out, data.y_val).item()
            int((out.argmax(1) == data.y_val).sum())
    return time.perf_counter() - start


class TimedReporter:
    """Passes every call on to a reporter, adding up the seconds each method keeps the training
    thread busy."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        start = time.perf_counter()
        self.inner.log(step, metrics)
        self.seconds["log"] += time.perf_counter() - start

    def status(self, message: str, **fields: Any) -> None:
        start = time.perf_counter()
        self.inner.status(message, **fields)
        self.seconds["status"] += time.perf_counter() - start

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        start = time.perf_counter()
        self.inner.checkpoint(path, tag, metrics, sha256)
        self.seconds["checkpoint"] += time.perf_counter() - start

    def should_stop(self) -> bool:
        start = time.perf_counter()
        stop = bool(self.inner.should_stop())
        self.seconds["should_stop"] += time.perf_counter() - start
        return stop


class RunVariants:
    """``training.loop.run`` on the scratch site: with the DjangoReporter and the in-memory one.
    Keeps, for each DjangoReporter run, where the reporter's time went (``costs``)."""

    def __init__(self, stack: _stack.Stack) -> None:
        self.stack = stack
        self.user, self.project = _stack.bench_user_and_project()
        self.costs: list[dict[str, float]] = []

    def django(self, spec_dict: dict[str, object]) -> float:
        """Seconds from creating a DjangoReporter for a fresh running experiment to ``close()``."""
        from django.conf import settings

        from training.loop import run
        from training.spec import ExperimentSpec
        from webapp.experiments.reporting import DjangoReporter, Flusher

        experiment = _stack.running_experiment(self.user, self.project, "overhead", spec_dict)
        spec = ExperimentSpec.from_dict(spec_dict)
        workdir = Path(settings.MEDIA_ROOT) / "runs" / str(experiment.pk)  # as the worker does
        workdir.mkdir(parents=True)
        start = time.perf_counter()
        # The worker process's flusher thread's own CPU clock (private attributes: this is a
        # measurement), read around the run.
        flusher = time.pthread_getcpuclockid(Flusher.for_this_process()._thread.ident or 0)
        flusher_start = time.clock_gettime(flusher)
        reporter = DjangoReporter(experiment)
        timed = TimedReporter(reporter)
        try:
            run(spec, timed, workdir, device="cpu", meta={"experiment_id": experiment.pk})
        finally:
            closing = time.perf_counter()
            reporter.close()
            timed.seconds["close"] = time.perf_counter() - closing
            flusher_cpu = time.clock_gettime(flusher) - flusher_start
        seconds = time.perf_counter() - start
        self.costs.append({**timed.seconds, "flusher_cpu": flusher_cpu, "run": seconds})
        return seconds

    def memory(self, spec_dict: dict[str, object]) -> float:
        """Seconds with the in-memory reporter (no Django, no Redis)."""
        from training.loop import run
        from training.reporter import MemoryReporter
        from training.spec import ExperimentSpec

        spec = ExperimentSpec.from_dict(spec_dict)
        workdir = self.stack.scratch / f"memory-{time.monotonic_ns()}"
        workdir.mkdir()
        start = time.perf_counter()
        run(spec, MemoryReporter(), workdir, device="cpu")
        return time.perf_counter() - start


def measure(
    variants: dict[str, Callable[[dict[str, object]], float]], repeats: int
) -> tuple[dict[str, list[float]], int]:
    """Seconds per variant: one warm-up each, then ``repeats`` rounds alternating them. A run during
    which other processes used the CPU is taken again (up to TRIES times); returns the times and
    how many kept runs were still disturbed."""
    for variant in variants.values():
        variant(SPEC)
    times: dict[str, list[float]] = {name: [] for name in variants}
    disturbed = 0
    for _ in range(repeats):
        for name, variant in variants.items():
            for _ in range(TRIES):
                _stack.wait_for_quiet(QUIET_CORES, patience=20)
                with _stack.ForeignLoad() as load:
                    seconds = variant(SPEC)
                if load.cores <= QUIET_CORES:
                    break
            else:
                disturbed += 1
            times[name].append(seconds)
    return times, disturbed


def print_costs(costs: list[dict[str, float]]) -> None:
    """Where a DjangoReporter run's extra time goes, as medians over the timed runs."""

    def ms(key: str) -> float:
        return statistics.median(c.get(key, 0.0) for c in costs) * 1000

    run_ms = ms("run")
    calls = {key: ms(key) for key in ("checkpoint", "log", "status", "should_stop", "close")}
    on_thread = sum(calls.values())
    parts = ", ".join(f"{key}() {value:.0f}" for key, value in calls.items() if value >= 0.5)
    print(
        f"  (b) reporter cost per run ({run_ms:.0f} ms): training thread inside reporter calls "
        f"{on_thread:.0f} ms ({on_thread / run_ms:.1%}: {parts}); flusher thread CPU "
        f"{ms('flusher_cpu'):.0f} ms ({ms('flusher_cpu') / run_ms:.1%}), taken from the cores "
        "and the GIL that training uses"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per variant")
    repeats = parser.parse_args().repeats
    import torch

    from training.data.catalog import dataset_info
    from training.spec import ExperimentSpec

    torch.set_num_threads(THREADS)
    with _stack.Stack() as stack:
        stack.configure()
        _stack.setup_django(migrate=True)
        runs = RunVariants(stack)
        times, disturbed = measure(
            {"plain": plain_loop, "django": runs.django, "memory": runs.memory}, repeats
        )
        redis = "bundled redis-server" if stack.bundled_redis else "REDIS_URL"

    spec = ExperimentSpec.from_dict(SPEC)
    rows = dataset_info(spec.data.dataset).train_rows(spec.data.val_fraction)
    rate = {name: spec.run.epochs * rows / statistics.median(t) for name, t in times.items()}
    labels = {
        "plain": "(a) plain PyTorch loop",
        "django": "(b) training.loop.run + DjangoReporter",
        "memory": "(c) training.loop.run + MemoryReporter",
    }
    print(
        f"overhead: digits CNN (default spec), {spec.run.epochs} epochs x {rows} rows, "
        f"batch {spec.run.batch_size}, {THREADS} torch threads, median of {repeats} "
        f"alternating runs; SQLite + {redis}"
    )
    best = {name: spec.run.epochs * rows / min(t) for name, t in times.items()}
    print(f"  {'':<40} {'samples/s':>9} {'vs (a)':>7}   fastest run: samples/s  vs (a)")
    for name, label in labels.items():
        print(
            f"  {label:<40} {rate[name]:>9.0f} {rate[name] / rate['plain']:>7.3f}   "
            f"{'':>12}{best[name]:>9.0f} {best[name] / best['plain']:>7.3f}"
        )
    ratio = rate["django"] / rate["plain"]
    print(
        f"  throughput ratio b/a = {ratio:.3f} (target >= {TARGET_RATIO}: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )
    print_costs(runs.costs[1:])  # the first is the warm-up
    if disturbed:
        print(
            f"  WARNING: {disturbed} of {sum(map(len, times.values()))} timed runs shared the "
            f"CPU with other processes even after {TRIES} tries: these figures are unreliable"
        )


if __name__ == "__main__":
    main()
