"""Scorecard: jobs completed after kill -9 of the worker mid-epoch (20 trials, random step):
20/20, total steps equal the target, resumed at the last checkpoint."""

from __future__ import annotations

import os
import random
import time

import pytest

from training import resume
from webapp.experiments import metric_store
from webapp.experiments.models import Experiment

from .conftest import wait_for
from .lifecycle import DuplicateWatch, digits_mlp, project, status, submit, total_steps, workdir

TRIALS = int(os.environ.get("FITBOARD_KILL_TRIALS", "20"))  # fewer while developing


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_is_killed_mid_epoch_resumes_from_its_last_checkpoint_and_completes(
        workers):
    # given two workers (saving the training state after every step) and a job of 2 epochs
    env = {"FITBOARD_CHECKPOINT_INTERVAL_S": "0"}
    workers.start(**env)
    workers.start(**env)
    owner = project()
    spec = digits_mlp(epochs=2, batch_size=32)
    target = total_steps(spec)
    draw = random.Random(20261202)
    completed, outcomes = 0, []
    for trial in range(TRIALS):
        began = time.monotonic()
        job = submit(owner, f"kill {trial}", spec)
        kill_after = draw.randrange(2, target - 10)  # a random step, in any epoch
        with DuplicateWatch([job]) as watch:
            # when its worker is killed (SIGKILL: no goodbye) once it has passed that step
            wait_for(lambda job=job, k=kill_after: resume.saved_step(workdir(job)) >= k,
                     120, f"job {job.pk} to reach step {kill_after}", workers.log_text)
            victim = Experiment.objects.get(pk=job.pk).worker
            workers.kill(workers.running(victim))
            last_checkpoint = resume.saved_step(workdir(job))
            workers.start(**env)  # the machine's supervisor brings a worker back
            # then another worker takes it back, resumes it and it completes
            wait_for(lambda job=job: status(job) in Experiment.TERMINAL, 120,
                     f"job {job.pk} to end", workers.log_text)
        done = Experiment.objects.get(pk=job.pk)
        steps = metric_store.read(job.pk)["loss"].steps.tolist()
        outcome = {
            "status": done.status, "restarts": done.restarts,
            "steps": done.summary.get("steps"), "target": target,
            "killed_after": kill_after, "last_checkpoint": last_checkpoint,
            "resumed_from": done.progress.get("resumed_from"),
            "stored_steps_ok": steps == list(range(1, target + 1)),
            "worst_duplicates": watch.worst, "seconds": round(time.monotonic() - began, 1),
        }
        outcomes.append(outcome)
        completed += (done.status == "succeeded" and outcome["steps"] == target
                      and outcome["resumed_from"] == last_checkpoint
                      and outcome["stored_steps_ok"] and watch.worst == 0)
    seconds = sorted(o["seconds"] for o in outcomes)
    print(f"\nSCORECARD kill -9 mid-epoch: {completed}/{TRIALS} completed with all {target} "
          f"steps stored once, resumed at the last checkpoint; killed after steps "
          f"{sorted(o['killed_after'] for o in outcomes)}; restarts per job "
          f"{sorted(o['restarts'] for o in outcomes)}; seconds per trial (kill to end "
          f"included) median {seconds[len(seconds) // 2]}")
    assert completed == TRIALS, [o for o in outcomes if o["status"] != "succeeded"
                                 or o["resumed_from"] != o["last_checkpoint"]
                                 or not o["stored_steps_ok"] or o["worst_duplicates"]
                                 or o["steps"] != target]
