"""Repeats: one spec trained over several seeds, together in one batched model when it can.

A repeat is N runs of one spec that differ only in ``run.seed`` (the split, the initialisation,
the data order and the dropout masks). Trained one after the other, N small runs cost N times
the per-step overhead of Python and the framework, which dominates a small model. Here the N
networks are stacked (``torch.func.stack_module_state``) and every step is one forward and one
backward pass of the stacked model (``torch.func.vmap`` over ``functional_call``), and one
optimizer step over the stacked parameters: every optimizer the spec offers updates each
element on its own, so each seed's update is the one its separate run would take.

Each seed is still set up by ``loop.setup`` (its own data split, initialisation, shuffle and
augmentation generators, checkpoints and reporter) and ended by ``loop.end_epoch`` and
``loop.finish``: its curves, checkpoints and result are those of a separate run of that seed,
up to the rounding of batched kernels, and exactly in distribution for dropout (whose masks
come from one generator for all seeds instead of one each). Specs the batched step does not
cover (see ``batch_problem``) train their seeds one after the other with ``loop.run``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from training import loop
from training.diagnostics import remedy_measure
from training.grouped import grouped_forward, laid_out
from training.loop import (
    EVAL_BATCH,
    NonFiniteLossError,
    RunOptions,
    RunResult,
    Training,
)
from training.optimization import LRSchedule, make_optimizer
from training.reporter import Reporter
from training.seeds import batch_problem, seed_specs
from training.significance import Comparison, compare
from training.spec import ExperimentSpec


@dataclass(eq=False)
class Stack:
    """N seeds' trainings and the stacked model that trains them together."""

    runs: list[Training]
    base: nn.Module  # the architecture, on the meta device: functional_call's template
    params: dict[str, torch.Tensor]  # name -> [N, ...] leaf tensors, optimised
    buffers: dict[str, torch.Tensor]  # name -> [N, ...] (batch norm's running statistics)
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    x_train: torch.Tensor  # [N, rows, ...]: each seed's own split
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    forward: Callable[..., torch.Tensor] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        grouped = grouped_forward(self.base, self.runs[0].spec.model.arch)
        if grouped is not None:
            self.forward = grouped
            return

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (params, buffers), (x,))

        # "different": each seed's dropout draws its own masks.
        self.forward = vmap(one, randomness="different")


def run_seeds(spec: ExperimentSpec, seeds: Sequence[int], reporters: Sequence[Reporter],
              workdirs: Sequence[Path], options: RunOptions | None = None) -> list[RunResult]:
    """Train ``spec`` once per seed, each reporting to its reporter and keeping its
    checkpoints in its workdir; together in one batched model when ``batch_problem`` finds
    nothing against it, else one after the other. Returns each seed's result, in order.
    A reporter asking to stop cancels every seed of a batched repeat at that step."""
    options = options or RunOptions()
    specs = seed_specs(spec, seeds)
    if len(specs) < 2 or batch_problem(spec, options, len(specs)) is not None:
        return [loop.run(s, r, w, options) for s, r, w in zip(specs, reporters, workdirs,
                                                               strict=True)]
    runs = [loop.setup(s, r, w, options) for s, r, w in zip(specs, reporters, workdirs,
                                                            strict=True)]
    if len({len(t.x_train) for t in runs}) > 1 or len({len(t.x_val) for t in runs}) > 1:
        # Splits of different sizes cannot be stacked (a stratified split can round apart).
        return [loop.train(t) for t in runs]
    return train_stack(stack(runs, seeds))


def stack(runs: list[Training], seeds: Sequence[int]) -> Stack:
    """Stack the seeds' freshly initialised networks; each seed's own network then holds views
    of its slice, so its checkpoints see the stacked training's weights."""
    models = [t.model for t in runs]
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(models)  # type: ignore[arg-type]
    params = laid_out(params, base, runs[0].spec.model.arch)
    for index, model in enumerate(models):
        for name, tensor in model.named_parameters():
            tensor.data = params[name].detach()[index]
        for name, buffer in model.named_buffers():
            buffer.data = buffers[name][index]
    first = runs[0]
    # Fused: one kernel per stacked tensor instead of about ten, where torch has one.
    optimizer = make_optimizer(first.spec, params.values(),
                               fused=first.device.type in ("cpu", "cuda"))
    schedule = LRSchedule(optimizer, first.spec.schedule, len(first.groups),
                          first.spec.run.epochs, first.mode)
    # The dropout masks of the seeds together, drawn reproducibly from the seeds' set.
    torch.manual_seed(hash(tuple(seeds)) % 2**63)
    return Stack(runs, base, params, buffers, optimizer, schedule,
                 torch.stack([t.x_train for t in runs]),  # type: ignore[misc]
                 torch.stack([t.y_train for t in runs]),
                 torch.stack([t.x_val for t in runs]),  # type: ignore[misc]
                 torch.stack([t.y_val for t in runs]))


def train_stack(s: Stack) -> list[RunResult]:
    """Every epoch of the stacked seeds, each epoch ended per seed by ``loop.end_epoch``."""
    first = s.runs[0]
    for t in s.runs:
        t.reporter.status("running", epoch=0, epochs=t.spec.run.epochs, step=0,
                          total_steps=t.total_steps, device=str(t.device),
                          parameters=sum(p.numel() for p in t.model.parameters()),
                          precision=str(t.precision or torch.float32).removeprefix("torch."),
                          compiled=False, seeds_together=len(s.runs))
    try:
        while first.state.epoch <= first.spec.run.epochs:
            if not train_stack_epoch(s):
                return [loop.cancel(t) for t in s.runs]
            for t, metrics in zip(s.runs, stack_metrics(s), strict=True):
                loop.end_epoch(t, metrics)
    except Exception:
        write_checkpoints(s.runs)  # as a single run: the checkpoints of the good epochs stay
        raise
    results = [loop.finish(t, stopped_early=False, write=False) for t in s.runs]
    write_checkpoints(s.runs)
    return results


def write_checkpoints(runs: Sequence[Training]) -> None:
    """Write every seed's pending checkpoints at once, one thread per seed: each file is
    fsynced, and the waits for the disk overlap instead of adding up (ten files one after
    the other took 95 ms, at once 13 ms). The reporters hear of them in this thread."""
    with ThreadPoolExecutor(len(runs)) as pool:
        written = list(pool.map(lambda t: t.writer.save_pending(), runs))
    for t, files in zip(runs, written, strict=True):
        t.writer.announce(files)


def train_stack_epoch(s: Stack) -> bool:
    """One epoch's optimizer steps for every seed at once; False when a reporter asks to stop
    before one of them."""
    first, n = s.runs[0], len(s.runs)
    s.base.train()
    orders = []
    for t in s.runs:
        t.model.train()
        t.shuffle.set_state(t.state.epoch_shuffle)
        orders.append(torch.randperm(len(t.x_train), generator=t.shuffle))
    # Each seed's order as rows of the seeds' training sets one after the other: a batch is
    # then one index_select (half the time of indexing by seed and row).
    rows = s.x_train.shape[1]
    order = (torch.stack(orders) + torch.arange(n)[:, None] * rows).to(first.device)
    x_rows, y_rows = s.x_train.flatten(0, 1), s.y_train.flatten(0, 1)
    correct = torch.zeros(n, dtype=torch.long, device=first.device)
    for group in first.groups:
        if any(t.reporter.should_stop() for t in s.runs):
            return False
        start, end = group[0]
        index = order[:, start:end].flatten()
        losses, hits = stack_step(s, x_rows.index_select(0, index).unflatten(0, (n, -1)),
                                  y_rows.index_select(0, index).unflatten(0, (n, -1)))
        correct += hits
        lr = s.optimizer.param_groups[0]["lr"]
        s.optimizer.step()
        if s.schedule.active:
            s.schedule.after_step()
        for t, loss in zip(s.runs, losses, strict=True):
            t.state.step += 1
            t.state.loss_sum += loss * (end - start)
            t.state.position += 1
            t.reporter.log(t.state.step, {"loss": loss, "lr": lr})
    for t, hits_of_seed in zip(s.runs, correct.tolist(), strict=True):
        t.state.correct = int(hits_of_seed)
    return True


def stack_step(s: Stack, xb: torch.Tensor, yb: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    """The gradients of one step of every seed (each seed's loss depends on its own slice
    only, so the gradient of their sum is each one's own); returns the seeds' losses and
    correct predictions. NonFiniteLossError, before any update, as in ``loop``."""
    first = s.runs[0]
    if first.augment.active:
        xb = torch.stack([t.augment(x, t.augment_rng) for t, x in zip(s.runs, xb, strict=True)])
    s.optimizer.zero_grad(set_to_none=True)
    with first.mixed:
        out = s.forward(s.params, s.buffers, xb)
    out = out.float()
    losses = stack_losses(s, out, yb)
    values = losses.tolist()
    for t, value in zip(s.runs, values, strict=True):
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss became {value} at step {t.state.step + 1} (epoch {t.state.epoch}) of "
                f"seed {t.spec.run.seed}; training stopped before that update. Try a lower "
                "learning rate or gradient clipping.")
    losses.sum().backward()
    hits = ((out.argmax(-1) == yb).sum(1) if first.classification
            else torch.zeros(len(s.runs), dtype=torch.long, device=out.device))
    return values, hits


def stack_losses(s: Stack, out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Each seed's mean loss ``[N]``: one cross-entropy over every seed's rows when no seed
    weighs its classes (the weights come from each seed's own split), else seed by seed."""
    losses = [t.loss_fn for t in s.runs]
    if all(isinstance(f, nn.CrossEntropyLoss) and f.weight is None for f in losses):
        first = losses[0]
        assert isinstance(first, nn.CrossEntropyLoss)
        # Classes on dim 1 ([N, classes, rows]): the log-softmax then runs along the rows, a
        # third faster on a CPU than over 10 classes at a time.
        rows = nn.functional.cross_entropy(out.transpose(1, 2), yb, reduction="none",
                                           label_smoothing=first.label_smoothing)
        return rows.mean(1)
    return torch.stack([f(o, y) for f, o, y in zip(losses, out, yb, strict=True)])


@torch.no_grad()
def stack_metrics(s: Stack) -> list[dict[str, float]]:
    """Each seed's epoch metrics, as ``loop.epoch_metrics`` measures them: the epoch's
    training loss (and accuracy), and its validation split's, in one batched pass."""
    first = s.runs[0]
    s.base.eval()
    rows = s.x_val.shape[1]
    loss_sum = torch.zeros(len(s.runs), dtype=torch.float64, device=first.device)
    correct = torch.zeros(len(s.runs), dtype=torch.long, device=first.device)
    abs_err, sq_err = [0.0] * len(s.runs), [0.0] * len(s.runs)
    for start in range(0, rows, EVAL_BATCH):
        xb, yb = s.x_val[:, start:start + EVAL_BATCH], s.y_val[:, start:start + EVAL_BATCH]
        with first.mixed:
            out = s.forward(s.params, s.buffers, xb)
        out = out.float()
        loss_sum += stack_losses(s, out, yb).double() * xb.shape[1]
        for i, t in enumerate(s.runs):
            if not first.classification:
                diff = (out[i] - yb[i]) * t.data.target_std
                abs_err[i] += float(diff.abs().sum())
                sq_err[i] += float((diff**2).sum())
        if first.classification:
            correct += (out.argmax(-1) == yb).sum(1)
    losses = (loss_sum / rows).tolist()
    return [seed_metrics(t, losses[i], int(correct[i]), abs_err[i], sq_err[i], rows)
            for i, t in enumerate(s.runs)]


def seed_metrics(t: Training, val_loss: float, val_correct: int, abs_err: float,
                 sq_err: float, rows: int) -> dict[str, float]:
    """One seed's epoch metrics, named and ordered as ``loop.epoch_metrics`` names them."""
    metrics = {"train_loss": t.state.loss_sum / t.rows}
    if t.classification:
        metrics["train_acc"] = t.state.correct / t.rows
        metrics.update(val_loss=val_loss, val_acc=val_correct / rows)
    else:
        metrics.update(val_loss=val_loss, val_rmse=math.sqrt(sq_err / rows),
                       val_mae=abs_err / rows)
    return metrics


def final_values(results: Sequence[RunResult], metric: str) -> list[float]:
    """Each seed's value of ``metric`` at its best epoch (what its run is judged by), or at its
    end for the train/validation gap (``"gap"``: final validation minus training loss)."""
    if metric == "gap":
        return [r.final_metrics["val_loss"] - r.final_metrics["train_loss"] for r in results]
    return [r.best_metrics[metric] for r in results]


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and count of per-seed values."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


@dataclass(frozen=True)
class RemedyCheck:
    """A remedy trained beside its original over the same seeds: whether what the original's
    problem is about and the monitored metric moved beyond seed noise (B = the remedy, A = the
    original)."""

    seeds: tuple[int, ...]
    original: tuple[RunResult, ...]
    remedied: tuple[RunResult, ...]
    problem: Comparison  # on the original verdict's ``diagnostics.remedy_measure``
    monitored: Comparison  # the monitored metric at each run's best epoch

    def report(self) -> str:
        """The two verdicts, one line each."""
        return (f"{self.problem.metric}: {self.problem.sentence}\n"
                f"{self.monitored.metric}: {self.monitored.sentence}")


def verify_remedy(spec: ExperimentSpec, patch: dict[str, dict[str, Any]],
                  seeds: Sequence[int], workdir: Path, options: RunOptions | None = None,
                  original: Sequence[RunResult] | None = None,
                  verdict: str = "overfitting") -> RemedyCheck:
    """Train ``spec`` and ``spec.patched(patch)`` over ``seeds`` (the original's results may be
    given: seeds already run are not run again) and compare them with Welch's t, on what the
    original's ``verdict`` is about (see ``RemedyCheck.problem``) and its monitored metric, as
    the group page of a remedy verified from the diagnostics page does."""
    from training.reporter import MemoryReporter

    def repeat(of: ExperimentSpec, tag: str) -> list[RunResult]:
        return run_seeds(of, seeds, [MemoryReporter() for _ in seeds],
                         [workdir / f"{tag}-{seed}" for seed in seeds], options)

    before = list(original) if original is not None else repeat(spec, "original")
    after = repeat(spec.patched(patch), "remedy")
    from training.optimization import monitored_metric

    metric, _ = monitored_metric(spec, spec.data.info().task)
    about = remedy_measure(verdict)
    names = ("the original", "the remedy")
    return RemedyCheck(
        tuple(seeds), tuple(before), tuple(after),
        compare(final_values(before, about), final_values(after, about), about, names=names),
        compare(final_values(before, metric), final_values(after, metric), metric, names=names))
