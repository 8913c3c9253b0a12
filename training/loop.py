"""The one training loop. It knows a spec and a Reporter, nothing about Django or Celery."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training import checkpoints
from training.data import PreparedData, prepare
from training.diagnostics import diagnose, task_info
from training.models import build_model
from training.reporter import Reporter
from training.spec import ExperimentSpec

EVAL_BATCH = 1024  # rows per forward pass when evaluating
# Seconds between checkpoint writes while training. Each write serialises and fsyncs the whole
# model; doing it every epoch cost a fast run ~4% of its time. A crash loses at most this much.
CHECKPOINT_INTERVAL = 30.0


class TrainingError(RuntimeError):
    """A run that cannot go on; the message is shown to the user as the failure reason."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""


@dataclass
class RunResult:
    """What a finished (or cancelled) run achieved."""

    status: str  # "succeeded" or "cancelled"
    epochs: int  # epochs completed
    steps: int  # optimizer steps taken
    best_epoch: int
    best_metrics: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def resolve_device(requested: str) -> torch.device:
    """"auto" is CUDA when available, else CPU; an explicit "cuda" without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("the spec asks for CUDA but no GPU is visible to this worker")
    return torch.device(requested)


def primary_metric(task: str) -> tuple[str, str]:
    """The validation metric that picks the best epoch, and whether higher is better."""
    return ("val_acc", "max") if task == "classification" else ("val_loss", "min")


def make_loss(name: str) -> nn.Module:
    """The loss function named by the spec."""
    return nn.CrossEntropyLoss() if name == "cross_entropy" else nn.MSELoss()


def make_optimizer(spec: ExperimentSpec, params: Any) -> torch.optim.Optimizer:
    """The optimizer named by the spec, with its learning rate and weight decay."""
    o = spec.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
             data: PreparedData) -> dict[str, float]:
    """Loss and accuracy (classification) or RMSE/MAE in target units (regression)."""
    model.eval()
    total_loss, correct, abs_err, sq_err = 0.0, 0, 0.0, 0.0
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
        out = model(xb)
        total_loss += loss_fn(out, yb).item() * len(xb)
        if data.info.task == "classification":
            correct += int((out.argmax(1) == yb).sum())
        else:
            diff = (out - yb) * data.target_std
            abs_err += float(diff.abs().sum())
            sq_err += float((diff**2).sum())
    n = len(x)
    if data.info.task == "classification":
        return {"loss": total_loss / n, "acc": correct / n}
    return {"loss": total_loss / n, "rmse": math.sqrt(sq_err / n), "mae": abs_err / n}


def batch_starts(rows: int, batch: int) -> list[int]:
    """Batch boundaries over ``rows`` shuffled rows (last one is ``rows``). A final batch of a
    single row joins the one before: batch norm cannot normalise one row."""
    bounds = list(range(0, rows, batch)) + [rows]
    if len(bounds) > 2 and rows - bounds[-2] == 1:
        del bounds[-2]
    return bounds


class CheckpointWriter:
    """Holds the newest "best" and "last" weights in memory and writes them to ``<tag>.zip`` at
    most every ``interval`` seconds, and always when the run ends (``write()``), announcing each
    file to the reporter after it is on disk."""

    def __init__(self, workdir: Path, spec: ExperimentSpec, meta: Mapping[str, Any],
                 reporter: Reporter, interval: float) -> None:
        self.workdir, self.spec, self.meta = workdir, spec, meta
        self.reporter, self.interval = reporter, interval
        self.pending: dict[str, tuple[Mapping[str, torch.Tensor], dict[str, Any]]] = {}
        self.written_at = time.monotonic()

    def keep(self, tags: tuple[str, ...], weights: Mapping[str, torch.Tensor], epoch: int,
             step: int, metrics: Mapping[str, float]) -> None:
        """Remember ``weights`` (a ``checkpoints.snapshot``) as the newest of each tag."""
        info = {**self.meta, "epoch": epoch, "step": step, "metrics": dict(metrics)}
        for tag in tags:
            self.pending[tag] = (weights, info)

    def write_if_due(self) -> None:
        if time.monotonic() - self.written_at >= self.interval:
            self.write()

    def write(self) -> None:
        """Write every pending checkpoint now ("last" after "best")."""
        for tag in sorted(self.pending, key=("best", "last").index):
            weights, info = self.pending.pop(tag)
            path = self.workdir / f"{tag}.zip"
            checkpoints.save(path, weights, self.spec, info)
            self.reporter.checkpoint(path, tag, info["metrics"])
        self.written_at = time.monotonic()


def run(spec: ExperimentSpec, reporter: Reporter, workdir: Path, device: str | None = None,
        meta: Mapping[str, Any] | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL) -> RunResult:
    """Train the model a spec describes, reporting each step and epoch; returns the outcome.

    Keeps the weights of the last epoch (``last.zip``) and of the epoch with the best primary
    validation metric (``best.zip``) in ``workdir``, written every ``checkpoint_interval``
    seconds and whenever the run ends: finished, stopped early, cancelled (``last`` is then the
    weights at the cancelled step) or failed. Raises NonFiniteLossError, before updating the
    weights, on the first step whose loss is NaN or infinite; the checkpoints of the epochs
    before it are kept. ``meta`` is stored in every checkpoint (e.g. the experiment id).
    """
    torch.manual_seed(spec.run.seed)
    np.random.seed(spec.run.seed % 2**32)
    target = resolve_device(device or spec.run.device)
    data = prepare(spec.data.dataset, spec.data.val_fraction, spec.run.seed)
    x_train, y_train = data.x_train.to(target), data.y_train.to(target)
    x_val, y_val = data.x_val.to(target), data.y_val.to(target)
    model = build_model(spec.model, data.info.input_shape, data.info.num_classes or 1).to(target)
    loss_fn = make_loss(spec.optim.loss)
    optimizer = make_optimizer(spec, model.parameters())
    classification = data.info.task == "classification"
    key, mode = primary_metric(data.info.task)
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)

    batch = spec.run.batch_size
    starts = batch_starts(len(x_train), batch)
    steps_per_epoch = len(starts) - 1
    total_steps = steps_per_epoch * spec.run.epochs
    shuffle = torch.Generator().manual_seed(spec.run.seed)
    checkpoint_meta = {
        **checkpoints.dataset_meta(data.info),
        "label_names": data.label_names,
        "normalisation": data.normalisation.to_dict(),
        "target_mean": data.target_mean,
        "target_std": data.target_std,
        "device": str(target),
        **(meta or {}),
    }

    writer = CheckpointWriter(workdir, spec, checkpoint_meta, reporter, checkpoint_interval)
    reporter.status("running", epoch=0, epochs=spec.run.epochs, step=0, total_steps=total_steps,
                    device=str(target), parameters=sum(p.numel() for p in model.parameters()))
    step, best_epoch, stale = 0, 0, 0
    best_value: float | None = None
    best_metrics: dict[str, float] = {}
    metrics: dict[str, float] = {}
    history: dict[str, list[float]] = {}  # per-epoch metrics, for the live verdict
    task = task_info(spec.data.dataset)
    epoch = 0
    try:
        for epoch in range(1, spec.run.epochs + 1):
            model.train()
            order = torch.randperm(len(x_train), generator=shuffle).to(target)
            loss_sum = 0.0
            # Counted on the device: reading it every step would wait for the device each step.
            correct = torch.zeros((), dtype=torch.long, device=target)
            for start, end in zip(starts, starts[1:], strict=False):
                if reporter.should_stop():
                    writer.keep(("last",), checkpoints.snapshot(model), epoch - 1, step, metrics)
                    writer.write()
                    return RunResult("cancelled", epoch - 1, step, best_epoch, best_metrics,
                                     metrics)
                index = order[start:end]
                xb, yb = x_train[index], y_train[index]
                out = model(xb)
                loss = loss_fn(out, yb)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise NonFiniteLossError(
                        f"loss became {loss_value} at step {step + 1} (epoch {epoch}); training "
                        "stopped before that update. Try a lower learning rate or gradient "
                        "clipping."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if spec.run.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), spec.run.grad_clip)
                optimizer.step()
                step += 1
                loss_sum += loss_value * len(xb)
                if classification:
                    correct += (out.argmax(1) == yb).sum()
                reporter.log(step, {"loss": loss_value, "lr": optimizer.param_groups[0]["lr"]})

            val = evaluate(model, loss_fn, x_val, y_val, data)
            metrics = {"train_loss": loss_sum / len(x_train)}
            if classification:
                metrics["train_acc"] = int(correct) / len(x_train)
            metrics.update({f"val_{name}": value for name, value in val.items()})
            reporter.log(step, {**metrics, "epoch": float(epoch)})
            if not math.isfinite(metrics["val_loss"]):
                raise NonFiniteLossError(
                    f"validation loss became {metrics['val_loss']} at epoch {epoch}"
                )
            improved = best_value is None or better(metrics[key], best_value)
            if improved:
                best_value, best_epoch, best_metrics, stale = metrics[key], epoch, dict(metrics), 0
            else:
                stale += 1
            tags = ("best", "last") if improved else ("last",)
            writer.keep(tags, checkpoints.snapshot(model), epoch, step, metrics)
            writer.write_if_due()
            for name, value in metrics.items():
                history.setdefault(name, []).append(value)
            verdict = diagnose(history, task, spec, final=False)
            reporter.status(f"epoch {epoch}/{spec.run.epochs}", epoch=epoch,
                            epochs=spec.run.epochs, step=step, total_steps=total_steps,
                            verdict=verdict.to_dict())
            patience = spec.run.early_stopping_patience
            if patience and stale >= patience:
                # best.zip holds the best epoch's weights: that is the model a user downloads.
                writer.write()
                return RunResult("succeeded", epoch, step, best_epoch, best_metrics, metrics,
                                 True)
    except Exception:
        writer.write()  # a failed run keeps the checkpoints of its good epochs
        raise
    writer.write()
    return RunResult("succeeded", epoch, step, best_epoch, best_metrics, metrics)
