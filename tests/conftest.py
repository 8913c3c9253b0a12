"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The offline data sets, found by tests/stack.py (loaded before Django) and inherited by the
# worker processes of the end-to-end tests; the bundled pretrained model never reaches the hub.
DATA_DIR = Path(os.environ["FITBOARD_DATA_DIR"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _live_server_answers_at_once() -> None:
    """Django's test server (pytest-django's ``live_server``, which the real mlflow client logs
    to) writes a response's headers and body apart; with Nagle's algorithm the body waited for
    the client's delayed acknowledgement, 40 ms, so every request took about 55 ms against a
    real server's few (Daphne, as Fitboard runs, sends at once)."""
    from django.core.servers.basehttp import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    """Passwords hashed with 1,000 PBKDF2 iterations instead of Django's 1,000,000, which take
    0.7 s on this machine for every user a test creates and every login (Django's advice for
    test suites). The algorithm is the same, so the end-to-end stacks' servers, on production
    settings, check these hashes as they are (and upgrade them on login)."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.hashers.QuickPBKDF2PasswordHasher"]):
        yield


@pytest.fixture
def one_rate_window() -> None:
    """Starts the test with 10 s or more of the minute left: the request limits
    (``webapp.ratelimit``) count per minute, and a test's requests must fall in one minute
    for its counts to be known."""
    from webapp import ratelimit  # here: Django's settings are not configured at collection

    if ratelimit.seconds_to_next_window() < 10:
        time.sleep(ratelimit.seconds_to_next_window() + 0.1)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for a run's checkpoints."""
    path = tmp_path / "run"
    path.mkdir()
    return path


# The example plugin package (packages/fitboard-example-plugin), installed by `make test`.
EXAMPLE_PACKAGE = "fitboard-example-plugin"
EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "packages" / "fitboard-example-plugin" / "src"


# The storage quota of the ``media`` fixture, in bytes per user: a few small files fill it.
STORAGE_QUOTA = 1000


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    """Storage in a folder of the test's own, and a quota of STORAGE_QUOTA bytes per user,
    each file counting as its bytes (a file's least charge is tested on its own)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "media"}}}
    settings.FITBOARD_STORAGE_QUOTA_BYTES = STORAGE_QUOTA
    settings.FITBOARD_STORAGE_BYTES_PER_FILE = 0
    return tmp_path / "media"


@pytest.fixture
def uninstalled_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin as if uninstalled in this process: the one discovery function
    (``fitboard_model.plugins.discover``) no longer lists its entry points."""
    from fitboard_model import plugins

    found = plugins.discover

    def without_example(group: str) -> dict:
        return {name: point for name, point in found(group).items()
                if plugins.distribution(point)[0] != EXAMPLE_PACKAGE}

    monkeypatch.setattr(plugins, "discover", without_example)



@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, whose teardown first ends the PostgreSQL sessions that
    threads of the tests left open (kept ASGI request threads, asgiref's executors):
    PostgreSQL refuses to drop a database in use, and the next run would find it."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")
