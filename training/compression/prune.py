"""Pruning: unstructured magnitude pruning of weights, and channel pruning that shrinks layers.

Weight pruning uses ``torch.nn.utils.prune``: while fine-tuning, each pruned layer computes
``weight = weight_orig * weight_mask`` on every forward pass, so pruned weights stay exactly zero
whatever the optimizer does; ``make_permanent`` then folds the masks into plain weights.
Channel pruning uses the ``torch-pruning`` library, which follows the dependency graph
(Conv → BatchNorm → next Conv, Linear → next Linear) and removes whole channels, so the layers
really get smaller and faster.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import prune

from training.compression.quantize import Int8Linear, Int8RNN

MAX_LAYER_RATIO = 0.95  # channel pruning keeps at least 5% of every layer's channels
PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Recurrent layers keep their weights as weight_ih_l<k> / weight_hh_l<k> (and *_reverse)
# parameters; torch's RNN modules pick up the masked tensors that pruning sets as attributes.
RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)


Layer = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
Target = tuple[nn.Module, str]  # a module and the name of one weight of it


def prunable_layers(model: nn.Module) -> list[Layer]:
    """The Linear and convolution layers whose weights magnitude pruning ranks."""
    return [m for m in model.modules() if isinstance(m, PRUNABLE)]


def prunable_weights(model: nn.Module) -> list[Target]:
    """Every weight magnitude pruning ranks: those of the Linear and convolution layers, and
    the input and hidden weight matrices of LSTM/GRU layers (embeddings, biases and norms
    stay whole)."""
    targets: list[Target] = []
    for module in model.modules():
        if isinstance(module, PRUNABLE):
            targets.append((module, "weight"))
        elif isinstance(module, RECURRENT):
            targets += [(module, name) for name in module._flat_weights_names
                        if name.startswith("weight_")]
    return targets


def step_sparsity(target: float, steps: int, step: int) -> float:
    """Sparsity to reach after ``step`` of ``steps`` (1-based): the cubic schedule of Zhu and
    Gupta (2017), which prunes most while the network still has redundancy."""
    return target * (1.0 - (1.0 - step / steps) ** 3)


def prune_weights(model: nn.Module, sparsity: float, scope: str = "global") -> None:
    """Mask the smallest-magnitude weights so that ``sparsity`` of them are zero, ranked across
    all layers (``global``) or within each layer (``layer``: each weight matrix). Masks already
    in place are kept: calling it again with a higher sparsity prunes further (iterative
    pruning)."""
    targets = prunable_weights(model)
    for target in targets:
        _refresh(target)
    if scope == "global":
        total = sum(_weight(target).numel() for target in targets)
        # torch's amount counts weights still unpruned; ask for exactly what is missing.
        missing = round(total * sparsity) - sum(_zeros_masked(target) for target in targets)
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                                  amount=max(0, missing))
        return
    for module, name in targets:
        missing = round(_weight((module, name)).numel() * sparsity) - _zeros_masked((module, name))
        prune.l1_unstructured(module, name, amount=max(0, missing))


def _refresh(target: Target) -> None:
    """Lay a weight, its original and its mask out contiguously and recompute the masked weight.
    A convolution fine-tuned channels last (``models.laid_out``) keeps that layout, which torch's
    global ranking cannot flatten (``.view(-1)``: "view size is not compatible"); and the masked
    weight the pruning hook set is as old as the last forward pass, from before the fine-tuning
    loaded its best epoch's weights back, so it would rank stale values."""
    module, name = target
    for key in (name, f"{name}_orig"):
        parameter = module._parameters.get(key)
        if parameter is not None and not parameter.is_contiguous():
            parameter.data = parameter.data.contiguous()
    mask = module._buffers.get(f"{name}_mask")
    if mask is not None:
        module._buffers[f"{name}_mask"] = mask.contiguous()
        with torch.no_grad():
            setattr(module, name, getattr(module, f"{name}_orig") * module._buffers[f"{name}_mask"])


def _weight(target: Target) -> torch.Tensor:
    weight = getattr(*target)
    assert isinstance(weight, torch.Tensor)
    return weight


def _zeros_masked(target: Target) -> int:
    module, name = target
    mask = getattr(module, f"{name}_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def make_permanent(model: nn.Module) -> None:
    """Fold the pruning masks into the weights and drop the hooks (plain modules again)."""
    for module, name in prunable_weights(model):
        if hasattr(module, f"{name}_mask"):
            prune.remove(module, name)


def weight_sparsity(model: nn.Module) -> float:
    """Share of zero weights over the prunable weights (as the forward pass sees them), int8
    ones included: a pruned model quantized in turn keeps its zeros."""
    weights = [_weight(target) for target in prunable_weights(model)]
    for module in model.modules():
        if isinstance(module, Int8Linear | Int8RNN):
            weights += [t for n, t in module.named_buffers(recurse=False)
                        if n.startswith("qweight")]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, sum(w.numel() for w in weights))


def _output_layers(model: nn.Module) -> list[nn.Linear]:
    """The output layer: its units are the classes, which must all stay."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


class ChannelPruner:
    """Removes ``ratio`` of the channels (neurons) of every hidden layer, in ``steps`` equal
    steps, ranked by L2 norm of their weights, across layers (``global``) or per layer."""

    def __init__(self, model: nn.Module, example: torch.Tensor, ratio: float, steps: int = 1,
                 scope: str = "layer") -> None:
        import torch_pruning as tp

        self.steps_left = steps
        self.pruner = tp.pruner.MetaPruner(
            model, example, importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=ratio, iterative_steps=steps, global_pruning=scope == "global",
            ignored_layers=_output_layers(model),
            # Global ranking may favour one layer's channels; never empty a layer.
            max_pruning_ratio=MAX_LAYER_RATIO,
        )

    def step(self) -> None:
        """Remove the next share of channels from the model, in place."""
        if self.steps_left <= 0:
            raise RuntimeError("all pruning steps are done")
        self.pruner.step()
        self.steps_left -= 1


def nothing_removed(model: nn.Module, ratio: float) -> str:
    """Why channel pruning at ``ratio`` removed nothing: torch-pruning rounds each layer's share
    down and never empties a layer, so a narrow network keeps every channel (a CNN of width 4
    at 0.9: 4 × 0.1 rounds to none kept, and the layer is left whole)."""
    outputs = set(_output_layers(model))
    widths = [m.out_channels if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
              else m.out_features for m in prunable_layers(model) if m not in outputs]
    narrowest = f" (the narrowest has {min(widths)})" if widths else ""
    return (f"removing {ratio:.0%} of the channels takes none from this model: a layer keeps "
            f"at least one channel, and its layers are too narrow for that share"
            f"{narrowest}; lower the sparsity, widen the model, or prune weights instead")


# State entries that are not weights: batch-norm statistics, pruning masks (int8 scales are
# told by their layer's type, ``_int8_scales``).
NOT_WEIGHTS = ("_mask", "running_mean", "running_var", "num_batches_tracked")


def _int8_scales(model: nn.Module) -> set[str]:
    """State names of the int8 layers' scales (``scale`` of an Int8Linear, ``scale_ih_l0`` and
    the like of an Int8RNN): one per row of int8 weights, not weights themselves."""
    return {f"{prefix}.{name}" if prefix else name
            for prefix, module in model.named_modules()
            if isinstance(module, Int8Linear | Int8RNN)
            for name, _ in module.named_buffers(recurse=False) if name.startswith("scale")}


def _weights(model: nn.Module) -> Iterator[torch.Tensor]:
    """Each weight tensor as the forward pass uses it (a pruned one through its mask; an int8
    one as its int8 values)."""
    state = model.state_dict()
    scales = _int8_scales(model)
    for name, tensor in state.items():
        if name.endswith(NOT_WEIGHTS) or name in scales:
            continue
        if name.endswith("_orig"):
            tensor = tensor * state[name[: -len("_orig")] + "_mask"]
        yield tensor


def parameter_count(model: nn.Module) -> int:
    """Weights of the model, int8 ones included (quantized layers keep them as buffers)."""
    return sum(t.numel() for t in _weights(model))


def nonzero_count(model: nn.Module) -> int:
    """Weights that are not zero: what pruning leaves."""
    return sum(int((t != 0).sum()) for t in _weights(model))
