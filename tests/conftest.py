"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
# Tests read the offline data sets and the bundled pretrained model, and never reach the hub
# (set here, at import, so the worker processes of the end-to-end tests inherit them).
os.environ.setdefault("FITBOARD_DATA_DIR", str(DATA_DIR))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for a run's checkpoints."""
    path = tmp_path / "run"
    path.mkdir()
    return path
