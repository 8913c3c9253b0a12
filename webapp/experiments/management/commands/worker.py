"""``manage.py worker``: one Celery worker process per visible GPU (each pinned to it with
CUDA_VISIBLE_DEVICES, its own node name, ``-P solo``), or one CPU worker on a machine without a
GPU, and a worker of threads for notifications (``launch.notify_plan``); Ctrl-C stops them all.
Point a machine at the head node with DATABASE_URL, REDIS_URL and the storage variables
(docs/deploy.md, "Several machines")."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.experiments.launch import (
    Children,
    WorkerPlan,
    notify_plan,
    parse_gpus,
    plan_workers,
    visible_gpus,
    worker_memory,
)


class Command(BaseCommand):
    help = "Start Celery workers: one per GPU (or one on the CPU), consuming the queues they fit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gpus", default=None,
                            help="device indices to use, e.g. 0,2, or 'none' for a CPU worker "
                                 "(default: every visible GPU)")
        parser.add_argument("--gpus-per-worker", type=int, default=1,
                            help="GPUs each worker holds: 2 makes workers for 2-GPU runs")
        parser.add_argument("--queues", default=None,
                            help="comma-separated queues for every worker (default: by its GPUs)")
        parser.add_argument("--name", default="",
                            help="node name prefix, to run several of these on one host")
        notify = parser.add_mutually_exclusive_group()
        notify.add_argument("--no-notify", action="store_true",
                            help="start no notifications worker (another machine's delivers)")
        notify.add_argument("--notify-only", action="store_true",
                            help="start the notifications worker alone (FITBOARD_NOTIFY_QUEUE)")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the workers that would start, and stop")

    def handle(self, *args: Any, **options: Any) -> None:
        gpus = visible_gpus() if options["gpus"] is None else parse_gpus(options["gpus"])
        queues = options["queues"].split(",") if options["queues"] else None
        training = ([] if options["notify_only"]
                    else plan_workers(gpus, options["gpus_per_worker"], options["name"], queues))
        plans = training + self.notify_plans(options, training)
        for plan in plans:
            where = f"GPU {','.join(map(str, plan.gpus))}" if plan.gpus else "CPU"
            pool = f", {plan.concurrency} threads" if plan.pool == "threads" else ""
            self.stdout.write(f"{plan.name}: {where}, queues {','.join(plan.queues)}{pool}")
        if options["dry_run"]:
            return
        children = Children()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings",
               **worker_memory(max(1, len(training)))}
        try:
            for plan in plans:
                children.spawn(plan.command(), plan.env(env), restart=True)
            children.watch()
        except KeyboardInterrupt:
            pass
        finally:
            children.stop()

    def notify_plans(self, options: dict[str, Any], training: list[WorkerPlan]
                     ) -> list[WorkerPlan]:
        if options["no_notify"]:
            return []
        plan = notify_plan(options["name"], [q for p in training for q in p.queues])
        if plan is None and options["notify_only"]:
            raise CommandError(f"FITBOARD_NOTIFY_QUEUE is {settings.FITBOARD_NOTIFY_QUEUE!r}, "
                               "a training queue: the training workers deliver notifications "
                               "and there is no notifications worker to start")
        return [plan] if plan is not None else []
