"""One run on several devices, from the worker's side: ``launch`` starts ``torchrun`` with one
process per device, each running ``webapp.experiments.rank``, and returns rank 0's outcome, or
raises the first failed rank's reason for the job.

``launch`` runs ``python -m torch.distributed.run --standalone --nproc_per_node N
-m webapp.experiments.rank <experiment id>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

RESULT = "result.json"  # rank 0's outcome: status and summary
RANKS = "ranks"  # per-rank files: parameter digests, failure reasons
LOG = "torchrun.log"


def launch(experiment_id: int, devices: int, workdir: Path) -> tuple[str, dict[str, Any]]:
    """Train a started experiment on ``devices`` processes and return rank 0's status and
    summary; raise TrainingError with the first rank's reason when the group fails."""
    from training.loop import NonFiniteLossError, TrainingError

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / RANKS, ignore_errors=True)
    (workdir / RESULT).unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(devices), "--max_restarts", "0",
               "-m", "webapp.experiments.rank", str(experiment_id)]
    root = str(settings.BASE_DIR)  # the ranks import this project wherever the worker started
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    with (workdir / LOG).open("wb") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False, cwd=root,
                              env={**os.environ, "PYTHONUNBUFFERED": "1",
                                   "PYTHONPATH": path}).returncode
    result = workdir / RESULT
    if code == 0 and result.exists():
        outcome = json.loads(result.read_text())
        return outcome["status"], outcome["summary"]
    failures = sorted((workdir / RANKS).glob("failure-*.json"))
    if failures:
        failure = json.loads(failures[0].read_text())
        error = NonFiniteLossError if failure["nonfinite"] else TrainingError
        raise error(failure["error"])
    tail = (workdir / LOG).read_text(errors="replace").strip().splitlines()[-5:]
    raise TrainingError(f"the {devices} training processes exited with code {code}: "
                        + " / ".join(tail))
