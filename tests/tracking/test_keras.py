"""Keras 3 logs into Fitboard unchanged: a small Dense classifier of sklearn's digits fitted for a
few epochs with ``validation_split``, on the torch backend (no TensorFlow), through
``mlflow.keras.autolog()`` pointed at a live Fitboard."""

from __future__ import annotations

import math
import os

# Keras reads its backend once, when first imported; TensorFlow, its default, is not installed.
os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import mlflow  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from webapp.experiments import external, metric_store  # noqa: E402
from webapp.experiments.models import Experiment  # noqa: E402

EPOCHS = 4
BATCH = 64


def fit_digits(**autolog: object) -> None:
    """A Dense classifier fitted on the digits with a fifth held out, autologged by mlflow."""
    mlflow.keras.autolog(**autolog)
    try:
        keras.utils.set_random_seed(0)
        images, labels = load_digits(return_X_y=True)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(images / 16.0, labels, batch_size=BATCH, epochs=EPOCHS, validation_split=0.2,
                  verbose=0)
    finally:
        mlflow.keras.autolog(disable=True)


def test_keras_autolog_is_read_as_it_means(tracking, project):
    # given a Keras script autologged by mlflow (its model logged at the end, which sends the
    # points of step 0 again), pointed at Fitboard through the environment
    mlflow.set_experiment("vision")

    # when it fits
    fit_digits()

    # then the epoch's names are the diagnostics', the evaluations' own kept as logged
    run = Experiment.objects.get(project=project, kind="external")
    keys = run.progress["keys"]
    assert run.status == "succeeded"
    assert {name: keys[name] for name in ("loss", "accuracy", "val_loss", "val_accuracy",
                                          "validation_loss", "validation_accuracy")} == {
        "loss": "train_loss", "accuracy": "train_acc", "val_loss": "val_loss",
        "val_accuracy": "val_acc", "validation_loss": "validation_loss",
        "validation_accuracy": "validation_accuracy"}
    # and each curve holds one point per epoch: the model's re-sent points are not new ones
    stored = metric_store.read(run.pk)
    assert {key: len(stored[key]) for key in keys.values()} == dict.fromkeys(keys.values(),
                                                                             EPOCHS)
    assert len(tracking.get_metric_history(str(run.pk), "validation_loss")) == EPOCHS
    # and the verdict counts one evaluation per epoch
    evaluations = external.evaluation_history(run.pk, keys, external.unstepped(run.progress))
    assert len(evaluations.history["val_loss"]) == EPOCHS
    assert run.verdict_kind and run.verdict_kind != "undetermined", run.verdict["headline"]


def test_keras_autolog_every_n_steps_is_judged_at_its_evaluations(tracking, project):
    # given Keras autologged every training step: the loss and accuracy at each step, the
    # evaluations at step 0 (mlflow's `validation_*`), sent asynchronously
    mlflow.set_experiment("vision")

    # when it fits
    fit_digits(log_every_epoch=False, log_every_n_steps=1, log_models=False)

    # then the evaluations are the validation curves
    run = Experiment.objects.get(project=project, kind="external")
    keys = run.progress["keys"]
    assert {name: keys[name] for name in ("loss", "accuracy", "validation_loss",
                                          "validation_accuracy")} == {
        "loss": "train_loss", "accuracy": "train_acc", "validation_loss": "val_loss",
        "validation_accuracy": "val_acc"}
    # and the verdict reads each evaluation in its epoch, in the order the script logged them
    # (the first one, sent at step 0, included)
    logged = [m.value for m in tracking.get_metric_history(str(run.pk), "validation_loss")]
    evaluations = external.evaluation_history(run.pk, keys, external.unstepped(run.progress))
    assert evaluations.history["val_loss"] == pytest.approx(logged) and len(logged) == EPOCHS
    assert not any(math.isnan(acc) for acc in evaluations.history["val_acc"])
    assert run.verdict_kind and run.verdict_kind != "undetermined", run.verdict["headline"]
