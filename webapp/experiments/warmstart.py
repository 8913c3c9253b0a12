"""Runs that start from another run's weights (``model.init_from``, see ``training.warmstart``):
which runs may be a source, the field error when one may not, the weights file a worker hands
the engine, and the source a slow run's remedy proposes.

A source must be a succeeded training run (or tuning trial) of the new run's own project,
visible to the user, with a "best" checkpoint, whose network fits the new one. A run of another
project gets the same words as one that does not exist: its existence is not told.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.data.catalog import dataset_info
from training.spec import TRANSFER_ARCHS, ExperimentSpec, SpecError
from training.tuning import TuningSpec
from webapp.experiments import files
from webapp.experiments.models import Experiment
from webapp.projects.models import Project

logger = logging.getLogger(__name__)

FIELD = "model.init_from"
SOURCE_KINDS = (Experiment.Kind.TRAIN, Experiment.Kind.TRIAL)
CANDIDATES = 20  # recent runs of the project a slow run's remedy looks through


def sources(project: Project) -> Any:
    """The runs of ``project`` that may start another: succeeded, with a best checkpoint."""
    return Experiment.objects.filter(
        project=project, kind__in=SOURCE_KINDS, status=Experiment.Status.SUCCEEDED,
        checkpoints__tag="best")


def source_problem(user: Any, project: Project | None, spec: ExperimentSpec) -> str:
    """Why a run of ``spec`` in ``project`` may not start from run ``model.init_from`` ("" when
    it may, or when it starts from nothing)."""
    number = spec.model.init_from
    if not number or project is None:
        return ""
    source, problem = _usable_source(user, project, number)
    return problem or fit_problem(source, spec)


def _usable_source(user: Any, project: Project, number: int) -> tuple[Any, str]:
    """Run ``number`` of ``project`` and why its weights cannot start another ("" when they
    can, whatever the network: ``fit_problem`` says whether they fit one)."""
    source = Experiment.objects.visible_to(user).filter(pk=number, project=project).first()
    if source is None:
        return None, f"no run #{number} in project {project.name}"
    if source.kind not in SOURCE_KINDS:  # it exists and is the user's to see: say what it is
        return source, other_kind_problem(source)
    if source.status != Experiment.Status.SUCCEEDED:
        return source, (f"run #{number} has {source.status}: only a succeeded run's weights "
                        "can start one")
    if not source.checkpoints.filter(tag="best").exists():
        return source, f"run #{number} has no saved checkpoint"
    return source, ""


def study_problems(user: Any, project: Project | None, study: TuningSpec) -> dict[str, str]:
    """By ``space.<path>``: a search dimension of a warm-started base whose bounds or choices
    build a network the source's weights do not fit. Each such trial failed on its own ("none
    of its layers fits this model"), a study over a fine-tuned CNN's width one failure after
    another. The source is read once: ``model.init_from`` is not a dimension a study may
    search."""
    number = ExperimentSpec.from_dict(study.base).model.init_from
    if not number or project is None:
        return {}
    source, found = _usable_source(user, project, number)
    errors = {}
    for path, param in study.space.items():
        values = list(param.choices) if param.type == "categorical" else [param.low, param.high]
        for value in values:
            value = int(value) if param.type == "int" and value is not None else value
            try:
                problem = found or fit_problem(source, study.trial_spec({path: value}))
            except SpecError:  # the study's own checks say it
                continue
            if problem:
                errors[f"space.{path}"] = (f"{value!r}: {problem} (each trial starts from run "
                                           f"#{number}'s weights)")
                break
    return errors


def other_kind_problem(source: Experiment) -> str:
    """Why a study or a compression job cannot start a run (it read "no run #N in project P"
    of a run the user was looking at)."""
    if source.kind == Experiment.Kind.TUNE:
        return (f"run #{source.pk} is a tuning study, which has no weights of its own: start "
                "from one of its trials")
    origin = f" (its source, run #{source.parent_id})" if source.parent_id else ""
    return (f"run #{source.pk} is a compression job: its network (pruned, int8 or a student) "
            f"is not the one its spec builds; start from a training run{origin}")


def fit_problem(source: Experiment, spec: ExperimentSpec) -> str:
    """Why ``source``'s network cannot start one of ``spec`` ("" when it can)."""
    from training.warmstart import compatibility_problem

    try:
        old = source.experiment_spec
        problem = compatibility_problem(old, dataset_info(old.data.dataset), spec,
                                        dataset_info(spec.data.dataset))
    except (SpecError, KeyError) as exc:
        return f"run #{source.pk} cannot be read as a model ({exc})"
    return f"run #{source.pk}: {problem}" if problem else ""


def init_weights(spec: ExperimentSpec, experiment: Experiment) -> tuple[Path | None,
                                                                        dict[str, Any]]:
    """The local checkpoint file a worker passes to the engine for ``spec``'s warm start, and
    what the new run's checkpoints record of it; (None, {}) without one. Raises SpecError on
    the field when the source is gone or no longer fits."""
    number = spec.model.init_from
    if not number:
        return None, {}
    source = sources(experiment.project).filter(pk=number).first()
    if source is None:
        raise SpecError({FIELD: f"run #{number} is no longer a finished run of project "
                                f"{experiment.project.name} with a checkpoint"})
    stored = source.checkpoints.get(tag="best")
    record = {"from_run": number, "sha256": stored.sha256,
              "freeze_epochs": spec.model.freeze_epochs}
    return files.local_copy(stored.path, stored.sha256), {"warm_start": record}


def compatible_source(experiment: Experiment) -> Experiment | None:
    """A recent finished run of ``experiment``'s project that can start a run of its spec (not
    itself), for the "learning too slowly" remedy; None when there is none."""
    spec = experiment.experiment_spec
    if spec.model.arch not in TRANSFER_ARCHS:
        return None
    candidates = (sources(experiment.project).exclude(pk=experiment.pk)
                  .exclude(pk=spec.model.init_from).order_by("-finished_at", "-pk")
                  .distinct()[:CANDIDATES])
    for candidate in candidates:
        try:
            if candidate.experiment_spec.model.arch == spec.model.arch \
                    and similar_data(candidate.experiment_spec, spec) \
                    and not fit_problem(candidate, spec):
                return candidate
        except (SpecError, KeyError):
            continue
    return None


def similar_data(source: ExperimentSpec, spec: ExperimentSpec) -> bool:
    """Whether ``source`` trained on data like ``spec``'s: the same task on inputs of the same
    shape. A network whose input layer cannot load starts its loaded layers on features they
    never saw: a diabetes regression MLP (10 columns) fits a breast-cancer one (30 columns)
    in every hidden layer, and starts it no better than random weights."""
    old, new = dataset_info(source.data.dataset), dataset_info(spec.data.dataset)
    return old.task == new.task and old.input_shape == new.input_shape
