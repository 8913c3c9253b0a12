"""Tuning studies: the spec refuses bad search spaces field by field, grid search visits exactly
its grid, and a pruner stops a hopeless trial early in a real run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy

from training import ExperimentSpec, MemoryReporter
from training.spec import SpecError
from training.tuning import (
    Heartbeat,
    TuningSpec,
    ask,
    create_study,
    new_study_spec,
    optimize,
    rdb_storage,
    run_trial,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def iris_base(epochs: int = 1) -> dict[str, Any]:
    return ExperimentSpec().patched({
        "data": {"dataset": "iris"},
        "model": {"arch": "mlp", "hidden_sizes": [16]},
        "run": {"epochs": epochs, "batch_size": 64, "device": "cpu"},
    }).to_dict()


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        TuningSpec.from_dict(data)
    return caught.value.errors


LR_RANGE = {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}


# --- validation -------------------------------------------------------------------------------


def test_a_valid_study_round_trips_through_its_dict() -> None:
    # given a study over a log learning rate and two optimizers
    data = {"base": iris_base(), "space": {
        **LR_RANGE, "optim.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    }, "algorithm": "random", "n_trials": 8, "parallelism": 2, "pruner": "median"}

    # when it is validated and written back
    spec = TuningSpec.from_dict(data)

    # then nothing is lost
    assert TuningSpec.from_dict(spec.to_dict()) == spec
    assert spec.space["optim.lr"].log is True


def test_it_rejects_an_empty_search_space() -> None:
    assert errors_of({"space": {}}) == {"space": "choose at least one field to tune"}


def test_it_rejects_a_log_range_with_a_non_positive_bound() -> None:
    errors = errors_of({"space": {"optim.weight_decay": {
        "type": "float", "low": 0.0, "high": 0.1, "log": True}}})

    assert errors == {"space.optim.weight_decay": "a log range needs a positive lower bound"}


def test_it_rejects_range_bounds_past_the_range_of_a_float() -> None:
    errors = errors_of({"space": {"run.epochs": {"type": "int", "low": 1, "high": 10**400}}})

    assert errors == {"space.run.epochs": "high must be a number"}


def test_it_refuses_a_search_over_the_run_whose_weights_a_trial_starts_from() -> None:
    # (the run ids of a project are no hyperparameter: trials would start from any run in
    # it, whatever its model)
    errors = errors_of({"base": iris_base(), "space": {
        **LR_RANGE, "model.init_from": {"type": "int", "low": 1, "high": 500}}})

    assert list(errors) == ["space.model.init_from"]
    assert "not a hyperparameter" in errors["space.model.init_from"]


def test_it_refuses_searching_the_activation_of_a_network_that_does_not_read_it() -> None:
    # given a CNN base (its blocks use ReLU whatever model.activation says)
    base = ExperimentSpec().patched({"data": {"dataset": "digits"}, "model": {"arch": "cnn"}})
    # when a study searches the activation, then it is refused on it: every trial would train
    # the same network
    with pytest.raises(SpecError) as refused:
        new_study_spec({"base": base.to_dict(), "space": {"model.activation": {
            "type": "categorical", "choices": ["relu", "tanh"]}}})
    assert refused.value.errors == {"space.model.activation": (
        "this run does not use it: it applies when model.arch is mlp, and here it is cnn")}


def test_it_rejects_a_grid_over_a_continuous_range() -> None:
    errors = errors_of({"space": LR_RANGE, "algorithm": "grid"})

    assert errors == {"space.optim.lr": "grid search needs a step for a float range"}


def test_it_rejects_a_budget_of_zero() -> None:
    errors = errors_of({"space": LR_RANGE, "n_trials": 0, "timeout": 0})

    assert errors == {"n_trials": "give a number of trials, a time limit, or both"}


def test_it_reports_every_bad_field_at_once() -> None:
    # given an unknown field, a value the spec refuses, bad parallelism and a wrong direction
    errors = errors_of({
        "space": {
            "optim.nope": {"type": "float", "low": 0, "high": 1},
            "model.dropout": {"type": "float", "low": 0.0, "high": 1.5},
            "run.batch_size": {"type": "float", "low": 8, "high": 64},
        },
        "parallelism": 0, "direction": "minimize",
    })

    # then each gets its own message
    assert set(errors) == {"space.optim.nope", "space.model.dropout", "space.run.batch_size",
                           "parallelism", "direction"}
    assert "must be in [0, 1)" in errors["space.model.dropout"]
    assert errors["space.run.batch_size"].startswith("float range on a int field")


def test_it_refuses_an_objective_the_task_does_not_have() -> None:
    base = ExperimentSpec().patched({"data": {"dataset": "diabetes"}, "model": {"arch": "mlp"},
                                     "optim": {"loss": "mse"}}).to_dict()

    errors = errors_of({"base": base, "space": LR_RANGE, "objective": "val_acc"})

    assert errors == {"objective": "diabetes is a regression task: no val_acc"}


def test_the_grid_size_is_the_product_of_each_dimension() -> None:
    # given 3 learning rates, 2 optimizers and the hidden sizes 8..32 in steps of 8
    spec = TuningSpec.from_dict({"algorithm": "grid", "space": {
        "optim.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
        "optim.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "model.width": {"type": "int", "low": 8, "high": 32, "step": 8},
    }})

    # then the grid has 3 * 2 * 4 points, with the values a user typed
    assert spec.grid_size() == 24
    assert spec.grid_values()["optim.lr"] == [0.01, 0.02, 0.03]


# --- running ------------------------------------------------------------------------------------


def test_grid_search_visits_exactly_its_grid(tmp_path: Path) -> None:
    # given a 3 x 2 grid and a trial budget larger than the grid
    spec = TuningSpec.from_dict({"base": iris_base(), "algorithm": "grid", "n_trials": 50,
                                 "space": {
        "optim.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
        "optim.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    }})

    # when the study runs
    study = optimize(spec, tmp_path)

    # then it trained each of the 6 points once, and nothing else
    visited = sorted((t.params["optim.lr"], t.params["optim.optimizer"]) for t in study.trials)
    assert visited == sorted((lr, o) for lr in (0.01, 0.02, 0.03) for o in ("adam", "sgd"))


def test_the_median_pruner_stops_a_hopeless_trial_early(tmp_path: Path) -> None:
    # given a median-pruned study of 6-epoch runs: three that learn, then one that cannot
    spec = TuningSpec.from_dict({"base": iris_base(epochs=6), "pruner": "median",
                                 "algorithm": "random", "space": LR_RANGE})
    study = create_study(spec)
    for lr in (0.05, 0.05, 0.05, 1e-4):
        study.enqueue_trial({"optim.lr": lr})
    reporters: list[MemoryReporter] = []

    def objective(trial: optuna.Trial) -> float:
        reporters.append(MemoryReporter())
        outcome = run_trial(spec, trial, reporters[-1], tmp_path / str(trial.number))
        assert outcome.value is not None
        return outcome.value

    # when the four trials run
    study.optimize(objective, n_trials=4)

    # then the last is pruned after fewer epochs than the others trained, and not failed
    states = [t.state for t in study.trials]
    assert states[:3] == [optuna.trial.TrialState.COMPLETE] * 3
    assert states[3] == optuna.trial.TrialState.PRUNED
    epochs = [len(r.series("val_acc")) for r in reporters]
    assert epochs[:3] == [6, 6, 6] and epochs[3] < 6


def test_a_running_trial_beats_in_the_study_s_rdb_storage(tmp_path: Path) -> None:
    # given a study in RDB storage with heartbeats (Optuna wraps it in its caching storage)
    spec = TuningSpec.from_dict({"base": iris_base(), "space": LR_RANGE})
    storage = rdb_storage(f"sqlite:///{tmp_path / 'optuna.sqlite3'}", heartbeat_interval=1)
    study = create_study(spec, storage, "beats")
    trial = ask(study)

    # when a trial runs inside its heartbeat
    with Heartbeat(study, trial):
        pass

    # then its heartbeat is stored, so a worker dying now would leave a stale trial, not a
    # trial running for ever
    assert storage._get_stale_trial_ids(study._study_id) == []
    assert storage.get_heartbeat_interval() == 1
    with storage.scoped_session() as session:
        beats = session.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats")).all()
    assert [row[0] for row in beats] == [trial._trial_id]
