"""An image ZIP's pixels as a viewer shows them: transparency laid on a background (content
drawn only in the alpha channel stays visible), and JPEGs under the names Windows gives them."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from training.data.uploads import read_image_zip


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def archive(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    buffer.seek(0)
    return buffer


def strokes(ink: int, horizontal: bool, offset: int) -> Image.Image:
    """A canvas export: ``ink``-coloured pixels under a transparent page, the stroke (a line
    across the middle) only in the alpha channel."""
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[..., :3] = ink
    rows = slice(6 + offset, 8 + offset) if horizontal else slice(3, 17)
    columns = slice(3, 17) if horizontal else slice(6 + offset, 8 + offset)
    pixels[rows, columns, 3] = 255
    return Image.fromarray(pixels, "RGBA")


def canvas_zip(ink: int) -> io.BytesIO:
    return archive({f"{name}/{i}.png": png(strokes(ink, name == "flat", i))
                    for name in ("flat", "tall") for i in range(6)})


def test_dark_strokes_drawn_only_in_the_alpha_channel_stay_visible_on_white() -> None:
    # given black strokes on a transparent page, 6 distinct drawings per class (the RGB under
    # every pixel is black: dropping alpha made all 12 alike, and 10 were dropped as duplicates)
    prepared = read_image_zip(canvas_zip(ink=0), image_size=20)

    # then every drawing is kept, on white, and the two classes' strokes differ
    assert len(prepared.y) == 12
    grey = prepared.x[:, 0]
    assert (grey[:, 0, 0] == 255).all() and (grey.min(axis=(1, 2)) == 0).all()
    flat, tall = grey[prepared.y == 0].mean(axis=0), grey[prepared.y == 1].mean(axis=0)
    assert np.abs(flat - tall).max() > 50


def test_light_strokes_on_a_transparent_page_are_laid_on_black() -> None:
    prepared = read_image_zip(canvas_zip(ink=255), image_size=20)

    assert len(prepared.y) == 12
    first = prepared.x[0, 0]
    assert first[0, 0] == 0 and first[6, 10] == 255


def test_an_opaque_rgba_image_keeps_its_colours() -> None:
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[..., 0], pixels[..., 3] = 200, 255
    members = {f"{name}/{i}.png": png(Image.fromarray(pixels + np.uint8(i + 9 * (name == "b")),
                                                      "RGBA"))
               for name in ("a", "b") for i in range(3)}

    prepared = read_image_zip(archive(members), image_size=20)

    assert prepared.x[0, :, 0, 0].tolist() == [200, 0, 0]


def test_jpegs_saved_as_jfif_or_jpe_are_read() -> None:
    # given JPEGs under the extensions Windows browsers save them with
    def jpeg(level: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), (level, level, level)).save(buffer, format="JPEG")
        return buffer.getvalue()

    members = {f"{name}/{i}.{suffix}": jpeg(40 + 150 * (name == "light") + i)
               for name in ("dark", "light") for i, suffix in enumerate(("jfif", "JPE", "jpg"))}

    prepared = read_image_zip(archive(members), image_size=16)

    assert len(prepared.y) == 6 and prepared.report["labels"] == ["dark", "light"]
