"""A study whose worker is SIGKILLed mid-trial: the trial ends failed ("lost", not counted), a
live worker tries its parameters again, and the study still spends its whole budget. Moved here
from tests/e2e/test_tuning_study.py (40 s of the default suite's 10 minutes); ``make
test-reliability`` runs it with the other broken-on-purpose workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.e2e.conftest import Stack, stack
from tests.e2e.test_live_run import submit
from tests.e2e.test_tuning_study import submit_study, wait_for, wait_until_ended

__all__ = ["stack"]  # the e2e stack fixture: a server and two workers of its own


def test_a_killed_worker_s_trial_ends_failed_and_the_study_still_spends_its_budget(
        stack: Stack, tmp_path: Path) -> None:
    # given a third worker that takes trials only (the gpu queue, never a study's watchdog)
    session = stack.login()
    log = tmp_path / "victim.log"
    victim = stack.start_worker("victim@%h", "gpu", log)
    try:
        # Trials of 100 epochs of 45 steps, some seconds each: a run nobody watches writes its
        # progress every 2 s, so a trial of 20 short epochs could end before the poll below
        # ever saw its training begin on a loaded machine.
        source = submit(stack, session, "digits-mlp long", dataset="digits", arch="mlp",
                        hidden_sizes="32", epochs=100, batch_size=32)
        wait_until_ended(session, f"{stack.url}/experiments/{source}/", timeout=60)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text(errors="replace"):
            assert victim.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)

        # when a study of 4 trials, 3 at once, is submitted and the third worker is killed
        # (SIGKILL: no goodbye, its trial's heartbeat just stops) in the middle of its trial
        study_id = submit_study(stack, session, source, **{
            "name": "kill study", "algorithm": "random", "objective": "val_acc", "n_trials": 4,
            "timeout": 0, "parallelism": 3, "pruner": "none", "seed": 1,
            "lr_on": "on", "lr_low": 1e-3, "lr_high": 3e-2, "lr_log": "on"})
        data_url = f"{stack.url}/studies/{study_id}/data/"
        deadline = time.monotonic() + 60
        while not (killed := [t for t in session.get(data_url, timeout=10).json()["trials"]
                              if t["state"] == "running" and t["worker"].startswith("victim@")
                              and t["epochs"] is not None]):  # its training loop has begun
            assert time.monotonic() < deadline, ("no trial ran on the third worker",
                                                 log.read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        data = wait_for(session, data_url, timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)

    # then the study succeeded with its whole budget of 4 completed trials
    assert data["status"] == "succeeded", (data, stack.log.read_text()[-3000:])
    trials = {t["id"]: t for t in data["trials"]}
    assert sum(t["state"] == "complete" for t in trials.values()) == 4
    # and the killed trial ended failed ("lost", not counted), never left running
    lost = trials[killed[0]["id"]]
    assert lost["state"] == "lost" and lost["finished_at"] is not None
    page = session.get(f"{stack.url}/experiments/{lost['id']}/", timeout=10).text
    assert 'id="status-badge">failed<' in page
    # and its parameters were tried again by a live worker, to the end
    retried = [t for t in trials.values() if t["params"] == lost["params"] and t is not lost]
    assert [t["state"] for t in retried] == ["complete"]
    assert not retried[0]["worker"].startswith("victim@")
    # and the third worker took trials only: a study's watchdog never waited on it
    text = log.read_text(errors="replace")
    assert ".> gpu " in text and ".> default " not in text
    assert "Task experiments.trial[" in text and "Task experiments.tune[" not in text
