"""The input contract of ``predict`` (the fitboard-model package, which the engine uses too):
0-255 and 0-1 pixels give the same prediction, anything ambiguous or out of range is refused
with the reason, and labels are the checkpoint's own class names."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import fitboard_model
import numpy as np
import pytest
import torch
from fitboard_model import InputError

from training import ExperimentSpec
from training.checkpoints import dataset_meta, save
from training.data import dataset_info, prepare
from training.data.catalog import DatasetInfo
from training.models import build_model


@pytest.fixture(scope="module")
def digits_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained digits CNN saved with digits' real normalisation."""
    spec = ExperimentSpec().patched({"model": {"arch": "cnn", "width": 4}})
    data = prepare("digits", 0.2, 0)
    torch.manual_seed(0)
    model = build_model(spec.model, (1, 8, 8), 10).eval()
    path = tmp_path_factory.mktemp("contract") / "digits-best.zip"
    save(path, model, spec, {**dataset_meta(data.info), "label_names": data.label_names,
                             "normalisation": data.normalisation.to_dict()})
    return path


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Eight images of 0-255 pixels, some of them 255."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.integers(0, 256, (7, 1, 8, 8)), np.full((1, 1, 8, 8), 255)]
                          ).astype(np.uint8)


def test_uint8_and_float_pixels_of_either_scale_predict_alike(digits_zip, pixels) -> None:
    # given one batch of images as uint8, as 0-255 floats and as 0-1 floats (ToTensor's)
    checkpoint = fitboard_model.load(digits_zip)

    # when each is predicted
    as_uint8 = checkpoint.predict(pixels).logits
    as_float = checkpoint.predict(pixels.astype(np.float32)).logits
    as_unit = checkpoint.predict(torch.from_numpy(pixels / 255.0).float()).logits

    # then all three are digits' own 0-16 pixels to the model
    own = checkpoint.predict(pixels.astype(np.float32) * 16 / 255, scale="raw").logits
    assert torch.allclose(as_uint8, own, atol=1e-5)
    assert torch.allclose(as_float, own, atol=1e-5)
    assert torch.allclose(as_unit, own, atol=1e-5)


@pytest.mark.parametrize(("values", "scale", "message"), [
    (np.full((1, 8, 8), 12.0), "auto", "scale='raw' or scale='0-255'"),
    (np.full((1, 8, 8), -0.5), "auto", "already normalised inputs go to checkpoint.model"),
    (np.full((1, 8, 8), 300.0), "auto", "from 300 to 300"),
    (np.full((1, 8, 8), 2.0), "0-1", "do not fit scale='0-1'"),
    (np.full((1, 8, 8), np.nan), "auto", "NaN"),
    (np.zeros((2, 3, 8, 8)), "auto", "takes (N, 1, 8, 8)"),
    (np.zeros((1, 8, 8)), "0-100", "choose one of"),
])
def test_ambiguous_or_out_of_range_inputs_are_refused(digits_zip, values, scale,
                                                      message) -> None:
    checkpoint = fitboard_model.load(digits_zip)

    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        checkpoint.predict(values, scale=scale)


def test_one_grey_image_without_batch_or_channel_axes_is_accepted(digits_zip, pixels) -> None:
    checkpoint = fitboard_model.load(digits_zip)

    one = checkpoint.predict(pixels[3, 0])

    assert torch.equal(one.logits, checkpoint.predict(pixels[3:4]).logits)


def test_colour_images_with_their_channels_last_predict_as_channels_first(tmp_path) -> None:
    # given a CNN on 12 x 10 colour images, and images laid out as PIL gives them (H, W, C)
    spec = ExperimentSpec().patched({"model": {"arch": "cnn", "width": 4}})
    torch.manual_seed(0)
    model = build_model(spec.model, (3, 12, 10), 2).eval()
    path = tmp_path / "colour-best.zip"
    info = DatasetInfo("upload:1", "colour", "classification", "image", 4, (3, 12, 10), 2)
    save(path, model, spec, {**dataset_meta(info), "label_names": ["a", "b"],
                             "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    checkpoint = fitboard_model.load(path)
    first = np.random.default_rng(0).integers(0, 256, (4, 3, 12, 10)).astype(np.uint8)
    last = first.transpose(0, 2, 3, 1)

    # when both layouts are predicted, a batch and one image
    expected = checkpoint.predict(first).logits

    # then they are the same images to the model
    assert torch.allclose(checkpoint.predict(last).logits, expected, atol=1e-6)
    assert torch.allclose(checkpoint.predict(last[1]).logits, expected[1:2], atol=1e-6)
    with pytest.raises(InputError, match="takes"):  # any other layout is still refused
        checkpoint.predict(first.transpose(0, 2, 1, 3))


def test_labels_are_the_checkpoints_class_names(digits_zip, tmp_path, pixels) -> None:
    # given the archive with an upload's own class names in its spec.json
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    renamed = tmp_path / "renamed.zip"
    with zipfile.ZipFile(digits_zip) as source, zipfile.ZipFile(renamed, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "spec.json":
                document = json.loads(data)
                document["label_names"] = names
                data = json.dumps(document).encode()
            target.writestr(item, data)

    # when it predicts
    result = fitboard_model.load(renamed).predict(pixels)

    # then each label is the name of the most probable class, probabilities summing to one
    assert result.labels == [names[i] for i in result.logits.argmax(1)]
    assert torch.allclose(result.probabilities.sum(1), torch.ones(len(pixels)))
    assert result.top(2)[0][0][0] == result.labels[0]


def test_the_engine_reads_inputs_by_the_same_contract(digits_zip, pixels) -> None:
    # given the same archive loaded by the engine and by the package
    from training.checkpoints import load

    engine = load(digits_zip).predict(pixels)
    package = fitboard_model.load(digits_zip).predict(pixels).logits

    # then the predictions are the same
    assert torch.equal(engine, package)


def test_a_pretrained_checkpoint_is_refused_with_where_it_loads(tmp_path) -> None:
    # given an archive of a pretrained Hugging Face model (only its spec matters here)
    spec = ExperimentSpec().patched({"data": {"dataset": "sst2"},
                                     "model": {"arch": "pretrained"}})
    document = {"format": fitboard_model.FORMAT, "spec": spec.to_dict(),
                **dataset_meta(dataset_info("sst2"))}
    path = tmp_path / "pretrained.zip"
    from safetensors.torch import save as save_safetensors

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spec.json", json.dumps(document))
        archive.writestr("model.safetensors", save_safetensors({"x": torch.zeros(1)}))

    with pytest.raises(fitboard_model.CheckpointError, match="training.checkpoints.load"):
        fitboard_model.load(path)
