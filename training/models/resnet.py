"""A residual network for small images, with batch-norm and dropout switches."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (each with optional batch norm) added to the input. A block that
    changes the size or channel count projects the input with a strided 1×1 convolution."""

    def __init__(self, channels_in: int, channels_out: int, stride: int,
                 batch_norm: bool) -> None:
        super().__init__()

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=not batch_norm)
        self.norm1 = norm(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=not batch_norm)
        self.norm2 = norm(channels_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=not batch_norm),
                norm(channels_out),
            )
        # Each block starts as (almost) the identity, so a deep stack trains from the first
        # step, with or without batch norm.
        last = self.norm2 if batch_norm else self.conv2
        assert isinstance(last, nn.BatchNorm2d | nn.Conv2d)
        nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A 3×3 stem, then ``stages`` groups of ``depth`` residual blocks; channels start at
    ``width`` and double at each stage after the first, which also halves height and width.
    Global average pooling, dropout and a linear head give the logits."""

    def __init__(self, in_channels: int, outputs: int, width: int = 32, stages: int = 3,
                 depth: int = 2, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(stages):
            out = width * 2**stage
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, out, stride, batch_norm))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
