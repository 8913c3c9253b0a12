"""A small VGG-style convolutional network with a batch-norm switch."""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    """``blocks`` of (conv3x3 → [BatchNorm] → ReLU) ×2 with 2×2 max-pooling between blocks, then
    global average pooling, dropout and a linear head. Channels start at ``width`` and double per
    block."""

    def __init__(self, in_channels: int, outputs: int, width: int = 32, blocks: int = 2,
                 batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(blocks):
            out = width * 2**block
            for _ in range(2):
                # With batch norm after it, a convolution's bias is redundant.
                layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
            if block < blocks - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
