"""The run list: filters, search, sort, pages at a constant query count; tags and notes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from training.spec import ExperimentSpec
from webapp.experiments import actions, browse
from webapp.experiments.models import Experiment
from webapp.projects.models import Project

MLP_WINE = ExperimentSpec().patched({"data": {"dataset": "wine"}, "model": {"arch": "mlp"}})


def listed(client: Client, **query) -> list[str]:
    """Names of the runs the list shows for ``query``, in order."""
    response = client.get(reverse("experiment-list"), query)
    assert response.status_code == 200
    return [e.name for e in response.context["experiments"]]


@pytest.fixture
def assorted(make_experiment, owner) -> dict[str, Experiment]:
    runs = {
        "alpha": make_experiment(name="alpha", status=Experiment.Status.SUCCEEDED,
                                 best_metric_name="val_acc", best_metric_value=0.91,
                                 verdict_kind="healthy"),
        "beta": make_experiment(name="beta", status=Experiment.Status.FAILED,
                                spec=MLP_WINE.to_dict(), verdict_kind="diverging"),
        "gamma": make_experiment(name="Gamma ray", status=Experiment.Status.SUCCEEDED,
                                 best_metric_name="val_acc", best_metric_value=0.97,
                                 spec=MLP_WINE.to_dict(), verdict_kind="overfitting"),
    }
    other = Project.objects.create(name="nlp")
    other.members.add(owner)
    runs["delta"] = Experiment.objects.create(project=other, name="delta",
                                              spec=ExperimentSpec().to_dict())
    actions.annotate_experiment(runs["alpha"], ["baseline"], "")
    actions.annotate_experiment(runs["gamma"], ["baseline", "sweep"], "")
    return runs


@pytest.mark.parametrize("query, expected", [
    ({"status": "succeeded"}, {"alpha", "Gamma ray"}),
    ({"dataset": "wine"}, {"beta", "Gamma ray"}),
    ({"arch": "cnn"}, {"alpha", "delta"}),
    ({"verdict": "diverging"}, {"beta"}),
    ({"tag": "baseline"}, {"alpha", "Gamma ray"}),
    ({"kind": "train"}, {"alpha", "beta", "Gamma ray", "delta"}),
    ({"q": "gamma"}, {"Gamma ray"}),
    ({"dataset": "wine", "status": "failed"}, {"beta"}),
])
def test_each_filter_narrows_the_list(owner_client, assorted, query, expected):
    assert set(listed(owner_client, **query)) == expected


def test_the_project_filter_shows_only_that_projects_runs(owner_client, assorted):
    other = assorted["delta"].project

    assert listed(owner_client, project=other.pk) == ["delta"]


def test_a_project_the_user_is_not_in_is_a_filter_error_not_a_leak(owner_client, stranger,
                                                                    assorted):
    # given a project of someone else, with a run
    theirs = Project.objects.create(name="theirs")
    theirs.members.add(stranger)
    Experiment.objects.create(project=theirs, name="secret", spec=ExperimentSpec().to_dict())

    # when the owner filters on it
    response = owner_client.get(reverse("experiment-list"), {"project": theirs.pk})

    # then the field shows an error and no run of that project appears
    assert "secret" not in response.content.decode()
    assert "project" in response.context["filters"].errors


@pytest.mark.parametrize("sort, expected", [
    ("name", ["Gamma ray", "alpha", "beta", "delta"]),  # database order: capitals first
    ("best-high", ["Gamma ray", "alpha"]),
    ("best-low", ["alpha", "Gamma ray"]),
    ("oldest", ["alpha", "beta", "Gamma ray", "delta"]),
])
def test_the_list_sorts_by_name_best_metric_or_date(owner_client, assorted, sort, expected):
    names = listed(owner_client, sort=sort)

    assert names[: len(expected)] == expected


def test_the_list_is_paginated(owner_client, project):
    # given more runs than fit on a page
    Experiment.objects.bulk_create([
        Experiment(project=project, name=f"run {i:03d}",
                   spec=ExperimentSpec().to_dict()) for i in range(browse.PAGE_SIZE + 4)
    ])

    # when the second page is opened
    response = owner_client.get(reverse("experiment-list"), {"page": 2, "sort": "name"})

    # then it holds the rest
    assert len(response.context["experiments"]) == 4
    assert "page 2 of 2" in response.content.decode()


def test_the_list_costs_the_same_queries_for_3_and_60_runs(owner_client, make_experiment):
    # given runs with tags
    runs = [make_experiment(name=f"run {i}") for i in range(60)]
    for run in runs:
        actions.annotate_experiment(run, ["a", "b"], "")

    # when the list shows 3 runs, then a full page
    counts = []
    for query in ({"q": "run 1"}, {}):
        with CaptureQueriesContext(connection) as queries:
            names = listed(owner_client, **query)
        counts.append((len(names) > 3, len(queries)))

    # then the query count is the same
    assert counts[0][1] == counts[1][1]
    assert counts[1][0]


def test_tags_and_notes_are_saved_from_the_run_page(owner_client, make_experiment):
    run = make_experiment()

    owner_client.post(reverse("experiment-annotate", args=[run.pk]),
                      {"tags": " baseline, lr sweep ,baseline,", "notes": "try more epochs"})

    run.refresh_from_db()
    assert [t.name for t in run.tags.order_by("pk")] == ["baseline", "lr sweep"]
    assert run.notes == "try more epochs"
    page = owner_client.get(reverse("experiment-detail", args=[run.pk])).content.decode()
    assert "baseline, lr sweep" in page and "try more epochs" in page


def test_a_bad_tag_is_refused_with_the_reason(owner_client, make_experiment):
    run = make_experiment()

    response = owner_client.post(reverse("experiment-annotate", args=[run.pk]),
                                 {"tags": "ok, <script>", "notes": ""}, follow=True)

    assert run.tags.count() == 0
    assert "&#x27;&lt;script&gt;&#x27;: a tag is at most 40" in response.content.decode()


def test_a_stranger_cannot_tag_someone_elses_run(stranger_client, make_experiment):
    run = make_experiment()

    response = stranger_client.post(reverse("experiment-annotate", args=[run.pk]),
                                    {"tags": "mine", "notes": "hello"})

    assert response.status_code == 404
    assert run.tags.count() == 0


def test_runs_on_an_uploaded_dataset_are_found_by_its_name(owner_client, project,
                                                           make_experiment):
    # given an uploaded dataset of the project and a run on it
    from webapp.datasets.models import Dataset

    upload = Dataset.objects.create(project=project, name="churn table", kind="csv",
                                    folder="f", prepared="f/prepared.npz")
    spec = ExperimentSpec().to_dict()
    spec["data"]["dataset"] = upload.spec_name
    make_experiment(name="on upload", spec=spec)
    make_experiment(name="on digits")

    # when the list is filtered on it
    response = owner_client.get(reverse("experiment-list"), {"dataset": upload.spec_name})

    # then the menu names it and only its run is listed
    assert "churn table (uploaded)" in response.content.decode()
    assert [e.name for e in response.context["experiments"]] == ["on upload"]


@pytest.mark.parametrize("sort, expected", [("best-low", ["b", "c", "a"]),
                                            ("best-high", ["a", "c", "b"])])
def test_the_list_sorts_by_any_metric_with_runs_lacking_it_last(owner_client, make_experiment,
                                                                 sort, expected):
    # given runs whose summaries hold different metrics
    for name, loss in (("a", 0.9), ("b", 0.1), ("c", 0.5)):
        make_experiment(name=name, summary={"best_metrics": {"val_loss": loss}})
    make_experiment(name="no loss", summary={"best_metrics": {"val_acc": 0.9}})

    # when the list is sorted by the best validation loss
    names = listed(owner_client, sort=sort, metric="val_loss")

    # then the runs come in that order, the one without it last
    assert names == [*expected, "no loss"]


def test_the_experiments_folder_address_leads_to_the_list(owner_client):
    # given the address every run's page starts with, trimmed to its folder, with a filter
    response = owner_client.get("/experiments/?status=running")

    # then it leads to the run list, the filter kept
    assert response.status_code == 302
    assert response["Location"] == reverse("experiment-list") + "?status=running"
