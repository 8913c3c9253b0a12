"""A Transformer encoder text classifier trained from scratch."""

from __future__ import annotations

import math

import torch
from torch import nn


def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the columns that are padding in every row of a right-padded batch: attention costs
    grow with the square of the length, and a batch of short texts should not pay for the
    longest text of the data set. (An all-ones mask when none is given.)"""
    if attention_mask is None:
        return input_ids, torch.ones_like(input_ids)
    length = max(1, int(attention_mask.sum(1).max()))
    return input_ids[:, :length], attention_mask[:, :length]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine position codes of "Attention Is All You Need", (length, dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1e4) / dim))
    codes = torch.zeros(length, dim)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return codes


class TransformerClassifier(nn.Module):
    """Token embeddings plus position embeddings (learned, or fixed sinusoids), ``layers``
    pre-norm encoder layers of ``heads`` attention heads with a 4× feed-forward, then the mean of
    the real (unpadded) tokens, dropout and a linear head."""

    def __init__(self, vocab_size: int, outputs: int, max_length: int, width: int = 128,
                 heads: int = 4, layers: int = 2, dropout: float = 0.0,
                 positional: str = "learned", pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.positions: nn.Module | None = None
        if positional == "learned":
            self.positions = nn.Embedding(max_length, width)
        else:
            self.register_buffer("sinusoids", sinusoidal_positions(max_length, width),
                                 persistent=False)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        # Nested tensors are a fast path for inference only; off, training and evaluation
        # compute the same function.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, outputs)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        input_ids, attention_mask = trim_padding(input_ids, attention_mask)
        length = input_ids.shape[1]
        if isinstance(self.positions, nn.Embedding):
            where = self.positions(torch.arange(length, device=input_ids.device))
        else:
            sinusoids = self.get_buffer("sinusoids")
            where = sinusoids[:length]
        x = self.embedding(input_ids) + where
        x = self.norm(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled))
