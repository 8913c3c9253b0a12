"""Deleting what a user stores, so that a user at the storage quota (``projects.storage``) can
free room themselves: an ended run (its checkpoints, metric chunks, artifacts, and the jobs that
exist only as its parts: a study's trials, a run's compressions) and an uploaded data set (its
files and versions).

The rows go in one transaction, with the jobs locked so that no start, reopen or launch slips
in between the check and the delete; the files go after it commits, so that a refused or
rolled-back deletion never leaves a row naming a missing file. A data set's deletion lives here
rather than in the datasets app because it must know the jobs that train on it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import CASCADE, Q

from webapp.datasets.models import Dataset, LabelScan
from webapp.experiments.external import artifacts_root
from webapp.experiments.files import listing
from webapp.experiments.jobs import run_workdir
from webapp.experiments.models import Checkpoint, Experiment, StoredArtifact, Tag
from webapp.projects import access

ACTIVE = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)
# Children that are parts of their parent, deleted with it. Other children (a remedy's run, a
# repeat, a study or a fine-tune started from a run) are runs of their own: they stay, their
# ``parent`` set to null by the foreign key.
PARTS = (Experiment.Kind.TRIAL, Experiment.Kind.COMPRESS)


class InUse(Exception):
    """What is asked to be deleted is still used by a queued or running job; the message says
    which (the API's 409)."""


class NotYours(PermissionDenied):
    """A part of the run, or a row deleted with it (a logged model), belongs to another member,
    for whom the user may not delete."""


def delete_run(user: Any, run: Experiment) -> int:
    """Delete the ended ``run`` and its parts (``PARTS``, at any depth), their checkpoints and
    artifacts, for ``user`` (who may change ``run``: the caller checked). InUse while any of
    them is queued or running, or a queued or running job starts from their weights
    (``model.init_from``, a fine-tune), or ``run`` is a part of a queued or running job; NotYours
    when a part, or a row that goes with them (a logged model), is another member's. Returns
    the number of runs deleted."""
    with transaction.atomic():
        runs = _with_parts(run)
        _check_deletable(user, run, runs)
        ids = [r.pk for r in runs]
        names = list(Checkpoint.objects.filter(experiment__in=ids).values_list("path", flat=True))
        roots = [artifacts_root(r.pk) for r in runs if r.is_external]
        for root in roots:
            StoredArtifact.objects.filter(name__startswith=f"{root}/").delete()
        tags = _locked_tags(ids)
        Experiment.objects.filter(pk__in=ids).delete()  # chunks, checkpoints, memberships
        Tag.objects.filter(pk__in=tags, experiments=None).delete()  # as an annotation does
        transaction.on_commit(lambda: _remove_run_files(ids, names, roots))
    return len(ids)


def _locked_tags(ids: list[int]) -> list[int]:
    """The tags of runs ``ids``, read under their row locks, in the order every annotation
    takes them (``actions.annotate_experiment``): one no other run holds goes with them."""
    held = Experiment.tags.through.objects.filter(experiment_id__in=ids).values("tag_id")
    return [tag.pk for tag in Tag.objects.select_for_update().filter(pk__in=held)
            .order_by("name")]


def _check_deletable(user: Any, run: Experiment, runs: list[Experiment]) -> None:
    """InUse or NotYours when ``run`` and its parts ``runs`` may not be deleted now."""
    busy = next((r for r in runs if r.status in ACTIVE), None)
    if busy is not None:
        of = "" if busy.pk == run.pk else f" run #{run.pk}"
        raise InUse(f"run #{busy.pk} is {busy.status}: cancel it, or wait for it to end, "
                    f"before deleting{of}")
    whole = run.parent if run.kind in PARTS else None
    if whole is not None and whole.status in ACTIVE:
        # A study counts its trials to draw the next and to stop at its budget.
        raise InUse(f"run #{run.pk} is a part of {whole.kind} job #{whole.pk}, which is "
                    f"{whole.status}: wait for it to end, or delete the whole once it ended")
    ids = [r.pk for r in runs]
    # Of the run's project only: a worker loads weights from a run of the job's own project
    # (``warmstart.init_weights``), and a job elsewhere naming these ids (a study's search
    # space may draw any) must neither block the deletion nor be told of.
    starting = Experiment.objects.filter(status__in=ACTIVE, project_id=run.project_id).filter(
        Q(spec__model__init_from__in=ids) | Q(spec__base__model__init_from__in=ids)).first()
    if starting is not None:
        raise InUse(f"{starting.kind} job #{starting.pk} is {starting.status}, starting from the "
                    f"weights of run #{run.pk}: cancel it, or wait for it to end, before deleting")
    maintained = access.maintained_project_ids(user)
    other = next((r for r in runs if not access.may_change(user, r, maintained)), None)
    if other is not None:
        raise NotYours(f"run #{other.pk}, a part of run #{run.pk}, is another member's: ask "
                       "them or a maintainer to delete it")
    row = next((r for r in _owned_rows_deleted_with(ids)
                if not access.may_change(user, r, maintained)), None)
    if row is not None:
        raise NotYours(f"{row._meta.verbose_name} #{row.pk}, which goes with run #{run.pk}, is "
                       "another member's: ask them or a maintainer to delete it")


def _owned_rows_deleted_with(ids: list[int]) -> Iterator[Any]:
    """The rows with a creator of their own that the runs ``ids`` take with them through a
    cascading foreign key (a logged model of its source run), of whatever app holds them."""
    # include_hidden: such a foreign key is named "+" on its side, hidden from the run's.
    relations = [field for field in Experiment._meta.get_fields(include_hidden=True)
                 if field.one_to_many and field.auto_created]
    for relation in relations:
        model = relation.related_model
        if relation.on_delete is CASCADE and any(
                field.name == "created_by" for field in model._meta.get_fields()):
            yield from model.objects.filter(**{f"{relation.field.name}__in": ids})


def _with_parts(run: Experiment) -> list[Experiment]:
    """``run`` and its parts at any depth, their rows locked until the transaction ends."""
    found = list(Experiment.objects.select_for_update().filter(pk=run.pk))
    frontier = [r.pk for r in found]
    while frontier:
        children = list(Experiment.objects.select_for_update().filter(
            parent__in=frontier, kind__in=PARTS).exclude(pk__in=[r.pk for r in found]))
        found += children
        frontier = [r.pk for r in children]
    return found


def _remove_run_files(ids: Iterable[int], names: Iterable[str], roots: Iterable[str]) -> None:
    for name in names:
        default_storage.delete(name)
    for root in roots:
        for inner, _ in listing(root):
            default_storage.delete(f"{root}/{inner}")
    for pk in ids:  # the worker's folder, where it is this machine's (resume states, logs)
        shutil.rmtree(run_workdir(pk), ignore_errors=True)


def dataset_in_use(dataset: Dataset) -> str:
    """Why ``dataset`` may not be deleted now ("" when it may): a queued or running job trains
    on it (a study through its base spec), or a label scan reads it."""
    name = dataset.spec_name
    # Of its project only: a worker reads an upload for a job of its own project
    # (``services.local_files``); a job elsewhere naming it is neither a reason nor told of.
    job = Experiment.objects.filter(status__in=ACTIVE, project_id=dataset.project_id).filter(
        Q(spec__data__dataset=name) | Q(spec__base__data__dataset=name)).order_by("pk").first()
    if job is not None:
        return (f"{job.kind} job #{job.pk} ({job.name}) is {job.status} on this data set: "
                "cancel it, or wait for it to end, before deleting the data set")
    if dataset.label_scans.filter(
            status__in=(LabelScan.Status.QUEUED, LabelScan.Status.RUNNING)).exists():
        return "a search for suspicious labels is reading this data set: wait for it to end"
    return ""


def delete_dataset(dataset: Dataset) -> None:
    """Delete ``dataset``, its versions and label scans, and their files (the caller checked
    that the user may change it); InUse while a job trains on it. Ended runs that trained on it
    keep their pages; a clone of one is refused on its data set field, as for any data set
    that is gone (and a launch racing with the deletion fails at its worker, which finds no
    data set)."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        if locked is None:
            return
        problem = dataset_in_use(locked)
        if problem:
            raise InUse(problem)
        names = [f.name for f in (locked.source, locked.prepared) if f.name]
        names += [v.prepared.name for v in locked.versions.all() if v.prepared.name]
        locked.delete()  # versions and label scans cascade
        transaction.on_commit(lambda: _remove_files(names))


def _remove_files(names: Iterable[str]) -> None:
    for name in names:
        default_storage.delete(name)
