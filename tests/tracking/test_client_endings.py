"""How a script's end ends its native-client run, against a live Fitboard: SIGTERM and Ctrl-C
end it as killed with the reason and every point sent; an exception in a ``with`` block fails
it and propagates unchanged, even when the server is gone; ``sys.exit(0)`` succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import fitboard
import pytest
from fitboard import run as client_run

from tests.flaky_server import flaky
from webapp.experiments import metric_store
from webapp.experiments.models import Experiment

# Logs 50 steps, says so, then trains on without logging until it is told to stop.
LOOPING = """
import sys, time
from pathlib import Path
import fitboard
run = fitboard.init(project="vision", name="looping", flush_s=60)
for step in range(50):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
print(run.id, flush=True)
while True:
    time.sleep(0.05)
"""

INTERRUPTED = """
import fitboard
run = fitboard.init(project="vision", name="interrupted", flush_s=60)
print(run.id, flush=True)
for step in range(50):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
raise KeyboardInterrupt
"""

EXITS_0 = """
import sys
import fitboard
with fitboard.init(project="vision", name="exits") as run:
    print(run.id, flush=True)
    run.log({"loss": 1.0}, step=0)
    sys.exit(0)
"""


def script(code: str, live_server: Any, token: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FITBOARD_URL": live_server.url, "FITBOARD_TOKEN": token,
           "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_ends_the_run_as_killed_with_every_point_sent(live_server, token, project):
    # given a script that logged 50 points (still in its buffer: it sends every 60 s)
    process = script(LOOPING, live_server, token)
    run_id = int(process.stdout.readline() or 0)
    assert run_id, process.stderr.read()

    # when it is sent SIGTERM (a scheduler's preemption, `kill`, a container stopped)
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)

    # then it exits as SIGTERM kills, its run killed for that reason, every point stored
    assert code == 128 + signal.SIGTERM, process.stderr.read()
    run = Experiment.objects.get(pk=run_id)
    assert run.status == Experiment.Status.CANCELLED
    assert run.error == "the script ended its run as killed: SIGTERM (15)"
    assert len(metric_store.read(run_id)["train_loss"]) == 50


def test_an_uncaught_ctrl_c_ends_the_run_as_killed(live_server, token, project):
    # given a script interrupted with Ctrl-C outside any `with` block
    process = script(INTERRUPTED, live_server, token)
    out, err = process.communicate(timeout=60)

    # then its run ends as killed, as it would inside one, with its points
    assert process.returncode != 0 and "KeyboardInterrupt" in err
    run = Experiment.objects.get(pk=int(out.split()[0]))
    assert run.status == Experiment.Status.CANCELLED
    assert run.error == "the script ended its run as killed: KeyboardInterrupt"
    assert len(metric_store.read(run.pk)["train_loss"]) == 50


def test_sys_exit_0_inside_the_block_ends_the_run_as_succeeded(live_server, token, project):
    process = script(EXITS_0, live_server, token)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert Experiment.objects.get(pk=int(out)).status == Experiment.Status.SUCCEEDED


def test_an_exception_in_the_block_fails_the_run_with_its_reason(live_server, token, project):
    # when the script's code raises inside the run's block
    with pytest.raises(ValueError, match="loss is nan") as raised:
        with fitboard.init(project="vision", name="raises", url=live_server.url,
                           token=token) as run:
            run.log({"loss": 1.0}, step=0)
            raise ValueError("loss is nan")

    # then the exception reaches the script unchanged, and the run failed saying why
    assert type(raised.value) is ValueError
    row = Experiment.objects.get(pk=run.id)
    assert row.status == Experiment.Status.FAILED
    assert row.error == "the script ended its run as failed: ValueError: loss is nan"


def test_the_scripts_exception_is_not_replaced_when_the_server_is_gone(
        live_server, token, project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # given a run whose server goes away before the block ends
    monkeypatch.setattr(client_run, "SEND_RETRIES", 1)
    with flaky(live_server.url) as proxy:
        run = fitboard.init(project="vision", name="raises", url=proxy.url, token=token,
                            finish_timeout_s=0.5)
        proxy.down()

        # when the script's code raises inside the block
        started = time.monotonic()
        with warnings.catch_warnings(record=True) as said, pytest.raises(ValueError) as raised:
            warnings.simplefilter("always")
            with run:
                run.log({"loss": 1.0}, step=0)
                raise ValueError("out of memory")

    # then the script sees its own exception, and a warning that the run was not ended
    assert str(raised.value) == "out of memory"
    assert any(f"run {run.id} not ended" in str(w.message) for w in said)
    assert time.monotonic() - started < 10
