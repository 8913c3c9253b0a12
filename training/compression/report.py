"""What a compression changed: size, speed and accuracy, of the source and the result."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from training.compression.prune import nonzero_count, parameter_count
from training.data import PreparedData
from training.data.text import Tokens
from training.models import feed

LATENCY_BATCH = 256  # rows per timed forward pass
TEXT_LATENCY_BATCH = 32  # sentences per timed forward pass of a text model
LATENCY_REPEATS = 30  # timed passes; the median is reported
LATENCY_WARMUP = 5


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights as stored in a checkpoint (a safetensors file)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return len(save_safetensors(state))


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the Linear layers' weight matrices (with their scales, when int8): what
    dynamic quantization shrinks, without biases and file headers."""
    from training.compression.quantize import Int8Linear

    total = 0
    for module in model.modules():
        if isinstance(module, Int8Linear):
            total += module.qweight.nbytes + module.scale.nbytes
        elif isinstance(module, nn.Linear):
            total += module.weight.nbytes
    return total


def recurrent_weight_bytes(model: nn.Module) -> int:
    """Bytes of the LSTM/GRU layers' input and hidden weight matrices (with their scales, when
    int8): what dynamic quantization shrinks in a recurrent model."""
    from training.compression.quantize import RECURRENT, Int8RNN

    total = 0
    for module in model.modules():
        if isinstance(module, (Int8RNN, *RECURRENT)):
            total += sum(tensor.nbytes for name, tensor in module.state_dict().items()
                         if name.startswith(("weight_", "qweight_", "scale_")))
    return total


@torch.no_grad()
def cpu_latency(model: nn.Module, batch: torch.Tensor | Tokens,
                repeats: int = LATENCY_REPEATS) -> float:
    """Median seconds of one forward pass over ``batch`` (a tensor, or a text model's token
    ids) on the CPU, in eval mode, after a warm-up (the first passes allocate and pick
    kernels). The model is left on the CPU."""
    model = model.cpu().eval()
    batch = batch.to("cpu")
    for _ in range(LATENCY_WARMUP):
        feed(model, batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        feed(model, batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def split_metrics(model: nn.Module, data: PreparedData) -> dict[str, float]:
    """Validation (and, where the data has one, test) metrics: ``val_acc``/``val_loss`` or the
    regression errors, as the training loop computes them."""
    from training.loop import evaluate

    # Plain losses whatever the run trained with (smoothing, class weights), so that the source
    # and the compressed model are compared on the same measure.
    loss_fn = nn.CrossEntropyLoss() if data.info.task == "classification" else nn.MSELoss()
    device = next(iter(model.state_dict().values())).device
    out = {f"val_{k}": v for k, v in
           evaluate(model, loss_fn, data.x_val.to(device), data.y_val.to(device), data).items()}
    x_test, y_test = getattr(data, "x_test", None), getattr(data, "y_test", None)
    if x_test is not None and y_test is not None:
        out.update({f"test_{k}": v for k, v in
                    evaluate(model, loss_fn, x_test.to(device), y_test.to(device), data).items()})
    return out


def measure(model: nn.Module, data: PreparedData) -> dict[str, Any]:
    """Parameters (total, non-zero), weight bytes, CPU latency per batch and accuracy."""
    metrics = split_metrics(model, data)
    text = isinstance(data.x_val, Tokens)
    batch = data.x_val[:TEXT_LATENCY_BATCH if text else LATENCY_BATCH]
    return {
        "parameters": parameter_count(model),
        "nonzero_parameters": nonzero_count(model),
        "weight_bytes": weight_bytes(model),
        "linear_weight_bytes": linear_weight_bytes(model),
        "recurrent_weight_bytes": recurrent_weight_bytes(model),
        "latency_ms": cpu_latency(model, batch) * 1000.0,
        "latency_batch": len(batch),
        "threads": torch.get_num_threads(),
        **metrics,
    }


def compare(source: dict[str, Any], result: dict[str, Any]) -> dict[str, float]:
    """Ratios of size and speed (source / result: above 1 is smaller or faster) and the change
    of each metric (result - source; accuracy in fractions of 1)."""
    change: dict[str, float] = {}
    for key in ("parameters", "nonzero_parameters", "weight_bytes", "linear_weight_bytes",
                "recurrent_weight_bytes", "latency_ms"):
        if result.get(key):
            change[f"{key}_ratio"] = source[key] / result[key]
    for key, value in result.items():
        if key.startswith(("val_", "test_")) and key in source:
            change[f"{key}_change"] = value - source[key]
    return change
