"""Loading, splitting and normalising the built-in datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import datasets

from training.data import prepare
from training.data.loading import split_indices


def test_the_same_seed_gives_the_same_split() -> None:
    # given two preparations of wine with the same seed
    first = prepare("wine", 0.2, seed=7)

    # when it is prepared again
    second = prepare("wine", 0.2, seed=7)

    # then the validation rows and labels are identical
    assert torch.equal(first.x_val, second.x_val)
    assert torch.equal(first.y_val, second.y_val)


def test_a_different_seed_gives_a_different_split() -> None:
    # given wine split with seed 0
    first = split_indices(178, 0.2, seed=0, labels=datasets.load_wine().target)

    # when it is split with seed 1
    second = split_indices(178, 0.2, seed=1, labels=datasets.load_wine().target)

    # then other rows are held out
    assert not np.array_equal(first[1], second[1])


@pytest.mark.parametrize("stratified", [True, False])
def test_train_and_validation_rows_are_disjoint_and_cover_every_row(stratified: bool) -> None:
    # given the breast-cancer labels, used for stratification or not
    labels = datasets.load_breast_cancer().target if stratified else None

    # when its 569 rows are split
    train, val = split_indices(569, 0.25, seed=3, labels=labels)

    # then no row is in both parts and together they hold every row once
    assert not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(569))
    assert len(val) == 143  # ceil(569 * 0.25)


@pytest.mark.parametrize("name", ["wine", "iris", "breast_cancer", "digits"])
def test_the_validation_split_keeps_each_class_share(name: str) -> None:
    # given a classification dataset split into train and validation
    data = prepare(name, 0.3, seed=5)
    labels = torch.cat([data.y_train, data.y_val])
    classes, counts = labels.unique(return_counts=True)

    # when each class's validation rows are counted
    in_val = torch.stack([(data.y_val == c).sum() for c in classes])

    # then each is within one row of the class's share of the validation split
    expected = counts * len(data.y_val) / len(labels)
    assert torch.all((in_val - expected).abs() < 1), (in_val.tolist(), expected.tolist())


def test_prepare_holds_out_the_rows_split_indices_picks() -> None:
    # given wine's raw features and the split the splitter picks for seed 2
    raw = torch.from_numpy(datasets.load_wine().data.astype(np.float32))
    _, val = split_indices(178, 0.2, seed=2, labels=datasets.load_wine().target)

    # when the data is prepared with the same seed
    data = prepare("wine", 0.2, seed=2)

    # then its validation tensor is those rows, normalised
    assert torch.equal(data.x_val, data.normalisation.apply(raw[val]))


def test_features_are_normalised_with_training_statistics() -> None:
    # given wine's raw features and the training rows for seed 0
    raw = torch.from_numpy(datasets.load_wine().data.astype(np.float32))
    train, _ = split_indices(178, 0.2, seed=0, labels=datasets.load_wine().target)

    # when the data is prepared
    data = prepare("wine", 0.2, seed=0)

    # then the statistics are the training rows' own, so training features are centred and scaled
    assert data.normalisation.mean == pytest.approx(raw[train].mean(0).tolist(), rel=1e-5)
    assert data.normalisation.std == pytest.approx(raw[train].std(0).tolist(), rel=1e-5)
    assert data.x_train.mean(0).abs().max() < 1e-4
    assert data.x_train.std(0) == pytest.approx(torch.ones(13), abs=1e-4)


def test_validation_features_are_not_used_for_the_statistics() -> None:
    # given wine prepared with its validation rows held out
    data = prepare("wine", 0.2, seed=0)

    # when the validation features' mean is taken
    val_mean = data.x_val.mean(0)

    # then it is not centred: only the training rows set the statistics
    assert val_mean.abs().max() > 1e-2


def test_images_are_normalised_per_channel() -> None:
    # given the single-channel digits images
    # when they are prepared
    data = prepare("digits", 0.2, seed=0)

    # then there is one statistic for the channel, and the training pixels are centred and scaled
    assert len(data.normalisation.mean) == len(data.normalisation.std) == 1
    assert abs(float(data.x_train.mean())) < 1e-4
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-4)


def test_classification_labels_are_class_indices() -> None:
    # given the iris classification data
    # when it is prepared
    data = prepare("iris", 0.2, seed=0)

    # then labels are integer class indices, one name per class
    assert data.y_train.dtype == torch.long
    assert data.label_names == ["setosa", "versicolor", "virginica"]
    assert set(data.y_train.tolist()) == {0, 1, 2}


def test_regression_targets_are_standardised_on_the_training_split() -> None:
    # given the diabetes regression data
    # when it is prepared
    data = prepare("diabetes", 0.2, seed=0)

    # then the training targets are a centred, unit-variance column
    assert data.y_train.shape == (len(data.x_train), 1)
    assert abs(float(data.y_train.mean())) < 1e-5
    assert float(data.y_train.std()) == pytest.approx(1.0, abs=1e-5)


def test_regression_records_how_to_map_targets_back() -> None:
    # given diabetes's raw targets and the training and validation rows for seed 0
    raw = datasets.load_diabetes().target
    train, val = split_indices(442, 0.2, seed=0, labels=None)

    # when it is prepared
    data = prepare("diabetes", 0.2, seed=0)

    # then target_mean and target_std are the training targets' own, and they undo the scaling
    assert data.target_mean == pytest.approx(raw[train].mean(), rel=1e-5)
    assert data.target_std == pytest.approx(raw[train].std(ddof=1), rel=1e-5)
    restored = data.y_val.view(-1) * data.target_std + data.target_mean
    assert restored.tolist() == pytest.approx(raw[val].tolist(), rel=1e-5)
