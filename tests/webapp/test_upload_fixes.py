"""Uploads as a real user has them: AG News's test file (no header; class index, title,
description) uploads in one step with its classes named, and trains; a header is still found
where there is one."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training

from .test_datasets import CLEANING, experiment_form, field_errors

TOPICS = {1: ("world", "minister election talks"), 2: ("sports", "team wins match goal"),
          3: ("business", "stocks shares profit"), 4: ("tech", "software chip internet")}


def ag_news_csv(rows: int = 80) -> bytes:
    """AG News's shape: no header, "class","title","description", quoted, classes 1..4."""
    lines = []
    for i in range(rows):
        label = i % 4 + 1
        word, words = TOPICS[label]
        lines.append(f'"{label}","{word.title()} story {i}","Reuters - {words} {word} {i}."')
    return ("\n".join(lines) + "\n").encode()


def post(client: Client, project, content: bytes, **fields: str):
    data = {"name": "ag news", "project": project.pk, "kind": "csv", **CLEANING, **fields,
            "file": SimpleUploadedFile("test.csv", content)}
    return client.post(reverse("dataset-new"), data)


@pytest.mark.parametrize("header", ["no", "auto"])
def test_an_ag_news_file_uploads_in_one_step_with_two_text_columns(owner_client, project,
                                                                   header):
    # when the headerless file is uploaded, its label in column 1 and its text in 2 and 3,
    # with AG News's classes.txt pasted as the class names
    response = post(owner_client, project, ag_news_csv(), header=header, label_column="1",
                    text_column="2, 3", class_names="World\nSports\nBusiness\nSci/Tech")

    # then every row is data (none taken for a header), the texts are joined, and the classes
    # have their names
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    assert dataset.info["rows"] == 80 and dataset.info["modality"] == "text"
    assert list(dataset.report["class_counts"]) == ["World", "Sports", "Business", "Sci/Tech"]
    assert dataset.report["sample_rows"][0][0] == "World story 0 Reuters - minister election " \
                                                  "talks world 0."


def test_class_names_can_come_from_a_column(owner_client, project):
    content = b"text,label,name\n" + b"".join(
        f"{TOPICS[i % 2 + 1][1]} {i},{i % 2},{TOPICS[i % 2 + 1][0]}\n".encode()
        for i in range(20))
    response = post(owner_client, project, content, label_column="label", text_column="text",
                    class_name_column="name")
    assert response.status_code == 302, field_errors(response)
    assert list(Dataset.objects.get().report["class_counts"]) == ["world", "sports"]


def test_a_wrong_count_of_class_names_is_refused_on_its_field(owner_client, project):
    response = post(owner_client, project, ag_news_csv(), header="no", label_column="1",
                    text_column="2,3", class_names="World\nSports")
    assert "2 names for 4 classes" in field_errors(response)["class_names"][0]


def test_a_header_is_still_detected(owner_client, project):
    content = b"a,b,label\n" + b"".join(f"{i},{i * 2},{'x' if i % 2 else 'y'}\n".encode()
                                        for i in range(12))
    response = post(owner_client, project, content)
    assert response.status_code == 302, field_errors(response)
    assert Dataset.objects.get().report["sample_header"] == ["a", "b", "label"]


@pytest.mark.django_db(transaction=True)
def test_the_ag_news_upload_trains(owner, project):
    client = Client()
    client.force_login(owner)
    post(client, project, ag_news_csv(), label_column="1", text_column="2,3",
         class_names="1=World\n2=Sports\n3=Business\n4=Sci/Tech")
    dataset = Dataset.objects.get()
    experiment = train_from_form(
        client, project, dataset=dataset.spec_name, arch="lstm", epochs="2", batch_size="16",
        embed_dim="16", hidden_size="16", max_length="16", min_freq="1", lr="0.01")

    assert experiment.status == "succeeded", experiment.error
    assert experiment.spec["data"]["version"] == 1


def train_from_form(client: Client, project: Any, **fields: Any) -> Experiment:
    """Submit the New experiment form with ``fields`` and train the run it starts here."""
    response = client.post(reverse("experiment-new"), experiment_form(project, **fields))
    assert response.status_code == 302, field_errors(response)
    experiment = Experiment.objects.get()
    execute_training(experiment.pk, "test-worker")
    experiment.refresh_from_db()
    return experiment


@pytest.mark.django_db(transaction=True)
def test_diabetes_saved_with_its_index_trains_as_a_regression_from_train_on_it(owner, project):
    # given scikit-learn's diabetes saved by DataFrame.to_csv (its index first, unnamed)
    import pandas as pd
    from sklearn.datasets import load_diabetes

    loaded = load_diabetes()
    frame = pd.DataFrame(loaded.data, columns=loaded.feature_names).assign(target=loaded.target)
    client = Client()
    client.force_login(owner)
    response = post(client, project, frame.to_csv().encode(), task="regression")
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()
    # then the index is no feature
    assert dataset.info["input_shape"] == [10]

    # when "Train on it" opens the form, which is submitted with a few changes
    form = client.get(reverse("experiment-new") + f"?dataset={dataset.spec_name}"
                      ).context["form"]
    assert form.initial["loss"] == "mse"  # cross-entropy would be refused for a regression
    # and a table of 353 training rows (6 batches) is offered the most epochs, and weight decay
    assert (form.initial["epochs"], form.initial["weight_decay"]) == (300, 0.01)
    experiment = train_from_form(
        client, project, **{name: form.initial[name] for name in ("dataset", "arch", "loss")},
        hidden_sizes="32", epochs="20", batch_size="32", lr="0.01", test_fraction="0.2")

    # then its test RMSE beats always predicting the mean (the target's std, 77)
    assert experiment.status == "succeeded", experiment.error
    assert experiment.summary["test_metrics"]["test_rmse"] < 0.85 * loaded.target.std()


@pytest.mark.django_db(transaction=True)
def test_train_on_it_fits_the_batch_to_a_set_smaller_than_the_default_batch(owner, project):
    # given a 10-row table (8 rows in the default training split, the default batch is 64)
    rows = "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(10))
    client = Client()
    client.force_login(owner)
    response = post(client, project, f"a,b,label\n{rows}".encode())
    assert response.status_code == 302, field_errors(response)
    dataset = Dataset.objects.get()

    # when "Train on it" opens the form, which is submitted as it starts
    form = client.get(reverse("experiment-new") + f"?dataset={dataset.spec_name}"
                      ).context["form"]
    experiment = train_from_form(
        client, project, **{name: form.initial[name] for name in ("dataset", "arch", "loss",
                                                                  "batch_size")}, epochs="1")

    # then its batch is the training split (64 was refused: "larger than the training split")
    assert form.initial["batch_size"] == 8
    assert experiment.status == "succeeded", experiment.error
