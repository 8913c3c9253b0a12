"""What the pages do beyond launching and cancelling, through /api/v1/: remedies listed and
applied, tags and notes, checkpoint and artifact downloads, repeats and their groups, a
study's best trial promoted, runs compared, data sets uploaded and read. Each refuses bad input
with one message per field; who may reach what is swept in tests/tracking/test_tokens.py."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.checkpoints import store_checkpoint
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment, RunGroup
from webapp.tracking import artifacts, ingest

from ..hostile import table_csv

DROPOUT = {"key": "dropout", "title": "Add dropout 0.3", "why": "less memorising",
           "patch": {"model": {"dropout": 0.3}}}


@pytest.fixture
def overfit(make_run):
    """A succeeded run whose verdict offers a dropout remedy, with a best checkpoint."""
    run = make_run("wide", Experiment.Status.SUCCEEDED,
                   verdict={"kind": "overfitting", "remedies": [DROPOUT]})
    store_checkpoint(run, b"weights")
    return run


def test_a_runs_remedies_are_listed_with_what_they_change(api, overfit):
    response = api.get(f"runs/{overfit.pk}/remedies/")

    assert response.status_code == 200
    [remedy] = response.json()
    assert remedy["key"] == "dropout" and remedy["patch"] == DROPOUT["patch"]
    assert remedy["changes"] == [{"field": "model.dropout", "before": 0.0, "after": 0.3}]


def test_applying_a_remedy_queues_the_patched_child(api, overfit, owner):
    response = api.post(f"runs/{overfit.pk}/remedies/dropout/", {"name": "wide + dropout"})

    assert response.status_code == 201, response.json()
    child = Experiment.objects.get(pk=response.json()["id"])
    assert child.parent == overfit and child.remedy["key"] == "dropout"
    assert child.spec["model"]["dropout"] == 0.3 and child.created_by == owner
    assert child.status == Experiment.Status.QUEUED


def test_a_remedy_the_verdict_does_not_offer_is_404_and_a_bad_name_400(api, overfit):
    missing = api.post(f"runs/{overfit.pk}/remedies/astrology/", {})
    bad = api.post(f"runs/{overfit.pk}/remedies/dropout/", {"name": "x" * 201})

    assert missing.status_code == 404
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"name"}
    assert not Experiment.objects.filter(parent=overfit).exists()


def test_tags_and_notes_are_replaced_and_a_bad_tag_is_refused_on_its_field(api, overfit):
    saved = api.post(f"runs/{overfit.pk}/annotations/", {"tags": ["baseline", "wide"],
                                                         "notes": "too wide"})
    bad = api.post(f"runs/{overfit.pk}/annotations/", {"tags": "ok, no/slash"})

    assert saved.status_code == 200
    assert saved.json()["tags"] == ["baseline", "wide"] and saved.json()["notes"] == "too wide"
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"tags"}
    assert sorted(overfit.tags.values_list("name", flat=True)) == ["baseline", "wide"]


def test_a_checkpoint_downloads_and_an_altered_one_is_refused(api, overfit):
    response = api.get(f"runs/{overfit.pk}/checkpoints/best/")
    body = b"".join(response.streaming_content)
    (settings.MEDIA_ROOT / "runs" / str(overfit.pk) / "best.zip").write_bytes(b"tampered")
    altered = api.get(f"runs/{overfit.pk}/checkpoints/best/")

    assert response.status_code == 200 and body == b"weights"
    assert response["Content-Type"] == "application/zip"
    assert altered.status_code == 409
    assert api.get(f"runs/{overfit.pk}/checkpoints/last/").status_code == 404


def test_a_scripts_artifacts_are_listed_and_downloaded(api, owner, project, settings,
                                                        tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path}}}
    run = ingest.create_run(owner, project, "script", {})
    artifacts.save(run, "plots/loss.png", BytesIO(b"png bytes"))

    listed = api.get(f"runs/{run.pk}/artifacts/")
    download = api.get(f"runs/{run.pk}/artifacts/plots/loss.png")
    escape = api.get(f"runs/{run.pk}/artifacts/../../secret")

    assert listed.json() == [{"path": "plots/loss.png", "size": 9,
                              "url": f"/api/v1/runs/{run.pk}/artifacts/plots/loss.png"}]
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"png bytes"
    assert escape.status_code == 404


def test_a_repeat_makes_a_group_over_seeds_and_its_page_reads_it(api, overfit):
    response = api.post(f"runs/{overfit.pk}/repeats/", {"count": 3})
    too_many = api.post(f"runs/{overfit.pk}/repeats/", {"count": 99})

    assert response.status_code == 201, response.json()
    group = RunGroup.objects.get(pk=response.json()["id"])
    assert group.source == overfit and len(group.seeds) == 3
    read = api.get(f"groups/{group.pk}/").json()
    assert [run["seed"] for run in read["runs"]] == group.seeds
    assert overfit.pk in [run["id"] for run in read["runs"]]  # its own seed is reused
    assert too_many.status_code == 400 and set(too_many.json()["errors"]) == {"count"}


def test_a_study_without_a_finished_trial_cannot_be_promoted(api, make_run, overfit):
    study = make_run("sweep", Experiment.Status.RUNNING, kind=Experiment.Kind.TUNE,
                     spec={"base": overfit.spec, "space": {"optim.lr": {
                         "type": "float", "low": 0.001, "high": 0.1}}}, parent=overfit)

    response = api.post(f"studies/{study.pk}/promote/", {})
    not_a_study = api.post(f"studies/{overfit.pk}/promote/", {})

    assert response.status_code == 400 and "no trial" in response.json()["errors"]["study"]
    assert not_a_study.status_code == 404


def test_compare_lists_each_runs_record_and_the_fields_that_differ(api, make_run, overfit):
    other = make_run("narrow", spec={**overfit.spec, "optim": {**overfit.spec["optim"],
                                                               "lr": 0.5}})

    response = api.get("compare/", {"ids": f"{overfit.pk},{other.pk}"})
    one = api.get("compare/", {"ids": str(other.pk)})

    assert response.status_code == 200
    answer = response.json()
    assert [run["id"] for run in answer["runs"]] == [overfit.pk, other.pk]
    assert [row["field"] for row in answer["differences"]] == ["optim.lr"]
    assert one.status_code == 400 and set(one.json()["errors"]) == {"ids"}


def test_a_data_set_is_uploaded_listed_and_read_with_its_versions(api, project):
    form = {"name": "flowers", "project": project.pk, "kind": "csv", "task": "classification",
            "missing": "drop", "image_size": 16}
    response = api.client.post("/api/v1/datasets/", {**form, "file": SimpleUploadedFile(
        "data.csv", table_csv(20))}, HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    missing = api.client.post("/api/v1/datasets/", {**form, "task": "astrology"},
                              HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    assert response.status_code == 201, response.json()
    dataset = Dataset.objects.get()
    assert response.json()["spec_name"] == f"upload:{dataset.pk}"
    assert [d["id"] for d in api.get("datasets/").json()] == [dataset.pk]
    read = api.get(f"datasets/{dataset.pk}/").json()
    assert read["info"]["rows"] == 20 and read["versions"] == [] and read["latest_version"] == 1
    assert missing.status_code == 400 and {"task", "file"} <= set(missing.json()["errors"])
    assert json.dumps(missing.json()).count("astrology") <= 1


def test_an_uploaded_set_is_cleaned_as_the_page_starts_when_the_flags_are_left_out(api,
                                                                                    project):
    # given wine as a user saves it: its cultivar 1, 2, 3 in the middle, uploaded with curl's
    # fields and no cleaning flags (the page starts them ticked)
    import pandas as pd
    from sklearn.datasets import load_wine

    loaded = load_wine()
    frame = pd.DataFrame(loaded.data, columns=loaded.feature_names)
    frame.insert(6, "cultivar", loaded.target + 1)
    form = {"name": "wine", "project": project.pk, "kind": "csv", "task": "classification",
            "missing": "drop", "label_column": "cultivar"}

    response = api.client.post("/api/v1/datasets/", {**form, "file": SimpleUploadedFile(
        "wine.csv", frame.to_csv(index=False).encode())}, HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    off = api.client.post("/api/v1/datasets/", {**form, "standardise": "false", "file":
                          SimpleUploadedFile("wine.csv", frame.to_csv(index=False).encode())},
                          HTTP_AUTHORIZATION=f"Bearer {api.raw}")

    # then its features are standardised (proline is in the 1,000s, hue near 1), unless asked
    assert response.status_code == 201, response.json()
    first, second = Dataset.objects.order_by("pk")
    assert (first.options["standardise"], first.options["drop_duplicates"]) == (True, True)
    assert off.status_code == 201 and second.options["standardise"] is False
    assert list(response.json()["report"]["class_counts"]) == ["1", "2", "3"]


def test_a_remedy_is_verified_over_seeds_beside_the_original(api, overfit):
    response = api.post(f"runs/{overfit.pk}/remedies/dropout/verify/", {"count": 2})

    assert response.status_code == 201, response.json()
    remedy = RunGroup.objects.get(pk=response.json()["id"])
    assert remedy.remedy["key"] == "dropout" and remedy.baseline is not None
    assert response.json()["baseline"] == remedy.baseline.pk
    assert remedy.baseline.seeds == remedy.seeds


def test_two_groups_compare_with_no_verdict_before_two_seeds_each(api, overfit):
    group = RunGroup.objects.get(pk=api.post(f"runs/{overfit.pk}/repeats/",
                                             {"count": 2}).json()["id"])

    response = api.get("groups/compare/", {"a": group.pk, "b": group.pk, "metric": "val_acc"})
    bad = api.get("groups/compare/", {"a": group.pk, "b": group.pk, "metric": "astrology"})

    assert response.status_code == 200
    assert response.json()["comparison"] is None  # no seed has succeeded yet
    assert response.json()["a"]["id"] == group.pk and response.json()["problem"] is None
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"metric"}


def test_groups_on_different_data_sets_get_the_reason_instead_of_a_verdict(api, overfit):
    # given a group on the run's data set and a copy of it on another
    group = RunGroup.objects.get(pk=api.post(f"runs/{overfit.pk}/repeats/",
                                             {"count": 2}).json()["id"])
    other = RunGroup.objects.create(project=group.project, name="on wine", seeds=[0, 1],
                                    spec={**group.spec, "data": {**group.spec["data"],
                                                                 "dataset": "wine"}},
                                    created_by=group.created_by)

    response = api.get("groups/compare/", {"a": group.pk, "b": other.pk, "metric": "val_acc"})

    assert response.status_code == 200 and response.json()["comparison"] is None
    assert "measure different data" in response.json()["problem"]


def test_a_study_reads_as_its_page_draws_it(api, make_run, overfit):
    study = make_run("sweep", Experiment.Status.RUNNING, kind=Experiment.Kind.TUNE,
                     spec={"base": overfit.spec, "objective": "val_loss",
                           "direction": "minimize", "space": {
                               "optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}})
    make_run("trial 0", Experiment.Status.QUEUED, kind=Experiment.Kind.TRIAL, parent=study)

    response = api.get(f"studies/{study.pk}/")

    assert response.status_code == 200
    assert response.json()["params"] == ["optim.lr"]
    assert [trial["name"] for trial in response.json()["trials"]] == ["trial 0"]
    assert api.get(f"studies/{overfit.pk}/").status_code == 404


def test_a_spec_is_launched_over_seeds_as_a_group(api, project, settings):
    settings.FITBOARD_MAX_REPEATS = 4
    body = {"project": project.pk, "name": "iris ×3", "spec": {
        "data": {"dataset": "iris"}, "model": {"arch": "mlp"}, "run": {"device": "cpu"}}}

    response = api.post("groups/", {**body, "count": 3})
    too_many = api.post("groups/", {**body, "count": 5})
    bad_spec = api.post("groups/", {**body, "count": 2, "spec": {"optim": {"lr": -1}}})

    assert response.status_code == 201, response.json()
    group = RunGroup.objects.get(pk=response.json()["id"])
    assert group.name == "iris ×3" and len(group.seeds) == 3 and group.source is None
    assert sorted(run["seed"] for run in response.json()["runs"]) == group.seeds
    assert too_many.status_code == 400 and too_many.json()["errors"] == {
        "count": "at most 4 seeds (FITBOARD_MAX_REPEATS)"}
    assert bad_spec.status_code == 400 and list(bad_spec.json()["errors"]) == ["spec.optim.lr"]
    assert RunGroup.objects.count() == 1
