"""Latency from ``reporter.log()`` in a worker process to receipt by N WebSocket clients, through
the real pipeline: DjangoReporter (database write, then group_send on the Redis channel layer) →
Daphne → RunConsumer → N logged-in ``websockets`` clients on loopback (target: p99 ≤ 200 ms at
N = 50).

The worker logs a metric ``t_sent`` whose value is ``time.time()`` at ``log()``; each client
stamps ``time.time()`` when a message arrives, so a point's latency is receipt − t_sent, per point
per client (one clock: same machine). Two patterns, each on a fresh running experiment with
freshly connected clients:

- steady: one point every 250 ms, longer than the throttle interval: the pipeline's own latency;
- burst: one point every 2 ms: the leading-edge throttle coalesces them, so latency includes up
  to one interval (FITBOARD_LIVE_INTERVAL_MS, 100 ms by default) of waiting.

Every client gets the same messages, so at N = 50 one slow message is 50 samples: the steady
pattern sends 80 points so that p99 is not just the single worst message.

Usage, from the repo root: ``.venv/bin/python bench/live_latency.py`` (about 90 seconds).
The same file is the worker when started with ``--produce`` (JSON commands on stdin).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _stack  # noqa: E402

CLIENTS = (1, 10, 50)  # WebSocket clients watching the run
PATTERNS = {  # name: (points logged, seconds between two log() calls)
    "steady": (80, 0.250),
    "burst": (1000, 0.002),
}
TARGET_P99_MS = 200.0  # at the largest N


# The worker side ----------------------------------------------------------------------------


def produce() -> None:
    """Worker process: for each JSON command on stdin, log ``count`` points ``period`` apart to
    a new DjangoReporter of the experiment, close it, and answer "done" on stdout."""
    _stack.setup_django(migrate=False)
    from webapp.experiments.models import Experiment
    from webapp.experiments.reporting import DjangoReporter

    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        reporter = DjangoReporter(Experiment.objects.get(pk=command["experiment"]))
        start = time.perf_counter()
        for step in range(1, command["count"] + 1):
            delay = start + (step - 1) * command["period"] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            reporter.log(step, {"t_sent": time.time()})
        reporter.close()
        print("done", flush=True)


class Worker:
    """The producer process, driven over its stdin and stdout."""

    def __init__(self, stack: _stack.Stack) -> None:
        self.stack = stack
        self.process = stack.spawn(
            [sys.executable, __file__, "--produce"],
            "worker.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._expect("ready", 120)

    def _expect(self, word: str, timeout: float) -> None:
        assert self.process.stdout is not None
        # readline blocks; a timer kills the worker (ending the read) when it takes too long.
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            line = self.process.stdout.readline().decode().strip()
        finally:
            timer.cancel()
        if line != word:
            tail = self.stack.log_tail("worker.log")
            raise RuntimeError(f"worker said {line!r}, not {word!r}:\n{tail}")

    def log_points(self, experiment_id: int, count: int, period: float) -> None:
        """Ask for ``count`` points ``period`` seconds apart (returns at once)."""
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        command = {"experiment": experiment_id, "count": count, "period": period}
        stdin.write((json.dumps(command) + "\n").encode())
        stdin.flush()

    def wait_done(self, timeout: float) -> None:
        self._expect("done", timeout)


# The browser side ---------------------------------------------------------------------------


@dataclass
class Client:
    """One WebSocket viewer: the latency of every point it received, in seconds."""

    latencies: list[float] = field(default_factory=list)
    steps: set[int] = field(default_factory=set)
    duplicates: int = 0


def login(port: int) -> str:
    """Log the bench user in through the login form; the session cookie's value."""
    import requests

    url = f"http://127.0.0.1:{port}/accounts/login/"
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy from the environment
    session.get(url, timeout=30).raise_for_status()
    response = session.post(
        url,
        timeout=30,
        allow_redirects=False,
        headers={"Referer": url},
        data={
            "username": "bench",
            "password": _stack.BENCH_PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
    )
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")
    return str(session.cookies["sessionid"])


async def watch(
    port: int,
    session_id: str,
    experiment_id: int,
    n: int,
    count: int,
    start_worker: Callable[[], None],
    timeout: float,
) -> list[Client]:
    """Connect ``n`` clients, wait for every snapshot, call ``start_worker``, then collect
    points until every client has ``count`` steps or ``timeout`` seconds pass (points not
    received by then count as lost)."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    url = f"ws://127.0.0.1:{port}/ws/runs/{experiment_id}/"
    origin = Origin(f"http://127.0.0.1:{port}")
    sockets = await asyncio.gather(
        *(
            connect(
                url,
                origin=origin,
                proxy=None,
                open_timeout=60,
                additional_headers={"Cookie": f"sessionid={session_id}"},
            )
            for _ in range(n)
        )
    )
    try:
        for snapshot in await asyncio.gather(*(ws.recv() for ws in sockets)):
            if json.loads(snapshot)["kind"] != "snapshot":
                raise RuntimeError(f"first message was not a snapshot: {snapshot[:200]!r}")
        clients = [Client() for _ in sockets]
        start_worker()
        tasks = [
            asyncio.create_task(receive(ws, client, count))
            for ws, client in zip(sockets, clients, strict=True)
        ]
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a client failed") from task.exception()
        return clients
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def receive(ws: Any, client: Client, count: int) -> None:
    while len(client.steps) < count:
        raw = await ws.recv()
        received = time.time()
        message = json.loads(raw)
        if message["kind"] != "points":
            continue
        for step, sent in message["points"].get("t_sent", []):
            if step in client.steps:
                client.duplicates += 1
                continue
            client.steps.add(step)
            client.latencies.append(received - sent)


# The bench ----------------------------------------------------------------------------------


def percentile_ms(values: list[float], q: float) -> float:
    """The q-th percentile in milliseconds (NaN when nothing arrived)."""
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) * 1000 if values else float("nan")


def main() -> None:
    from django.conf import settings

    from training.spec import ExperimentSpec

    with _stack.Stack() as stack:
        env = stack.configure()
        _stack.setup_django(migrate=True)
        user, project = _stack.bench_user_and_project()
        spec = ExperimentSpec().to_dict()  # never trained: the rows only need to look real
        port = _stack.free_port()
        daphne = stack.spawn(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "webapp.asgi:application",
            ],
            "daphne.log",
            cwd=_stack.REPO,
            env=env,
        )
        _stack.wait_for_port(port, 60, daphne)
        session_id = login(port)
        worker = Worker(stack)
        # The clients stand for browsers on other machines: keep this process's own garbage
        # collector (a full collection here takes ~100 ms) out of their receipt times.
        gc.collect()
        gc.freeze()
        # Warm-up, not measured: the first message through a fresh server is tens of ms slower.
        warm_up = _stack.running_experiment(user, project, "warm-up", spec)
        asyncio.run(
            watch(
                port,
                session_id,
                warm_up.pk,
                1,
                5,
                functools.partial(worker.log_points, warm_up.pk, 5, 0.05),
                timeout=30,
            )
        )
        worker.wait_done(30)
        redis = "bundled redis-server" if stack.bundled_redis else "REDIS_URL"
        interval_ms = settings.FITBOARD_LIVE_INTERVAL * 1000
        load = os.getloadavg()[0]
        print(
            f"live latency: reporter.log() in a worker process -> N WebSocket clients, via "
            f"SQLite + {redis} + Daphne on loopback; throttle {interval_ms:.0f} ms "
            f"(load average {load:.1f} on {os.cpu_count()} cores)"
        )
        print(
            f"  {'pattern':<28} {'N':>3} {'points':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'max ms':>7} {'lost':>5} {'dup':>4}"
        )
        worst: dict[str, float] = {}
        for pattern, (count, period) in PATTERNS.items():
            for n in CLIENTS:
                experiment = _stack.running_experiment(user, project, f"{pattern}-{n}", spec)
                gc.disable()
                try:
                    clients = asyncio.run(
                        watch(
                            port,
                            session_id,
                            experiment.pk,
                            n,
                            count,
                            functools.partial(worker.log_points, experiment.pk, count, period),
                            timeout=count * period + 30,
                        )
                    )
                finally:
                    gc.enable()
                worker.wait_done(30)
                latencies = [x for c in clients for x in c.latencies]
                lost = sum(count - len(c.steps) for c in clients)
                duplicates = sum(c.duplicates for c in clients)
                label = f"{pattern} (1 point / {period * 1000:g} ms)"
                p99 = percentile_ms(latencies, 99)
                p50, top = percentile_ms(latencies, 50), percentile_ms(latencies, 100)
                print(
                    f"  {label:<28} {n:>3} {len(latencies):>7} {p50:>7.1f} {p99:>7.1f} "
                    f"{top:>7.1f} {lost:>5} {duplicates:>4}",
                    flush=True,
                )
                if n == max(CLIENTS):
                    worst[pattern] = p99
        verdict = ", ".join(f"{p} {v:.1f} ms" for p, v in worst.items())
        ok = all(v <= TARGET_P99_MS for v in worst.values())
        print(
            f"  p99 at N={max(CLIENTS)}: {verdict} (target <= {TARGET_P99_MS:.0f} ms: "
            f"{'met' if ok else 'NOT met'})"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--produce"]:
        produce()
    else:
        main()
