"""A process that writes one checkpoint over and over, as a worker does during training, until
it is killed or a write fails: ``python -m tests.reliability.checkpoint_writer FOLDER [ROUNDS]``.

After every save it records the archive's sha256 and round in ``FOLDER/record.json`` (written
after the archive's rename, atomically), as the worker records a checkpoint row after the file.
The weights change every round, so each archive differs from the one before."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from training import checkpoints
from training.models import build_model
from training.spec import ExperimentSpec

HIDDEN = [1024, 1024]  # ~1.1M weights: a 4.5 MB archive, long enough to be killed mid-write


def spec() -> ExperimentSpec:
    return ExperimentSpec().patched({"data": {"dataset": "iris"},
                                     "model": {"arch": "mlp", "hidden_sizes": HIDDEN}})


def weights(the_spec: ExperimentSpec) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return checkpoints.snapshot(build_model(the_spec.model, (4,), 3))


def meta(round_: int) -> dict[str, object]:
    return {"dataset": "iris", "task": "classification", "input_shape": [4], "num_classes": 3,
            "round": round_}


def record(folder: Path, sha256: str, round_: int) -> None:
    tmp = folder / "record.json.tmp"
    tmp.write_text(json.dumps({"sha256": sha256, "round": round_}))
    os.replace(tmp, folder / "record.json")


def main(folder: Path, rounds: int) -> None:
    the_spec = spec()
    state = weights(the_spec)
    for round_ in range(rounds):
        for tensor in state.values():  # a training step's worth of change, cheaply
            tensor.add_(1e-3)
        digest = checkpoints.save(folder / "last.zip", state, the_spec, meta(round_))
        record(folder, digest, round_)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10**9)
