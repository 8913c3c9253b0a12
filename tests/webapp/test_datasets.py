"""Uploaded datasets: the upload form refuses hostile files on the field and writes nothing,
the dataset page reports size, balance, samples and cleaning, only members see it, and an
experiment trains on an upload through the normal path."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from training.data.catalog import DatasetInfo
from training.data.files import IDX_FILES
from training.spec import ExperimentSpec
from webapp.datasets.models import Dataset
from webapp.experiments.forms import spec_initial
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training
from webapp.projects.models import Project

from ..conftest import DATA_DIR
from ..hostile import HOSTILE_ZIPS, serve, table_csv, two_class_zip

CLEANING = {"missing": "drop", "drop_duplicates": "on", "drop_unlabelled": "on",
            "standardise": "on", "task": "classification", "image_size": "16"}


def upload(client: Client, project: Project, content: bytes, file_name: str = "data.csv",
           kind: str = "csv", **fields: Any):
    data = {"name": "flowers", "project": project.pk, "kind": kind, **CLEANING, **fields}
    if content:
        data["file"] = SimpleUploadedFile(file_name, content)
    return client.post(reverse("dataset-new"), data)


def media_files() -> set[Path]:
    return {p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()}


def field_errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {name: list(errors) for name, errors in form.errors.items()}


# --- uploading -----------------------------------------------------------------------------


def test_a_csv_upload_creates_a_dataset_and_shows_its_page(owner_client, project):
    # given a two-class CSV with one duplicated row
    content = table_csv(20) + b"1.01,2.10,virginica\n" * 2

    # when it is uploaded
    response = upload(owner_client, project, content)

    # then a dataset of the project exists, stored by id under the media folder
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dataset-detail", args=[dataset.pk])
    assert dataset.project == project
    assert dataset.info["rows"] == 21 and dataset.info["modality"] == "tabular"
    assert Path(dataset.prepared.path).is_relative_to(settings.MEDIA_ROOT)
    assert "data.csv" not in dataset.source.name  # never the user's file name
    # and its page shows size, balance, samples and the cleaning counts
    page = owner_client.get(response["Location"])
    html = page.content.decode()
    assert '<dd id="rows">21</dd>' in html
    assert page.context["chart"] == {"labels": ["setosa", "virginica"], "counts": [10, 11]}
    assert 'id="class-counts"' in html and "plotly.min.js" in html
    assert "duplicate rows dropped" in html
    steps = {s["step"]: s["count"] for s in dataset.report["steps"]}
    assert steps["duplicate rows dropped"] == 1
    assert html.count("<td>setosa</td>") + html.count("<td>virginica</td>") >= 5


def test_the_pages_name_each_class_index_by_its_own_name(owner_client, project):
    # given classes whose names, sorted by length as PostgreSQL stores a JSON object's keys
    # (No, Yes, Maybe), are not in class-index order (Maybe, No, Yes)
    rows = "".join(f"{i % 7}.{i},{(i * 3) % 11}.5,{('Maybe', 'No', 'Yes')[i % 3]}\n"
                   for i in range(60))
    upload(owner_client, project, ("x1,x2,label\n" + rows).encode())
    dataset = Dataset.objects.get()

    # when its page and its labels page are opened
    detail = owner_client.get(reverse("dataset-detail", args=[dataset.pk]))
    labels = owner_client.get(reverse("dataset-labels", args=[dataset.pk]))

    # then both name the classes in index order, each with its own count
    assert detail.context["chart"] == {"labels": ["Maybe", "No", "Yes"], "counts": [20, 20, 20]}
    assert labels.context["label_names"] == ["Maybe", "No", "Yes"]
    assert dataset.report["labels"] == ["Maybe", "No", "Yes"]


def test_a_regression_uploads_page_states_its_target_range_in_readable_numbers(
        owner_client, project):
    # given prices with two decimals, which the prepared file holds as float32
    rows = "".join(f"{i},{i % 4},{32.92 + 4.91 * i:.2f}\n" for i in range(120))
    upload(owner_client, project, ("size,rooms,price\n" + rows).encode(), task="regression")
    dataset = Dataset.objects.get()

    # when its page is opened
    html = owner_client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()

    # then the range reads as the prices do, not as float32's 32.91999816894531
    assert '<p id="target-range">min 32.92, mean 325.1, max 617.2</p>' in html


def test_an_image_zip_upload_shows_sample_images(owner_client, project):
    response = upload(owner_client, project, two_class_zip(), "pics.zip", kind="images")

    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert dataset.info["input_shape"] == [1, 16, 16]
    page = owner_client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()
    assert page.count('src="data:image/png;base64,') == 8


@pytest.mark.parametrize("relative", [False, True])
def test_a_hugging_face_folder_becomes_a_dataset(owner_client, project, settings, tmp_path,
                                                 relative):
    # given a save_to_disk folder inside an allowed local folder
    import datasets

    datasets.Dataset.from_dict({"f": [0.1, 0.9, 0.2, 0.8], "y": ["a", "b", "a", "b"]}
                               ).save_to_disk(str(tmp_path / "sets" / "hf"))
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [tmp_path]

    # when it is registered by its absolute path, or by its path in the data directory
    source = "sets/hf" if relative else str(tmp_path / "sets" / "hf")
    response = upload(owner_client, project, b"", kind="hf", hf_source=source,
                      hf_split="train", label_column="y")

    # then it is a dataset like an upload
    assert response.status_code == 302, field_errors(response)
    assert Dataset.objects.get().info["rows"] == 4


# --- bad input: refused on the field, nothing written ----------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_ZIPS))
def test_a_hostile_zip_is_refused_on_the_file_field_and_nothing_is_written(
        owner_client, project, name):
    archive, words = HOSTILE_ZIPS[name]
    before = media_files()

    response = upload(owner_client, project, archive, "evil.zip", kind="images")

    assert response.status_code == 200
    errors = field_errors(response)
    assert list(errors) == ["file"] and words in errors["file"][0]
    assert 'data-field-error="file">' in response.content.decode()
    assert not Dataset.objects.exists()
    assert media_files() == before
    assert not list(settings.MEDIA_ROOT.parent.rglob("evil.png"))


@pytest.mark.parametrize(
    ("content", "fields", "field", "words"),
    [
        (b'a,b,label\n1,2,x\n3,4,5,6,7\n"open', {}, "file", "does not parse"),
        (b"a,b,label\n1,2,x\n3,4,x\n5,6,x\n7,8,x\n", {}, "label_column", "one class"),
        (b"text,label\n,x\n,y\n,x\n,y\n", {"text_column": "text"}, "text_column", "is empty"),
        (b"a,b,label\n1,2,x\n3,q,y\n5,6,x\n7,8,y\n", {}, "feature_columns", "not numeric"),
        (b"", {}, "file", "choose a file"),
    ],
    ids=["unparsable", "one class", "empty text", "text feature", "no file"],
)
def test_a_bad_csv_is_refused_on_its_field(owner_client, project, content, fields, field,
                                            words):
    before = media_files()

    response = upload(owner_client, project, content, **fields)

    errors = field_errors(response)
    assert field in errors and words in errors[field][0], errors
    assert not Dataset.objects.exists() and media_files() == before


def test_several_bad_fields_are_listed_in_a_summary_at_the_top(owner_client, project):
    # given an upload with no name, no file and an image size out of range
    response = upload(owner_client, project, b"", name="", image_size="2")

    # then the page opens with the summary the New experiment form has, one link per field
    page = response.content.decode()
    summary = page.split('id="error-summary"')[1].split("</div>")[0]
    assert "Please fix 3 fields before the upload can be checked" in summary
    links = re.findall(r'<a href="#(id_\w+)" data-summary-field="(\w+)">', summary)
    assert links == [("id_name", "name"), ("id_file", "file"), ("id_image_size", "image_size")]
    assert page.index('id="error-summary"') < page.index('name="name"')


def test_a_file_over_the_size_limit_is_refused_without_being_stored(owner_client, project,
                                                                    settings):
    # given a 1 KB limit
    settings.FITBOARD_UPLOAD_MAX_BYTES = 1024
    before = media_files()

    # when a 3 KB CSV is uploaded
    response = upload(owner_client, project, table_csv(200))

    # then the file field says so, and nothing was spooled or kept
    assert field_errors(response) == {"file": ["the file is larger than the limit of 1.0\xa0KB"]}
    assert not Dataset.objects.exists() and media_files() == before


@pytest.mark.parametrize("source, words", [("/etc/passwd", "inside the data directory"),
                                           ("../allowed/../../etc", "'..' is not allowed")])
def test_a_local_path_outside_the_allowed_folders_is_refused(owner_client, project, settings,
                                                              tmp_path, source, words):
    settings.FITBOARD_DATASETS_LOCAL_DIRS = [tmp_path / "allowed"]

    response = upload(owner_client, project, b"", kind="hf", hf_source=source)

    assert words in field_errors(response)["hf_source"][0]


# --- permissions -------------------------------------------------------------------------------


@pytest.fixture
def dataset(owner_client, project) -> Dataset:
    upload(owner_client, project, table_csv(40))
    return Dataset.objects.get()


def test_a_stranger_gets_404_for_a_dataset_page(stranger_client, dataset):
    response = stranger_client.get(reverse("dataset-detail", args=[dataset.pk]))

    assert response.status_code == 404


def test_the_list_shows_only_datasets_of_the_users_projects(stranger_client, owner_client,
                                                            dataset):
    assert dataset.name in owner_client.get(reverse("dataset-list")).content.decode()
    assert dataset.name not in stranger_client.get(reverse("dataset-list")).content.decode()


def test_a_stranger_cannot_upload_into_a_project_they_are_not_in(stranger_client, project):
    response = upload(stranger_client, project, table_csv(40))

    assert "project" in field_errors(response)
    assert not Dataset.objects.exists()


def test_an_upload_needs_a_csrf_token(owner, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = upload(client, project, table_csv(40))

    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(db):
    response = Client().get(reverse("dataset-new"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- experiments on uploads --------------------------------------------------------------------


def experiment_form(project: Project, **overrides: Any) -> dict[str, Any]:
    data = {"name": "on upload", "project": project.pk, **spec_initial(ExperimentSpec())}
    data.update(overrides)
    for flag in ("batch_norm", "augment_flip"):
        data[flag] = "on" if data[flag] is True else ""
    return data


def test_train_on_it_preselects_the_upload_and_an_mlp(owner_client, dataset):
    page = owner_client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()
    link = reverse("experiment-new") + f"?dataset={dataset.spec_name}"
    assert link in page

    form = owner_client.get(link).context["form"]

    assert (form.initial["dataset"], form.initial["arch"]) == (dataset.spec_name, "mlp")
    assert (dataset.spec_name, f"flowers (#{dataset.pk}, vision)") in form.fields[
        "dataset"].choices[1][1]


def test_a_cnn_on_an_uploaded_table_is_refused_on_the_model_field(owner_client, project,
                                                                   dataset):
    response = owner_client.post(reverse("experiment-new"), experiment_form(
        project, dataset=dataset.spec_name, arch="cnn", batch_size=8))

    assert response.status_code == 200
    assert "a CNN needs image data" in field_errors(response)["arch"][0]


def test_an_upload_of_another_project_is_refused(owner, owner_client, project, dataset):
    other = Project.objects.create(name="other")
    other.members.add(owner)

    response = owner_client.post(reverse("experiment-new"), experiment_form(
        other, dataset=dataset.spec_name, arch="mlp", batch_size=8))

    assert "belongs to project vision" in field_errors(response)["dataset"][0]


@pytest.mark.django_db(transaction=True)
def test_an_experiment_trains_on_an_uploaded_csv_and_reports_its_test_split(owner, project):
    # given an uploaded CSV and a run of it made through the form, with a test split
    client = Client()
    client.force_login(owner)
    upload(client, project, table_csv(80))
    dataset = Dataset.objects.get()
    response = client.post(reverse("experiment-new"), experiment_form(
        project, dataset=dataset.spec_name, arch="mlp", hidden_sizes="8", epochs="6",
        batch_size="16", lr="0.05", test_fraction="0.25"))
    assert response.status_code == 302, field_errors(response)
    experiment = Experiment.objects.get()

    # when the worker runs it
    execute_training(experiment.pk, "test-worker")

    # then it succeeds, with test metrics in the summary, the checkpoint and on the run page
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    test = experiment.summary["test_metrics"]
    assert set(test) == {"test_loss", "test_acc"}
    assert experiment.checkpoints.get(tag="best").metrics["test_acc"] == test["test_acc"]
    page = client.get(reverse("experiment-detail", args=[experiment.pk])).content.decode()
    assert 'id="test-metrics"' in page and 'data-metric="test_acc"' in page


# --- fetching the built-in sets ----------------------------------------------------------------


def test_fetchdata_downloads_mnist_into_the_data_directory(settings, tmp_path):
    # given an empty data directory and a mirror serving the official files
    settings.FITBOARD_DATA_DIR = tmp_path / "data"
    out = io.StringIO()

    # when the command fetches MNIST from the mirror
    for base in serve(DATA_DIR):
        call_command("fetchdata", "mnist", "--base-url", base, stdout=out)

    # then the verified files are in the data directory's mnist folder
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(IDX_FILES)
    assert "mnist:" in out.getvalue()


def test_a_report_stored_before_counts_of_one_were_singular_reads_1_row(owner_client, project):
    # given a table uploaded when the cleaning report said "in 1 rows" and "1 columns, 1 rows"
    info = DatasetInfo("upload:0", "houses", "regression", "tabular", 3, (2,), 0).to_dict()
    steps = [{"step": "empty columns and rows dropped (separators without values)", "count": 2,
              "detail": "1 columns, 1 rows"},
             {"step": "missing values to impute with the training split's mean", "count": 1,
              "detail": "in 1 rows"},
             {"step": "rows with duplicate features dropped", "count": 3, "detail": "in 3 rows"}]
    dataset = Dataset.objects.create(project=project, name="houses", kind="csv", folder="f",
                                     prepared="f/prepared.npz", info=info,
                                     report={"rows_in": 4, "rows_out": 3, "steps": steps})

    # when its page is opened
    html = owner_client.get(reverse("dataset-detail", args=[dataset.pk])).content.decode()

    # then each count of one reads in the singular, without rewriting the stored report
    details = re.findall(r'<td class="muted">([^<]*)</td></tr>', html)
    assert details == ["1 column, 1 row", "in 1 row", "in 3 rows"]
    dataset.refresh_from_db()
    assert dataset.report["steps"][1]["detail"] == "in 1 rows"
