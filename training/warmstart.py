"""Warm start: a run that begins from another run's trained weights (transfer learning).

The source is a checkpoint archive (its ``model.safetensors``); the engine gets the file, never
a run id to look up. Every tensor of the new model whose name and shape match one of the
source's is copied; the rest keep their fresh initialisation: the output layer when the class
count differs, and any layer the new spec shapes otherwise. With ``model.freeze_epochs`` the
copied layers other than the output layer stay exactly as loaded (their batch-norm statistics
too) for that many epochs, then every layer trains.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from training.data.catalog import DatasetInfo
from training.models import build_model
from training.spec import ARCH_TITLES, ExperimentSpec


class TransferError(ValueError):
    """The source's weights cannot start the new model: no layer of its body fits."""


@dataclass(frozen=True)
class Transfer:
    """What a warm start copied into a model, by state-dict name."""

    loaded: tuple[str, ...]  # tensors copied from the source (parameters and buffers)
    new: tuple[str, ...]  # tensors left as initialised: absent from the source or shaped otherwise
    head: tuple[str, ...]  # the output layer's parameters
    frozen: tuple[str, ...]  # parameters held during the frozen epochs: loaded, not the head

    def to_dict(self) -> dict[str, Any]:
        """The record a checkpoint carries (names of what stayed new; counts of the rest)."""
        return {"loaded": len(self.loaded), "new": list(self.new),
                "new_head": any(name in self.new for name in self.head),
                "frozen": len(self.frozen)}


def output_layer(model: nn.Module) -> tuple[str, ...]:
    """The parameter names of the model's output layer: its last ``nn.Linear``."""
    last = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if not last:
        return ()
    return tuple(f"{last}.{name}" for name, _ in model.get_submodule(last).named_parameters())


def plan(source: Mapping[str, tuple[int, ...]], target: nn.Module) -> Transfer:
    """Which of ``target``'s tensors the source's (name → shape) fill. Raises TransferError
    when none outside the output layer does: the architectures do not match."""
    head = output_layer(target)
    shapes = {name: tuple(t.shape) for name, t in target.state_dict().items()}
    loaded = tuple(name for name, shape in shapes.items() if source.get(name) == shape)
    new = tuple(name for name in shapes if name not in loaded)
    parameters = {name for name, _ in target.named_parameters()}
    if not any(name in parameters and name not in head for name in loaded):
        raise TransferError(
            f"none of its layers fits this model ({len(shapes)} tensors, "
            f"{sum(name in source for name in shapes)} with a matching name): choose a run of "
            "the same architecture and layer sizes")
    frozen = tuple(name for name in loaded if name in parameters and name not in head)
    return Transfer(loaded, new, head, frozen)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint archive (``training.checkpoints``), on the CPU."""
    try:
        with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as archive:
            return load_safetensors(archive.read("model.safetensors"))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise TransferError(f"{path} is not a readable checkpoint ({exc})") from exc


def load_into(model: nn.Module, path: Path) -> Transfer:
    """Copy the checkpoint's matching tensors into ``model``; what was copied and what not."""
    weights = read_weights(path)
    transfer = plan({name: tuple(t.shape) for name, t in weights.items()}, model)
    model.load_state_dict({name: weights[name] for name in transfer.loaded}, strict=False)
    return transfer


def hold(model: nn.Module, frozen: Iterable[str], held: bool) -> None:
    """Freeze (``held``) or release the parameters named ``frozen``: a frozen parameter gets
    no gradient, so no optimizer moves it, and a batch norm whose parameters are all frozen
    normalises with its loaded statistics instead of updating them. Call after
    ``model.train()``, which puts every batch norm back in training mode."""
    names = set(frozen)
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.requires_grad_(not held)
    if not held:
        return
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = [f"{prefix}.{name}" for name, _ in module.named_parameters()]
            if own and all(name in names for name in own):
                module.eval()


def spec_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """A model's tensor names and shapes (build it on the ``meta`` device: nothing is
    allocated)."""
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def compatibility_problem(source: ExperimentSpec, source_info: DatasetInfo,
                          target: ExperimentSpec, target_info: DatasetInfo) -> str | None:
    """Why a model of ``source`` (trained on ``source_info``) cannot start one of ``target``,
    or None when it can, decided from the specs alone: both networks are built on the ``meta``
    device, which allocates nothing, and their tensors compared as ``load_into`` will."""
    if source.model.arch != target.model.arch:
        return (f"it trained {ARCH_TITLES[source.model.arch]}, and this run builds "
                f"{ARCH_TITLES[target.model.arch]}: choose a run of the same architecture")
    if target.model.arch == "pretrained":
        if source.model.pretrained != target.model.pretrained:
            return (f"it fine-tuned {source.model.pretrained}, and this run starts from "
                    f"{target.model.pretrained}")
        return None
    with torch.device("meta"):
        old = build_model(source.model, source_info.input_shape, source_info.num_classes or 1)
        new = build_model(target.model, target_info.input_shape, target_info.num_classes or 1)
    try:
        plan(spec_shapes(old), new)
    except TransferError as exc:
        return str(exc)
    return None
