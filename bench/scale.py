"""How Fitboard holds up with many runs and many points: the list page over 10,000 experiments,
the run page's data endpoint over a run of 1,000,000 points in each of 3 metrics (and a zoom into
it), the compare endpoint over 20 runs of 100,000 points, and ingestion through the worker's real
``DjangoReporter``, beside a baseline that stores one row per point (the layout MLflow uses).

Server times are taken with Django's test client in this process (no network, no browser): the
view, its queries and the JSON encoding. The database is SQLite in a scratch folder. Usage, from
the repo root: ``.venv/bin/python bench/scale.py`` (about two minutes on 2 cores).

``--mlflow PYTHON`` also logs the same points with MLflow's ``log_batch`` to a local tracking
server, using the Python of an environment where ``mlflow`` is installed (it is not a
dependency of Fitboard).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _stack  # noqa: E402

EXPERIMENTS = 10_000
BIG_RUN_POINTS = 1_000_000  # per metric
BIG_RUN_METRICS = ("loss", "lr", "grad_norm")
CHUNK = 5_000  # points per stored chunk: a 100 ms flush of a loop logging 50,000 points/s
COMPARE_RUNS, COMPARE_POINTS = 20, 100_000
INGEST_STEPS = 100_000  # steps of 3 metrics logged through the reporter
REPEATS = 5  # timed requests per figure (median reported)
TARGETS = {"list": 0.300, "data": 0.500, "data_bytes": 300_000, "compare": 1.0,
           "ingest": 50_000}


def timed(call: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    """Median seconds of ``call`` over ``repeats`` runs after one warm-up, and its last result."""
    result = call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def verdict(value: float, target: float, lower_is_better: bool = True) -> str:
    met = value <= target if lower_is_better else value >= target
    return "met" if met else "NOT met"


def make_experiments(user: Any, project: Any, count: int) -> None:
    """``count`` finished-looking runs with varied specs, statuses, verdicts and best metrics."""
    from training.spec import ExperimentSpec
    from webapp.experiments.models import Experiment, Tag

    rng = random.Random(0)
    specs = [ExperimentSpec().patched(p).to_dict() for p in (
        {}, {"model": {"arch": "mlp"}}, {"data": {"dataset": "wine"}, "model": {"arch": "mlp"}},
    )]
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "running", "queued"]
    verdicts = ["healthy", "overfitting", "underfitting", "diverging", "slow", ""]
    rows = [Experiment(
        project=project, name=f"run {i:05d}", spec=rng.choice(specs), created_by=user,
        status=rng.choice(statuses), verdict_kind=rng.choice(verdicts),
        best_metric_name="val_acc", best_metric_value=rng.random(),
        progress={"epoch": 15, "epochs": 15, "parameters": 12_345},
        summary={"epochs": 15, "best_metrics": {"val_acc": 0.9}},
    ) for i in range(count)]
    Experiment.objects.bulk_create(rows, batch_size=2000)
    tag = Tag.objects.create(name="sweep")
    tag.experiments.add(*Experiment.objects.filter(project=project).values_list("pk", flat=True)[
        : count // 10])


def store_points(experiment_id: int, keys: tuple[str, ...], points: int) -> float:
    """Write ``points`` per metric in ``CHUNK``-point batches; seconds it took."""
    import numpy as np

    from webapp.experiments import metric_store

    rng = np.random.default_rng(experiment_id)
    start = time.perf_counter()
    for first in range(0, points, CHUNK):
        steps = np.arange(first + 1, min(first + CHUNK, points) + 1)
        batch = {}
        for key in keys:
            values = np.exp(-steps / points * 3) + rng.normal(0, 0.05, len(steps))
            batch[key] = list(zip(steps.tolist(), values.tolist(),
                                  (1.7e9 + steps * 0.002).tolist(), strict=True))
        metric_store.append(experiment_id, batch)
    return time.perf_counter() - start


def store_epochs(experiment_id: int, steps: int, per_epoch: int = 1000) -> None:
    """The "epoch" points the loop logs at the last step of each epoch."""
    from webapp.experiments import metric_store

    ends = range(per_epoch, steps + 1, per_epoch)
    metric_store.append(experiment_id, {
        "epoch": [(step, step / per_epoch, 1.7e9 + step * 0.002) for step in ends]})


def bench_list(client: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    print(f"list page, {EXPERIMENTS:,} experiments (50 per page), server time, median of "
          f"{REPEATS}:")
    for label, query in (("newest first", {}), ("page 100", {"page": 100}),
                         ("filtered + sorted by best metric",
                          {"status": "succeeded", "dataset": "digits", "sort": "best-high"}),
                         ("tag filter", {"tag": "sweep"}), ("name search", {"q": "run 0999"})):
        seconds, response = timed(lambda q=query: client.get("/", q))
        assert response.status_code == 200, response.status_code
        with CaptureQueriesContext(connection) as queries:
            client.get("/", query)
        print(f"  {label:<34} {seconds * 1000:7.1f} ms  {len(queries):>2} queries  "
              f"(target <= {TARGETS['list'] * 1000:.0f} ms: {verdict(seconds, TARGETS['list'])})")


def bench_big_run(client: Any, experiment_id: int) -> None:
    url = f"/experiments/{experiment_id}/metrics/"
    print(f"run data endpoint, one run of {BIG_RUN_POINTS:,} points x {len(BIG_RUN_METRICS)} "
          f"metrics ({CHUNK:,}-point chunks):")
    cases = (("whole run (bucketed)", {}),
             ("zoom: 1,500 steps (full resolution)", {"x0": 500_000, "x1": 501_499}),
             ("zoom: 100,000 steps (bucketed)", {"x0": 200_000, "x1": 299_999}))
    for label, query in cases:
        seconds, response = timed(lambda q=query: client.get(url, q))
        body = response.content
        metrics = json.loads(body)["metrics"]
        points = max(len(m["steps"]) for m in metrics.values())
        line = (f"  {label:<38} {seconds * 1000:7.1f} ms  {len(body) / 1000:6.0f} KB  "
                f"<= {points:,} points per trace")
        if not query:
            line += (f"  (targets <= {TARGETS['data'] * 1000:.0f} ms: "
                     f"{verdict(seconds, TARGETS['data'])}; <= {TARGETS['data_bytes'] // 1000} "
                     f"KB: {verdict(len(body), TARGETS['data_bytes'])})")
        print(line)


def bench_compare(client: Any, ids: list[int]) -> None:
    query = {"ids": ",".join(map(str, ids)), "key": "loss"}
    print(f"compare, {len(ids)} runs x {COMPARE_POINTS:,} points:")
    for label, extra in (("data, x = step", {"x": "step"}), ("data, x = epoch", {"x": "epoch"}),
                         ("data, x = wall time", {"x": "time"}),
                         ("data, zoom 1,000 steps", {"x": "step", "x0": 50_000, "x1": 50_999})):
        seconds, response = timed(lambda e=extra: client.get("/compare/data/", {**query, **e}))
        assert response.status_code == 200, response.content[:200]
        target = (f"  (target <= {TARGETS['compare']:.0f} s: "
                  f"{verdict(seconds, TARGETS['compare'])})") if extra == {"x": "step"} else ""
        print(f"  {label:<38} {seconds * 1000:7.1f} ms  {len(response.content) / 1000:6.0f} KB"
              f"{target}")
    seconds, response = timed(lambda: client.get("/compare/", {"ids": query["ids"]}))
    print(f"  {'page (tables)':<38} {seconds * 1000:7.1f} ms")


def bench_ingest(user: Any, project: Any, scratch: Path) -> float:
    """Points per second through a real DjangoReporter, from the first log() to close()."""
    from training.spec import ExperimentSpec
    from webapp.experiments.reporting import DjangoReporter

    experiment = _stack.running_experiment(user, project, "ingest", ExperimentSpec().to_dict())
    reporter = DjangoReporter(experiment)
    start = time.perf_counter()
    for step in range(1, INGEST_STEPS + 1):
        reporter.log(step, {"loss": 1.0 / step, "lr": 1e-3, "grad_norm": 0.5})
    logged = time.perf_counter() - start
    reporter.close()
    seconds = time.perf_counter() - start
    rate = INGEST_STEPS * 3 / seconds
    print(f"ingestion, {INGEST_STEPS:,} steps x 3 metrics through DjangoReporter (SQLite, "
          f"nobody watching):")
    print(f"  {rate:12,.0f} points/s  ({seconds:.2f} s; the training thread spent "
          f"{logged:.2f} s in log())  (target >= {TARGETS['ingest']:,}: "
          f"{verdict(rate, TARGETS['ingest'], lower_is_better=False)})")
    baseline = row_per_point_rate(scratch / "rows.sqlite3")
    print(f"  {baseline:12,.0f} points/s  baseline: one row per point (MLflow's layout) in "
          f"SQLite, executemany in 1,000-point batches  -> ratio {rate / baseline:.1f}x")
    return rate


def row_per_point_rate(path: Path) -> float:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metrics (run_uuid TEXT, key TEXT, value REAL, timestamp INTEGER, "
               "step INTEGER, PRIMARY KEY (run_uuid, key, timestamp, step, value))")
    start = time.perf_counter()
    batch = []
    for step in range(1, INGEST_STEPS + 1):
        now = int(time.time() * 1000)
        for key, value in (("loss", 1.0 / step), ("lr", 1e-3), ("grad_norm", 0.5)):
            batch.append(("run", key, value, now, step))
        if len(batch) >= 1000:
            with db:
                db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", batch)
            batch = []
    with db:
        db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", batch)
    seconds = time.perf_counter() - start
    db.close()
    return INGEST_STEPS * 3 / seconds


MLFLOW_SCRIPT = textwrap.dedent("""
    import sys, time, mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    client = MlflowClient(sys.argv[1])
    run = client.create_run(client.create_experiment("bench"))
    steps = int(sys.argv[2])
    start = time.perf_counter()
    batch = []
    for step in range(1, steps + 1):
        now = int(time.time() * 1000)
        for key, value in (("loss", 1.0 / step), ("lr", 1e-3), ("grad_norm", 0.5)):
            batch.append(Metric(key, value, now, step))
        if len(batch) >= 1000:  # log_batch takes at most 1,000 metrics per call
            client.log_batch(run.info.run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run.info.run_id, metrics=batch)
    print(steps * 3 / (time.perf_counter() - start))
""")


def mlflow_rate(python: str, scratch: Path, steps: int) -> float:
    """Points per second logged with MlflowClient.log_batch to a local ``mlflow server``
    (SQLite backend store) started for the bench."""
    port = _stack.free_port()
    server = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{scratch / 'mlflow.db'}",
         "--default-artifact-root", str(scratch / "mlruns"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _stack.wait_for_port(port, 120, server)
        out = subprocess.run([python, "-c", MLFLOW_SCRIPT, f"http://127.0.0.1:{port}",
                              str(steps)], capture_output=True, text=True, check=True,
                             timeout=900)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        _stack.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlflow", metavar="PYTHON",
                        help="a Python with mlflow installed, to log the same points to MLflow")
    parser.add_argument("--mlflow-steps", type=int, default=20_000,
                        help="steps (x 3 metrics) for MLflow; it is slow")
    args = parser.parse_args()
    with _stack.Stack() as stack:
        stack.configure()
        _stack.setup_django(migrate=True)
        from django.test import Client

        from training.spec import ExperimentSpec
        from webapp.experiments.models import Experiment

        user, project = _stack.bench_user_and_project()
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)

        start = time.perf_counter()
        make_experiments(user, project, EXPERIMENTS - 1 - COMPARE_RUNS)
        spec = ExperimentSpec().to_dict()
        big = _stack.running_experiment(user, project, "big run", spec)
        write_big = store_points(big.pk, BIG_RUN_METRICS, BIG_RUN_POINTS)
        compared = [_stack.running_experiment(user, project, f"compared {i}", spec).pk
                    for i in range(COMPARE_RUNS)]
        for pk in compared:
            store_points(pk, ("loss",), COMPARE_POINTS)
            store_epochs(pk, COMPARE_POINTS)
        print(f"setup: {Experiment.objects.count():,} experiments, "
              f"{BIG_RUN_POINTS * len(BIG_RUN_METRICS):,} points in one run (stored in "
              f"{write_big:.1f} s), {COMPARE_RUNS} x {COMPARE_POINTS:,} points to compare; "
              f"{time.perf_counter() - start:.0f} s")
        bench_list(client)
        bench_big_run(client, big.pk)
        bench_compare(client, compared)
        rate = bench_ingest(user, project, stack.scratch)
        if args.mlflow:
            mlflow = mlflow_rate(args.mlflow, stack.scratch, args.mlflow_steps)
            print(f"  {mlflow:12,.0f} points/s  MLflow log_batch to a local tracking server "
                  f"(SQLite store, {args.mlflow_steps:,} steps)  -> ratio {rate / mlflow:.0f}x")


if __name__ == "__main__":
    main()
