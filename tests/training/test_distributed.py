"""Data-parallel hooks: each rank's shard of an epoch follows DistributedSampler (padded so
every rank takes as many steps), and only rank 0 reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.distributed import SINGLE, DataParallel, RankReporter
from training.reporter import MemoryReporter


def test_ranks_split_an_epoch_into_equal_disjoint_strided_shards():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))

    shards = [DataParallel(rank, 3, rank).shard(order) for rank in range(3)]

    # then 10 rows padded to 12 (the first two again), dealt out rank by rank
    assert [len(s) for s in shards] == [4, 4, 4]
    padded = torch.cat([order, order[:2]])
    assert all(torch.equal(shards[r], padded[r::3]) for r in range(3))
    assert sorted(torch.cat(shards).tolist()) == sorted(padded.tolist())


def test_one_process_trains_on_everything():
    order = torch.arange(7)

    assert torch.equal(SINGLE.shard(order), order)
    assert SINGLE.shard_rows(7) == 7
    assert SINGLE.totals(1.0, 2.0) == (1.0, 2.0)


def test_only_rank_zero_reports():
    inner = MemoryReporter()
    main, other = RankReporter(inner, SINGLE), RankReporter(None, SINGLE)

    main.log(1, {"loss": 1.0})
    other.log(1, {"loss": 2.0})
    other.status("running")

    assert inner.points == [(1, {"loss": 1.0})]
    assert inner.statuses == []
    assert other.should_stop() is False


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpus_train_identical_replicas_over_nccl(tmp_path):
    # given two GPUs, when torchrun starts one rank on each (NCCL)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(Path(__file__).with_name("ddp_ranks.py")), str(tmp_path), "cuda"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
    )

    # then both ranks finished with the same parameters
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    digests = {(tmp_path / f"rank{r}").read_text() for r in range(2)}
    assert len(digests) == 1
