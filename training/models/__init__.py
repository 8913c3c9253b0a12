"""Model families, built from a ModelSpec and the data's input shape and output size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from training.data.text import Tokens, resolve_pretrained
from training.models.cnn import CNN
from training.models.mlp import MLP
from training.models.recurrent import RecurrentClassifier
from training.models.resnet import ResNet
from training.models.transformer import TransformerClassifier
from training.spec import ModelSpec

__all__ = ["CNN", "MLP", "RecurrentClassifier", "ResNet", "TransformerClassifier",
           "build_model", "feed"]

TEXT_ARCHS = ("lstm", "gru", "transformer", "pretrained")


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], outputs: int,
                vocab_size: int = 0, pretrained_config: Mapping[str, Any] | None = None
                ) -> nn.Module:
    """The network a spec describes, for inputs of ``input_shape`` and ``outputs`` logits/values.

    Text models need the tokenizer's ``vocab_size`` (own vocabulary). A pretrained model loads
    ``spec.pretrained``, unless ``pretrained_config`` (saved in a checkpoint) rebuilds it without
    the hub; its weights then come from the checkpoint."""
    if spec.arch == "mlp":
        features = 1
        for size in input_shape:
            features *= size
        return MLP(features, spec.hidden_sizes, outputs, spec.activation, spec.dropout)
    if spec.arch in ("cnn", "resnet"):
        if len(input_shape) != 3:
            raise ValueError(f"a {spec.arch} needs (channels, height, width) inputs, "
                             f"got {input_shape}")
        if spec.arch == "resnet":
            return ResNet(input_shape[0], outputs, spec.width, spec.blocks, spec.depth,
                          spec.batch_norm, spec.dropout)
        return CNN(input_shape[0], outputs, spec.width, spec.blocks, spec.batch_norm, spec.dropout)
    if spec.arch in ("lstm", "gru"):
        return RecurrentClassifier(spec.arch, vocab_size, outputs, spec.embed_dim,
                                   spec.hidden_size, spec.layers, spec.bidirectional,
                                   spec.dropout)
    if spec.arch == "transformer":
        return TransformerClassifier(vocab_size, outputs, spec.max_length, spec.embed_dim,
                                     spec.heads, spec.layers, spec.dropout, spec.positional)
    if spec.arch == "pretrained":
        from training.models.pretrained import PretrainedClassifier

        source = None if pretrained_config else resolve_pretrained(spec.pretrained)
        return PretrainedClassifier(outputs, source, pretrained_config, spec.freeze_encoder,
                                    spec.dropout)
    raise ValueError(f"unknown architecture {spec.arch!r}")


def feed(model: nn.Module, inputs: torch.Tensor | Tokens) -> torch.Tensor:
    """Run a model on a batch: a tensor for image and tabular models, token ids and their
    attention mask for text models."""
    if isinstance(inputs, Tokens):
        return model(inputs.input_ids, inputs.attention_mask)
    return model(inputs)
