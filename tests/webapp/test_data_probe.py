"""Data a run meets after its upload: a data set's stored file that went missing or was damaged
fails the run with what happened and what to do, never numpy's own words or the server's
path to the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.experiments.runner import execute_training

from .test_datasets import experiment_form, upload


def queued_run_on_an_upload(client, project) -> tuple[Experiment, Path]:
    """A run queued from "Train on it" on a small two-class table; its data set's file."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] > 0, "warm", "cold")
    assert upload(client, project, frame.to_csv(index=False).encode()).status_code == 302
    dataset = Dataset.objects.get()
    form = client.get(reverse("experiment-new") + f"?dataset={dataset.spec_name}"
                      ).context["form"]
    fields = {name: form.initial[name] for name in ("dataset", "arch", "loss", "batch_size")}
    response = client.post(reverse("experiment-new"),
                           experiment_form(project, **fields, epochs="1", test_fraction="0"))
    assert response.status_code == 302
    return Experiment.objects.get(), Path(dataset.prepared.path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("damage", "what"), [
    (lambda path: path.write_bytes(path.read_bytes()[:300]), "is damaged"),  # a cut-off copy
    (lambda path: path.write_bytes(b"not an npz"), "is damaged"),  # numpy: "allow_pickle"...
    (lambda path: path.unlink(), "is missing"),
])
def test_a_run_whose_data_set_file_is_damaged_or_missing_fails_saying_so(
        owner_client, project, damage, what) -> None:
    # given a run queued on an upload whose stored file is then damaged or lost
    experiment, path = queued_run_on_an_upload(owner_client, project)
    damage(path)

    # when a worker takes it
    execute_training(experiment.pk, "test-worker")

    # then it fails naming the data set and the way out, with no numpy advice or server path
    experiment.refresh_from_db()
    assert experiment.status == "failed"
    assert experiment.error.startswith(f"the stored file of the uploaded dataset upload:"
                                       f"{Dataset.objects.get().pk} {what}")
    assert experiment.error.endswith("upload the data set again")
    assert "allow_pickle" not in experiment.error and str(path.parent) not in experiment.error
