"""A MobileNet-style CNN: a 3×3 stem, then depthwise-separable blocks (a 3×3 depthwise
convolution and a 1×1 pointwise one, each followed by batch norm and ReLU), global average
pooling and a linear head. Small and fast on a CPU."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from fitboard_model.fieldmeta import meta
from torch import nn

_LEGEND = "MobileNet (plugin)"


@dataclass(frozen=True)
class MobileNetConfig:
    """The model's options: Fitboard generates its form fields and validates them from the
    field metadata (label, help, unit, range)."""

    # channels of the stem; the pointwise convolutions double them every other block
    width: int = field(default=16, metadata=meta(
        "Width", help="channels of the stem", min=4, max=256, unit="channels",
        fieldset=_LEGEND))
    # depthwise-separable blocks; every second one halves the image size
    blocks: int = field(default=3, metadata=meta(
        "Separable blocks", help="every second one halves the size", min=1, max=8,
        unit="blocks", fieldset=_LEGEND))
    # probability, before the linear head
    dropout: float = field(default=0.0, metadata=meta(
        "Head dropout", help="probability before the linear head", min=0.0, max=1.0,
        max_exclusive=True, fieldset=_LEGEND))


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
             groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class MobileNet(nn.Module):
    """Stem, ``config.blocks`` depthwise-separable blocks, average pooling and a linear head,
    for images shaped (channels, height, width)."""

    Config = MobileNetConfig
    title = "MobileNet (plugin: depthwise-separable CNN)"
    modalities = ("image",)
    # The compression methods that apply to its layers (distillation applies to every model).
    compression = ("prune_weights", "prune_channels", "quantize_dynamic")
    # The option a "smaller / larger model" remedy halves or doubles.
    size_option = "width"

    def __init__(self, config: MobileNetConfig, input_shape: tuple[int, ...],
                 outputs: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"MobileNet needs (channels, height, width) inputs, got {input_shape}")
        channels = config.width
        layers = _conv_bn(input_shape[0], channels, 3)
        for block in range(config.blocks):
            stride = 2 if block % 2 else 1
            out = channels * 2 if block % 2 else channels
            layers += _conv_bn(channels, channels, 3, stride, groups=channels)  # depthwise
            layers += _conv_bn(channels, out, 1)  # pointwise
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(config.dropout), nn.Linear(channels, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
