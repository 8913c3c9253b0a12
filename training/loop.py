"""The one training loop. It knows a spec and a Reporter, nothing about Django or Celery."""

from __future__ import annotations

import math
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training import checkpoints
from training import resume as resumable
from training.data import DataSources, PreparedData, prepare
from training.data.augment import Augmentation
from training.data.text import TokenizerFactory, Tokens, tokenizer_for
from training.diagnostics import diagnose, task_info
from training.distributed import SINGLE, Group
from training.models import build_model, feed
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
from training.reporter import Reporter
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
        for tag in sorted(self.pending, key=("best", "last").index):
            weights, info = self.pending.pop(tag)
            path = self.workdir / f"{tag}.zip"
            digest = checkpoints.save(path, weights, self.spec, info, self.files)
            self.reporter.checkpoint(path, tag, info["metrics"], digest)
        self.written_at = time.monotonic()


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


def run(spec: ExperimentSpec, reporter: Reporter, workdir: Path, device: str | None = None,
        meta: Mapping[str, Any] | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        compile_backend: str = "inductor", sources: DataSources | None = None,
        model: nn.Module | None = None, train_loss: TrainLoss | None = None,
        tokenizer: TokenizerFactory | None = None, parallel: Group = SINGLE,
        min_batch: int = MIN_BATCH, resume: bool = False) -> RunResult:
    """Train the model a spec describes, reporting each step and epoch; returns the outcome.

    Keeps the weights of the last epoch (``last.zip``) and of the epoch with the best primary
    validation metric (``best.zip``) in ``workdir``, written every ``checkpoint_interval``
    seconds and whenever the run ends: finished, stopped early, cancelled (``last`` is then the
    weights at the cancelled step) or failed. Raises NonFiniteLossError, before updating the
    weights, on the first step whose loss is NaN or infinite; the checkpoints of the epochs
    before it are kept. ``meta`` is stored in every checkpoint (e.g. the experiment id).
    ``compile_backend`` is the ``torch.compile`` backend used when ``run.compile`` is on.
    ``sources`` says where data files are (the data directory, uploaded sets' files). A test
    split is evaluated once at the end with the best weights; ``best.zip`` then carries its
    metrics too.
    ``model``: train this network (e.g. a pruned one, to fine-tune) instead of a new one;
    ``train_loss(outputs, targets, inputs)``: the training loss instead of the spec's (e.g.
    distillation); validation keeps the spec's loss.
    ``tokenizer``: how texts become token ids (e.g. a compressed model's source's own
    tokenizer) instead of the one the model spec builds.
    ``parallel``: this process's place in a data-parallel run (``training.distributed``): each
    rank trains on its shard of every epoch through DistributedDataParallel; pass a
    ``RankReporter`` so that only rank 0 reports. The default trains in this process alone.
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
    torch.manual_seed(spec.run.seed)
    np.random.seed(spec.run.seed % 2**32)
    target = resolve_device(device or spec.run.device)
    d = spec.data
    data = prepare(d.dataset, d.val_fraction, spec.run.seed, subset=d.subset,
                   test_fraction=d.test_fraction, sources=sources,
                   tokenizer=tokenizer or tokenizer_for(spec.model))
    augment = augmentation(spec)
    augment_rng = torch.Generator(device=target).manual_seed(spec.run.seed)
    x_train, y_train = data.x_train.to(target), data.y_train.to(target)
    x_val, y_val = data.x_val.to(target), data.y_val.to(target)
    if model is None:
        vocab_size = data.tokenizer.vocab_size if data.tokenizer else 0
        model = build_model(spec.model, data.info.input_shape, data.info.num_classes or 1,
                            vocab_size=vocab_size)
    model = model.to(target)
    loss_fn = make_loss(spec, y_train, data.info.num_classes)
    optimizer = make_optimizer(spec, model.parameters())
    # The compiled wrapper runs the forward passes; ``model`` keeps the checkpoint names.
    replica = parallel.wrap(model)  # DistributedDataParallel under torchrun, else the model
    forward = compile_model(replica, compile_backend) if spec.run.compile else replica
    try:
        precision = autocast_dtype(spec.run.precision, target)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    mixed = autocast(target, precision)
    l1 = spec.regularization.l1
    classification = data.info.task == "classification"
    key, mode = monitored_metric(spec, data.info.task)
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)

    batch = spec.run.batch_size
    # Rows per forward pass. Halving it after an out-of-memory error splits each batch into
    # passes whose gradients add up, instead of halving the batch: the optimizer steps, their
    # count, the schedule and the learning rate stay the ones the spec describes.
    micro = batch
    starts = batch_starts(parallel.shard_rows(len(x_train)), batch)
    # Each optimizer step sums the gradients of ``accumulate`` consecutive batches.
    batches = list(zip(starts, starts[1:], strict=False))
    accumulate = spec.run.grad_accumulation
    groups = [batches[i:i + accumulate] for i in range(0, len(batches), accumulate)]
    steps_per_epoch = len(groups)
    total_steps = steps_per_epoch * spec.run.epochs
    schedule = LRSchedule(optimizer, spec.schedule, steps_per_epoch, spec.run.epochs, mode)
    shuffle = torch.Generator().manual_seed(spec.run.seed)
    checkpoint_meta = {
        **checkpoints.dataset_meta(data.info),
        "dataset_info": data.info.to_dict(),
        "label_names": data.label_names,
        "normalisation": data.normalisation.to_dict(),
        "target_mean": data.target_mean,
        "target_std": data.target_std,
        "device": str(target),
        **(meta or {}),
    }

    writer = CheckpointWriter(workdir, spec, checkpoint_meta, reporter, checkpoint_interval,
                              checkpoints.model_files(model, data.tokenizer))
    step, best_epoch, stale = 0, 0, 0
    best_value: float | None = None
    best_weights: dict[str, torch.Tensor] = {}
    best_metrics: dict[str, float] = {}
    metrics: dict[str, float] = {}
    history: dict[str, list[float]] = {}  # per-epoch metrics, for the live verdict
    task = task_info(data.info)
    best_step = 0
    epoch = 0
    stopped_early = False
    # Where the loop goes on: the epoch, the optimizer steps already taken in it, its running
    # loss and accuracy counts, and the shuffle generator's state when the epoch drew its order.
    first_epoch, position, resumed_sums = 1, 0, (0.0, 0)
    # The shuffle generator is not among them: ``epoch_shuffle`` is its state before the epoch
    # drew its order, and drawing it again brings the generator to where it was.
    generators = {"augment": augment_rng}
    epoch_shuffle = shuffle.get_state()
    # Every rank of a data-parallel run would write the same file: those start over instead.
    resume = resume and parallel.world == 1
    saved = _load_state(workdir) if resume else None
    if saved is not None:
        loop_state = saved.value("loop")
        model.load_state_dict(saved.value("model"))
        optimizer.load_state_dict(saved.value("optimizer"))
        schedule.load_state_dict(saved.value("schedule"))
        # Last: building the model and the data drew from the global generators.
        resumable.restore_rng(saved.value("rng"), generators)
        step, first_epoch = loop_state["step"], loop_state["epoch"]
        position = loop_state["position"]
        resumed_sums = (loop_state["loss_sum"], loop_state["correct"])
        epoch_shuffle = loop_state["epoch_shuffle"]
        best_value, best_epoch, best_step = (loop_state["best_value"], loop_state["best_epoch"],
                                             loop_state["best_step"])
        best_metrics, metrics = loop_state["best_metrics"], loop_state["metrics"]
        history, stale = loop_state["history"], loop_state["stale"]
        best_weights = saved.value("best_weights")
        epoch = first_epoch - 1
    state_saved_at = time.monotonic()

    def save_state(next_epoch: int, done: int, sums: tuple[float, int],
                   shuffle_state: torch.Tensor) -> None:
        """Write the resumable state: ``done`` steps of ``next_epoch`` taken, its order drawn
        from ``shuffle_state``. The points logged so far are made durable first: a run dying
        in between resumes from the previous state and logs them again."""
        sync = getattr(reporter, "sync", None)  # optional in the Reporter protocol
        if sync is not None:
            sync()
        resumable.save(workdir / resumable.STATE_FILE, {
            "loop": {"step": step, "epoch": next_epoch, "position": done, "loss_sum": sums[0],
                     "correct": sums[1], "epoch_shuffle": shuffle_state,
                     "best_value": best_value, "best_epoch": best_epoch, "best_step": best_step,
                     "best_metrics": best_metrics, "metrics": metrics, "history": history,
                     "stale": stale},
            "model": model.state_dict(),
            "best_weights": best_weights,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": resumable.rng_states(generators),
        })

    reporter.status("running", epoch=epoch, epochs=spec.run.epochs, step=step,
                    total_steps=total_steps, device=str(target),
                    parameters=sum(p.numel() for p in model.parameters()),
                    precision=str(precision or torch.float32).removeprefix("torch."),
                    compiled=spec.run.compile,
                    **({"resumed_from": step} if saved is not None else {}))
    try:
        for epoch in range(first_epoch, spec.run.epochs + 1):
            model.train()
            if saved is not None and epoch == first_epoch:
                shuffle.set_state(epoch_shuffle)  # the order the resumed epoch drew, again
            epoch_shuffle = shuffle.get_state()
            order = parallel.shard(torch.randperm(len(x_train), generator=shuffle)).to(target)
            skip = position if epoch == first_epoch else 0
            loss_sum = resumed_sums[0] if skip else 0.0
            # Counted on the device: reading it every step would wait for the device each step.
            correct = torch.full((), resumed_sums[1] if skip else 0, dtype=torch.long,
                                 device=target)
            for done, group in enumerate(groups):
                if done < skip:
                    continue
                if reporter.should_stop():
                    writer.keep(("last",), checkpoints.snapshot(model), epoch - 1, step, metrics)
                    writer.write()
                    return RunResult("cancelled", epoch - 1, step, best_epoch, best_metrics,
                                     metrics, model=model, micro_batch=micro)
                rows = group[-1][1] - group[0][0]
                while True:
                    try:
                        step_loss, step_sum = 0.0, 0.0
                        step_correct = torch.zeros_like(correct)
                        optimizer.zero_grad(set_to_none=True)
                        parts = micro_batches(group, micro) if micro < batch else group
                        for start, end in parts:
                            index = order[start:end]
                            xb, yb = x_train[index], y_train[index]
                            if augment.active and isinstance(xb, torch.Tensor):  # images only
                                xb = augment(xb, augment_rng)
                            with mixed:
                                out = feed(forward, xb)
                            # Losses in float32 whatever the forward pass ran in (a no-op
                            # without autocast): not every loss is on autocast's float32 list.
                            loss = (loss_fn(out.float(), yb) if train_loss is None
                                    else train_loss(out.float(), yb, xb))
                            loss_value = loss.item()
                            if not math.isfinite(loss_value):
                                raise NonFiniteLossError(
                                    f"loss became {loss_value} at step {step + 1} (epoch "
                                    f"{epoch}); training stopped before that update. Try a "
                                    "lower learning rate or gradient clipping."
                                )
                            # Weighted by rows, the passes' mean losses add up to the mean
                            # loss of the step's rows: the gradient one pass of them all gives.
                            objective = loss * (len(xb) / rows) if len(parts) > 1 else loss
                            if l1 and start == parts[0][0]:
                                objective = objective + l1 * l1_penalty(model)
                            objective.backward()
                            step_loss += loss_value * len(xb) / rows
                            step_sum += loss_value * len(xb)
                            if classification:
                                step_correct += (out.argmax(1) == yb).sum()
                        break
                    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
                        # A data-parallel rank cannot retry alone: its replicas' gradient
                        # exchanges would no longer pair up.
                        if not is_out_of_memory(exc) or parallel.world > 1:
                            raise
                    # Out of memory (outside the except block, so that the traceback's frames
                    # and the tensors they hold are gone before the cache is emptied).
                    optimizer.zero_grad(set_to_none=True)
                    micro = halve_after_oom(micro, min_batch, target)
                    reporter.status(f"out of memory: step {step + 1} retried with "
                                    f"{micro}-row passes", micro_batch=micro)
                loss_sum += step_sum
                correct += step_correct
                if spec.run.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), spec.run.grad_clip)
                lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
                optimizer.step()
                step += 1
                if schedule.active:
                    schedule.after_step()
                reporter.log(step, {"loss": step_loss if len(parts) > 1 else loss_value,
                                    "lr": lr})
                # Mid-epoch only: the epoch's last step is followed by its evaluation, which a
                # state saved before it would log a second time at this step.
                if (resume and done + 1 < len(groups)
                        and time.monotonic() - state_saved_at >= checkpoint_interval):
                    save_state(epoch, done + 1, (loss_sum, int(correct)), epoch_shuffle)
                    state_saved_at = time.monotonic()

            val = evaluate(forward, loss_fn, x_val, y_val, data, precision)
            # Over every rank's rows (one process: its own sums).
            loss_sum, hits, seen = parallel.totals(loss_sum, float(correct), float(len(order)))
            metrics = {"train_loss": loss_sum / seen}
            if classification:
                metrics["train_acc"] = hits / seen
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
            schedule.after_epoch(metrics[key])
            tags = ("best", "last") if improved else ("last",)
            weights = checkpoints.snapshot(model)
            if improved:
                best_weights, best_step = weights, step
            writer.keep(tags, weights, epoch, step, metrics)
            writer.write_if_due()
            for name, value in metrics.items():
                history.setdefault(name, []).append(value)
            verdict = diagnose(history, task, spec, final=False)
            reporter.status(f"epoch {epoch}/{spec.run.epochs}", epoch=epoch,
                            epochs=spec.run.epochs, step=step, total_steps=total_steps,
                            verdict=verdict.to_dict())
            patience = spec.run.early_stopping_patience
            if patience and stale >= patience:
                stopped_early = True
                break
            if (resume and epoch < spec.run.epochs
                    and time.monotonic() - state_saved_at >= checkpoint_interval):
                save_state(epoch + 1, 0, (0.0, 0), shuffle.get_state())
                state_saved_at = time.monotonic()
    except Exception as exc:
        try:
            writer.write()  # a failed run keeps the checkpoints of its good epochs
        except Exception as write_error:  # noqa: BLE001 - the first failure is the run's reason
            exc.add_note(f"its checkpoints could not be written either: {write_error}")
        raise
    # best.zip holds the best epoch's weights: that is the model a user downloads. With early
    # stopping the run also ends with them, so what follows uses the best model, not the last.
    if spec.run.early_stopping_patience and spec.run.restore_best and best_weights:
        model.load_state_dict(best_weights)
    # The test split, once, with the best weights; best.zip records what it scored.
    test = evaluate_test(model, best_weights, loss_fn, data, target, precision) if best_weights \
        else {}
    if test:
        writer.keep(("best",), best_weights, best_epoch, best_step, {**best_metrics, **test})
        reporter.status("test split evaluated", test_metrics=test)
    writer.write()
    return RunResult("succeeded", epoch, step, best_epoch, best_metrics, metrics, stopped_early,
                     model=model, test_metrics=test, micro_batch=micro)


def _load_state(workdir: Path) -> resumable.TrainingState | None:
    """The resumable state in ``workdir``; None when there is none, or it cannot be read (the
    run then starts over, as ``resume.saved_step`` tells the caller)."""
    path = workdir / resumable.STATE_FILE
    if not path.exists():
        return None
    try:
        return resumable.load(path)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
