"""Round seven of attacks, as a member of one project and an outsider to another: the routes
that queue jobs from a study or a run must refuse the same specs on the pages as on the API,
and the newer REST routes (groups, label scans) must not reach another project's rows."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.urls import reverse
from PIL import Image

from training.spec import ExperimentSpec
from training.tuning import TuningSpec
from webapp.datasets.models import Dataset, LabelScan
from webapp.experiments import actions, serving
from webapp.experiments.models import Experiment, RunGroup

from .webapp.conftest import make_experiment, mallory, owner, owner_client, project  # noqa: F401
from .webapp.test_security_ownership import secret_data, spec_on  # noqa: F401


def study_on(user: Any, home: Any, make_run: Any, dataset: str) -> Experiment:
    """A study of ``project`` whose base spec trains on ``dataset`` (made before the study
    form checked its data set), with one completed trial."""
    base = ExperimentSpec.from_dict(spec_on(dataset))
    tuning = TuningSpec.from_dict({"base": base.to_dict(), "algorithm": "random",
                                   "n_trials": 1, "parallelism": 1, "space": {
                                       "optim.lr": {"type": "float", "low": 1e-3,
                                                    "high": 1e-1, "log": True}}})
    study = actions.create_study(user, home, "old study", tuning)
    make_run(status=Experiment.Status.SUCCEEDED, kind=Experiment.Kind.TRIAL,
                    parent=study, name="trial 0", spec=base.to_dict(),
                    summary={"trial": {"number": 0, "state": "complete", "value": 0.9},
                             "best_metrics": {"val_acc": 0.9}})
    return study


def test_checking_a_studys_trials_on_a_hidden_upload_queues_nothing_from_the_page(
        owner_client, owner, project, make_experiment, secret_data):  # noqa: F811
    # given a study of the owner's project whose trials train on an upload of a project the
    # owner is not in (the API's checks already refuse it; "Promote" on the page too)
    study = study_on(owner, project, make_experiment, secret_data.spec_name)
    runs = Experiment.objects.count()

    # when the owner presses "Check the best trials" on the study page
    response = owner_client.post(reverse("study-check", args=[study.pk]),
                                 {"top": 1, "count": 2}, follow=True)

    # then nothing is queued and the page says why, naming nothing of the hidden project
    page = response.content.decode()
    assert "Cannot check the best trials" in page
    assert "not a dataset of your projects" in page
    assert "okapi" not in page
    assert not RunGroup.objects.exists()
    assert Experiment.objects.count() == runs


def test_the_api_refuses_the_same_check_and_promotion(
        owner_client, owner, project, make_experiment, secret_data):  # noqa: F811
    # given the same study
    study = study_on(owner, project, make_experiment, secret_data.spec_name)
    runs = Experiment.objects.count()

    # when its trials are checked or its best promoted through the REST API
    checks = owner_client.post(f"/api/v1/studies/{study.pk}/checks/", {"top": 1, "count": 2},
                               content_type="application/json")
    promote = owner_client.post(f"/api/v1/studies/{study.pk}/promote/", {},
                                content_type="application/json")

    # then both are 400 on ``study`` and nothing is stored
    for response in (checks, promote):
        assert response.status_code == 400
        assert "not a dataset of your projects" in response.json()["errors"]["study"]
    assert not RunGroup.objects.exists()
    assert Experiment.objects.count() == runs


def test_a_group_of_a_hidden_project_is_neither_read_nor_compared(
        owner_client, owner, project, secret_data):  # noqa: F811
    # given a group of the owner's project and one of a project the owner is not in
    mine = RunGroup.objects.create(project=project, name="mine", spec={}, seeds=[0, 1],
                                   created_by=owner)
    hidden = RunGroup.objects.create(project=secret_data.project, name="okapi group", spec={},
                                     seeds=[0, 1])

    # when the owner reads the hidden one, or compares it with theirs
    read = owner_client.get(f"/api/v1/groups/{hidden.pk}/")
    compared = owner_client.get("/api/v1/groups/compare/",
                                {"a": mine.pk, "b": hidden.pk, "metric": "val_acc"})
    page = owner_client.get(reverse("group-compare"), {"a": mine.pk, "b": hidden.pk})

    # then each is a 404 that names nothing of it
    for response in (read, compared, page):
        assert response.status_code == 404
        assert b"okapi" not in response.content


def test_a_scan_of_a_hidden_data_set_is_not_read_through_a_visible_data_sets_url(
        owner_client, owner, project, secret_data):  # noqa: F811
    # given a data set of the owner's project and a scan of a hidden project's data set
    mine = Dataset.objects.create(project=project, name="mine", kind="csv", created_by=owner)
    scan = LabelScan.objects.create(dataset=secret_data, version=1, folds=2,
                                    status=LabelScan.Status.DONE,
                                    result={"label_names": ["okapi"], "rows": [
                                        {"row": 0, "position": 0}]})

    # when the owner reads that scan, or its previews, under their own data set's id
    base = f"/api/v1/datasets/{mine.pk}/label-scans/{scan.pk}/"
    responses = [owner_client.get(base), owner_client.get(base + "previews/", {"rows": "0"}),
                 owner_client.get(f"/api/v1/datasets/{secret_data.pk}/diff/")]

    # then each is a 404 that names nothing of it
    for response in responses:
        assert response.status_code == 404
        assert b"okapi" not in response.content


def image_bytes(image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 200).save(buffer, image_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["SGI", "PCX", "TIFF", "PPM"])
def test_try_it_reads_no_image_format_a_data_set_could_not_hold(image_format):
    # given an image in a format Pillow parses but no uploaded data set may hold
    hostile = image_bytes(image_format)

    # when it is sent to a model's "Try it" (the page's and the API's prediction)
    with pytest.raises(serving.TryError, match="not an image Pillow can read"):
        serving.image_inputs(hostile, (1, 8, 8), False)

    # then it is refused before any of that format's parser decodes it; a data set's formats
    # still read
    for allowed in ("PNG", "JPEG", "GIF", "WEBP", "BMP"):
        assert serving.image_inputs(image_bytes(allowed), (1, 8, 8), False).shape == (1, 1, 8, 8)


def test_a_study_cannot_search_over_data_sets_to_reach_a_hidden_upload(
        owner_client, make_experiment, secret_data):  # noqa: F811
    # given a finished run of the owner's project on a built-in data set
    run = make_experiment(status=Experiment.Status.SUCCEEDED, spec=spec_on("digits"))
    runs = Experiment.objects.count()

    # when the owner tunes it with ``data.dataset`` as a dimension whose choices name an
    # upload of a project they are not in (only the base's data set is checked)
    response = owner_client.post(f"/api/v1/runs/{run.pk}/studies/", {"name": "s", "spec": {
        "algorithm": "random", "n_trials": 2, "parallelism": 1, "space": {
            "data.dataset": {"type": "categorical",
                             "choices": [secret_data.spec_name, "digits"]}}}},
        content_type="application/json")

    # then it is refused on that dimension and no study is stored
    assert response.status_code == 400
    assert "not a hyperparameter" in response.json()["errors"]["spec.space.data.dataset"]
    assert Experiment.objects.count() == runs
