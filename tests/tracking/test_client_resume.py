"""``fitboard.init(resume=run_id)`` against a live Fitboard: a script that crashed, or whose
run ended, logs into the same run again from the step after the last it stored; a run the
token does not reach, a run Fitboard trains and a config changed under it are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import fitboard
import pytest
from fitboard.transport import FitboardError

from training.spec import ExperimentSpec
from webapp.experiments import metric_store
from webapp.experiments.models import Experiment

# Logs 30 steps, sends them, says its run's id, then waits to be killed (a crash).
CRASHES = """
import time
import fitboard
run = fitboard.init(project="vision", name="crashes", config={"lr": 0.1})
for step in range(30):
    run.log({"loss": 1.0 / (step + 1)})
run.flush()
print(run.id, flush=True)
time.sleep(600)
"""


def crashed_run(live_server: Any, token: str) -> int:
    """The id of a run whose script was SIGKILLed after storing 30 steps (still running)."""
    env = {**os.environ, "FITBOARD_URL": live_server.url, "FITBOARD_TOKEN": token,
           "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", CRASHES], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = int(process.stdout.readline() or 0)
    assert run_id, process.stderr.read()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    return run_id


def test_a_crashed_scripts_run_goes_on_from_the_step_after_its_last(live_server, token,
                                                                    project):
    run_id = crashed_run(live_server, token)
    runs_before = Experiment.objects.count()

    # when the script starts again, resuming its run by id
    run = fitboard.init(project="vision", config={"lr": 0.1}, url=live_server.url,
                        token=token, resume=run_id)
    assert (run.id, run.last_step) == (run_id, 29)
    for _ in range(20):
        run.log({"loss": 0.01})
    run.finish()

    # then the same run holds the 50 steps, in order, and it succeeded; no run was added
    stored = metric_store.read(run_id)["train_loss"]
    assert stored.steps.tolist() == list(range(50))
    assert Experiment.objects.get(pk=run_id).status == Experiment.Status.SUCCEEDED
    assert Experiment.objects.count() == runs_before


def test_an_ended_run_runs_again_when_resumed(live_server, token, project):
    with pytest.raises(ValueError):
        with fitboard.init(project="vision", url=live_server.url, token=token) as first:
            first.log({"loss": 1.0}, step=0)
            raise ValueError("out of memory")
    assert Experiment.objects.get(pk=first.id).status == Experiment.Status.FAILED

    run = fitboard.init(project="vision", url=live_server.url, token=token, resume=first.id)
    assert run.status == "running" and run.last_step == 0
    assert Experiment.objects.get(pk=first.id).status == Experiment.Status.RUNNING
    run.log({"loss": 0.5})
    run.finish()
    row = Experiment.objects.get(pk=first.id)
    assert row.status == Experiment.Status.SUCCEEDED and row.error == ""
    assert metric_store.read(first.id)["train_loss"].steps.tolist() == [0, 1]


def test_a_run_without_points_resumes_from_step_0(live_server, token, project):
    first = fitboard.init(project="vision", url=live_server.url, token=token)
    first.finish()
    run = fitboard.init(project="vision", url=live_server.url, token=token, resume=first.id)
    assert run.last_step is None
    run.log({"loss": 0.5})
    run.finish()
    assert metric_store.read(first.id)["train_loss"].steps.tolist() == [0]


def test_a_config_changed_under_the_run_is_refused_and_the_run_stays_ended(
        live_server, token, project):
    first = fitboard.init(project="vision", config={"lr": 0.1}, url=live_server.url,
                          token=token)
    first.finish(status="failed")

    with pytest.raises(FitboardError, match="lr"):
        fitboard.init(project="vision", config={"lr": 0.5}, url=live_server.url, token=token,
                      resume=first.id)
    assert Experiment.objects.get(pk=first.id).status == Experiment.Status.FAILED


def test_runs_the_token_cannot_resume_are_refused(live_server, token, owner, project,
                                                  victim_run):
    victims, _ = victim_run
    trained = Experiment.objects.create(project=project, name="trained", created_by=owner,
                                        spec=ExperimentSpec().to_dict(),
                                        status=Experiment.Status.SUCCEEDED)
    for run_id, said in ((victims.pk, "not found|does not exist"),
                         (trained.pk, "trained by Fitboard|not found"),
                         ("x; drop", "not found|does not exist")):
        with pytest.raises(FitboardError, match=said):
            fitboard.init(project="vision", url=live_server.url, token=token,
                          resume=run_id)
    victims.refresh_from_db()
    assert not victims.is_terminal and victims.status == Experiment.Status.RUNNING


def test_resume_needs_a_server(tmp_path):
    with pytest.raises(FitboardError, match="needs a server"):
        fitboard.init(project="vision", offline=True, directory=tmp_path, resume=3)
