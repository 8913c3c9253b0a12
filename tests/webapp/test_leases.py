"""Leases: a running job belongs to the worker that started it while that worker renews its
lease; a dead worker's job is taken back and queued to resume, a few times at most; whatever the
old worker still tries to write after that is refused."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.experiments import metric_store
from webapp.experiments.housekeeping import take_back_lost_jobs
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter


def stale(experiment: Experiment, seconds: float = 3600) -> Experiment:
    """The job's worker stopped renewing its lease ``seconds`` ago."""
    Experiment.objects.filter(pk=experiment.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds))
    return Experiment.objects.get(pk=experiment.pk)


def test_each_start_raises_the_lease_epoch_and_a_second_delivery_gets_none(make_experiment):
    job = make_experiment()

    first = job.start(worker="w1")
    duplicate = Experiment.objects.get(pk=job.pk)

    assert first and job.lease_epoch == 1 and job.heartbeat_at is not None
    assert duplicate.start(worker="w2") is False
    assert Experiment.objects.get(pk=job.pk).lease_epoch == 1


def test_a_dead_worker_s_job_is_queued_again_to_resume(make_experiment,
                                                      django_capture_on_commit_callbacks):
    # given a running job whose worker stopped renewing its lease long ago
    job = make_experiment(kind=Experiment.Kind.TRAIN)
    job.start(worker="w1")
    stale(job)

    # when a housekeeper looks
    with django_capture_on_commit_callbacks(execute=False) as sent:
        counts = take_back_lost_jobs()

    # then the job is queued again, counted as a restart, under a new lease, and its message
    # (and the status event) go out once the change is committed
    again = Experiment.objects.get(pk=job.pk)
    assert counts["queued"] == 1
    assert (again.status, again.restarts, again.lease_epoch, again.worker) == (
        "queued", 1, 2, "")
    assert len(sent) == 2


def test_a_live_worker_s_job_is_left_alone(make_experiment, settings):
    settings.FITBOARD_LEASE_TIMEOUT = 30
    job = make_experiment()
    job.start(worker="w1")
    stale(job, seconds=5)

    assert take_back_lost_jobs() == {"queued": 0, "cancelled": 0, "failed": 0}
    assert Experiment.objects.get(pk=job.pk).status == "running"


def test_two_housekeepers_take_a_job_back_once(make_experiment):
    job = make_experiment()
    job.start(worker="w1")
    seen_by_first, seen_by_second = stale(job), Experiment.objects.get(pk=job.pk)

    outcomes = [seen_by_first.take_back(3), seen_by_second.take_back(3)]

    assert outcomes == ["queued", ""]
    assert Experiment.objects.get(pk=job.pk).restarts == 1


def test_a_job_that_keeps_killing_its_worker_fails_with_the_reason(make_experiment, settings):
    # given a job re-queued three times already (the cap)
    settings.FITBOARD_MAX_RESTARTS = 3
    job = make_experiment(restarts=3)
    job.start(worker="w9@gpu-box")
    stale(job)

    # when its fourth worker dies too
    counts = take_back_lost_jobs()

    # then it ends failed, saying why
    failed = Experiment.objects.get(pk=job.pk)
    assert counts["failed"] == 1
    assert failed.status == "failed"
    assert failed.error.startswith("worker died 4 times; the last one (w9@gpu-box)")


def test_a_cancel_asked_of_a_job_whose_worker_died_ends_it(make_experiment):
    # given a running job whose cancel was asked for, and then its worker died
    job = make_experiment()
    job.start(worker="w1")
    job.request_cancel()

    # when a housekeeper takes it back
    take_back_lost_jobs_outcome = stale(job).take_back(3)

    # then it is cancelled, not resumed
    assert take_back_lost_jobs_outcome == "cancelled"
    assert Experiment.objects.get(pk=job.pk).status == "cancelled"


def test_a_job_waiting_to_resume_is_cancelled_at_once(make_experiment):
    job = make_experiment()
    job.start(worker="w1")
    stale(job).take_back(3)

    assert Experiment.objects.get(pk=job.pk).request_cancel() is True
    assert Experiment.objects.get(pk=job.pk).status == "cancelled"


def test_the_old_worker_cannot_end_a_job_taken_back_from_it(make_experiment):
    job = make_experiment()
    job.start(worker="w1")
    stale(job).take_back(3)
    Experiment.objects.get(pk=job.pk).start(worker="w2")

    # the first worker was only slow: its end is refused, the second worker's job goes on
    assert job.finish(Experiment.Status.SUCCEEDED, lease=job.lease_epoch) is False
    assert Experiment.objects.get(pk=job.pk).status == "running"


@pytest.mark.django_db(transaction=True)
def test_the_old_worker_s_reporter_stores_nothing_more_and_asks_the_loop_to_stop(
        make_experiment):
    # given a worker reporting a running job
    job = make_experiment()
    job.start(worker="w1")
    reporter = DjangoReporter(job, interval=0)
    reporter.log(1, {"loss": 1.0})
    while "loss" not in metric_store.read(job.pk):  # the flusher thread stores it
        time.sleep(0.01)
    # when its job is taken back (its heartbeat looked stale) and another worker starts it
    stale(job).take_back(3)
    Experiment.objects.get(pk=job.pk).start(worker="w2")
    reporter.log(2, {"loss": 0.5})
    reporter.close()

    # then only what it logged before is stored, and its loop was told to stop
    assert reporter.lease_lost and reporter.should_stop()
    assert metric_store.read(job.pk)["loss"].steps.tolist() == [1]


def test_truncating_keeps_each_step_stored_once(make_experiment):
    # given points up to step 6 in two chunks, the second straddling the resumed step 4
    job = make_experiment()
    metric_store.append(job.pk, {"loss": [(1, 1.0, 0.0), (2, 0.9, 0.0), (3, 0.8, 0.0)]})
    metric_store.append(job.pk, {"loss": [(4, 0.7, 0.0), (5, 0.6, 0.0), (6, 0.5, 0.0)],
                                 "val_acc": [(6, 0.8, 0.0)]})

    # when the job resumes from its state at step 4 and logs steps 5 and 6 again
    removed = metric_store.truncate(job.pk, after_step=4)
    metric_store.append(job.pk, {"loss": [(5, 0.61, 0.0), (6, 0.51, 0.0)]})

    # then no (metric, step) is stored twice, and the steps read back once each
    assert removed == 3
    assert metric_store.duplicates(job.pk) == 0
    assert metric_store.read(job.pk)["loss"].steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert "val_acc" not in metric_store.read(job.pk)


def test_duplicates_are_counted_when_a_step_is_stored_twice(make_experiment):
    job = make_experiment()
    metric_store.append(job.pk, {"loss": [(1, 1.0, 0.0), (2, 0.9, 0.0)]})
    metric_store.append(job.pk, {"loss": [(2, 0.8, 0.0)]})

    assert metric_store.duplicates(job.pk) == 1


def test_the_run_page_says_a_run_was_resumed(make_experiment, owner_client):
    job = make_experiment(restarts=2)

    page = owner_client.get(f"/experiments/{job.pk}/")

    assert "resumed 2×" in page.content.decode()
