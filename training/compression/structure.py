"""Rebuild a compressed model's structure from what its checkpoint records.

A channel-pruned network has narrower layers than its spec describes, and a quantized one has
``Int8Linear`` layers. Rather than inventing a second model description, the checkpoint keeps
the spec plus a small ``compression`` record, and the layer sizes are read back from the weight
shapes in the safetensors file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from training.compression.quantize import int8_placeholders


def resize_to_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Give every Linear, Conv and BatchNorm layer of ``model`` the sizes of its weights in
    ``state`` (in place), so that ``load_state_dict`` fits a channel-pruned network."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        weight = state.get(prefix + "weight", state.get(prefix + "qweight"))
        if weight is None:
            continue
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = weight.shape
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            module.out_channels, module.in_channels = weight.shape[0], weight.shape[1]
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            module.num_features = weight.shape[0]
        else:
            continue
        for key, tensor in list(module.named_parameters(recurse=False)):
            stored = state.get(prefix + key)
            if stored is not None and stored.shape != tensor.shape:
                setattr(module, key, nn.Parameter(torch.empty_like(stored, dtype=tensor.dtype)))
        for key, buffer in list(module.named_buffers(recurse=False)):
            stored = state.get(prefix + key)
            if buffer is not None and stored is not None and stored.shape != buffer.shape:
                setattr(module, key, torch.empty_like(stored, dtype=buffer.dtype))


def restore(model: nn.Module, record: Mapping[str, Any],
            state: Mapping[str, torch.Tensor]) -> None:
    """Apply a checkpoint's ``compression`` record to a freshly built model, in place."""
    if record.get("resized"):
        resize_to_state(model, state)
    int8_placeholders(model, list(record.get("int8_layers", [])))


def record(previous: Mapping[str, Any] | None, method: str, **changes: Any) -> dict[str, Any]:
    """The ``compression`` record of a model after ``method``, building on its source's
    (a chain such as prune → quantize keeps both structural changes)."""
    out: dict[str, Any] = {"methods": [], "resized": False, "int8_layers": [],
                           **dict(previous or {})}
    out["methods"] = [*out["methods"], method]
    out.update(changes)
    return out
