"""The one training loop. It knows a spec and a Reporter, nothing about Django or Celery."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import torch
from torch import nn

from training import checkpoints, warmstart
from training import resume as resumable
from training.data import DataSources, PreparedData, prepare
from training.data.augment import Augmentation
from training.data.text import TokenizerFactory, Tokens, tokenizer_for
from training.diagnostics import TaskInfo, diagnose, task_info
from training.distributed import SINGLE, Group
from training.models import build_model, feed, laid_out
from training.optimization import (
    LRSchedule,
    autocast,
    autocast_dtype,
    compile_model,
    l1_penalty,
    make_loss,
    make_optimizer,
    monitored_metric,
)
from training.reference import Reference, reference_for, reference_key
from training.reporter import Reporter
from training.resume import LoopState
from training.spec import ExperimentSpec

EVAL_BATCH = 1024  # rows per forward pass when evaluating
# Seconds between checkpoint writes while training. Each write serialises and fsyncs the whole
# model; doing it every epoch cost a fast run ~4% of its time. A crash loses at most this much.
CHECKPOINT_INTERVAL = 30.0
# Fewest rows per forward pass that halving after an out-of-memory error goes down to. Below
# about this, per-pass overhead dominates and batch norm's statistics get noisy: a model that
# does not fit 8 rows needs a smaller model, not a smaller batch.
MIN_BATCH = 8


# A training loss other than the spec's: (outputs, targets, inputs) -> scalar loss.
TrainLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | Tokens], torch.Tensor]


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
    # Rows per forward pass that training ended with: the spec's batch size, or less when an
    # out-of-memory error halved it (the optimizer step still takes the spec's rows).
    micro_batch: int = 0
    # The trained network, on the training device: the best epoch's weights when early
    # stopping restored them (``run.restore_best``), else the last step's.
    model: nn.Module | None = field(default=None, repr=False)
    # The test split's metrics (test_loss, test_acc or test_rmse/test_mae), measured once with
    # the best epoch's weights when training ends; empty without a test split or on cancel.
    test_metrics: dict[str, float] = field(default_factory=dict)
    # The data set's reference model (``RunOptions.reference_dir``), None without one.
    reference: Reference | None = None


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


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor | Tokens,
             y: torch.Tensor, data: PreparedData,
             precision: torch.dtype | None = None) -> dict[str, float]:
    """Loss and accuracy (classification) or RMSE/MAE in target units (regression), with
    forward passes autocast to ``precision`` when given."""
    model.eval()
    if isinstance(x, Tokens):
        # Texts in order of length: each pass then pads to about its own texts' length (the
        # sums below do not depend on the order).
        by_length = torch.argsort(x.attention_mask.sum(1), stable=True)
        x, y = x[by_length], y[by_length]
    total_loss, correct, abs_err, sq_err = 0.0, 0, 0.0, 0.0
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
        with autocast(x.device, precision):
            out = feed(model, xb)
        out = out.float()
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


# Batches sorted by length together: a window of this many batches of the epoch's random order
# (as Hugging Face's group_by_length), wide enough to find texts of a like length, narrow enough
# that which texts meet in a batch still changes every epoch.
LENGTH_WINDOW = 50


def grouped_by_length(order: torch.Tensor, lengths: torch.Tensor, batch: int,
                      generator: torch.Generator) -> torch.Tensor:
    """``order`` rearranged so that each batch of ``batch`` rows holds texts of about the same
    length (``lengths`` per row): each window of ``LENGTH_WINDOW`` batches sorted by length, then
    the full batches shuffled, so the epoch's lengths do not rise and fall in a saw-tooth. The
    last, shorter batch stays last, where ``batch_starts`` puts it."""
    window = batch * LENGTH_WINDOW
    order = torch.cat([part[torch.sort(lengths[part], descending=True, stable=True).indices]
                       for part in order.split(window)])
    full = len(order) // batch
    if len(order) % batch == 1 and full > 0:
        full -= 1  # batch_starts joins a last single row to the batch before it
    shuffled = order[:full * batch].view(full, batch)[torch.randperm(full, generator=generator)]
    return torch.cat([shuffled.flatten(), order[full * batch:]])


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the device ran out of memory: CUDA's own error, or the plain
    RuntimeError other allocators (CPU, MPS) raise with "out of memory" in its message."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


def micro_batches(group: list[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` batches of one optimizer step split into forward passes of at most
    ``rows`` rows (no pass of a single row, as in ``batch_starts``)."""
    parts: list[tuple[int, int]] = []
    for start, end in group:
        bounds = [start + b for b in batch_starts(end - start, rows)]
        parts += zip(bounds, bounds[1:], strict=False)
    return parts


def halve_after_oom(rows: int, floor: int, device: torch.device) -> int:
    """The forward-pass size to retry a step with after it ran out of memory at ``rows``:
    half of it, not below ``floor``; a TrainingError naming the sizes when already at it."""
    if rows <= floor:
        raise TrainingError(
            f"out of memory at a batch of {rows} rows, the smallest this run may try "
            f"({floor}): use a smaller model or shorter inputs"
        )
    if device.type == "cuda":
        torch.cuda.empty_cache()  # give the failed pass's cached blocks back before retrying
    return max(floor, rows // 2)


class CheckpointWriter:
    """Holds the newest "best" and "last" weights in memory and writes them to ``<tag>.zip`` at
    most every ``interval`` seconds, and always when the run ends (``write()``), announcing each
    file to the reporter after it is on disk."""

    def __init__(self, workdir: Path, spec: ExperimentSpec, meta: Mapping[str, Any],
                 reporter: Reporter, interval: float,
                 files: Mapping[str, bytes] | None = None) -> None:
        self.workdir, self.spec, self.meta = workdir, spec, meta
        self.files = dict(files or {})  # extra archive members: tokenizer, pretrained config
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
        self.announce(self.save_pending())

    def save_pending(self) -> list[tuple[Path, str, dict[str, float], str]]:
        """Write every pending checkpoint ("last" after "best") without telling the reporter
        (which need not be thread-safe, while this may run in a thread); returns each file's
        ``(path, tag, metrics, sha256)`` for ``announce``."""
        written = []
        for tag in sorted(self.pending, key=("best", "last").index):
            weights, info = self.pending.pop(tag)
            path = self.workdir / f"{tag}.zip"
            digest = checkpoints.save(path, weights, self.spec, info, self.files)
            written.append((path, tag, info["metrics"], digest))
        self.written_at = time.monotonic()
        return written

    def announce(self, written: list[tuple[Path, str, dict[str, float], str]]) -> None:
        """Tell the reporter about files ``save_pending`` wrote."""
        for path, tag, metrics, digest in written:
            self.reporter.checkpoint(path, tag, metrics, digest)


def augmentation(spec: ExperimentSpec) -> Augmentation:
    """The spec's augmentation of training batches (a no-op unless a field is set)."""
    d = spec.data
    return Augmentation(d.augment_crop, d.augment_flip, d.augment_rotation, d.augment_noise)


def evaluate_test(model: nn.Module, weights: Mapping[str, torch.Tensor], loss_fn: nn.Module,
                  data: PreparedData, device: torch.device,
                  precision: torch.dtype | None = None) -> dict[str, float]:
    """The test split's metrics under ``weights`` (the best epoch's), on a copy of the model so
    the trained one is left as it is. Empty when there is no test split."""
    if data.x_test is None or data.y_test is None:
        return {}
    import copy

    best = copy.deepcopy(model)
    best.load_state_dict(weights)
    metrics = evaluate(best, loss_fn, data.x_test.to(device), data.y_test.to(device), data,
                       precision)
    return {f"test_{name}": value for name, value in metrics.items()}


@dataclass(frozen=True)
class RunOptions:
    """How to run a spec, besides what the spec says. The defaults are a plain run in this
    process on the spec's device."""

    device: str | None = None  # "cpu", "cuda", "auto"; None: the spec's ``run.device``
    meta: Mapping[str, Any] | None = None  # stored in every checkpoint (e.g. the experiment id)
    # Seconds between writes of the checkpoints (and, with ``resume``, of the state).
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    compile_backend: str = "inductor"  # the ``torch.compile`` backend when ``run.compile`` is on
    sources: DataSources | None = None  # where data files are (data directory, uploaded sets)
    # Train this network (e.g. a pruned one, to fine-tune) instead of building a new one.
    model: nn.Module | None = None
    # ``train_loss(outputs, targets, inputs)``: the training loss instead of the spec's (e.g.
    # distillation); validation keeps the spec's loss.
    train_loss: TrainLoss | None = None
    # How texts become token ids (e.g. a compressed model's source's own tokenizer) instead of
    # the one the model spec builds.
    tokenizer: TokenizerFactory | None = None
    # This process's place in a data-parallel run (``training.distributed``): each rank trains
    # on its shard of every epoch through DistributedDataParallel; pass a ``RankReporter`` so
    # that only rank 0 reports. The default trains in this process alone.
    parallel: Group = SINGLE
    # Rows per forward pass below which halving after an out-of-memory error does not go.
    min_batch: int = MIN_BATCH
    # Keep a resumable state in ``workdir`` and go on from the one there (see ``run``).
    resume: bool = False
    # Where the data sets' reference models are cached (``training.reference``): with one, the
    # diagnosis judges underfitting against what a linear model reaches on the same split;
    # None diagnoses from the curves alone.
    reference_dir: Path | None = None
    # A checkpoint archive whose matching layers start the model (``training.warmstart``):
    # the file of the run that the spec's ``model.init_from`` names.
    init_weights: Path | None = None


class RunKeywords(TypedDict, total=False):
    """``RunOptions``' fields, as keyword arguments to ``run``."""

    device: str | None
    meta: Mapping[str, Any] | None
    checkpoint_interval: float
    compile_backend: str
    sources: DataSources | None
    model: nn.Module | None
    train_loss: TrainLoss | None
    tokenizer: TokenizerFactory | None
    parallel: Group
    min_batch: int
    resume: bool
    reference_dir: Path | None
    init_weights: Path | None


def run(spec: ExperimentSpec, reporter: Reporter, workdir: Path,
        options: RunOptions | None = None, **keywords: Unpack[RunKeywords]) -> RunResult:
    """Train the model a spec describes, reporting each step and epoch; returns the outcome.
    ``options`` (or its fields as ``keywords``, which win) say how: see ``RunOptions``.

    Keeps the weights of the last epoch (``last.zip``) and of the epoch with the best primary
    validation metric (``best.zip``) in ``workdir``, written every ``checkpoint_interval``
    seconds and whenever the run ends: finished, stopped early, cancelled (``last`` is then the
    weights at the cancelled step) or failed. Raises NonFiniteLossError, before updating the
    weights, on the first step whose loss is NaN or infinite; the checkpoints of the epochs
    before it are kept. A test split is evaluated once at the end with the best weights;
    ``best.zip`` then carries its metrics too.
    A step that runs out of device memory is retried with forward passes of half as many rows
    whose gradients add up to the same optimizer step (down to ``min_batch`` rows, then a
    TrainingError); the size that worked is reported as ``micro_batch`` and kept for the rest
    of the run.
    ``resume``: keep a resumable training state in ``workdir/state.zip`` (see
    ``training.resume``), written with the checkpoints' interval after any step (it records the
    position inside the epoch), and go on from the one already there, if any: a run stopped at
    any point and resumed takes exactly the steps and reaches exactly the weights and metrics of
    one that never stopped (on a deterministic device). Single-process runs only: a
    data-parallel run ignores it and starts over. The state outlives the run; remove it
    with ``training.resume.discard`` once the run has ended for good.
    """
    options = dataclasses.replace(options or RunOptions(), **keywords)
    return train(setup(spec, reporter, workdir, options))


@dataclass(eq=False, kw_only=True)
class Training:
    """A run as ``setup`` built it: the data on the device, the model and what trains it, and
    the loop's variables (``state``, saved and restored by ``training.resume``)."""

    spec: ExperimentSpec
    reporter: Reporter
    workdir: Path
    options: RunOptions
    device: torch.device
    data: PreparedData
    x_train: torch.Tensor | Tokens
    y_train: torch.Tensor
    x_val: torch.Tensor | Tokens
    y_val: torch.Tensor
    model: nn.Module  # the network itself, whose names the checkpoints carry
    forward: nn.Module  # what runs the forward passes: the model, compiled or data-parallel
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    precision: torch.dtype | None  # autocast's dtype; None: float32 without autocast
    augment: Augmentation
    augment_rng: torch.Generator
    shuffle: torch.Generator  # draws each epoch's order
    rows: int  # training rows this process sees per epoch (its shard's)
    # The ``(start, end)`` batches of each optimizer step of an epoch: ``grad_accumulation``
    # consecutive batches whose gradients add up.
    groups: list[list[tuple[int, int]]]
    writer: CheckpointWriter
    state: LoopState
    resume: bool  # whether this run keeps a resumable state (single-process runs only)
    resumed: bool  # whether it went on from one
    # Rows per forward pass. Halving it after an out-of-memory error splits each batch into
    # passes whose gradients add up, instead of halving the batch: the optimizer steps, their
    # count, the schedule and the learning rate stay the ones the spec describes.
    micro: int
    reference: Reference | None = None  # what a linear model reaches on this split
    transfer: warmstart.Transfer | None = None  # what a warm start loaded into the model
    state_saved_at: float = field(default_factory=time.monotonic)
    # Derived from the above.
    mixed: AbstractContextManager[Any] = field(init=False)  # reused by every forward pass
    task: TaskInfo = field(init=False)
    classification: bool = field(init=False)
    monitor: str = field(init=False)  # the validation metric that picks the best epoch
    mode: str = field(init=False)  # "max" when higher is better, else "min"
    total_steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.mixed = autocast(self.device, self.precision)
        self.task = task_info(self.data.info)
        self.classification = self.data.info.task == "classification"
        self.monitor, self.mode = monitored_metric(self.spec, self.data.info.task)
        self.total_steps = len(self.groups) * self.spec.run.epochs

    @property
    def resumables(self) -> dict[str, resumable.Stateful]:
        """What the resumable state holds besides the loop's variables, by name."""
        return {"model": self.model, "optimizer": self.optimizer, "schedule": self.schedule}


def setup(spec: ExperimentSpec, reporter: Reporter, workdir: Path,
          options: RunOptions) -> Training:
    """Seed, load the data and build the model, its optimizer and schedule, on the device; go
    on from the resumable state in ``workdir`` when ``options.resume`` and there is one."""
    torch.manual_seed(spec.run.seed)
    np.random.seed(spec.run.seed % 2**32)
    target = resolve_device(options.device or spec.run.device)
    d = spec.data
    data = prepare(d.dataset, d.val_fraction, spec.run.seed, subset=d.subset,
                   test_fraction=d.test_fraction, sources=options.sources,
                   tokenizer=options.tokenizer or tokenizer_for(spec.model),
                   options=d.plugin_options)
    augment = augmentation(spec)
    augment_rng = torch.Generator(device=target).manual_seed(spec.run.seed)
    x_train, y_train = data.x_train.to(target), data.y_train.to(target)
    model = new_model(spec, data) if options.model is None else options.model
    transfer = start_from(spec, model, options.init_weights)
    model = model.to(target)
    if options.parallel.world == 1:  # data-parallel buckets expect the default layout
        model = laid_out(model, target)
    loss_fn = make_loss(spec, y_train, data.info.num_classes)
    optimizer = make_optimizer(spec, model.parameters())
    # The compiled wrapper runs the forward passes; ``model`` keeps the checkpoint names.
    replica = options.parallel.wrap(model)  # DistributedDataParallel under torchrun, else model
    forward = compile_model(replica, options.compile_backend) if spec.run.compile else replica
    try:
        precision = autocast_dtype(spec.run.precision, target)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    rows = options.parallel.shard_rows(len(x_train))
    groups = step_groups(rows, spec.run.batch_size, spec.run.grad_accumulation)
    _, mode = monitored_metric(spec, data.info.task)
    schedule = LRSchedule(optimizer, spec.schedule, len(groups), spec.run.epochs, mode)
    shuffle = torch.Generator().manual_seed(spec.run.seed)
    meta = checkpoint_meta(data, target, options.meta)
    if transfer is not None:
        meta["warm_start"] = {**meta.get("warm_start", {}), **transfer.to_dict()}
    writer = CheckpointWriter(workdir, spec, meta, reporter, options.checkpoint_interval,
                              checkpoints.model_files(model, data.tokenizer))
    training = Training(
        spec=spec, reporter=reporter, workdir=workdir, options=options, device=target, data=data,
        x_train=x_train, y_train=y_train, x_val=data.x_val.to(target),
        y_val=data.y_val.to(target), model=model, forward=forward, loss_fn=loss_fn,
        optimizer=optimizer, schedule=schedule, precision=precision, augment=augment,
        augment_rng=augment_rng, shuffle=shuffle, rows=rows, groups=groups, writer=writer,
        state=LoopState(epoch_shuffle=shuffle.get_state()),
        # Every rank of a data-parallel run would write the same file: those start over.
        resume=options.resume and options.parallel.world == 1, resumed=False,
        micro=spec.run.batch_size, reference=_reference(spec, data, options), transfer=transfer)
    saved = resumable.load_saved(workdir) if training.resume else None
    if saved is not None:
        training.state = resumable.restore(saved, training.resumables,
                                           {"augment": augment_rng})
        training.resumed = True
    return training


def _reference(spec: ExperimentSpec, data: PreparedData, options: RunOptions
               ) -> Reference | None:
    """The data set's reference model, from the cache or computed once into it; only the
    main process of a data-parallel run needs one (the others do not diagnose)."""
    if options.reference_dir is None or not options.parallel.is_main:
        return None
    return reference_for(data, options.reference_dir, reference_key(spec))


def start_from(spec: ExperimentSpec, model: nn.Module, weights: Path | None
               ) -> warmstart.Transfer | None:
    """Load a warm start's weights into ``model`` (``spec.model.init_from``'s checkpoint)."""
    if weights is None:
        if spec.model.init_from:
            raise TrainingError(f"the spec starts from run #{spec.model.init_from}, but no "
                                "weights file was given (RunOptions.init_weights)")
        return None
    try:
        return warmstart.load_into(model, weights)
    except warmstart.TransferError as exc:
        raise TrainingError(f"cannot start from {weights.name}: {exc}") from None


def new_model(spec: ExperimentSpec, data: PreparedData) -> nn.Module:
    """The network the model spec describes, shaped for ``data``."""
    vocab_size = data.tokenizer.vocab_size if data.tokenizer else 0
    return build_model(spec.model, data.info.input_shape, data.info.num_classes or 1,
                       vocab_size=vocab_size)


def step_groups(rows: int, batch: int, accumulate: int) -> list[list[tuple[int, int]]]:
    """The ``(start, end)`` batches over ``rows`` shuffled rows that each optimizer step of an
    epoch sums the gradients of: ``accumulate`` consecutive batches of ``batch`` rows."""
    starts = batch_starts(rows, batch)
    batches = list(zip(starts, starts[1:], strict=False))
    return [batches[i:i + accumulate] for i in range(0, len(batches), accumulate)]


def checkpoint_meta(data: PreparedData, device: torch.device,
                    meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """What every checkpoint records besides the spec: the data's shape, labels and
    normalisation (to predict with it), the device, and the caller's ``meta``."""
    return {
        **checkpoints.dataset_meta(data.info),
        "dataset_info": data.info.to_dict(),
        "label_names": data.label_names,
        "normalisation": data.normalisation.to_dict(),
        "target_mean": data.target_mean,
        "target_std": data.target_std,
        "device": str(device),
        **(meta or {}),
    }


def train(t: Training) -> RunResult:
    """Train ``t`` from where its state is to the last epoch, early stopping or cancellation;
    a failed run still writes the checkpoints of its good epochs."""
    state = t.state
    t.reporter.status("running", epoch=state.epoch - 1, epochs=t.spec.run.epochs,
                      step=state.step, total_steps=t.total_steps, device=str(t.device),
                      parameters=sum(p.numel() for p in t.model.parameters()),
                      precision=str(t.precision or torch.float32).removeprefix("torch."),
                      compiled=t.spec.run.compile,
                      **({"resumed_from": state.step} if t.resumed else {}))
    stopped_early = False
    try:
        while state.epoch <= t.spec.run.epochs:
            if not train_epoch(t):
                return cancel(t)
            if end_epoch(t):
                stopped_early = True
                break
    except Exception as exc:
        try:
            t.writer.write()  # a failed run keeps the checkpoints of its good epochs
        except Exception as write_error:  # noqa: BLE001 - the first failure is the run's reason
            exc.add_note(f"its checkpoints could not be written either: {write_error}")
        raise
    return finish(t, stopped_early)


def train_epoch(t: Training) -> bool:
    """Take the optimizer steps of ``t.state.epoch`` not taken yet; False when the reporter
    asks the run to stop before one of them."""
    state = t.state
    t.model.train()
    if t.transfer is not None and t.spec.model.freeze_epochs:
        warmstart.hold(t.model, t.transfer.frozen, state.epoch <= t.spec.model.freeze_epochs)
    # The order this epoch drew: drawn again when it resumes, it is the same.
    t.shuffle.set_state(state.epoch_shuffle)
    order = t.options.parallel.shard(torch.randperm(len(t.x_train), generator=t.shuffle))
    if t.spec.model.group_by_length and isinstance(t.x_train, Tokens):
        lengths = t.x_train.attention_mask.sum(1).cpu()
        order = grouped_by_length(order, lengths, t.spec.run.batch_size, t.shuffle)
    order = order.to(t.device)
    # Counted on the device: reading it every step would wait for the device each step.
    correct = torch.full((), state.correct, dtype=torch.long, device=t.device)
    for done, group in enumerate(t.groups):
        if done < state.position:
            continue
        if t.reporter.should_stop():
            return False
        taken = take_step(t, order, group)
        state.loss_sum += taken.loss_sum
        correct += taken.correct
        state.position = done + 1
        # Mid-epoch only: the epoch's last step is followed by its evaluation, which a state
        # saved before it would log a second time at this step.
        if t.resume and state.position < len(t.groups) and state_due(t):
            state.correct = int(correct)
            save_state(t)
    state.correct = int(correct)
    return True


@dataclass
class StepLosses:
    """What one optimizer step's forward passes measured."""

    loss: float  # the mean training loss over the step's rows
    loss_sum: float  # its sum over them
    correct: torch.Tensor  # correct predictions among them (0 for regression), on the device


def take_step(t: Training, order: torch.Tensor, group: list[tuple[int, int]]) -> StepLosses:
    """One optimizer step over the rows of ``group``'s batches of ``order``, logged. After an
    out-of-memory error the step is retried with forward passes of half as many rows."""
    while True:
        try:
            losses = accumulate_gradients(t, order, group)
            break
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
            # A data-parallel rank cannot retry alone: its replicas' gradient exchanges would
            # no longer pair up.
            if not is_out_of_memory(exc) or t.options.parallel.world > 1:
                raise
        # Out of memory (outside the except block, so that the traceback's frames and the
        # tensors they hold are gone before the cache is emptied).
        t.optimizer.zero_grad(set_to_none=True)
        t.micro = halve_after_oom(t.micro, t.options.min_batch, t.device)
        t.reporter.status(f"out of memory: step {t.state.step + 1} retried with "
                          f"{t.micro}-row passes", micro_batch=t.micro)
    if t.spec.run.grad_clip > 0:
        nn.utils.clip_grad_norm_(t.model.parameters(), t.spec.run.grad_clip)
    lr = t.optimizer.param_groups[0]["lr"]  # the rate this step uses
    t.optimizer.step()
    t.state.step += 1
    if t.schedule.active:
        t.schedule.after_step()
    t.reporter.log(t.state.step, {"loss": losses.loss, "lr": lr})
    return losses


def accumulate_gradients(t: Training, order: torch.Tensor,
                         group: list[tuple[int, int]]) -> StepLosses:
    """The gradients of one optimizer step's rows, from forward passes of at most ``t.micro``
    rows. Raises NonFiniteLossError, before any update, when a pass's loss is not finite."""
    rows = group[-1][1] - group[0][0]
    step_loss, step_sum, loss_value = 0.0, 0.0, 0.0
    step_correct = torch.zeros((), dtype=torch.long, device=t.device)
    t.optimizer.zero_grad(set_to_none=True)
    parts = micro_batches(group, t.micro) if t.micro < t.spec.run.batch_size else group
    l1, train_loss = t.spec.regularization.l1, t.options.train_loss
    for start, end in parts:
        index = order[start:end]
        xb, yb = t.x_train[index], t.y_train[index]
        if t.augment.active and isinstance(xb, torch.Tensor):  # images only
            xb = t.augment(xb, t.augment_rng)
        with t.mixed:
            out = feed(t.forward, xb)
        # Losses in float32 whatever the forward pass ran in (a no-op without autocast): not
        # every loss is on autocast's float32 list.
        loss = (t.loss_fn(out.float(), yb) if train_loss is None
                else train_loss(out.float(), yb, xb))
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"loss became {loss_value} at step {t.state.step + 1} (epoch {t.state.epoch}); "
                "training stopped before that update. Try a lower learning rate or gradient "
                "clipping."
            )
        # Weighted by rows, the passes' mean losses add up to the mean loss of the step's
        # rows: the gradient one pass of them all gives.
        objective = loss * (len(xb) / rows) if len(parts) > 1 else loss
        if l1 and start == parts[0][0]:
            objective = objective + l1 * l1_penalty(t.model)
        objective.backward()
        step_loss += loss_value * len(xb) / rows
        step_sum += loss_value * len(xb)
        if t.classification:
            step_correct += (out.argmax(1) == yb).sum()
    return StepLosses(step_loss if len(parts) > 1 else loss_value, step_sum, step_correct)


def end_epoch(t: Training, metrics: dict[str, float] | None = None) -> bool:
    """Evaluate the epoch just trained (unless its ``metrics`` are given: seeds trained
    together measure theirs at once), keep its checkpoints, report the verdict so far and move
    the state to the next epoch; True when early stopping ends the run here."""
    state, spec = t.state, t.spec
    metrics = epoch_metrics(t) if metrics is None else metrics
    state.metrics = metrics
    t.reporter.log(state.step, {**metrics, "epoch": float(state.epoch)})
    if not math.isfinite(metrics["val_loss"]):
        raise NonFiniteLossError(
            f"validation loss became {metrics['val_loss']} at epoch {state.epoch}"
        )
    value = metrics[t.monitor]
    improved = state.best_value is None or (
        value > state.best_value if t.mode == "max" else value < state.best_value)
    best = improved or ties_with_lower_loss(value, metrics, state.best_value, state.best_metrics)
    if best:
        state.best_value, state.best_epoch, state.best_metrics = value, state.epoch, dict(metrics)
    # Only a strict gain resets early stopping's patience: a tie that merely wins on loss
    # keeps the best checkpoint fresh without prolonging the run.
    state.stale = 0 if improved else state.stale + 1
    t.schedule.after_epoch(value)
    weights = checkpoints.snapshot(t.model)
    if best:
        state.best_weights, state.best_step = weights, state.step
    t.writer.keep(("best", "last") if best else ("last",), weights, state.epoch, state.step,
                  metrics)
    t.writer.write_if_due()
    for name, number in metrics.items():
        state.history.setdefault(name, []).append(number)
    verdict = diagnose(state.history, t.task, spec, final=False, reference=t.reference)
    t.reporter.status(f"epoch {state.epoch}/{spec.run.epochs}", epoch=state.epoch,
                      epochs=spec.run.epochs, step=state.step, total_steps=t.total_steps,
                      verdict=verdict.to_dict())
    patience = spec.run.early_stopping_patience
    stop = bool(patience) and state.stale >= patience
    state.epoch, state.position, state.loss_sum, state.correct = state.epoch + 1, 0, 0.0, 0
    state.epoch_shuffle = t.shuffle.get_state()
    if not stop and t.resume and state.epoch <= spec.run.epochs and state_due(t):
        save_state(t)
    return stop


def ties_with_lower_loss(value: float, metrics: dict[str, float], best_value: float | None,
                         best_metrics: dict[str, float]) -> bool:
    """Whether an epoch that equals the best monitored value should still replace it.

    Accuracy moves in steps of one validation row: on a small or imbalanced split, many
    epochs tie (a model that has only learnt the majority class ties with one that is also
    sure of the few minority rows). Between tied epochs the lower validation loss is the better
    model, so it wins; ties on the loss itself keep the earlier epoch."""
    return (best_value is not None and value == best_value
            and metrics["val_loss"] < best_metrics.get("val_loss", math.inf))


def epoch_metrics(t: Training) -> dict[str, float]:
    """The epoch's training loss (and accuracy) over every rank's rows, and the validation
    split's metrics."""
    val = evaluate(t.forward, t.loss_fn, t.x_val, t.y_val, t.data, t.precision)
    loss_sum, hits, seen = t.options.parallel.totals(t.state.loss_sum, float(t.state.correct),
                                                     float(t.rows))
    metrics = {"train_loss": loss_sum / seen}
    if t.classification:
        metrics["train_acc"] = hits / seen
    metrics.update({f"val_{name}": value for name, value in val.items()})
    return metrics


def state_due(t: Training) -> bool:
    """Whether the checkpoints' interval has passed since the resumable state was saved."""
    return time.monotonic() - t.state_saved_at >= t.options.checkpoint_interval


def save_state(t: Training) -> None:
    """Write the resumable state. The points logged so far are made durable first: a run dying
    in between resumes from the previous state and logs them again."""
    sync = getattr(t.reporter, "sync", None)  # optional in the Reporter protocol
    if sync is not None:
        sync()
    resumable.save(t.workdir / resumable.STATE_FILE, t.state, t.resumables,
                   {"augment": t.augment_rng})
    t.state_saved_at = time.monotonic()


def cancel(t: Training) -> RunResult:
    """End a run the reporter stopped: ``last.zip`` gets the weights at this step."""
    s = t.state
    t.writer.keep(("last",), checkpoints.snapshot(t.model), s.epoch - 1, s.step, s.metrics)
    t.writer.write()
    return RunResult("cancelled", s.epoch - 1, s.step, s.best_epoch, s.best_metrics, s.metrics,
                     model=t.model, micro_batch=t.micro, reference=t.reference)


def finish(t: Training, stopped_early: bool, write: bool = True) -> RunResult:
    """End a run that trained its epochs or stopped early: evaluate the test split with the
    best weights and write the checkpoints (``write=False`` leaves them pending in ``t.writer``,
    for a caller that writes several runs' at once)."""
    s, spec = t.state, t.spec
    # best.zip holds the best epoch's weights: that is the model a user downloads. With early
    # stopping the run also ends with them, so what follows uses the best model, not the last.
    if spec.run.early_stopping_patience and spec.run.restore_best and s.best_weights:
        t.model.load_state_dict(s.best_weights)
    # The test split, once, with the best weights; best.zip records what it scored.
    test = (evaluate_test(t.model, s.best_weights, t.loss_fn, t.data, t.device, t.precision)
            if s.best_weights else {})
    if test:
        t.writer.keep(("best",), s.best_weights, s.best_epoch, s.best_step,
                      {**s.best_metrics, **test})
        t.reporter.status("test split evaluated", test_metrics=test)
    if write:
        t.writer.write()
    return RunResult("succeeded", s.epoch - 1, s.step, s.best_epoch, s.best_metrics, s.metrics,
                     stopped_early, model=t.model, test_metrics=test, micro_batch=t.micro,
                     reference=t.reference)
