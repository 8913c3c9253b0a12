"""Model compression: weight and channel pruning, knowledge distillation, int8 quantization.

``training.compression.spec`` describes a job and imports neither torch nor Django (the web
process validates with it); ``job.compress`` runs one. Fine-tuning and distillation go through
the one training loop, so their curves stream through the Reporter like any run's.
"""

from training.compression.spec import METHODS, CompressionSpec

__all__ = ["METHODS", "CompressionSpec"]
