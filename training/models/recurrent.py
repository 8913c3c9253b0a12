"""Recurrent text classifiers: an LSTM or GRU over word embeddings."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class RecurrentClassifier(nn.Module):
    """Embeds token ids, reads them with a (bidirectional) LSTM or GRU of ``layers`` layers,
    and classifies the final hidden state of the top layer (both directions concatenated)
    after dropout. Padding is skipped (packed sequences), so a text's result does not depend on
    how much padding its batch has."""

    def __init__(self, cell: str, vocab_size: int, outputs: int, embed_dim: int = 128,
                 hidden_size: int = 128, layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0, pad_id: int = 0) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        # torch applies this dropout between stacked layers only (it warns for one layer).
        self.rnn = rnn(embed_dim, hidden_size, num_layers=layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * self.directions, outputs)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, state = self.rnn(packed)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); GRU: h
        # hidden is (layers * directions, batch, hidden): the top layer's last directions.
        top = hidden[-self.directions:].transpose(0, 1).reshape(len(input_ids), -1)
        return self.head(self.dropout(top))
