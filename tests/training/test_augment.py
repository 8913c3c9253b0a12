"""Image augmentation: each op changes training batches as it says, never validation or test
data, and the spec refuses it on data that is not images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from training import MemoryReporter, run
from training.checkpoints import load
from training.data import prepare
from training.data.augment import Augmentation, random_crop, random_flip, random_rotation
from training.loop import evaluate
from training.spec import SpecError

from .conftest import SpecFactory


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(64, 1, 8, 8)


def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_a_flip_mirrors_some_images_and_leaves_the_others(images: torch.Tensor) -> None:
    # when a batch is flipped at random
    out = random_flip(images, rng())

    # then each image is either itself or its left-right mirror, and both happen
    same = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, images, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54


def test_a_crop_shifts_each_image_within_its_padding(images: torch.Tensor) -> None:
    # when a batch is cropped after 2 pixels of padding
    out = random_crop(images, 2, rng())

    # then every image keeps its size and is its original shifted by at most 2 pixels
    assert out.shape == images.shape
    for o, i in zip(out, images, strict=True):
        padded = torch.nn.functional.pad(i, (2, 2, 2, 2))
        windows = [padded[:, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(o, w) for w in windows)
    assert not torch.equal(out, images)


def test_a_rotation_of_zero_degrees_changes_nothing(images: torch.Tensor) -> None:
    out = random_rotation(images, 0.0, rng())

    assert torch.allclose(out, images, atol=1e-5)


def test_a_rotation_turns_an_image_by_at_most_its_angle() -> None:
    # given a horizontal bar through the centre of a 33×33 image
    image = torch.zeros(200, 1, 33, 33)
    image[:, :, 16, 4:29] = 1.0

    # when rotated by up to 10 degrees
    out = random_rotation(image, 10.0, rng())

    # then the bar's ends move vertically by at most tan(10°) × 12 pixels, and some do move
    rows = torch.arange(33.0).view(1, 33)
    right_end = out[:, 0, :, 27]
    centre = (right_end * rows).sum(1) / right_end.sum(1).clamp_min(1e-6)
    assert (centre - 16).abs().max() <= math.tan(math.radians(10)) * 11 + 1
    assert (centre - 16).abs().max() > 0.5


def test_noise_adds_gaussian_noise_of_the_given_std(images: torch.Tensor) -> None:
    out = Augmentation(noise=0.5)(images, rng())

    assert (out - images).std().item() == pytest.approx(0.5, rel=0.1)


def test_the_same_seed_replays_the_same_augmentation(images: torch.Tensor) -> None:
    ops = Augmentation(crop_padding=1, flip=True, rotation=15, noise=0.1)

    assert torch.equal(ops(images, rng()), ops(images, rng()))


def test_augmentation_changes_training_but_not_the_validation_data(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given the same digits CNN run with and without augmentation
    base = {"model": {"arch": "cnn", "width": 8, "blocks": 1}, "run": {"epochs": 1},
            "data": {"test_fraction": 0.1, "subset": 300}}
    plain = make_spec(base)
    augmented = make_spec({**base, "data": {**base["data"], "augment_crop": 2,
                                            "augment_flip": True, "augment_rotation": 10,
                                            "augment_noise": 0.2}})

    # when both train
    plain_log, aug_log = MemoryReporter(), MemoryReporter()
    run(plain, plain_log, tmp_path / "plain")
    result = run(augmented, aug_log, tmp_path / "augmented")

    # then the training losses differ (the batches changed) ...
    assert plain_log.series("loss") != aug_log.series("loss")
    # ... while the logged validation and test metrics are those of the untouched data
    data = prepare("digits", 0.2, seed=0, subset=300, test_fraction=0.1)
    model = load(tmp_path / "augmented" / "best.zip").model
    val = evaluate(model, nn.CrossEntropyLoss(), data.x_val, data.y_val, data)
    assert val["loss"] == pytest.approx(result.best_metrics["val_loss"], rel=1e-5)
    assert data.x_test is not None and data.y_test is not None
    test = evaluate(model, nn.CrossEntropyLoss(), data.x_test, data.y_test, data)
    assert test["acc"] == pytest.approx(result.test_metrics["test_acc"])


@pytest.mark.parametrize("field", ["augment_crop", "augment_flip", "augment_rotation",
                                   "augment_noise"])
def test_the_spec_refuses_augmentation_on_tabular_data(make_spec: SpecFactory,
                                                        field: str) -> None:
    value = True if field == "augment_flip" else 2
    with pytest.raises(SpecError) as caught:
        make_spec({"data": {"dataset": "iris", field: value}, "model": {"arch": "mlp"}})

    assert list(caught.value.errors) == [f"data.{field}"]
    assert "image" in caught.value.errors[f"data.{field}"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augmented_batches_are_made_on_the_cuda_device(make_spec: SpecFactory,
                                                       tmp_path: Path) -> None:
    # given every augmentation on a small digits CNN trained on CUDA
    spec = make_spec({"data": {"subset": 300, "augment_crop": 2, "augment_flip": True,
                               "augment_rotation": 10, "augment_noise": 0.1},
                      "model": {"width": 8, "blocks": 1}, "run": {"epochs": 1, "device": "cuda"}})
    images = torch.randn(8, 1, 8, 8, device="cuda")

    # when a batch is augmented there and the run trains
    out = Augmentation(2, True, 10, 0.1)(images, torch.Generator(device="cuda").manual_seed(0))
    result = run(spec, MemoryReporter(), tmp_path)

    # then the batch never left the device and the run finished
    assert out.device.type == "cuda" and out.shape == images.shape
    assert result.status == "succeeded"
