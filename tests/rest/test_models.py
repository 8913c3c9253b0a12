"""A finished run's model through /api/v1/, as its page offers it: "Try it" predicts a typed
text or an uploaded image with the best checkpoint (the page's limits, allowance and refusals,
each on its field), and the ONNX download runs in onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.checkpoints import store_checkpoint
from training.checkpoints import load
from training.spec import ExperimentSpec
from webapp.experiments import serving
from webapp.experiments.models import Experiment
from webapp.tracking import tokens

from ..webapp.conftest import TRY_DIGITS, TRY_IMDB, trained_archives  # noqa: F401 (a fixture)
from ..webapp.test_try_it import digit_png, onnx_gap
from .conftest import Api


@pytest.fixture(autouse=True)
def _fresh_allowance() -> None:
    cache.clear()  # each test starts with a whole minute's allowance


@pytest.fixture
def finished(make_run: Any, trained_archives: dict[str, bytes]) -> Any:  # noqa: F811
    def make(kind: str) -> Experiment:
        spec = TRY_DIGITS if kind == "digits" else TRY_IMDB
        run = make_run(f"{kind} run", Experiment.Status.SUCCEEDED,
                       spec=ExperimentSpec.from_dict(spec).to_dict())
        store_checkpoint(run, trained_archives[kind])
        return run

    return make


def upload(api: Api, run: Experiment, **data: Any) -> Any:
    return api.client.post(f"/api/v1/runs/{run.pk}/predictions/", data,
                           HTTP_AUTHORIZATION=f"Bearer {api.raw}")


def test_a_typed_text_gets_the_text_models_classes(api, finished):
    run = finished("imdb")

    response = api.post(f"runs/{run.pk}/predictions/", {"text": "A moving, beautiful film."})

    assert response.status_code == 200, response.json()
    predictions = response.json()["predictions"]
    assert {p["label"] for p in predictions} == {"negative", "positive"}
    assert sum(p["probability"] for p in predictions) == pytest.approx(1, abs=1e-5)


def test_an_uploaded_image_gets_the_checkpoints_own_prediction(api, finished, tmp_path: Path,
                                                               trained_archives):  # noqa: F811
    run = finished("digits")
    png = digit_png(0)

    response = upload(api, run, image=SimpleUploadedFile("digit.png", png, "image/png"))

    assert response.status_code == 200, response.json()
    predictions = response.json()["predictions"]
    (tmp_path / "best.zip").write_bytes(trained_archives["digits"])
    own = load(tmp_path / "best.zip").classify(serving.image_inputs(png, (1, 8, 8), False))
    assert len(predictions) == serving.TOP and predictions[0]["label"] == own.labels[0]


@pytest.mark.parametrize(("kind", "data", "field", "message"), [
    ("imdb", {"text": "word " * serving.MAX_TEXT_CHARS}, "text", "at most 2,000"),
    ("imdb", {"text": "   "}, "text", "type a sentence"),
    ("digits", {"image": b"not an image at all"}, "image", "not an image"),
    ("digits", {"image": b"\x89PNG" + b"\0" * (serving.MAX_IMAGE_BYTES + 1)}, "image",
     "at most 2,097,152"),
    ("digits", {}, "image", "choose an image"),
    ("digits", {"invert": "maybe", "image": b"x"}, "invert", "valid boolean"),
])
def test_a_refused_input_gets_one_message_on_its_field(api, finished, kind, data, field,
                                                       message):
    run = finished(kind)
    if "image" in data:
        data = {**data, "image": SimpleUploadedFile("x.png", data["image"], "image/png")}

    response = upload(api, run, **data)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert message in response.json()["errors"][field]


def test_a_run_without_a_served_model_is_409(api, make_run, finished):
    training = make_run("training", Experiment.Status.RUNNING)
    table = make_run("iris", Experiment.Status.SUCCEEDED)
    store_checkpoint(table, b"weights")

    running = api.post(f"runs/{training.pk}/predictions/", {"text": "hi"})
    rows = api.post(f"runs/{table.pk}/predictions/", {"text": "hi"})
    onnx = api.get(f"runs/{training.pk}/onnx/")

    assert running.status_code == 409 and "no finished checkpoint" in running.json()["detail"]
    assert rows.status_code == 409 and "table rows" in rows.json()["detail"]
    assert onnx.status_code == 409


def test_predictions_past_the_minutes_allowance_get_429(api, finished, one_rate_window):
    run = finished("imdb")
    codes = [api.post(f"runs/{run.pk}/predictions/", {"text": "fine"}).status_code
             for _ in range(serving.TRY_PER_MINUTE)]

    over = api.post(f"runs/{run.pk}/predictions/", {"text": "fine"})

    assert set(codes) == {200}
    assert over.status_code == 429 and "a minute" in over.json()["detail"]


def test_a_read_token_may_predict_since_a_prediction_changes_nothing(owner, finished):
    run = finished("imdb")
    reader = Api(Client(), tokens.create_token(owner, "ci", "read", None)[1])

    response = reader.post(f"runs/{run.pk}/predictions/", {"text": "a fine film"})

    assert response.status_code == 200


def test_the_onnx_download_gives_the_checkpoints_outputs(api, finished, tmp_path: Path,
                                                         trained_archives):  # noqa: F811
    run = finished("imdb")

    response = api.get(f"runs/{run.pk}/onnx/")

    assert response.status_code == 200
    assert f'filename="imdb-run-{run.pk}-best.onnx"' in response["Content-Disposition"]
    texts = ["a fine film", "dull and far too long"]
    assert onnx_gap(response.content, trained_archives["imdb"], tmp_path, texts) <= 1e-4
