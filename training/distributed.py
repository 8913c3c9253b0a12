"""Data-parallel training across the processes ``torchrun`` starts (one per GPU, or several
CPU processes with the gloo backend): PyTorch's DistributedDataParallel, DistributedSampler's
sharding of each epoch's shuffled order, and a reporter that lets only rank 0 speak.

The loop takes a ``Group``; ``SINGLE`` (one process) changes nothing, so the one loop serves
both. Every rank runs the same steps in the same order, which is what the collectives (the
gradient all-reduce, the cancel broadcast, the epoch totals) need.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.reporter import Reporter


class Group:
    """One process training alone: the identity of every data-parallel hook."""

    rank = 0
    world = 1

    @property
    def is_main(self) -> bool:
        """The rank that reports metrics and writes the checkpoints users get."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module whose backward pass averages gradients across ranks."""
        return model

    def shard_rows(self, rows: int) -> int:
        """How many of ``rows`` training rows this rank sees per epoch."""
        return rows

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's shuffled row order."""
        return order

    def totals(self, *values: float) -> tuple[float, ...]:
        """Sums of ``values`` over every rank (epoch loss sums, correct counts, rows)."""
        return values

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank."""
        return flag


SINGLE = Group()


class DataParallel(Group):
    """This process's place in a torchrun group (RANK, WORLD_SIZE, LOCAL_RANK from the
    environment torchrun sets). ``start`` joins the process group: NCCL on CUDA, gloo on CPU."""

    def __init__(self, rank: int, world: int, local_rank: int) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = torch.device("cpu")

    @classmethod
    def from_env(cls) -> DataParallel | None:
        """The group torchrun started this process in; None outside torchrun."""
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            return None
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                   int(os.environ.get("LOCAL_RANK", "0")))

    def start(self, device: str) -> str:
        """Join the group and return this rank's device: ``cuda:<local rank>`` when ``device``
        is cuda (or auto on a GPU machine), else cpu."""
        import torch.distributed as dist

        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", rank=self.rank,
                                world_size=self.world)
        return str(self.device)

    def stop(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard_rows(self, rows: int) -> int:
        # DistributedSampler pads the order so every rank takes as many rows (and steps).
        return math.ceil(rows / self.world)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        per_rank = self.shard_rows(len(order))
        padding = per_rank * self.world - len(order)
        if padding:
            order = torch.cat([order, order[:padding]])
        return order[self.rank::self.world]

    def totals(self, *values: float) -> tuple[float, ...]:
        import torch.distributed as dist

        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return tuple(summed.tolist())

    def agree(self, flag: bool) -> bool:
        import torch.distributed as dist

        shared = torch.tensor([int(flag)], dtype=torch.int32, device=self.device)
        dist.broadcast(shared, src=0)
        return bool(shared.item())


class RankReporter:
    """Rank 0 passes everything to ``inner``; the other ranks report nothing (``inner`` is None
    there), so each point is stored once. ``should_stop`` is rank 0's answer on every rank,
    broadcast at the same step, so a cancel stops every rank together."""

    def __init__(self, inner: Reporter | None, group: Group) -> None:
        self.inner, self.group = inner, group

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.inner is not None:
            self.inner.log(step, metrics)

    def status(self, message: str, **fields: Any) -> None:
        if self.inner is not None:
            self.inner.status(message, **fields)

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        if self.inner is not None:
            self.inner.checkpoint(path, tag, metrics, sha256)

    def should_stop(self) -> bool:
        return self.group.agree(self.inner is not None and self.inner.should_stop())


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers in name order: equal on every rank of a
    data-parallel run whose replicas stayed in step."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
