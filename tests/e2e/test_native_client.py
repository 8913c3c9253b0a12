"""The native Python client (clients/python, ``import fitboard``) against a live Fitboard
(Daphne, Redis, Celery workers: ``manage.py up``): an online run's points reach the run page
live and read back exactly; an offline run's file, synced later, gives the same points; a
script killed with SIGKILL leaves its run failed once its heartbeat stops (and not before,
however long it stays quiet); a token of another project is refused."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Stack
from tests.e2e.test_live_run import Watcher
from tests.e2e.test_mlflow_tracking import create_token

pytestmark = pytest.mark.e2e
STEPS = 200
PROJECT = "native-e2e"

# Logs three metrics a step; prints the run's id (or the offline file) and, at the end, what
# it logged and run.status. Waits for the file argv[2] before logging, so a test can open its
# socket first.
SCRIPT = '''
import json, math, sys, time
from pathlib import Path
import fitboard

go, steps, offline = Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "offline"
run = fitboard.init(project="native-e2e", name="native-script", config={
    "optimizer": {"name": "adamw", "lr": 0.001}, "batch": 32}, tags={"team": "nlp"},
    offline=offline, directory=sys.argv[1])
print(run.path if offline else run.id, flush=True)
while not go.exists():
    time.sleep(0.05)
logged = {"loss": [], "eval_loss": [], "eval_accuracy": []}
for step in range(steps):
    values = {"loss": 2.0 * math.exp(-step / 40) + 0.05 + 1e-13 * step,
              "eval_loss": 2.1 * math.exp(-step / 50) + 0.08,
              "eval_accuracy": 0.5 + 0.45 * (1 - math.exp(-step / 50))}
    run.log(values, step=step)
    for key, value in values.items():
        logged[key].append([step, value])
checkpoint = Path(sys.argv[1]) / "model.pt"
checkpoint.write_bytes(b"weights" * 100)
run.log_checkpoint(checkpoint)
run.finish()
print(json.dumps(logged), flush=True)
print(run.status, flush=True)
'''

# Logs a point, then stays alive without logging: only its heartbeat speaks for it.
QUIET = '''
import sys, time
import fitboard
run = fitboard.init(project="native-e2e", name="quiet-script")
run.log({"loss": 1.0}, step=0)
run.flush()
print(run.id, flush=True)
time.sleep(3600)
'''


@pytest.fixture(scope="module")
def site(stack: Stack) -> tuple[Stack, requests.Session, str]:
    """The stack with a project for the scripts, and a token for it made on its page."""
    session = stack.login()
    make_project(stack, session, PROJECT)
    return stack, session, create_token(stack, session)


def make_project(stack: Stack, session: requests.Session, name: str) -> int:
    """A project made on the projects page; its id (the page it redirects to)."""
    response = stack.post_form(session, "/projects/", {"name": name})
    match = re.search(r"/projects/(\d+)/$", response.url)
    assert match is not None, response.text[:2000]
    return int(match.group(1))


def start(script: str, tmp_path: Path, stack: Stack, token: str, *args: str
          ) -> subprocess.Popen[str]:
    (tmp_path / "script.py").write_text(script)
    env = {**os.environ, "FITBOARD_URL": stack.url, "FITBOARD_TOKEN": token}
    return subprocess.Popen([sys.executable, str(tmp_path / "script.py"), str(tmp_path), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def history(stack: Stack, token: str, run_id: int, key: str) -> list[dict[str, Any]]:
    """A metric's points as Fitboard stored them, read through the tracking API."""
    response = requests.get(f"{stack.url}/api/2.0/mlflow/metrics/get-history",
                            params={"run_id": run_id, "metric_key": key},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()["metrics"]


def run_row(stack: Stack, token: str, run_id: int) -> dict[str, Any]:
    response = requests.get(f"{stack.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()["run"]


def test_an_online_run_reaches_the_page_live_and_reads_back_exactly(site, tmp_path):
    # given a script using the client, and the run page's socket open before it logs
    stack, session, token = site
    go = tmp_path / "go"
    process = start(SCRIPT, tmp_path, stack, token, str(go), str(STEPS), "online")
    try:
        run_id = int(process.stdout.readline().strip() or 0)
        assert run_id, process.stderr.read()
        watcher = Watcher(stack, session, run_id)

        async def watch() -> None:
            task = asyncio.create_task(watcher.watch(timeout=120))
            while not watcher.messages:
                await asyncio.sleep(0.05)
            go.touch()
            await task

        asyncio.run(watch())
        logged = json.loads(process.stdout.readline())
        status = process.stdout.readline().strip()
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        process.kill()

    # then every step reached the page live, and the run ended as succeeded
    assert watcher.drawn_steps("train_loss") == list(range(STEPS))
    assert watcher.drawn_steps("val_loss") == list(range(STEPS))
    assert watcher.messages[-1][1]["status"] == "succeeded"
    # and the script's run.status says so, as the server answered its finish
    assert status == "succeeded"
    # and the points, params, tags and checkpoint read back exactly as logged
    for key, points in logged.items():
        assert [[m["step"], m["value"]] for m in history(stack, token, run_id, key)] == points
    run = run_row(stack, token, run_id)
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {
        "optimizer.name": "adamw", "optimizer.lr": "0.001", "batch": "32"}
    assert {"key": "team", "value": "nlp"} in run["data"]["tags"]
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    assert "model.pt" in page and "native-script" in page
    download = session.get(f"{stack.url}/experiments/{run_id}/artifacts/checkpoints/model.pt",
                           timeout=10)
    assert download.content == b"weights" * 100


def test_an_offline_run_synced_later_gives_the_same_points(site, tmp_path):
    # given a script that logged offline (no server named: no URL, no token)
    stack, _, token = site
    (tmp_path / "go").touch()
    process = start(SCRIPT, tmp_path, stack, "", str(tmp_path / "go"), "50", "offline")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    path, logged = Path(out.splitlines()[0]), json.loads(out.splitlines()[1])
    times = {key: c[2] for line in path.read_text().splitlines()
             for key, c in json.loads(line).get("metrics", {}).items()}

    # when `fitboard sync` uploads its file, later
    env = {**os.environ, "FITBOARD_URL": stack.url, "FITBOARD_TOKEN": token}
    synced = subprocess.run([str(Path(sys.executable).with_name("fitboard")), "sync", str(path)],
                            env=env, capture_output=True, text=True, timeout=60)
    again = subprocess.run([sys.executable, "-m", "fitboard", "sync", str(path)], env=env,
                           capture_output=True, text=True, timeout=60)

    # then the run holds the same points, with the times the script logged them at
    assert synced.returncode == 0, synced.stderr
    run_id = int(synced.stdout.split("run ")[1].split()[0])
    for key, points in logged.items():
        stored = history(stack, token, run_id, key)
        assert [[m["step"], m["value"]] for m in stored] == points
        assert [m["timestamp"] for m in stored] == [round(t * 1000) for t in times[key]]
    run = run_row(stack, token, run_id)
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_name"] == "native-script"
    assert {"key": "optimizer.lr", "value": "0.001"} in run["data"]["params"]
    # and a second sync of the same file is refused rather than making a twin
    assert again.returncode == 1 and "synced before" in again.stderr


def test_a_killed_script_leaves_its_run_failed_after_the_heartbeat_timeout(site, tmp_path):
    # given a script that logs once and then stays quiet for longer than the timeout
    stack, _, token = site
    silence = int(stack.env["FITBOARD_EXTERNAL_HEARTBEAT_S"])
    process = start(QUIET, tmp_path, stack, token)
    try:
        run_id = int(process.stdout.readline().strip() or 0)
        assert run_id, process.stderr.read()
        time.sleep(silence + 2)
        # then its heartbeat keeps it running, though it logs nothing
        alive = run_row(stack, token, run_id)["info"]["status"]

        # when it is killed without a chance to say anything
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed = time.monotonic()
    finally:
        process.kill()
    status = alive
    while status == "RUNNING" and time.monotonic() - killed < silence + 30:
        time.sleep(0.5)
        status = run_row(stack, token, run_id)["info"]["status"]

    # then the housekeeping of the workers marks it failed, after the timeout and not never
    assert alive == "RUNNING"
    assert status == "FAILED"
    assert time.monotonic() - killed >= silence - 3  # its last beat came before the kill
    page = stack.login().get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    assert f"no data from the script for {silence} s" in page


def test_a_token_of_another_project_is_refused(site, tmp_path):
    # given a user with a token for their own project only
    stack, session, _ = site
    other_project = make_project(stack, session, "native-other")
    page = stack.post_form(session, "/settings/tokens/", {
        "name": "other", "scope": "write", "projects": other_project})
    other = re.search(r'id="token-value">([^<]+)<', page.text)[1]
    env = {**os.environ, "FITBOARD_URL": stack.url, "FITBOARD_TOKEN": other}

    # when a script logs into a project that token does not reach
    failed = subprocess.run([sys.executable, "-c",
                             f"import fitboard; fitboard.init(project={PROJECT!r})"],
                            env=env, capture_output=True, text=True, timeout=60)

    # then it is told the token reaches no such project and cannot make one, and no run is made
    assert failed.returncode == 1
    assert "HTTP 403" in failed.stderr and "native-e2e" in failed.stderr
    assert "a token limited to chosen projects cannot create one" in failed.stderr
    listing = requests.post(f"{stack.url}/api/2.0/mlflow/runs/search",
                            json={"experiment_ids": [str(other_project)]},
                            headers={"Authorization": f"Bearer {other}"}, timeout=10)
    assert listing.json().get("runs", []) == []

