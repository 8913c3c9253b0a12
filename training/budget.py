"""What a spec asks of a worker, estimated from the spec alone: parameters, memory, devices.

The web process refuses a run no worker can hold before it is queued, so this module counts
with arithmetic on the spec (no torch, nothing allocated: a 6.4e10-parameter MLP is counted in
microseconds). The counts are exact for every architecture built from scratch (the tests
compare them with models built on torch's ``meta`` device); activation memory is a rough upper
estimate. A model plugin, whose shape only its own code knows, is built on the meta device
(allocating nothing) and counted there. A pretrained model's size comes from its hub files,
which validation does not fetch: it is not estimated.

The limits are deployment facts the web app knows from its settings; it installs them once with
``configure`` (``training`` never imports Django). Without that, the defaults below apply.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from fitboard_model import plugins
from fitboard_model.models import build
from torch import nn

if TYPE_CHECKING:
    from training.data.catalog import DatasetInfo
    from training.spec import ExperimentSpec, ModelSpec

FLOAT_BYTES = 4  # parameters, gradients, optimizer state and activations are float32
GB = 10**9
# Extra float32 values kept per parameter by each optimizer (Adam: two moments; SGD: the
# momentum buffer, when momentum is on; RMSprop: the squared-gradient average).
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1, "rmsprop": 1}
OPTIMIZER_TITLES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


@dataclass(frozen=True)
class Limits:
    """What the largest worker of the deployment holds."""

    memory_gb: float = 64.0  # weights, gradients, optimizer state and activations of one run
    max_devices: int = 64  # data-parallel processes (GPUs, or gloo CPU processes) of one run


_limits = Limits()


def configure(limits: Limits) -> None:
    """Install the deployment's limits (the web app does, once, from its settings)."""
    global _limits
    _limits = limits


def current_limits() -> Limits:
    """The limits specs are checked against."""
    return _limits


@dataclass(frozen=True)
class Estimate:
    """A run's size: its parameter count and the bytes of memory it needs on one device."""

    parameters: int
    state_bytes: int  # weights, gradients and optimizer state
    activation_bytes: int  # one batch's activations kept for the backward pass

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes


def estimate(spec: ExperimentSpec, info: DatasetInfo) -> Estimate | None:
    """The size of ``spec``'s run on ``info``'s data; None for a pretrained model (its size is
    in files validation does not fetch)."""
    counted = _count(spec.model, info)
    if counted is None:
        return None
    parameters, per_sample = counted
    optimizer = spec.optim.optimizer
    states = OPTIMIZER_STATES[optimizer]
    if optimizer == "sgd" and spec.optim.momentum == 0:
        states = 0
    # Weights and gradients, plus the optimizer's state.
    state_bytes = parameters * (2 + states) * FLOAT_BYTES
    # Each activation kept for the backward pass, and its gradient during it (hence 2 ×).
    activation_bytes = 2 * per_sample * spec.run.batch_size * FLOAT_BYTES
    return Estimate(parameters, state_bytes, activation_bytes)


def problems(spec: ExperimentSpec, info: DatasetInfo, limits: Limits | None = None
             ) -> dict[str, str]:
    """Why no worker can run ``spec`` (dotted field path → message); empty when one can."""
    limits = limits or _limits
    errors: dict[str, str] = {}
    if spec.run.devices > limits.max_devices:
        errors["run.devices"] = (
            f"this deployment's workers have at most {limits.max_devices} "
            f"device{'s' if limits.max_devices != 1 else ''} for one run")
    size = estimate(spec, info)
    if size is None or size.total_bytes <= limits.memory_gb * GB:
        return errors
    optimizer = OPTIMIZER_TITLES[spec.optim.optimizer]
    message = (f"about {_count_text(size.parameters)} parameters: "
               f"{byte_text(size.state_bytes)} for the weights, gradients and {optimizer} state, "
               f"and {byte_text(size.activation_bytes)} of activations for a batch of "
               f"{spec.run.batch_size}; the limit is "
               f"{byte_text(int(limits.memory_gb * GB))} per run")
    # The field to change: the model's size when it alone is over the limit, else the batch.
    if size.state_bytes <= limits.memory_gb * GB:
        errors["run.batch_size"] = message
    else:
        errors[f"model.{_size_field(spec.model.arch)}"] = message
    return errors


def _size_field(arch: str) -> str:
    """The field that sets the architecture's size: a plugin's names it (``size_option``)."""
    if arch in SIZE_FIELDS:
        return SIZE_FIELDS[arch]
    try:
        option = getattr(plugins.load(plugins.MODELS, arch), "size_option", "")
    except plugins.PluginMissing:
        option = ""
    return f"plugin_config.{option}" if option else "arch"


# The field that sets each architecture's size, where a too-large model's error goes.
SIZE_FIELDS = {"mlp": "hidden_sizes", "cnn": "width", "resnet": "width", "lstm": "hidden_size",
               "gru": "hidden_size", "transformer": "embed_dim"}


def _count_text(count: int) -> str:
    """6.4e10, 1.2e6, 350: two significant digits, the way the findings name sizes."""
    return f"{count:.2g}".replace("e+0", "e").replace("e+", "e")


def byte_text(count: int) -> str:
    """1.03 TB, 64 GB, 12 MB, 3 kB: three significant digits in the largest unit it reaches."""
    for unit, size in (("TB", 10**12), ("GB", GB), ("MB", 10**6)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{max(1, round(count / 1000))} kB"


def _count(model: ModelSpec, info: DatasetInfo) -> tuple[int, int] | None:
    """Parameters, and float values of activations per sample kept for the backward pass."""
    outputs = info.num_classes or 1
    if model.arch == "mlp":
        return _mlp(model, math.prod(info.input_shape), outputs)
    if model.arch in ("cnn", "resnet"):
        if len(info.input_shape) != 3:
            return None  # refused elsewhere: images only
        count = _cnn if model.arch == "cnn" else _resnet
        return count(model, info.input_shape, outputs)
    if model.arch in ("lstm", "gru"):
        return _recurrent(model, outputs)
    if model.arch == "transformer":
        return _transformer(model, outputs)
    if model.arch != "pretrained" and info.modality != "text":
        return _plugin(json.dumps(model.to_dict(), sort_keys=True), info.input_shape, outputs)
    return None


@functools.lru_cache(maxsize=256)  # a large plugin model takes tens of milliseconds to count
def _plugin(model: str, shape: tuple[int, ...], outputs: int) -> tuple[int, int] | None:
    """A model plugin's size: its own code builds it on the meta device (nothing allocated),
    which gives the parameters exactly; one forward pass of a meta sample gives the
    activations, as every leaf module's output. None for a plugin that does not build or run
    on the meta device (a text plugin's vocabulary, say, comes with its data): unestimated,
    as a pretrained model is, and the worker's memory guard still holds."""
    activations = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal activations
        if isinstance(output, torch.Tensor):
            activations += output.numel()  # of one sample: the batch is 1

    try:
        with torch.device("meta"):
            net = build(json.loads(model), shape, outputs)
            leaves = [m.register_forward_hook(count) for m in net.modules()
                      if not list(m.children())]
            # In eval mode: batch norm in training mode refuses one sample once the map is
            # 1×1; the shapes, which are all that is counted, are the same.
            net.eval()(torch.empty((1, *shape)))
    except Exception:  # noqa: BLE001 - any failure of the plugin's code only means no estimate
        return None
    for hook in leaves:
        hook.remove()
    parameters = sum(p.numel() for p in net.parameters())
    return parameters, math.prod(shape) + activations


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _mlp(model: ModelSpec, features: int, outputs: int) -> tuple[int, int]:
    """Activations: the input, each hidden layer's output before and after its activation
    function, and the logits."""
    widths = [features, *model.hidden_sizes]
    parameters = sum(_linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
    parameters += _linear(widths[-1], outputs)
    return parameters, features + 2 * sum(model.hidden_sizes) + outputs


def _cnn(model: ModelSpec, shape: tuple[int, ...], outputs: int) -> tuple[int, int]:
    """Activations: per convolution its output and (with batch norm) the normalised output,
    at the block's resolution (max-pooling halves it between blocks)."""
    channels, height, width = shape
    parameters, activations = 0, math.prod(shape)
    per_conv = 2 if model.batch_norm else 1
    for block in range(model.blocks):
        out = model.width * 2**block
        for _ in range(2):
            parameters += channels * out * 9 + (2 * out if model.batch_norm else out)
            activations += per_conv * out * height * width
            channels = out
        if block < model.blocks - 1:
            height, width = math.ceil(height / 2), math.ceil(width / 2)
    return parameters + _linear(channels, outputs), activations


def _resnet(model: ModelSpec, shape: tuple[int, ...], outputs: int) -> tuple[int, int]:
    """Activations: per convolution its output and its normalised output, the shortcut's and
    the sum's, at each stage's resolution (each stage after the first halves it)."""
    in_channels, height, width = shape

    def conv(c_in: int, c_out: int, kernel: int) -> int:
        return c_in * c_out * kernel + (2 * c_out if model.batch_norm else c_out)

    parameters = conv(in_channels, model.width, 9)
    activations = math.prod(shape) + 2 * model.width * height * width
    channels = model.width
    for stage in range(model.blocks):
        out = model.width * 2**stage
        for index in range(model.depth):
            if stage > 0 and index == 0:
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            parameters += conv(channels, out, 9) + conv(out, out, 9)
            if channels != out or (stage > 0 and index == 0):
                parameters += conv(channels, out, 1)
            activations += 6 * out * height * width
            channels = out
    return parameters + _linear(channels, outputs), activations


def _recurrent(model: ModelSpec, outputs: int) -> tuple[int, int]:
    """Activations: the embedded tokens, and per layer and direction each step's gates and
    states (LSTM: 4 gates and 2 states; GRU: 3 and 1)."""
    gates = 4 if model.arch == "lstm" else 3
    directions = 2 if model.bidirectional else 1
    hidden = model.hidden_size
    parameters = model.vocab_size * model.embed_dim
    layer_in = model.embed_dim
    for _ in range(model.layers):
        per_direction = gates * hidden * (layer_in + hidden) + 2 * gates * hidden
        parameters += directions * per_direction
        layer_in = hidden * directions
    parameters += _linear(hidden * directions, outputs)
    states = gates + (2 if model.arch == "lstm" else 1)
    activations = model.max_length * (
        model.embed_dim + model.layers * directions * states * hidden)
    return parameters, activations


def _transformer(model: ModelSpec, outputs: int) -> tuple[int, int]:
    """Activations per layer: about 16 values per token and width (the norms, the attention's
    projections and output, the 4× feed-forward) and each head's attention weights."""
    width, length = model.embed_dim, model.max_length
    parameters = model.vocab_size * width
    if model.positional == "learned":
        parameters += length * width
    per_layer = (_linear(width, 3 * width) + _linear(width, width)  # attention
                 + _linear(width, 4 * width) + _linear(4 * width, width)  # feed-forward
                 + 2 * 2 * width)  # two layer norms
    parameters += model.layers * per_layer + 2 * width + _linear(width, outputs)
    activations = length * width + model.layers * (
        16 * length * width + model.heads * length * length)
    return parameters, activations
