"""Load a Fitboard checkpoint zip (safetensors weights + ``spec.json``, never pickle)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from fitboard_model.inputs import InputError, model_inputs
from fitboard_model.models import TEXT_ARCHS, build
from fitboard_model.plugins import MODELS, PluginMissing
from fitboard_model.prediction import Prediction, prediction
from fitboard_model.text import WordVocabulary

FORMAT = "fitboard-checkpoint/1"
# Pixel values of the built-in image sets as they ship; anything else (MNIST, uploads) is 0-255.
PIXEL_MAX = {"digits": 16.0}


class CheckpointError(ValueError):
    """The archive is not a Fitboard checkpoint, it was altered, or it needs Fitboard itself."""


def pixel_max(meta: Mapping[str, Any]) -> float | None:
    """The largest pixel value of the images a checkpoint's model was trained on; None when
    its inputs are not images."""
    if len(meta.get("input_shape", ())) != 3:
        return None
    if "pixel_max" in meta:  # written by Fitboard since the loader package exists
        return float(meta["pixel_max"])
    return PIXEL_MAX.get(str(meta.get("dataset")), 255.0)


def normalise(x: torch.Tensor, statistics: Mapping[str, Sequence[float]]) -> torch.Tensor:
    """Inputs ``(N, *shape)`` less the training split's mean, over its std, per channel (images)
    or per feature (tables)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(statistics["mean"], dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(statistics["std"], dtype=x.dtype, device=x.device).view(shape)
    return (x - mean) / std


def texts_of(inputs: Any) -> list[str]:
    """One text or a list of texts, checked."""
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise InputError("a text model predicts from a text or a list of texts")
    return list(texts)


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``model`` (a plain ``nn.Module`` in eval mode), ``meta`` (the whole
    ``spec.json``: the spec, label names, normalisation, metrics, versions) and, for a text
    model, its ``tokenizer``."""

    model: nn.Module
    meta: dict[str, Any]
    tokenizer: WordVocabulary | None = None

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.meta["spec"])

    @property
    def label_names(self) -> list[str]:
        return list(self.meta.get("label_names") or [])

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "classification"))

    @torch.no_grad()
    def outputs(self, inputs: Any, scale: str = "auto") -> torch.Tensor:
        """The model's logits (or regression values in the target's units) for raw inputs: a
        text or list of texts for a text model, images or table rows otherwise (see
        ``fitboard_model.inputs`` for the contract and ``scale``)."""
        device = next(self.model.parameters()).device
        if self.tokenizer is not None:
            ids, mask = self.tokenizer.encode_ids(texts_of(inputs))
            return self.model(ids.to(device), mask.to(device))
        x = model_inputs(inputs, tuple(self.meta["input_shape"]), pixel_max(self.meta), scale)
        out = self.model(normalise(x.to(device), self.meta["normalisation"]))
        if self.task == "regression":
            out = out * self.meta["target_std"] + self.meta["target_mean"]
        return out

    def predict(self, inputs: Any, scale: str = "auto") -> Prediction:
        """Labels, probabilities and logits (or regression values) for raw inputs."""
        return prediction(self.outputs(inputs, scale), self.task, self.label_names)


def plugin_distribution(document: Mapping[str, Any]) -> str:
    """The package of the model plugin a checkpoint's model came from ("" for a built-in)."""
    for plugin in document.get("plugins") or ():
        if isinstance(plugin, Mapping) and plugin.get("group") == MODELS:
            return str(plugin.get("distribution") or "")
    return ""


def read_archive(data: bytes, name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                  dict[str, bytes]]:
    """(spec.json, weights, tokenizer files) of an archive's bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read("spec.json"))
            state = load_safetensors(archive.read("model.safetensors"))
            files = {member.removeprefix("tokenizer/"): archive.read(member)
                     for member in archive.namelist() if member.startswith("tokenizer/")}
    except Exception as exc:  # noqa: BLE001 - any malformed part means "not a checkpoint"
        raise CheckpointError(f"{name}: not a valid Fitboard checkpoint ({exc})") from exc
    found = document.get("format") if isinstance(document, dict) else None
    if found != FORMAT:
        raise CheckpointError(f"{name}: unknown checkpoint format {found!r}")
    return document, state, files


def load(path: str | Path, sha256: str | None = None, device: str = "cpu") -> Checkpoint:
    """The model of a checkpoint zip, rebuilt from its spec and weights, on ``device``
    (optionally verifying the archive's sha256)."""
    data = Path(path).read_bytes()
    name = Path(path).name
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"{name}: sha256 does not match the recorded digest")
    document, state, files = read_archive(data, name)
    model_spec = document["spec"]["model"]
    arch = model_spec.get("arch")
    if arch == "pretrained":
        raise CheckpointError(f"{name}: a pretrained Hugging Face model loads with Fitboard's "
                              "engine (training.checkpoints.load), which has transformers")
    if document.get("compression"):
        raise CheckpointError(f"{name}: a compressed model loads with Fitboard's engine "
                              "(training.checkpoints.load)")
    tokenizer = WordVocabulary.from_files(files) if arch in TEXT_ARCHS else None
    try:
        model = build(model_spec, tuple(document["input_shape"]), document["num_classes"] or 1,
                      tokenizer.vocab_size if tokenizer else 0, plugin_distribution(document))
        model.load_state_dict(state)
    except PluginMissing as exc:
        raise CheckpointError(f"{name}: this checkpoint {exc}") from exc
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{name}: its weights do not fit its spec ({exc})") from exc
    model.to(device).eval()
    return Checkpoint(model=model, meta=document, tokenizer=tokenizer)
