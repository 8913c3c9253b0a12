"""The run page's step counter and ETA move with every live message, not only at epoch ends; a
run started from another run's weights trains through the same stack."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_browser import STACK_WORKERS
from tests.e2e.test_live_run import Watcher, submit

pytestmark = pytest.mark.e2e


def test_the_step_count_rises_inside_one_epoch_on_the_live_socket(stack: Stack):
    # Given a one-epoch digits CNN of 359 steps (1,437 training rows in batches of 4, the last
    # lone row left out; an epoch of 90 steps could end in 0.2 s, two sends apart), queued
    # behind one longer run per stack worker, so that its socket is watched before it starts (a
    # run that ended first would send its points in the snapshot, not in live messages)
    session = stack.login()
    for number in range(STACK_WORKERS):
        submit(stack, session, f"e2e progress blocker {number}", epochs=6, width=8)
    run_id = submit(stack, session, "e2e progress", epochs=1, batch_size=4, width=8)
    watcher = Watcher(stack, session, run_id)

    # When its page's socket is watched until the run ends
    asyncio.run(watcher.watch(timeout=240))

    # Then points messages before the epoch's end carry the step they reach, rising, with the
    # run's total and a time left
    total = 359
    inside = [m["progress"] for _, m in watcher.messages
              if m["kind"] == "points" and 0 < m["progress"].get("step", 0) < total]
    steps = [p["step"] for p in inside]
    assert len(set(steps)) >= 2, f"the step moved only at the epoch's end: {steps}"
    assert steps == sorted(steps)
    assert all(p["total_steps"] == total for p in inside)
    assert any(p.get("eta_s", -1) > 0 for p in inside)
    # and each message's step is that of the last loss point it carries
    for _, message in watcher.messages:
        losses = message["points"].get("loss", []) if message["kind"] == "points" else []
        if losses:
            assert message["progress"]["step"] >= losses[-1][0]


def test_a_run_started_from_a_finished_run_trains_from_its_checkpoint(stack: Stack):
    # Given a finished one-epoch digits CNN
    session = stack.login()
    source = submit(stack, session, "e2e source", epochs=1, width=8)
    asyncio.run(Watcher(stack, session, source).watch(timeout=240))

    # When a run of the same network starts from it, frozen for its first epoch
    run_id = submit(stack, session, "e2e fine-tune", epochs=2, width=8, init_from=source,
                    freeze_epochs=1)
    watcher = Watcher(stack, session, run_id)
    asyncio.run(watcher.watch(timeout=240))

    # Then it succeeds and its checkpoint names the source run
    final = [m for _, m in watcher.messages if m.get("kind") in ("status", "snapshot")][-1]
    assert final["status"] == "succeeded", final.get("error")
    archive = session.get(f"{stack.url}/experiments/{run_id}/checkpoint/best/", timeout=30)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        meta = json.loads(z.read("spec.json"))
    assert meta["warm_start"]["from_run"] == source
    assert meta["warm_start"]["loaded"] > 0
