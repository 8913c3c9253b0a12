"""The experiment form validates through the spec and puts each error on its field."""

from __future__ import annotations

from typing import Any

import pytest

from training.spec import ExperimentSpec
from webapp.experiments.forms import (
    FIELD_PATHS,
    FIELDSETS,
    PATH_FIELDS,
    ExperimentForm,
    spec_initial,
)
from webapp.experiments.models import Project


def form_data(own_project: Project, **overrides: Any) -> dict[str, Any]:
    data = {"name": "run", "project": own_project.pk, **spec_initial(ExperimentSpec())}
    data["batch_norm"] = "on" if data["batch_norm"] else ""
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_defaults_build_the_default_spec(owner, project):
    form = ExperimentForm(form_data(project), user=owner)

    assert form.is_valid(), form.errors
    assert form.spec == ExperimentSpec()


def test_every_field_reaches_the_spec(owner, project):
    form = ExperimentForm(form_data(
        project, dataset="wine", arch="mlp", hidden_sizes="64, 32", optimizer="sgd", lr="0.05",
        momentum="0.8", weight_decay="0.001", epochs="3", batch_size="16", seed="7",
        val_fraction="0.25", dropout="0.1", batch_norm="", grad_clip="2.5",
        early_stopping_patience="4",
    ), user=owner)

    assert form.is_valid(), form.errors
    spec = form.spec
    assert spec is not None
    assert (spec.data.dataset, spec.data.val_fraction) == ("wine", 0.25)
    assert (spec.model.arch, spec.model.hidden_sizes, spec.model.dropout) == ("mlp", (64, 32), 0.1)
    assert spec.model.batch_norm is False
    assert (spec.optim.optimizer, spec.optim.lr, spec.optim.momentum) == ("sgd", 0.05, 0.8)
    assert spec.optim.weight_decay == 0.001
    assert (spec.run.epochs, spec.run.batch_size, spec.run.seed) == (3, 16, 7)
    assert (spec.run.grad_clip, spec.run.early_stopping_patience) == (2.5, 4)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", "-0.1"),
        ("lr", "0"),
        ("lr", "abc"),
        ("epochs", "0"),
        ("epochs", "ten"),
        ("val_fraction", "0"),
        ("val_fraction", "1.5"),
        ("batch_size", "5000"),
        ("dropout", "1"),
        ("hidden_sizes", "64, x"),
        ("grad_clip", "-1"),
        ("early_stopping_patience", "-2"),
    ],
)
def test_a_bad_value_is_reported_on_its_field(owner, project, field, value):
    form = ExperimentForm(form_data(project, **{field: value}), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_a_batch_larger_than_the_training_split_names_the_split_size(owner, project):
    form = ExperimentForm(form_data(project, batch_size="1500"), user=owner)

    assert not form.is_valid()
    assert "1437 rows" in form.errors["batch_size"][0]


def test_a_cnn_on_tabular_data_is_refused_on_the_model_field(owner, project):
    form = ExperimentForm(form_data(project, dataset="wine", arch="cnn"), user=owner)

    assert not form.is_valid()
    assert "needs image data" in form.errors["arch"][0]


def test_mse_on_a_classification_label_is_refused_on_the_loss_field(owner, project):
    form = ExperimentForm(form_data(project, loss="mse"), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["loss"]


def test_only_the_users_projects_can_be_chosen(owner, stranger, project):
    foreign = Project.objects.create(name="theirs")
    foreign.members.add(stranger)

    data = {**form_data(project), "project": foreign.pk}

    form = ExperimentForm(data, user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["project"]


# --- losses, optimizers, schedules and training control ------------------------------------


def test_every_training_option_reaches_the_spec(owner, project):
    form = ExperimentForm(form_data(
        project, dataset="iris", arch="mlp", optimizer="sgd", nesterov="on",
        label_smoothing="0.1", class_weights="balanced", huber_delta="2", schedule="one_cycle",
        warmup="3", warmup_unit="epochs", step_epochs="4", step_factor="0.5",
        decay_per_epoch="0.9", min_lr="0.0001", pct_start="0.2", plateau_factor="0.2",
        plateau_patience="2", l1="0.001", monitor="val_loss", restore_best="",
        grad_accumulation="2", precision="fp32", compile="on", batch_size="16",
    ), user=owner)

    assert form.is_valid(), form.errors
    spec = form.spec
    assert spec is not None
    assert (spec.optim.optimizer, spec.optim.nesterov) == ("sgd", True)
    assert (spec.optim.label_smoothing, spec.optim.class_weights) == (0.1, "balanced")
    assert spec.optim.huber_delta == 2.0
    assert spec.schedule.to_dict() == {
        "kind": "one_cycle", "warmup": 3, "warmup_unit": "epochs", "step_epochs": 4,
        "step_factor": 0.5, "decay_per_epoch": 0.9, "min_lr": 0.0001, "pct_start": 0.2,
        "plateau_factor": 0.2, "plateau_patience": 2}
    assert spec.regularization.l1 == 0.001
    assert (spec.run.monitor, spec.run.restore_best) == ("val_loss", False)
    assert (spec.run.grad_accumulation, spec.run.precision, spec.run.compile) == (2, "fp32",
                                                                                  True)


def test_every_training_option_has_a_form_field_in_a_fieldset():
    spec_paths = {f"{section}.{name}" for section in ("schedule", "regularization")
                  for name in ExperimentSpec().to_dict()[section]}
    spec_paths |= {"optim.nesterov", "optim.label_smoothing", "optim.class_weights",
                   "optim.huber_delta", "run.monitor", "run.restore_best",
                   "run.grad_accumulation", "run.precision", "run.compile"}

    assert spec_paths <= set(PATH_FIELDS)
    assert all(name in ExperimentForm.base_fields for name in FIELD_PATHS)
    assert {name for _, names in FIELDSETS for name in names} >= set(FIELD_PATHS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # one per section and kind of check; tests/training/test_optimization_spec.py has
        # every field
        ("label_smoothing", "1"),
        ("warmup", "1.5"),
        ("step_factor", "2"),
        ("l1", "-0.5"),
        ("grad_accumulation", "0"),
        ("nesterov", "on"),  # with the default optimizer, Adam
        ("monitor", "val_rmse"),  # digits is a classification task
        ("schedule", "cyclic"),
    ],
)
def test_a_bad_training_option_is_reported_on_its_field(owner, project, field, value):
    form = ExperimentForm(form_data(project, **{field: value}), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_a_warmup_longer_than_the_run_is_refused_on_the_warmup_field(owner, project):
    form = ExperimentForm(form_data(project, warmup="15", warmup_unit="epochs"), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["warmup"]
    assert "345 steps" in form.errors["warmup"][0]


def test_class_weights_with_a_regression_loss_are_refused_on_their_field(owner, project):
    form = ExperimentForm(form_data(project, dataset="diabetes", arch="mlp", loss="huber",
                                    class_weights="balanced"), user=owner)

    assert not form.is_valid()
    assert list(form.errors) == ["class_weights"]


def test_a_model_no_worker_can_hold_is_refused_on_its_field_with_the_estimate(owner, project):
    # given the finding's MLP on MNIST: 16 layers of 65,536 units
    form = ExperimentForm(form_data(project, dataset="mnist", arch="mlp",
                                    hidden_sizes=", ".join(["65536"] * 16)), user=owner)

    # then the form refuses it on the sizes, with the estimate and the limit
    assert not form.is_valid()
    (message,) = form.errors["hidden_sizes"]
    assert message.startswith("about 6.4e10 parameters")
    assert "the limit is 64 GB per run" in message


def test_more_devices_than_the_workers_have_are_refused_on_the_field(owner, project, settings):
    form = ExperimentForm(form_data(project, device="cpu", devices="64"), user=owner)

    assert not form.is_valid()
    assert form.errors["devices"] == [
        f"this deployment's workers have at most {settings.FITBOARD_MAX_DEVICES} devices for "
        "one run"]
