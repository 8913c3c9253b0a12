"""Scorecard: runs of one job at once when its message is delivered twice: 1; duplicate
(run, metric, step) rows: 0."""

from __future__ import annotations

import pytest

from webapp.experiments import metric_store
from webapp.experiments.launch import queue_for
from webapp.experiments.models import Experiment
from webapp.experiments.tasks import train

from .conftest import wait_for
from .lifecycle import DuplicateWatch, digits_mlp, project, status, submit, total_steps

JOBS = 5


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_message_is_delivered_twice_runs_once(workers):
    # given two idle workers
    first, second = workers.start(), workers.start()
    wait_for(lambda: workers.log_text().count(" ready.") >= 2, 120, "two workers ready",
             workers.log_text)
    owner = project()
    spec = digits_mlp(epochs=2, batch_size=32)
    target = total_steps(spec)

    # when each job's message goes to the broker twice (as a redelivery after the visibility
    # timeout does), so that both workers receive it
    jobs = []
    for index in range(JOBS):
        job = submit(owner, f"twice {index}", spec)
        train.apply_async((job.pk,), queue=queue_for(spec))
        jobs.append(job)
    with DuplicateWatch(jobs) as watch:
        wait_for(lambda: all(status(job) in Experiment.TERMINAL for job in jobs), 300,
                 "every job to end", workers.log_text)

    # then each job ran once: one start (its lease epoch), no restart, each step stored once,
    # and every extra delivery found its job taken and returned
    rows = {job.pk: Experiment.objects.get(pk=job.pk) for job in jobs}
    runs = [rows[job.pk].lease_epoch for job in jobs]
    skipped = workers.log_text().count("is not queued any more; skipping")
    steps_ok = all(metric_store.read(job.pk)["loss"].steps.tolist()
                   == list(range(1, target + 1)) for job in jobs)
    print(f"\nSCORECARD duplicate delivery: {2 * JOBS} deliveries of {JOBS} jobs; runs per job "
          f"{runs}; deliveries that saw the job taken and returned: {skipped}; duplicate "
          f"(run, metric, step) rows at any moment: {watch.worst}")
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert runs == [1] * JOBS and {row.restarts for row in rows.values()} == {0}
    # (more than one each when housekeeping also re-sent a message it could not see waiting)
    assert skipped >= JOBS
    assert watch.worst == 0 and steps_ok
    assert first.poll() is None and second.poll() is None
