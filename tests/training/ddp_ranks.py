"""Run by torchrun from tests/training/test_distributed.py: each rank trains a digits MLP on
its device through ``training.run`` and writes its parameter digest to ``<out>/rank<N>``.
Arguments: the output folder, the device ("cuda" or "cpu") and the ranks (default 2)."""

from __future__ import annotations

import sys
from pathlib import Path

from training.distributed import DataParallel, RankReporter, parameter_digest
from training.loop import run
from training.reporter import MemoryReporter
from training.spec import ExperimentSpec


def main(out: Path, device: str, ranks: int) -> None:
    group = DataParallel.from_env()
    assert group is not None
    where = group.start(device)
    spec = ExperimentSpec.from_dict({"data": {"dataset": "digits"}, "model": {"arch": "mlp"},
                                     "run": {"epochs": 2, "device": device, "devices": ranks}})
    reporter = MemoryReporter() if group.is_main else None
    try:
        result = run(spec, RankReporter(reporter, group), out / f"work{group.rank}",
                     device=where, parallel=group)
        assert result.model is not None
        (out / f"rank{group.rank}").write_text(parameter_digest(result.model))
    finally:
        group.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
