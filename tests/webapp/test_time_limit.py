"""A job stops at FITBOARD_JOB_TIME_LIMIT_S, counted from its first start, fails with the
reason and keeps its last checkpoint: training runs, tuning trials (their own runner) and
compressions (which share the training's ``run_job``). Jobs train for real in this process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.experiments import actions, tuning
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter
from webapp.experiments.runner import execute_training

pytestmark = pytest.mark.django_db(transaction=True)

DIGITS = ExperimentSpec().patched({
    "data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [16]},
    "run": {"epochs": 3, "batch_size": 64, "device": "cpu"},
})


@pytest.fixture
def limited(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    settings.FITBOARD_JOB_TIME_LIMIT = 60
    return settings


def started_an_hour_ago(job: Experiment) -> Experiment:
    """As a job resumed after its worker died: it keeps the time it first started."""
    Experiment.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1))
    job.refresh_from_db()
    return job


def test_the_reporter_asks_a_job_past_its_time_limit_to_stop(make_experiment, limited):
    job = started_an_hour_ago(make_experiment(status=Experiment.Status.RUNNING))

    reporter = DjangoReporter(job)
    try:
        assert reporter.should_stop()
        assert reporter.time_limit_reason().startswith("stopped after the time limit of 60 s")
    finally:
        reporter.close()


def test_no_limit_stops_nothing(make_experiment, limited):
    limited.FITBOARD_JOB_TIME_LIMIT = 0
    job = started_an_hour_ago(make_experiment(status=Experiment.Status.RUNNING))

    reporter = DjangoReporter(job)
    reporter.close()

    assert not reporter.should_stop()


def test_a_training_run_past_its_limit_fails_with_the_reason_and_keeps_its_checkpoint(
        make_experiment, limited):
    # given a queued job that first started an hour ago, and a limit of a minute
    job = started_an_hour_ago(make_experiment(spec=DIGITS.to_dict()))

    # when a worker runs it
    execute_training(job.pk, worker="test")

    # then it failed with the reason, and its last weights are kept
    job.refresh_from_db()
    assert job.status == Experiment.Status.FAILED
    assert job.error.startswith("stopped after the time limit of 60 s")
    assert job.checkpoints.filter(tag="last").exists()


def test_a_job_within_its_limit_runs_to_the_end(make_experiment, limited):
    job = make_experiment(spec=DIGITS.to_dict())

    execute_training(job.pk, worker="test")

    job.refresh_from_db()
    assert (job.status, job.error) == (Experiment.Status.SUCCEEDED, "")


def test_a_tuning_trial_past_its_limit_fails_with_the_reason(owner, project, limited):
    # given a study with a queued trial that first started an hour ago
    source = Experiment.objects.create(project=project, name="digits", spec=DIGITS.to_dict(),
                                       created_by=owner, status=Experiment.Status.SUCCEEDED)
    spec = TuningSpec.from_dict({
        "base": DIGITS.to_dict(), "algorithm": "random", "n_trials": 1, "parallelism": 1,
        "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}}})
    study = actions.create_study(owner, project, "study", spec, source)
    tuning.drive_study(study.pk, worker="test")
    trial = started_an_hour_ago(study.children.get(kind=Experiment.Kind.TRIAL))

    # when a worker runs it
    tuning.execute_trial(trial.pk, worker="test")

    # then it failed with the reason
    trial.refresh_from_db()
    assert trial.status == Experiment.Status.FAILED
    assert trial.error.startswith("stopped after the time limit of 60 s")
