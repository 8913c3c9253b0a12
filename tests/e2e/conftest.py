"""The real stack for end-to-end tests: ``manage.py up`` (migrate, Redis unless REDIS_URL, two
Celery workers, the notifications worker, Daphne) on a free port, with its own database and
media folder. Its training workers take the ``gpu`` and ``default`` queues only: the CPU queues
are left to the workers a test starts itself (``Stack.start_worker``), so its jobs land where it
expects."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "e2e-password-123"


@dataclass
class Stack:
    url: str
    var_dir: Path
    log: Path
    env: dict[str, str]  # the environment ``manage.py up`` got (its workers get the same)

    def start_worker(self, name: str, queues: str, log: Path) -> subprocess.Popen[bytes]:
        """One more Celery worker on this stack's database, Redis and media folder, started
        the way ``up`` starts its own (its children must not die: ``up`` would stop)."""
        from webapp.experiments.management.commands.up import worker_command

        with log.open("wb") as out:
            return subprocess.Popen(worker_command(name, queues), cwd=ROOT, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)

    def login(self) -> requests.Session:
        """A logged-in HTTP session for the first user, going through the real login form."""
        session = requests.Session()
        session.get(f"{self.url}/accounts/login/", timeout=10).raise_for_status()
        response = session.post(
            f"{self.url}/accounts/login/",
            data={"username": "admin", "password": PASSWORD,
                  "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            headers={"Referer": f"{self.url}/accounts/login/"},
            timeout=10,
        )
        response.raise_for_status()
        assert "sessionid" in session.cookies, "login failed"
        return session

    def post_form(self, session: requests.Session, path: str, data: dict[str, object]
                  ) -> requests.Response:
        page = session.get(f"{self.url}{path}", timeout=10)
        page.raise_for_status()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        return session.post(
            f"{self.url}{path}", data={**data, "csrfmiddlewaretoken": token.group(1)},
            headers={"Referer": f"{self.url}{path}"}, timeout=30,
        )


def database_url(tmp: Path) -> tuple[str, str | None]:
    """SQLite in ``tmp``, or a fresh PostgreSQL database when DATABASE_URL is PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{tmp / 'e2e.sqlite3'}", None
    import psycopg

    name = f"fitboard_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@contextlib.contextmanager
def running_stack(tmp: Path, workers: int = 2, **extra_env: str) -> Iterator[Stack]:
    """``manage.py up`` with ``workers`` training workers in ``tmp`` until the block ends. Its
    broker and channel keys carry a prefix of its own, so that two stacks (or a stack and the
    test session) share one Redis without taking each other's tasks."""
    port = free_port()
    db_url, db_name = database_url(tmp)
    env = {
        **os.environ,
        "FITBOARD_VAR_DIR": str(tmp / "var"),
        "DATABASE_URL": db_url,
        "FITBOARD_ADMIN_PASSWORD": PASSWORD,
        "FITBOARD_CHANNEL_PREFIX": f"e2e{port}",
        "FITBOARD_BROKER_PREFIX": f"e2e{port}:",
        "FITBOARD_TORCH_THREADS": "1",
        # A killed worker's trial is found within seconds (two missed beats, then a watchdog).
        "FITBOARD_TRIAL_HEARTBEAT_S": "2",
        "FITBOARD_STUDY_WATCHDOG_S": "2",
        # A killed script's external run is failed within seconds (tests/e2e/test_native_client).
        "FITBOARD_EXTERNAL_HEARTBEAT_S": "8",
        "FITBOARD_HOUSEKEEPING_INTERVAL_MS": "1000",
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        **extra_env,
    }
    log = tmp / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(port), "--no-demo",
             "--workers", str(workers), "--queues", "gpu,default"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Fitboard is running" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "manage.py up did not start in 120 s"
            time.sleep(0.2)
        yield Stack(url=f"http://127.0.0.1:{port}", var_dir=tmp / "var", log=log, env=env)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        if db_name:
            drop_database(db_name)
