"""A finished run's model, served: "Try it" predictions and the ONNX export of its checkpoint.

The run's best checkpoint is loaded once per web process (by its sha256, so a replaced archive
is loaded afresh) and kept for the next request, when its archive is at most
FITBOARD_SERVE_MAX_MB: a run may train a model of tens of GB on a GPU worker, which the web
process would otherwise load into its own memory (``CACHED_MODELS`` of them). Inputs are capped
before any decoding: an image's bytes and pixel count, a text's length; a user gets
``TRY_PER_MINUTE`` predictions a minute.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from training import checkpoints
from training.checkpoints import Checkpoint
from training.data.uploads import IMAGE_FORMATS, as_rgb
from training.export import EXPORTED_ARCHS, to_onnx
from training.spec import missing_plugins, stored_dataset_info
from webapp import ratelimit
from webapp.experiments import files
from webapp.experiments.models import Experiment

MAX_IMAGE_BYTES = 2 * 1024 * 1024  # an uploaded image file
MAX_IMAGE_PIXELS = 4096 * 4096  # its width × height, read from the header before decoding
MAX_TEXT_CHARS = 2000  # a typed sentence or paragraph
# The formats a data set's images may have, which Pillow is asked to open (a camera's MPO is
# opened by the JPEG parser, which has no opener of its own).
OPENED_FORMATS = tuple(name for name in IMAGE_FORMATS if name != "MPO")
TRY_PER_MINUTE = 30  # predictions one user may ask for per minute
TOP = 5  # classes shown, most probable first
CACHED_MODELS = 4  # loaded checkpoints a web process keeps


class TryError(ValueError):
    """An input that is refused; the message says why, for the page."""


@lru_cache(maxsize=CACHED_MODELS)
def _loaded(name: str, sha256: str) -> Checkpoint:
    return checkpoints.load(files.local_copy(name, sha256), sha256=sha256)


def best_checkpoint(experiment: Experiment) -> Checkpoint | None:
    """The run's best checkpoint, loaded (cached per web process); None when it has none,
    TryError when it is larger than the web process serves."""
    stored = experiment.checkpoints.filter(tag="best").first()
    if stored is None:
        return None
    if problem := size_problem(stored.size):
        raise TryError(problem)
    return _loaded(stored.path, stored.sha256)


def size_problem(size: int) -> str | None:
    """Why a checkpoint archive of ``size`` bytes is not loaded into the web process."""
    limit = settings.FITBOARD_SERVE_MAX_BYTES
    if size <= limit:
        return None
    return (f"the model is {size / 2**20:,.0f} MB; the web server loads models of at most "
            f"{limit // 2**20:,} MB (FITBOARD_SERVE_MAX_MB): download its checkpoint instead")


def try_problem(experiment: Experiment) -> str | None:
    """Why the run offers no "Try it", or None when it does."""
    if experiment.is_external:
        return "a run trained elsewhere has no model here"
    best = experiment.checkpoints.filter(tag="best").first()
    if not experiment.is_terminal or best is None:
        return "the run has no finished checkpoint yet"
    if problem := size_problem(best.size):
        return problem
    if missing := missing_plugins(experiment.spec):
        return f"its {' and '.join(missing)} plugin is not installed here"
    modality = stored_dataset_info(experiment.spec).modality
    if modality not in ("image", "text"):
        return "Try it takes images and texts; this model reads table rows"
    return None


def within_rate(user: Any) -> bool:
    """Count one prediction or export for the user; False once the minute's allowance is
    spent (counted in Redis, so every web process shares it)."""
    return ratelimit.within("try-it", user, TRY_PER_MINUTE)


def image_inputs(data: bytes, input_shape: tuple[int, ...], invert: bool) -> np.ndarray:
    """An uploaded image as one uint8 (1, C, H, W) batch of the model's size: grey or RGB as its
    channels say, resized, optionally inverted (dark ink on white paper becomes the light
    strokes on black that digits and MNIST have)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise TryError(f"the image is {len(data):,} bytes: at most {MAX_IMAGE_BYTES:,}")
    try:
        # Only the formats a data set's images may have: Pillow otherwise tries each of its
        # parsers (PSD, FITS, SGI, EPS through Ghostscript...) on a stranger's bytes.
        image = Image.open(io.BytesIO(data), formats=OPENED_FORMATS)
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise TryError(f"the image is {width}×{height} pixels: at most "
                           f"{MAX_IMAGE_PIXELS:,} in all")
        channels, rows, columns = input_shape
        # The pixels training read from a data set's ZIP (upright, 16-bit scaled, transparency
        # on a background, the same resampling): a 16-bit PNG was all white here, and a phone
        # photo lay on its side.
        fitted = as_rgb(image).resize((columns, rows), Image.Resampling.BILINEAR)
        if channels == 1:
            fitted = fitted.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, TryError):
            raise
        raise TryError("the file is not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP)"
                       ) from exc
    pixels = np.asarray(fitted, dtype=np.uint8).reshape(rows, columns, channels)
    if invert:
        pixels = 255 - pixels
    return pixels.transpose(2, 0, 1)[None].copy()


def text_inputs(text: str) -> list[str]:
    text = text.strip()
    if not text:
        raise TryError("type a sentence to classify")
    if len(text) > MAX_TEXT_CHARS:
        raise TryError(f"the text is {len(text):,} characters: at most {MAX_TEXT_CHARS:,}")
    return [text]


def predict(experiment: Experiment, image: bytes | None, text: str, invert: bool
            ) -> dict[str, Any]:
    """The run's predictions for one image or one text: the most probable classes with their
    probabilities (or a regression's value). TryError for a refused input."""
    checkpoint = best_checkpoint(experiment)
    if checkpoint is None:
        raise TryError("the run has no finished checkpoint yet")
    if checkpoint.tokenizer is not None:
        inputs: Any = text_inputs(text)
    elif image is None:
        raise TryError("draw a digit or choose an image to classify")
    else:
        inputs = image_inputs(image, tuple(checkpoint.meta["input_shape"]), invert)
    result = checkpoint.classify(inputs)  # uint8 pixels: read as 0-255 by the contract
    if result.probabilities is None:
        return {"value": float(result.outputs[0, 0])}
    return {"predictions": [{"label": label, "probability": round(probability, 6)}
                            for label, probability in result.top(TOP)[0]]}


def onnx_file(experiment: Experiment) -> bytes:
    """The run's best checkpoint as ONNX (ExportError for a model that is not exported)."""
    checkpoint = best_checkpoint(experiment)
    if checkpoint is None:
        raise TryError("the run has no finished checkpoint yet")
    return to_onnx(checkpoint)


def page_context(experiment: Experiment) -> dict[str, Any]:
    """What the run page shows of its model: the "Try it" card (``offered``, the input
    ``modality`` and ``size``) and whether an ONNX download is offered."""
    problem = try_problem(experiment)
    context: dict[str, Any] = {"offered": problem is None, "onnx": False,
                               "max_text": MAX_TEXT_CHARS, "max_mb": MAX_IMAGE_BYTES >> 20}
    if experiment.is_external:
        return context
    info = stored_dataset_info(experiment.spec)
    context["modality"], context["task"] = info.modality, info.task
    if info.modality == "image":
        context["size"] = "×".join(str(s) for s in info.input_shape[1:])
        context["grey"] = info.input_shape[0] == 1
    context["onnx"] = (experiment.spec["model"]["arch"] in EXPORTED_ARCHS
                       and "compression" not in experiment.spec)
    return context
