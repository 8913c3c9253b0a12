"""Predict with a model trained in Fitboard, without Fitboard.

>>> import fitboard_model
>>> checkpoint = fitboard_model.load("digits-cnn-12-best.zip")
>>> result = checkpoint.predict(images)      # uint8 0-255 or float 0-1, (N, C, H, W)
>>> result.labels, result.probabilities, result.logits

Depends on torch, safetensors and numpy only. The loader's names are imported when first used,
so ``fitboard_model.fieldmeta`` and ``fitboard_model.plugins`` (what a plugin's config and
Fitboard's spec validation read) load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fitboard_model.checkpoint import FORMAT, Checkpoint, CheckpointError, load
    from fitboard_model.inputs import InputError
    from fitboard_model.prediction import Prediction

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "InputError", "Prediction", "load"]
__version__ = "0.1.0"
_HOMES = {"FORMAT": "checkpoint", "Checkpoint": "checkpoint", "CheckpointError": "checkpoint",
          "load": "checkpoint", "InputError": "inputs", "Prediction": "prediction"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"fitboard_model.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'fitboard_model' has no attribute {name!r}")
