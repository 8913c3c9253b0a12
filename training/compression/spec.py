"""The compression spec: which finished run to compress, how, and with which parameters.

Like the experiment spec it is a frozen dataclass with defaults (units in comments),
``to_dict()``/``from_dict()`` and one message per bad field (``"sparsity"``,
``"student.hidden_sizes"``). ``check_source`` adds the checks that need the source run's spec;
``target_spec`` is the experiment spec of the model the job produces (stored on the job's row
and in its checkpoint, so every page and ``checkpoints.load`` treat it like any model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from training.fieldmeta import meta, range_problems
from training.spec import ExperimentSpec, ModelSpec, SpecError, _Section, model_plugin

METHODS = ("prune_weights", "prune_channels", "distill", "quantize_dynamic")
_PRUNE = ("prune_weights", "prune_channels")
# Form legends, in the order the form shows them.
_JOB, _PRUNING, _DISTILL, _STUDENT = ("Job", "Pruning", "Distillation",
                                      "Student model (distillation)")
FIELDSET_ORDER = (_JOB, _PRUNING, _DISTILL, _STUDENT)
# Architectures whose layers each method knows how to handle.
CHANNEL_PRUNABLE = ("mlp", "cnn")  # Linear→Linear and Conv→BN→Conv chains
# Weights in Linear and LSTM/GRU layers: an MLP's, a pretrained encoder's (attention and
# feed-forward), an LSTM/GRU's recurrent weight matrices and output head. A CNN's are in
# convolutions, which only static quantization covers (not offered, see STATIC_PTQ_REFUSAL);
# the own Transformer's encoder layers read their Linear weights directly in inference.
QUANTIZABLE = ("mlp", "pretrained", "lstm", "gru")
# Why a CNN is refused: the evidence, checked with torch 2.13.0 and torchao 0.18.0.
STATIC_PTQ_REFUSAL = (
    "static int8 quantization of convolutions is not offered: torch 2.13's "
    "torch.ao.quantization (prepare/convert, prepare_fx/convert_fx) raises a DeprecationWarning "
    "(\"torch.ao.quantization is deprecated and will be removed in 2.10\") and torchao 0.18 "
    "has no int8 convolution kernel without torch.compile")
# Weight pruning masks weights that the layer's forward pass reads through its pruning hook;
# the own Transformer's attention and inference path read their weights directly instead.
WEIGHT_PRUNABLE = ("mlp", "cnn", "resnet", "lstm", "gru", "pretrained")
# A student of a text teacher reads the teacher's word vocabulary, so it must be one of the
# models with such a vocabulary (a pretrained student would need its own tokenizer).
WORD_MODELS = ("lstm", "gru", "transformer")


@dataclass(frozen=True)
class CompressionSpec(_Section):
    """One compression job. Fields that do not apply to ``method`` keep their defaults."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "method": METHODS,
        "scope": ("global", "layer"),
    }
    # id of the finished experiment to compress (the teacher, for distill); the page's run
    source: int = field(default=0, metadata=meta(
        "Source run", min=1, max=2**63 - 1, form=False))
    method: str = field(default="prune_weights", metadata=meta(
        "Method", fieldset=_JOB, choice_labels={
            "prune_weights": "Weight pruning (unstructured, by magnitude)",
            "prune_channels": "Neuron / channel pruning (layers shrink)",
            "distill": "Knowledge distillation into a smaller student",
            "quantize_dynamic": "Dynamic int8 quantization (Linear, LSTM and GRU layers)"}))
    # pruning: share of weights (or of channels) removed, in (0, 1)
    sparsity: float = field(default=0.5, metadata=meta(
        "Sparsity", help="share of weights (or channels) removed", min=0.0, max=1.0,
        min_exclusive=True, max_exclusive=True, fieldset=_PRUNING,
        applies={"method": _PRUNE}))
    # pruning: rank weights/channels across all layers or in each layer
    scope: str = field(default="global", metadata=meta(
        "Scope", fieldset=_PRUNING, applies={"method": _PRUNE},
        choice_labels={"global": "Global: rank across all layers", "layer": "Per layer"}))
    # pruning: steps to reach the sparsity (1 = one-shot)
    steps: int = field(default=1, metadata=meta(
        "Steps", help="pruning steps to reach the sparsity; 1 = one-shot", min=1, max=20,
        unit="steps", fieldset=_PRUNING, applies={"method": _PRUNE}))
    # pruning: fine-tuning epochs after each step (0 = none)
    finetune_epochs: int = field(default=2, metadata=meta(
        "Fine-tuning epochs", help="after each pruning step; 0 = none", min=0, max=1000,
        unit="epochs", fieldset=_PRUNING, applies={"method": _PRUNE}))
    # fine-tuning / distillation learning rate per step; 0 = the source's
    lr: float = field(default=0.0, metadata=meta(
        "Learning rate", help="per step, for fine-tuning or distillation; 0 = the source's",
        min=0.0, max=10.0, fieldset=_JOB))
    student: ModelSpec = field(  # distill
        default_factory=lambda: ModelSpec(arch="mlp", hidden_sizes=(32,)),
        metadata=meta("Student", fieldset=_STUDENT, applies={"method": ("distill",)}))
    # distill: softmax temperature of the soft targets, and the soft-target term's weight
    # (1 - alpha on the labels). T=2, alpha=0.5 was the best setting on validation for every
    # Fashion-MNIST teacher in bench/compression.py; softer ones (T=4 with alpha 0.7 or 0.9)
    # lost there to the same student trained from scratch.
    temperature: float = field(default=2.0, metadata=meta(
        "Temperature", help="softens the teacher's probabilities", min=0.01, max=100.0,
        fieldset=_DISTILL, applies={"method": ("distill",)}))
    alpha: float = field(default=0.5, metadata=meta(
        "Alpha", help="weight of the teacher's soft targets; the rest on labels", min=0.0,
        max=1.0, fieldset=_DISTILL, applies={"method": ("distill",)}))
    epochs: int = field(default=15, metadata=meta(  # distill: student training epochs
        "Student epochs", help="soft targets keep a student learning after labels alone would "
        "overfit it: give it more epochs than it needs from scratch", min=1, max=10000,
        unit="epochs", fieldset=_DISTILL, applies={"method": ("distill",)}))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["student"] = self.student.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None,  # type: ignore[override]
                  prefix: str = "") -> CompressionSpec:
        """Build and validate; raises SpecError with every bad field (student's as
        ``student.<field>``)."""
        if data is not None and not isinstance(data, Mapping):
            raise SpecError({"compression": "must be a JSON object"})
        data = dict(data or {})
        errors: dict[str, str] = {}
        student = ModelSpec(arch="mlp", hidden_sizes=(32,))
        raw_student = data.pop("student", None)
        if raw_student is not None and not isinstance(raw_student, Mapping):
            errors[prefix + "student"] = "must be an object"
        elif raw_student is not None:
            try:
                student = ModelSpec.from_dict(raw_student, prefix=f"{prefix}student.")
            except SpecError as exc:
                errors.update(exc.errors)
        flat = _FlatFields.from_dict_collect(data, prefix, errors)
        if errors:
            raise SpecError(errors)
        return cls(student=student, **flat)

    def problems(self) -> dict[str, str]:
        errors = range_problems(self)
        if self.source < 1:
            errors["source"] = "choose the finished experiment to compress"
        if 0.0 < self.lr < 1e-8:
            errors["lr"] = "must be 0 (the source's) or at least 1e-08"
        return errors

    def check_source(self, source: ExperimentSpec, applied: Sequence[str] = ()) -> None:
        """Refuse a job the source model cannot undergo, each error on the field to change.
        ``applied``: compression methods the source has been through already."""
        info = source.data.info()
        errors: dict[str, str] = {}
        arch = source.model.arch
        if "quantize_dynamic" in applied and self.method != "distill":
            errors["method"] = ("the source is quantized to int8 and cannot be trained further; "
                                "prune or distill before quantizing")
        elif source.model.is_plugin and self.method != "distill":
            errors.update(_plugin_method_problems(arch, self.method)
                          or _plugin_layer_problems(source, self.method))
        elif self.method == "prune_channels" and arch not in CHANNEL_PRUNABLE:
            errors["method"] = (f"channel pruning supports {', '.join(CHANNEL_PRUNABLE)} models, "
                                f"not {arch}")
        elif self.method == "quantize_dynamic" and arch not in QUANTIZABLE:
            if arch in ("cnn", "resnet"):
                errors["method"] = (f"dynamic int8 quantization covers Linear and LSTM/GRU "
                                    f"layers; a {arch} model keeps its weights in "
                                    f"convolutions, and {STATIC_PTQ_REFUSAL}: prune it or "
                                    "distill it")
            else:  # the own Transformer, which weight pruning does not cover either
                errors["method"] = (f"dynamic int8 quantization covers Linear and LSTM/GRU "
                                    f"layers; a {arch} model reads its weights directly: "
                                    "distill it into a smaller one")
        elif self.method == "prune_weights" and arch not in WEIGHT_PRUNABLE:
            errors["method"] = (f"weight pruning supports {', '.join(WEIGHT_PRUNABLE)} models, "
                                f"not {arch}: distill it into a smaller one")
        elif self.method == "distill" and info.task != "classification":
            errors["method"] = (f"distillation needs class probabilities; {info.shown_name} "
                                "is regression")
        elif self.method == "distill" and info.modality == "text":
            errors.update(self._text_student_problems(source))
        if self.method == "distill" and not errors:
            student = dataclasses.replace(source, model=self.student)
            try:
                student.check_compatible(info)
            except SpecError as exc:
                errors.update({f"student.{k.split('.', 1)[1]}": v for k, v in exc.errors.items()
                               if k.startswith("model.")})
        if errors:
            raise SpecError(errors)

    def _text_student_problems(self, source: ExperimentSpec) -> dict[str, str]:
        """A text student reads its teacher's tokens (the job reuses the teacher's tokenizer),
        so the teacher must have a word vocabulary and the student must fit its lengths."""
        teacher = source.model
        if teacher.arch not in WORD_MODELS:
            return {"method": f"distilling a {teacher.arch} text model is not offered: its "
                              "tokenizer is not a word vocabulary a student can share"}
        if self.student.arch not in WORD_MODELS:
            return {"student.arch": f"a student of a text teacher reads the teacher's word "
                                    f"vocabulary: choose {', '.join(WORD_MODELS)}"}
        if self.student.arch == "transformer" and self.student.max_length < teacher.max_length:
            return {"student.max_length": f"must be at least the teacher's {teacher.max_length} "
                                          "tokens (it reads the teacher's token ids)"}
        return {}

    def target_spec(self, source: ExperimentSpec) -> ExperimentSpec:
        """The spec of the model this job trains and saves: the source's, with the student as
        the model for distillation, and the job's epochs and learning rate. The data section
        and seed stay the source's, so fine-tuning sees the very same training split."""
        optim = dataclasses.replace(source.optim, lr=self.lr or source.optim.lr)
        run = dataclasses.replace(source.run, epochs=self.total_epochs(),
                                  early_stopping_patience=0)
        model = self.student if self.method == "distill" else source.model
        if self.method == "distill" and source.model.arch in WORD_MODELS \
                and model.arch in WORD_MODELS:
            model = _reads_teachers_tokens(model, source.model)
        return dataclasses.replace(source, model=model, optim=optim, run=run)

    def total_epochs(self) -> int:
        """Training epochs of the whole job (at least 1: the spec's epoch count is positive)."""
        if self.method == "distill":
            return self.epochs
        if self.method.startswith("prune"):
            return max(1, self.steps * self.finetune_epochs)
        return 1


def _reads_teachers_tokens(student: ModelSpec, teacher: ModelSpec) -> ModelSpec:
    """A text student as it is built: on the teacher's vocabulary (its size and minimum word
    frequency) and token ids cut at the teacher's length (a Transformer student's positions
    may reach further). The job hands it the teacher's tokenizer, so a student recorded with
    a vocabulary of 50 words and 4 tokens had 900 and read 16."""
    length = student.max_length if student.arch == "transformer" else teacher.max_length
    return dataclasses.replace(student, vocab_size=teacher.vocab_size,
                               min_freq=teacher.min_freq, max_length=length)


@dataclass(frozen=True)
class _FlatFields(_Section):
    """The scalar fields of CompressionSpec, converted and checked by the shared machinery
    (with CompressionSpec's defaults: they are stated once, there)."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = CompressionSpec.choices
    source: int = CompressionSpec.source
    method: str = CompressionSpec.method
    sparsity: float = CompressionSpec.sparsity
    scope: str = CompressionSpec.scope
    steps: int = CompressionSpec.steps
    finetune_epochs: int = CompressionSpec.finetune_epochs
    lr: float = CompressionSpec.lr
    temperature: float = CompressionSpec.temperature
    alpha: float = CompressionSpec.alpha
    epochs: int = CompressionSpec.epochs

    @classmethod
    def from_dict_collect(cls, data: Mapping[str, Any], prefix: str,
                          errors: dict[str, str]) -> dict[str, Any]:
        """The converted fields; errors go into ``errors`` instead of raising."""
        try:
            return cls.from_dict(data, prefix).to_dict()
        except SpecError as exc:
            errors.update(exc.errors)
            return {}

    def problems(self) -> dict[str, str]:
        values = self.to_dict()
        return CompressionSpec(**values).problems()


def job_spec_dict(compression: CompressionSpec, source: ExperimentSpec) -> dict[str, Any]:
    """What a compression job's row stores as its spec: the target experiment spec (so pages
    that read a run's spec work unchanged) plus the job under ``"compression"``."""
    return {**compression.target_spec(source).to_dict(), "compression": compression.to_dict()}


def split_job_spec(data: Mapping[str, Any]) -> tuple[ExperimentSpec, CompressionSpec | None]:
    """The inverse of ``job_spec_dict``; a plain run's spec gives ``(spec, None)``."""
    rest = {k: v for k, v in data.items() if k != "compression"}
    raw = data.get("compression")
    return ExperimentSpec.from_dict(rest), (
        CompressionSpec.from_dict(raw) if raw is not None else None)


def _plugin_method_problems(arch: str, method: str) -> dict[str, str]:
    """A plugin's model class lists the compression methods that apply to its layers
    (``compression``); any other is refused on the method field."""
    declared = tuple(getattr(model_plugin(arch), "compression", ()))
    if method in declared:
        return {}
    offered = ", ".join(declared + ("distill",))
    return {"method": f"{method} does not apply to the {arch} plugin model (its package offers "
                      f"{offered})"}


def _plugin_layer_problems(source: ExperimentSpec, method: str) -> dict[str, str]:
    """A plugin may list dynamic quantization yet have no layer it converts (a network of
    convolutions only): the job would "succeed" with nothing int8. Decided on torch's meta
    device (nothing allocated); a model that does not build there is left to the job."""
    if method != "quantize_dynamic":
        return {}
    import torch

    from training.compression.quantize import quantizable_names
    from training.models import build_model

    info = source.data.info()
    try:
        with torch.device("meta"):
            model = build_model(source.model, info.input_shape, info.num_classes or 1)
    except Exception:  # noqa: BLE001 - a plugin's own error; the job says it if it recurs
        return {}
    if quantizable_names(model):
        return {}
    return {"method": NOTHING_TO_QUANTIZE.format(arch=source.model.arch)}


NOTHING_TO_QUANTIZE = ("the {arch} model has no Linear, LSTM or GRU layer: dynamic int8 "
                       "quantization would leave it as it is; choose another method")

__all__ = ["CHANNEL_PRUNABLE", "METHODS", "QUANTIZABLE", "WEIGHT_PRUNABLE", "CompressionSpec",
           "job_spec_dict", "split_job_spec"]
