"""A resumable training state: everything the loop needs to go on from a step as if it had
never stopped.

``state.zip`` in a run's folder holds ``tensors.safetensors`` (the weights, the best epoch's
weights, the optimizer's tensors, the random generators' states) and ``state.json`` (the rest:
the loop's position and counters, the optimizer's hyper-parameters, the learning-rate schedule,
numpy's and Python's generator states), never pickle. Structures that JSON cannot say as they
are (tensors, tuples, dicts keyed by numbers, numpy arrays) are written as small tagged objects
and rebuilt on load. It is written atomically (temporary file, fsync, rename), so a process
killed while saving leaves the previous state whole.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from training.checkpoints import _write_atomic

STATE_FILE = "state.zip"
FORMAT = "fitboard-training-state/1"


@dataclass
class TrainingState:
    """What a run saved: ``tensors`` by name and the JSON ``document`` that refers to them."""

    tensors: dict[str, torch.Tensor]
    document: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.document["loop"]["step"])

    def value(self, name: str) -> Any:
        """A saved structure (optimizer, schedule, rng, loop) with its tensors put back."""
        return _decode(self.document[name], self.tensors)


class Stateful(Protocol):
    """Something with a ``state_dict`` that a resumed run loads back: the model, the optimizer,
    the learning-rate schedule."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any, /) -> Any: ...


@dataclass(kw_only=True)
class LoopState:
    """Every variable the training loop carries from step to step: what a resumed run needs,
    besides the model's, optimizer's and schedule's own states and the random generators, to go
    on as if it had never stopped. Saved under "loop" (``best_weights`` on its own), with the
    names and meanings the first version of the format gave them."""

    step: int = 0  # optimizer steps taken in the run
    # The epoch in progress, ``position`` of its optimizer steps taken (0: not begun), and its
    # running sums over their rows: the training loss and the correct predictions.
    epoch: int = 1
    position: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    # The shuffle generator's state before ``epoch`` drew its order: drawing again from it
    # gives the same order and brings the generator to where it was.
    epoch_shuffle: torch.Tensor
    best_value: float | None = None  # the monitored metric's best value; None before any epoch
    best_epoch: int = 0
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # the last evaluated epoch's
    history: dict[str, list[float]] = field(default_factory=dict)  # each metric, per epoch
    stale: int = 0  # epochs since the best one, for early stopping
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # the best epoch's

    def to_state(self) -> dict[str, Any]:
        """The parts of a saved state this holds: "loop" and "best_weights"."""
        loop = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "best_weights"}
        return {"loop": loop, "best_weights": self.best_weights}

    @classmethod
    def from_state(cls, saved: TrainingState) -> LoopState:
        """The loop's variables as ``to_state`` saved them."""
        return cls(**saved.value("loop"), best_weights=saved.value("best_weights"))


def encode(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` under names starting ``prefix``."""
    if isinstance(value, torch.Tensor):
        name = f"{prefix}#{len(tensors)}"
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, prefix, tensors) for v in value]}
    if isinstance(value, list):
        return [encode(v, prefix, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, prefix, tensors) for k, v in value.items()}
        return {"__items__": [[encode(k, prefix, tensors), encode(v, prefix, tensors)]
                              for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot save {type(value).__name__} in a training state")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """The global torch (and CUDA), numpy and Python generator states plus ``generators``'."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Put back what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save(path: Path, loop: LoopState, objects: Mapping[str, Stateful],
         generators: dict[str, torch.Generator]) -> None:
    """Write a run's resumable state atomically to ``path``: the loop's variables, each of
    ``objects``' ``state_dict`` under its name, and the random generators' states."""
    write(path, {**loop.to_state(),
                 **{name: thing.state_dict() for name, thing in objects.items()},
                 "rng": rng_states(generators)})


def restore(saved: TrainingState, objects: Mapping[str, Stateful],
            generators: dict[str, torch.Generator]) -> LoopState:
    """Load what ``save`` wrote back into ``objects`` and ``generators``; the loop's variables.
    Call it once everything is built: building the model and the data draws from the global
    generators, which this puts back last."""
    for name, thing in objects.items():
        thing.load_state_dict(saved.value(name))
    restore_rng(saved.value("rng"), generators)
    return LoopState.from_state(saved)


def write(path: Path, parts: dict[str, Any]) -> None:
    """Write ``parts`` (name → structure of tensors and plain values) atomically to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    document = {"format": FORMAT, **{name: encode(value, name, tensors)
                                     for name, value in parts.items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("tensors.safetensors", save_safetensors(tensors))
        archive.writestr("state.json", json.dumps(document))
    _write_atomic(path, buffer.getvalue())


def load(path: Path) -> TrainingState:
    """The state saved at ``path``; ValueError when it is not one."""
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("state.json"))
        tensors = load_safetensors(archive.read("tensors.safetensors"))
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training state ({document.get('format')!r})")
    return TrainingState(tensors, document)


def load_saved(workdir: Path) -> TrainingState | None:
    """The state in ``workdir``; None when there is none or it cannot be read (the run then
    starts over, as ``saved_step`` tells the caller)."""
    path = workdir / STATE_FILE
    if not path.exists():
        return None
    try:
        return load(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def saved_step(workdir: Path) -> int:
    """The step the state in ``workdir`` resumes after (0 when there is none or it is
    unreadable: the run then starts over)."""
    path = workdir / STATE_FILE
    try:
        with zipfile.ZipFile(path) as archive:
            return int(json.loads(archive.read("state.json"))["loop"]["step"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0


def discard(workdir: Path) -> None:
    """Remove a run's state once the run has ended for good (it holds the optimizer's moments,
    often twice the model's size)."""
    (workdir / STATE_FILE).unlink(missing_ok=True)
