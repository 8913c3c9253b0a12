"""Studies and compression jobs started through the REST API: the Tune and Compress pages'
code path (actions.py), their specs' errors one per field path, their refusals."""

from __future__ import annotations

import pytest

from tests.checkpoints import store_checkpoint
from training.spec import ExperimentSpec
from webapp.experiments.models import Experiment

from .conftest import IRIS

SPACE = {"optim.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


@pytest.fixture
def finished(make_run):
    """A succeeded iris MLP run with a best checkpoint (its bytes are not read: queueing a
    job checks the row and the specs; the compression tests run real ones)."""
    source = make_run("teacher", Experiment.Status.SUCCEEDED, best_metric_name="val_acc",
                      best_metric_value=0.9)
    store_checkpoint(source, b"teacher weights")
    return source


def test_a_study_starts_around_the_runs_spec(api, owner, make_run):
    source = make_run("base", Experiment.Status.SUCCEEDED)

    response = api.post(f"runs/{source.pk}/studies/", {
        "name": "lr sweep", "spec": {"space": SPACE, "algorithm": "random", "n_trials": 4,
                                     "objective": "val_loss"}})

    assert response.status_code == 201, response.json()
    study = Experiment.objects.get(pk=response.json()["id"])
    assert study.kind == "tune" and study.parent == source and study.created_by == owner
    assert study.spec["base"] == source.spec and study.spec["n_trials"] == 4
    assert study.spec["direction"] == "minimize"  # follows the objective, as on the page
    assert study.progress["budget"] == 4


def test_a_bad_study_spec_is_a_400_per_field_path(api, make_run):
    source = make_run("base", Experiment.Status.SUCCEEDED)

    response = api.post(f"runs/{source.pk}/studies/", {"name": "bad", "spec": {
        "space": {"optim.lr": {"type": "float", "low": 1, "high": 0.1}},
        "algorithm": "astrology", "n_trials": -1}})
    rebased = api.post(f"runs/{source.pk}/studies/", {"name": "x", "spec": {
        "space": SPACE, "base": IRIS}})

    errors = response.json()["errors"]
    assert response.status_code == 400
    assert {"spec.algorithm", "spec.n_trials"} <= set(errors)
    assert any(path.startswith("spec.space.optim.lr") for path in errors)
    assert rebased.status_code == 400 and set(rebased.json()["errors"]) == {"spec.base"}
    assert Experiment.objects.count() == 1


def test_a_study_searching_a_field_its_run_does_not_use_is_refused_on_it(api, make_run):
    # given a finished MLP run
    source = make_run("base", Experiment.Status.SUCCEEDED)

    # when a study of it searches a CNN's width beside the learning rate
    response = api.post(f"runs/{source.pk}/studies/", {"name": "x", "spec": {"space": {
        **SPACE, "model.width": {"type": "int", "low": 8, "high": 64}}}})

    # then it is refused on that dimension alone
    assert response.status_code == 400
    assert response.json()["errors"] == {"spec.space.model.width": (
        "this run does not use it: it applies when model.arch is cnn or resnet, and here it "
        "is mlp")}


def test_a_study_of_a_study_is_refused(api, make_run):
    study = make_run("s", kind=Experiment.Kind.TUNE)

    response = api.post(f"runs/{study.pk}/studies/", {"name": "x", "spec": {"space": SPACE}})

    assert response.status_code == 400 and set(response.json()["errors"]) == {"run"}


def test_a_study_of_a_compression_job_is_refused_naming_its_source(api, finished, make_run):
    # given a finished quantization job of a run
    job = make_run("int8", Experiment.Status.SUCCEEDED, kind=Experiment.Kind.COMPRESS,
                   parent=finished)

    # when a study of it is asked for (its trials would train the float model from scratch)
    response = api.post(f"runs/{job.pk}/studies/", {"name": "x", "spec": {"space": SPACE}})

    # then it is refused on the run, pointing at the source, and nothing is queued
    assert response.status_code == 400
    assert f"tune run #{finished.pk}" in response.json()["errors"]["run"]
    assert not Experiment.objects.filter(kind=Experiment.Kind.TUNE).exists()


def test_a_study_of_a_fine_tuned_run_is_refused_on_a_shape_its_source_cannot_fill(
        api, finished, make_run):
    # given a run that started from the finished one's weights
    spec = ExperimentSpec.from_dict(IRIS).patched({"model": {"init_from": finished.pk}})
    tuned = make_run("tuned", Experiment.Status.SUCCEEDED, spec=spec.to_dict())

    # when a study of it searches hidden sizes no layer of the source fits
    response = api.post(f"runs/{tuned.pk}/studies/", {"name": "x", "spec": {"space": {
        "model.hidden_sizes": {"type": "categorical", "choices": ["64, 64"]}}}})

    # then it is refused on that dimension (its every trial would have failed), nothing queued
    assert response.status_code == 400
    message = response.json()["errors"]["spec.space.model.hidden_sizes"]
    assert f"run #{finished.pk}: none of its layers fits this model" in message
    assert not Experiment.objects.filter(kind=Experiment.Kind.TUNE).exists()


def test_a_remedy_of_a_compression_job_is_not_applied(api, finished, make_run):
    # given a distillation job whose verdict proposes more dropout
    remedy = {"key": "dropout", "title": "Add dropout 0.3", "why": "",
              "patch": {"model": {"dropout": 0.3}}}
    job = make_run("student", Experiment.Status.SUCCEEDED, kind=Experiment.Kind.COMPRESS,
                   parent=finished, verdict={"kind": "overfitting", "remedies": [remedy]})

    # when it is applied (the student would train from scratch, without its teacher)
    response = api.post(f"runs/{job.pk}/remedies/dropout/", {})

    # then it is refused naming the run to apply it to, and nothing is queued
    assert response.status_code == 400
    assert f"apply it to run #{finished.pk}" in response.json()["errors"]["run"]
    assert not Experiment.objects.filter(parent=job).exists()


def test_a_compression_job_of_a_finished_run_is_queued_as_its_child(api, owner, finished):
    response = api.post(f"runs/{finished.pk}/compressions/", {
        "name": "pruned", "spec": {"method": "prune_weights", "sparsity": 0.7,
                                   "finetune_epochs": 1}})

    assert response.status_code == 201, response.json()
    job = Experiment.objects.get(pk=response.json()["id"])
    assert job.kind == "compress" and job.parent == finished and job.created_by == owner
    assert job.spec["compression"]["sparsity"] == 0.7


def test_bad_compression_fields_and_an_unfinished_source_are_400s(api, make_run, finished):
    running = make_run("running", Experiment.Status.RUNNING)

    bad = api.post(f"runs/{finished.pk}/compressions/", {
        "name": "x", "spec": {"method": "prune_weights", "sparsity": 1.5, "steps": 0}})
    unfinished = api.post(f"runs/{running.pk}/compressions/", {
        "name": "x", "spec": {"method": "prune_weights"}})

    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"spec.sparsity", "spec.steps"}
    assert unfinished.status_code == 400
    assert "not succeeded" in unfinished.json()["errors"]["spec.source"]
    assert not Experiment.objects.filter(kind="compress").exists()


def test_a_study_and_a_compression_count_against_the_quota(api, finished, settings):
    settings.FITBOARD_MAX_ACTIVE_JOBS_PER_USER = 1
    Experiment.objects.create(project=finished.project, name="waiting", spec=finished.spec,
                              created_by=finished.created_by)

    study = api.post(f"runs/{finished.pk}/studies/", {"name": "s", "spec": {"space": SPACE}})
    job = api.post(f"runs/{finished.pk}/compressions/", {"name": "c", "spec": {}})

    assert study.status_code == 409 and job.status_code == 409
    assert Experiment.objects.count() == 2
