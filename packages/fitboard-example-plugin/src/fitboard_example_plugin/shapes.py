"""A synthetic image data set: grey squares, discs, crosses and bars at random places and sizes
on a noisy background, generated from a seed (no download, any size)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fitboard_model.fieldmeta import meta

LABELS = ("square", "disc", "cross", "bar")
_LEGEND = "Shapes data set (plugin)"


@dataclass(frozen=True)
class ShapesOptions:
    """How many images, how large and how noisy."""

    rows: int = field(default=800, metadata=meta(
        "Images", help="generated images", min=40, max=200_000, unit="rows", fieldset=_LEGEND))
    size: int = field(default=16, metadata=meta(
        "Image size", help="height and width", min=8, max=64, unit="pixels", fieldset=_LEGEND))
    # std of the Gaussian noise on 0-1 pixels
    noise: float = field(default=0.15, metadata=meta(
        "Noise", help="std of the background noise on 0-1 pixels", min=0.0, max=1.0,
        fieldset=_LEGEND))
    seed: int = field(default=0, metadata=meta(
        "Generator seed", help="the same seed draws the same images", min=0, max=2**31 - 1,
        fieldset=_LEGEND))


class Shapes:
    """The ``shapes`` data set loader: ``info`` says what it is without generating it,
    ``load`` generates it."""

    Options = ShapesOptions
    title = "Shapes (plugin: synthetic images, 4 classes)"

    @staticmethod
    def info(options: ShapesOptions) -> dict[str, Any]:
        return {"task": "classification", "modality": "image", "rows": options.rows,
                "input_shape": (1, options.size, options.size), "num_classes": len(LABELS)}

    @staticmethod
    def load(options: ShapesOptions) -> dict[str, Any]:
        rng = np.random.default_rng(options.seed)
        n, s = options.rows, options.size
        y = np.arange(n) % len(LABELS)
        rng.shuffle(y)
        x = rng.normal(0.0, options.noise, (n, 1, s, s)).astype(np.float32)
        rows, cols = np.mgrid[0:s, 0:s]
        for i, label in enumerate(y):
            half = int(rng.integers(max(2, s // 6), max(3, s // 3) + 1))
            cy, cx = rng.integers(half, s - half, size=2)
            dy, dx = rows - cy, cols - cx
            mask = {
                0: (abs(dy) <= half) & (abs(dx) <= half),
                1: dy**2 + dx**2 <= half**2,
                2: ((abs(dy) <= half // 3) & (abs(dx) <= half))
                | ((abs(dx) <= half // 3) & (abs(dy) <= half)),
                3: (abs(dy) <= max(1, half // 3)) & (abs(dx) <= half),
            }[int(label)]
            x[i, 0][mask] += 1.0
        return {"x": x, "y": y.astype(np.int64), "label_names": list(LABELS)}
