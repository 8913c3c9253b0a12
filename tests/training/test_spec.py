"""The experiment spec: defaults, field validation keyed by dotted path, compatibility checks,
and the dataset catalog's static facts against the data actually loaded."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch

from training import ExperimentSpec, SpecError
from training.data import CATALOG, dataset_info, prepare
from training.spec import proposed_for


def errors_for(data: dict[str, Any]) -> dict[str, str]:
    """The field errors ``from_dict`` raises for ``data`` (fails the test if it accepts it)."""
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict(data)
    return caught.value.errors


# --- defaults and round trips -------------------------------------------------------------


def test_the_default_spec_round_trips_through_a_dict() -> None:
    # given the default spec
    spec = ExperimentSpec()

    # when it is written to a dict and read back
    restored = ExperimentSpec.from_dict(spec.to_dict())

    # then nothing changed
    assert restored == spec


def test_a_customised_spec_round_trips_through_json() -> None:
    # given a spec that differs from the defaults in every section
    spec = ExperimentSpec().patched({
        "data": {"dataset": "wine", "val_fraction": 0.25},
        "model": {"arch": "mlp", "hidden_sizes": [64, 32], "activation": "gelu", "dropout": 0.1},
        "optim": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.5, "weight_decay": 1e-4},
        "run": {"epochs": 7, "batch_size": 16, "seed": 3, "grad_clip": 1.5},
    })

    # when it goes through JSON, as the database and the checkpoint store it
    restored = ExperimentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))

    # then it comes back equal, hidden sizes as a tuple again
    assert restored == spec
    assert restored.model.hidden_sizes == (64, 32)


def test_an_empty_object_gives_the_defaults() -> None:
    # given a spec with no sections at all
    # when it is read
    spec = ExperimentSpec.from_dict({})

    # then every field has its default
    assert spec == ExperimentSpec()


def test_numbers_and_booleans_written_as_form_text_are_converted() -> None:
    # given the strings an HTML form posts
    data = {
        "optim": {"lr": "0.01"},
        "run": {"epochs": "3"},
        "model": {"batch_norm": "off", "hidden_sizes": "64, 32"},
    }

    # when they are read
    spec = ExperimentSpec.from_dict(data)

    # then each field has its declared type
    assert spec.optim.lr == 0.01
    assert spec.run.epochs == 3
    assert spec.model.batch_norm is False
    assert spec.model.hidden_sizes == (64, 32)


# --- one bad field, one error keyed by its path --------------------------------------------


@pytest.mark.parametrize("lr", [-0.001, 0])
def test_it_rejects_a_learning_rate_that_is_not_positive(lr: float) -> None:
    # given a spec whose learning rate is zero or negative
    # when it is validated
    errors = errors_for({"optim": {"lr": lr}})

    # then the only error is on optim.lr
    assert list(errors) == ["optim.lr"]


def test_it_rejects_text_where_a_number_belongs() -> None:
    # given a learning rate typed as letters
    # when it is validated
    errors = errors_for({"optim": {"lr": "abc"}})

    # then optim.lr says it must be a number
    assert errors == {"optim.lr": "must be a number"}


@pytest.mark.parametrize("lr", ["nan", "inf", float("inf")])
def test_it_rejects_a_learning_rate_that_is_not_finite(lr: Any) -> None:
    # given a learning rate of NaN or infinity
    # when it is validated
    errors = errors_for({"optim": {"lr": lr}})

    # then optim.lr says it must be finite
    assert errors == {"optim.lr": "must be a finite number"}


def test_it_rejects_integers_past_the_range_of_a_float_on_their_fields() -> None:
    # given whole numbers too large for a float (JSON and forms can carry them)
    huge = 10**400

    # when they are validated
    errors = errors_for({"run": {"epochs": huge}, "optim": {"lr": huge},
                         "model": {"hidden_sizes": [huge]}})

    # then each field says so, instead of an OverflowError escaping: whole numbers stay exact
    # and meet their field's range
    assert errors == {"run.epochs": "must be between 1 and 10000 epochs",
                      "optim.lr": "must be a finite number",
                      "model.hidden_sizes": "every size must be between 1 and 65536 units"}


def test_it_rejects_zero_epochs() -> None:
    # given a run of zero epochs
    # when it is validated
    errors = errors_for({"run": {"epochs": 0}})

    # then the error is on run.epochs
    assert list(errors) == ["run.epochs"]


def test_it_rejects_a_fractional_epoch_count() -> None:
    # given 2.5 epochs
    # when it is validated
    errors = errors_for({"run": {"epochs": 2.5}})

    # then run.epochs asks for a whole number
    assert errors == {"run.epochs": "must be a whole number"}


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_it_rejects_a_val_fraction_outside_zero_and_one(fraction: float) -> None:
    # given a validation share that leaves no training or no validation rows
    # when it is validated
    errors = errors_for({"data": {"val_fraction": fraction}})

    # then the error is on data.val_fraction
    assert list(errors) == ["data.val_fraction"]


def test_it_rejects_an_unknown_dataset_and_lists_the_known_ones() -> None:
    # given a dataset the catalog does not have
    # when it is validated
    errors = errors_for({"data": {"dataset": "cifar10"}})

    # then data.dataset names the choices
    assert list(errors) == ["data.dataset"]
    assert all(name in errors["data.dataset"] for name in CATALOG)


def test_it_rejects_an_unknown_field() -> None:
    # given a field no section declares
    # when it is validated
    errors = errors_for({"model": {"kernel_size": 3}})

    # then the error is on that field's path
    assert errors == {"model.kernel_size": "unknown field"}


def test_it_rejects_an_unknown_section() -> None:
    # given a section the spec does not have
    # when it is validated
    errors = errors_for({"scheduler": {"gamma": 0.1}})

    # then the error is on the section's name
    assert errors == {"scheduler": "unknown section"}


def test_it_rejects_a_spec_that_is_not_an_object() -> None:
    # given a JSON list where an object belongs
    # when it is validated
    errors = errors_for([1, 2])  # type: ignore[arg-type]

    # then the whole spec is refused
    assert list(errors) == ["spec"]


def test_it_reports_bad_fields_of_every_section_together() -> None:
    # given one bad field in each of the four sections
    data = {
        "data": {"val_fraction": 1.5},
        "model": {"dropout": 1.0},
        "optim": {"lr": -1},
        "run": {"epochs": 0},
    }

    # when it is validated
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict(data)

    # then one SpecError carries all four, and its message names each path
    expected = {"data.val_fraction", "model.dropout", "optim.lr", "run.epochs"}
    assert set(caught.value.errors) == expected
    assert all(f"{path}: " in str(caught.value) for path in expected)


def test_it_reports_several_bad_fields_of_one_section_together() -> None:
    # given three out-of-range fields in the optim section
    # when it is validated
    errors = errors_for({"optim": {"lr": 0, "momentum": 1.0, "weight_decay": -1}})

    # then each has its own error
    assert set(errors) == {"optim.lr", "optim.momentum", "optim.weight_decay"}


# --- choices that cannot train together -----------------------------------------------------


def test_it_rejects_a_cnn_on_tabular_data() -> None:
    # given the default CNN pointed at the tabular wine data
    # when it is validated
    errors = errors_for({"data": {"dataset": "wine"}})

    # then the architecture is what must change
    assert list(errors) == ["model.arch"]


def test_it_rejects_mse_for_a_classification_task() -> None:
    # given digits classification trained with MSE
    # when it is validated
    errors = errors_for({"optim": {"loss": "mse"}})

    # then the loss is what must change
    assert list(errors) == ["optim.loss"]


def test_it_rejects_cross_entropy_for_a_regression_task() -> None:
    # given an MLP on the diabetes regression data with the default cross-entropy loss
    # when it is validated
    errors = errors_for({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"}})

    # then the loss is what must change
    assert list(errors) == ["optim.loss"]


def test_it_rejects_a_batch_larger_than_the_training_split() -> None:
    # given a batch one row larger than iris's training split
    train_rows = dataset_info("iris").train_rows(0.2)
    data = {
        "data": {"dataset": "iris", "val_fraction": 0.2},
        "model": {"arch": "mlp"},
        "run": {"batch_size": train_rows + 1},
    }

    # when it is validated
    errors = errors_for(data)

    # then the batch size is what must change
    assert list(errors) == ["run.batch_size"]


def test_it_accepts_a_batch_as_large_as_the_training_split() -> None:
    # given a batch exactly the size of iris's training split
    train_rows = dataset_info("iris").train_rows(0.2)
    data = {
        "data": {"dataset": "iris", "val_fraction": 0.2},
        "model": {"arch": "mlp"},
        "run": {"batch_size": train_rows},
    }

    # when it is validated
    spec = ExperimentSpec.from_dict(data)

    # then it is a full-batch spec
    assert spec.run.batch_size == train_rows


# --- patched() ---------------------------------------------------------------------------


def test_patched_applies_the_patch_and_keeps_the_other_fields() -> None:
    # given the default spec
    spec = ExperimentSpec()

    # when a clone changes the learning rate and the epochs
    clone = spec.patched({"optim": {"lr": 0.01}, "run": {"epochs": 4}})

    # then those fields changed, the rest did not, and the original is untouched
    assert (clone.optim.lr, clone.run.epochs) == (0.01, 4)
    assert (clone.data, clone.model) == (spec.data, spec.model)
    assert spec.optim.lr == 1e-3


def test_patched_validates_the_result() -> None:
    # given the default digits CNN
    spec = ExperimentSpec()

    # when a patch switches it to tabular data without changing the architecture
    with pytest.raises(SpecError) as caught:
        spec.patched({"data": {"dataset": "iris"}})

    # then the clone is refused on model.arch
    assert list(caught.value.errors) == ["model.arch"]


# --- the catalog against the data ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_the_catalog_describes_the_data_that_is_loaded(name: str) -> None:
    # given the catalog's static facts about a dataset
    info = CATALOG[name]

    # when the dataset is actually loaded and split (the big ones on a subset, kept quick)
    subset = 3000 if info.rows > 10000 else 0
    data = prepare(name, 0.2, seed=0, subset=subset)

    # then its rows, example shape and class count are the ones the catalog promised
    labels = torch.cat([data.y_train, data.y_val])
    test_rows = 0 if data.x_test is None else len(data.x_test)
    used = subset or info.rows
    assert len(data.x_train) + len(data.x_val) == used
    assert test_rows == info.test_rows
    if info.modality == "text":
        assert info.input_shape == ()  # token ids: texts vary in length
    else:
        assert isinstance(data.x_train, torch.Tensor)
        assert tuple(data.x_train.shape[1:]) == info.input_shape
    if info.task == "classification":
        assert len(labels.unique()) == info.num_classes == len(data.label_names)
    else:
        assert info.num_classes == 0
        assert labels.is_floating_point()


@pytest.mark.parametrize("fraction", [0.1, 0.14, 0.2, 0.35])
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_train_rows_is_the_length_of_the_training_split(name: str, fraction: float) -> None:
    # given what the catalog says is left for training at this validation share (the big sets
    # on a subset, kept quick)
    subset = 3000 if CATALOG[name].rows > 10000 else 0
    expected = CATALOG[name].train_rows(fraction, subset)

    # when the dataset is split with that share
    data = prepare(name, fraction, seed=1, subset=subset)

    # then the training split has exactly that many rows
    assert len(data.x_train) == len(data.y_train) == expected


# --- edge cases found in review -----------------------------------------------------------------


def test_a_number_too_large_for_a_float_is_a_field_error() -> None:
    assert set(errors_for({"run": {"epochs": 10**400}})) == {"run.epochs"}


def test_fractional_hidden_sizes_are_refused_not_truncated() -> None:
    assert set(errors_for({"model": {"hidden_sizes": [1.5, 2.7]}})) == {"model.hidden_sizes"}


def test_a_type_error_and_a_range_error_in_one_section_are_reported_together() -> None:
    errors = errors_for({"optim": {"lr": "abc", "weight_decay": -1}})

    assert set(errors) == {"optim.lr", "optim.weight_decay"}


def test_a_split_that_leaves_no_training_rows_is_blamed_on_the_fraction() -> None:
    errors = errors_for({"data": {"dataset": "iris", "val_fraction": 0.999},
                         "model": {"arch": "mlp"}, "run": {"batch_size": 1}})

    assert set(errors) == {"data.val_fraction"}


def test_float_noise_does_not_add_a_validation_row() -> None:
    # 150 * 0.14 is 21.000000000000004 in floating point
    assert dataset_info("iris").train_rows(0.14) == 150 - 21


def test_batch_norm_with_single_row_batches_is_refused() -> None:
    assert set(errors_for({"run": {"batch_size": 1}})) == {"run.batch_size"}


# --- what a new run on a data set is offered ---------------------------------------------------


def test_a_small_table_is_offered_enough_epochs_for_its_steps_and_weight_decay() -> None:
    # given Iris (120 training rows: 2 batches an epoch) and a 20,000-row table
    iris = dataset_info("iris")
    large = dataclasses.replace(iris, name="upload:1", rows=20000)

    # then Iris gets epochs up to the cap, and the full weight decay
    assert proposed_for(iris) == {"model.arch": "mlp", "optim.loss": "cross_entropy",
                                  "run.epochs": 300, "optim.weight_decay": 0.01}
    # and the large table keeps the spec's 15 epochs (250 steps each), with a weaker prior
    assert proposed_for(large)["run.epochs"] == 15
    assert proposed_for(large)["optim.weight_decay"] == 0.0005
    # and a regression is offered MSE; images and texts their family, nothing else
    assert proposed_for(dataset_info("diabetes"))["optim.loss"] == "mse"
    assert proposed_for(dataset_info("fashion_mnist")) == {"model.arch": "cnn",
                                                           "optim.loss": "cross_entropy"}
    assert proposed_for(dataset_info("sst2"))["model.arch"] == "lstm"
    # and every proposal validates as a spec on its set
    for name in ("iris", "diabetes", "breast_cancer", "wine"):
        patch: dict[str, dict[str, Any]] = {"data": {"dataset": name}}
        for path, value in proposed_for(dataset_info(name)).items():
            section, field = path.split(".")
            patch.setdefault(section, {})[field] = value
        ExperimentSpec.from_dict(patch)
