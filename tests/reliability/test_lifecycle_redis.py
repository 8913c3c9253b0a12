"""Scorecard: queued jobs that finish after Redis is killed and restarted (20 jobs): 20/20."""

from __future__ import annotations

import time

import pytest

from webapp.experiments.models import Experiment

from .conftest import wait_for
from .lifecycle import digits_mlp, project, status, submit

JOBS = 20


@pytest.mark.django_db(transaction=True)
def test_queued_jobs_finish_after_redis_is_killed_and_restarted_empty(workers, redis_server):
    # given 20 queued jobs and two workers working through them
    workers.start()
    workers.start()
    owner = project()
    spec = digits_mlp(epochs=1, batch_size=128)
    jobs = [submit(owner, f"queued {index}", spec) for index in range(JOBS)]
    wait_for(lambda: any(status(job) == "succeeded" for job in jobs), 180,
             "the first job to finish", workers.log_text)

    # when Redis is killed (its queue, with the messages of the jobs still waiting, is gone)
    # and an empty one is started on the same port a second later
    redis_server.kill()
    lost = sum(status(job) == "queued" for job in jobs)
    time.sleep(1)
    redis_server.start()

    # then the workers' housekeeping sends those jobs' messages again from the database, and
    # every job finishes
    wait_for(lambda: all(status(job) in Experiment.TERMINAL for job in jobs), 300,
             "every job to end", workers.log_text)
    finished = sum(status(job) == "succeeded" for job in jobs)
    print(f"\nSCORECARD Redis killed and restarted: {finished}/{JOBS} jobs finished "
          f"({lost} were still queued when it died)")
    assert lost > 0, "the test needs jobs still queued when Redis dies"
    assert finished == JOBS
