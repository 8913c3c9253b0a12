"""Model families, built from a ModelSpec and the data's input shape and output size."""

from __future__ import annotations

from torch import nn

from training.models.cnn import CNN
from training.models.mlp import MLP
from training.spec import ModelSpec

__all__ = ["CNN", "MLP", "build_model"]


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], outputs: int) -> nn.Module:
    """The network a spec describes, for inputs of ``input_shape`` and ``outputs`` logits/values."""
    if spec.arch == "mlp":
        features = 1
        for size in input_shape:
            features *= size
        return MLP(features, spec.hidden_sizes, outputs, spec.activation, spec.dropout)
    if spec.arch == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"a CNN needs (channels, height, width) inputs, got {input_shape}")
        return CNN(input_shape[0], outputs, spec.width, spec.blocks, spec.batch_norm, spec.dropout)
    raise ValueError(f"unknown architecture {spec.arch!r}")
