"""What a new job refers to (its source run, the uploaded dataset its spec reads) must belong to
the project the job goes to, and be visible to the user who asks: otherwise a study, remedy or
compression in project B would show project A's run and data to B's members, and train on them.
The forms call ``reference_problem`` in ``clean()`` and put its answer on a field."""

from __future__ import annotations

from typing import Any

from webapp.datasets.models import Dataset, upload_id
from webapp.experiments import warmstart
from webapp.experiments.forms import upload_in_other_project
from webapp.experiments.models import Experiment
from webapp.projects.models import Project


def reference_problem(user: Any, project: Project | None, dataset: str,
                      source: Experiment | None = None) -> str:
    """Why a job in ``project`` may not use ``source`` and the dataset named ``dataset`` ("" when
    it may). ``source`` is assumed visible (the views load it through ``visible_to``)."""
    if project is None:
        return ""
    if source is not None and source.project_id != project.pk:
        return (f"the source run belongs to project {source.project.name}: a job derived from "
                f"it must be in that project, not {project.name}")
    pk = upload_id(dataset)
    if pk is not None and not Dataset.objects.visible_to(user).filter(pk=pk).exists():
        # The same words for a dataset that does not exist: ids of others' data are not leaked.
        return f"it trains on uploaded dataset #{pk}, which is not a dataset of your projects"
    return upload_in_other_project(dataset, project)


def remedy_problem(user: Any, run: Experiment, remedy: dict[str, Any]) -> str:
    """Why runs of ``run``'s spec with ``remedy`` applied may not be queued now ("" when they
    may): its dataset is not the user's to train on, or the run whose weights the remedy starts
    from is gone or no longer fits (the remedy was proposed when ``run`` ended)."""
    spec = run.experiment_spec
    return (reference_problem(user, run.project, spec.data.dataset)
            or warmstart.source_problem(user, run.project, spec.patched(remedy["patch"])))
