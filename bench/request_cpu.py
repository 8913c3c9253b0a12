"""CPU of one ``log-metric`` request (the mlflow client's ``log_metric``: one point a request),
where it goes, and how two checkouts compare.

Each measurement is a child process on a scratch site (SQLite, Redis as ``bench/_stack.py``
finds it: set ``REDIS_URL`` to use a running one) with a user, a token for all their projects
and an external run. It sends ``--requests`` POSTs of ``/api/2.0/mlflow/runs/log-metric``, one
after the other, each a new point:

- in process (default) through the ASGI application (``webapp.asgi.application``, no server):
  the CPU counted is this process's, every thread's (the live relay's too);
- ``--server``: to Daphne as ``make run`` starts it, over one kept-alive HTTP connection (as
  the mlflow client's session); the CPU counted is Daphne's (psutil).

A child prints the database queries of one request (through Django's test client, which runs
the same middleware and view in the calling thread, where the query log sees them) and, with
``--profile``, cProfile's tables of ``--requests`` more through the test client.

``--against DIR`` compares another checkout (e.g. a ``git worktree`` of the commit before a
change) with this one: ``--rounds`` rounds, the two arms alternating, one child each, then the
median and spread of each arm. Without it, ``--rounds`` children of this checkout.

Usage, from the repo root::

    .venv/bin/python bench/request_cpu.py [--requests 300] [--rounds 5] [--server]
        [--against ../before] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The checkout measured: this one, or the one a parent names (``--against``).
REPO = Path(os.environ.get("FITBOARD_BENCH_REPO") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(REPO))

from bench import _stack  # noqa: E402

PATH = "/api/2.0/mlflow/runs/log-metric"
WARM_UP = 30  # requests before the timed ones: imports, caches, the first connection


def site() -> tuple[str, int]:
    """The scratch site's token and an external run of its user."""
    _stack.setup_django(migrate=True)
    from webapp.tracking import ingest, tokens

    user, project = _stack.bench_user_and_project()
    raw = tokens.create_token(user, "bench", "write", None)[1]
    run = ingest.create_run(user, project, "bench", {})
    return raw, run.pk


def bodies(run: int, start: int, count: int) -> list[bytes]:
    """Requests ``start`` to ``start + count``: three metrics a step, as a script logs them."""
    return [json.dumps({"run_id": str(run), "key": ("loss", "acc", "val_loss")[i % 3],
                        "value": 1.0 / (i + 1), "timestamp": 1_700_000_000_000 + i,
                        "step": i // 3}).encode() for i in range(start, start + count)]


# --- In process: the ASGI application -----------------------------------------------------------

def scope(token: str, body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                        (b"authorization", f"Bearer {token}".encode()),
                        (b"content-length", str(len(body)).encode())]}


async def post(app: Any, token: str, body: bytes) -> int:
    """One request through the ASGI application; its status."""
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the client never disconnects mid-request
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope(token, body), receive, send)
    return status


def in_process(token: str) -> tuple[Callable[[list[bytes]], None], Callable[[], float]]:
    """Send requests through the ASGI application; this process's CPU seconds."""
    from webapp.asgi import application
    from webapp.experiments.relay import relay

    loop = asyncio.new_event_loop()

    async def send_all(payloads: list[bytes]) -> None:
        for body in payloads:
            status = await post(application, token, body)
            if status != 200:
                raise RuntimeError(f"log-metric answered {status}")

    def send(payloads: list[bytes]) -> None:
        loop.run_until_complete(send_all(payloads))
        relay.drain(30)  # the live messages' CPU belongs to the requests that queued them

    return send, time.process_time


# --- Through Daphne -------------------------------------------------------------------------

def through_daphne(stack: _stack.Stack, token: str
                   ) -> tuple[Callable[[list[bytes]], None], Callable[[], float]]:
    """Send requests to Daphne serving the scratch site; Daphne's CPU seconds."""
    import psutil

    port = _stack.free_port()
    daphne = stack.spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                          "webapp.asgi:application"], "daphne.log", cwd=_stack.REPO,
                         env=dict(os.environ))
    _stack.wait_for_port(port, 60, daphne)
    process = psutil.Process(daphne.pid)

    def send(payloads: list[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for body in payloads:
            connection.request("POST", PATH, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"log-metric answered {response.status}")
        connection.close()
        time.sleep(0.2)  # the relay's last live messages

    def cpu() -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    return send, cpu


# --- One measurement (a child) -----------------------------------------------------------------

def queries_of_one_request(token: str, body: bytes) -> list[str]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as queries:
        client.post(PATH, body, content_type="application/json")
    return [query["sql"] for query in queries]


def profile(token: str, payloads: list[bytes], top: int) -> None:
    import cProfile
    import pstats

    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    profiler = cProfile.Profile()
    profiler.enable()
    for body in payloads:
        client.post(PATH, body, content_type="application/json")
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def measure(requests: int, server: bool, top: int) -> dict[str, Any]:
    """One child's figures: CPU and wall ms a request, the load of other processes (cores),
    the queries of one request."""
    with _stack.Stack() as stack:
        stack.configure()
        os.environ["FITBOARD_API_RATE_PER_MIN"] = "100000000"  # before Django reads it
        token, run = site()
        send, cpu = through_daphne(stack, token) if server else in_process(token)
        send(bodies(run, 0, WARM_UP))
        with _stack.ForeignLoad() as load:
            started_cpu, started = cpu(), time.perf_counter()
            send(bodies(run, WARM_UP, requests))
            used, wall = cpu() - started_cpu, time.perf_counter() - started
        step = WARM_UP + requests
        queries = queries_of_one_request(token, bodies(run, step, 1)[0])
        if top:
            profile(token, bodies(run, step + 1, requests), top)
    return {"cpu_ms": used / requests * 1000, "wall_ms": wall / requests * 1000,
            "other_cores": load.cores, "queries": queries}


# --- The parent ------------------------------------------------------------------------------

def child(repo: Path, requests: int, server: bool) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", "--requests", str(requests)]
    done = subprocess.run(args + (["--server"] if server else []), capture_output=True,
                          text=True, env={**os.environ, "FITBOARD_BENCH_REPO": str(repo)},
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the measurement of {repo} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(requests: int, rounds: int, server: bool, against: Path | None) -> None:
    arms = [("before", against.resolve()), ("after", REPO)] if against else [("this", REPO)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in arms}
    where = "Daphne's" if server else "in-process"
    for round_ in range(rounds):
        for name, repo in arms[round_ % len(arms):] + arms[:round_ % len(arms)]:
            result = child(repo, requests, server)
            results[name].append(result)
            print(f"round {round_ + 1} {name}: {result['cpu_ms']:.2f} ms {where} CPU a request, "
                  f"{result['wall_ms']:.2f} ms wall, other processes "
                  f"{result['other_cores']:.2f} cores, {len(result['queries'])} queries",
                  flush=True)
    for name, repo in arms:
        runs = results[name]
        print(f"{name} ({repo}): CPU a request {spread([r['cpu_ms'] for r in runs])} ms, "
              f"wall {spread([r['wall_ms'] for r in runs])} ms; other processes "
              f"{spread([r['other_cores'] for r in runs])} cores; queries of one request:")
        for sql in runs[-1]["queries"]:
            print("    " + sql[:150])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="timed, each child")
    parser.add_argument("--rounds", type=int, default=5, help="children of each checkout")
    parser.add_argument("--server", action="store_true", help="through Daphne")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--profile", type=int, default=0, metavar="ROWS",
                        help="one child only, in this process: cProfile's top ROWS")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child or args.profile:
        figures = measure(args.requests, args.server, args.profile)
        print(json.dumps(figures))
    else:
        main(args.requests, args.rounds, args.server, args.against)
