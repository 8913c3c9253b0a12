"""Scaling out with real processes: jobs routed by what they need to the worker whose queues
fit, and one run trained by two gloo processes (torchrun, DistributedDataParallel) through a
real Celery worker on the CPU, exactly as it would on two GPUs with NCCL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Stack
from tests.e2e.test_live_run import Watcher, submit
from tests.e2e.test_tuning_study import wait_until_ended
from training.checkpoints import load
from training.distributed import parameter_digest

pytestmark = pytest.mark.e2e
StartWorker = Callable[[str, str], subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(stack: Stack, tmp_path: Path) -> Iterator[StartWorker]:
    """Start Celery workers on the stack (``name``, ``queues``); all stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, queues: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name.split('@')[0]}.log"
        started.append(stack.start_worker(name, queues, log))
        return started[-1]

    yield start
    for worker in started:
        worker.terminate()
    for worker in started:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def worker_of(stack: Stack, session: requests.Session, run_id: int) -> str:
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    found = re.search(r'id="placement-worker">([^<]*)<', page)
    assert found is not None, page[:2000]
    return found.group(1)


def test_each_job_lands_on_the_worker_whose_queue_fits_it(stack, start_worker):
    # given, beside the stack's own workers (queues gpu and default), a CPU-only worker and
    # a worker for two-device runs
    start_worker("cpu-only@%h", "cpu")
    start_worker("two-devices@%h", "gpu.2")
    session = stack.login()
    small = {"dataset": "iris", "arch": "mlp", "hidden_sizes": "16", "epochs": 2}

    # when a CPU run, a one-device run and a two-device run are submitted
    cpu_run = submit(stack, session, "cpu run", device="cpu", **small)
    gpu_run = submit(stack, session, "one device", **small)
    pair_run = submit(stack, session, "two devices", devices=2, **small)
    for run_id in (cpu_run, gpu_run, pair_run):
        page = wait_until_ended(session, f"{stack.url}/experiments/{run_id}/", timeout=240)
        assert 'id="status-badge">succeeded<' in page, re.findall(r'class="error">([^<]*)', page)

    # then each ran on the worker that consumes its queue, and only there
    assert worker_of(stack, session, cpu_run).startswith("cpu-only@")
    assert worker_of(stack, session, pair_run).startswith("two-devices@")
    assert worker_of(stack, session, gpu_run).startswith("worker-")  # the stack's own


def test_a_run_on_two_processes_trains_identical_replicas_reports_once_and_loads_anywhere(
        stack, start_worker, tmp_path):
    # given a CPU worker and a digits MLP asking for 2 devices on the CPU (gloo)
    start_worker("ddp@%h", "cpu")
    session = stack.login()
    epochs = 3
    run_id = submit(stack, session, "two gloo ranks", dataset="digits", arch="mlp",
                    hidden_sizes="32", epochs=epochs, device="cpu", devices=2)
    watcher = Watcher(stack, session, run_id)

    # when it runs to the end, watched live
    asyncio.run(watcher.watch(timeout=300))

    # then it succeeded on two processes of that worker
    final = watcher.messages[-1][1]
    assert final["status"] == "succeeded", final.get("error")
    assert final["summary"]["devices"] == 2
    assert worker_of(stack, session, run_id).startswith("ddp@")

    # and both ranks ended with the same parameters
    ranks = stack.var_dir / "media" / "runs" / str(run_id) / "ranks"
    digests = {p.name: p.read_text() for p in ranks.glob("params-*.sha256")}
    assert sorted(digests) == ["params-0.sha256", "params-1.sha256"]
    assert len(set(digests.values())) == 1

    # and each step's loss was reported once (by rank 0): 1437 training rows split over two
    # ranks are 719 each, 12 batches of 64 per epoch
    total = epochs * 12
    live = [step for _, step in watcher.live_points("loss")]
    assert len(live) == len(set(live)), "a step was reported twice"
    assert watcher.drawn_steps("loss") == list(range(1, total + 1))
    assert final["summary"]["steps"] == total

    # and the last checkpoint loads in this single process and holds the ranks' parameters
    archive = session.get(f"{stack.url}/experiments/{run_id}/checkpoint/last/", timeout=30)
    assert archive.status_code == 200
    path = tmp_path / "last.zip"
    path.write_bytes(archive.content)
    checkpoint = load(path)
    assert parameter_digest(checkpoint.model) == digests["params-0.sha256"]
    assert checkpoint.meta["epoch"] == epochs


def test_cancelling_a_two_process_run_stops_every_rank(stack, start_worker):
    start_worker("ddp-cancel@%h", "cpu")
    session = stack.login()
    run_id = submit(stack, session, "cancel both ranks", dataset="digits", arch="mlp",
                    hidden_sizes="32", epochs=500, device="cpu", devices=2)
    watcher = Watcher(stack, session, run_id)
    cancelled: list[float] = []

    async def cancel_after_an_epoch(message: dict[str, object]) -> None:
        points = message["points"]
        assert isinstance(points, dict)
        if not cancelled and "val_acc" in points:
            cancelled.append(time.monotonic())
            from tests.e2e.test_live_run import cancel

            response = await asyncio.to_thread(cancel, stack, session, run_id)
            assert response.status_code == 200

    asyncio.run(watcher.watch(timeout=240, on_points=cancel_after_an_epoch))

    # then the whole group stopped (the job ended, so torchrun's processes all returned)
    assert watcher.messages[-1][1]["status"] == "cancelled"
    ranks = stack.var_dir / "media" / "runs" / str(run_id) / "ranks"
    assert len(list(ranks.glob("params-*.sha256"))) == 2
