"""What ``predict`` returns: labels with probabilities for a classifier, values for a
regression."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Prediction:
    """One row per input. ``outputs``: the model's logits (classification) or its values in
    the target's own units (regression). ``probabilities``: softmax of the logits (None for a
    regression). ``labels``: the most probable class name of each row (the upload's own class
    names for an uploaded data set; empty for a regression)."""

    outputs: torch.Tensor
    probabilities: torch.Tensor | None
    labels: list[str]
    label_names: list[str]

    @property
    def logits(self) -> torch.Tensor:
        return self.outputs

    @property
    def indices(self) -> list[int]:
        """The most probable class index of each row."""
        return [int(i) for i in self.outputs.argmax(1)] if self.probabilities is not None else []

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """Each row's ``k`` most probable (class name, probability) pairs, most probable first."""
        if self.probabilities is None:
            return []
        values, indices = self.probabilities.topk(min(k, self.probabilities.shape[1]), dim=1)
        return [[(self.label_names[int(i)], float(p)) for p, i in zip(row_p, row_i, strict=True)]
                for row_p, row_i in zip(values, indices, strict=True)]


def prediction(outputs: torch.Tensor, task: str, label_names: Sequence[str]) -> Prediction:
    """The Prediction of a model's ``outputs`` for a ``task`` ("classification" or
    "regression") whose classes are ``label_names``."""
    outputs = outputs.detach().float().cpu()
    if task == "regression":
        return Prediction(outputs, None, [], [])
    names = list(label_names) or [str(i) for i in range(outputs.shape[1])]
    probabilities = torch.softmax(outputs, dim=1)
    labels = [names[int(i)] for i in outputs.argmax(1)]
    return Prediction(outputs, probabilities, labels, names)
