"""Injectable faults for reliability tests: things that fail the way real hardware does."""

from __future__ import annotations

import torch
from torch import nn


class OutOfMemoryAbove(nn.Module):
    """Wraps a model whose forward pass raises CUDA's out-of-memory error (constructible on a
    CPU build) for any batch of more than ``rows`` rows, like a GPU too small for the batch.
    ``plain=True`` raises the bare RuntimeError that CPU allocators raise instead."""

    def __init__(self, inner: nn.Module, rows: int, plain: bool = False) -> None:
        super().__init__()
        self.inner, self.rows, self.plain = inner, rows, plain
        self.passes: list[int] = []  # rows of every forward pass that ran

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) > self.rows:
            message = f"Tried to allocate {len(x)} rows' activations: out of memory"
            if self.plain:
                raise RuntimeError(f"[enforce fail at alloc_cpu.cpp:117] {message}")
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. {message}")
        if self.training:
            self.passes.append(len(x))
        return self.inner(x)
