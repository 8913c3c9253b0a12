"""Which seeds a repeat trains, and whether they can train together. Imports neither torch
nor Django: the web app decides with it how to queue a repeat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from training.spec import ExperimentSpec

if TYPE_CHECKING:
    from training.loop import RunOptions

SEED_LIMIT = 2**32  # run.seed is below this


def seeds_from(first: int, count: int) -> list[int]:
    """``count`` consecutive seeds from ``first`` (wrapping below SEED_LIMIT)."""
    return [(first + offset) % SEED_LIMIT for offset in range(count)]


# Architectures whose forward pass vmap batches: plain tensor in, tensor out, no data-dependent
# control flow (the text models pack and trim their sequences by length).
BATCHED_ARCHS = ("mlp", "cnn")


def seed_specs(spec: ExperimentSpec, seeds: Sequence[int]) -> list[ExperimentSpec]:
    """The spec once per seed, differing only in ``run.seed``."""
    return [spec.patched({"run": {"seed": int(seed)}}) for seed in seeds]


def batch_problem(spec: ExperimentSpec, options: RunOptions | None = None) -> str | None:
    """Why the seeds of ``spec`` cannot train together in one batched model, or None when they
    can. Each reason is a feature that is per-run in ``loop``: a global gradient norm, a
    schedule or a stop that follows one run's own metric, split or resumed steps."""
    run = spec.run
    reasons = {
        f"{spec.model.arch} is not batched (only {', '.join(BATCHED_ARCHS)})":
            spec.model.arch not in BATCHED_ARCHS,
        "gradient clipping takes each run's own norm": run.grad_clip > 0,
        "reduce-on-plateau follows each run's own metric": spec.schedule.kind == "plateau",
        "early stopping ends each run at its own epoch": run.early_stopping_patience > 0,
        "gradient accumulation": run.grad_accumulation > 1,
        "an L1 penalty": spec.regularization.l1 > 0,
        "torch.compile": run.compile,
        "a data-parallel run": run.devices > 1,
        "freezing the layers loaded from a run": spec.model.freeze_epochs > 0,
    }
    if options is not None:
        reasons.update({
            "a data-parallel rank": options.parallel.world > 1,
            "a given model, loss or tokenizer": options.model is not None
            or options.train_loss is not None or options.tokenizer is not None,
            "a resumable run": options.resume,
        })
    return next((reason for reason, applies in reasons.items() if applies), None)
