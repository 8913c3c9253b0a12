"""Runs that go wrong on the worker end the way they should, through the real runner and
database: diverging runs fail with the non-finite loss as their reason, simulated out-of-memory
errors halve the forward passes and the run goes on, and none of them is ever run twice.

Scorecard rows (docs/reliability.md): NaN runs ended failed with the reason; simulated OOMs
that halve the batch; re-queue loops."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from django.conf import settings
from django.contrib.auth.models import User

from tests.faults import OutOfMemoryAbove
from training.data import dataset_info
from training.models import build_model
from training.spec import ExperimentSpec
from webapp.experiments.jobs import Outcome
from webapp.experiments.models import Experiment
from webapp.experiments.reporting import DjangoReporter
from webapp.experiments.runner import execute_training, run_job
from webapp.projects.models import Project

pytestmark = pytest.mark.django_db(transaction=True)

# Ten ways to make a loss go to NaN or infinity: learning rates far too high for plain SGD,
# without clipping, on regression targets whose squared errors explode and on classification.
DIVERGING: list[dict[str, Any]] = [
    {"data": {"dataset": "diabetes"}, "optim": {"loss": "mse", "optimizer": "sgd", "lr": 5}},
    {"data": {"dataset": "diabetes"},
     "optim": {"loss": "mse", "optimizer": "sgd", "lr": 10, "momentum": 0.0}},
    {"data": {"dataset": "diabetes"}, "optim": {"loss": "huber", "optimizer": "sgd", "lr": 10}},
    {"data": {"dataset": "diabetes"},
     "optim": {"loss": "mae", "optimizer": "sgd", "lr": 10, "momentum": 0.99}},
    {"data": {"dataset": "diabetes"}, "optim": {"loss": "mse", "optimizer": "sgd", "lr": 2}},
    {"data": {"dataset": "diabetes"}, "optim": {"loss": "mse", "optimizer": "sgd", "lr": 5},
     "run": {"batch_size": 16}},
    {"data": {"dataset": "diabetes"}, "optim": {"loss": "mse", "optimizer": "sgd", "lr": 5},
     "run": {"grad_accumulation": 2}},
    {"data": {"dataset": "diabetes"}, "model": {"hidden_sizes": [256, 256]},
     "optim": {"loss": "mse", "optimizer": "sgd", "lr": 1}},
    {"data": {"dataset": "breast_cancer"},
     "optim": {"optimizer": "sgd", "lr": 10, "momentum": 0.99}},
    {"data": {"dataset": "breast_cancer"},
     "optim": {"optimizer": "sgd", "lr": 10, "momentum": 0.99}, "run": {"seed": 1}},
]


def spec_of(patch: dict[str, Any]) -> ExperimentSpec:
    run = {"epochs": 5, "device": "cpu", **patch.get("run", {})}
    model = {"arch": "mlp", **patch.get("model", {})}
    return ExperimentSpec().patched({**patch, "model": model, "run": run})


@pytest.fixture
def queue_run(db: Any) -> Any:
    owner = User.objects.create_user("owner", password="owner-pass-123")
    project = Project.objects.create(name="reliability")
    project.members.add(owner)

    def make(spec: ExperimentSpec) -> Experiment:
        return Experiment.objects.create(project=project, name="run", spec=spec.to_dict(),
                                         created_by=owner)

    return make


def redeliver(experiment: Experiment) -> bool:
    """Deliver the run's task again, as a broker does after a lost acknowledgement; True when
    the run started again (a re-queue loop)."""
    before = Experiment.objects.get(pk=experiment.pk)
    execute_training(experiment.pk, "second-worker")
    after = Experiment.objects.get(pk=experiment.pk)
    return (after.worker, after.started_at, after.status) != (before.worker, before.started_at,
                                                              before.status)


def test_every_diverging_run_ends_failed_with_the_non_finite_loss_and_runs_once(queue_run):
    # given ten queued runs whose losses blow up
    runs = [queue_run(spec_of(patch)) for patch in DIVERGING]

    # when the worker runs each of them, and each task is then delivered a second time
    for experiment in runs:
        execute_training(experiment.pk, "worker")
    loops = sum(redeliver(experiment) for experiment in runs)

    # then every one failed with the non-finite loss as its reason, and none ran again
    ended = [Experiment.objects.get(pk=e.pk) for e in runs]
    failed = [e for e in ended if e.status == Experiment.Status.FAILED
              and re.search(r"loss became (nan|-?inf)", e.error)]
    print(f"\nNaN runs ended failed with the reason: {len(failed)}/{len(runs)}; "
          f"re-queue loops: {loops}")
    assert len(failed) == len(runs), [(e.status, e.error) for e in ended if e not in failed]
    assert loops == 0


def oom_run(experiment: Experiment, fits: int, plain: bool = False) -> None:
    """Run a queued experiment through the runner on a device whose forward passes run out
    of memory above ``fits`` rows."""
    assert experiment.start("worker")
    spec = experiment.experiment_spec
    info = dataset_info(spec.data.dataset)
    torch.manual_seed(spec.run.seed)
    model = OutOfMemoryAbove(build_model(spec.model, info.input_shape, info.num_classes or 1),
                             rows=fits, plain=plain)

    def train(reporter: DjangoReporter) -> Outcome:
        from training.loop import run

        result = run(spec, reporter, settings.MEDIA_ROOT / "runs" / str(experiment.pk),
                     model=model, min_batch=settings.FITBOARD_MIN_BATCH)
        return Outcome(result.status, {"epochs": result.epochs, "micro_batch": result.micro_batch})

    run_job(experiment, train)


# (rows a forward pass fits, whether the allocator raises the plain RuntimeError, the size that
# should work) for batches of 64 rows and the default floor of 8
FITS = [(63, False, 32), (40, True, 32), (31, False, 16), (20, False, 16), (15, False, 8),
        (9, True, 8)]


def test_simulated_out_of_memory_halves_the_passes_and_the_run_succeeds(queue_run):
    iris = {"data": {"dataset": "iris"}, "run": {"epochs": 3, "batch_size": 64}}
    runs = [(queue_run(spec_of(iris)), fits, plain, expected) for fits, plain, expected in FITS]

    for experiment, fits, plain, _ in runs:
        oom_run(experiment, fits, plain)

    halved = []
    for experiment, _, _, expected in runs:
        row = Experiment.objects.get(pk=experiment.pk)
        if (row.status == Experiment.Status.SUCCEEDED and row.summary["micro_batch"] == expected
                and row.progress["micro_batch"] == expected):
            halved.append(row)
    print(f"\nsimulated OOMs that halved the batch and finished: {len(halved)}/{len(runs)}")
    assert len(halved) == len(runs)


def test_out_of_memory_at_the_floor_fails_with_the_batch_size_and_is_not_run_again(queue_run):
    # given a run on a device where not even the floor's 8 rows fit
    experiment = queue_run(spec_of({"data": {"dataset": "iris"}}))

    # when the worker runs it, and its task is delivered again
    oom_run(experiment, fits=4)
    loops = redeliver(experiment)

    # then it failed, saying which batch did not fit, and did not start again
    row = Experiment.objects.get(pk=experiment.pk)
    assert row.status == Experiment.Status.FAILED
    assert "out of memory at a batch of 8 rows" in row.error
    assert not loops
