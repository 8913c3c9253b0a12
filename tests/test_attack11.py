"""Round eleven of attacks, as a plain member with API tokens of their own (one read-only, one
that writes to one project) on a shared install.

What one search of runs cost every member who sent one: a LIKE or ILIKE clause was matched
by a regex tried at every place of each value in turn, with IGNORECASE reading the pattern at
each (time the pattern's length times the value's), and a script could log dataset inputs of
any name up to 64 kB: one run of 16 inputs named in 60,000 characters made a search of its
project with one ILIKE clause of 10,000 characters take 12.8 s of a web worker, any teammate's
script could send it again and again, and a hundred such runs made it 20 minutes.

What one search of runs held: every run it read, whole, and a page of up to 1,000 of them
(50,000 when asked). A run holds up to 3 MB of text (params and tags, dataset inputs, model
outputs), within its creator's quota, and a member's script makes a thousand runs an hour: a
search of ten runs of 2 MB held 59 MB, so every teammate's search of the project held 6 GB.
A search of logged models read every model of its projects whole, as many as the quota holds,
and a search of experiments every project of its user's whole (20 MB of tags each, and any
user may make projects and add anyone to them).

Whose runs a member's project took: any user may make a project, and a maintainer added any
user by name without asking them. A project named ahead of what another user's scripts will
ask for (``mlflow.set_experiment("alice-mnist")``, the native client's ``init``, which make
the project when none is found) with that user added took their runs silently, and its
maintainer read them, params and artifacts included. A user added is now invited, and a
member once they accept.

What a script stored outside its quota: the tags ``create_experiment(name, tags=...)`` gave a
new project, set by no one and counted nowhere (2 MB a project, 100 projects an hour); and the
tags a member put on a run and took off again, rows kept for good (20 a request)."""

from __future__ import annotations

import json
import secrets
import tracemalloc
from typing import Any

import pytest
from django.test import Client

from webapp.experiments.actions import annotate_experiment
from webapp.experiments.models import Experiment, Tag
from webapp.projects import storage
from webapp.projects.actions import add_member, answer_invitation, create_project
from webapp.projects.models import Project
from webapp.tracking import ingest, mlflow_views, tokens
from webapp.tracking.models import ExperimentTag
from webapp.tracking.search import MAX_WILDCARD_PIECES, like

from .webapp.conftest import _forget_uploads, mallory, owner, project  # noqa: F401

M = "/api/2.0/mlflow/"


def send(token: str, path: str, body: Any) -> Any:
    return Client().post(path, json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def scripts_run(mallory: Any, project: Any) -> tuple[str, str]:  # noqa: F811
    """A run mallory's script created, and her write token: (run id, token)."""
    token = tokens.create_token(mallory, "laptop", "write", [project])[1]
    created = send(token, M + "runs/create", {"experiment_id": str(project.pk)})
    return created.json()["run"]["info"]["run_id"], token


@pytest.mark.parametrize(("dataset", "tags", "words"), [
    ({"name": "n" * 501, "digest": "d"}, [], "'name' exceeds the maximum length of 500"),
    ({"name": "mnist", "digest": "d" * 37}, [], "'digest' exceeds the maximum length of 36"),
    ({"name": "mnist", "digest": "d"}, [{"key": "mlflow.data.context", "value": "v" * 501}],
     "its value 500"),
    ({"name": "mnist", "digest": "d"}, [{"key": "k" * 256, "value": "train"}],
     "its key is at most 255")])
def test_a_dataset_input_past_mlflows_limits_is_refused(scripts_run, dataset, tags, words):
    run_id, token = scripts_run

    # when her script logs a dataset input of a name, digest or tag longer than MLflow's server
    # takes (its name was read by every LIKE of every search of the project)
    response = send(token, M + "runs/log-inputs", {"run_id": run_id, "datasets": [
        {"dataset": dataset, "tags": tags}]})

    # then it is refused as MLflow's server refuses it, and the run holds no input
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert words in response.json()["message"]
    assert Experiment.objects.get(pk=run_id).spec.get("inputs", []) == []


def test_a_dataset_input_at_mlflows_limits_is_logged(scripts_run):
    run_id, token = scripts_run
    dataset = {"name": "n" * 500, "digest": "d" * 36, "source": "s" * 20_000}

    response = send(token, M + "runs/log-inputs", {"run_id": run_id, "datasets": [
        {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "v" * 500}]}]})

    assert response.status_code == 200
    assert Experiment.objects.get(pk=run_id).spec["inputs"][0]["dataset"]["name"] == "n" * 500


def test_a_filter_of_long_wildcard_pieces_is_refused(owner, project):  # noqa: F811
    # given a read-only token of a member
    token = tokens.create_token(owner, "reader", "read", None)[1]
    pattern = "%" + "a_" * (MAX_WILDCARD_PIECES // 2) + "b%"

    # when it searches with LIKE patterns whose pieces holding "_" pass the limit together
    response = send(token, M + "runs/search", {"experiment_ids": [str(project.pk)],
                                               "filter": f"tags.t ILIKE '{pattern}'"})

    # then the search is refused, saying the limit and what to write instead
    assert response.status_code == 400
    assert f"at most {MAX_WILDCARD_PIECES} characters" in response.json()["message"]
    # and patterns of names holding "_", or long ones without it, still search
    for ordinary in ("bert_base_%", "%_v2", "%" + "a" * 5000 + "%"):
        assert send(token, M + "runs/search", {"experiment_ids": [str(project.pk)],
                                               "filter": f"tags.t LIKE '{ordinary}'"}
                    ).status_code == 200


@pytest.mark.parametrize(("pattern", "text", "matched"), [
    ("%ABC%", "xxabcxx", True), ("%İ%", "i̇", True), ("a%B", "AxB", True),
    ("%a_c%", "xABCx", True), ("%ab%", "xAx", False)])
def test_ilike_compares_its_value_and_pattern_lowercased_as_mlflow(pattern, text, matched):
    assert like(pattern, text, 2) is matched  # re.IGNORECASE


def noise(chars: int) -> str:
    """Text no database compresses."""
    return secrets.token_urlsafe(chars)[:chars]


@pytest.fixture
def fat_runs(mallory: Any, project: Any) -> list[int]:  # noqa: F811
    """Eight runs of mallory's script, each holding 300 kB of params, newest first."""
    ids = []
    for n in range(8):
        run = ingest.create_run(mallory, project, f"fat {n}", {},
                                params={f"p{i}": noise(5800) for i in range(50)})
        ids.insert(0, run.pk)
    return ids


@pytest.mark.parametrize("query", [{}, {"filter": "params.p0 LIKE '%'",
                                        "order_by": ["attributes.run_name DESC"]}])
def test_a_page_of_runs_ends_past_a_size_and_the_next_pages_hold_the_rest(
        fat_runs, owner, project, monkeypatch, query):  # noqa: F811
    # given pages of at most 1 MB of JSON, read two runs at a time
    monkeypatch.setattr(mlflow_views, "MAX_PAGE_CHARS", 1_000_000)
    monkeypatch.setattr(mlflow_views, "READ_CHUNK", 2)
    token = tokens.create_token(owner, "reader", "read", None)[1]

    def page(page_token: str | None) -> dict[str, Any]:
        return send(token, M + "runs/search", {
            "experiment_ids": [str(project.pk)], **query,
            **({"page_token": page_token} if page_token else {})}).json()

    assert send(token, M + "runs/search", {"experiment_ids": [str(project.pk)],
                                           "max_results": 1}).status_code == 200

    # when a teammate's script searches the project, page after page as mlflow's client does
    tracemalloc.start()
    try:
        first = page(None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pages = [first]
    while "next_page_token" in pages[-1]:
        pages.append(page(pages[-1]["next_page_token"]))

    # then the first page ends once it holds 1 MB (the four runs of 1.2 MB), without holding
    # every run read, and the pages hold every run once, in the search's order
    assert len(first["runs"]) == 4 and first["next_page_token"] == "4"
    assert peak < 6_000_000  # every run, with its JSON, was held at once (8 MB and more)
    assert [int(run["info"]["run_id"]) for p in pages for run in p["runs"]] == fat_runs


def test_a_page_of_logged_models_ends_past_a_size_too(mallory, owner, project,  # noqa: F811
                                                      monkeypatch):
    # given eight logged models of mallory's script, each of 300 kB of params, and pages of at
    # most 1 MB of JSON
    token = tokens.create_token(mallory, "laptop", "write", [project])[1]
    made = [send(token, M + "logged-models", {
        "experiment_id": str(project.pk), "name": f"net {n}",
        "params": [{"key": f"p{i}", "value": noise(5800)} for i in range(50)]}
    ).json()["model"]["info"]["model_id"] for n in range(8)]
    monkeypatch.setattr(mlflow_views, "MAX_PAGE_CHARS", 1_000_000)
    reader = tokens.create_token(owner, "reader", "read", None)[1]

    # when a teammate's script searches them, page after page
    pages = [send(reader, M + "logged-models/search", {"experiment_ids": [str(project.pk)]}
                  ).json()]
    while "next_page_token" in pages[-1]:
        pages.append(send(reader, M + "logged-models/search", {
            "experiment_ids": [str(project.pk)],
            "page_token": pages[-1]["next_page_token"]}).json())

    # then a page ends once it holds 1 MB, and the pages hold each model once, newest first
    assert [len(page["models"]) for page in pages] == [4, 4]
    assert [m["info"]["model_id"] for page in pages for m in page["models"]] == made[::-1]


def test_a_page_of_experiments_ends_past_a_size_too(mallory, owner, monkeypatch):  # noqa: F811
    # given four projects mallory made, each with 300 kB of experiment tags, the owner a
    # member of each (invited, and accepted); and pages of at most 500 kB of JSON
    made = []
    for n in range(4):
        mine = create_project(mallory, f"mallory-{n}")
        ExperimentTag.objects.bulk_create(ExperimentTag(project=mine, key=f"t{i}",
                                                        value=noise(10_000), set_by=mallory)
                                          for i in range(30))
        add_member(mallory, mine, owner)
        answer_invitation(owner, mine.pk, accept=True)
        made.insert(0, str(mine.pk))
    monkeypatch.setattr(mlflow_views, "MAX_PAGE_CHARS", 500_000)
    reader = tokens.create_token(owner, "reader", "read", None)[1]

    # when the owner's script searches its experiments, page after page
    pages = [send(reader, M + "experiments/search", {"filter": "name LIKE 'mallory-%'"}).json()]
    while "next_page_token" in pages[-1]:
        pages.append(send(reader, M + "experiments/search", {
            "filter": "name LIKE 'mallory-%'", "page_token": pages[-1]["next_page_token"]}
        ).json())

    # then a page ends once it holds 500 kB, and the pages hold each project once, newest first
    assert [len(page["experiments"]) for page in pages] == [2, 2]
    assert [e["experiment_id"] for page in pages for e in page["experiments"]] == made


def test_a_project_named_ahead_of_a_users_scripts_does_not_take_their_runs(mallory, owner):  # noqa: F811
    # given a project mallory made under the name the owner's scripts will use, and the
    # owner added to it on its page
    trap = create_project(mallory, "owner-experiments")
    page = Client()
    page.force_login(mallory)
    assert page.post(f"/projects/{trap.pk}/", {"username": "owner"}).status_code == 302
    token = tokens.create_token(owner, "laptop", "write", None)[1]

    # when the owner's script starts a run in a project of that name, by the native client and
    # by mlflow's (which finds the experiment by name first)
    native = send(token, "/api/fitboard/v1/runs/create", {"project": "owner-experiments",
                                                           "params": {"secret": "s3cr3t"}})
    by_name = Client().get(M + "experiments/get-by-name",
                           {"experiment_name": "owner-experiments"},
                           HTTP_AUTHORIZATION=f"Bearer {token}")

    # then neither reaches mallory's project (the run was created in it, and she read its
    # params): the script is told it is another team's, and nothing is stored
    assert native.status_code == 403 and "another team's project" in native.json()["message"]
    assert by_name.status_code == 404
    assert not Experiment.objects.exists()
    # and the owner, who is invited, joins it only by accepting
    assert not owner.projects.filter(pk=trap.pk).exists()
    answer_invitation(owner, trap.pk, accept=True)
    assert owner.projects.filter(pk=trap.pk).exists()


def test_an_experiments_tags_given_at_its_creation_count_towards_the_quota(mallory, settings):  # noqa: F811
    # given room in mallory's quota for one tag of 4,000 characters and not two
    settings.FITBOARD_STORAGE_QUOTA_BYTES = storage.stored_bytes(mallory) + 6000
    token = tokens.create_token(mallory, "laptop", "write", None)[1]

    def create(name: str, count: int) -> Any:
        return send(token, M + "experiments/create", {"name": name, "tags": [
            {"key": f"notes {i}", "value": noise(4000)} for i in range(count)]})

    # when her script creates an experiment with two such tags, then one with one
    refused, created = create("mine-2", 2), create("mine-1", 1)

    # then the first is refused in MLflow's format, saying the quota, and not made (its tags
    # were set by no one and counted nowhere: 2 MB a project, 100 projects an hour)
    assert refused.status_code == 400 and "storage quota" in refused.json()["message"]
    assert not Project.objects.filter(name="mine-2").exists()
    # and the second's tag is hers, counted
    assert created.status_code == 200
    assert list(ExperimentTag.objects.values_list("set_by__username", flat=True)) == ["mallory"]
    assert storage.stored_bytes(mallory) > settings.FITBOARD_STORAGE_QUOTA_BYTES - 2000


def test_a_tag_no_run_holds_any_more_is_deleted(mallory, owner, project):  # noqa: F811
    # given a run of mallory's and one of the owner's, both tagged "baseline"
    mine = ingest.create_run(mallory, project, "mine", {})
    theirs = ingest.create_run(owner, project, "theirs", {})
    token = tokens.create_token(mallory, "laptop", "write", [project])[1]
    page = Client()
    page.force_login(owner)
    assert page.post(f"/experiments/{theirs.pk}/annotate/",
                     {"tags": "baseline", "notes": ""}).status_code == 302

    # when her script re-tags her run again and again, with new tags each time
    for n in range(3):
        assert Client().post(f"/api/v1/runs/{mine.pk}/annotations/", {
            "tags": ["baseline", *(f"loop-{n}-{i}" for i in range(19))], "notes": ""},
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        ).status_code == 200

    # then only the tags some run holds are kept (each request left 19 more rows for good)
    assert set(Tag.objects.values_list("name", flat=True)) == {
        "baseline", *(f"loop-2-{i}" for i in range(19))}
    assert list(theirs.tags.values_list("name", flat=True)) == ["baseline"]


def test_a_deleted_runs_tags_no_other_run_holds_go_with_it(mallory, owner, project):  # noqa: F811
    # given two runs of mallory's script, both tagged "baseline", one also "scratch"
    runs = [ingest.create_run(mallory, project, name, {}) for name in ("kept", "gone")]
    annotate_experiment(runs[0], ["baseline"], "")
    annotate_experiment(runs[1], ["baseline", "scratch"], "")
    ingest.end_run(runs[1], Experiment.Status.SUCCEEDED)
    token = tokens.create_token(mallory, "laptop", "write", [project])[1]

    # when her script deletes the second
    deleted = Client().delete(f"/api/v1/runs/{runs[1].pk}/",
                              HTTP_AUTHORIZATION=f"Bearer {token}")

    # then its tag no other run holds goes with it, and the one the first holds stays
    assert deleted.status_code == 204
    assert list(Tag.objects.values_list("name", flat=True)) == ["baseline"]
    assert list(runs[0].tags.values_list("name", flat=True)) == ["baseline"]
