"""A training script using the unmodified mlflow client logs into a live Fitboard (Daphne, Redis,
Celery workers: ``manage.py up``): its run shows in the list, its points reach the run page live
over the WebSocket, it gets a verdict, compares beside a form run, and mlflow reads back
exactly what it logged."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_live_run import Watcher, submit

pytestmark = pytest.mark.e2e
STEPS = 200
SCRIPT = '''
import json, math, os, sys, time
from pathlib import Path
import mlflow
from mlflow import MlflowClient

out, go = Path(sys.argv[1]), Path(sys.argv[2])
mlflow.set_experiment("mlflow-e2e")
with mlflow.start_run(run_name="e2e-script", tags={"team": "nlp"}) as run:
    mlflow.log_params({"lr": 0.001, "optimizer": "adamw"})
    print(run.info.run_id, flush=True)
    while not go.exists():  # the test's socket is open: every point from here is live
        time.sleep(0.05)
    client, logged = MlflowClient(), {"loss": [], "eval_loss": [], "eval_accuracy": []}
    start = int(time.time() * 1000)
    for step in range(int(sys.argv[3])):
        values = {"loss": 2.0 * math.exp(-step / 40) + 0.05,
                  "eval_loss": 2.1 * math.exp(-step / 50) + 0.08,
                  "eval_accuracy": 0.5 + 0.45 * (1 - math.exp(-step / 50))}
        for key, value in values.items():
            stamp = start + step * 10 + len(key)
            client.log_metric(run.info.run_id, key, value, timestamp=stamp, step=step)
            logged[key].append([step, value, stamp])
    artifact = out.with_name("notes.txt")
    artifact.write_text("trained elsewhere")
    mlflow.log_artifact(str(artifact))
out.write_text(json.dumps(logged))
'''


def create_token(stack: Stack, session) -> str:
    page = stack.post_form(session, "/settings/tokens/", {"name": "e2e", "scope": "write"})
    match = re.search(r'id="token-value">([^<]+)<', page.text)
    assert match is not None, page.text[:2000]
    return match.group(1)


def test_a_script_logging_with_mlflow_shows_live_and_reads_back_exactly(stack, tmp_path,
                                                                        monkeypatch):
    # given a token made on the settings page and a script that knows only the URL and it
    session = stack.login()
    token = create_token(stack, session)
    form_run = submit(stack, session, "e2e form run")
    script, out, go = tmp_path / "train.py", tmp_path / "logged.json", tmp_path / "go"
    script.write_text(SCRIPT)
    env = {**os.environ, "MLFLOW_TRACKING_URI": stack.url, "MLFLOW_TRACKING_TOKEN": token}
    process = subprocess.Popen([sys.executable, str(script), str(out), str(go), str(STEPS)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        run_id = int(process.stdout.readline().strip() or 0)
        assert run_id, process.stderr.read()

        # when the run page's socket is open while the script logs
        watcher = Watcher(stack, session, run_id)

        async def watch() -> None:
            task = asyncio.create_task(watcher.watch(timeout=180))
            while not watcher.messages:  # the snapshot: the socket is in the run's group
                await asyncio.sleep(0.05)
            go.touch()
            await task

        started = time.monotonic()
        asyncio.run(watch())
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        process.kill()
    print(f"SCORECARD mlflow e2e: {3 * STEPS} points in {time.monotonic() - started:.1f} s")

    # then every step reached the page live, in the same messages a form run sends
    live = watcher.live_points("val_loss")
    assert [step for _, step in live] == list(range(STEPS))
    assert watcher.drawn_steps("train_loss") == list(range(STEPS))
    seqs = [m["seq"] for _, m in watcher.messages if m["kind"] == "points"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert watcher.messages[-1][1]["status"] == "succeeded"
    # and the run is listed, judged, and compares beside the form run with its params
    listing = session.get(f"{stack.url}/", timeout=10).text
    assert "e2e-script" in listing and "trained elsewhere" in listing
    diagnostics = session.get(f"{stack.url}/experiments/{run_id}/diagnostics/", timeout=10)
    assert 'id="verdict-kind"' in diagnostics.text
    compare = session.get(f"{stack.url}/compare/", params={"ids": f"{run_id},{form_run}"},
                          timeout=10).text
    assert "e2e-script" in compare and "e2e form run" in compare and "params.lr" in compare
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    assert "notes.txt" in page and "adamw" in page
    # and mlflow's own reader returns exactly what the script logged
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=stack.url)
    logged = json.loads(Path(out).read_text())
    for key, points in logged.items():
        history = client.get_metric_history(str(run_id), key)
        assert [[m.step, m.value, m.timestamp] for m in history] == points


QUICK_SCRIPT = '''
import sys
import mlflow
import torch
from sklearn.datasets import load_digits

torch.manual_seed(0)
digits = load_digits()
x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
mlflow.set_experiment("mlflow-e2e")
with mlflow.start_run(run_name="quick-script") as run:
    print(run.info.run_id, flush=True)
    for epoch in range(12):
        for batch in torch.randperm(len(x)).split(128):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mlflow.log_metric("loss", loss.item())  # no step, no validation: a quick script
'''


def test_a_quick_script_that_logs_only_its_training_loss_is_judged(stack, tmp_path,
                                                                   monkeypatch):
    # given a token and a quick script: a real MLP on digits, its loss logged at every step
    # without a step number and without any validation metric
    session = stack.login()
    token = create_token(stack, session)
    script = tmp_path / "quick.py"
    script.write_text(QUICK_SCRIPT)
    env = {**os.environ, "MLFLOW_TRACKING_URI": stack.url, "MLFLOW_TRACKING_TOKEN": token}

    # when it runs to its end
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_id = int(done.stdout.split()[0])

    # then every step's loss is kept (mlflow reads back all 180, in order)
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    history = MlflowClient(tracking_uri=stack.url).get_metric_history(str(run_id), "loss")
    assert len(history) == 12 * 15
    # and the run has a verdict from its training loss, whose pages say what it cannot judge
    diagnostics = session.get(f"{stack.url}/experiments/{run_id}/diagnostics/", timeout=10).text
    assert 'id="verdict-kind">healthy<' in diagnostics
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    for html in (diagnostics, page):
        assert "Overfitting cannot be judged without a validation metric" in html
    listing = session.get(f"{stack.url}/", timeout=10).text
    assert "quick-script" in listing
