"""Versions of an uploaded data set: a new version is the previous one with some labels changed
and some rows removed, written as a new prepared file (the old one is never touched).

Rows are named by their position in the first version (``row_ids``, stored in every later
version's file), so a row keeps its name through removals and any two versions can be compared
row by row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from training.data.catalog import DatasetInfo
from training.data.uploads import Prepared, load_prepared, save_prepared


class VersionError(ValueError):
    """Changes that cannot make a version (an unknown row or class, nothing left)."""


@dataclass(frozen=True)
class Changes:
    """What a new version changes in the one it derives from, rows named by ``row_ids``."""

    relabel: Mapping[int, int] = field(default_factory=dict)  # row id -> new class index
    remove: frozenset[int] = frozenset()  # row ids to drop

    def __bool__(self) -> bool:
        return bool(self.relabel or self.remove)


def row_ids(path: Path) -> np.ndarray:
    """Each row's position in the first version (0..n-1 for a first version's file)."""
    with np.load(path, allow_pickle=False) as archive:
        if "row_ids" in archive:
            return np.asarray(archive["row_ids"], dtype=np.int64)
        return np.arange(len(archive["y"]), dtype=np.int64)


def derive(source: Path, changes: Changes, name: str, target: IO[bytes]
           ) -> tuple[DatasetInfo, dict[str, Any]]:
    """Write the version that applies ``changes`` to the prepared file ``source``; returns its
    facts and the diff against ``source`` (see :func:`diff`). Raises VersionError for a row id
    the source does not hold, a class index out of range, or a removal of every row."""
    raw = load_prepared(source, name)
    ids = row_ids(source)
    position = {int(r): i for i, r in enumerate(ids)}
    y = np.array(raw.y, dtype=np.int64)
    classes = len(raw.label_names)
    for row, label in changes.relabel.items():
        if row not in position:
            raise VersionError(f"row {row} is not in this version")
        if not 0 <= label < classes:
            raise VersionError(f"class {label} is not one of the {classes} classes")
        y[position[row]] = label
    unknown = [r for r in changes.remove if r not in position]
    if unknown:
        raise VersionError(f"row {unknown[0]} is not in this version")
    keep = np.array([int(r) not in changes.remove for r in ids], dtype=bool)
    if keep.sum() < 4:
        raise VersionError("a version needs at least 4 rows")
    info = DatasetInfo.from_dict({**raw.info.to_dict(), "rows": int(keep.sum())})
    with np.load(source, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes())
    prepared = Prepared(info, raw.x[keep], y[keep], list(raw.label_names),
                        list(meta.get("feature_names", [])), raw.impute, raw.standardise)
    saved = save_prepared(prepared, name, target, row_ids=ids[keep])
    return saved, _diff(ids, np.asarray(raw.y, np.int64), ids[keep], y[keep])


def diff(older: Path, newer: Path) -> dict[str, Any]:
    """Rows relabelled (row id, old class, new class), removed and added between two versions'
    prepared files, rows named by their position in the first version."""
    old = load_prepared(older, "upload:0")
    new = load_prepared(newer, "upload:0")
    return _diff(row_ids(older), np.asarray(old.y, np.int64), row_ids(newer),
                 np.asarray(new.y, np.int64))


def _diff(old_ids: np.ndarray, old_y: np.ndarray, new_ids: np.ndarray, new_y: np.ndarray
          ) -> dict[str, Any]:
    old = dict(zip(old_ids.tolist(), old_y.tolist(), strict=True))
    new = dict(zip(new_ids.tolist(), new_y.tolist(), strict=True))
    relabelled = [[r, old[r], new[r]] for r in sorted(old.keys() & new.keys()) if old[r] != new[r]]
    return {"relabelled": relabelled, "removed": sorted(old.keys() - new.keys()),
            "added": sorted(new.keys() - old.keys())}


def parse_changes(relabel: Iterable[tuple[int, int]], remove: Iterable[int]) -> Changes:
    """Changes from (row id, class) pairs and row ids; a row both relabelled and removed is
    removed."""
    removed = frozenset(int(r) for r in remove)
    return Changes({int(r): int(c) for r, c in relabel if int(r) not in removed}, removed)
