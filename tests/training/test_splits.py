"""Train / validation / test splits and subsets: seeded, stratified, and the sizes the catalog
(and so the spec's checks) predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import datasets

from training.data import dataset_info, prepare
from training.data.catalog import split_sizes
from training.data.loading import split_indices, split_three


@pytest.mark.parametrize("stratified", [True, False])
def test_the_three_splits_are_disjoint_and_cover_every_row(stratified: bool) -> None:
    # given breast-cancer's labels, used for stratification or not
    labels = datasets.load_breast_cancer().target if stratified else None

    # when its 569 rows are split with a test fraction
    train, val, test = split_three(569, labels, seed=1, val_fraction=0.2, test_fraction=0.15)

    # then no row is in two parts and together they hold every row once
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert sorted([*train, *val, *test]) == list(range(569))


def test_the_test_split_keeps_each_class_share() -> None:
    # given digits' labels
    labels = datasets.load_digits().target

    # when a quarter of the rows is held out for testing
    _, _, test = split_three(len(labels), labels, seed=4, val_fraction=0.2, test_fraction=0.25)

    # then each class's test rows are within one row of its share
    counts = np.bincount(labels)
    expected = counts * len(test) / len(labels)
    assert np.all(np.abs(np.bincount(labels[test], minlength=10) - expected) < 1)


def test_the_same_seed_gives_the_same_three_splits() -> None:
    labels = datasets.load_wine().target
    first = split_three(178, labels, seed=9, val_fraction=0.2, test_fraction=0.2, subset=70)

    second = split_three(178, labels, seed=9, val_fraction=0.2, test_fraction=0.2, subset=70)

    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_without_test_or_subset_the_validation_split_is_unchanged() -> None:
    # given the two-way split the engine has always made
    labels = datasets.load_wine().target
    train, val = split_indices(178, 0.2, seed=3, labels=labels)

    # when the three-way splitter is asked for no test rows and every row
    train3, val3, test3 = split_three(178, labels, seed=3, val_fraction=0.2)

    # then it makes the same split, so earlier runs replay exactly
    assert np.array_equal(train, train3) and np.array_equal(val, val3) and len(test3) == 0


@pytest.mark.parametrize(
    ("name", "test_fraction", "subset"),
    [("iris", 0.2, 0), ("wine", 0.1, 80), ("digits", 0.0, 300), ("diabetes", 0.3, 100),
     ("diabetes", 0.3, 1000), ("fashion_mnist", 0.0, 600)],
)
def test_prepared_splits_have_the_sizes_the_catalog_predicts(
        name: str, test_fraction: float, subset: int) -> None:
    # given the sizes the catalog computes (the spec checks batch sizes against them)
    expected = split_sizes(dataset_info(name), 0.2, subset, test_fraction)

    # when the dataset is prepared with those options
    data = prepare(name, 0.2, seed=2, subset=subset, test_fraction=test_fraction)

    # then the three parts have exactly those sizes
    test_rows = 0 if data.x_test is None else len(data.x_test)
    assert (len(data.x_train), len(data.x_val), test_rows) == expected


def test_a_subset_keeps_each_class_share() -> None:
    # given Fashion-MNIST's balanced training images
    # when 1,200 of them are used
    data = prepare("fashion_mnist", 0.2, seed=0, subset=1200)

    # then every class has its tenth of the 1,200 rows, give or take one
    labels = torch.cat([data.y_train, data.y_val])
    assert len(labels) == 1200
    assert labels.bincount().tolist() == [120] * 10


def test_test_rows_are_normalised_with_training_statistics() -> None:
    # given wine with a test split
    raw = torch.from_numpy(datasets.load_wine().data.astype(np.float32))
    _, _, test = split_three(178, datasets.load_wine().target, seed=0, val_fraction=0.2,
                             test_fraction=0.2)

    # when it is prepared
    data = prepare("wine", 0.2, seed=0, test_fraction=0.2)

    # then the test tensor is those rows, scaled with the training split's statistics
    assert data.x_test is not None
    assert torch.allclose(data.x_test, data.normalisation.apply(raw[test]))
