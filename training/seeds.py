"""Which seeds a repeat trains, and whether they can train together. Imports neither torch
nor Django: the web app decides with it how to queue a repeat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from training import budget
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


def batch_problem(spec: ExperimentSpec, options: RunOptions | None = None, count: int = 1
                  ) -> str | None:
    """Why the ``count`` seeds of ``spec`` cannot train together in one batched model, or None
    when they can. Each reason is a feature that is per-run in ``loop``: a global gradient norm,
    a schedule or a stop that follows one run's own metric, split or resumed steps; or their
    memory together, past what one run may use (``budget``), where each seed alone fits."""
    run = spec.run
    too_large = together_too_large(spec, count)
    if too_large is not None:
        return too_large
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


def together_too_large(spec: ExperimentSpec, count: int) -> str | None:
    """Why ``count`` seeds of ``spec`` stacked in one model pass the memory one run may use
    (weights, gradients, optimizer state and activations, ``count`` times over), or None. A
    data set whose facts cannot be read here counts as too large: its seeds then train one
    after the other, each within the budget its spec was checked against."""
    if count < 2:
        return None
    try:
        size = budget.estimate(spec, spec.data.info())
    except (LookupError, ValueError, OSError):
        return "its data set's size is unknown here"
    limit = budget.current_limits().memory_gb * budget.GB
    if size is None or size.total_bytes * count <= limit:
        return None
    return (f"{count} seeds together need about {budget.byte_text(size.total_bytes * count)}, "
            f"past the {budget.byte_text(int(limit))} one run may use")
