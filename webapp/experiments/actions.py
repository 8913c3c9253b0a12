"""Every state change behind the views, in one place (Zulip's ``do_*`` shape): creating and
cancelling runs, studies (and promoting their best trial), remedies and compression jobs, and
annotating runs. Each is atomic, with its events (Channels messages, Celery enqueues) sent
after commit. Every action that queues jobs reserves them against their user's quota in its
transaction (``quota.reserve``: OverQuota, nothing stored, past the limit). Project membership
changes are the projects app's (``webapp.projects.actions``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.db import transaction

from training.compression.spec import CompressionSpec, job_spec_dict
from training.data.catalog import is_upload
from training.seeds import batch_problem, seed_specs, seeds_from
from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.datasets.services import DatasetUnavailable, resolve_version
from webapp.experiments import compression, enqueue, events, quota, tuning
from webapp.experiments.launch import queue_for
from webapp.experiments.models import Experiment, RunGroup, Tag, derived_name
from webapp.projects.models import Project


def create_experiment(user: Any, project: Project, name: str, spec: ExperimentSpec,
                      parent: Experiment | None = None,
                      remedy: dict[str, Any] | None = None) -> Experiment:
    """Store a queued training run and enqueue it once the row is committed (``remedy``: the
    diagnostics remedy that made ``spec`` from ``parent``'s). An uploaded data set's version 0
    (the latest) becomes the number it is now, so the run records what it trains on."""
    spec = with_data_version(spec, project)
    with transaction.atomic():
        quota.reserve(user, 1)
        experiment = Experiment.objects.create(
            project=project, name=name, spec=spec.to_dict(), created_by=user, parent=parent,
            kind=Experiment.Kind.TRAIN, remedy=remedy or {},
        )
        queue = queue_for(spec)  # by what the run needs: cpu, gpu, gpu.N
        transaction.on_commit(lambda: enqueue.send(enqueue.TRAIN, experiment.pk, queue))
        transaction.on_commit(lambda: events.publish_status(experiment))
    return experiment


def with_data_version(spec: ExperimentSpec, project: Project) -> ExperimentSpec:
    """``spec`` naming its uploaded data set's version: the latest for 0. A data set outside the
    project is left for the worker to refuse, as before versions."""
    try:
        number = resolve_version(spec.data.dataset, project, spec.data.version)
    except DatasetUnavailable:
        return spec
    if number == spec.data.version:
        return spec
    return dataclasses.replace(spec, data=dataclasses.replace(spec.data, version=number))


def cancel_experiment(experiment: Experiment) -> bool:
    """Cancel a queued or running run; False when it had ended. A study ends cancelled at once
    and tells its queued and running trials to stop."""
    if experiment.is_external:  # no worker to tell: its script is not ours to stop
        return experiment.finish(Experiment.Status.CANCELLED, error="cancelled by user")
    if experiment.kind != Experiment.Kind.TUNE:
        return experiment.request_cancel()
    with transaction.atomic():
        ended = experiment.finish(Experiment.Status.CANCELLED, error="cancelled by user")
        for trial in experiment.children.filter(
                kind=Experiment.Kind.TRIAL,
                status__in=(Experiment.Status.QUEUED, Experiment.Status.RUNNING)):
            trial.request_cancel()
    return ended


def annotate_experiment(experiment: Experiment, tags: list[str], notes: str) -> None:
    """Replace a run's tags and notes. A tag is made on first use and deleted once no run holds
    it: a member re-tagging a run in a loop added 20 rows a request, kept for good and counted
    in no quota. The tags it takes and drops are read under their row locks, taken in one
    order by every annotation, so a tag deleted here is not taken by another at once."""
    with transaction.atomic():
        held = set(experiment.tags.values_list("name", flat=True))
        locked = {t.name: t for t in Tag.objects.select_for_update().filter(
            name__in={*tags, *held}).order_by("name")}
        missing = [Tag(name=name) for name in tags if name not in locked]
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        rows = Tag.objects.filter(name__in=tags) if missing else [locked[n] for n in tags]
        experiment.tags.set(list(rows))
        dropped = [locked[name].pk for name in held - set(tags) if name in locked]
        Tag.objects.filter(pk__in=dropped, experiments=None).delete()
        Experiment.objects.filter(pk=experiment.pk).update(notes=notes)
        experiment.notes = notes


# Studies, remedies and compression jobs -----------------------------------------------------


def create_study(user: Any, project: Project, name: str, spec: TuningSpec,
                 source: Experiment | None = None) -> Experiment:
    """Store a queued study and enqueue its driver once the row is committed. Its base names
    the version of an uploaded data set it starts on, so every trial trains on the same one."""
    data = spec.base.get("data") or {}
    if is_upload(str(data.get("dataset", ""))) and not data.get("version"):
        base = with_data_version(ExperimentSpec.from_dict(spec.base), project)
        spec = dataclasses.replace(spec, base=base.to_dict())
    with transaction.atomic():
        quota.reserve(user, quota.study_jobs(spec.to_dict()))
        study = Experiment.objects.create(
            project=project, name=name, spec=spec.to_dict(), created_by=user, parent=source,
            kind=Experiment.Kind.TUNE,
            progress={"trials": 0, "budget": spec.trial_budget(), "finished": 0},
        )
        transaction.on_commit(lambda: enqueue.send(enqueue.TUNE, study.pk))
        transaction.on_commit(lambda: events.publish_status(study))
    return study


def promote_best(user: Any, study: Experiment, name: str) -> Experiment:
    """Queue a regular experiment with the best trial's configuration; ValueError if none."""
    best = tuning.best_trial(study)
    if best is None:
        raise ValueError("no trial has completed yet")
    return create_experiment(user, study.project, name, best.experiment_spec,
                              parent=best)


def apply_remedy(user: Any, source: Experiment, remedy: dict[str, Any], name: str) -> Experiment:
    """Queue a run of ``source``'s spec with the remedy's patch, as a child of ``source``."""
    spec = source.experiment_spec.patched(remedy["patch"])
    applied = {key: remedy[key] for key in ("key", "title", "patch")}
    return create_experiment(user, source.project, name, spec, parent=source, remedy=applied)


def create_compression(user: Any, source: Experiment, name: str,
                       spec: CompressionSpec) -> Experiment:
    """Validate and store a queued compression job as a child of ``source``; it is enqueued
    once the row is committed. Raises SpecError (nothing stored) when the job cannot run."""
    compression.check_job(source, spec)
    with transaction.atomic():
        quota.reserve(user, 1)
        job = Experiment.objects.create(
            project=source.project, name=name, kind=Experiment.Kind.COMPRESS, parent=source,
            spec=job_spec_dict(spec, source.experiment_spec), created_by=user,
        )
        transaction.on_commit(lambda: enqueue.send(enqueue.COMPRESS, job.pk))
        transaction.on_commit(lambda: events.publish_status(job))
    return job


# Repeats over seeds -------------------------------------------------------------------------


def reusable_runs(source: Experiment | None) -> list[Experiment]:
    """Runs whose seeds a repeat of ``source``'s spec need not train again: the source and
    the runs of its earlier repeats (unless they failed or were cancelled)."""
    if source is None:
        return []
    ended_badly = (Experiment.Status.FAILED, Experiment.Status.CANCELLED)
    earlier = Experiment.objects.filter(groups__source=source).exclude(status__in=ended_badly)
    runs = list(earlier.distinct())
    return runs if source.status in ended_badly else [source, *runs]


def create_repeat(user: Any, project: Project, name: str, spec: ExperimentSpec, count: int,
                  source: Experiment | None = None, seeds: list[int] | None = None,
                  remedy: dict[str, Any] | None = None,
                  baseline: RunGroup | None = None) -> RunGroup:
    """A group of ``spec`` over ``count`` seeds (``source``'s seed and the next ones, unless
    ``seeds`` are given): runs of ``source``'s spec already trained with one of the seeds are
    reused, the others are queued, together in one job when the engine can batch them
    (``training.seeds.batch_problem``), else one job each. When every seed is trained already
    and a group of them exists, that group. ValueError for a bad count."""
    limit = settings.FITBOARD_MAX_REPEATS
    if not 2 <= count <= limit:
        raise ValueError(f"repeat over 2 to {limit} seeds, not {count}")
    seeds = seeds or seeds_from(spec.run.seed, count)
    with transaction.atomic():
        done = {json_key(run.spec): run for run in reusable_runs(source)}
        planned = [(seed_spec, done.get(json_key(seed_spec.to_dict())))
                   for seed_spec in seed_specs(spec, seeds)]
        # A repeat that queues nothing passes any job quota: without this, pressing it again
        # and again piled up groups that every member's run and study pages list and read.
        if all(run is not None for _, run in planned) and (existing := _group_of(
                project, source, seeds, remedy or {}, baseline,
                {run.pk for _, run in planned if run is not None})) is not None:
            return existing
        quota.reserve(user, sum(run is None for _, run in planned))
        group = RunGroup.objects.create(
            project=project, name=name, spec=spec.to_dict(), seeds=seeds, source=source,
            baseline=baseline, remedy=remedy or {}, created_by=user)
        members, new = [], []
        for seed_spec, run in planned:
            if run is None:
                run = Experiment.objects.create(
                    project=project, name=derived_name(name, f" · seed {seed_spec.run.seed}"),
                    spec=seed_spec.to_dict(), created_by=user, parent=source,
                    kind=Experiment.Kind.TRAIN, remedy=remedy or {})
                new.append(run)
            members.append(run)
        group.runs.set(members)
        transaction.on_commit(lambda: enqueue_repeat(group, spec, new))
    return group


def _group_of(project: Project, source: Experiment | None, seeds: list[int],
              remedy: dict[str, Any], baseline: RunGroup | None,
              runs: set[int]) -> RunGroup | None:
    """The group of ``source`` over ``seeds`` (with ``remedy``, beside ``baseline``) that holds
    exactly the runs ``runs``, if one exists."""
    candidates = RunGroup.objects.filter(project=project, source=source, seeds=seeds,
                                         remedy=remedy, baseline=baseline
                                         ).prefetch_related("runs").order_by("pk")
    return next((group for group in candidates
                 if {run.pk for run in group.runs.all()} == runs), None)


def json_key(spec: dict[str, Any]) -> str:
    """A spec dict as comparable text (key order aside)."""
    import json

    return json.dumps(spec, sort_keys=True)


def enqueue_repeat(group: RunGroup, spec: ExperimentSpec, new: list[Experiment]) -> None:
    """Send a repeat's new runs: one job for them all when they can train together."""
    queue = queue_for(spec)
    if len(new) > 1 and batch_problem(spec, count=len(new)) is None:
        enqueue.send(enqueue.REPEAT, group.pk, queue)
    else:
        for run in new:
            enqueue.send(enqueue.TRAIN, run.pk, queue)
    for run in new:
        events.publish_status(run)


def verify_remedy(user: Any, source: Experiment, remedy: dict[str, Any],
                  count: int) -> RunGroup:
    """The remedy over ``count`` seeds beside the original over the same seeds (the source's
    seed among them, reused); returns the remedy's group, whose ``baseline`` is the original's."""
    spec = source.experiment_spec
    applied = {key: remedy[key] for key in ("key", "title", "patch")}
    with transaction.atomic():
        original = create_repeat(user, source.project, derived_name(source.name, f" ×{count}"),
                                 spec, count, source=source)
        return create_repeat(
            user, source.project, derived_name(source.name, f" · {remedy['title']} ×{count}"),
            spec.patched(remedy["patch"]), count, source=source, seeds=list(original.seeds),
            remedy=applied, baseline=original)


def check_best_trials(user: Any, study: Experiment, top: int, count: int) -> list[RunGroup]:
    """Repeat each of a study's ``top`` best trials over ``count`` seeds (the trial itself as
    the first), so that the page can say whether their ranking survives seed noise.
    ValueError when no trial has completed."""
    trials = tuning.top_trials(study, top)
    if not trials:
        raise ValueError("no trial has completed yet")
    with transaction.atomic():
        return [create_repeat(user, study.project,
                              derived_name(study.name, f" · trial "
                                           f"{tuning.trial_info(trial).get('number')} ×{count}"),
                              trial.experiment_spec, count, source=trial)
                for trial in trials]
