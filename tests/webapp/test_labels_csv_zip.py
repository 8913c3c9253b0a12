"""A ZIP of images in one folder beside a labels CSV (Kaggle's layout), sent through the upload
page and the API by a plain member of the project: it becomes the same image data set a ZIP
of class folders does (its page, "Train on it", the label check), its report says which
columns were read and names what was skipped, and the refusals (columns that could each be
the label, a table that names none of the images, a hostile member) come on the field to
change with nothing stored."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from webapp.datasets.models import Dataset, LabelScan

from ..hostile import png
from ..training.test_image_labels_csv import digits
from .test_datasets import field_errors, media_files, upload
from .test_labels import scanned
from .test_unseen_uploads import member_client, train_on_it


def kaggle_zip(count: int = 200, table: str = "", extra: dict[str, bytes] | None = None
               ) -> bytes:
    """``count`` digits as images/img_0000.png… beside train.csv (image_id without the
    extension, label), or beside ``table``."""
    pictures, labels = digits(count)
    members = {f"digits/images/img_{i:04d}.png": p for i, p in enumerate(pictures)}
    members["digits/train.csv"] = (table or "image_id,label\n" + "".join(
        f"img_{i:04d},{labels[i]}\n" for i in range(count))).encode()
    members.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def send(client: Client, project: Any, archive: bytes, **fields: str) -> Any:
    return upload(client, project, archive, "digits.zip", kind="images", **fields)


@pytest.mark.django_db(transaction=True)
def test_a_flat_folder_beside_a_labels_csv_uploads_and_trains_from_train_on_it(mallory,
                                                                               project):
    client = member_client(mallory)

    response = send(client, project, kaggle_zip())

    # then it is an image data set of the table's classes, its page saying what was read
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    assert dataset.info["modality"] == "image" and dataset.info["rows"] == 200
    assert dataset.info["input_shape"] == [1, 16, 16]
    assert dataset.report["labels"] == ["0", "1", "2", "3"]
    html = client.get(response["Location"]).content.decode()
    assert "labels read from digits/train.csv: images named in &#x27;image_id&#x27;, labels " \
           "in &#x27;label&#x27;" in html
    # and "Train on it" starts a CNN that learns the digits in two epochs (chance: 0.25)
    experiment = train_on_it(client, project, dataset, epochs="2", lr="0.01", batch_size="16")
    assert experiment.status == "succeeded", experiment.error
    assert experiment.spec["model"]["arch"] == "cnn"
    assert experiment.summary["best_metrics"]["val_acc"] >= 0.6, experiment.summary


@pytest.mark.django_db(transaction=True)
def test_its_labels_are_checked_like_a_class_folder_sets(mallory, project):
    client = member_client(mallory)
    send(client, project, kaggle_zip(120))
    dataset = Dataset.objects.get()

    scan = scanned(client, dataset)

    assert scan.status == LabelScan.Status.DONE, scan.error
    page = client.get(reverse("dataset-labels", args=[dataset.pk]))
    assert page.status_code == 200


def test_rows_and_images_that_do_not_pair_are_named_on_the_dataset_page(mallory, project):
    # given a table listing an image the archive lacks, one without a label, and leaving one
    # of the archive's images out
    _, labels = digits(40)
    table = "image_id,label\n" + "".join(f"img_{i:04d},{labels[i]}\n" for i in range(39))
    table = table.replace("img_0005,1", "img_0005,") + "img_9999,2\n"
    client = member_client(mallory)

    response = send(client, project, kaggle_zip(40, table))

    html = client.get(response["Location"]).content.decode()
    assert "rows of digits/train.csv naming no image in the archive skipped" in html
    assert "&#x27;img_9999&#x27;" in html
    assert "images not listed in digits/train.csv skipped" in html
    assert "digits/images/img_0039.png" in html
    assert Dataset.objects.get().info["rows"] == 40 - 1 - (labels[5] == 1)


def test_columns_that_could_each_be_the_label_are_refused_on_the_label_column(mallory,
                                                                              project):
    # given HAM10000's shape: the diagnosis "dx" and the patient's sex both look like classes
    _, labels = digits(40)
    table = "image_id,dx,sex\n" + "".join(f"img_{i:04d},{labels[i]},{'mf'[i % 2]}\n"
                                          for i in range(40))
    client = member_client(mallory)
    before = media_files()

    refused = send(client, project, kaggle_zip(40, table))

    # then the refusal is on the label column, naming the candidates; nothing is stored
    assert field_errors(refused)["label_column"] == [
        "digits/train.csv has several columns that could be the label: 'dx', 'sex'; name one "
        "in Label column"]
    assert not Dataset.objects.exists() and media_files() == before
    # and naming one there uploads it
    accepted = send(client, project, kaggle_zip(40, table), label_column="dx")
    assert accepted.status_code == 302, field_errors(accepted)
    assert Dataset.objects.get().report["labels"] == ["0", "1", "2", "3"]


def test_a_table_naming_none_of_the_images_is_refused_on_the_file_field(mallory, project):
    table = "id,label\n" + "".join(f"photo-{i},{i % 2}\n" for i in range(40))
    before = media_files()

    refused = send(member_client(mallory), project, kaggle_zip(40, table))

    errors = " ".join(field_errors(refused)["file"])
    assert "no column of 'digits/train.csv' holds the images' names" in errors
    assert "'digits/images/img_0000.png'" in errors
    assert not Dataset.objects.exists() and media_files() == before


def test_a_named_image_column_the_table_lacks_is_refused_on_that_field(mallory, project):
    refused = send(member_client(mallory), project, kaggle_zip(40), image_column="file")

    assert "digits/train.csv has no column 'file'" in " ".join(
        field_errors(refused)["image_column"])


def test_a_hostile_member_beside_the_labels_table_is_still_refused(mallory, project):
    before = media_files()

    refused = send(member_client(mallory), project,
                   kaggle_zip(40, extra={"../../evil.png": png()}))

    assert "path traversal" in " ".join(field_errors(refused)["file"])
    assert not Dataset.objects.exists() and media_files() == before


def test_the_upload_page_offers_the_label_and_image_columns_for_a_zip(mallory):
    page = member_client(mallory).get(reverse("dataset-new"))

    applies = page.context["applies"]
    assert "images" in applies["label_column"]["kind"]
    assert applies["image_column"] == {"kind": ["images"]}
    assert 'name="image_column"' in page.content.decode()


def test_the_api_takes_the_columns_by_name(mallory, project):
    _, labels = digits(40)
    table = "file,kind,camera\n" + "".join(f"images/img_{i:04d}.png,{labels[i]},c{i % 2}\n"
                                           for i in range(40))

    response = member_client(mallory).post("/api/v1/datasets/", {
        "name": "digits", "project": project.pk, "kind": "images", "image_column": "file",
        "label_column": "kind", "file": SimpleUploadedFile("d.zip", kaggle_zip(40, table))})

    assert response.status_code == 201, response.json()
    assert response.json()["info"]["rows"] == 40
    assert response.json()["report"]["labels"] == ["0", "1", "2", "3"]
