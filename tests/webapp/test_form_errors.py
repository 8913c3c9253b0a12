"""One submit of the experiment form says every field's problem at once."""

from __future__ import annotations

import socket
from typing import Any

from tests.stack import free_port
from tests.webapp.test_forms import form_data
from training.spec import ExperimentSpec
from webapp.datasets import availability
from webapp.experiments.forms import ExperimentForm, dataset_choices
from webapp.experiments.tuning_forms import TuneForm


def test_required_range_and_cross_field_errors_arrive_in_one_submit(owner, project):
    # given a form with the name and epochs empty, a negative learning rate and a regression
    # loss on a classification set
    form = ExperimentForm(form_data(project, name="", epochs="", lr="-0.01", loss="mse"),
                          user=owner)

    # then one validation reports all four, each on its field
    assert not form.is_valid()
    assert {"name", "epochs", "lr", "loss"} <= set(form.errors)
    assert "required" in form.errors["epochs"][0]
    assert "is a classification task" in form.errors["loss"][0]


def test_splits_leaving_less_than_a_batch_are_said_on_the_split_fields(owner, project):
    # given validation 0.9 and test 0.9 of digits: 17 training rows for batches of 64
    form = ExperimentForm(form_data(project, val_fraction="0.9", test_fraction="0.9"),
                          user=owner)

    # then both split fields say it, and the batch size (fine with usual splits) does not
    assert not form.is_valid()
    assert set(form.errors) == {"val_fraction", "test_fraction"}
    (message,) = form.errors["val_fraction"]
    assert "leave 17 training rows of 1,797" in message
    assert form.errors["test_fraction"] == [message]


def test_a_batch_larger_than_a_small_set_is_still_the_batch_sizes_fault(owner, project):
    form = ExperimentForm(form_data(project, dataset="iris", arch="mlp", batch_size="500"),
                          user=owner)

    assert not form.is_valid()
    assert set(form.errors) == {"batch_size"}


def test_a_bad_value_in_a_field_the_chosen_model_hides_does_not_refuse_the_run(owner,
                                                                              project):
    # given a CNN width of 0 and depth "two", typed before MLP was chosen (the page hides
    # both under an MLP)
    # and Nesterov ticked under SGD before Adam was chosen
    form = ExperimentForm(form_data(project, dataset="iris", arch="mlp", width="0",
                                    depth="two", nesterov="on"), user=owner)

    # then the run is valid, with those fields at their defaults
    assert form.is_valid(), form.errors
    assert form.spec is not None and not form.spec.optim.nesterov
    assert (form.spec.model.width, form.spec.model.depth) == (ExperimentSpec().model.width,
                                                              ExperimentSpec().model.depth)


def test_a_bad_value_in_a_shown_field_is_still_refused(owner, project):
    form = ExperimentForm(form_data(project, arch="cnn", width="0"), user=owner)

    assert not form.is_valid()
    assert set(form.errors) == {"width"}


def offline_data(settings: Any, tmp_path: Any) -> None:
    settings.FITBOARD_DATA_DIR = tmp_path
    settings.FITBOARD_DATA_DOWNLOAD = False


def test_a_missing_set_that_cannot_be_downloaded_is_refused_on_the_dataset(
        owner, project, settings, tmp_path):
    # given an empty data directory and downloads off
    offline_data(settings, tmp_path)

    # when MNIST is chosen
    form = ExperimentForm(form_data(project, dataset="mnist", arch="mlp"), user=owner)

    # then the submit is refused on the dataset field, saying where the files go and how
    assert not form.is_valid()
    (message,) = form.errors["dataset"]
    assert "FITBOARD_DATA_DIR" in message and "manage.py fetchdata mnist" in message
    assert "FITBOARD_DATA_DOWNLOAD=false" in message


def test_the_dataset_choices_say_which_sets_are_missing(owner, settings, tmp_path):
    offline_data(settings, tmp_path)

    labels = dict(dataset_choices(owner))

    assert labels["digits"] == "Digits (sklearn, 8×8 images)"
    assert labels["mnist"].endswith(": missing")
    assert labels["sst2"].endswith(": missing")
    assert availability.availability("wine") == availability.PRESENT


def test_sets_in_the_data_directory_are_present(owner, project):
    # the test data directory holds every set
    assert set(availability.catalog_availability().values()) == {availability.PRESENT}
    form = ExperimentForm(form_data(project, dataset="mnist", arch="mlp"), user=owner)
    assert form.is_valid(), form.errors


def test_the_tune_form_sets_the_trials_epochs(owner, project):
    # given the Tune form of a 20-epoch run, asked for 1 epoch per trial
    base = ExperimentSpec().patched({"run": {"epochs": 20}})
    data = {"name": "short study", "project": project.pk, "algorithm": "random",
            "objective": "val_acc", "n_trials": 2, "timeout": 0, "parallelism": 1,
            "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1,
            "epochs": "1"}
    form = TuneForm(data, user=owner, base=base)

    # then the study's trials train one epoch, and the field starts at the source's
    assert form.is_valid(), form.errors
    assert form.spec is not None and form.spec.base["run"]["epochs"] == 1
    assert TuneForm(user=owner, base=base)["epochs"].initial == 20


def test_a_study_of_a_run_whose_data_is_missing_is_refused(owner, project, settings,
                                                           tmp_path):
    offline_data(settings, tmp_path)
    base = ExperimentSpec().patched({"data": {"dataset": "mnist"}, "model": {"arch": "mlp"}})
    data = {"name": "study", "project": project.pk, "algorithm": "random",
            "objective": "val_acc", "n_trials": 2, "timeout": 0, "parallelism": 1,
            "pruner": "none", "seed": 0, "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1}

    form = TuneForm(data, user=owner, base=base)

    assert not form.is_valid()
    assert "manage.py fetchdata mnist" in form.non_field_errors()[0]


def test_the_tune_form_says_a_type_error_and_a_range_error_together(owner, project):
    # given a study with the trials left empty and a parallelism of zero
    data = {"name": "", "project": project.pk, "algorithm": "random", "objective": "val_acc",
            "n_trials": "", "timeout": 0, "parallelism": 0, "pruner": "none", "seed": 0,
            "lr_on": "on", "lr_low": 1e-3, "lr_high": 1e-1}

    form = TuneForm(data, user=owner, base=ExperimentSpec())

    # then the one answer names all three
    assert not form.is_valid()
    assert {"name", "n_trials", "parallelism"} <= set(form.errors)


def test_a_source_is_reachable_only_when_its_host_accepts_connections():
    # given one port that listens and one that does not
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        closed_port = free_port()

        # then only the listening one counts as a download source that answers
        assert availability.reachable(f"http://127.0.0.1:{open_port}/mnist/")
        assert not availability.reachable(f"http://127.0.0.1:{closed_port}/mnist/")
