"""One run on several devices: the worker launches ``torchrun`` with one process per device
(``launch``), and each process runs ``main`` here: it joins the group (NCCL on GPUs, gloo on
the CPU) and trains its shard with the one loop. Rank 0 reports through a DjangoReporter and
writes the checkpoints; the others only train. A rank that fails writes its reason and exits,
torchrun then stops the rest, and ``launch`` raises that reason for the job.

Run as ``python -m torch.distributed.run --standalone --nproc_per_node N
-m webapp.experiments.parallel <experiment id>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
               "-m", "webapp.experiments.parallel", str(experiment_id)]
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


def main(experiment_id: int) -> int:
    """One rank's part of the run (torchrun set RANK, WORLD_SIZE, LOCAL_RANK and the
    rendezvous address)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    django.setup()
    # The models can be imported only now, in this process started by torchrun.
    import torch

    from training.distributed import DataParallel, RankReporter, parameter_digest
    from webapp.experiments.jobs import failure_reason, placement, run_device, run_workdir
    from webapp.experiments.models import Experiment
    from webapp.experiments.reporting import DjangoReporter

    group = DataParallel.from_env()
    if group is None:
        raise SystemExit("run me under torchrun (python -m torch.distributed.run)")
    experiment = Experiment.objects.get(pk=experiment_id)
    spec = experiment.experiment_spec
    workdir = run_workdir(experiment_id)
    ranks = workdir / RANKS
    ranks.mkdir(parents=True, exist_ok=True)
    # The ranks share the worker's cores (its GPUs do the work when there are some).
    torch.set_num_threads(max(1, settings.FITBOARD_TORCH_THREADS // group.world))
    reporter = DjangoReporter(experiment) if group.is_main else None
    # Only rank 0's checkpoints are the run's; the others write theirs to a scratch folder.
    own_dir = workdir if group.is_main else Path(tempfile.mkdtemp(prefix="fitboard-rank-"))
    try:
        device = group.start(run_device(spec))
        if reporter is not None:
            reporter.status("starting", **placement(device, group.world))
        result = _train(experiment, spec, RankReporter(reporter, group), own_dir, device, group)
        (ranks / f"params-{group.rank}.sha256").write_text(parameter_digest(result[2]))
        if group.is_main:
            (workdir / RESULT).write_text(json.dumps({"status": result[0],
                                                      "summary": result[1]}))
        return 0
    except Exception as exc:  # noqa: BLE001 - the reason goes to the job, via launch()
        error, nonfinite = failure_reason(exc, experiment)
        (ranks / f"failure-{group.rank}.json").write_text(
            json.dumps({"error": error, "nonfinite": nonfinite, "rank": group.rank}))
        return 1
    finally:
        if reporter is not None:
            reporter.close()
        group.stop()
        if own_dir != workdir:
            shutil.rmtree(own_dir, ignore_errors=True)


def _train(experiment: Any, spec: Any, reporter: Any, workdir: Path, device: str,
           group: Any) -> tuple[str, dict[str, Any], Any]:
    from training.data.catalog import dataset_info
    from training.loop import primary_metric, run
    from webapp.experiments.jobs import job_meta, loop_options, training_summary

    meta = job_meta(experiment)
    result = run(spec, reporter, workdir, **loop_options(spec, experiment, meta, device),
                 parallel=group)
    key, _ = primary_metric(dataset_info(spec.data.dataset).task)
    summary = {**training_summary(result, key, meta), "devices": group.world}
    return result.status, summary, result.model


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
