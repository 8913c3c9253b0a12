"""ONNX export of a checkpoint's model, for runtimes without PyTorch (onnxruntime and others).

The exported graph takes what ``predict`` takes before any library-specific step, so it needs no
Fitboard code to use:

- images and table rows: ``inputs``, float32 ``(N, *input_shape)`` in the data set's own units
  (pixels 0-255, sklearn's digits 0-16); the training split's normalisation is inside the graph;
- texts (LSTM, GRU, Transformer): ``input_ids`` and ``attention_mask``, int64 ``(N, L)``, from the
  vocabulary the checkpoint zip carries (``tokenizer/vocab.json``); a Transformer's L is its
  ``max_length`` (pad with id 0 and mask 0), a recurrent model's any length;
- the output ``logits``: class logits, or a regression's values in the target's own units.

The batch size is free. Pretrained Hugging Face models and compressed (pruned to int8)
checkpoints are not exported.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.checkpoints import Checkpoint

OPSET = 17
EXPORTED_ARCHS = ("mlp", "cnn", "resnet", "lstm", "gru", "transformer")


class ExportError(ValueError):
    """The checkpoint's model is of a kind that is not exported."""


class RawInputs(nn.Module):
    """A model wrapped to take raw inputs: normalised with the training split's statistics on
    the way in, regression values mapped back to the target's units on the way out."""

    def __init__(self, model: nn.Module, meta: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        shape = (1, -1) + (1,) * (len(meta["input_shape"]) - 1)
        statistics = meta["normalisation"]
        self.register_buffer("mean", torch.tensor(statistics["mean"]).view(shape))
        self.register_buffer("std", torch.tensor(statistics["std"]).view(shape))
        regression = meta.get("task") == "regression"
        self.target_mean = float(meta.get("target_mean", 0.0)) if regression else 0.0
        self.target_std = float(meta.get("target_std", 1.0)) if regression else 1.0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.model((inputs - self.get_buffer("mean")) / self.get_buffer("std"))
        return out * self.target_std + self.target_mean


def exportable(checkpoint: Checkpoint) -> str | None:
    """Why the checkpoint's model cannot be exported, or None when it can."""
    if checkpoint.meta.get("compression"):
        return "a compressed model (pruned or int8) is not exported to ONNX"
    if checkpoint.spec.model.arch not in EXPORTED_ARCHS:
        return f"a {checkpoint.spec.model.arch} model is not exported to ONNX"
    return None


def example_inputs(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """Inputs of the exported graph's shapes, named as the graph names them (two rows)."""
    if checkpoint.tokenizer is None:
        return {"inputs": torch.zeros(2, *checkpoint.meta["input_shape"])}
    length = checkpoint.spec.model.max_length if checkpoint.spec.model.arch == "transformer" else 4
    ids = torch.ones(2, length, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def to_onnx(checkpoint: Checkpoint) -> bytes:
    """The checkpoint's model as a checked ONNX file (see the module's docstring for its
    inputs); ExportError for a kind of model that is not exported."""
    problem = exportable(checkpoint)
    if problem:
        raise ExportError(problem)
    model = checkpoint.model.cpu().eval()
    if checkpoint.tokenizer is None:
        model = RawInputs(model, checkpoint.meta).eval()
    example = example_inputs(checkpoint)
    # Dimension 1 stays fixed for a Transformer: its attention reshapes by the traced length.
    fixed = checkpoint.spec.model.arch == "transformer"
    free = {0: "batch"} if fixed else {0: "batch", 1: "length"}
    axes = {name: ({0: "batch"} if name == "inputs" else free) for name in example}
    # Not under no_grad: that would switch the Transformer layers to a fused inference kernel
    # that has no ONNX form.
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # The TorchScript exporter's deprecation and tracer warnings say nothing about this model.
        warnings.simplefilter("ignore")
        path = Path(folder) / "model.onnx"
        torch.onnx.export(model, tuple(example.values()), path, input_names=list(example),
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
        data = path.read_bytes()
    # Imported here: onnx takes 2.5 s to import, which every web and worker process would pay
    # at start-up for a rarely used download.
    import onnx

    onnx.checker.check_model(onnx.load_from_string(data))
    return data
