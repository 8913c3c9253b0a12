"""Predict with a model trained in Fitboard, without Fitboard.

>>> import fitboard_model
>>> checkpoint = fitboard_model.load("digits-cnn-12-best.zip")
>>> result = checkpoint.predict(images)      # uint8 0-255 or float 0-1, (N, C, H, W)
>>> result.labels, result.probabilities, result.logits

Depends on torch, safetensors and numpy only.
"""

from fitboard_model.checkpoint import FORMAT, Checkpoint, CheckpointError, load
from fitboard_model.inputs import InputError
from fitboard_model.prediction import Prediction

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "InputError", "Prediction", "load"]
__version__ = "0.1.0"
