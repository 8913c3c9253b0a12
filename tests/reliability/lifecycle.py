"""What the job-lifecycle tests share: a project to put jobs in, small training specs, and a
watch on a job's stored points that counts (run, metric, step) rows stored twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from training.spec import ExperimentSpec
from webapp.experiments import actions, metric_store
from webapp.experiments.models import Experiment
from webapp.projects.models import Project


def project() -> tuple[User, Project]:
    user = User.objects.create_user("reliability", password="reliability-pass-123")
    group = Project.objects.create(name="reliability")
    group.members.add(user)
    return user, group


def digits_mlp(epochs: int, batch_size: int, seed: int = 0) -> ExperimentSpec:
    """An MLP on sklearn's digits (1437 training rows): cheap steps, on the CPU."""
    return ExperimentSpec().patched({
        "data": {"dataset": "digits"},
        "model": {"arch": "mlp", "hidden_sizes": [32]},
        "run": {"epochs": epochs, "batch_size": batch_size, "seed": seed, "device": "cpu"},
    })


def submit(owner: tuple[User, Project], name: str, spec: ExperimentSpec) -> Experiment:
    """Store a queued job and send its message, as the "new run" form does."""
    return actions.create_experiment(owner[0], owner[1], name, spec)


def workdir(job: Experiment) -> Path:
    return Path(settings.MEDIA_ROOT) / "runs" / str(job.pk)


def status(job: Experiment) -> str:
    return str(Experiment.objects.filter(pk=job.pk).values_list("status", flat=True).get())


def total_steps(spec: ExperimentSpec) -> int:
    from training.data import prepare
    from training.loop import batch_starts

    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    return (len(batch_starts(len(data.x_train), spec.run.batch_size)) - 1) * spec.run.epochs


class DuplicateWatch:
    """Counts, over and over while a job runs, the points stored more than once; ``worst`` is
    the most seen at any moment (a job's points are compacted when it ends, which would hide
    them afterwards)."""

    def __init__(self, jobs: list[Experiment]) -> None:
        self.ids = [job.pk for job in jobs]
        self.worst = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DuplicateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        try:
            while not self._stop.wait(0.05):
                for pk in self.ids:
                    self.worst = max(self.worst, metric_store.duplicates(pk))
        finally:
            connection.close()
