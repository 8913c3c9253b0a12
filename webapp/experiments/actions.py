"""State changes behind the views: each atomic, with its events sent after commit."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from training.spec import ExperimentSpec
from webapp.experiments import events
from webapp.experiments.launch import queue_for
from webapp.experiments.models import Experiment, Project


def create_experiment(user: Any, project: Project, name: str, spec: ExperimentSpec,
                      parent: Experiment | None = None,
                      remedy: dict[str, Any] | None = None) -> Experiment:
    """Store a queued training run and enqueue it once the row is committed (``remedy``: the
    diagnostics remedy that made ``spec`` from ``parent``'s)."""
    from webapp.experiments.tasks import train

    with transaction.atomic():
        experiment = Experiment.objects.create(
            project=project, name=name, spec=spec.to_dict(), created_by=user, parent=parent,
            kind=Experiment.Kind.TRAIN, remedy=remedy or {},
        )
        queue = queue_for(spec)  # by what the run needs: cpu, gpu, gpu.N
        transaction.on_commit(lambda: train.apply_async((experiment.pk,), queue=queue))
        transaction.on_commit(lambda: events.publish_status(experiment))
    return experiment


def cancel_experiment(experiment: Experiment) -> bool:
    """Cancel a queued or running run (a study: with its trials); False when it had ended."""
    if experiment.kind == Experiment.Kind.TUNE:
        from webapp.experiments.tuning import cancel_study

        return cancel_study(experiment)
    if experiment.is_external:  # no worker to tell: its script is not ours to stop
        return experiment.finish(Experiment.Status.CANCELLED, error="cancelled by user")
    return experiment.request_cancel()


def annotate_experiment(experiment: Experiment, tags: list[str], notes: str) -> None:
    """Replace a run's tags and notes (tags are created on first use)."""
    from webapp.experiments.models import Tag

    with transaction.atomic():
        existing = {t.name: t for t in Tag.objects.filter(name__in=tags)}
        missing = [Tag(name=name) for name in tags if name not in existing]
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        rows = Tag.objects.filter(name__in=tags) if missing else existing.values()
        experiment.tags.set(list(rows))
        Experiment.objects.filter(pk=experiment.pk).update(notes=notes)
        experiment.notes = notes
