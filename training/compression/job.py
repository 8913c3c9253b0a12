"""One compression job: load nothing itself, get the source checkpoint, return the report.

Fine-tuning and distillation run through ``training.loop.run`` (one call per pruning step), so
their points stream through the Reporter like any run's; ``StageReporter`` shifts each stage's
steps and epochs so that the stages form one continuous curve.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from training import checkpoints
from training.compression import prune, structure
from training.compression.distill import teacher_loss
from training.compression.quantize import quantizable_names, quantize_dynamic
from training.compression.report import compare, measure
from training.compression.spec import NOTHING_TO_QUANTIZE, CompressionSpec
from training.data import DataSources, PreparedData, prepare
from training.data.text import Tokenizer
from training.loop import RunResult, TrainLoss, resolve_device
from training.loop import run as run_loop
from training.models import build_model
from training.reporter import Reporter
from training.spec import ExperimentSpec, SpecError

# Source checkpoint entries that describe the run, not the data: not copied to the result.
RUN_META = ("format", "spec", "versions", "epoch", "step", "metrics", "compression", "report",
            "experiment_id", "git_revision", "device")


@dataclass
class CompressionResult:
    """The outcome: status, the report (source, result, change) and the checkpoint written."""

    status: str  # "succeeded" or "cancelled"
    report: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    model: nn.Module | None = None  # the compressed model, on the CPU in eval mode
    record: dict[str, Any] = field(default_factory=dict)  # its checkpoint's "compression"
    stages: list[RunResult] = field(default_factory=list)


class StageReporter:
    """Passes a training stage's points on with its steps and epochs shifted past the stages
    before it, and keeps the stage's own scratch checkpoints to itself."""

    def __init__(self, inner: Reporter, label: str, step_offset: int, epoch_offset: int,
                 total_epochs: int) -> None:
        self.inner, self.label = inner, label
        self.step_offset, self.epoch_offset, self.total_epochs = (
            step_offset, epoch_offset, total_epochs)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + self.epoch_offset}
        self.inner.log(step + self.step_offset, metrics)

    def status(self, message: str, **fields: Any) -> None:
        epochs = fields.get("epochs") or 1
        if "total_steps" in fields:  # the stage's steps per epoch, times the job's epochs
            fields["total_steps"] = fields["total_steps"] // epochs * self.total_epochs
        if "step" in fields:
            fields["step"] += self.step_offset
        if "epoch" in fields:
            fields["epoch"] += self.epoch_offset
        fields["epochs"] = self.total_epochs
        self.inner.status(f"{self.label}: {message}", **fields)

    def checkpoint(self, path: Path, tag: str, metrics: Mapping[str, float],
                   sha256: str | None = None) -> None:
        """Stage checkpoints are scratch (pruned layers still carry masks); the job writes the
        compressed model's own checkpoint at the end."""

    def should_stop(self) -> bool:
        return self.inner.should_stop()


def compress(spec: CompressionSpec, source: checkpoints.Checkpoint, reporter: Reporter,
             workdir: Path, device: str | None = None,
             meta: Mapping[str, Any] | None = None,
             sources: DataSources | None = None) -> CompressionResult:
    """Compress ``source`` (a loaded checkpoint) as ``spec`` says; writes ``best.zip`` into
    ``workdir`` (announced to the reporter as tag "best") and returns the report. Raises
    SpecError when the source cannot undergo the method. ``sources``: where the data files
    are, as for ``training.loop.run``."""
    record = source.meta.get("compression") or {}
    spec.check_source(source.spec, record.get("methods", []))
    target = spec.target_spec(source.spec)
    d = target.data
    # A text model reads the token ids of its own tokenizer (saved in its checkpoint), never a
    # vocabulary rebuilt from the data; a student reads its teacher's.
    tokenizer = source.tokenizer
    reuse = (lambda texts: tokenizer) if tokenizer is not None else None
    data = prepare(d.dataset, d.val_fraction, target.run.seed, subset=d.subset,
                   test_fraction=d.test_fraction, sources=sources, tokenizer=reuse,
                   options=d.plugin_options)
    reporter.status("measuring the source", epoch=0, epochs=target.run.epochs)
    source_report = measure(copy.deepcopy(source.model), data)
    trainer = _Trainer(target, reporter, workdir / "stages", device, sources, tokenizer)
    method = METHODS[spec.method]
    model, changes = method(spec, source.model, data, trainer)
    shutil.rmtree(workdir / "stages", ignore_errors=True)
    if trainer.cancelled:
        return CompressionResult("cancelled", stages=trainer.results)
    model = model.cpu().eval()
    reporter.status("measuring the compressed model", epoch=trainer.epochs,
                    epochs=target.run.epochs, step=trainer.steps, total_steps=trainer.steps or 1,
                    parameters=prune.parameter_count(model))
    result_report = measure(model, data)
    report = {
        "method": spec.method,
        "source": source_report,
        "result": result_report,
        "change": compare(source_report, result_report),
        "weight_sparsity": prune.weight_sparsity(model),
    }
    saved_meta = {
        **{k: v for k, v in source.meta.items() if k not in RUN_META},
        # A student is a new network: nothing of its teacher's history applies to it.
        "compression": structure.record(None if spec.method == "distill" else record,
                                        spec.method, **changes),
        "report": report,
        "metrics": {k: v for k, v in result_report.items() if k.startswith(("val_", "test_"))},
        **(meta or {}),
    }
    path = workdir / "best.zip"
    digest = checkpoints.save(path, model, target, saved_meta,
                              checkpoints.model_files(model, tokenizer))
    reporter.checkpoint(path, "best", saved_meta["metrics"], digest)
    reporter.status("compressed", epoch=trainer.epochs, epochs=target.run.epochs,
                    step=trainer.steps or 1, total_steps=trainer.steps or 1)
    return CompressionResult("succeeded", report, path, model, saved_meta["compression"],
                             trainer.results)


class _Trainer:
    """Runs training stages through the loop, one after the other, as one curve."""

    def __init__(self, spec: ExperimentSpec, reporter: Reporter, scratch: Path,
                 device: str | None, sources: DataSources | None = None,
                 tokenizer: Tokenizer | None = None) -> None:
        self.spec, self.reporter, self.scratch, self.sources = spec, reporter, scratch, sources
        self.tokenizer = tokenizer  # text: the source's, so stages see the source's token ids
        self.device = str(resolve_device(device or spec.run.device))
        self.results: list[RunResult] = []
        self.steps = self.epochs = 0
        self.cancelled = False

    def train(self, model: nn.Module | None, epochs: int, label: str,
              train_loss: TrainLoss | None = None) -> nn.Module:
        """Train ``model`` (a new one from the spec when None) for ``epochs``; returns it with
        the weights of its best validation epoch."""
        stage = _without_swallowing_warmup(dataclasses.replace(
            self.spec, run=dataclasses.replace(self.spec.run, epochs=epochs)))
        workdir = self.scratch / str(len(self.results) + 1)
        reporter = StageReporter(self.reporter, label, self.steps, self.epochs,
                                 self.spec.run.epochs)
        if model is None:  # built here (as the loop would) so that its best weights load back
            info = self.spec.data.info()
            torch.manual_seed(self.spec.run.seed)
            model = build_model(self.spec.model, info.input_shape, info.num_classes or 1,
                                vocab_size=self.tokenizer.vocab_size if self.tokenizer else 0)
        tokenizer = self.tokenizer
        result = run_loop(stage, reporter, workdir, device=self.device,
                          checkpoint_interval=math.inf, model=model, train_loss=train_loss,
                          sources=self.sources,
                          tokenizer=(lambda texts: tokenizer) if tokenizer is not None else None)
        self.results.append(result)
        self.steps += result.steps
        self.epochs += result.epochs
        self.cancelled = result.status == "cancelled"
        best = workdir / "best.zip"
        if best.is_file() and not self.cancelled:
            model.load_state_dict(_read_weights(best))
        return model


def _without_swallowing_warmup(stage: ExperimentSpec) -> ExperimentSpec:
    """The stage without the source's warmup when it would last the whole stage: a run of 6
    epochs warming up over 3 fine-tuned for 1 epoch per pruning step at a tenth to a third of
    "the source's" learning rate, never reaching it (a spec the loop refuses for a plain run:
    "the warmup is the whole run")."""
    total = stage.total_steps()
    if stage.schedule.warmup_steps(total // stage.run.epochs) < total:
        return stage
    return dataclasses.replace(stage, schedule=dataclasses.replace(stage.schedule, warmup=0))


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The raw state dict in a checkpoint archive (masked layers' too, which ``load`` cannot
    rebuild)."""
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        return load_safetensors(archive.read("model.safetensors"))


Method = Callable[[CompressionSpec, nn.Module, PreparedData, _Trainer],
                  tuple[nn.Module, dict[str, Any]]]


def _prune_weights(spec: CompressionSpec, source: nn.Module, data: PreparedData,
                   trainer: _Trainer) -> tuple[nn.Module, dict[str, Any]]:
    model = copy.deepcopy(source)
    for step in range(1, spec.steps + 1):
        sparsity = prune.step_sparsity(spec.sparsity, spec.steps, step)
        prune.prune_weights(model, sparsity, spec.scope)
        if spec.finetune_epochs:
            model = trainer.train(model, spec.finetune_epochs,
                                  f"step {step}/{spec.steps}, sparsity {sparsity:.0%}")
            if trainer.cancelled:
                break
    prune.make_permanent(model)
    return model, {}


def _prune_channels(spec: CompressionSpec, source: nn.Module, data: PreparedData,
                    trainer: _Trainer) -> tuple[nn.Module, dict[str, Any]]:
    model = copy.deepcopy(source).cpu()
    example = data.x_train[:2]
    if not isinstance(example, torch.Tensor):
        raise TypeError("channel pruning reads image or tabular inputs (see check_source)")
    pruner = prune.ChannelPruner(model, example, spec.sparsity, spec.steps, spec.scope)
    before = prune.parameter_count(model)
    for step in range(1, spec.steps + 1):
        pruner.step()
        if step == spec.steps and prune.parameter_count(model) == before:
            raise SpecError({"sparsity": prune.nothing_removed(model, spec.sparsity)})
        if spec.finetune_epochs:
            label = f"step {step}/{spec.steps}, {spec.sparsity * step / spec.steps:.0%} channels"
            model = trainer.train(model, spec.finetune_epochs, label)
            if trainer.cancelled:
                break
    return model, {"resized": True}


def _distill(spec: CompressionSpec, source: nn.Module, data: PreparedData,
             trainer: _Trainer) -> tuple[nn.Module, dict[str, Any]]:
    teacher = copy.deepcopy(source).to(trainer.device)
    loss = teacher_loss(teacher, spec.temperature, spec.alpha)
    label = f"distilling (T={spec.temperature:g}, alpha={spec.alpha:g})"
    return trainer.train(None, spec.epochs, label, train_loss=loss), {}


def _quantize(spec: CompressionSpec, source: nn.Module, data: PreparedData,
              trainer: _Trainer) -> tuple[nn.Module, dict[str, Any]]:
    names = quantizable_names(source)
    if not names:  # a plugin that did not build on the meta device for check_source
        raise SpecError({"method": NOTHING_TO_QUANTIZE.format(arch=trainer.spec.model.arch)})
    return quantize_dynamic(source.cpu(), names), {"int8_layers": names}


METHODS: dict[str, Method] = {
    "prune_weights": _prune_weights,
    "prune_channels": _prune_channels,
    "distill": _distill,
    "quantize_dynamic": _quantize,
}
