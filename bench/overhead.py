"""Training throughput of ``training.loop.run`` with the worker's DjangoReporter against a plain
hand-written PyTorch loop on the same model, data and epochs (target: ratio ≥ 0.97).

Two workloads: ``digits``, the default spec (the digits CNN), and ``fmnist_cnn``, the
Fashion-MNIST recipe's model, optimizer, schedule and augmentation on a training subset
(``FITBOARD_DATA_DIR`` must hold Fashion-MNIST).

(a) plain: ``prepare`` + ``build_model`` in the engine's memory layout (``laid_out``), the
    spec's optimizer (Adam or AdamW) and one-cycle schedule as torch objects, the same seeded
    shuffling, batch size and augmentation ops,
    ``loss.item()`` every step, one validation pass per epoch and one test pass at the end
    (what any real loop does);
(b) fitboard: ``training.loop.run`` reporting to a real ``DjangoReporter`` (SQLite database in a
    scratch folder, real Redis channel layer), from creating the reporter to ``close()``;
(c) for locating overhead: ``training.loop.run`` with the in-memory reporter.

Runs alternate a/b/c after one warm-up of each; figures are medians, with the spread of the
per-round ratios (each round's b over the same round's a). For (b) it also prints where the
reporter's time went: seconds inside reporter calls on the training thread, and the CPU time of
the reporter's flusher thread. ``--busy N`` starts N processes that each keep a core busy for
the whole bench (the contention of a shared machine, made on purpose): the runs then do not
wait for a quiet machine. Usage, from the repo root::

    .venv/bin/python bench/overhead.py [--workload digits|fmnist_cnn|all] [--repeats N] [--busy N]
        [--subset N] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
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
REPEATS = 5  # timed runs of each variant
TRIES = 3  # attempts at one timed run on a machine that other processes keep busy
TARGET_RATIO = 0.97  # (b) / (a) throughput
QUIET_CORES = 0.1  # CPU (in cores) other processes may use during a run that counts
SPEC = {  # the default spec (digits CNN, batch 64), for long enough to time
    "data": {"dataset": "digits"},
    "model": {"arch": "cnn"},
    "run": {"epochs": 10, "device": "cpu", "seed": 0},
}
# The Fashion-MNIST recipe on 6,000 of its images (plus its 10,000-image test pass), 2 epochs.
FMNIST_SUBSET, FMNIST_EPOCHS = 6000, 2
# Code that keeps one core busy until it is stopped (``--busy``).
BURN = "while True:\n    pass"


def workloads(subset: int = FMNIST_SUBSET, epochs: int = FMNIST_EPOCHS
              ) -> dict[str, dict[str, Any]]:
    """The specs this bench times, by name (the recipe's training subset and epochs given)."""
    from training.recipes import RECIPES

    recipe = RECIPES["fmnist_cnn"].spec().patched({
        "data": {"subset": subset},
        "run": {"epochs": epochs, "device": "cpu", "seed": 0},
    })
    return {"digits": SPEC, "fmnist_cnn": recipe.to_dict()}


def plain_loop(spec_dict: dict[str, Any]) -> float:
    """Seconds for a hand-written loop over the same model, data, optimizer, schedule,
    augmentation and shuffling."""
    import torch
    from torch import nn

    from training.data import prepare
    from training.data.augment import Augmentation
    from training.models import build_model, laid_out
    from training.spec import ExperimentSpec

    spec = ExperimentSpec.from_dict(spec_dict)
    d, o = spec.data, spec.optim
    start = time.perf_counter()
    torch.manual_seed(spec.run.seed)
    data = prepare(d.dataset, d.val_fraction, spec.run.seed, d.subset)
    model = build_model(spec.model, data.info.input_shape, data.info.num_classes)
    # The engine's memory layout (channels last on a CPU): the bench measures its overhead,
    # not a layout (that is ``bench/channels_last.py``).
    model = laid_out(model, torch.device("cpu"))
    loss_fn = nn.CrossEntropyLoss()
    optimizer_class = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    batch, rows = spec.run.batch_size, len(data.x_train)
    steps = -(-rows // batch)
    schedule = (torch.optim.lr_scheduler.OneCycleLR(
        optimizer, o.lr, total_steps=steps * spec.run.epochs, pct_start=spec.schedule.pct_start)
        if spec.schedule.kind == "one_cycle" else None)
    augment = Augmentation(d.augment_crop, d.augment_flip, d.augment_rotation, d.augment_noise)
    shuffle = torch.Generator().manual_seed(spec.run.seed)
    augment_rng = torch.Generator().manual_seed(spec.run.seed)
    for _ in range(spec.run.epochs):
        model.train()
        order = torch.randperm(rows, generator=shuffle)
        for first in range(0, rows, batch):
            index = order[first : first + batch]
            x = data.x_train[index]
            if augment.active:
                x = augment(x, augment_rng)
            loss = loss_fn(model(x), data.y_train[index])
            loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        plain_evaluate(model, loss_fn, data.x_val, data.y_val)
    if data.x_test is not None and data.y_test is not None:
        plain_evaluate(model, loss_fn, data.x_test, data.y_test)
    return time.perf_counter() - start


def plain_evaluate(model: Any, loss_fn: Any, x: Any, y: Any) -> None:
    """Loss and accuracy over ``x`` in passes of 1024 rows, as any loop measures them."""
    import torch

    model.eval()
    with torch.no_grad():
        for first in range(0, len(x), 1024):
            out = model(x[first : first + 1024])
            loss_fn(out, y[first : first + 1024]).item()
            int((out.argmax(1) == y[first : first + 1024]).sum())


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

    def django(self, spec_dict: dict[str, Any]) -> float:
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

    def memory(self, spec_dict: dict[str, Any]) -> float:
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


def measure(variants: dict[str, Callable[[dict[str, Any]], float]], spec: dict[str, Any],
            repeats: int, quiet: bool) -> tuple[dict[str, list[float]], int]:
    """Seconds per variant: one warm-up each, then ``repeats`` rounds alternating them. With
    ``quiet``, a run during which other processes used the CPU is taken again (up to TRIES
    times); returns the times and how many kept runs were still disturbed (0 without
    ``quiet``: the contention is the point)."""
    for variant in variants.values():
        variant(spec)
    times: dict[str, list[float]] = {name: [] for name in variants}
    disturbed = 0
    for _ in range(repeats):
        for name, variant in variants.items():
            if not quiet:
                times[name].append(variant(spec))
                continue
            for _ in range(TRIES):
                _stack.wait_for_quiet(QUIET_CORES, patience=20)
                with _stack.ForeignLoad() as load:
                    seconds = variant(spec)
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


def report(name: str, spec_dict: dict[str, Any], times: dict[str, list[float]],
           repeats: int, setting: str) -> None:
    """Samples per second of each variant (median and fastest run) and the b/a ratio with the
    spread of its per-round values."""
    from training.data.catalog import dataset_info, split_sizes
    from training.spec import ExperimentSpec

    spec = ExperimentSpec.from_dict(spec_dict)
    d = spec.data
    rows = split_sizes(dataset_info(d.dataset), d.val_fraction, d.subset, d.test_fraction)[0]
    samples = spec.run.epochs * rows
    rate = {variant: samples / statistics.median(t) for variant, t in times.items()}
    best = {variant: samples / min(t) for variant, t in times.items()}
    labels = {
        "plain": "(a) plain PyTorch loop",
        "django": "(b) training.loop.run + DjangoReporter",
        "memory": "(c) training.loop.run + MemoryReporter",
    }
    print(
        f"overhead, {name}: {spec.model.arch}, {spec.run.epochs} epochs x {rows} rows, batch "
        f"{spec.run.batch_size}, {THREADS} torch threads, median of {repeats} alternating "
        f"runs; {setting}"
    )
    print(f"  {'':<40} {'samples/s':>9} {'vs (a)':>7}   fastest run: samples/s  vs (a)")
    for variant, label in labels.items():
        print(
            f"  {label:<40} {rate[variant]:>9.0f} {rate[variant] / rate['plain']:>7.3f}   "
            f"{'':>12}{best[variant]:>9.0f} {best[variant] / best['plain']:>7.3f}"
        )
    rounds = [a / b for a, b in zip(times["plain"], times["django"], strict=True)]
    ratio = rate["django"] / rate["plain"]
    print(
        f"  throughput ratio b/a = {ratio:.3f}; per round {statistics.median(rounds):.3f} "
        f"median ({min(rounds):.3f}-{max(rounds):.3f}): "
        + " ".join(f"{r:.3f}" for r in rounds)
        + f" (target >= {TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per variant")
    parser.add_argument("--workload", choices=("digits", "fmnist_cnn", "all"), default="all")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="processes that keep a core busy each while the bench runs")
    parser.add_argument("--subset", type=int, default=FMNIST_SUBSET,
                        help="Fashion-MNIST training images (fmnist_cnn)")
    parser.add_argument("--epochs", type=int, default=FMNIST_EPOCHS, help="epochs (fmnist_cnn)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    chosen = {name: spec for name, spec in workloads(args.subset, args.epochs).items()
              if args.workload in (name, "all")}
    with _stack.Stack() as stack:
        stack.configure()
        _stack.setup_django(migrate=True)
        for index in range(args.busy):
            stack.spawn([sys.executable, "-c", BURN], f"busy-{index}.log")
        runs = RunVariants(stack)
        redis = "bundled redis-server" if stack.bundled_redis else "REDIS_URL"
        for name, spec in chosen.items():
            runs.costs.clear()
            load = os.getloadavg()[0]
            times, disturbed = measure(
                {"plain": plain_loop, "django": runs.django, "memory": runs.memory}, spec,
                args.repeats, quiet=not args.busy)
            setting = (f"SQLite + {redis}; {args.busy} busy processes; load average "
                       f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
            report(name, spec, times, args.repeats, setting)
            print_costs(runs.costs[1:])  # the first is the warm-up
            if disturbed:
                print(
                    f"  WARNING: {disturbed} of {sum(map(len, times.values()))} timed runs "
                    f"shared the CPU with other processes even after {TRIES} tries: these "
                    "figures are unreliable"
                )


if __name__ == "__main__":
    main()
