"""Experiments are rows that own their status; metric chunks keep one value per step."""

from __future__ import annotations

from webapp.experiments import metric_store
from webapp.experiments.models import Experiment


def test_a_job_starts_only_once(make_experiment):
    experiment = make_experiment()

    first = experiment.start(worker="w1")
    second = Experiment.objects.get(pk=experiment.pk).start(worker="w2")

    assert (first, second) == (True, False)
    assert Experiment.objects.get(pk=experiment.pk).worker == "w1"


def test_a_cancelled_job_is_never_started(make_experiment):
    experiment = make_experiment()
    experiment.request_cancel()

    assert experiment.start(worker="w1") is False


def test_a_finished_job_cannot_be_finished_again(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)
    experiment.finish(Experiment.Status.FAILED, error="loss became nan")

    again = experiment.finish(Experiment.Status.SUCCEEDED)

    stored = Experiment.objects.get(pk=experiment.pk)
    assert again is False
    assert (stored.status, stored.error) == ("failed", "loss became nan")


def test_finishing_records_the_best_metric(make_experiment):
    experiment = make_experiment(status=Experiment.Status.RUNNING)

    experiment.finish(Experiment.Status.SUCCEEDED, summary={"best_metric": ["val_acc", 0.97]})

    stored = Experiment.objects.get(pk=experiment.pk)
    assert (stored.best_metric_name, stored.best_metric_value) == ("val_acc", 0.97)
    assert stored.finished_at is not None


def test_metric_points_read_back_in_step_order(make_experiment):
    experiment = make_experiment()
    metric_store.append(experiment.pk, {"loss": [(1, 2.0, 10.0), (2, 1.5, 11.0)]})
    metric_store.append(experiment.pk, {"loss": [(3, 1.0, 12.0)], "val_acc": [(3, 0.8, 12.0)]})

    series = metric_store.read(experiment.pk)

    assert series["loss"].steps.tolist() == [1, 2, 3]
    assert series["loss"].values.tolist() == [2.0, 1.5, 1.0]
    assert series["val_acc"].values.tolist() == [0.8]


def test_a_resent_step_keeps_only_the_last_value(make_experiment):
    experiment = make_experiment()
    metric_store.append(experiment.pk, {"loss": [(1, 2.0, 10.0), (2, 9.0, 11.0)]})
    metric_store.append(experiment.pk, {"loss": [(2, 1.5, 12.0), (3, 1.0, 13.0)]})

    series = metric_store.read(experiment.pk, keys=["loss"])

    assert series["loss"].steps.tolist() == [1, 2, 3]
    assert series["loss"].values.tolist() == [2.0, 1.5, 1.0]
