"""Checkpoint archives: safetensors weights + the JSON spec, never pickle.

An archive is a zip holding ``model.safetensors``, ``spec.json`` (the full spec, label names,
normalisation statistics, metrics, library versions) and a ``README.md`` with the lines that load
it back. Text models add their tokenizer's files under ``tokenizer/`` (a JSON vocabulary, or a
pretrained model's tokenizer files) and pretrained models their configuration as
``pretrained/config.json``, so a checkpoint loads without the hub. It is written atomically: a
temporary file in the same folder, fsync, then rename.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fitboard_model import plugins
from fitboard_model.checkpoint import PIXEL_MAX, pixel_max
from fitboard_model.inputs import model_inputs
from fitboard_model.prediction import Prediction, prediction
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from training.data.catalog import DatasetInfo, dataset_plugins, is_upload, remember
from training.data.loading import Normalisation
from training.data.text import Tokenizer, load_tokenizer
from training.models import build_model, feed
from training.spec import ExperimentSpec

FORMAT = "fitboard-checkpoint/1"

README = """# Fitboard checkpoint

Weights in `model.safetensors`, everything else in `spec.json` (the spec, the class names, the
normalisation statistics, the metrics and library versions); no pickle anywhere. Predict with it
anywhere Python runs, without Fitboard: install its loader (it needs only torch, safetensors and
numpy) from a Fitboard checkout, `pip install ./packages/fitboard-model`, then

```python
import fitboard_model

checkpoint = fitboard_model.load("{name}")
result = checkpoint.predict({example})
print(result.labels)  # {labels}
```

{inputs}

`result.probabilities` holds each class's probability, `result.logits` the raw outputs
(a regression's values in the target's own units); `checkpoint.model` is a plain
`torch.nn.Module`, `checkpoint.meta` the whole `spec.json`.
"""

IMAGE_INPUTS = """`predict` takes images shaped (N, {shape}) or one image ({shape}): 0-255
pixels (uint8, or floats above 1) or 0-1 floats (torchvision's `ToTensor`); `scale="0-255"`,
`"0-1"` or `"raw"` (the data set's own units{raw}) says it explicitly. It decides by dtype, then by
the largest value, and refuses negative values, values above 255 and ambiguous ones with a clear
error."""
TABLE_INPUTS = """`predict` takes rows shaped (N, {shape}) or one row ({shape}) in the table's
own units, not normalised."""
TEXT_INPUTS = """`predict` takes a text or a list of texts."""
ENGINE_README = """# Fitboard checkpoint

Weights in `model.safetensors`, everything else in `spec.json` (the spec, the class names, the
normalisation statistics, the metrics and library versions); no pickle anywhere. A {what} loads
with Fitboard's engine (the `fitboard-model` package loads the models trained from scratch):
from a Fitboard checkout,

```python
from training.checkpoints import load

checkpoint = load("{name}")
result = checkpoint.classify({example})
print(result.labels)  # {labels}
```

`checkpoint.model` is a plain `torch.nn.Module`, `checkpoint.meta` the whole `spec.json`.
"""


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a run."""
    import numpy
    import safetensors

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model in eval mode, its spec and metadata."""

    model: nn.Module
    spec: ExperimentSpec
    meta: dict[str, Any]
    tokenizer: Tokenizer | None = None  # text models

    @property
    def normalisation(self) -> Normalisation:
        return Normalisation.from_dict(self.meta["normalisation"])

    @torch.no_grad()
    def predict(self, raw_inputs: Any, scale: str = "auto") -> torch.Tensor:
        """Model outputs for raw inputs (a list of texts, for a text model): class logits, or
        regression values in the target's own units. Images follow the ``fitboard-model``
        package's input contract: 0-255 or 0-1 pixels, ``scale`` naming which when asked
        (``fitboard_model.inputs``); InputError for anything else."""
        device = next(self.model.parameters()).device
        if self.tokenizer is not None:
            if isinstance(raw_inputs, torch.Tensor | str):
                raise TypeError("a text model predicts from a list of texts")
            return feed(self.model, self.tokenizer.encode(list(raw_inputs)).to(device))
        x = model_inputs(raw_inputs, tuple(self.meta["input_shape"]), pixel_max(self.meta),
                         scale)
        out = self.model(self.normalisation.apply(x.to(device)))
        if self.meta["task"] == "regression":
            out = out * self.meta["target_std"] + self.meta["target_mean"]
        return out

    def classify(self, raw_inputs: Any, scale: str = "auto") -> Prediction:
        """Labels, probabilities and logits of ``predict``'s outputs."""
        return prediction(self.predict(raw_inputs, scale), self.meta["task"],
                          self.meta.get("label_names") or [])


def readme(name: str, meta: Mapping[str, Any], arch: str) -> str:
    """The archive's README: how to install the loader and predict, with the file's name and an
    example input fitting the model (of the ``arch`` family)."""
    shape = ", ".join(str(s) for s in meta.get("input_shape", []))
    if not shape:
        example, inputs = '["a fine, moving film"]', TEXT_INPUTS
    elif len(meta["input_shape"]) == 3:
        raw = f", 0-{meta['pixel_max']:g}" if meta.get("pixel_max", 255) != 255 else ""
        example, inputs = "images", IMAGE_INPUTS.format(shape=shape, raw=raw)
    else:
        example, inputs = "rows", TABLE_INPUTS.format(shape=shape)
    labels = ("one value per row: see result.logits" if meta.get("task") == "regression"
              else "the most probable class name of each input")
    if arch == "pretrained" or meta.get("compression"):
        what = "pretrained Hugging Face model" if arch == "pretrained" else "compressed model"
        return ENGINE_README.format(what=what, name=name, example=example, labels=labels)
    return README.format(name=name, example=example, labels=labels, inputs=inputs)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights as they are now (training goes on changing them)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def model_files(model: nn.Module, tokenizer: Tokenizer | None) -> dict[str, bytes]:
    """The archive members besides the weights that a model needs to be rebuilt and used: its
    tokenizer's files and a pretrained model's configuration."""
    files = {f"tokenizer/{name}": data
             for name, data in (tokenizer.files() if tokenizer else {}).items()}
    config = getattr(model, "config_dict", None)
    if callable(config):
        files["pretrained/config.json"] = json.dumps(config(), indent=2, sort_keys=True).encode()
    return files


def save(path: Path, weights: nn.Module | Mapping[str, torch.Tensor], spec: ExperimentSpec,
         meta: Mapping[str, Any], files: Mapping[str, bytes] | None = None) -> str:
    """Write a checkpoint archive of a model (or a ``snapshot`` of one) atomically, with the
    ``files`` of ``model_files()``; returns its sha256 hex digest. Its README names the file as
    it is downloaded, ``<download_stem>-<tag>.zip``, when ``meta`` has a ``download_stem``."""
    if isinstance(weights, nn.Module):
        weights = snapshot(weights)
    state = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    document = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        **meta,
        "versions": library_versions(),
    }
    if records := plugin_records(spec):
        document["plugins"] = records
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("model.safetensors", save_safetensors(state))
        archive.writestr("spec.json", json.dumps(document, indent=2, sort_keys=True))
        for name, content in (files or {}).items():
            archive.writestr(name, content)
        stem = meta.get("download_stem")
        archive.writestr("README.md", readme(f"{stem}-{path.name}" if stem else path.name, meta,
                                            spec.model.arch))
    data = buffer.getvalue()
    _write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def plugin_records(spec: ExperimentSpec) -> list[dict[str, str]]:
    """The plugins a spec's model and data come from, with their package and version, so a
    checkpoint can say which package it needs where one is missing."""
    records = []
    if spec.model.is_plugin:
        records.append(plugins.record(plugins.MODELS, spec.model.arch))
    if spec.data.dataset in dataset_plugins():
        records.append(plugins.record(plugins.DATASETS, spec.data.dataset))
    return records


def missing_plugin(document: Mapping[str, Any]) -> str:
    """Why a checkpoint cannot be rebuilt here: "needs the plugin package ..." for the first
    plugin it records that is not installed; "" when every one is."""
    for record in document.get("plugins") or ():
        group, name = record.get("group", ""), record.get("name", "")
        if name not in plugins.discover(group):
            return str(plugins.PluginMissing(group, name, record.get("distribution", "")))
    return ""


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader, a crash or a kill at any moment finds
    the old file or the new one, whole: a temporary file beside it, fsync, rename, fsync of the
    folder (which makes the rename itself durable). A failed write (a full disk, a file size
    limit) removes its temporary file and raises CheckpointError; the old file stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    # A writer killed mid-write leaves its temporary file; one process writes a run's
    # checkpoints at a time, so any found now is such a leftover.
    for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointError(
                f"{path.name} could not be written ({exc.strerror or exc}); the last one "
                "written is kept"
            ) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CheckpointError(ValueError):
    """The archive is not a Fitboard checkpoint, it was altered, or it could not be written.
    Its message names the file, never its folder: pages and the API show it to members."""


def load(path: str | Path, sha256: str | None = None, device: str = "cpu") -> Checkpoint:
    """Rebuild the model from a checkpoint archive (optionally verifying its sha256)."""
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"{Path(path).name}: sha256 does not match the recorded digest")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read("spec.json"))
            state = load_safetensors(archive.read("model.safetensors"))
            members = {name: archive.read(name) for name in archive.namelist()
                       if name.startswith(("tokenizer/", "pretrained/"))}
        found = document.get("format") if isinstance(document, dict) else None
        if found != FORMAT:
            raise CheckpointError(f"{Path(path).name}: unknown checkpoint format {found!r}")
        if missing := missing_plugin(document):
            raise CheckpointError(f"{Path(path).name}: this checkpoint {missing}")
        if is_upload(document.get("dataset", "")) and "dataset_info" in document:
            # An uploaded set is known only to the server that holds it: the archive says what
            # it was, so its spec validates anywhere.
            remember(DatasetInfo.from_dict(document["dataset_info"]))
        spec = ExperimentSpec.from_dict(document["spec"])
        outputs = document["num_classes"] or 1
        tokenizer_files = {name.removeprefix("tokenizer/"): content
                           for name, content in members.items() if name.startswith("tokenizer/")}
        tokenizer = load_tokenizer(spec.model, tokenizer_files) if tokenizer_files else None
        config = members.get("pretrained/config.json")
        model = build_model(spec.model, tuple(document["input_shape"]), outputs,
                            vocab_size=tokenizer.vocab_size if tokenizer else 0,
                            pretrained_config=json.loads(config) if config else None)
        if document.get("compression"):  # pruned channels or int8 layers: see the record
            from training.compression.structure import restore

            restore(model, document["compression"], state)
        model.load_state_dict(state)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed part means "not a checkpoint"
        raise CheckpointError(
            f"{Path(path).name}: not a valid Fitboard checkpoint ({exc})") from exc
    model.to(device).eval()
    return Checkpoint(model=model, spec=spec, meta=document, tokenizer=tokenizer)


def dataset_meta(info: DatasetInfo) -> dict[str, Any]:
    """The dataset facts a checkpoint needs to rebuild and use its model."""
    meta: dict[str, Any] = {
        "dataset": info.name,
        "task": info.task,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
    }
    if info.modality == "image":  # the pixel scale predict reads inputs against
        meta["pixel_max"] = PIXEL_MAX.get(info.name, 255.0)
    return meta
