"""MNIST and Fashion-MNIST from IDX files, and their download with checksum verification
against a local HTTP server serving the offline copies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from training.data import DataSources, prepare
from training.data.files import IDX_FILES, DataFileError, ensure_files, load_idx_set, sha256_of

from ..conftest import DATA_DIR
from ..hostile import serve


@pytest.fixture
def mirror() -> Iterator[str]:
    """A local HTTP server serving ../shared/data, standing in for the canonical sources."""
    yield from serve(DATA_DIR)


@pytest.mark.parametrize(("name", "first_label"), [("mnist", 5), ("fashion_mnist", 9)])
def test_the_idx_files_load_as_images_and_labels(name: str, first_label: int) -> None:
    # given the offline copy of a set in the data directory
    # when its four IDX files are read
    x, y, x_test, y_test = load_idx_set(name, DATA_DIR, allow_download=False)

    # then there are 60,000 training and 10,000 test images of 28×28, labelled 0-9
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.uint8
    assert x_test.shape == (10000, 1, 28, 28)
    assert (len(y), len(y_test)) == (60000, 10000)
    assert set(np.unique(y)) == set(range(10))
    assert y[0] == first_label


def test_mnist_uses_its_official_test_set_as_the_test_split() -> None:
    # given MNIST prepared with a small subset and a test fraction it must ignore
    # when it is prepared
    data = prepare("mnist", 0.2, seed=0, subset=500, test_fraction=0.3,
                   sources=DataSources(data_dir=DATA_DIR, allow_download=False))

    # then the subset is split 400/100 and the test split is the official 10,000 images
    assert (len(data.x_train), len(data.x_val)) == (400, 100)
    assert data.x_test is not None and data.y_test is not None
    assert data.x_test.shape == (10000, 1, 28, 28)
    _, _, _, official = load_idx_set("mnist", DATA_DIR, allow_download=False)
    assert data.y_test.tolist() == official.tolist()


def test_a_download_fetches_every_file_and_verifies_it(mirror: str, tmp_path: Path) -> None:
    # given an empty data directory and a server holding the official files
    # when MNIST's files are ensured from that server
    folder = ensure_files("mnist", tmp_path, base_urls=[mirror + "mnist/"])

    # then all four files are there, byte for byte the official ones
    for name in IDX_FILES:
        assert sha256_of(folder / name) == sha256_of(DATA_DIR / "mnist" / name)
    assert sorted(p.name for p in folder.iterdir()) == sorted(IDX_FILES)


def test_a_corrupted_download_fails_its_checksum_and_leaves_nothing(tmp_path: Path) -> None:
    # given a server whose labels file is truncated
    served = tmp_path / "served" / "mnist"
    served.mkdir(parents=True)
    for name in IDX_FILES:
        shutil.copy(DATA_DIR / "mnist" / name, served / name)
    data = (served / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(data[:-100])
    target = tmp_path / "data"

    # when the files are downloaded from it
    with pytest.raises(DataFileError) as caught:
        for base in serve(served):
            ensure_files("mnist", target, base_urls=[base])

    # then the checksum error names the file, and no partial file is left behind
    assert "checksum mismatch" in str(caught.value)
    assert "t10k-labels-idx1-ubyte.gz" in str(caught.value)
    assert not (target / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in (target / "mnist").iterdir() if p.name.startswith(".")]


def test_a_missing_file_without_downloads_names_the_data_directory(tmp_path: Path) -> None:
    # given an empty data directory and downloads switched off
    # when Fashion-MNIST is loaded
    with pytest.raises(DataFileError) as caught:
        load_idx_set("fashion_mnist", tmp_path, allow_download=False)

    # then the error says which file is missing and where it was looked for
    assert "FITBOARD_DATA_DIR" in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_an_unreachable_source_is_a_clear_error(tmp_path: Path) -> None:
    # given a source nobody answers on
    # when a download is attempted
    with pytest.raises(DataFileError) as caught:
        ensure_files("mnist", tmp_path, base_urls=["http://127.0.0.1:9/"])

    # then the error says which file could not be fetched
    assert "could not download train-images-idx3-ubyte.gz" in str(caught.value)
