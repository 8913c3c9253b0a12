"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The offline data sets, found by tests/stack.py (loaded before Django) and inherited by the
# worker processes of the end-to-end tests; the bundled pretrained model never reaches the hub.
DATA_DIR = Path(os.environ["FITBOARD_DATA_DIR"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for a run's checkpoints."""
    path = tmp_path / "run"
    path.mkdir()
    return path
