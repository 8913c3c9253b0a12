"""``manage.py up``: migrate, create the first user, start Redis (bundled, unless REDIS_URL is
set), Celery workers (FITBOARD_UP_WORKERS, and one for notifications) and the ASGI server as
child processes, seed a demo; print the banner once the URL answers; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from webapp.env import env_int, env_str
from webapp.experiments.bootstrap import ensure_admin
from webapp.experiments.launch import (
    Children,
    free_port,
    notify_plan,
    wait_for_url,
    worker_command,
    worker_memory,
    worker_threads,
    workers_line,
)
from webapp.experiments.models import Experiment

__all__ = ["Command", "free_port", "worker_command"]


class Command(BaseCommand):
    help = ("Start Fitboard: database, Redis, workers (FITBOARD_UP_WORKERS, and one for "
            "notifications), the web server and a demo run.")

    def add_arguments(self, parser: CommandParser) -> None:
        # Read by the settings' parsers: empty is the default, a bad value names the variable.
        parser.add_argument("--host", default=env_str("FITBOARD_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000, minimum=1))
        parser.add_argument("--no-demo", action="store_true", help="do not queue the demo run")
        parser.add_argument("--workers", type=int, default=settings.FITBOARD_UP_WORKERS,
                            help="Celery worker processes, one job each (default: "
                                 "FITBOARD_UP_WORKERS, from the cores and memory)")
        parser.add_argument("--queues", default="gpu,cpu,default",
                            help="the queues those workers consume (see manage.py worker)")

    def handle(self, *args: Any, **options: Any) -> None:
        self.children = Children()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self.serve(options["host"], options["port"], not options["no_demo"],
                       max(1, options["workers"]), options["queues"])
        except KeyboardInterrupt:
            pass
        finally:
            self.children.stop()

    def serve(self, host: str, port: int, demo: bool, workers: int = 1,
              queues: str = "gpu,cpu,default") -> None:
        call_command("migrate", interactive=False, verbosity=0)
        user, password = ensure_admin()
        env = dict(os.environ)
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = self.children.start_bundled_redis()
        env["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
        python, manage = sys.executable, str(Path(settings.BASE_DIR) / "manage.py")
        worker_env = {**env, **worker_threads(workers), **worker_memory(workers)}
        for index in range(workers):
            self.children.spawn(worker_command(f"worker-{os.getpid()}-{index}@%h", queues),
                                worker_env, restart=True)
        notify = notify_plan(f"{os.getpid()}-", queues.split(","))
        if notify is not None:
            self.children.spawn(notify.command(), worker_env, restart=True)
        server = self.children.spawn([python, "-m", "webapp.serve", "-b", host, "-p", str(port),
                                      "webapp.asgi:application"], env)
        url = f"http://{host}:{port}/"
        # The banner is a promise that the URL works: wait for an HTTP answer, not a port.
        wait_for_url(f"{url}accounts/login/", 60, server)
        if demo and not Experiment.objects.exists():
            subprocess.run([python, manage, "demo"], env=env, check=True)
        self.stdout.write(self.style.SUCCESS(f"\nFitboard is running at {url}"))
        self.stdout.write(workers_line(workers, worker_env.get("FITBOARD_TORCH_THREADS")))
        if notify is not None:
            self.stdout.write(f"Notifications: a worker of their own on the {notify.queues[0]} "
                              f"queue, {notify.concurrency} deliveries at once.")
        if password is not None:
            self.stdout.write(f"Log in as '{user.username}' with password: {password}")
            self.stdout.write("(shown once; set FITBOARD_ADMIN_PASSWORD to choose it)")
        else:
            self.stdout.write(f"Log in as '{user.username}'.")
        self.stdout.write("Press Ctrl-C to stop.\n")
        self.stdout.flush()
        self.children.watch()
