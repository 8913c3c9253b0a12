"""The unmodified ``mlflow`` client against Fitboard at the scale of a demanding user: what the
tests in tests/tracking/test_mlflow_paging.py check at a small one.

1. One run of 100,000 points of ``train/loss`` (``log_batch``, 1000 a call), then
   ``MlflowClient().get_metric_history`` (the client reads 25,000 a page): seconds, and whether
   every point came back exactly.
2. A 200 MB artifact up (``log_artifact``) and down (``download_artifacts``): seconds, and the
   web process's resident memory at its peak over each, against before (psutil, sampled every
   20 ms). The web process is ``python -m webapp.serve`` as ``manage.py up`` starts it.
3. 1,200 runs, each with a metric, two params and a tag, then every page of ``search_runs``
   (1,000 a page; 250 a page ordered by a metric): seconds.
4. A folder of 500 small files up (``log_artifacts``), listed and downloaded back.

Usage, from the repo root: ``.venv/bin/python bench/mlflow_scale.py`` (a few minutes). It
prints one JSON object of the figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _stack  # noqa: E402

POINTS = 100_000
ARTIFACT_MB = 200
RUNS = 1_200
FILES = 500


def start_fitboard(stack: _stack.Stack) -> tuple[str, int]:
    """``webapp.serve`` on a migrated scratch site; its URL and process id, the client's
    environment pointed at it with a token."""
    env = stack.configure()
    env["FITBOARD_API_RATE_PER_MIN"] = os.environ["FITBOARD_API_RATE_PER_MIN"] = "100000000"
    env["FITBOARD_MAX_EXTERNAL_RUNS_PER_HOUR"] = "100000"
    env["FITBOARD_UPLOAD_MAX_MB"] = str(ARTIFACT_MB + 10)
    _stack.setup_django(migrate=True)
    from webapp.tracking import tokens

    user, _ = _stack.bench_user_and_project()
    port = _stack.free_port()
    server = stack.spawn([sys.executable, "-m", "webapp.serve", "-b", "127.0.0.1", "-p",
                          str(port), "webapp.asgi:application"], "serve.log", cwd=_stack.REPO,
                         env=env)
    _stack.wait_for_port(port, 60, server)
    os.environ.update({"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
                       "MLFLOW_TRACKING_TOKEN": tokens.create_token(user, "b", "write", None)[1],
                       "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    return f"http://127.0.0.1:{port}", server.pid


@contextmanager
def peak_memory(pid: int) -> Iterator[dict[str, float]]:
    """The process's resident MB before the block and at its peak during it."""
    import psutil

    process, figures, done = psutil.Process(pid), {}, threading.Event()
    figures["before_mb"] = figures["peak_mb"] = process.memory_info().rss / 2**20

    def sample() -> None:
        while not done.wait(0.02):
            figures["peak_mb"] = max(figures["peak_mb"], process.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield figures
    finally:
        done.set()
        sampler.join()


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = work()
    return result, round(time.perf_counter() - start, 2)


def history() -> dict[str, Any]:
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        logged = [Metric("train/loss", 1 / (i + 1), 1_700_000_000_000 + i, i)
                  for i in range(POINTS)]
        _, log_s = timed(lambda: [client.log_batch(run.info.run_id, metrics=logged[i:i + 1000])
                                  for i in range(0, POINTS, 1000)])
    read, read_s = timed(lambda: client.get_metric_history(run.info.run_id, "train/loss"))
    exact = [(m.step, m.value, m.timestamp) for m in read] == [
        (m.step, m.value, m.timestamp) for m in logged]
    return {"points": POINTS, "log_s": log_s, "get_metric_history_s": read_s, "exact": exact}


def artifact(pid: int, scratch: Path) -> dict[str, Any]:
    import mlflow

    path = scratch / "weights.bin"
    with path.open("wb") as out:
        for _ in range(ARTIFACT_MB):
            out.write(os.urandom(2**20))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with mlflow.start_run() as run:
        with peak_memory(pid) as up:
            _, up_s = timed(lambda: mlflow.log_artifact(str(path), "model"))
    with peak_memory(pid) as down:
        back, down_s = timed(lambda: mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="model/weights.bin",
            dst_path=str(scratch / "back")))
    same = hashlib.sha256(Path(back).read_bytes()).hexdigest() == digest
    return {"mb": ARTIFACT_MB, "upload_s": up_s, "download_s": down_s, "same": same,
            "rss_before_upload_mb": round(up["before_mb"]),
            "rss_peak_upload_mb": round(up["peak_mb"]),
            "rss_before_download_mb": round(down["before_mb"]),
            "rss_peak_download_mb": round(down["peak_mb"])}


def search() -> dict[str, Any]:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient()
    experiment = mlflow.set_experiment("search-scale").experiment_id
    for i in range(RUNS):
        run = client.create_run(experiment, run_name=f"r{i:04d}")
        client.log_batch(run.info.run_id, [Metric("loss", (i * 7919) % 1201 / 1000, 0, 1)],
                         [Param("lr", str(i % 13 / 100)), Param("bs", str(16 << i % 4))],
                         [RunTag("group", f"g{i % 3}")])

    def every(**search: Any) -> int:
        found, token = 0, None
        while True:
            page = client.search_runs([experiment], page_token=token, **search)
            found, token = found + len(page), page.token
            if token is None:
                return found

    plain, plain_s = timed(every)
    ordered, ordered_s = timed(lambda: every(max_results=250, order_by=["metrics.loss DESC"]))
    return {"runs": RUNS, "all_pages_s": plain_s, "found": plain,
            "ordered_pages_s": ordered_s, "found_ordered": ordered}


def folder(scratch: Path) -> dict[str, Any]:
    import mlflow

    files = scratch / "plots"
    (files / "sub").mkdir(parents=True)
    for i in range(FILES):
        (files / ("sub" if i % 5 == 0 else "") / f"f{i:03d}.txt").write_text(f"file {i}\n")
    with mlflow.start_run() as run:
        _, up_s = timed(lambda: mlflow.log_artifacts(str(files), "plots"))
    listed = len(mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots"))
    back, down_s = timed(lambda: mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="plots", dst_path=str(scratch / "plots-back")))
    count = sum(len(names) for _, _, names in os.walk(back))
    return {"files": FILES, "upload_s": up_s, "listed_at_top": listed, "download_s": down_s,
            "downloaded": count}


def main() -> None:
    with _stack.Stack() as stack:
        _, pid = start_fitboard(stack)
        import mlflow

        mlflow.set_experiment("bench")
        figures = {"history": history(), "artifact": artifact(pid, stack.scratch),
                   "search": search(), "folder": folder(stack.scratch)}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
