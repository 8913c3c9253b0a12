"""Files as a new user brings them, sent through the upload page by a plain member of the
project and trained from "Train on it": a table of sentences trains as text with no column
named, a sorted table numbered by an "S.No" column trains on its measurements only, a Windows
PowerShell ZIP becomes an image set, unscaled features are warned of on the dataset page, and
a typo in a numeric column is refused on its field naming the row, with nothing stored."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from webapp.datasets.models import Dataset

from .test_datasets import field_errors, media_files, upload
from .test_upload_fixes import train_from_form


def member_client(mallory: Any) -> Client:
    client = Client()
    client.force_login(mallory)
    return client


def train_on_it(client: Client, project: Any, dataset: Dataset, **changes: str):
    """Open "Train on it", submit the form as it starts but for ``changes``, and train."""
    form = client.get(reverse("experiment-new") + f"?dataset={dataset.spec_name}"
                      ).context["form"]
    fields = {name: form.initial[name] for name in ("dataset", "arch", "loss", "batch_size")}
    return train_from_form(client, project, **{**fields, "test_fraction": "0", **changes})


def sorted_iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    loaded = load_iris()
    frame = pd.DataFrame(loaded.data, columns=loaded.feature_names)
    frame["species"] = loaded.target_names[loaded.target]
    return frame


@pytest.mark.django_db(transaction=True)
def test_a_table_of_sentences_uploads_with_its_defaults_and_trains_as_text(mallory, project):
    # given SST-2's shape, sentence<TAB>label, uploaded as the page starts (no text column)
    words = ("a gripping , lovely and moving film", "a dull , tedious and empty film")
    content = "sentence\tlabel\n" + "".join(f"{words[i % 2]} , take {i}\t{i % 2}\n"
                                              for i in range(64))
    client = member_client(mallory)

    response = upload(client, project, content.encode(), "dev.tsv")

    # then it is a text set, said so on its page, and "Train on it" trains a text model on it
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    assert dataset.info["modality"] == "text"
    assert "read as the text to learn from" in client.get(response["Location"]).content.decode()
    experiment = train_on_it(client, project, dataset, epochs="1", max_length="16",
                             embed_dim="8", hidden_size="8", min_freq="1")
    assert experiment.status == "succeeded", experiment.error
    assert experiment.spec["model"]["arch"] in ("lstm", "gru", "transformer")


@pytest.mark.django_db(transaction=True)
def test_a_sorted_table_numbered_by_an_s_no_column_trains_on_its_measurements(mallory,
                                                                               project):
    # given iris sorted by class with "S.No" 1..150 first (as a feature: the class, leaked)
    frame = sorted_iris()
    frame.insert(0, "S.No", np.arange(1, 151))
    client = member_client(mallory)

    response = upload(client, project, frame.to_csv(index=False).encode())

    # then the row numbers are said and left out, and it trains on the four measurements
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    assert dataset.info["input_shape"] == [4]
    assert "index column &#x27;S.No&#x27; left out" in client.get(
        response["Location"]).content.decode()
    experiment = train_on_it(client, project, dataset, epochs="2", lr="0.01")
    assert experiment.status == "succeeded", experiment.error


def powershell_zip() -> bytes:
    """Windows PowerShell 5.1's Compress-Archive: folders separated by backslashes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for c, name in enumerate(("dark", "bright")):
            for i in range(8):
                image = io.BytesIO()
                Image.new("L", (12, 12), 40 + 160 * c + i).save(image, format="PNG")
                archive.writestr(zipfile.ZipInfo(f"shots\\{name}\\{i}.png"), image.getvalue())
    return buffer.getvalue()


def test_a_windows_powershell_zip_becomes_an_image_set(mallory, project):
    response = upload(member_client(mallory), project, powershell_zip(), "shots.zip",
                      kind="images")

    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    assert dataset.info["modality"] == "image" and dataset.info["rows"] == 16
    assert dataset.report["labels"] == ["bright", "dark"]


def test_features_left_unscaled_are_warned_of_on_the_dataset_page(mallory, project):
    # given wine (proline reaches 1,680) uploaded with "Standardise features" unticked
    from sklearn.datasets import load_wine

    loaded = load_wine()
    frame = pd.DataFrame(loaded.data, columns=loaded.feature_names).assign(label=loaded.target)
    client = member_client(mallory)

    response = upload(client, project, frame.to_csv(index=False).encode(), standardise="")

    html = client.get(response["Location"]).content.decode()
    assert "training may diverge; tick Standardise features" in html
    assert "&#x27;proline&#x27; up to 1,680" in html


def test_a_typo_in_a_numeric_column_is_refused_on_its_field_naming_the_row(mallory, project):
    frame = sorted_iris().astype({"petal width (cm)": object})
    frame.iloc[41, 3] = "0,2O"
    before = media_files()

    response = upload(member_client(mallory), project, frame.to_csv(index=False).encode())

    errors = field_errors(response)["feature_columns"]
    assert "'petal width (cm)' is not numeric (e.g. '0,2O'): 1 cell of 150 is text among " \
           "numbers (data row 42): fix or empty it" in errors[0]
    assert not Dataset.objects.exists() and media_files() == before


def test_an_image_zip_uploads_through_the_api_with_only_the_fields_it_uses(mallory, project):
    # given a client that sends the name, project, kind and file (no task, no missing-value
    # choice: an image set uses neither)
    response = member_client(mallory).post("/api/v1/datasets/", {
        "name": "shots", "project": project.pk, "kind": "images",
        "file": SimpleUploadedFile("shots.zip", powershell_zip())})

    # then it is created as the page would create it (it was refused: "task: This field is
    # required", "missing: This field is required")
    assert response.status_code == 201, response.json()
    assert response.json()["info"]["rows"] == 16


def test_an_empty_file_is_refused_once_for_being_empty(mallory, project):
    response = member_client(mallory).post("/api/v1/datasets/", {
        "name": "nothing", "project": project.pk, "kind": "csv",
        "file": SimpleUploadedFile("data.csv", b"")})

    # not also "choose a file to upload": one was chosen
    assert response.json()["errors"] == {"file": "The submitted file is empty."}
