"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder for a run's checkpoints."""
    path = tmp_path / "run"
    path.mkdir()
    return path
