"""Fitboard's training engine: plain PyTorch, usable from a notebook or another program.

    from training import ExperimentSpec, MemoryReporter, run
    result = run(ExperimentSpec(), MemoryReporter(), workdir=Path("out"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.reporter import MemoryReporter, Reporter
from training.spec import ExperimentSpec, SpecError

if TYPE_CHECKING:
    from training.loop import RunResult


def run(spec: ExperimentSpec, reporter: Reporter, workdir: Path | None = None,
        **options: Any) -> RunResult:
    """Train a spec (see ``training.loop.run``). Imported lazily so that validating specs does
    not load torch; ``workdir`` defaults to a new temporary folder for the checkpoints."""
    import tempfile

    from training.loop import run as run_loop

    return run_loop(spec, reporter, workdir or Path(tempfile.mkdtemp(prefix="fitboard-")),
                    **options)


__all__ = ["ExperimentSpec", "MemoryReporter", "Reporter", "SpecError", "run"]
