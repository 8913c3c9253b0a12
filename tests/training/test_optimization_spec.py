"""The spec's loss, optimizer, schedule, regularization and training-control fields: defaults,
round trips, and one clear error on the field for every bad value or combination."""

from __future__ import annotations

import json
from typing import Any

import pytest

from training import ExperimentSpec, SpecError
from training.data import catalog
from training.data.catalog import DatasetInfo


def errors_for(data: dict[str, Any]) -> dict[str, str]:
    """The field errors ``from_dict`` raises for ``data`` (fails the test if it accepts it)."""
    with pytest.raises(SpecError) as caught:
        ExperimentSpec.from_dict(data)
    return caught.value.errors


IRIS = {"data": {"dataset": "iris"}, "model": {"arch": "mlp"}}
DIABETES = {"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"}, "optim": {"loss": "mse"}}


def on(base: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """``base`` with fields added to its sections."""
    merged = {name: dict(fields) for name, fields in base.items()}
    for name, fields in sections.items():
        merged.setdefault(name, {}).update(fields)
    return merged


# --- defaults and round trips ---------------------------------------------------------------


def test_a_spec_stored_before_schedules_existed_still_loads() -> None:
    # given a stored spec with no schedule or regularization section
    stored = {"version": 1, "optim": {"lr": 0.01}, "run": {"epochs": 3}}

    # when it is read
    spec = ExperimentSpec.from_dict(stored)

    # then the new options have their defaults: no warmup, constant lr, no L1, no tricks
    assert (spec.schedule.kind, spec.schedule.warmup) == ("constant", 0)
    assert spec.regularization.l1 == 0.0
    assert (spec.run.grad_accumulation, spec.run.precision, spec.run.compile) == (1, "auto",
                                                                                  False)
    assert (spec.run.monitor, spec.run.restore_best) == ("auto", True)


def test_every_new_option_round_trips_through_json() -> None:
    # given a spec that sets every loss, optimizer, schedule and control option
    spec = ExperimentSpec.from_dict(on(
        IRIS,
        optim={"optimizer": "sgd", "nesterov": True, "label_smoothing": 0.1,
               "class_weights": "balanced"},
        schedule={"kind": "cosine", "warmup": 2, "warmup_unit": "epochs", "min_lr": 1e-5},
        regularization={"l1": 1e-4},
        run={"monitor": "val_loss", "restore_best": False, "grad_accumulation": 2,
             "precision": "fp32", "compile": True, "epochs": 5},
    ))

    # when it goes through JSON, as the database and the checkpoint store it
    restored = ExperimentSpec.from_dict(json.loads(json.dumps(spec.to_dict())))

    # then nothing changed
    assert restored == spec
    assert set(spec.to_dict()) >= {"schedule", "regularization"}


# --- one bad value, one error on its field --------------------------------------------------


@pytest.mark.parametrize(("section", "field", "value"), [
    ("optim", "optimizer", "lbfgs"),
    ("optim", "loss", "hinge"),
    ("optim", "label_smoothing", 1.0),
    ("optim", "label_smoothing", -0.1),
    ("optim", "class_weights", "inverse"),
    ("optim", "huber_delta", 0),
    ("schedule", "kind", "cyclic"),
    ("schedule", "warmup", -1),
    ("schedule", "warmup_unit", "minutes"),
    ("schedule", "step_epochs", 0),
    ("schedule", "step_factor", 1.0),
    ("schedule", "decay_per_epoch", 0),
    ("schedule", "min_lr", -1e-3),
    ("schedule", "pct_start", 1.0),
    ("schedule", "plateau_factor", 1.5),
    ("schedule", "plateau_patience", -1),
    ("regularization", "l1", -0.1),
    ("run", "grad_accumulation", 0),
    ("run", "precision", "fp16"),
    ("run", "monitor", "train_loss"),
    ("run", "restore_best", "maybe"),
    ("run", "compile", "yes please"),
])
def test_a_bad_value_is_an_error_on_its_field(section: str, field: str, value: Any) -> None:
    # given one out-of-range or unknown value
    # when the spec is validated
    errors = errors_for({section: {field: value}})

    # then the only error is on that field
    assert list(errors) == [f"{section}.{field}"]


def test_a_regression_loss_on_a_classification_task_is_refused_on_the_loss() -> None:
    # given MAE on iris's class labels
    # when it is validated
    errors = errors_for(on(IRIS, optim={"loss": "mae"}))

    # then the loss is blamed and told to use cross-entropy
    assert errors == {"optim.loss": "iris is a classification task: use cross-entropy"}


def test_cross_entropy_on_a_regression_task_names_every_regression_loss() -> None:
    # given cross-entropy on diabetes
    # when it is validated
    errors = errors_for(on(DIABETES, optim={"loss": "cross_entropy"}))

    # then the loss is blamed and the three regression losses are named
    assert errors == {"optim.loss": "diabetes is a regression task: use MSE, MAE or Huber"}


def test_a_loss_refusal_names_an_uploaded_set_by_its_name_not_its_reference() -> None:
    # given an uploaded regression table called "houses", known to the engine as "upload:7"
    catalog.remember(DatasetInfo("upload:7", "houses", "regression", "tabular", 200, (4,), 0))
    try:
        # when cross-entropy on it is validated
        errors = errors_for({"data": {"dataset": "upload:7"}, "model": {"arch": "mlp"}})
    finally:
        catalog.forget()

    # then the message names the set as the pages do
    assert errors == {"optim.loss": "houses is a regression task: use MSE, MAE or Huber"}


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_every_regression_loss_is_accepted_for_regression(loss: str) -> None:
    # given a regression loss on diabetes
    # when it is validated
    spec = ExperimentSpec.from_dict(on(DIABETES, optim={"loss": loss}))

    # then it stands
    assert spec.optim.loss == loss


@pytest.mark.parametrize("option", [{"label_smoothing": 0.1}, {"class_weights": "balanced"}])
def test_cross_entropy_options_are_refused_with_a_regression_loss(option: dict[str, Any]) -> None:
    # given label smoothing or class weights with MSE
    # when it is validated
    errors = errors_for(on(DIABETES, optim=option))

    # then the option is blamed, saying it belongs to cross-entropy
    (field,) = option
    assert list(errors) == [f"optim.{field}"] and "cross-entropy" in errors[f"optim.{field}"]


def test_nesterov_is_refused_for_adam() -> None:
    # given Nesterov momentum with Adam
    # when it is validated
    errors = errors_for({"optim": {"optimizer": "adam", "nesterov": True}})

    # then the error is on optim.nesterov
    assert errors == {"optim.nesterov": "Nesterov momentum applies to SGD only"}


def test_nesterov_without_momentum_is_refused() -> None:
    # given Nesterov with SGD and no momentum (torch refuses it too)
    # when it is validated
    errors = errors_for({"optim": {"optimizer": "sgd", "momentum": 0, "nesterov": True}})

    # then the error is on optim.nesterov
    assert list(errors) == ["optim.nesterov"]


@pytest.mark.parametrize(("base", "metric"), [(IRIS, "val_rmse"), (IRIS, "val_mae"),
                                              (DIABETES, "val_acc")])
def test_a_metric_the_task_does_not_log_cannot_be_monitored(base: dict[str, Any],
                                                            metric: str) -> None:
    # given a monitored metric the task never computes
    # when it is validated
    errors = errors_for(on(base, run={"monitor": metric}))

    # then the error is on run.monitor, naming the metric
    assert list(errors) == ["run.monitor"] and metric in errors["run.monitor"]


def test_a_warmup_as_long_as_the_run_is_refused_with_the_runs_length() -> None:
    # given iris in batches of 64 (2 steps per epoch) for 3 epochs, warming up for 3 epochs
    data = on(IRIS, run={"epochs": 3, "batch_size": 64},
              schedule={"warmup": 3, "warmup_unit": "epochs"})

    # when it is validated
    errors = errors_for(data)

    # then the warmup is blamed, with both lengths in steps
    assert errors == {"schedule.warmup": "6 steps is the whole run (6 steps of 2 per epoch)"}


def test_gradient_accumulation_shortens_the_run_a_warmup_must_fit_in() -> None:
    # given 8 batches per epoch accumulated 4 at a time (2 steps per epoch) for 2 epochs
    data = on(IRIS, run={"epochs": 2, "batch_size": 16, "grad_accumulation": 4},
              schedule={"warmup": 4})

    # when it is validated
    errors = errors_for(data)

    # then 4 warmup steps fill the 4-step run
    assert list(errors) == ["schedule.warmup"]


def test_a_warmup_shorter_than_the_run_is_accepted() -> None:
    # given a 5-step warmup in front of a 6-step run
    spec = ExperimentSpec.from_dict(on(IRIS, run={"epochs": 3, "batch_size": 64},
                                       schedule={"warmup": 5}))

    # when its length is asked
    # then it stands
    assert spec.schedule.warmup_steps(2) == 5


def test_cosine_must_end_below_the_learning_rate() -> None:
    # given cosine annealing to a floor above the starting learning rate
    # when it is validated
    errors = errors_for({"optim": {"lr": 0.01}, "schedule": {"kind": "cosine", "min_lr": 0.1}})

    # then the floor is blamed
    assert list(errors) == ["schedule.min_lr"]


def test_bf16_on_the_cpu_is_refused_on_the_precision() -> None:
    # given bf16 autocast on a spec pinned to the CPU
    # when it is validated
    errors = errors_for({"run": {"device": "cpu", "precision": "bf16"}})

    # then the precision is blamed and the alternatives named
    assert list(errors) == ["run.precision"] and "auto or fp32" in errors["run.precision"]


def test_bf16_on_cuda_is_a_valid_spec() -> None:
    # given bf16 autocast on CUDA (validated where there may be no GPU: the web process)
    # when it is validated
    spec = ExperimentSpec.from_dict({"run": {"device": "cuda", "precision": "bf16"}})

    # then it stands; the worker checks the GPU when it runs
    assert spec.run.precision == "bf16"
