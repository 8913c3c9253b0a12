"""The network families of Fitboard checkpoints, as plain ``nn.Module``s, and ``build``, which
rebuilds one from the ``model`` section of a checkpoint's spec.

This is the only copy: Fitboard's engine (``training.models``) imports these classes, so a
checkpoint rebuilt here has exactly the layers it was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

# --- mlp ---

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Flatten, then Linear + activation per hidden size, dropout, and a linear head."""

    def __init__(self, in_features: int, hidden_sizes: tuple[int, ...], outputs: int,
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- cnn ---

class CNN(nn.Module):
    """``blocks`` of (conv3x3 → [BatchNorm] → ReLU) × ``depth`` with 2×2 max-pooling between
    blocks; channels start at ``width`` and double per block. The ``head``: "average" pools the
    last block globally, "flatten" max-pools it 2×2 and flattens it (where each feature sits
    counts: aligned images), through a hidden layer of ``head_units`` (0: none); then dropout
    and a linear layer give the logits. "flatten" needs the input's ``size`` (height, width)."""

    def __init__(self, in_channels: int, outputs: int, width: int = 32, blocks: int = 2,
                 batch_norm: bool = True, dropout: float = 0.0, depth: int = 2,
                 head: str = "average", head_units: int = 0,
                 size: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(blocks):
            out = width * 2**block
            for _ in range(depth):
                # With batch norm after it, a convolution's bias is redundant.
                layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
            if block < blocks - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        # One flat chain of layers (training.grouped runs stacked seeds of it layer by layer).
        head: list[nn.Module]
        if head == "average":
            head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif head == "flatten":
            head = [nn.MaxPool2d(2, ceil_mode=True), nn.Flatten()]
            with torch.no_grad():  # the flattened size, from the input's
                channels = nn.Sequential(self.features, *head)(
                    torch.zeros(1, in_channels, *size)).shape[1]
            if head_units:
                head += [nn.Linear(channels, head_units), nn.ReLU(inplace=True)]
                channels = head_units
        else:
            raise ValueError(f"unknown CNN head {head!r}")
        self.head = nn.Sequential(*head, nn.Dropout(dropout), nn.Linear(channels, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --- resnet ---

class BasicBlock(nn.Module):
    """Two 3×3 convolutions (each with optional batch norm) added to the input. A block that
    changes the size or channel count projects the input with a strided 1×1 convolution."""

    def __init__(self, channels_in: int, channels_out: int, stride: int,
                 batch_norm: bool) -> None:
        super().__init__()

        def norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()

        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=not batch_norm)
        self.norm1 = norm(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=not batch_norm)
        self.norm2 = norm(channels_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=not batch_norm),
                norm(channels_out),
            )
        # Each block starts as (almost) the identity, so a deep stack trains from the first
        # step, with or without batch norm.
        last = self.norm2 if batch_norm else self.conv2
        assert isinstance(last, nn.BatchNorm2d | nn.Conv2d)
        nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A 3×3 stem, then ``stages`` groups of ``depth`` residual blocks; channels start at
    ``width`` and double at each stage after the first, which also halves height and width.
    Global average pooling, dropout and a linear head give the logits."""

    def __init__(self, in_channels: int, outputs: int, width: int = 32, stages: int = 3,
                 depth: int = 2, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(width) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(stages):
            out = width * 2**stage
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, out, stride, batch_norm))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# --- recurrent ---

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
        output, state = self.rnn(packed)
        if torch.onnx.is_in_onnx_export():
            top = self._final_states(output, lengths)
        else:
            hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); GRU: h
            # hidden is (layers * directions, batch, hidden): the top layer's last directions.
            top = hidden[-self.directions:].transpose(0, 1).reshape(len(input_ids), -1)
        return self.head(self.dropout(top))

    def _final_states(self, output: PackedSequence, lengths: torch.Tensor) -> torch.Tensor:
        """The same final states read from the top layer's outputs: forward at each text's last
        token, backward at its first. The ONNX exporter drops the packing (and so the lengths)
        of an RNN whose outputs go unused, and fails on a one-layer one."""
        padded, _ = pad_packed_sequence(output, batch_first=True)
        size = self.rnn.hidden_size
        rows = torch.arange(padded.shape[0])
        forward = padded[rows, lengths - 1, :size]
        if self.directions == 1:
            return forward
        return torch.cat([forward, padded[:, 0, size:]], dim=1)


# --- transformer ---

def trim_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the columns that are padding in every row of a right-padded batch: attention costs
    grow with the square of the length, and a batch of short texts should not pay for the
    longest text of the data set. (An all-ones mask when none is given.)"""
    if attention_mask is None:
        return input_ids, torch.ones_like(input_ids)
    if torch.onnx.is_in_onnx_export():
        # A traced length would be a constant of the example batch: the exported graph keeps
        # every column instead (masked padding changes no output, trimming only saves time).
        return input_ids, attention_mask
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


# --- building from a spec ---

IMAGE_ARCHS = ("cnn", "resnet")
TEXT_ARCHS = ("lstm", "gru", "transformer")
# The defaults of Fitboard's ModelSpec, for a checkpoint whose spec predates a field.
DEFAULTS: dict[str, Any] = {
    "hidden_sizes": (128,), "activation": "relu", "width": 32, "blocks": 2, "depth": 2,
    "batch_norm": True, "dropout": 0.0, "max_length": 64, "embed_dim": 128,
    "hidden_size": 128, "layers": 1, "bidirectional": True, "heads": 4, "positional": "learned",
    "head": "average", "head_units": 0,
}


BUILTIN_ARCHS = ("mlp", *IMAGE_ARCHS, "lstm", "gru", "transformer")


def build(model: Mapping[str, Any], input_shape: tuple[int, ...], outputs: int,
          vocab_size: int = 0, distribution: str = "") -> nn.Module:
    """The network that a spec's ``model`` section describes (``arch`` and the fields of its
    family), for inputs of ``input_shape`` and ``outputs`` logits or values. Text models need
    their vocabulary's ``vocab_size``. Weights are freshly initialised: load a state dict.

    Any other ``arch`` names a model plugin (``fitboard_model.plugins``), built from the
    section's ``plugin_config``; PluginMissing names ``distribution``, the package a checkpoint
    recorded, when it is not installed."""
    if model.get("arch") not in BUILTIN_ARCHS:
        from fitboard_model import plugins

        built: nn.Module = plugins.build_model(model, input_shape, outputs, distribution)
        return built
    m = {**DEFAULTS, **model}
    arch = m.get("arch")
    if arch == "mlp":
        return MLP(math.prod(input_shape), tuple(m["hidden_sizes"]), outputs, m["activation"],
                   m["dropout"])
    if arch in IMAGE_ARCHS:
        if len(input_shape) != 3:
            raise ValueError(f"a {arch} needs (channels, height, width) inputs, "
                             f"got {input_shape}")
        if arch == "resnet":
            return ResNet(input_shape[0], outputs, m["width"], m["blocks"], m["depth"],
                          m["batch_norm"], m["dropout"])
        return CNN(input_shape[0], outputs, m["width"], m["blocks"], m["batch_norm"],
                   m["dropout"], m["depth"], m["head"], m["head_units"],
                   (input_shape[1], input_shape[2]))
    if arch in ("lstm", "gru"):
        return RecurrentClassifier(arch, vocab_size, outputs, m["embed_dim"], m["hidden_size"],
                                   m["layers"], m["bidirectional"], m["dropout"])
    if arch == "transformer":
        return TransformerClassifier(vocab_size, outputs, m["max_length"], m["embed_dim"],
                                     m["heads"], m["layers"], m["dropout"], m["positional"])
    raise ValueError(f"unknown architecture {arch!r}")
