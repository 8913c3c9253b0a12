"""Throughput of a queue of short CPU jobs drained by 1 and by 2 Celery worker processes.

Each job is a tiny training (an MLP on iris, a few epochs, one torch thread) submitted the way
the web app submits runs (``actions.create_experiment``, routed to the ``cpu`` queue). Workers
are real ``celery worker -P solo`` processes started as ``manage.py worker`` starts them, warmed
with one job each (torch imports) before the clock starts. Prints jobs/s for each worker count
and the ratio; on a 2-core machine 2x is the ceiling, and the figure is only meaningful when
nothing else is using the cores (the foreign load is printed beside it).

Usage, from the repo root: ``nice -n 10 .venv/bin/python bench/workers.py [--jobs 40]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import (  # noqa: E402
    REPO,
    ForeignLoad,
    Stack,
    bench_user_and_project,
    setup_django,
)

SPEC = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
        "run": {"epochs": 5, "batch_size": 32, "device": "cpu"}}


def submit(user: Any, project: Any, count: int, label: str) -> list[int]:
    from training.spec import ExperimentSpec
    from webapp.experiments.actions import create_experiment

    spec = ExperimentSpec.from_dict(SPEC)
    return [create_experiment(user, project, f"{label} {i}", spec).pk for i in range(count)]


def wait_done(ids: list[int], timeout: float) -> None:
    from webapp.experiments.models import Experiment

    deadline = time.monotonic() + timeout
    while True:
        rows = list(Experiment.objects.filter(pk__in=ids).values_list("status", flat=True))
        if all(s in Experiment.TERMINAL for s in rows):
            failed = [s for s in rows if s != Experiment.Status.SUCCEEDED]
            if failed:
                raise RuntimeError(f"{len(failed)} jobs did not succeed: {failed[:3]}")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still running after {timeout:.0f} s")
        time.sleep(0.05)


def drain(stack: Stack, env: dict[str, str], user: Any, project: Any, workers: int,
          jobs: int) -> tuple[float, float]:
    """Start ``workers`` CPU workers, warm them, then time ``jobs`` jobs; (jobs/s, foreign
    load in cores). The workers are stopped before returning."""
    from webapp.experiments.launch import worker_command

    started = []
    for index in range(workers):
        name = f"bench{workers}-{index}@%h"
        started.append(stack.spawn(worker_command(name, "cpu"), f"worker{workers}-{index}.log",
                                   env={**env, "FITBOARD_TORCH_THREADS": "1"}, cwd=REPO))
    wait_done(submit(user, project, workers * 2, f"warm-up {workers}"), timeout=300)
    with ForeignLoad() as load:
        began = time.perf_counter()
        wait_done(submit(user, project, jobs, f"{workers} workers"), timeout=1800)
        seconds = time.perf_counter() - began
    from bench._stack import stop

    for process in started:
        stop(process)
    return jobs / seconds, load.cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    with Stack() as stack:
        env = stack.configure()
        env["FITBOARD_SYSTEM_METRICS_S"] = "0"  # jobs shorter than a sample
        setup_django(migrate=True)
        user, project = bench_user_and_project()
        rates = {}
        for workers in (1, 2):
            rate, foreign = drain(stack, env, user, project, workers, args.jobs)
            rates[workers] = rate
            print(f"{workers} worker(s): {args.jobs} jobs, {rate:.2f} jobs/s "
                  f"(other processes used {foreign:.2f} cores meanwhile)", flush=True)
        print(f"ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
