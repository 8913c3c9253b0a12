"""Recipes: proven settings for the classic case studies, as patches on the default spec.

The web form's Recipes menu and ``bench/recipes.py`` read the same dicts, so the settings a
user starts from are the ones whose results the README records. This module imports neither
torch nor Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.spec import ExperimentSpec, SpecError


@dataclass(frozen=True)
class Recipe:
    """A named spec patch with a one-line summary and a default experiment name."""

    key: str
    title: str
    summary: str
    name: str  # the experiment name the form proposes
    patch: Mapping[str, Mapping[str, Any]]  # {"section": {"field": value}} on ExperimentSpec()

    def spec(self) -> ExperimentSpec:
        """The validated spec; SpecError when this installation lacks what it needs (e.g. a
        dataset that is not in the catalog)."""
        return ExperimentSpec().patched(self.patch)

    def available(self) -> bool:
        """Whether the recipe's spec validates here."""
        try:
            self.spec()
        except SpecError:
            return False
        return True


RECIPES: dict[str, Recipe] = {
    recipe.key: recipe
    for recipe in (
        Recipe(
            "fmnist_cnn", "Compact CNN on Fashion-MNIST with augmentation",
            "The image case study: a compact CNN (a 32- and a 64-channel convolution with batch "
            "norm, the 7×7 map flattened into a 256-unit layer) on the Fashion-MNIST training "
            "images, crop and flip augmentation, AdamW with a one-cycle schedule, 20 epochs.",
            "fmnist-cnn",
            {
                "data": {"dataset": "fashion_mnist", "val_fraction": 0.1,
                         "augment_crop": 2, "augment_flip": True},
                # Ten CPU minutes buy many epochs of a small network rather than a few of a
                # deep one: this one costs about 4M multiply-adds an image, under half the
                # 8-layer ResNet's (which reached 91.9% in 14 epochs and 10 minutes). Fashion-
                # MNIST's images are centred, so where a feature sits counts: the flattened
                # map keeps it, where global average pooling would throw it away.
                "model": {"arch": "cnn", "width": 32, "blocks": 2, "depth": 1,
                          "batch_norm": True, "head": "flatten", "head_units": 256,
                          "dropout": 0.3},
                # One-cycle reaches a good optimum in few epochs: the short budget needs it.
                "optim": {"loss": "cross_entropy", "optimizer": "adamw", "lr": 4e-3,
                          "weight_decay": 0.01},
                "schedule": {"kind": "one_cycle", "pct_start": 0.25},
                "run": {"epochs": 20, "batch_size": 128, "early_stopping_patience": 0},
            },
        ),
        Recipe(
            "minilm_sst2", "MiniLM sentiment fine-tune on SST-2",
            "The text case study: the pretrained all-MiniLM-L6-v2 encoder (22.7M parameters) "
            "fully fine-tuned with a new classifier head for one epoch on 50,000 SST-2 phrases, "
            "batched by length.",
            "minilm-sst2",
            {
                # One pass over more phrases beats several over fewer when fine-tuning. Batches
                # of phrases of a like length pad a third as much as random ones, so one pass
                # over 47,500 phrases (1,485 steps of 32) fits the 15-minute budget on 2 CPU
                # cores, where random batches fitted 30,000 (87.4% dev).
                "data": {"dataset": "sst2", "subset": 50000, "val_fraction": 0.05},
                "model": {"arch": "pretrained",
                          "pretrained": "sentence-transformers/all-MiniLM-L6-v2",
                          "freeze_encoder": False, "max_length": 64, "dropout": 0.1,
                          "group_by_length": True},
                # The usual BERT fine-tuning recipe (AdamW, warmup over the first 6% of the
                # steps, decay to zero), with the higher rate a small model takes.
                "optim": {"loss": "cross_entropy", "optimizer": "adamw", "lr": 1e-4,
                          "weight_decay": 0.01},
                "schedule": {"kind": "cosine", "warmup": 90, "warmup_unit": "steps"},
                "run": {"epochs": 1, "batch_size": 32, "grad_clip": 1.0},
            },
        ),
        Recipe(
            "lstm_sst2", "LSTM on SST-2",
            "A one-layer bidirectional LSTM over a 20,000-word vocabulary built from the SST-2 "
            "training phrases, trained from scratch.",
            "lstm-sst2",
            {
                "data": {"dataset": "sst2", "subset": 0, "val_fraction": 0.05},
                "model": {"arch": "lstm", "embed_dim": 128, "hidden_size": 128, "layers": 1,
                          "bidirectional": True, "dropout": 0.3, "max_length": 64,
                          "vocab_size": 20000, "min_freq": 2},
                "optim": {"loss": "cross_entropy", "optimizer": "adam", "lr": 2e-3},
                "schedule": {"kind": "cosine"},
                "run": {"epochs": 4, "batch_size": 64, "grad_clip": 1.0},
            },
        ),
        Recipe(
            "mlp_tabular", "MLP on tabular",
            "A two-layer MLP with dropout on the breast-cancer features, standardised with "
            "training-split statistics, with early stopping.",
            "breast-cancer-mlp",
            {
                "data": {"dataset": "breast_cancer", "val_fraction": 0.2},
                "model": {"arch": "mlp", "hidden_sizes": [64, 32], "activation": "relu",
                          "dropout": 0.2},
                "optim": {"loss": "cross_entropy", "optimizer": "adam", "lr": 1e-3,
                          "weight_decay": 1e-4},
                "run": {"epochs": 60, "batch_size": 32, "early_stopping_patience": 10},
            },
        ),
    )
}


def available_recipes() -> list[Recipe]:
    """The recipes whose specs validate with this installation's datasets and fields."""
    return [recipe for recipe in RECIPES.values() if recipe.available()]
