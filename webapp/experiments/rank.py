"""One rank of a data-parallel run, the module ``torchrun`` starts once per device (see
``webapp.experiments.parallel.launch``): it joins the group (NCCL on GPUs, gloo on the CPU) and
trains its shard with the one loop. Rank 0 reports through a DjangoReporter and writes the
checkpoints; the others only train. A rank that fails writes its reason and exits, torchrun
then stops the rest, and ``launch`` raises that reason for the job.

This process is a fresh interpreter: Django is set up here, before the models are imported,
which is why this module's imports come after ``django.setup()``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup()

import torch  # noqa: E402
from django.conf import settings  # noqa: E402

from training.data.catalog import dataset_info  # noqa: E402
from training.distributed import DataParallel, RankReporter, parameter_digest  # noqa: E402
from training.loop import primary_metric, run  # noqa: E402
from webapp.experiments.jobs import (  # noqa: E402
    failure_reason,
    job_meta,
    loop_options,
    placement,
    run_device,
    run_workdir,
    training_summary,
)
from webapp.experiments.models import Experiment  # noqa: E402
from webapp.experiments.parallel import RANKS, RESULT  # noqa: E402
from webapp.experiments.reporting import DjangoReporter  # noqa: E402


def main(experiment_id: int) -> int:
    """One rank's part of the run (torchrun set RANK, WORLD_SIZE, LOCAL_RANK and the
    rendezvous address)."""
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
    meta = job_meta(experiment)
    result = run(spec, reporter, workdir, **loop_options(spec, experiment, meta, device),
                 parallel=group)
    key, _ = primary_metric(dataset_info(spec.data.dataset).task)
    summary = {**training_summary(result, key, meta), "devices": group.world}
    return result.status, summary, result.model


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
