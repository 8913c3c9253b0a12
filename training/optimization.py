"""What the loop minimises and how: losses, optimizers, learning-rate schedules, penalties,
mixed precision and compilation, each built from the spec with torch's own classes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from training.spec import ExperimentSpec, ScheduleSpec

# Metrics where higher is better; every other validation metric is an error or a loss.
HIGHER_IS_BETTER = frozenset({"val_acc"})


def monitored_metric(spec: ExperimentSpec, task: str) -> tuple[str, str]:
    """The validation metric that picks the best epoch, drives early stopping and
    reduce-on-plateau, and its mode ("max" when higher is better, else "min")."""
    key = spec.run.monitor
    if key == "auto":
        key = "val_acc" if task == "classification" else "val_loss"
    return key, "max" if key in HIGHER_IS_BETTER else "min"


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (k · count_c)`` per class (scikit-learn's "balanced"): every class then weighs as
    much in the loss as if the classes were equally frequent. A class absent from the training
    split counts as seen once, so its weight stays finite."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp(min=1)
    return len(labels) / (num_classes * counts.to(torch.float32))


def make_loss(spec: ExperimentSpec, train_labels: torch.Tensor,
              num_classes: int | None) -> nn.Module:
    """The loss the spec names; class weights come from the training split's labels."""
    o = spec.optim
    if o.loss == "cross_entropy":
        weight = None
        if o.class_weights == "balanced":
            weight = balanced_class_weights(train_labels, num_classes or 2).to(
                train_labels.device)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=o.label_smoothing)
    if o.loss == "mae":
        return nn.L1Loss()
    if o.loss == "huber":
        return nn.HuberLoss(delta=o.huber_delta)
    return nn.MSELoss()


def make_optimizer(spec: ExperimentSpec, params: Iterable[Any],
                   fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer the spec names, with its learning rate and weight decay (coupled L2 for
    every optimizer but AdamW, whose decay is decoupled from the gradient). ``fused``: torch's
    one-kernel-per-tensor implementation where it has one (Adam, AdamW, SGD; not RMSprop),
    the same update up to float rounding."""
    o = spec.optim
    kernel = fused or None  # None: torch's default for the device, as before
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                               weight_decay=o.weight_decay, fused=kernel)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, fused=kernel)
    if o.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, fused=kernel)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Σ|w| over weight matrices and convolution kernels. Biases and normalisation parameters
    (one-dimensional) are left out, as weight decay conventions do: shrinking them to zero
    does not simplify the function the network computes."""
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    return torch.stack([w.abs().sum() for w in weights]).sum()


class LRSchedule:
    """The learning rate over a run: an optional linear warmup, then the spec's schedule.

    Every schedule is a torch scheduler stepped once per optimizer step (epoch-based settings
    are converted to steps), except reduce-on-plateau, which is stepped once per epoch with the
    monitored validation metric. The warmup is a ``LinearLR`` from ``lr / (N + 1)`` up to the
    schedule's first learning rate over N steps, so step k of the warmup uses
    ``lr · k / (N + 1)``; the schedule then starts from its own step 0. This is what
    ``SequentialLR`` means to do, written out because ``SequentialLR`` restarts the second
    scheduler with ``step(0)``, which ``OneCycleLR`` does not support (its learning rate jumps).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: ScheduleSpec,
                 steps_per_epoch: int, epochs: int, mode: str) -> None:
        self.warmup = schedule.warmup_steps(steps_per_epoch)
        self.steps = 0
        after = max(1, steps_per_epoch * epochs - self.warmup)  # steps left for the schedule
        kind = schedule.kind
        # Built before the warmup: one-cycle sets its own starting learning rate, which the
        # warmup then scales down.
        self.main: lr_scheduler.LRScheduler | None = None
        self.plateau: lr_scheduler.ReduceLROnPlateau | None = None
        if kind == "step":
            self.main = lr_scheduler.StepLR(optimizer, schedule.step_epochs * steps_per_epoch,
                                            schedule.step_factor)
        elif kind == "exponential":
            # The per-epoch factor spread over the epoch's steps: a smooth decay that matches
            # the factor at every epoch boundary.
            self.main = lr_scheduler.ExponentialLR(
                optimizer, schedule.decay_per_epoch ** (1.0 / steps_per_epoch))
        elif kind == "cosine":
            self.main = lr_scheduler.CosineAnnealingLR(optimizer, after, schedule.min_lr)
        elif kind == "one_cycle":
            lr = optimizer.param_groups[0]["lr"]
            self.main = lr_scheduler.OneCycleLR(optimizer, lr, total_steps=after,
                                                pct_start=schedule.pct_start)
        elif kind == "plateau":
            self.plateau = lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if mode == "max" else "min", factor=schedule.plateau_factor,
                patience=schedule.plateau_patience)
        self.warmer = (lr_scheduler.LinearLR(optimizer, 1.0 / (self.warmup + 1), 1.0,
                                             total_iters=self.warmup)
                       if self.warmup else None)
        self.active = self.main is not None or self.plateau is not None or self.warmup > 0

    def after_step(self) -> None:
        """Advance by one optimizer step."""
        self.steps += 1
        if self.warmer is not None and self.steps <= self.warmup:
            self.warmer.step()
        elif self.main is not None:
            self.main.step()

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to go on with the same learning rates."""
        parts = {"warmer": self.warmer, "main": self.main, "plateau": self.plateau}
        return {"steps": self.steps, **{name: part.state_dict() for name, part in parts.items()
                                        if part is not None}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = state["steps"]
        for name, part in (("warmer", self.warmer), ("main", self.main),
                           ("plateau", self.plateau)):
            if part is not None:
                part.load_state_dict(state[name])

    def after_epoch(self, value: float) -> None:
        """Give reduce-on-plateau the epoch's monitored metric (after the warmup only: the two
        would fight over the learning rate)."""
        if self.plateau is not None and self.steps >= self.warmup:
            self.plateau.step(value)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a run: bf16 on CUDA when asked for or "auto" (and the GPU has
    it), otherwise none (float32). Raises ValueError for bf16 without CUDA."""
    if precision == "bf16" and device.type != "cuda":
        raise ValueError("bf16 mixed precision needs a CUDA device; this run is on "
                         f"{device.type}: choose precision auto or fp32")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"
                               and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def autocast(device: torch.device,
             dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """A reusable context for forward passes: autocast to ``dtype``, or nothing at all (so a
    float32 run pays no per-step cost)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def compile_model(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model)``. The compiled wrapper shares the model's parameters; the loop
    keeps the original for checkpoints, whose weight names must not carry the wrapper's
    prefix. Compilation happens lazily on the first forward pass."""
    return torch.compile(model, backend=backend)  # type: ignore[return-value]
