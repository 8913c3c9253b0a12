"""Model families, built from a ModelSpec and the data's input shape and output size.

The networks trained from scratch live in the ``fitboard-model`` package
(``packages/fitboard-model``), the loader users install to predict outside Fitboard: one copy
of each, so a downloaded checkpoint rebuilds there exactly as it was trained here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from fitboard_model.models import (
    CNN,
    MLP,
    RecurrentClassifier,
    ResNet,
    TransformerClassifier,
    build,
)
from torch import nn

from training.data.text import Tokens, resolve_pretrained
from training.spec import ModelSpec

__all__ = ["CNN", "MLP", "RecurrentClassifier", "ResNet", "TransformerClassifier",
           "build_model", "feed", "laid_out"]

TEXT_ARCHS = ("lstm", "gru", "transformer", "pretrained")


def build_model(spec: ModelSpec, input_shape: tuple[int, ...], outputs: int,
                vocab_size: int = 0, pretrained_config: Mapping[str, Any] | None = None
                ) -> nn.Module:
    """The network a spec describes, for inputs of ``input_shape`` and ``outputs`` logits/values.

    Text models need the tokenizer's ``vocab_size`` (own vocabulary). A pretrained model loads
    ``spec.pretrained``, unless ``pretrained_config`` (saved in a checkpoint) rebuilds it without
    the hub; its weights then come from the checkpoint."""
    if spec.arch == "pretrained":
        from training.models.pretrained import PretrainedClassifier

        source = None if pretrained_config else resolve_pretrained(spec.pretrained)
        return PretrainedClassifier(outputs, source, pretrained_config, spec.freeze_encoder,
                                    spec.dropout)
    return build(spec.to_dict(), input_shape, outputs, vocab_size)


def laid_out(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in the memory layout it trains fastest in on ``device``: the built-in
    convolutional networks channels last on a CPU, where oneDNN's convolutions, batch norms and
    pools run on it without reordering every tensor in and out (a training step of the default
    CNN 15-30 % less CPU time on 8x8 to 32x32 images, ``bench/channels_last.py``); each layer's
    output then stays in it. Inputs need no change (a convolution follows its weights' layout).
    Not a plugin's network (a ``.view`` of an activation fails on that layout) and not on a GPU,
    where it is not measured; the values of the weights, and the checkpoints (written
    contiguous), are the same either way."""
    if device.type == "cpu" and isinstance(model, (CNN, ResNet)):
        # Module.to takes memory_format (torch docs) though its stubs do not name it.
        return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def feed(model: nn.Module, inputs: torch.Tensor | Tokens) -> torch.Tensor:
    """Run a model on a batch: a tensor for image and tabular models, token ids and their
    attention mask for text models."""
    if isinstance(inputs, Tokens):
        return model(inputs.input_ids, inputs.attention_mask)
    return model(inputs)
