"""The input contract of ``predict``: what it accepts, how it reads pixel scales, and the clear
error it raises for anything else.

Images: a tensor or NumPy array shaped ``(N, C, H, W)``, or one image ``(C, H, W)``, or either
with its channels last (``(N, H, W, C)``, ``(H, W, C)``: ``numpy.asarray`` of a PIL image); a
single-channel model also takes ``(N, H, W)`` and ``(H, W)``. Pixels come in one of three scales,
named by ``scale``:

- ``"0-255"``: 8-bit pixels (PIL, OpenCV, MNIST files), as ``uint8`` or as floats;
- ``"0-1"``: floats from 0 to 1 (torchvision's ``ToTensor``);
- ``"raw"``: the data set's own units (sklearn's digits: 0 to 16; every other image set 0-255).

``scale="auto"`` (the default) decides by dtype, then by the largest value: ``uint8`` is 0-255;
floats whose maximum is at most 1 are 0-1; floats with a larger maximum are 0-255, except where
that maximum also fits the data set's own smaller range (digits: at most 16), which could be
either, so it is refused and ``scale`` must be named. Negative values, values above 255, NaN and
infinities are refused in every scale: normalised inputs go to ``checkpoint.model`` directly.

Tabular rows: ``(N, features)`` or one row ``(features,)`` of finite numbers, in the units of
the uploaded or built-in table (the checkpoint normalises them itself).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

SCALES = ("auto", "0-1", "0-255", "raw")


class InputError(ValueError):
    """Inputs that do not meet the contract of ``predict``; the message says which part."""


def as_tensor(inputs: Any) -> torch.Tensor:
    """A tensor of ``inputs`` (a tensor, a NumPy array or nested lists of numbers)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu()
    try:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(inputs)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"inputs must be a tensor or a NumPy array of numbers ({exc})") from exc


def batched(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """``x`` as a batch ``(N, *input_shape)``: one example gains the batch axis, a
    single-channel image without its channel axis gains that one, and images with their
    channels last (``(N, H, W, C)``, as PIL, OpenCV and matplotlib lay them out) are turned
    channels first."""
    shape = tuple(input_shape)
    channels_last = (*shape[1:], shape[0]) if len(shape) == 3 else None
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)
    elif (len(shape) == 3 and shape[0] == 1 and x.dim() in (2, 3)
          and tuple(x.shape[-2:]) == shape[1:]):
        x = x.reshape(-1, *shape)
    elif (channels_last is not None and x.dim() in (3, 4)
          and tuple(x.shape[-3:]) == channels_last != shape):
        x = x.movedim(-1, -3).reshape(-1, *shape)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        wanted = ", ".join(str(s) for s in shape)
        raise InputError(f"inputs shaped {tuple(x.shape)}: this model takes (N, {wanted}) "
                         f"or one example ({wanted})")
    return x


def _checked_numbers(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.bool or x.is_complex():
        raise InputError(f"inputs of dtype {x.dtype}: pass real numbers")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise InputError("inputs hold NaN or infinite values")
    return x


def pixel_scale(x: torch.Tensor, scale: str, pixel_max: float) -> float:
    """The largest value of the scale ``x`` is in (1, 255 or ``pixel_max``), checked; see the
    module's docstring for how ``auto`` decides."""
    if scale not in SCALES:
        raise InputError(f"scale={scale!r}: choose one of {', '.join(SCALES)}")
    low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if low < 0 or high > 255:
        raise InputError(f"pixel values from {low:g} to {high:g}: pass pixels in 0-255 (uint8 "
                         "or float) or 0-1 floats; already normalised inputs go to "
                         "checkpoint.model directly")
    if scale == "auto":
        if x.dtype == torch.uint8:
            return 255.0
        if high <= 1:
            return 1.0
        if high <= pixel_max < 255:
            raise InputError(f"pixel values up to {high:g} could be this data set's own scale "
                             f"(0-{pixel_max:g}) or 0-255: say which with scale='raw' or "
                             "scale='0-255'")
        return 255.0
    top = {"0-1": 1.0, "0-255": 255.0, "raw": pixel_max}[scale]
    if high > top:
        raise InputError(f"pixel values up to {high:g} do not fit scale={scale!r} (0-{top:g})")
    return top


def model_inputs(inputs: Any, input_shape: tuple[int, ...], pixel_max: float | None,
                 scale: str = "auto") -> torch.Tensor:
    """``inputs`` checked against the contract and converted to float32 in the units the model
    was trained on (before its normalisation): images rescaled from their ``scale`` to the
    data set's ``pixel_max`` (None: tabular rows, taken as they are)."""
    x = _checked_numbers(batched(as_tensor(inputs), input_shape))
    if pixel_max is None:
        if scale not in ("auto", "raw"):
            raise InputError(f"scale={scale!r} applies to images: table rows are read in "
                             "their own units (scale='raw', the default)")
        return x.float()
    top = pixel_scale(x, scale, pixel_max)
    x = x.float()
    return x if math.isclose(top, pixel_max) else x * (pixel_max / top)
