"""Live viewers lose nothing: 50 WebSocket viewers of one real run (real worker, Daphne, Redis),
some of them slow and some dropping messages, each following the run page's protocol (numbered
messages, a backfill from the metrics endpoint on a skipped number) end holding every point the
database has. (In Chromium, messages lost before the page are backfilled on screen:
tests/e2e/test_browser.py, part of ``make test``.)
Scorecard row (docs/reliability.md): 50 live viewers of one run: points missing on screen
after backfill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websockets
import websockets.exceptions

from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_live_run import submit
from tests.stack import start_bundled_redis

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}
VIEWERS = 50


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real stack, on a Redis of its own (the e2e tests' stack may run at the same time)."""
    # System metrics every second: they count seconds, not steps, and a viewer that drops the
    # message with a metric's first points must still backfill them.
    with running_stack(tmp_path_factory.mktemp("live"), REDIS_URL=start_bundled_redis(),
                       FITBOARD_SYSTEM_METRICS_S="1") as s:
        yield s


class Viewer:
    """What the run page (static/run.js) does with the run's WebSocket, without the drawing:
    points per metric by step, the newest message number whose points it holds, and a
    backfill of everything from the lowest of its metrics' last steps when a number is
    skipped. ``drop`` is the
    share of points messages it ignores as if never sent; ``slow`` seconds it takes per
    message (its socket's buffers fill meanwhile)."""

    def __init__(self, site: Stack, session: requests.Session, run_id: int, drop: float = 0.0,
                 slow: float = 0.0, seed: int = 0) -> None:
        self.stack, self.session, self.run_id = site, session, run_id
        self.drop, self.slow, self.rng = drop, slow, random.Random(seed)
        self.points: dict[str, dict[int, float | None]] = {}
        self.seq: int | None = None
        self.dropped = self.backfills = self.reconnects = 0
        self.status = ""

    def add(self, points: dict[str, list[list[Any]]]) -> None:
        for key, pairs in points.items():
            self.points.setdefault(key, {}).update((int(step), value) for step, value in pairs)

    def from_step(self) -> int | None:
        """The lowest of the metrics' last steps (system metrics count seconds, not steps)."""
        steps = [max(p) for p in self.points.values() if p]
        return min(steps) if steps else None

    async def backfill(self) -> None:
        self.backfills += 1
        params: dict[str, Any] = {"live": 1}
        if self.from_step() is not None:
            params["x0"] = self.from_step()
        response = await asyncio.to_thread(
            self.session.get, f"{self.stack.url}/experiments/{self.run_id}/metrics/",
            params=params, timeout=30)
        data = response.json()
        fresh = [key for key in data["metrics"] if not self.points.get(key)]
        if "x0" in params and fresh:
            # Metrics first seen now may have points before x0 in the missed messages.
            whole = await asyncio.to_thread(
                self.session.get, f"{self.stack.url}/experiments/{self.run_id}/metrics/",
                params={"keys": ",".join(fresh)}, timeout=30)
            data["metrics"].update(whole.json()["metrics"])
        self.add({key: list(zip(m["steps"], m["values"], strict=True))
                  for key, m in data["metrics"].items()})
        self.seq = max(self.seq or 0, data["seq"])

    async def on_points(self, message: dict[str, Any]) -> None:
        if self.seq is not None and message["seq"] > self.seq + 1:
            await self.backfill()  # the page holds later messages meanwhile; here they wait
        self.add(message["points"])
        self.seq = max(self.seq or 0, message["seq"])

    async def watch(self) -> None:
        """Watch to the run's end; a refused or dropped connection is tried again after a
        growing delay, and its snapshot fills what was missed, as the page does."""
        retry = 0.5
        async with asyncio.timeout(300):
            while True:
                with contextlib.suppress(OSError, websockets.exceptions.WebSocketException):
                    await self.follow()
                if self.status in TERMINAL:
                    return
                self.reconnects += 1
                await asyncio.sleep(retry)
                retry = min(2 * retry, 10)

    async def follow(self) -> None:
        url = self.stack.url.replace("http://", "ws://") + f"/ws/runs/{self.run_id}/"
        headers = {"Cookie": f"sessionid={self.session.cookies['sessionid']}",
                   "Origin": self.stack.url}
        async with websockets.connect(url, additional_headers=headers) as socket:
            async for raw in socket:
                message = json.loads(raw)
                if self.slow:
                    await asyncio.sleep(self.slow)
                if message["kind"] == "snapshot":
                    self.add({key: list(zip(m["steps"], m["values"], strict=True))
                              for key, m in message["points"].items()})
                    self.seq = max(self.seq or 0, message["seq"])
                elif message["kind"] == "points":
                    if self.rng.random() < self.drop:
                        self.dropped += 1
                        continue
                    await self.on_points(message)
                elif message["kind"] == "status":
                    self.status = message["status"]
                    seq = (message.get("progress") or {}).get("seq")
                    if seq and self.seq is not None and seq > self.seq:
                        await self.backfill()
                    if self.status in TERMINAL:
                        return


def database_points(site: Stack, session: requests.Session, run_id: int
                    ) -> dict[str, dict[int, float | None]]:
    data = session.get(f"{site.url}/experiments/{run_id}/metrics/", timeout=30).json()
    assert not any(m["bucketed"] for m in data["metrics"].values())
    return {key: dict(zip(m["steps"], m["values"], strict=True))
            for key, m in data["metrics"].items()}


def same(live: float | None, stored: float | None) -> bool:
    """Live values go out in full; the endpoint keeps 7 significant digits."""
    if live is None or stored is None:
        return live is stored
    return abs(live - stored) <= 1e-6 * max(abs(stored), 1e-30)


async def watch_all(viewers: list[Viewer]) -> None:
    await asyncio.gather(*(v.watch() for v in viewers))


def test_fifty_viewers_some_slow_or_dropping_messages_end_with_every_point(stack):
    # given a run of the default digits CNN and 50 viewers: every fifth drops a third of the
    # points messages it gets, every seventh takes 20 ms over each message
    session = stack.login()
    run_id = submit(stack, session, "fifty viewers", epochs=4)
    viewers = [Viewer(stack, session, run_id, drop=0.33 if i % 5 == 0 else 0.0,
                      slow=0.02 if i % 7 == 0 else 0.0, seed=i) for i in range(VIEWERS)]

    # when they all watch it to its end
    asyncio.run(watch_all(viewers))

    # then every viewer holds every point the database has, each with its value
    truth = database_points(stack, session, run_id)
    total = sum(len(points) for points in truth.values())
    missing = sum(len(set(points) - set(viewer.points.get(key, {})))
                  for viewer in viewers for key, points in truth.items())
    wrong = sum(not same(viewer.points[key][step], value) for viewer in viewers
                for key, points in truth.items() for step, value in points.items()
                if step in viewer.points.get(key, {}))
    dropped = sum(v.dropped for v in viewers)
    print(f"\n{VIEWERS} viewers of one run ({total} points): {dropped} messages dropped, "
          f"{sum(v.backfills for v in viewers)} backfills, "
          f"{sum(v.reconnects for v in viewers)} reconnects, {missing} points missing after "
          f"backfill, {wrong} wrong")
    assert {v.status for v in viewers} == {"succeeded"}
    assert dropped > 0
    assert (missing, wrong) == (0, 0)

