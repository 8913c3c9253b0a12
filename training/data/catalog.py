"""What each built-in dataset is, known without loading it (so the web process can validate)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: task, modality, size and shape."""

    name: str
    title: str
    task: str  # "classification" or "regression"
    modality: str  # "image" or "tabular"
    rows: int
    input_shape: tuple[int, ...]  # one example, channels first for images
    num_classes: int  # 0 for regression

    def train_rows(self, val_fraction: float) -> int:
        """Rows left for training after the validation split."""
        return self.rows - validation_rows(self.rows, val_fraction)


def validation_rows(rows: int, fraction: float) -> int:
    """Rows held out for validation: the fraction rounded up, at least one. The tolerance keeps
    float noise (150 * 0.14 = 21.000000000000004) from adding a row."""
    return max(1, math.ceil(rows * fraction - 1e-9))


CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "Digits (sklearn, 8×8 images)", "classification", "image",
                    1797, (1, 8, 8), 10),
        DatasetInfo("wine", "Wine (sklearn, tabular)", "classification", "tabular",
                    178, (13,), 3),
        DatasetInfo("breast_cancer", "Breast cancer (sklearn, tabular)", "classification",
                    "tabular", 569, (30,), 2),
        DatasetInfo("iris", "Iris (sklearn, tabular)", "classification", "tabular",
                    150, (4,), 3),
        DatasetInfo("diabetes", "Diabetes (sklearn, regression)", "regression", "tabular",
                    442, (10,), 0),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """Facts about a dataset by name; KeyError with a readable message when unknown."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(CATALOG)}") from None
