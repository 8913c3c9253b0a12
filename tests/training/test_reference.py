"""The reference model per data set split (training/reference.py), and the verdicts of real
runs judged against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import MemoryReporter, run
from training.diagnostics import diagnose, task_info
from training.loop import RunResult
from training.reference import cache_key, compute_reference, reference_key

from .conftest import SpecFactory


def train(make_spec: SpecFactory, patch: dict, workdir: Path, references: Path) -> RunResult:
    return run(make_spec(patch), MemoryReporter(), workdir, reference_dir=references)


ONE_EPOCH = {"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [8]},
             "run": {"epochs": 1}}


def test_a_second_run_on_the_same_split_reads_the_reference_instead_of_computing_it(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given a first run on digits that computed the split's reference into the cache folder
    references = tmp_path / "references"
    first = train(make_spec, ONE_EPOCH, tmp_path / "a", references)
    stored = references / reference_key(make_spec(ONE_EPOCH))
    written = stored.stat().st_mtime_ns

    # when a second run trains on the same split
    second = train(make_spec, ONE_EPOCH, tmp_path / "b", references)

    # then it read the stored reference, left the file alone, and got the same scores
    assert first.reference is not None and not first.reference.cached
    assert second.reference is not None and second.reference.cached
    assert stored.stat().st_mtime_ns == written
    assert (second.reference.train_acc, second.reference.val_acc) == (
        first.reference.train_acc, first.reference.val_acc)


def test_another_split_of_the_same_data_set_has_its_own_reference() -> None:
    # given two specs that differ only in their validation share
    # when their cache keys are taken
    # then they differ: each split is fitted once, on its own rows
    assert cache_key("digits", 0.2, 0) != cache_key("digits", 0.3, 0)
    assert cache_key("digits", 0.2, 0) == cache_key("digits", 0.2, 0)


def test_the_reference_reaches_what_a_linear_model_does(make_spec: SpecFactory) -> None:
    # given digits and diabetes as a run prepares them
    from training.data import prepare

    # when their references are computed
    digits = compute_reference(prepare("digits", 0.2, 0))
    diabetes = compute_reference(prepare("diabetes", 0.2, 0))

    # then a logistic regression nears 96% on digits and a linear one explains half of
    # diabetes' variance (MSE on standardised targets about 0.5)
    assert digits.model == "a logistic regression"
    assert digits.val_acc is not None and digits.val_acc > 0.93
    assert diabetes.model == "a linear regression" and diabetes.val_acc is None
    assert 0.3 < diabetes.val_loss < 0.7


def test_a_two_unit_mlp_on_digits_at_its_plateau_is_underfitting_against_the_reference(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given two hidden units trained with Adam at 1e-2 until their loss levels off
    patch = {"data": {"dataset": "digits"}, "model": {"arch": "mlp", "hidden_sizes": [2]},
             "optim": {"lr": 1e-2}, "run": {"epochs": 30}}
    reporter = MemoryReporter()
    result = run(make_spec(patch), reporter, tmp_path / "run", reference_dir=tmp_path / "refs")
    history = {key: [v for _, v in reporter.series(key)]
               for key in ("train_loss", "val_loss", "train_acc", "val_acc")}

    # when the finished run is diagnosed with its data set's reference
    verdict = diagnose(history, task_info("digits"), make_spec(patch), final=True,
                       reference=result.reference)

    # then it is underfitting, and the headline and evidence name what the reference reaches
    assert verdict.kind == "underfitting", verdict.headline
    assert "a logistic regression reaches" in verdict.headline
    labels = {e.label: e for e in verdict.evidence}
    assert result.reference is not None
    assert labels["reference validation accuracy"].value == pytest.approx(
        result.reference.val_acc)
    assert labels["training accuracy"].value < result.reference.val_acc - 0.2
    assert labels["training accuracy"].detail == "median of epochs 28–30"


def test_a_wide_mlp_that_fits_wine_perfectly_while_validation_holds_is_healthy(
        make_spec: SpecFactory, tmp_path: Path) -> None:
    # given a 256×256 MLP trained on wine until its training loss is next to zero, while its
    # validation loss stays small and its validation accuracy at its best
    patch = {"data": {"dataset": "wine"}, "model": {"arch": "mlp", "hidden_sizes": [256, 256]},
             "optim": {"lr": 1e-3}, "run": {"epochs": 30, "batch_size": 16}}
    reporter = MemoryReporter()
    result = run(make_spec(patch), reporter, tmp_path / "run", reference_dir=tmp_path / "refs")
    history = {key: [v for _, v in reporter.series(key)]
               for key in ("train_loss", "val_loss", "train_acc", "val_acc")}
    assert history["train_loss"][-1] < 0.01
    assert history["val_acc"][-1] == max(history["val_acc"])

    # when it is diagnosed, with the reference and from the curves alone
    task = task_info("wine")
    verdicts = [diagnose(history, task, make_spec(patch), final=True, reference=reference)
                for reference in (result.reference, None)]

    # then it is healthy both ways
    assert [v.kind for v in verdicts] == ["healthy", "healthy"], [v.headline for v in verdicts]
