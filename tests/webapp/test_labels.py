"""The suspicious-labels page and data set versions, through the web app: a scan runs on the
worker's side (the task's function), the page lists the flagged rows paged and by class pair
with a confusion matrix, relabelling or excluding makes a new version, and a run on version 1
still reproduces after version 2 exists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from training.checkpoints import load
from training.data.uploads import load_prepared
from training.spec import ExperimentSpec
from webapp.datasets.labels import execute_scan
from webapp.datasets.models import Dataset, LabelScan
from webapp.datasets.services import version_file
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training
from webapp.experiments.views import labels_page
from webapp.projects.models import Project

from ..noisy import noisy_digits_zip
from .test_datasets import CLEANING, experiment_form, upload


def upload_noisy_digits(client: Client, project: Project) -> Dataset:
    archive, _ = noisy_digits_zip(rows=400)
    response = client.post(reverse("dataset-new"), {
        "name": "noisy digits", "project": project.pk, "kind": "images", **CLEANING,
        "image_size": "8", "drop_duplicates": "", "file": SimpleUploadedFile("d.zip", archive)})
    assert response.status_code == 302, response.context["form"].errors
    return Dataset.objects.get()


def scanned(client: Client, dataset: Dataset) -> LabelScan:
    response = client.post(reverse("dataset-labels-scan", args=[dataset.pk]), {"folds": "3"})
    assert response.status_code == 302
    scan = LabelScan.objects.get()
    execute_scan(scan.pk)  # what the datasets.find_labels task runs on a worker
    scan.refresh_from_db()
    return scan


def test_a_scan_lists_suspicious_rows_by_class_pair_with_a_confusion_matrix(owner_client,
                                                                          project):
    # given the noisy digits and a finished scan
    dataset = upload_noisy_digits(owner_client, project)
    scan = scanned(owner_client, dataset)
    assert scan.status == "done", scan.error
    assert scan.result["flagged"] >= 10

    # when the page is opened
    page = owner_client.get(reverse("dataset-labels", args=[dataset.pk]))
    html = page.content.decode()

    # then the first page lists flagged rows with their image, given and suggested labels
    assert page.status_code == 200
    rows = page.context["rows"]
    assert 0 < len(rows) <= 25 and page.context["page"].paginator.count == scan.result["flagged"]
    assert all(r["src"].startswith("data:image/png;base64,") for r in rows)
    assert all(r["given"] != r["suggested"] for r in rows)
    assert 'id="confusion"' in html and 'id="suspicious-rows"' in html
    # and the confusion matrix counts every row of the version
    assert sum(sum(c["count"] for c in r["cells"]) for r in page.context["confusion"]) == 400

    # when it is filtered to the first row's class pair, then only that pair is listed
    given, suggested = rows[0]["given"], rows[0]["suggested"]
    page = owner_client.get(reverse("dataset-labels", args=[dataset.pk]),
                            {"given": given, "suggested": suggested})
    pair = page.context["rows"]
    assert pair and all((r["given"], r["suggested"]) == (given, suggested) for r in pair)

    # and once a row is relabelled, the list no longer shows it
    assert apply(owner_client, dataset, "relabel", rows[:1]).status_code == 302
    listed = owner_client.get(reverse("dataset-labels", args=[dataset.pk])).context["page"]
    assert rows[0]["row"] not in {r["row"] for r in listed.paginator.object_list}


def test_the_matrix_of_many_classes_shows_those_most_confused(owner_client, project):
    # given 24 classes, each with its own feature but the last four sharing one (so only
    # they are confused with each other), scanned
    rng = np.random.default_rng(0)
    lines = ["label," + ",".join(f"f{k}" for k in range(21))]
    for given in range(24):
        for _ in range(8):
            row = rng.normal(0, 0.05, 21) + np.eye(21)[min(given, 20)]
            lines.append(f"c{given}," + ",".join(f"{v:.4f}" for v in row))
    response = upload(owner_client, project, "\n".join(lines).encode(), label_column="label")
    assert response.status_code == 302, response.context["form"].errors
    scan = scanned(owner_client, Dataset.objects.get())
    assert scan.status == "done", scan.error

    # when its page is opened
    page = owner_client.get(reverse("dataset-labels", args=[scan.dataset_id]))

    # then the matrix has 20 classes of the 24 (300 had drawn 90,000 cells), the four
    # confused among them, and says so; the filters still offer every class
    shown = [name for _, name in page.context["matrix_classes"]]
    assert len(shown) == 20 and {"c20", "c21", "c22", "c23"} <= set(shown)
    assert all(len(row["cells"]) == 20 for row in page.context["confusion"])
    assert "The 20 classes of 24 most often confused" in page.content.decode()
    assert len(page.context["classes"]) == 24


@pytest.fixture
def digits_upload(owner_client: Client, project: Project) -> Dataset:
    return upload_noisy_digits(owner_client, project)


def rows_of(dataset: Dataset, rows: list[int], to: int) -> list[dict[str, Any]]:
    """Rows as the page posts them: their id and the label to give them."""
    return [{"row": r, "suggested": to} for r in rows]


def apply(client: Client, dataset: Dataset, action: str, rows: list[dict[str, Any]]):
    data: dict[str, Any] = {"action": action, "rows": [r["row"] for r in rows], "note": "review"}
    data.update({f"label_{r['row']}": r["suggested"] for r in rows})
    return client.post(reverse("dataset-labels-apply", args=[dataset.pk]), data)


def test_relabelling_and_excluding_make_new_versions(owner_client, digits_upload):
    dataset = digits_upload
    before = load_prepared(version_file(dataset, 1), dataset.spec_name).y
    to = (int(before[0]) + 1) % 10
    first, second = rows_of(dataset, [5, 0], to), rows_of(dataset, [7, 3], to)

    # when two rows are relabelled, then two others excluded
    assert apply(owner_client, dataset, "relabel", first).status_code == 302
    assert apply(owner_client, dataset, "exclude", second).status_code == 302

    # then versions 2 and 3 exist, with what each changed, and version 1 is unchanged
    dataset.refresh_from_db()
    v2, v3 = dataset.versions.all()
    assert (v2.number, v3.number, dataset.latest_version) == (2, 3, 3)
    assert v2.changes["relabelled"][0] == [0, int(before[0]), to]
    assert [r for r, _, _ in v2.changes["relabelled"]] == [0, 5] or before[5] == to
    assert v3.changes["removed"] == sorted(r["row"] for r in second)
    assert v3.info["rows"] == 398 and dataset.info["rows"] == 398
    # and the diff of 1 and 3 holds both changes
    diff = owner_client.get(reverse("dataset-diff", args=[dataset.pk]), {"from": 1, "to": 3})
    assert diff.json()["removed"] == [3, 7] and diff.json()["relabelled"][0][0] == 0
    assert (load_prepared(version_file(dataset, 1), dataset.spec_name).y == before).all()


def test_a_stranger_sees_no_labels_and_changes_nothing(stranger_client, digits_upload):
    dataset = digits_upload
    assert stranger_client.get(reverse("dataset-labels", args=[dataset.pk])).status_code == 404
    assert apply(stranger_client, dataset, "exclude", rows_of(dataset, [1], 0)).status_code == 404
    assert not dataset.versions.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_on_version_1_reproduces_after_version_2(owner, project):
    # given the noisy digits and a run on them submitted while version 1 is the latest
    client = Client()
    client.force_login(owner)
    dataset = upload_noisy_digits(client, project)
    form = experiment_form(project, dataset=dataset.spec_name, arch="mlp", hidden_sizes="16",
                           epochs="2", batch_size="32", version="0")
    assert client.post(reverse("experiment-new"), form).status_code == 302
    first = Experiment.objects.get()
    # then the run records version 1, and its checkpoint's spec too
    assert first.spec["data"]["version"] == 1
    execute_training(first.pk, "test-worker")

    # when five rows are relabelled into version 2, and version 1 is trained again
    assert apply(client, dataset, "relabel", rows_of(dataset, [0, 1, 2, 3, 4], 9)
                 ).status_code == 302
    form["version"] = "1"
    assert client.post(reverse("experiment-new"), form).status_code == 302
    again = Experiment.objects.exclude(pk=first.pk).get()
    execute_training(again.pk, "test-worker")

    # then both runs end with the same metrics, and a new run defaults to version 2
    first.refresh_from_db()
    again.refresh_from_db()
    assert first.status == again.status == "succeeded", (first.error, again.error)
    assert first.summary["best_metrics"] == again.summary["best_metrics"]
    best = load(settings.MEDIA_ROOT / first.checkpoints.get(tag="best").path)
    assert best.spec.data.version == 1
    form["version"] = "0"
    client.post(reverse("experiment-new"), form)
    assert Experiment.objects.order_by("-pk").first().spec["data"]["version"] == 2
    # and asking for a version that does not exist is refused on its field
    form["version"] = "7"
    response = client.post(reverse("experiment-new"), form)
    assert "has no version 7" in str(response.context["form"].errors)


def test_check_the_labels_leads_to_the_page_for_a_run_on_an_upload(digits_upload,
                                                                   make_experiment):
    # given runs on the upload and on a built-in set
    on_upload = make_experiment(spec={**ExperimentSpec().to_dict(),
                                      "data": {"dataset": digits_upload.spec_name}})
    on_digits = make_experiment()

    # then the underfitting remedy "check the labels" links to the upload's labels page only
    assert labels_page(on_upload) == reverse("dataset-labels", args=[digits_upload.pk])
    assert labels_page(on_digits) == ""
