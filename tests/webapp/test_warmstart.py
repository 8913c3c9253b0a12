"""Starting a run from another run's weights on the web: which runs the form accepts, the worker
handing the engine the source's checkpoint, the "Fine-tune" link and the slow run's remedy."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from django.conf import settings
from django.urls import reverse

from tests.checkpoints import store_checkpoint
from tests.webapp.test_diagnostics_pages import store_history
from tests.webapp.test_forms import form_data
from training import ExperimentSpec, MemoryReporter, run
from webapp.experiments import diagnosis, warmstart
from webapp.experiments.forms import ExperimentForm
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training
from webapp.experiments.tuning_forms import TuneForm
from webapp.projects.models import Project

IRIS = {"data": {"dataset": "iris"}, "model": {"arch": "mlp", "hidden_sizes": [16, 16]},
        "run": {"epochs": 2, "batch_size": 32, "device": "cpu"}}


@pytest.fixture(scope="module")
def iris_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The best checkpoint of a two-epoch iris MLP, trained once for these tests."""
    folder = tmp_path_factory.mktemp("iris")
    torch.set_num_threads(1)
    run(ExperimentSpec.from_dict(IRIS), MemoryReporter(), folder)
    return (folder / "best.zip").read_bytes()


@pytest.fixture
def finished(make_experiment: Any, iris_archive: bytes) -> Any:
    """A succeeded iris MLP run (in the test's project unless told), with its checkpoint."""

    def make(checkpoint: bool = True, spec: dict[str, Any] | None = None,
             project: Project | None = None, **fields: Any) -> Experiment:
        experiment = make_experiment(status=Experiment.Status.SUCCEEDED, name="iris source",
                                     spec=spec or ExperimentSpec.from_dict(IRIS).to_dict(),
                                     **fields)
        if project is not None:  # (the fixture makes runs of the test's project)
            Experiment.objects.filter(pk=experiment.pk).update(project=project)
            experiment.refresh_from_db()
        if checkpoint:
            store_checkpoint(experiment, iris_archive)
        return experiment

    return make


def iris_form(project: Project, **fields: Any) -> dict[str, Any]:
    return form_data(project, **{"dataset": "iris", "arch": "mlp", "hidden_sizes": "16, 16",
                                 "epochs": "2", "batch_size": "32", **fields})


def test_the_form_starts_a_run_from_a_finished_run_of_its_project(owner, project, finished):
    source = finished()
    form = ExperimentForm(iris_form(project, init_from=source.pk, freeze_epochs="1"), user=owner)

    assert form.is_valid(), form.errors
    assert form.spec is not None
    assert (form.spec.model.init_from, form.spec.model.freeze_epochs) == (source.pk, 1)


def test_a_run_of_another_project_reads_like_a_run_that_does_not_exist(owner, project,
                                                                         finished):
    # Given a finished run in another project, one the user is a member of too
    other = Project.objects.create(name="audio")
    other.members.add(owner)
    elsewhere = finished(project=other)

    # When the form in project "vision" names it, and then a number no run has
    refused = ExperimentForm(iris_form(project, init_from=elsewhere.pk), user=owner)
    missing = ExperimentForm(iris_form(project, init_from=elsewhere.pk + 1000), user=owner)

    # Then both get the same words on the field, the numbers aside
    assert not refused.is_valid() and not missing.is_valid()
    assert refused.errors["init_from"] == [f"no run #{elsewhere.pk} in project vision"]
    assert missing.errors["init_from"] == [f"no run #{elsewhere.pk + 1000} in project vision"]


def test_a_run_of_a_project_the_user_is_not_in_is_not_told_either(owner, stranger, finished):
    theirs = Project.objects.create(name="secret")
    theirs.members.add(stranger)
    hidden = finished(project=theirs)
    mine = Project.objects.get(name="vision")

    form = ExperimentForm(iris_form(mine, init_from=hidden.pk), user=owner)

    assert form.errors["init_from"] == [f"no run #{hidden.pk} in project vision"]


def test_a_run_without_a_checkpoint_or_unfinished_is_refused(owner, project, finished,
                                                              make_experiment):
    bare = finished(checkpoint=False)
    running = make_experiment(status=Experiment.Status.RUNNING,
                              spec=ExperimentSpec.from_dict(IRIS).to_dict())

    no_file = ExperimentForm(iris_form(project, init_from=bare.pk), user=owner)
    unfinished = ExperimentForm(iris_form(project, init_from=running.pk), user=owner)

    assert no_file.errors["init_from"] == [f"run #{bare.pk} has no saved checkpoint"]
    assert "has running: only a succeeded run" in unfinished.errors["init_from"][0]


def test_a_compression_job_or_a_study_named_as_the_source_is_refused_saying_what_it_is(
        owner, project, finished, make_experiment):
    # given a finished run, a finished pruning job of it and a finished study of it
    source = finished()
    pruned = finished(kind=Experiment.Kind.COMPRESS, parent=source)
    study = make_experiment(status=Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TUNE,
                            parent=source)

    # when the form names each as the run to start from
    from_job = ExperimentForm(iris_form(project, init_from=pruned.pk), user=owner)
    from_study = ExperimentForm(iris_form(project, init_from=study.pk), user=owner)

    # then each says what it is (both read "no run #N in project vision")
    assert from_job.errors["init_from"] == [
        f"run #{pruned.pk} is a compression job: its network (pruned, int8 or a student) is "
        f"not the one its spec builds; start from a training run (its source, run "
        f"#{source.pk})"]
    assert from_study.errors["init_from"] == [
        f"run #{study.pk} is a tuning study, which has no weights of its own: start from one "
        "of its trials"]


def test_a_study_of_a_fine_tuned_run_refuses_searching_shapes_its_source_cannot_fill(
        owner, project, finished):
    # given a run fine-tuned from a finished iris MLP (16, 16)
    source = finished()
    tuned = finished(spec=ExperimentSpec.from_dict(
        {**IRIS, "model": {**IRIS["model"], "init_from": source.pk}}).to_dict())
    data = {"name": "study", "project": project.pk, "algorithm": "random",
            "objective": "val_acc", "n_trials": 4, "timeout": 0, "parallelism": 1,
            "pruner": "none", "seed": 0}

    # when its Tune form searches the hidden sizes over 16, 16 and 64, or the learning rate
    shapes = TuneForm({**data, "hidden_sizes_on": "on", "hidden_sizes_choices": "16, 16; 64"},
                      user=owner, base=tuned.experiment_spec, source=tuned)
    rates = TuneForm({**data, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1, "lr_log": "on"},
                     user=owner, base=tuned.experiment_spec, source=tuned)

    # then the 64-unit choice is refused on its row (each such trial failed: "none of its
    # layers fits this model"), and the learning rate is a study as before
    assert not shapes.is_valid()
    (message,) = shapes.errors["hidden_sizes_choices"]
    assert message.startswith(f"'64': run #{source.pk}: none of its layers fits this model")
    assert message.endswith(f"(each trial starts from run #{source.pk}'s weights)")
    assert rates.is_valid(), rates.errors


def test_a_run_of_another_network_shape_is_refused_on_the_field(owner, project, finished):
    source = finished()
    form = ExperimentForm(iris_form(project, init_from=source.pk, hidden_sizes="64, 64"),
                          user=owner)

    assert not form.is_valid()
    (message,) = form.errors["init_from"]
    assert message.startswith(f"run #{source.pk}: none of its layers fits this model")


@pytest.mark.django_db(transaction=True)
def test_the_worker_hands_the_engine_the_source_checkpoint(finished, make_experiment):
    # Given a queued run that starts from a finished one, its loaded layers frozen for an epoch
    source = finished()
    spec = ExperimentSpec.from_dict(IRIS).patched(
        {"model": {"init_from": source.pk, "freeze_epochs": 1}})
    child = make_experiment(spec=spec.to_dict())

    # When a worker trains it
    execute_training(child.pk, "test-worker")

    # Then it succeeded, and its checkpoint records the source run and file it started from
    child.refresh_from_db()
    assert child.status == Experiment.Status.SUCCEEDED, child.error
    stored = child.checkpoints.get(tag="best")
    with zipfile.ZipFile(io.BytesIO((Path(settings.MEDIA_ROOT) / stored.path).read_bytes())) as z:
        meta = json.loads(z.read("spec.json"))
    assert meta["spec"]["model"]["init_from"] == source.pk
    assert meta["warm_start"]["from_run"] == source.pk
    assert meta["warm_start"]["sha256"] == source.checkpoints.get(tag="best").sha256
    assert meta["warm_start"]["new"] == []


@pytest.mark.django_db(transaction=True)
def test_a_source_gone_before_the_run_starts_fails_it_with_the_reason(make_experiment):
    spec = ExperimentSpec.from_dict(IRIS).patched({"model": {"init_from": 424242}})
    child = make_experiment(spec=spec.to_dict())

    execute_training(child.pk, "test-worker")

    child.refresh_from_db()
    assert child.status == Experiment.Status.FAILED
    assert "run #424242 is no longer a finished run of project vision" in child.error


def test_a_finished_run_page_links_to_a_fine_tune_of_it(owner_client, finished):
    source = finished()

    page = owner_client.get(reverse("experiment-detail", args=[source.pk])).content.decode()
    assert f"?from={source.pk}&amp;init_from={source.pk}" in page

    form = owner_client.get(reverse("experiment-new"),
                            {"from": source.pk, "init_from": source.pk}).content.decode()
    assert f'name="init_from" value="{source.pk}"' in form


def test_a_slow_run_is_offered_to_start_from_a_compatible_finished_run(
        owner_client, finished, make_experiment):
    # Given a finished iris MLP run, and a second one of the same network still falling
    # steadily at its last epoch
    source = finished()
    slow = make_experiment(status=Experiment.Status.SUCCEEDED, name="slow",
                           spec=ExperimentSpec.from_dict(IRIS).to_dict())
    train = [1.08 - 0.025 * epoch for epoch in range(12)]
    store_history(slow, {"train_loss": train, "val_loss": [v + 0.01 for v in train],
                         "train_acc": [0.4 + 0.02 * e for e in range(12)],
                         "val_acc": [0.4 + 0.02 * e for e in range(12)]})

    # When its final verdict is made
    verdict = diagnosis.final_verdict(slow, nonfinite_loss=False)

    # Then it is "slow", and its first remedy starts from the finished run
    assert verdict["kind"] == "slow"
    remedy = verdict["remedies"][0]
    assert remedy["key"] == "warm_start"
    assert remedy["patch"] == {"model": {"init_from": source.pk}}

    # And applying it queues a run that starts from it
    slow.verdict, slow.verdict_kind = verdict, "slow"
    slow.save()
    response = owner_client.post(reverse("remedy-apply", args=[slow.pk, "warm_start"]),
                                 {"name": "from the source"})
    assert response.status_code == 302, response.content.decode()[:2000]
    child = Experiment.objects.get(name="from the source")
    assert child.experiment_spec.model.init_from == source.pk


def test_a_slow_run_without_a_compatible_run_gets_no_such_remedy(finished, make_experiment):
    finished(spec=ExperimentSpec.from_dict(IRIS).patched(
        {"model": {"hidden_sizes": [64, 64]}}).to_dict())
    slow = make_experiment(status=Experiment.Status.SUCCEEDED,
                           spec=ExperimentSpec.from_dict(IRIS).to_dict())

    assert diagnosis.warm_start_remedy(slow) == []


def test_a_slow_run_is_not_offered_a_run_of_other_data_that_fits_only_its_hidden_layers(
        finished, make_experiment):
    # Given a finished diabetes regression MLP (10 columns) and a slow breast-cancer MLP
    # (30 columns) of the same hidden sizes: every hidden layer would load, the input layer not
    shapes = {"model": {"arch": "mlp", "hidden_sizes": [16, 16]}}
    diabetes = ExperimentSpec.from_dict({**IRIS, **shapes, "data": {"dataset": "diabetes"},
                                         "optim": {"loss": "mse"}})
    cancer = ExperimentSpec.from_dict({**IRIS, **shapes, "data": {"dataset": "breast_cancer"}})
    source = finished(spec=diabetes.to_dict())
    slow = make_experiment(status=Experiment.Status.SUCCEEDED, spec=cancer.to_dict())
    assert warmstart.fit_problem(source, cancer) == ""

    # When the slow run's remedies are made, then none starts from the diabetes run
    assert diagnosis.warm_start_remedy(slow) == []

    # And a finished breast-cancer run of that network is offered
    same_data = finished(spec=cancer.to_dict())
    assert diagnosis.warm_start_remedy(slow)[0]["patch"] == {
        "model": {"init_from": same_data.pk}}
