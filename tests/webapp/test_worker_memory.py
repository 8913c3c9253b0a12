"""A worker's memory (FITBOARD_WORKER_MEMORY_GB): a job that allocates past it fails with that
reason and the worker lives on. Without a cap, a CPU run within the spec's memory budget but
past the machine's memory was ended by the kernel's OOM killer, taking the worker (and under
``manage.py up``, every other process of the site) with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.spec import ExperimentSpec
from webapp import hardware
from webapp.experiments import launch
from webapp.experiments.jobs import failure_reason
from webapp.experiments.models import Experiment

ROOT = Path(__file__).resolve().parents[2]
# An MLP of 1.6e9 parameters on digits: 6.4 GB of weights, within the spec's 64 GB budget.
HUGE = {"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [40000, 40000]},
        "run": {"epochs": 1, "batch_size": 64, "device": "cpu"}}
CHILD = """
import json, sys
from webapp import hardware
hardware.limit_memory(2)
from training import ExperimentSpec, MemoryReporter, run
try:
    run(ExperimentSpec.from_dict(json.loads(sys.argv[1])), MemoryReporter())
    print(json.dumps({"error": None}))
except Exception as exc:
    print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
"""


@pytest.fixture(scope="module")
def capped_run() -> dict[str, str]:
    """What a 2 GB worker saw when it trained the huge MLP: it must live to say so."""
    answer = subprocess.run([sys.executable, "-c", CHILD, json.dumps(HUGE)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def test_a_run_past_the_workers_memory_fails_inside_the_worker(capped_run):
    # given the spec passes the memory budget (so it would be queued)
    ExperimentSpec.from_dict(HUGE)

    # then, on a worker capped at 2 GB, its allocation failed in the process, which went on
    assert capped_run["kind"] == "RuntimeError"
    assert "can't allocate memory" in capped_run["error"]


def test_the_job_fails_saying_it_ran_out_of_the_workers_memory(capped_run, settings, db):
    settings.FITBOARD_WORKER_MEMORY_GB = 2

    reason, nonfinite = failure_reason(RuntimeError(capped_run["error"]), Experiment())

    assert reason.startswith("out of memory: the job needed more than this worker's 2 GB")
    assert not nonfinite


def test_the_launchers_split_the_machines_memory_between_their_workers(monkeypatch):
    monkeypatch.delenv("FITBOARD_WORKER_MEMORY_GB", raising=False)
    monkeypatch.setattr(hardware, "memory_bytes", lambda: 100 * 10**9)
    monkeypatch.setattr(hardware, "gpu_memory", lambda: [])

    assert launch.worker_memory(4) == {"FITBOARD_WORKER_MEMORY_GB": "22"}  # 90 % / 4
    monkeypatch.setenv("FITBOARD_WORKER_MEMORY_GB", "7")
    assert launch.worker_memory(4) == {}  # the setting's own value stands


def test_workers_of_a_machine_with_a_gpu_are_not_capped_by_default():
    # the CUDA driver's own host mappings under the cap have not been measured
    assert hardware.worker_memory_gb(4, 100 * 10**9, gpus=1) == 0
    assert hardware.worker_memory_gb(4, 100 * 10**9, gpus=0) == 22


def test_a_worker_caps_itself_when_it_starts(monkeypatch, settings):
    from webapp import celery

    settings.FITBOARD_WORKER_MEMORY_GB = 12
    capped: list[int] = []
    monkeypatch.setattr(hardware, "limit_memory", capped.append)

    celery._limit_memory()  # what Celery's worker_init signal calls

    assert capped == [12]
    assert celery._limit_memory in [r() for _, r in celery.worker_init.receivers]
