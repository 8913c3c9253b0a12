"""A finished run's model from its page: "Try it" predicts an uploaded image or a typed text
with the run's best checkpoint, for its owner only, within size and rate limits; the ONNX
download gives onnxruntime the same outputs."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string
from django.urls import reverse
from PIL import Image
from sklearn import datasets

from tests.checkpoints import store_checkpoint
from training import ExperimentSpec
from training.checkpoints import load
from webapp.experiments import serving
from webapp.experiments.models import Experiment

from .conftest import TRY_DIGITS, TRY_IMDB


@pytest.fixture
def archives(trained_archives: dict[str, bytes]) -> dict[str, bytes]:
    return trained_archives


@pytest.fixture(autouse=True)
def _fresh_allowance() -> None:
    from django.core.cache import cache

    cache.clear()  # each test starts with a whole minute's allowance


def finished(make_experiment: Any, archives: dict[str, bytes], kind: str) -> Experiment:
    spec = TRY_DIGITS if kind == "digits" else TRY_IMDB
    experiment = make_experiment(status=Experiment.Status.SUCCEEDED, name=f"{kind} run",
                                 spec=ExperimentSpec.from_dict(spec).to_dict())
    store_checkpoint(experiment, archives[kind])
    return experiment


def digit_png(index: int, size: int = 64) -> bytes:
    """sklearn's digit ``index`` as a grey PNG, light strokes on black, ``size`` pixels wide."""
    pixels = (datasets.load_digits().images[index] * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def try_it(client: Any, experiment: Experiment, **data: Any) -> Any:
    return client.post(reverse("try-model", args=[experiment.pk]), data)


def test_an_uploaded_image_gets_its_classes_with_probabilities(
        owner_client, make_experiment, archives, tmp_path: Path) -> None:
    # given a finished digits run and a PNG of a digit, larger than the model's 8×8 inputs
    experiment = finished(make_experiment, archives, "digits")
    png = digit_png(0)

    # when its owner tries it
    response = try_it(owner_client, experiment,
                      image=SimpleUploadedFile("digit.png", png, "image/png"))

    # then the five most probable digits come back, named, most probable first
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 5
    assert {p["label"] for p in predictions} <= {str(d) for d in range(10)}
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    # and they are the run's checkpoint's own prediction of the resized image
    (tmp_path / "best.zip").write_bytes(archives["digits"])
    own = load(tmp_path / "best.zip").classify(serving.image_inputs(png, (1, 8, 8), False))
    assert predictions[0]["label"] == own.labels[0]
    assert probabilities[0] == pytest.approx(float(own.probabilities.max()), abs=1e-6)


def test_a_typed_sentence_gets_the_text_models_classes(owner_client, make_experiment,
                                                       archives) -> None:
    # given a finished IMDb run
    experiment = finished(make_experiment, archives, "imdb")

    # when its owner types a sentence
    response = try_it(owner_client, experiment, text="A moving, beautifully acted film.")

    # then both classes come back by name, their probabilities summing to one
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert {p["label"] for p in predictions} == {"negative", "positive"}
    assert sum(p["probability"] for p in predictions) == pytest.approx(1, abs=1e-5)


def test_a_stranger_cannot_try_another_projects_model(stranger_client, make_experiment,
                                                      archives) -> None:
    experiment = finished(make_experiment, archives, "imdb")

    response = try_it(stranger_client, experiment, text="a fine film")

    assert response.status_code == 404


@pytest.mark.parametrize(("upload", "message"), [
    (b"not an image at all", "not an image"),
    (b"\x89PNG" + b"\0" * (serving.MAX_IMAGE_BYTES + 1), "at most 2,097,152"),
])
def test_a_bad_or_oversized_upload_is_refused_with_the_reason(
        owner_client, make_experiment, archives, upload: bytes, message: str) -> None:
    experiment = finished(make_experiment, archives, "digits")

    response = try_it(owner_client, experiment,
                      image=SimpleUploadedFile("x.png", upload, "image/png"))

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_an_image_of_too_many_pixels_is_refused_before_it_is_decoded(
        owner_client, make_experiment, archives) -> None:
    # given a small PNG file that declares 5000×5000 pixels
    experiment = finished(make_experiment, archives, "digits")
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, "PNG")

    response = try_it(owner_client, experiment,
                      image=SimpleUploadedFile("big.png", buffer.getvalue(), "image/png"))

    assert response.status_code == 400
    assert "5000×5000 pixels" in response.json()["error"]


def test_a_text_longer_than_the_cap_is_refused(owner_client, make_experiment, archives) -> None:
    experiment = finished(make_experiment, archives, "imdb")

    response = try_it(owner_client, experiment, text="word " * serving.MAX_TEXT_CHARS)

    assert response.status_code == 400
    assert "at most 2,000" in response.json()["error"]


def test_predictions_past_the_minutes_allowance_are_refused(owner_client, make_experiment,
                                                            archives, one_rate_window) -> None:
    # given a user who has used up the minute's predictions
    experiment = finished(make_experiment, archives, "imdb")
    codes = [try_it(owner_client, experiment, text="fine").status_code
             for _ in range(serving.TRY_PER_MINUTE)]
    assert set(codes) == {200}

    # when they ask once more, then they are told to wait
    response = try_it(owner_client, experiment, text="fine")
    assert response.status_code == 429
    assert "a minute" in response.json()["error"]


def test_a_run_still_training_offers_no_try(owner_client, make_experiment) -> None:
    experiment = make_experiment(status=Experiment.Status.RUNNING)

    response = try_it(owner_client, experiment, text="fine")

    assert response.status_code == 409
    page = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert 'id="try-form"' not in page


def test_the_run_page_offers_try_it_and_onnx(owner_client, make_experiment, archives) -> None:
    experiment = finished(make_experiment, archives, "digits")

    page = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()

    assert 'id="try-form"' in page and 'name="image"' in page
    assert reverse("checkpoint-onnx", args=[experiment.pk]) in page
    assert "try_it.js" in page


def label_of(page: str, field_id: str) -> str:
    """The text of the page's ``<label for=field_id>`` ("" without one)."""
    found = re.search(rf'<label[^>]*\bfor="{field_id}"[^>]*>(.*?)</label>', page, re.S)
    return found.group(1).strip() if found else ""


@pytest.mark.parametrize(("kind", "field", "words"), [
    ("imdb", '<textarea id="try-text" name="text"', "Text to classify"),
    ("digits", '<input type="file" id="try-image" name="image"', "Or upload an image"),
])
def test_try_its_input_has_a_label_saying_what_to_give(owner_client, make_experiment, archives,
                                                       kind, field, words) -> None:
    # given a finished text or image run
    experiment = finished(make_experiment, archives, kind)

    # when its page is opened
    page = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()

    # then Try it's input has a label of its own that says what to type or upload
    assert field in page
    field_id = field.split('id="')[1].split('"')[0]
    assert label_of(page, field_id) == words


@pytest.mark.parametrize(("task", "words"), [("classification", "Text to classify"),
                                              ("regression", "Text to score")])
def test_try_its_text_label_says_what_a_text_model_does(task, words) -> None:
    # given the Try it card of a text run (an upload of scored sentences is a regression)
    context = {"offered": True, "modality": "text", "task": task, "max_text": 100, "max_mb": 2}

    # when it is drawn
    card = render_to_string("experiments/_try_it.html", {"try_it": context,
                                                         "experiment": SimpleNamespace(pk=1)})

    # then its text box's label says whether the model classifies or scores the text
    assert label_of(card, "try-text") == words


def test_try_its_drawing_box_is_named_by_the_words_beside_it(owner_client, make_experiment,
                                                             archives) -> None:
    experiment = finished(make_experiment, archives, "digits")

    page = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()

    # the canvas is named by a sentence the user reads, not by a label only a screen reader has
    assert 'aria-labelledby="try-draw-label"' in page
    prompt = page.split('id="try-draw-label">')[1].split("</p>")[0]
    assert prompt.startswith("Draw an image in the black box for the model to classify")


def test_the_onnx_download_runs_in_onnxruntime_like_the_checkpoint(
        owner_client, make_experiment, archives, tmp_path: Path) -> None:
    # given a finished run (tests/training/test_export.py covers every family)
    experiment = finished(make_experiment, archives, "imdb")

    # when its ONNX file is downloaded
    response = owner_client.get(reverse("checkpoint-onnx", args=[experiment.pk]))

    # then it is named like the checkpoint and onnxruntime gives the checkpoint's outputs
    assert response.status_code == 200
    assert f'filename="imdb-run-{experiment.pk}-best.onnx"' in response["Content-Disposition"]
    texts = ["a fine film", "dull , far too long and badly acted"]
    assert onnx_gap(response.content, archives["imdb"], tmp_path, texts) <= 1e-4


def onnx_gap(onnx: bytes, archive: bytes, folder: Path, texts: list[str]) -> float:
    """The largest difference between the logits onnxruntime gives for ``texts`` with the
    ``onnx`` file and those of the text model's checkpoint ``archive``."""
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    (folder / "best.zip").write_bytes(archive)
    checkpoint = load(folder / "best.zip")
    tokens = checkpoint.tokenizer.encode(texts)
    got = session.run(["logits"], {"input_ids": tokens.input_ids.numpy(),
                                   "attention_mask": tokens.attention_mask.numpy()})[0]
    return float(np.abs(got - checkpoint.predict(texts).numpy()).max())


def test_a_stranger_cannot_download_the_onnx_file(stranger_client, make_experiment,
                                                  archives) -> None:
    experiment = finished(make_experiment, archives, "digits")

    response = stranger_client.get(reverse("checkpoint-onnx", args=[experiment.pk]))

    assert response.status_code == 404


def test_a_model_larger_than_the_web_process_serves_is_not_loaded(
        owner_client, make_experiment, archives, settings, monkeypatch) -> None:
    # given a finished run whose archive is one byte past FITBOARD_SERVE_MAX_MB (a run may
    # train a model of tens of GB on a GPU worker; the web process would load it into its own
    # memory, four of them cached)
    experiment = finished(make_experiment, archives, "digits")
    settings.FITBOARD_SERVE_MAX_BYTES = len(archives["digits"]) - 1
    loads: list[str] = []
    monkeypatch.setattr(serving, "_loaded", lambda name, sha256: loads.append(name))

    # when its owner tries it and downloads it as ONNX
    tried = try_it(owner_client, experiment, image=SimpleUploadedFile("d.png", digit_png(0)))
    exported = owner_client.get(reverse("checkpoint-onnx", args=[experiment.pk]))
    page = owner_client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()

    # then both are refused with the limit, the page offers no "Try it", nothing was loaded
    assert tried.status_code == 409 and "FITBOARD_SERVE_MAX_MB" in tried.json()["error"]
    assert exported.status_code == 409 and b"FITBOARD_SERVE_MAX_MB" in exported.content
    assert 'id="try-form"' not in page
    assert loads == []


def zip_pixels(data: bytes, name: str, size: int) -> np.ndarray:
    """The (C, H, W) pixels training reads from ``data`` as one image of a data set's ZIP."""
    import zipfile

    from training.data.uploads import read_image_zip

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("a", "b"):
            archive.writestr(f"{label}/{name}", data)
    buffer.seek(0)
    return read_image_zip(buffer, size, drop_duplicates=False).x[0]


def encoded(image: Image.Image, format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_a_16_bit_png_is_tried_with_the_pixels_training_reads_from_it() -> None:
    # given a 16-bit grey gradient (its values run to 65,535: read as 8 bits, all white)
    data = encoded(Image.fromarray((np.arange(256).reshape(16, 16) * 256).astype(np.uint16)))

    # when Try it reads it for a grey 8×8 model
    tried = serving.image_inputs(data, (1, 8, 8), False)[0]

    # then its pixels are those a data set of such images trained on
    assert tried.min() < 64
    assert np.array_equal(tried, zip_pixels(data, "0.png", 8))


def test_a_phone_photo_is_tried_upright_as_training_reads_it() -> None:
    # given a JPEG stored on its side with an EXIF orientation (6: turn it upright)
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16] = 250
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.fromarray(pixels), "JPEG", exif=exif, quality=95)

    tried = serving.image_inputs(data, (3, 8, 8), False)[0]

    assert np.array_equal(tried, zip_pixels(data, "0.jpg", 8))
    assert tried[0, 0, 4] > 200 and tried[0, 7, 4] < 50  # light on top once upright
