"""Noisy data sets for the suspicious-labels tests: digits with seeded label flips, as the ZIP
of class folders a user would upload."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from training.data.loading import load_raw
from training.labels import flip_labels

from .hostile import image_zip


def noisy_digits_zip(rows: int = 600, fraction: float = 0.05, seed: int = 0
                     ) -> tuple[bytes, int]:
    """The first ``rows`` digits as 8×8 PNGs in class folders, ``fraction`` of them filed under
    another class (seeded); returns the archive and how many were flipped."""
    raw = load_raw("digits")
    x, y = raw.x[:rows], raw.y[:rows]
    noisy, flipped = flip_labels(y, 10, fraction, seed)
    members = {}
    for i, (pixels, label) in enumerate(zip(x, noisy, strict=True)):
        buffer = io.BytesIO()
        Image.fromarray((pixels[0] * 15).astype(np.uint8)).save(buffer, format="PNG")
        members[f"{label}/{i:04d}.png"] = buffer.getvalue()
    return image_zip(members), len(flipped)
