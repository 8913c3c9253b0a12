"""Tuning studies across workers: the functions behind the study's Celery tasks and pages.

A study is an Experiment of kind ``tune`` whose spec is a ``training.tuning.TuningSpec`` dict;
its trials are child experiments of kind ``trial``, each a normal training run whose spec is the
base spec with the trial's parameters. The Optuna study lives in ``settings.OPTUNA_STORAGE_URL``.

Driving is ask/tell: :func:`advance_study` (run by the study's task, then by every trial when it
ends) asks Optuna for as many trials as the parallelism leaves room for, stores each as a child
row carrying its Optuna trial number, and enqueues it on the ``gpu`` queue; :func:`execute_trial`
trains it on a worker, reporting each epoch to Optuna, then tells the outcome and advances the
study. The number in flight therefore never exceeds the parallelism. A pruned trial ends with
status "cancelled" (the status set is fixed) and ``summary["trial"]["state"] == "pruned"``.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from training.spec import SpecError
from training.tuning import (
    Heartbeat,
    TuningSpec,
    build_sampler,
    fail_stale_trials,
    rdb_storage,
    run_trial,
    suggest,
)
from training.tuning import ask as ask_trial
from training.tuning import create_study as create_optuna_study
from webapp.experiments import enqueue, events, metric_store
from webapp.experiments.jobs import (
    Conclude,
    Outcome,
    Work,
    job_meta,
    loop_options,
    placement,
    run_device,
    run_job,
    run_workdir,
    training_summary,
)
from webapp.experiments.models import Experiment, derived_name
from webapp.experiments.reporting import DjangoReporter

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

IMPORTANCE_MIN_TRIALS = 4  # finished trials before parameter importances are computed
MAX_INVALID = 5  # sampled configurations in a row the spec refuses before the study fails
IN_FLIGHT = (Experiment.Status.QUEUED, Experiment.Status.RUNNING)


# Creating and promoting (called by views; cancelling is actions.cancel_experiment) ----------



def best_trial(study: Experiment) -> Experiment | None:
    """The completed trial with the best objective value, or None."""
    top = top_trials(study, 1)
    return top[0] if top else None


def top_trials(study: Experiment, count: int) -> list[Experiment]:
    """The ``count`` completed trials with the best objective values, best first."""
    spec = TuningSpec.from_dict(study.spec)
    done = [t for t in study.children.filter(kind=Experiment.Kind.TRIAL)
            if trial_info(t).get("state") == "complete" and trial_info(t).get("value") is not None]
    # A tie goes to the first trial to reach the value, as the study page's "Best:" line says
    # (sorted by number first: Python's sort is stable, reversed or not).
    done.sort(key=lambda t: trial_info(t).get("number", 0))
    done.sort(key=lambda t: trial_info(t)["value"], reverse=spec.direction == "maximize")
    return done[:count]



def trial_info(trial: Experiment) -> dict[str, Any]:
    """What the study knows of one trial: number, params, state, value, pruned epoch."""
    info: dict[str, Any] = trial.summary.get("trial", {})
    return info


# Optuna storage ----------------------------------------------------------------------------------


@cache
def _storage(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    import optuna

    # Every driver call loads the study, and Optuna logs an INFO line for each load; the rows
    # here record every trial already.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    return rdb_storage(url, heartbeat_interval=heartbeat)


def optuna_name(study: Experiment) -> str:
    """The study's name in Optuna's storage; the creation time keeps a reused id (a test
    database, a restored backup) from loading another study's trials."""
    return f"fitboard-{study.pk}-{int(study.created_at.timestamp() * 1e6)}"


def open_study(study: Experiment, seed_offset: int = 0) -> optuna.Study:
    """The Optuna study of a study row, created at first use. Each call builds a new sampler:
    the driver passes the number of trials so far as ``seed_offset`` so that it never replays
    the random draws of an earlier call."""
    spec = TuningSpec.from_dict(study.spec)
    storage = _storage(settings.OPTUNA_STORAGE_URL, settings.FITBOARD_TRIAL_HEARTBEAT)
    return create_optuna_study(spec, storage, optuna_name(study), seed_offset)


# The driver -----------------------------------------------------------------------------------


def drive_study(study_id: int, worker: str) -> bool:
    """The study task: start the study, advance it; True while it still needs a watchdog."""
    study = Experiment.objects.filter(pk=study_id, kind=Experiment.Kind.TUNE).first()
    if study is None:
        return False
    study.start(worker)  # no-op when already running
    advance_study(study_id)
    return not Experiment.objects.get(pk=study_id).is_terminal


def advance_study(study_id: int) -> None:
    """Enqueue trials up to the parallelism while budget remains; finish the study when its
    budget is spent and nothing is in flight. Serialised per study by a row lock."""
    with transaction.atomic():
        study = Experiment.objects.select_for_update().get(pk=study_id)
        if study.status != Experiment.Status.RUNNING:
            return
        spec = TuningSpec.from_dict(study.spec)
        trials = list(study.children.filter(kind=Experiment.Kind.TRIAL))
        optuna_study = open_study(study, seed_offset=len(trials))
        fail_stale_trials(optuna_study)
        _fail_lost_trials(trials, optuna_study)
        counted = [t for t in trials if trial_info(t).get("state") != "lost"]
        in_flight = sum(t.status in IN_FLIGHT for t in trials)
        budget = spec.trial_budget()
        started_at = study.started_at or timezone.now()
        timed_out = bool(spec.timeout) and timezone.now() >= started_at + timedelta(
            seconds=spec.timeout)
        invalid = 0  # sampled configurations in a row that the spec refused
        while (in_flight < spec.parallelism and not timed_out and invalid < MAX_INVALID
               and (budget is None or len(counted) < budget)):
            # Each trial's draw is seeded by its number, not by how many trials one pass
            # enqueues: a study draws the same configurations however its trials' ends
            # interleave with its passes (a pass after two ends asks twice).
            optuna_study.sampler = build_sampler(spec, seed_offset=len(trials))
            trial = _enqueue_trial(study, spec, optuna_study, len(counted))
            counted.append(trial)
            trials.append(trial)
            in_flight += trial.status in IN_FLIGHT
            invalid = 0 if trial.status in IN_FLIGHT else invalid + 1
        if invalid >= MAX_INVALID and in_flight == 0:
            study.finish(Experiment.Status.FAILED, error=(
                f"{invalid} sampled configurations in a row were invalid; the last: "
                f"{trials[-1].error}"), summary=_study_summary(spec, best_trial(study), trials))
            return
        exhausted = timed_out or (budget is not None and len(counted) >= budget)
        progress = _progress(spec, trials, budget, optuna_study)
        Experiment.objects.filter(pk=study.pk).update(progress=progress)
        study.progress = progress
        if exhausted and in_flight == 0:
            best = best_trial(study)
            study.finish(Experiment.Status.SUCCEEDED, summary=_study_summary(spec, best, trials))
        else:
            transaction.on_commit(lambda: events.publish_status(study))


def _enqueue_trial(study: Experiment, spec: TuningSpec, optuna_study: optuna.Study,
                   index: int) -> Experiment:
    """Ask Optuna for a trial and store it as a queued child row (enqueued after commit)."""
    import optuna

    ask = ask_trial(optuna_study)
    params = suggest(ask, spec)
    info = {"number": ask.number, "params": params, "state": "queued"}
    name = derived_name(study.name, f" · trial {index + 1}")
    try:
        trial_spec = spec.trial_spec(params)
    except SpecError as exc:
        # A combination the spec refuses (e.g. a batch larger than a split): a failed trial.
        optuna_study.tell(ask, state=optuna.trial.TrialState.FAIL)
        return Experiment.objects.create(
            project=study.project, name=name, spec=spec.base, created_by=study.created_by,
            parent=study, kind=Experiment.Kind.TRIAL, status=Experiment.Status.FAILED,
            error=f"these parameters make an invalid spec: {exc}", finished_at=timezone.now(),
            summary={"trial": {**info, "state": "failed"}},
        )
    child = Experiment.objects.create(
        project=study.project, name=name, spec=trial_spec.to_dict(),
        created_by=study.created_by, parent=study, kind=Experiment.Kind.TRIAL,
        summary={"trial": info},
    )
    transaction.on_commit(lambda: enqueue.send(enqueue.TRIAL, child.pk))
    transaction.on_commit(lambda: events.publish_status(child))
    return child


def _fail_lost_trials(trials: list[Experiment], optuna_study: optuna.Study) -> None:
    """Running rows whose Optuna trial was failed for a stale heartbeat: their worker died.
    They end failed; Optuna has queued a retry with the same parameters."""
    import optuna

    running = {trial_info(t).get("number"): t for t in trials
               if t.status == Experiment.Status.RUNNING}
    if not running:
        return
    for frozen in optuna_study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.FAIL,)):
        row = running.get(frozen.number)
        if row is not None:
            info = {**trial_info(row), "state": "lost"}
            row.finish(Experiment.Status.FAILED, summary={**row.summary, "trial": info},
                       error="the worker running this trial stopped answering; retried")


def _progress(spec: TuningSpec, trials: list[Experiment], budget: int | None,
              optuna_study: optuna.Study) -> dict[str, Any]:
    finished = [t for t in trials if trial_info(t).get("state") in ("complete", "pruned")]
    progress: dict[str, Any] = {
        "trials": len([t for t in trials if trial_info(t).get("state") != "lost"]),
        "budget": budget,
        "finished": len(finished),
        "in_flight": sum(t.status in IN_FLIGHT for t in trials),
    }
    complete = sum(trial_info(t).get("state") == "complete" for t in trials)
    if complete >= IMPORTANCE_MIN_TRIALS:
        progress["importances"] = _importances(optuna_study)
    return progress


def _importances(optuna_study: optuna.Study) -> dict[str, float]:
    """Optuna's parameter importances (its default evaluator); empty when it cannot say."""
    import optuna

    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(
            optuna_study).items()}
    except (ValueError, RuntimeError):  # e.g. every completed trial has the same value
        logger.info("no parameter importances for %s yet", optuna_study.study_name)
        return {}


def _study_summary(spec: TuningSpec, best: Experiment | None,
                   trials: list[Experiment]) -> dict[str, Any]:
    states = [trial_info(t).get("state", "") for t in trials]
    summary: dict[str, Any] = {
        "trials": {s: states.count(s) for s in sorted(set(states))},
        "objective": spec.objective,
        "direction": spec.direction,
        "best_trial": None,
    }
    if best is not None:
        info = trial_info(best)
        summary["best_trial"] = {"experiment_id": best.pk, "number": info["number"],
                                 "params": info["params"], "value": info["value"]}
        summary["best_metric"] = [spec.objective, info["value"]]
    return summary


# One trial on a worker --------------------------------------------------------------------------


def execute_trial(trial_id: int, worker: str) -> None:
    """Train one queued trial, tell Optuna its outcome, record it on the row, advance the study.
    Never raises for a failed trial."""
    import optuna

    trial_row = Experiment.objects.select_related("parent").filter(
        pk=trial_id, kind=Experiment.Kind.TRIAL).first()
    if trial_row is None or trial_row.parent is None:
        return
    study = trial_row.parent
    optuna_study = open_study(study)
    number = trial_info(trial_row)["number"]
    if not trial_row.start(worker):  # cancelled while queued, or taken by another delivery
        if trial_row.status == Experiment.Status.CANCELLED:
            _tell(optuna_study, number, optuna.trial.TrialState.FAIL)
            advance_study(study.pk)
        return
    trial_id_in_storage = optuna_study._storage.get_trial_id_from_study_id_trial_number(
        optuna_study._study_id, number)
    trial = optuna.Trial(optuna_study, trial_id_in_storage)
    # Beat at once: a trial without any heartbeat never counts as stale, so a worker killed
    # before training starts (still importing torch, loading data) would leave it running.
    Heartbeat(optuna_study, trial).beat_once()
    run_job(trial_row, trial_work(trial_row, study, optuna_study, trial),
            conclude=trial_conclusion(trial_row, optuna_study))
    advance_study(study.pk)


def trial_work(trial_row: Experiment, study: Experiment, optuna_study: optuna.Study,
               trial: optuna.Trial) -> Work:
    """The work of one trial for ``jobs.run_job``: train it like any run (its device, data
    sources and options) while its heartbeat beats, reporting each epoch to Optuna. A pruned
    trial ends cancelled, "pruned after epoch N"; its summary's ``"trial"`` holds the
    objective's value (and the epoch it was pruned at) for :func:`trial_conclusion`."""
    spec = TuningSpec.from_dict(study.spec)
    workdir = run_workdir(trial_row.pk)

    def train(reporter: DjangoReporter) -> Outcome:
        trial_spec = trial_row.experiment_spec
        meta = job_meta(trial_row, study_id=study.pk, trial_number=trial.number)
        reporter.status("starting", **placement(run_device(trial_spec)))
        with Heartbeat(optuna_study, trial):
            outcome = run_trial(spec, trial, reporter, workdir, raise_pruned=False,
                                **loop_options(trial_spec, trial_row, meta))
        summary = training_summary(outcome.result, spec.objective, meta)
        info = {"value": outcome.value}
        if outcome.pruned_at is not None:
            info["pruned_at"] = outcome.pruned_at
            return Outcome(Experiment.Status.CANCELLED, {**summary, "trial": info},
                           f"pruned after epoch {outcome.pruned_at}: not promising enough")
        if outcome.result.status == Experiment.Status.CANCELLED:
            return Outcome(Experiment.Status.CANCELLED, {**summary, "trial": info})
        if outcome.value is None:
            return Outcome(Experiment.Status.FAILED, {**summary, "trial": info},
                           "no epoch finished")
        return Outcome(Experiment.Status.SUCCEEDED, {**summary, "trial": info})

    return train


def trial_conclusion(trial_row: Experiment, optuna_study: optuna.Study) -> Conclude:
    """A trial's last word for ``jobs.run_job`` once its status is final: tell Optuna how it
    ended (complete with its value, pruned, or failed) and record that in the summary's
    ``"trial"`` beside the number and parameters the driver put there."""
    import optuna

    asked = trial_info(trial_row)

    def conclude(status: str, summary: dict[str, Any] | None) -> dict[str, Any]:
        summary = dict(summary or {})
        info = {**asked, **summary.get("trial", {})}
        value = info.get("value")
        if status == Experiment.Status.SUCCEEDED:
            state, label = optuna.trial.TrialState.COMPLETE, "complete"
        elif status == Experiment.Status.CANCELLED and info.get("pruned_at") is not None:
            state, label = optuna.trial.TrialState.PRUNED, "pruned"
        else:
            state = optuna.trial.TrialState.FAIL
            label = "cancelled" if status == Experiment.Status.CANCELLED else "failed"
        _tell(optuna_study, info["number"], state, value)
        info.update(state=label, value=value if value is not None and math.isfinite(value)
                    else None)
        return {**summary, "trial": info}

    return conclude


def _tell(optuna_study: optuna.Study, number: int, state: Any,
          value: float | None = None) -> None:
    """Tell Optuna a trial's end; a trial it already ended (failed as stale) stays as it is."""
    import optuna

    try:
        if state == optuna.trial.TrialState.COMPLETE:
            optuna_study.tell(number, value)
        else:
            optuna_study.tell(number, state=state)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
        logger.info("trial %s of %s had already ended in Optuna", number,
                    optuna_study.study_name)


# The study page -------------------------------------------------------------------------------


def study_data(study: Experiment) -> dict[str, Any]:
    """Everything the live study page draws: trials, curves, best so far, importances."""
    spec = TuningSpec.from_dict(study.spec)
    trials = list(study.children.filter(kind=Experiment.Kind.TRIAL).order_by("pk"))
    series = metric_store.read_many([t.pk for t in trials], keys=(spec.objective, "epoch"))
    rows, best_so_far = [], []
    best: float | None = None
    better = (lambda a, b: a > b) if spec.direction == "maximize" else (lambda a, b: a < b)
    for index, trial in enumerate(trials, start=1):
        info = trial_info(trial)
        curve = _epoch_curve(series.get(trial.pk, {}), spec.objective)
        value = info.get("value")
        state = info.get("state") or trial.status
        if trial.status in IN_FLIGHT:
            state = trial.status
        if state == "complete" and value is not None and (best is None or better(value, best)):
            best = value
        if best is not None and state in ("complete", "pruned", "failed", "cancelled"):
            best_so_far.append([index, best])
        duration = None
        if trial.started_at:
            duration = ((trial.finished_at or timezone.now()) - trial.started_at).total_seconds()
        rows.append({
            "id": trial.pk, "index": index, "number": info.get("number"), "name": trial.name,
            "params": info.get("params", {}), "state": state, "value": value,
            "pruned_at": info.get("pruned_at"), "duration": duration, "curve": curve,
            "epoch": trial.progress.get("epoch"), "epochs": trial.progress.get("epochs"),
            "worker": trial.worker,
            "started_at": trial.started_at.timestamp() if trial.started_at else None,
            "finished_at": trial.finished_at.timestamp() if trial.finished_at else None,
        })
    return {
        "id": study.pk, "status": study.status, "error": study.error,
        "objective": spec.objective, "direction": spec.direction,
        "params": list(spec.space), "progress": study.progress, "trials": rows,
        "best_so_far": best_so_far,
        "best_trial": (study.summary.get("best_trial") if study.is_terminal else None),
        "importances": study.progress.get("importances", {}),
        "importance_min_trials": IMPORTANCE_MIN_TRIALS,
    }


def _epoch_curve(series: dict[str, metric_store.Series], objective: str) -> list[list[float]]:
    """[epoch, value] pairs of the objective (the loop logs it at each epoch's last step)."""
    epochs, values = series.get("epoch"), series.get(objective)
    if epochs is None or values is None:
        return []
    by_step = dict(zip(values.steps.tolist(), values.values.tolist(), strict=True))
    return [[epoch, by_step[step]] for step, epoch in zip(epochs.steps.tolist(),
                                                           epochs.values.tolist(), strict=True)
            if step in by_step and math.isfinite(by_step[step])]
