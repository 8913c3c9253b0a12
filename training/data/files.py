"""MNIST and Fashion-MNIST from IDX files in a data directory, downloaded with checksums.

Files live at ``<data_dir>/<folder>/<file>`` (the layout of the upstream releases). A missing
file is fetched from the canonical source when downloads are allowed, written to a temporary file
in the same folder, checked against its recorded sha256 and only then renamed into place, so a
broken or tampered download never reaches the data directory.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 1 << 20  # bytes per read while downloading and hashing


class DataFileError(RuntimeError):
    """A data file is missing, cannot be fetched, or does not match its checksum."""


@dataclass(frozen=True)
class RemoteSet:
    """Where a built-in set's files come from and what they must hash to."""

    folder: str  # under the data directory
    base_urls: tuple[str, ...]  # tried in order; each ends with "/"
    sha256: Mapping[str, str]  # file name -> hex digest


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

REMOTE: dict[str, RemoteSet] = {
    # LeCun's page is the canonical home; it often refuses downloads, so the PyTorch mirror of
    # the identical files comes first.
    "mnist": RemoteSet("mnist", (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ), {
        "train-images-idx3-ubyte.gz":
            "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
        "train-labels-idx1-ubyte.gz":
            "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
        "t10k-images-idx3-ubyte.gz":
            "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
        "t10k-labels-idx1-ubyte.gz":
            "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    }),
    "fashion_mnist": RemoteSet("fashion-mnist", (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ), {
        "train-images-idx3-ubyte.gz":
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz":
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz":
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz":
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    }),
}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, sha256: str, timeout: float = 60.0) -> None:
    """Fetch ``url`` into ``target`` atomically, refusing content whose sha256 differs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as reply:
            while block := reply.read(CHUNK):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise DataFileError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got "
                f"{digest.hexdigest()}; the download is corrupted or not the official file"
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def ensure_files(name: str, data_dir: Path, allow_download: bool = True,
                 base_urls: Sequence[str] | None = None) -> Path:
    """The folder holding a built-in set's files, downloading the missing ones (with checksum
    verification) when allowed; ``base_urls`` overrides the sources (a mirror, a test server)."""
    remote = REMOTE[name]
    folder = data_dir / remote.folder
    for file_name, digest in remote.sha256.items():
        target = folder / file_name
        if target.is_file():
            continue
        if not allow_download:
            raise DataFileError(
                f"{target} is missing: put the {name} files in the data directory "
                "(FITBOARD_DATA_DIR) or allow downloads"
            )
        errors = []
        for base in base_urls or remote.base_urls:
            try:
                download(base + file_name, target, digest)
                break
            except DataFileError:
                raise
            except OSError as exc:  # unreachable mirror: try the next one
                errors.append(f"{base}: {exc}")
        else:
            raise DataFileError(f"could not download {file_name}: {'; '.join(errors)}")
    return folder


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array shaped as its header says."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{path} cannot be read: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFileError(f"{path} is not an IDX file of unsigned bytes")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if len(raw) != header + int(np.prod(shape)):
        raise DataFileError(f"{path} is truncated: its header announces shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_set(name: str, data_dir: Path, allow_download: bool = True,
                 base_urls: Sequence[str] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels); images shaped (N, 1, 28, 28)."""
    folder = ensure_files(name, data_dir, allow_download, base_urls)
    return _read_set(folder.resolve())


@functools.lru_cache(maxsize=2)
def _read_set(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Decompressing 47 MB takes most of a second; a worker training run after run, or a test
    # session, reads each set once. The arrays are read-only views, safe to share.
    x_train, y_train, x_test, y_test = (read_idx(folder / f) for f in IDX_FILES)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataFileError(f"{folder}: image and label files disagree on the number of rows")
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    y_train.flags.writeable = y_test.flags.writeable = False
    return x_train[:, None], y_train, x_test[:, None], y_test
