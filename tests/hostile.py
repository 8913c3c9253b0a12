"""Builders of uploads, friendly and hostile, and a local file server, shared by the engine and
web tests."""

from __future__ import annotations

import functools
import http.server
import io
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image


def png(colour: int | tuple[int, int, int] = 128, size: int = 12, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header announces a huge image (Pillow reads headers lazily)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def image_zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A ZIP of ``members`` (name -> bytes), plus symbolic links (name -> target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def two_class_zip(per_class: int = 6) -> bytes:
    """Dark "night" and bright "day" 12×12 grey images, slightly varied."""
    members = {}
    for i in range(per_class):
        members[f"night/{i}.png"] = png(10 + 3 * i)
        members[f"day/{i}.png"] = png(240 - 3 * i)
    return image_zip(members)


HOSTILE_ZIPS: dict[str, tuple[bytes, str]] = {
    # name: (archive, words the refusal must contain)
    "traversal": (image_zip({"cats/a.png": png(), "../../evil.png": png()}), "path traversal"),
    "absolute": (image_zip({"cats/a.png": png(), "/tmp/evil.png": png()}), "absolute"),
    "symlink": (image_zip({"cats/a.png": png(), "dogs/b.png": png(200)},
                          {"dogs/passwd.png": "/etc/passwd"}), "symbolic link"),
    "not an image": (image_zip({"cats/a.png": png(), "dogs/run.py": b"import os"}),
                     "not an image"),
    "fake image": (image_zip({"cats/a.png": png(), "dogs/b.png": b"not really a png"}),
                   "not a readable image"),
    "ratio bomb": (image_zip({"cats/a.png": png(), "dogs/b.png": bytes(20 * 2**20)}),
                   "decompression bomb"),
    "pixel bomb": (image_zip({"cats/a.png": png(), "dogs/b.png": pixel_bomb_png()}),
                   "decompression bomb"),
    "one class": (image_zip({"cats/a.png": png(), "cats/b.png": png(3)}), "at least two"),
    "not a zip": (b"PK\x03\x04 this is not really a zip file", "not a ZIP archive"),
}

CSV_HEADER = "sepal,petal,species\n"


def table_csv(rows: int = 40) -> bytes:
    """Two informative features and a two-class label."""
    lines = [CSV_HEADER]
    for i in range(rows):
        species = "setosa" if i % 2 else "virginica"
        offset = 0 if i % 2 else 5
        lines.append(f"{1 + offset + i * 0.01:.2f},{2 + offset + (i % 5) * 0.1:.2f},"
                     f"{species}\n")
    return "".join(lines).encode()


def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on a free loopback port, in a thread; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --- hostile uploads that cost work rather than break rules ------------------------------------


def big_images_zip(count: int = 40, side: int = 4096) -> bytes:
    """``count`` flat grey PNGs of ``side``² pixels: a few hundred bytes each, seconds to decode."""
    big = png(0, side)
    return image_zip({f"c{i % 2}/{i}.png": big for i in range(count)})


def wide_csv(columns: int, rows: int = 4) -> bytes:
    """A CSV of ``columns`` numeric columns: cheap to send, slow to parse column by column."""
    header = ",".join(f"c{i}" for i in range(columns)) + "\n"
    row = ",".join("1" for _ in range(columns)) + "\n"
    return (header + row * rows).encode()


def _patched(archive: bytes, offset_in_local: int, offset_in_central: int, value: bytes) -> bytes:
    """``archive`` with ``value`` written at a field of every local and central header."""
    data = bytearray(archive)
    for signature, offset in ((b"PK\x03\x04", offset_in_local), (b"PK\x01\x02", offset_in_central)):
        start = data.find(signature)
        while start != -1:
            data[start + offset:start + offset + len(value)] = value
            start = data.find(signature, start + 4)
    return bytes(data)


def stored_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def bad_crc_zip() -> bytes:
    """A ZIP whose member's bytes no longer match its CRC-32 (one pixel byte flipped)."""
    archive = bytearray(stored_zip({"cats/a.png": png(), "dogs/b.png": png(200)}))
    at = archive.rfind(b"IEND") - 8  # inside the last member's image data, not in a header
    archive[at] ^= 0xFF
    return bytes(archive)


def unsupported_method_zip() -> bytes:
    """A ZIP whose members claim compression method 6 (implode), which Python cannot read."""
    return _patched(stored_zip({"cats/a.png": png(), "dogs/b.png": png(200)}), 8, 10,
                    struct.pack("<H", 6))
