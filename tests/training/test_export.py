"""ONNX export: every exported family gives onnxruntime's outputs equal to PyTorch's (within
1e-4), from the same raw inputs ``predict`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

from training import ExperimentSpec
from training.checkpoints import Checkpoint, dataset_meta, load, model_files, save
from training.data import dataset_info, prepare
from training.data.text import WordTokenizer
from training.export import ExportError, to_onnx
from training.models import build_model

TEXTS = ["a great , moving film", "dull and far too long", "the acting was superb !",
         "not good", "i loved every minute of this delightful , moving film"]


def saved_checkpoint(spec: ExperimentSpec, workdir: Path) -> Checkpoint:
    """``spec``'s model with seeded weights and moved batch-norm statistics, saved with its
    data set's real normalisation (or a vocabulary of TEXTS) and loaded back."""
    info = dataset_info(spec.data.dataset)
    torch.manual_seed(3)
    meta: dict[str, Any] = {**dataset_meta(info)}
    if info.modality == "text":
        tokenizer = WordTokenizer.build(TEXTS, 100, 1, spec.model.max_length)
        model = build_model(spec.model, (), 2, vocab_size=tokenizer.vocab_size)
        meta["normalisation"] = {"mean": [], "std": []}
        files = model_files(model, tokenizer)
    else:
        data = prepare(info.name, 0.2, 0)
        model = build_model(spec.model, info.input_shape, info.num_classes or 1)
        with torch.no_grad():
            model.train()(data.x_train[:64])  # running statistics away from their defaults
        meta.update(normalisation=data.normalisation.to_dict(), target_mean=data.target_mean,
                    target_std=data.target_std)
        files = {}
    save(workdir / "best.zip", model.eval(), spec, meta, files)
    return load(workdir / "best.zip")


def onnx_outputs(data: bytes, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(["logits"], feed)[0]


FAMILIES = {
    "mlp-tabular": {"data": {"dataset": "wine"}, "model": {"arch": "mlp", "hidden_sizes": [16, 8]}},
    "mlp-regression": {"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                       "optim": {"loss": "mse"}},
    "cnn": {"model": {"arch": "cnn", "width": 8}},
    "cnn-flatten": {"model": {"arch": "cnn", "width": 8, "depth": 1, "head": "flatten",
                              "head_units": 8}},
    "resnet": {"model": {"arch": "resnet", "width": 4, "depth": 1}},
}
TEXT_FAMILIES = {
    "lstm": {"arch": "lstm", "layers": 2},
    "gru": {"arch": "gru", "bidirectional": False},
    "transformer": {"arch": "transformer", "layers": 2, "heads": 2, "max_length": 16},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_onnxruntime_matches_pytorch_on_raw_inputs(family: str, workdir: Path) -> None:
    # given a saved image or table model and raw inputs in the data set's own units
    checkpoint = saved_checkpoint(ExperimentSpec().patched(FAMILIES[family]), workdir)
    torch.manual_seed(5)
    top = 16.0 if len(checkpoint.meta["input_shape"]) == 3 else 10.0
    raw = torch.rand(7, *checkpoint.meta["input_shape"]) * top

    # when the model is exported and run by onnxruntime, at a batch size other than traced
    got = onnx_outputs(to_onnx(checkpoint), {"inputs": raw.numpy()})

    # then its outputs are PyTorch's predictions, within 1e-4 (a regression's in the model's
    # standardised units: in the target's, float32 itself is coarser than that at 500)
    expected = checkpoint.predict(raw, scale="raw").numpy()
    assert got.shape == expected.shape
    unit = checkpoint.meta["target_std"] if checkpoint.meta["task"] == "regression" else 1.0
    assert float(np.abs(got - expected).max()) / unit <= 1e-4


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_onnxruntime_matches_pytorch_on_token_ids(family: str, workdir: Path) -> None:
    # given a saved text model and texts of different lengths, encoded by its vocabulary
    spec = ExperimentSpec().patched({
        "data": {"dataset": "imdb_sentences"},
        "model": {"embed_dim": 16, "hidden_size": 8, "min_freq": 1, **TEXT_FAMILIES[family]}})
    checkpoint = saved_checkpoint(spec, workdir)
    assert checkpoint.tokenizer is not None
    tokens = checkpoint.tokenizer.encode(TEXTS)
    ids, mask = tokens.input_ids, tokens.attention_mask
    if family == "transformer":  # its graph takes max_length columns: pad with id 0, mask 0
        extra = spec.model.max_length - ids.shape[1]
        ids, mask = (torch.nn.functional.pad(t, (0, extra)) for t in (ids, mask))

    # when it is exported and run by onnxruntime on the padded ids and masks
    got = onnx_outputs(to_onnx(checkpoint), {"input_ids": ids.numpy(),
                                             "attention_mask": mask.numpy()})

    # then its logits are PyTorch's predictions on the texts, within 1e-4
    expected = checkpoint.predict(TEXTS).numpy()
    assert float(np.abs(got - expected).max()) <= 1e-4


def test_a_compressed_checkpoint_is_not_exported(workdir: Path) -> None:
    # given a checkpoint whose record says it was compressed
    checkpoint = saved_checkpoint(ExperimentSpec().patched(FAMILIES["cnn"]), workdir)
    checkpoint.meta["compression"] = {"methods": ["quantize_dynamic"]}

    # when it is exported, then the refusal says why
    with pytest.raises(ExportError, match="compressed"):
        to_onnx(checkpoint)
