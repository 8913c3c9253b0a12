"""Logging runs from scripts into Fitboard, against the usual ways of doing it.

1. HTTP ingest through the native client (``import fitboard``): 10 metrics a step, as fast as
   a script can log, timed until ``finish()`` returns (every point stored). Baseline in the same
   run: the ``mlflow`` client's ``log_batch`` (1000 metrics a call) to the same Fitboard.
   Target >= 50,000 points/s.
2. The unmodified ``mlflow`` client logging to Fitboard vs to a local ``mlflow server``
   (SQLite backend, started here), rounds alternating: a script's usual ``log_metric`` per
   point, and ``log_batch`` of 1000. Target: Fitboard >= 10x. Fitboard in two arms: at its
   ``http://`` URL (MLflow's REST API, what the client sends any server), and at
   ``fitboard+http://`` (the ``fitboard`` package's tracking store for the mlflow client:
   the same script, its metrics put in a buffer that a background thread sends in batches over
   Fitboard's native API, everything else over the REST API, ``end_run`` waiting for every
   point). Beside MLflow's synchronous default, each case also times MLflow's own background
   logging (``synchronous=False``, to its server) as the store's like-for-like baseline. Each
   arm is a child interpreter:
   ``set_tracking_uri``, ``set_experiment`` (one get-by-name), then timed: ``start_run``
   (runs/create), the points (``log_metric``: one POST per point, three names per step;
   ``log_batch``: one POST per 1000 points) and ``end_run`` (runs/update, where Fitboard
   computes the run's final verdict). Fitboard is one Daphne process as ``make run`` starts
   it (SQLite in WAL mode, Redis for the channel layer and the rate limit, lifted; no worker:
   runs logged from scripts need none); MLflow is ``mlflow server`` with its defaults (uvicorn,
   4 worker processes). Beside the rates: CPU per point of the client (its process time) and
   of the server (all its processes, psutil) over the arm.
3. Training-loop overhead: one small torch loop (MNIST-sized MLP, batch 64, 1 thread), plain
   and logging its loss and accuracy every step through the native client, MLflow's client (to
   the local server; synchronous as by default, and ``synchronous=False``; and to Fitboard
   through the store, ``mlflow-store``) and Trackio's (local).
   Throughput ratio to the plain loop of the same round; target >= 0.97 for Fitboard.
   Beside it, the same ratio of the loop thread's CPU time (``time.thread_time``), which the
   other processes of a shared machine move less than wall time: what logging costs the
   training thread itself, without the waits for a core or for the GIL.

Each measurement is a child process (the arm's own interpreter), and the arms alternate within
each round. The full ``mlflow`` package (its server) and ``trackio`` are installed into their
own virtual environments under ``var/bench-envs/`` on the first run (from the package index:
an arm whose install fails is skipped with the reason). Fitboard runs as one Daphne process
on SQLite, the API's rate limit lifted.

Usage, from the repo root: ``.venv/bin/python bench/tracking.py [--rounds 3]`` (a few minutes,
more on the first run while the environments install). ``--arm`` runs one measurement (the
children).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fitboard.mlflow_plugin import SCHEME_PREFIX  # noqa: E402 (no mlflow import)

from bench import _stack  # noqa: E402

ENVS = _stack.REPO / "var" / "bench-envs"
MLFLOW_VERSION = "3.17.2"  # the client the tests pin (requirements-dev.txt)
INGEST_POINTS = 200_000  # per round of (1): 20,000 steps x 10 metrics
MLFLOW_POINTS = {"log_metric": 1_500, "log_batch": 30_000}  # per round of (2)
LOOP_STEPS = 3_000  # per round of (3)


# --- The children: one measurement each, printed as one JSON line ------------------------------

def arm_ingest_native(url: str, token: str, points: int) -> dict[str, float]:
    import fitboard

    run = fitboard.init(project="bench", name="ingest", url=url, token=token)
    names = [f"metric_{i}" for i in range(10)]
    start = time.perf_counter()
    for step in range(points // len(names)):
        run.log({name: step * 1e-3 + i for i, name in enumerate(names)}, step=step)
    logged = time.perf_counter() - start
    run.finish()
    assert not run.errors, run.errors
    return {"seconds": time.perf_counter() - start, "logged_s": logged, "points": points}


def arm_mlflow(url: str, token: str, points: int, how: str) -> dict[str, float]:
    """The mlflow client as a script uses it, against ``url`` (Fitboard or mlflow server)."""
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("bench")
    client = mlflow.MlflowClient()
    start, cpu = time.perf_counter(), time.process_time()
    with mlflow.start_run(run_name=f"mlflow-{how}") as run:
        if how in ("log_metric", "log_metric_async"):
            synchronous = how == "log_metric"
            for step in range(points // 3):
                for key in ("loss", "eval_loss", "eval_accuracy"):
                    mlflow.log_metric(key, step * 1e-3, step=step, synchronous=synchronous)
        else:
            stamp = int(time.time() * 1000)
            synchronous = how == "log_batch"
            for first in range(0, points, 1000):
                client.log_batch(run.info.run_id, synchronous=synchronous, metrics=[
                    Metric(f"metric_{i % 10}", i * 1e-3, stamp, i // 10)
                    for i in range(first, min(first + 1000, points))])
    return {"seconds": time.perf_counter() - start, "points": points,
            "client_cpu_s": time.process_time() - cpu}


def arm_loop(url: str, token: str, steps: int, how: str) -> dict[str, float]:
    """A small training loop, plain or logging loss and accuracy every step."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    data = [(torch.randn(64, 784), torch.randint(0, 10, (64,))) for _ in range(32)]
    log, done = _logger(url, token, how)
    for x, y in data[:8]:  # warm-up: first calls allocate
        torch.nn.functional.cross_entropy(model(x), y).backward()
    start, thread_start = time.perf_counter(), time.thread_time()
    for step in range(steps):
        x, y = data[step % len(data)]
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        optimizer.step()
        log({"loss": loss.item(), "acc": (out.argmax(1) == y).float().mean().item()}, step)
    loop, thread_cpu = time.perf_counter() - start, time.thread_time() - thread_start
    done()
    return {"steps_per_s": steps / loop, "thread_cpu_s": thread_cpu,
            "with_finish_s": time.perf_counter() - start}


def _logger(url: str, token: str, how: str) -> tuple[Any, Any]:
    """(log(metrics, step), finish()) of one arm of (3)."""
    if how == "plain":
        return (lambda metrics, step: None), (lambda: None)
    if how == "fitboard":
        import fitboard

        run = fitboard.init(project="bench", name="loop", url=url, token=token)
        return run.log, run.finish
    if how in ("mlflow", "mlflow-async", "mlflow-store"):
        import mlflow

        mlflow.set_tracking_uri(url)
        mlflow.set_experiment("bench")
        mlflow.start_run()
        sync = how != "mlflow-async"  # (the store batches without being asked)
        return ((lambda m, step: mlflow.log_metrics(m, step=step, synchronous=sync)),
                mlflow.end_run)
    import trackio

    trackio.init(project="bench", name=f"loop-{os.getpid()}")
    return (lambda m, step: trackio.log(m, step=step)), trackio.finish


# --- Environments and servers ------------------------------------------------------------------

def ensure_env(name: str, requirement: str, check: str) -> Path | None:
    """``var/bench-envs/<name>`` with ``requirement`` installed (and the project's packages
    after its own, for torch and the client); None, with the reason printed, if that fails."""
    python = ENVS / name / "bin" / "python"
    ready = ENVS / name / ".ready"
    if ready.exists():
        return python
    print(f"  installing {requirement} into {python.parent.parent} (first run only) ...",
          flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENVS / name)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement],
                              capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                          else f"pip exited with {done.returncode}")
        # The project's site-packages last on the path: torch without a second copy.
        own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                             check=True, capture_output=True, text=True).stdout.strip()
        project = subprocess.run([sys.executable, "-c",
                                  "import site; print(site.getsitepackages()[0])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        Path(own, "zz-fitboard-project.pth").write_text(project + "\n")
        subprocess.run([str(python), "-c", check], check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  SKIP {name}: its install failed ({exc}); the arms that need it are left out")
        return None
    ready.touch()
    return python


SERVERS: dict[str, Any] = {}  # URL -> the server's process (its CPU time is measured)


def server_cpu_s(url: str) -> float:
    """CPU seconds used so far by the server at ``url`` and its children (MLflow's workers)."""
    import psutil

    process = psutil.Process(SERVERS[url.removeprefix(SCHEME_PREFIX)].pid)
    total = 0.0
    for one in [process, *process.children(recursive=True)]:
        try:
            times = one.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_mlflow_server(stack: _stack.Stack, python: Path) -> str:
    port = _stack.free_port()
    db = stack.scratch / "mlflow.db"
    process = stack.spawn([str(python), "-m", "mlflow", "server", "--backend-store-uri",
                           f"sqlite:///{db}", "--default-artifact-root",
                           str(stack.scratch / "mlartifacts"), "--host", "127.0.0.1",
                           "--port", str(port)], "mlflow-server.log",
                          cwd=stack.scratch)
    _stack.wait_for_port(port, 300, process)
    SERVERS[f"http://127.0.0.1:{port}"] = process
    return f"http://127.0.0.1:{port}"


def start_fitboard(stack: _stack.Stack) -> tuple[str, str]:
    """Daphne on a migrated scratch site with a project "bench"; its URL and a token."""
    env = stack.configure()
    env["FITBOARD_API_RATE_PER_MIN"] = os.environ["FITBOARD_API_RATE_PER_MIN"] = "100000000"
    _stack.setup_django(migrate=True)
    from webapp.tracking import tokens

    user, _ = _stack.bench_user_and_project()
    token = tokens.create_token(user, "bench", "write", None)[1]
    port = _stack.free_port()
    daphne = stack.spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                          "webapp.asgi:application"], "daphne.log", cwd=_stack.REPO, env=env)
    _stack.wait_for_port(port, 60, daphne)
    SERVERS[f"http://127.0.0.1:{port}"] = daphne
    return f"http://127.0.0.1:{port}", token


# --- The parent ------------------------------------------------------------------------------

def measure(python: Path | str, arm: str, url: str, token: str, amount: int) -> dict[str, Any]:
    env = {**os.environ, "MLFLOW_TRACKING_TOKEN": token, "TRACKIO_DIR": str(
        ENVS / "trackio-data"), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PYTHONPATH": str(_stack.REPO)}
    done = subprocess.run([str(python), __file__, "--arm", arm, "--url", url, "--token", token,
                           "--amount", str(amount)], env=env, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{arm} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def spread(values: list[float], digits: int = 0) -> str:
    return (f"median {statistics.median(values):,.{digits}f} "
            f"(min {min(values):,.{digits}f}, max {max(values):,.{digits}f})")


def rotated(arms: list[Any], round_: int) -> list[Any]:
    shift = round_ % len(arms)
    return arms[shift:] + arms[:shift]


def bench_ingest(fitboard: str, token: str, rounds: int) -> None:
    print(f"\n(1) HTTP ingest into Fitboard, {INGEST_POINTS:,} points a round "
          "(10 metrics a step), until every point is stored", flush=True)
    rates: dict[str, list[float]] = {"native client": [], "mlflow log_batch(1000)": []}
    for r in range(rounds):
        for name in rotated(list(rates), r):
            arm = "ingest-native" if name == "native client" else "mlflow-log_batch"
            result = measure(sys.executable, arm, fitboard, token, INGEST_POINTS)
            rates[name].append(result["points"] / result["seconds"])
    for name, values in rates.items():
        print(f"  {name:<24} points/s {spread(values)}")
    ratio = statistics.median(rates["native client"]) / statistics.median(
        rates["mlflow log_batch(1000)"])
    best = statistics.median(rates["native client"])
    print(f"  native client: {best:,.0f} points/s (target >= 50,000: "
          f"{'met' if best >= 50_000 else 'NOT met'}); {ratio:.2f}x the mlflow client's "
          "log_batch to the same server")


def bench_mlflow(fitboard: str, token: str, mlflow_url: str, rounds: int) -> None:
    print("\n(2) the mlflow client: to Fitboard (http://: MLflow's REST API; fitboard+http://: "
          "the fitboard package's store, metrics batched by a background thread) vs to a local "
          "`mlflow server` (SQLite)", flush=True)
    for how, points in MLFLOW_POINTS.items():
        # label: (tracking URI, the server's URL, the arm's way of logging)
        arms = {"fitboard http": (fitboard, fitboard, how),
                "fitboard store": (SCHEME_PREFIX + fitboard, fitboard, how),
                "mlflow server": (mlflow_url, mlflow_url, how),
                # MLflow's own background logging (synchronous=False), the store's like
                "mlflow async": (mlflow_url, mlflow_url, f"{how}_async")}
        rates: dict[str, list[float]] = {label: [] for label in arms}
        # Where a point's time goes: the client's own CPU, the server's (all its processes).
        client_us: dict[str, list[float]] = {label: [] for label in arms}
        server_us: dict[str, list[float]] = {label: [] for label in arms}
        for r in range(rounds):
            for label in rotated(list(arms), r):
                uri, server, way = arms[label]
                before = server_cpu_s(server)
                result = measure(sys.executable, f"mlflow-{way}", uri, token, points)
                rates[label].append(result["points"] / result["seconds"])
                client_us[label].append(result["client_cpu_s"] / points * 1e6)
                server_us[label].append((server_cpu_s(server) - before) / points * 1e6)
        print(f"  {how} ({points:,} points a round):")
        for label, values in rates.items():
            print(f"    {label:<15} points/s {spread(values)}; CPU per point: client "
                  f"{statistics.median(client_us[label]):,.0f} us, server "
                  f"{statistics.median(server_us[label]):,.0f} us")
        for label, baseline in (("fitboard http", "mlflow server"),
                                ("fitboard store", "mlflow server"),
                                ("fitboard store", "mlflow async")):
            ratios = [f / m for f, m in zip(rates[label], rates[baseline], strict=True)]
            print(f"    {label} / {baseline}: {spread(ratios, 2)}x (target >= 10x: "
                  f"{'met' if statistics.median(ratios) >= 10 else 'NOT met'})")


def bench_overhead(fitboard: str, token: str, mlflow_url: str | None, trackio: Path | None,
                   rounds: int, only_arms: str = "") -> None:
    print(f"\n(3) training-loop overhead: MLP 784-256-10, batch 64, 1 torch thread, "
          f"{LOOP_STEPS:,} steps, loss and accuracy logged every step", flush=True)
    arms: list[tuple[str, Path | str, str]] = [("plain", sys.executable, ""),
                                               ("fitboard", sys.executable, fitboard)]
    if mlflow_url:
        arms += [("mlflow", sys.executable, mlflow_url),
                 ("mlflow-async", sys.executable, mlflow_url)]
    arms.append(("mlflow-store", sys.executable, SCHEME_PREFIX + fitboard))
    if trackio:
        arms.append(("trackio", trackio, ""))
    if only_arms:  # e.g. "plain,fitboard": more rounds of the arms that matter, in less time
        arms = [arm for arm in arms if arm[0] in only_arms.split(",")]
    rates: dict[str, list[float]] = {name: [] for name, _, _ in arms}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in arms}  # the loop thread's
    for r in range(rounds):
        for name, python, url in rotated(arms, r):
            if name not in rates:
                continue
            try:
                result = measure(python, f"loop-{name}", url, token, LOOP_STEPS)
            except RuntimeError as exc:  # an arm that cannot run is left out, with the reason
                print(f"  SKIP {name}: {str(exc).strip().splitlines()[-1]}")
                del rates[name]
                continue
            rates[name].append(result["steps_per_s"])
            cpu[name].append(result["thread_cpu_s"])
    for name, values in rates.items():
        ratios = [v / p for v, p in zip(values, rates["plain"], strict=True)]
        cpu_ratios = [p / c for c, p in zip(cpu[name], cpu["plain"], strict=True)]
        print(f"  {name:<13} steps/s {spread(values)}   vs plain: {spread(ratios, 3)}   "
              f"loop thread's CPU, plain's over this arm's: {spread(cpu_ratios, 3)}")
    ratio = statistics.median(v / p for v, p in zip(rates["fitboard"], rates["plain"],
                                                    strict=True))
    print(f"  fitboard client: {ratio:.3f} of the plain loop (target >= 0.97: "
          f"{'met' if ratio >= 0.97 else 'NOT met'})")


def main(rounds: int, only: str, arms: str) -> None:
    print(f"bench/tracking.py: {rounds} rounds, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    others = only in ("", "mlflow") or (only == "overhead" and (not arms or "mlflow" in arms))
    mlflow_python = ensure_env("mlflow", f"mlflow=={MLFLOW_VERSION}",
                               "import mlflow.server, torch") if others else None
    trackio_python = ensure_env("trackio", "trackio", "import trackio, torch") \
        if only in ("", "overhead") and (not arms or "trackio" in arms) else None
    with _stack.Stack() as stack:
        fitboard, token = start_fitboard(stack)
        if only in ("", "ingest"):
            bench_ingest(fitboard, token, rounds)
        # Started after (1): a starting mlflow server takes CPU for tens of seconds.
        mlflow_url = start_mlflow_server(stack, mlflow_python) if mlflow_python else None
        if only in ("", "mlflow") and mlflow_url:
            bench_mlflow(fitboard, token, mlflow_url, rounds)
        elif only in ("", "mlflow"):
            print("\n(2) SKIP: no mlflow server (its environment did not install)")
        if only in ("", "overhead"):
            bench_overhead(fitboard, token, mlflow_url, trackio_python, rounds, arms)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def child(arm: str, url: str, token: str, amount: int) -> None:
    if arm == "ingest-native":
        result = arm_ingest_native(url, token, amount)
    elif arm.startswith("mlflow-"):
        result = arm_mlflow(url, token, amount, arm.removeprefix("mlflow-"))
    else:
        result = arm_loop(url, token, amount, arm.removeprefix("loop-"))
    print(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["ingest", "mlflow", "overhead"], default="",
                        help="one part of the bench")
    parser.add_argument("--arms", default="", help="(3) only: these arms, e.g. plain,fitboard")
    parser.add_argument("--arm")
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--amount", type=int, default=0)
    args = parser.parse_args()
    if args.arm:
        child(args.arm, args.url, args.token, args.amount)
    else:
        main(args.rounds, args.only, args.arms)
