"""The whole loop with real processes: form → Celery worker → live WebSocket curve → checkpoint."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import numpy as np
import pytest
import requests
import websockets
from django.conf import settings

from tests.e2e.conftest import Stack
from training.checkpoints import load
from training.data import prepare
from training.spec import ExperimentSpec
from webapp.experiments.forms import spec_initial

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


def submit(stack: Stack, session: requests.Session, name: str, **fields: Any) -> int:
    """Fill the New experiment form with the defaults plus ``fields``; returns the run's id."""
    form = session.get(f"{stack.url}/experiments/new/", timeout=10)
    project = re.search(r'<option value="(\d+)" selected>', form.text)
    assert project is not None, form.text[:2000]
    data: dict[str, Any] = {"name": name, "project": project.group(1),
                            **spec_initial(ExperimentSpec()), **fields}
    data["batch_norm"] = "on" if data["batch_norm"] else ""
    response = stack.post_form(session, "/experiments/new/", data)
    match = re.search(r"/experiments/(\d+)/$", response.url)
    assert match is not None, f"form not accepted: {response.url}"
    return int(match.group(1))


class Watcher:
    """A WebSocket client that records every message with its arrival time."""

    def __init__(self, stack: Stack, session: requests.Session, run_id: int) -> None:
        self.url = stack.url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
        self.headers = {"Cookie": f"sessionid={session.cookies['sessionid']}",
                        "Origin": stack.url}
        self.messages: list[tuple[float, dict[str, Any]]] = []

    async def watch(self, timeout: float, until: set[str] = TERMINAL,
                    on_points: Any = None) -> None:
        async with websockets.connect(self.url, additional_headers=self.headers) as socket:
            async with asyncio.timeout(timeout):
                async for raw in socket:
                    message = json.loads(raw)
                    self.messages.append((time.time(), message))
                    if message["kind"] == "points" and on_points is not None:
                        await on_points(message)
                    if message.get("status") in until:
                        return

    def status_time(self, status: str) -> float:
        return next(t for t, m in self.messages if m.get("status") == status and
                    m["kind"] == "status")

    def live_points(self, key: str) -> list[tuple[float, int]]:
        return [(t, step) for t, m in self.messages if m["kind"] == "points"
                for step, _ in m["points"].get(key, [])]

    def drawn_steps(self, key: str) -> list[int]:
        """Steps as the page draws them: the snapshot, then live points past the last step."""
        drawn: list[int] = []
        for _, message in self.messages:
            if message["kind"] == "snapshot":
                steps = message["points"].get(key, {}).get("steps", [])
            elif message["kind"] == "points":
                steps = [step for step, _ in message["points"].get(key, [])]
            else:
                continue
            drawn += [s for s in steps if not drawn or s > drawn[-1]]
        return drawn


def test_a_submitted_run_streams_every_step_live_and_its_checkpoint_reproduces_it(stack, tmp_path):
    # Given a logged-in user who submits the default digits CNN for 6 epochs
    session = stack.login()
    run_id = submit(stack, session, "e2e digits", epochs=6)
    watcher = Watcher(stack, session, run_id)

    # When they watch its page's WebSocket until it ends
    asyncio.run(watcher.watch(timeout=240))

    # Then points arrived before the run was reported succeeded, every step exactly once
    finished = watcher.status_time("succeeded")
    live = watcher.live_points("loss")
    total = 6 * 23  # 1437 training rows in batches of 64
    assert live and live[0][0] < finished
    live_steps = [step for _, step in live]
    assert len(live_steps) == len(set(live_steps)), "a point was sent twice"
    assert watcher.drawn_steps("loss") == list(range(1, total + 1))
    # and the throttle held, by the server's clock (the times the client read them say little: a
    # socket that fell behind hands over a dozen messages within milliseconds): points messages
    # went out at least an interval apart (less a millisecond: the server reads two clocks),
    # but for those sent at once: the closing flush, one on a new viewer's arrival and one
    # before each save of the resumable state (at most one per checkpoint interval)
    sent = np.array([m["sent_at"] for _, m in watcher.messages if m["kind"] == "points"])
    early = int((np.diff(sent) < settings.FITBOARD_LIVE_INTERVAL - 0.001).sum())
    saves = int((sent[-1] - sent[0]) // settings.FITBOARD_CHECKPOINT_INTERVAL) + 1
    assert early <= 2 + saves, f"{early} of {len(sent)} messages went out early"

    # And the history endpoint agrees, and tells how fast points reached the browser
    history = session.get(f"{stack.url}/experiments/{run_id}/metrics/", timeout=10).json()
    logged = dict(zip(history["metrics"]["loss"]["steps"], history["metrics"]["loss"]["times"],
                      strict=True))
    latency_ms = np.array([(t - logged[step]) * 1000 for t, step in live])
    print(f"\nlive points: {len(live)} in "
          f"{len([m for _, m in watcher.messages if m['kind'] == 'points'])} messages; "
          f"log→browser latency p50 {np.percentile(latency_ms, 50):.0f} ms, "
          f"p99 {np.percentile(latency_ms, 99):.0f} ms; "
          f"first point {live[0][0] - watcher.messages[0][0]:.1f} s after connecting, "
          f"last point {finished - live[-1][0]:.3f} s before 'succeeded'")

    # And the downloaded checkpoint reproduces the reported validation accuracy
    final = [m for _, m in watcher.messages if m.get("status") == "succeeded"][-1]
    archive = session.get(f"{stack.url}/experiments/{run_id}/checkpoint/best/", timeout=30)
    assert archive.headers["Content-Type"] == "application/zip"
    path = tmp_path / "best.zip"
    path.write_bytes(archive.content)
    checkpoint = load(path)
    spec = checkpoint.spec
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    predicted = checkpoint.model(data.x_val).argmax(1)
    accuracy = int((predicted == data.y_val).sum()) / len(data.y_val)
    assert final["best_metric_name"] == "val_acc"
    assert accuracy == pytest.approx(final["best_metric_value"], abs=1e-9)
    assert accuracy > 0.9


def test_a_run_whose_loss_explodes_fails_with_the_reason_on_its_page(stack):
    session = stack.login()
    run_id = submit(stack, session, "e2e exploding", dataset="diabetes", arch="mlp", loss="mse",
                    optimizer="sgd", lr="5", epochs=5)
    watcher = Watcher(stack, session, run_id)

    asyncio.run(watcher.watch(timeout=120))

    final = watcher.messages[-1][1]
    assert final["status"] == "failed"
    assert "loss became" in final["error"]
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10).text
    assert "loss became" in page


def test_cancelling_a_running_job_stops_it_and_keeps_its_last_checkpoint(stack, tmp_path):
    session = stack.login()
    run_id = submit(stack, session, "e2e cancel", epochs=200)
    watcher = Watcher(stack, session, run_id)
    step_at_cancel: list[int] = []

    async def cancel_once_an_epoch_is_done(message: dict[str, Any]) -> None:
        if not step_at_cancel and "val_acc" in message["points"]:
            step_at_cancel.append(message["points"]["val_acc"][-1][0])
            response = await asyncio.to_thread(cancel, stack, session, run_id)
            assert response.status_code == 200

    asyncio.run(watcher.watch(timeout=180, on_points=cancel_once_an_epoch_is_done))

    # The worker stopped within the epoch after the request (23 steps each), not 200 epochs later
    assert watcher.messages[-1][1]["status"] == "cancelled"
    last_step = max(step for _, step in watcher.live_points("loss"))
    assert step_at_cancel[0] <= last_step < step_at_cancel[0] + 2 * 23
    archive = session.get(f"{stack.url}/experiments/{run_id}/checkpoint/last/", timeout=30)
    assert archive.status_code == 200
    path = tmp_path / "last.zip"
    path.write_bytes(archive.content)
    assert load(path).meta["step"] <= last_step


def cancel(stack: Stack, session: requests.Session, run_id: int) -> requests.Response:
    page = session.get(f"{stack.url}/experiments/{run_id}/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return session.post(f"{stack.url}/experiments/{run_id}/cancel/",
                        data={"csrfmiddlewaretoken": token.group(1)},
                        headers={"Referer": f"{stack.url}/experiments/{run_id}/"}, timeout=10)
