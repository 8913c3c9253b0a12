"""A pretrained Hugging Face encoder with a new classification head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from fitboard_model.models import trim_padding
from torch import nn


class PretrainedClassifier(nn.Module):
    """``AutoModelForSequenceClassification`` from a hub name or local directory (``source``),
    or from a saved ``config`` (a checkpoint: the weights are loaded afterwards). The
    classifier head is new; ``freeze_encoder`` trains only that head, otherwise every weight is
    fine-tuned. Safetensors weights only, and no code from the model's repository is run."""

    def __init__(self, outputs: int, source: str | None = None,
                 config: Mapping[str, Any] | None = None, freeze_encoder: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForSequenceClassification

        # A dropout of 0 keeps the model's own classifier dropout.
        extra: dict[str, Any] = {"classifier_dropout": dropout} if dropout > 0 else {}
        if config is not None:
            settings = dict(config)
            model_type = settings.pop("model_type")
            built = AutoConfig.for_model(model_type, **settings)
            self.model = AutoModelForSequenceClassification.from_config(built)
        elif source is not None:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=outputs, use_safetensors=True, trust_remote_code=False,
                **extra)
        else:
            raise ValueError("a pretrained model needs a source or a saved config")
        if freeze_encoder:
            for parameter in self.model.base_model.parameters():
                parameter.requires_grad_(False)

    def config_dict(self) -> dict[str, Any]:
        """The model's configuration as JSON-ready data, enough to rebuild it without the hub."""
        return dict(self.model.config.to_dict())

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
