"""Fitboard's training engine: plain PyTorch, usable from a notebook or another program.

    from training import ExperimentSpec, MemoryReporter, run
    result = run(ExperimentSpec(), MemoryReporter(), workdir=Path("out"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from training.reporter import MemoryReporter, Reporter
from training.spec import ExperimentSpec, SpecError

if TYPE_CHECKING:
    from training.loop import RunKeywords, RunOptions, RunResult


def run(spec: ExperimentSpec, reporter: Reporter, workdir: Path | None = None,
        options: RunOptions | None = None, **keywords: Unpack[RunKeywords]) -> RunResult:
    """Train a spec (see ``training.loop.run`` and ``RunOptions``). Imported lazily so that
    validating specs does not load torch; ``workdir`` defaults to a new temporary folder for
    the checkpoints."""
    import tempfile

    from training.loop import run as run_loop

    return run_loop(spec, reporter, workdir or Path(tempfile.mkdtemp(prefix="fitboard-")),
                    options, **keywords)


def __getattr__(name: str) -> Any:
    # ``RunOptions`` lives with the loop, which imports torch: loaded when first asked for.
    if name == "RunOptions":
        from training.loop import RunOptions

        return RunOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExperimentSpec", "MemoryReporter", "Reporter", "RunOptions", "SpecError", "run"]
