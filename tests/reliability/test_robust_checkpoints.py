"""The last committed checkpoint survives whatever happens to the process writing the next one:
killed at a random moment (SIGKILL, no clean-up), or stopped by a full disk (a file size limit,
``ulimit -f``). Scorecard row (docs/reliability.md): last committed checkpoint still loads
after a kill during save or a full disk."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.checkpoint_writer import main as write_rounds
from training.checkpoints import CheckpointError, load

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20


def writer(folder: Path, rounds: int | None = None, max_file_bytes: int | None = None
           ) -> subprocess.Popen[bytes]:
    """The checkpoint writer in its own process, optionally under a file size limit (with
    SIGXFSZ ignored, so that an oversized write fails with an error instead of a signal)."""

    def limit() -> None:
        if max_file_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    args = [sys.executable, "-m", "tests.reliability.checkpoint_writer", str(folder)]
    return subprocess.Popen(args + ([str(rounds)] if rounds else []), cwd=ROOT,
                            stderr=subprocess.PIPE, preexec_fn=limit)


def wait_for_record(folder: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not (folder / "record.json").exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the writer never committed a checkpoint"
        time.sleep(0.01)


def wait_for_temp_file(folder: Path) -> None:
    deadline = time.monotonic() + 30
    while not temp_files(folder) and time.monotonic() < deadline:
        time.sleep(0.001)


def committed(folder: Path) -> bool:
    """Whether ``last.zip`` loads and is the recorded archive, or the next one (renamed into
    place just before the kill, its record not yet written)."""
    recorded = json.loads((folder / "record.json").read_text())
    try:
        checkpoint = load(folder / "last.zip")
    except CheckpointError:
        return False
    if checkpoint.meta["round"] == recorded["round"]:
        load(folder / "last.zip", sha256=recorded["sha256"])  # raises if altered
        return True
    return bool(checkpoint.meta["round"] == recorded["round"] + 1)


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_writer_killed_at_a_random_moment_never_corrupts_the_last_checkpoint(tmp_path):
    rng = random.Random(20)
    intact, mid_write = 0, 0
    for trial in range(TRIALS):
        # given a process saving a 4 MB checkpoint over and over, one save committed
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        process = writer(folder)
        wait_for_record(folder, process)

        # when it is killed at a random moment (every other trial: while a file is open)
        if trial % 2:
            wait_for_temp_file(folder)
            time.sleep(rng.uniform(0.0, 0.01))
        else:
            time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()
        mid_write += bool(temp_files(folder))

        # then the checkpoint on disk is a whole, committed one
        intact += committed(folder)
        # and the next save, as a restarted worker makes it, clears the dead one's leftovers
        write_rounds(folder, 1)
        assert temp_files(folder) == []
    print(f"\nlast committed checkpoint loads after a kill: {intact}/{TRIALS} "
          f"({mid_write} kills landed mid-write)")
    assert intact == TRIALS


@pytest.mark.parametrize("limit_mb", [1, 3])
def test_a_full_disk_fails_the_save_clearly_and_keeps_the_last_checkpoint(tmp_path, limit_mb):
    # given a committed checkpoint, written without limits
    write_rounds(tmp_path, 1)
    before = json.loads((tmp_path / "record.json").read_text())

    # when a process tries to save the next one where files cannot grow past a few MB
    process = writer(tmp_path, rounds=3, max_file_bytes=limit_mb * 2**20)
    _, stderr = process.communicate(timeout=120)

    # then the save fails with an error that says what happened
    assert process.returncode != 0
    message = stderr.decode()
    assert "CheckpointError: last.zip could not be written (File too large)" in message, message
    # and the last checkpoint still loads, unchanged, with no temporary file left beside it
    assert json.loads((tmp_path / "record.json").read_text()) == before
    load(tmp_path / "last.zip", sha256=before["sha256"])
    assert sorted(os.listdir(tmp_path)) == ["last.zip", "record.json"]
