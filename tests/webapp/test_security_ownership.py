"""A job derived from a run (a study, a remedy, a compression, a clone, a promoted trial) goes to
one project, and everything it refers to (the source run, the uploaded dataset its spec trains
on) must belong to that project and be visible to the user: otherwise project B's members would
see project A's spec and data. Each refusal sits on a form field (or the form) and stores
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.datasets.models import Dataset
from webapp.experiments import actions
from webapp.experiments.models import Experiment
from webapp.projects.models import Project

from ..hostile import table_csv

REMEDY = {"key": "lower-lr", "title": "Lower the learning rate",
          "patch": {"optim": {"lr": 0.0001}}}


def upload(client: Any, project: Project, name: str) -> Dataset:
    response = client.post(reverse("dataset-new"), {
        "name": name, "project": project.pk, "kind": "csv", "missing": "drop",
        "task": "classification", "image_size": "16",
        "file": SimpleUploadedFile("d.csv", table_csv(40))})
    assert response.status_code == 302
    return Dataset.objects.get(name=name)


def spec_on(dataset: str) -> dict[str, Any]:
    return ExperimentSpec().patched({
        "data": {"dataset": dataset}, "model": {"arch": "mlp", "hidden_sizes": [8]},
        "run": {"epochs": 1, "batch_size": 16, "device": "cpu"}}).to_dict()


@pytest.fixture
def other(owner: User) -> Project:
    """Project A: the owner is a member of it too, so its objects are visible to them."""
    zoo = Project.objects.create(name="zoo")
    zoo.members.add(owner)
    return zoo


@pytest.fixture
def zoo_data(owner_client: Any, other: Project) -> Dataset:
    return upload(owner_client, other, "zoo-data")


@pytest.fixture
def secret_data(db: Any) -> Dataset:
    """An upload of a project the owner is not a member of."""
    victim = User.objects.create_user("victim", password="victim-pass-123")
    hidden = Project.objects.create(name="hidden-okapi")
    hidden.members.add(victim)
    client = Client()
    client.force_login(victim)
    return upload(client, hidden, "okapi-data")


@pytest.fixture
def borrowing_run(make_experiment: Any, zoo_data: Dataset) -> Experiment:
    """A finished run of project B whose spec trains on project A's upload (made before the
    forms refused that, or through an edit)."""
    return make_experiment(name="borrower", status=Experiment.Status.SUCCEEDED,
                           spec=spec_on(zoo_data.spec_name),
                           verdict={"kind": "overfitting", "remedies": [REMEDY]})


def tune_form(project: Project) -> dict[str, Any]:
    return {"name": "study", "project": project.pk, "algorithm": "random",
            "objective": "val_acc", "n_trials": 2, "timeout": 0, "parallelism": 1,
            "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1,
            "lr_log": "on"}


def studies() -> int:
    return Experiment.objects.filter(kind=Experiment.Kind.TUNE).count()


def test_a_study_in_b_from_a_run_on_as_upload_is_refused_on_the_project_field(
        owner_client, project, borrowing_run, zoo_data):
    response = owner_client.post(reverse("study-new", args=[borrowing_run.pk]),
                                 tune_form(project))

    assert response.status_code == 200
    assert "zoo-data belongs to project zoo" in " ".join(response.context["form"].errors["project"])
    assert studies() == 0


def test_a_study_in_b_from_a_run_of_a_is_refused_on_the_project_field(
        owner_client, project, other, make_experiment):
    source = make_experiment(name="zoo-run", status=Experiment.Status.SUCCEEDED,
                             spec=spec_on("iris"))
    source.project = other
    source.save(update_fields=["project"])

    response = owner_client.post(reverse("study-new", args=[source.pk]), tune_form(project))

    assert "source run belongs to project zoo" in " ".join(
        response.context["form"].errors["project"])
    assert studies() == 0


def test_a_study_in_the_runs_own_project_on_its_own_data_is_created(
        owner_client, project, make_experiment):
    source = make_experiment(status=Experiment.Status.SUCCEEDED, spec=spec_on("iris"))

    response = owner_client.post(reverse("study-new", args=[source.pk]), tune_form(project))

    assert response.status_code == 302 and studies() == 1


def test_a_remedy_of_a_run_on_another_projects_upload_is_refused(owner_client, borrowing_run):
    runs = Experiment.objects.count()

    response = owner_client.post(reverse("remedy-apply", args=[borrowing_run.pk, "lower-lr"]),
                                 {"name": "fixed"})

    assert response.status_code == 200
    assert "zoo-data belongs to project zoo" in response.content.decode()
    assert Experiment.objects.count() == runs


def test_a_refusal_names_no_dataset_of_a_project_the_user_is_not_in(
        owner_client, make_experiment, secret_data):
    run = make_experiment(status=Experiment.Status.SUCCEEDED, spec=spec_on(secret_data.spec_name),
                          verdict={"kind": "overfitting", "remedies": [REMEDY]})

    response = owner_client.post(reverse("remedy-apply", args=[run.pk, "lower-lr"]),
                                 {"name": "fixed"})

    page = response.content.decode()
    assert "not a dataset of your projects" in page
    assert "okapi" not in page and Experiment.objects.count() == 1


def test_compressing_a_run_on_another_projects_upload_is_refused(owner_client, borrowing_run):
    from webapp.experiments.compression_forms import compression_initial

    data = {k: v for k, v in compression_initial(borrowing_run).items()
            if v is not False and v is not None}

    response = owner_client.post(reverse("compress-new", args=[borrowing_run.pk]), data)

    assert response.status_code == 200
    assert "zoo-data belongs to project zoo" in " ".join(
        response.context["form"].non_field_errors())
    assert not Experiment.objects.filter(kind=Experiment.Kind.COMPRESS).exists()


def test_a_clone_into_b_of_a_run_on_as_upload_is_refused_on_the_dataset_field(
        owner_client, project, borrowing_run, zoo_data):
    page = owner_client.get(reverse("experiment-new"), {"from": borrowing_run.pk})
    data = {k: v for k, v in page.context["form"].initial.items() if v is not None}
    data.update(project=project.pk, dataset=zoo_data.spec_name, name="clone")
    data = {k: (v.pk if isinstance(v, Project) else v) for k, v in data.items()
            if v is not False}
    runs = Experiment.objects.count()

    response = owner_client.post(reverse("experiment-new"), data)

    assert "zoo-data belongs to project zoo" in " ".join(response.context["form"].errors["dataset"])
    assert Experiment.objects.count() == runs


def test_a_study_on_another_projects_upload_cannot_promote(owner_client, owner, project,
                                                           borrowing_run):
    spec = TuningSpec.from_dict({
        "base": borrowing_run.spec, "algorithm": "random", "n_trials": 1, "parallelism": 1,
        "space": {"optim.lr": {"type": "float", "low": 1e-2, "high": 1e-1, "log": True}}})
    study = actions.create_study(owner, project, "old study", spec, borrowing_run)
    runs = Experiment.objects.count()

    response = owner_client.post(reverse("study-promote", args=[study.pk]), follow=True)

    assert "Cannot promote: zoo-data belongs to project zoo" in response.content.decode()
    assert Experiment.objects.count() == runs


@pytest.mark.parametrize("route", ["run-repeat", "remedy-verify"])
def test_repeating_a_run_on_an_upload_the_user_cannot_see_queues_nothing(
        owner_client, make_experiment, secret_data, route):
    # given a run of the owner's project whose spec trains on another project's upload
    run = make_experiment(status=Experiment.Status.SUCCEEDED, spec=spec_on(secret_data.spec_name),
                          verdict={"kind": "overfitting", "remedies": [REMEDY]})
    args = [run.pk] if route == "run-repeat" else [run.pk, REMEDY["key"]]

    # when the owner repeats it (or verifies its remedy) over seeds from its pages
    response = owner_client.post(reverse(route, args=args), {"count": 2})

    # then it is refused as the API refuses it, naming nothing of the hidden project
    assert response.status_code == 400
    assert "not a dataset of your projects" in response.content.decode()
    assert "okapi" not in response.content.decode()
    assert Experiment.objects.count() == 1
