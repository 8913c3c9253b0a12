"""What the native client's ``run.log`` takes: numbers, one-element tensors and arrays, nested
mappings (names joined with dots, as W&B shows them); anything else is refused at the call,
naming the metric, with nothing of that call logged. Offline runs, read back from their file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import fitboard
import numpy as np
import pytest
import torch
from fitboard.run import Run

from webapp.experiments import metric_store


def logged(folder: Path) -> dict[str, list[list[float]]]:
    """The points of the one offline run in ``folder``, by metric: [step, value] pairs."""
    (path,) = folder.glob("*.jsonl")
    points: dict[str, list[list[float]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for name, (steps, values, _) in record.get("metrics", {}).items():
            points.setdefault(name, []).extend([s, v] for s, v in zip(steps, values,
                                                                      strict=True))
    return points


def test_nested_mappings_tensors_and_arrays_log_as_numbers(tmp_path: Path) -> None:
    # given an offline run
    with fitboard.init(project="p", name="values", offline=True, directory=tmp_path) as run:
        # when a script logs the way W&B scripts do: nested names, a tensor, numpy scalars
        run.log({"train": {"loss": torch.tensor(0.5), "acc": np.float32(0.25)},
                 "lr": np.array([1e-3]), "epoch": 1, "done": True}, step=3)

    # then each value is stored as a number under its dotted name
    assert logged(tmp_path) == {"train.loss": [[3, 0.5]], "train.acc": [[3, 0.25]],
                                "lr": [[3, 1e-3]], "epoch": [[3, 1.0]], "done": [[3, 1.0]]}


@pytest.mark.parametrize(("value", "shown"), [
    ([0.1, 0.2], "list [0.1, 0.2]"),
    ("high", "str 'high'"),
    (torch.ones(3), "Tensor tensor([1., 1., 1.])"),
    (None, "NoneType None"),
])
def test_a_value_that_is_not_a_number_is_refused_naming_it(tmp_path: Path, value: object,
                                                           shown: str) -> None:
    # given an offline run that logged one good point
    with fitboard.init(project="p", name="bad", offline=True, directory=tmp_path) as run:
        run.log({"loss": 1.0}, step=0)

        # when a call holds a value that is not a number beside good ones
        with pytest.raises(fitboard.FitboardError) as refused:
            run.log({"loss": 0.5, "sched": {"lr": value}}, step=1)

        # then the error names the metric and what it got, and the call logged nothing
        assert f"metric 'sched.lr' is {shown}" in str(refused.value)
        assert "not a number" in str(refused.value)
        run.log({"loss": 0.25}, step=2)
    assert logged(tmp_path) == {"loss": [[0, 1.0], [2, 0.25]]}


class HeldSink:
    """A sink whose writes wait until the test lets them through, as a slow server would."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.written: list[tuple[str, int, float]] = []

    def write(self, columns: dict[str, tuple[list[int], list[float], list[float]]]) -> None:
        self.opened.wait()
        for name, (steps, values, _) in columns.items():
            self.written += [(name, s, v) for s, v in zip(steps, values, strict=True)]

    def finish(self, status: str, ended: float, reason: str = "") -> None:
        pass


def test_a_full_buffer_holds_the_script_until_the_sender_makes_room_and_loses_nothing() -> None:
    # given a run whose buffer holds 4 points, sending to a server that does not answer yet
    sink = HeldSink()
    run = Run(sink, batch_points=2, flush_s=0.01, max_queued_points=4)  # type: ignore[arg-type]
    steps_logged: list[int] = []

    def script() -> None:
        for step in range(10):
            run.log({"loss": float(step)}, step=step)
            steps_logged.append(step)

    script_thread = threading.Thread(target=script, daemon=True)
    script_thread.start()

    # when the buffer has filled: the script is held in log() (the sender holds one batch)
    script_thread.join(timeout=1.0)
    held = script_thread.is_alive(), len(steps_logged)
    sink.opened.set()  # then the server answers (before any assertion: the sender must end)
    assert held[0]
    assert held[1] < 10

    # then the script goes on and every point arrives, in order
    script_thread.join(timeout=30)
    assert not script_thread.is_alive()
    run.finish()
    assert sink.written == [("loss", step, float(step)) for step in range(10)]


FORKING_SCRIPT = """
import os, sys
import fitboard
run = fitboard.init(project="vision", name="forks", offline=True, directory=sys.argv[1])
run.log({"loss": 1.0}, step=0)
child = os.fork()
if child == 0:
    sys.exit(0)  # a worker that exits normally, running the interpreter's exit handlers
os.waitpid(child, 0)
run.log({"loss": 0.5}, step=1)
print(run.path)
"""


def test_a_forked_child_that_exits_does_not_end_its_parents_run(tmp_path: Path) -> None:
    # given a script whose forked worker exits (its exit handlers run) while the run goes on
    done = subprocess.run([sys.executable, "-c", FORKING_SCRIPT, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    # then the run ends once, after every point, when the parent exits
    lines = [json.loads(line) for line in Path(done.stdout.strip()).read_text().splitlines()]
    ends = [i for i, line in enumerate(lines) if "finish" in line]
    assert ends == [len(lines) - 1] and lines[-1]["finish"] == "succeeded"
    steps = [s for line in lines if "metrics" in line for s in line["metrics"]["loss"][0]]
    assert steps == [0, 1]


@pytest.mark.parametrize(("bad", "said"), [
    ({"metrics": {"loss": 0.5}, "step": 2**63}, "not a whole number within 64 bits"),
    ({"metrics": {"loss": 0.5}, "step": 1.5}, "not a whole number within 64 bits"),
    ({"metrics": {"x" * 251: 0.5}, "step": 1}, "has 251 characters"),
    ({"metrics": {f"class_{i}": 0.5 for i in range(1000)}, "step": 1},
     "a run holds at most 1,000 metric names"),
])
def test_a_point_the_server_would_refuse_is_refused_at_the_call_not_with_its_batch(
        live_server, token, project, bad, said):
    # given a live run whose buffer holds good points not sent yet
    run = fitboard.init(project="vision", name="refused", url=live_server.url, token=token,
                        flush_s=60)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1), "epoch": 0}, step=step)

    # when a call holds what the server refuses (a step past 64 bits or with a fraction, a
    # name too long, one name too many)
    with pytest.raises(fitboard.FitboardError, match=said):
        run.log(bad["metrics"], step=bad["step"])
    run.log({"loss": 0.1}, step=5)
    run.finish()

    # then the script was told at the call, and every other point was stored
    assert run.errors == []
    stored = metric_store.read(run.id)["train_loss"]
    assert stored.steps.tolist() == [0, 1, 2, 3, 4, 5]


@dataclasses.dataclass
class Optim:
    lr: float = 1e-3  # per step
    betas: tuple[float, float] = (0.9, 0.999)


def test_a_config_of_argparse_args_and_dataclasses_is_stored_as_params(tmp_path: Path) -> None:
    # given a script's config as W&B scripts pass it: argparse's args holding a dataclass
    args = argparse.Namespace(data=Path("/data/cifar"), layers=[64, 64], optim=Optim())

    # when a run starts with it
    run = fitboard.init(project="p", name="args", config=args, offline=True, directory=tmp_path)
    run.finish()

    # then each field is a param under its dotted name, its value as text
    header = json.loads(run.path.read_text().splitlines()[0])
    assert header["params"] == {"data": "/data/cifar", "layers": "[64, 64]",
                                "optim.lr": "0.001", "optim.betas": "(0.9, 0.999)"}
