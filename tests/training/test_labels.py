"""Suspicious labels (training.labels) and data set versions (training.data.versions), without
the web app: seeded label flips are found among the first suggestions, and a version changes
labels and rows without touching the file it came from."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from training.data.catalog import DatasetInfo
from training.data.loading import load_raw
from training.data.uploads import Prepared, load_prepared, save_prepared
from training.data.versions import Changes, VersionError, derive, diff, row_ids
from training.labels import FinderSpec, find_suspicious, flip_labels, recall_at


@pytest.fixture(scope="module")
def noisy_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = load_raw("digits")
    noisy, flipped = flip_labels(raw.y, 10, 0.05, seed=0)
    return raw.x, noisy, flipped


def test_the_finder_ranks_most_flipped_digits_first(noisy_digits):
    # given digits with 5% of the labels flipped at random (seeded)
    x, noisy, flipped = noisy_digits

    # when the finder ranks every row (3-fold cross-fitting)
    found = find_suspicious(x, noisy, 10, FinderSpec(folds=3))

    # then at least 80% of the flipped rows are among the first (flipped × 1.5) suggestions
    assert len(flipped) == 90
    assert recall_at(found, flipped, round(len(flipped) * 1.5)) >= 0.8
    # and every row is ranked once, the flagged ones first, each with a suggestion
    assert sorted(found.ranked.tolist()) == list(range(len(noisy)))
    assert 0 < found.flagged < len(noisy) // 5
    head = found.to_rows(5)
    assert all(r["suggested"] != r["given"] for r in head)
    assert found.confusion.sum() == len(noisy) and found.confusion.shape == (10, 10)


def test_the_mlp_finder_ranks_them_too_and_is_seeded(noisy_digits):
    # given the same noisy digits, when the MLP quick model (the choice for wide images) ranks
    x, noisy, flipped = noisy_digits
    spec = FinderSpec(folds=3, model="mlp", mlp_epochs=15)
    found = find_suspicious(x, noisy, 10, spec)

    # then it too finds 80% of the flips within the budget, and ranks the same way again
    assert recall_at(found, flipped, round(len(flipped) * 1.5)) >= 0.8
    assert np.array_equal(find_suspicious(x, noisy, 10, spec).ranked, found.ranked)


def test_flips_are_seeded_and_always_change_the_class():
    y = np.repeat(np.arange(4), 25)
    first, rows = flip_labels(y, 4, 0.1, seed=3)
    again, rows_again = flip_labels(y, 4, 0.1, seed=3)
    assert np.array_equal(first, again) and np.array_equal(rows, rows_again)
    assert len(rows) == 10 and (first[rows] != y[rows]).all()
    assert (np.delete(first, rows) == np.delete(y, rows)).all()


def prepared_file(folder: Path, texts: bool = False) -> Path:
    y = np.array([0, 1, 0, 1, 0, 1], dtype=np.int64)
    if texts:
        x = np.array([f"text {i}" for i in range(6)], dtype=object)
        info = DatasetInfo("upload:0", "t", "classification", "text", 6, (), 2)
    else:
        x = np.arange(12, dtype=np.float32).reshape(6, 2)
        info = DatasetInfo("upload:0", "t", "classification", "tabular", 6, (2,), 2)
    path = folder / "v1.npz"
    with path.open("wb") as target:
        save_prepared(Prepared(info, x, y, ["cat", "dog"], ["a", "b"] if not texts else []),
                      "upload:7", target)
    return path


@pytest.mark.parametrize("texts", [False, True], ids=["table", "text"])
def test_a_version_relabels_and_removes_rows_and_leaves_its_source(tmp_path, texts):
    # given a first version
    v1 = prepared_file(tmp_path, texts)
    before = v1.read_bytes()

    # when version 2 relabels row 0 and removes row 3
    v2 = tmp_path / "v2.npz"
    with v2.open("wb") as target:
        info, changes = derive(v1, Changes({0: 1}, frozenset({3})), "upload:7", target)

    # then it holds 5 rows, row 0 relabelled, row 3 gone, rows named by their first position
    assert info.rows == 5
    assert changes == {"relabelled": [[0, 0, 1]], "removed": [3], "added": []}
    assert row_ids(v2).tolist() == [0, 1, 2, 4, 5]
    loaded = load_prepared(v2, "upload:7")
    assert loaded.y.tolist() == [1, 1, 0, 0, 1]
    assert str(loaded.x[3]) == str(load_prepared(v1, "upload:7").x[4])
    # and version 1 is untouched; the diff reads the same from the files
    assert v1.read_bytes() == before
    assert diff(v1, v2) == changes

    # and version 3 from version 2 names rows by their version-1 positions
    v3 = tmp_path / "v3.npz"
    with v3.open("wb") as target:
        derive(v2, Changes({4: 1}, frozenset()), "upload:7", target)
    assert diff(v1, v3)["relabelled"] == [[0, 0, 1], [4, 0, 1]]


def test_a_version_refuses_unknown_rows_and_classes(tmp_path):
    v1 = prepared_file(tmp_path)
    with pytest.raises(VersionError, match="row 9"):
        derive(v1, Changes({9: 1}), "upload:7", io.BytesIO())
    with pytest.raises(VersionError, match="class 5"):
        derive(v1, Changes({0: 5}), "upload:7", io.BytesIO())
    with pytest.raises(VersionError, match="at least 4 rows"):
        derive(v1, Changes(remove=frozenset({0, 1, 2})), "upload:7", io.BytesIO())
