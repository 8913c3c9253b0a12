"""N copies of a sequential network run as one: the forward pass of stacked seeds.

``torch.func.vmap`` batches any network but adds a few hundred microseconds of dispatch per
step, as much as a whole step of a small MLP. The MLP and the CNN are plain chains of layers,
so their N copies run as one chain of grouped kernels instead: a linear layer is one batched
matrix product (``baddbmm`` over ``[N, rows, features]``), a convolution one grouped
convolution over the seeds' channels side by side (``[rows, N·channels, h, w]``, ``groups=N``),
batch norm one normalisation over those channels with the stacked running statistics (views,
updated in place), and the parameter-free layers (activations, pooling, dropout) act on the
stacked tensors as they are. The kernels are the ones a single run calls, so the step costs
about one run's dispatch for all the seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own convention
from torch import nn

# The top-level chains whose composition is each architecture's forward pass, in order.
CHAINS = {"mlp": ("net",), "cnn": ("features", "head")}
# Layers without parameters that act on the stacked tensors as they are: elementwise, or per
# channel and row in either layout.
AS_THEY_ARE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Dropout, nn.MaxPool2d, nn.AdaptiveAvgPool2d)

Forward = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor],
                   torch.Tensor]


class GroupedLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` for every seed at once (``x`` ``[N, rows, in]``, ``weight``
    ``[N, out, in]``, ``bias`` ``[N, out]``), whose backward pass computes each gradient in its
    tensor's own layout, as ``nn.Linear``'s does for one seed."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Every seed's linear layer on its rows ``[N, rows, in]``; autocast's own kernels when it
    is on (the written-out backward pass would mix its dtypes)."""
    if bias is None or torch.is_autocast_enabled(h.device.type):
        transposed = weight.transpose(1, 2)
        return (torch.bmm(h, transposed) if bias is None
                else torch.baddbmm(bias[:, None], h, transposed))
    out: torch.Tensor = GroupedLinear.apply(h, weight, bias)
    return out


def layers(base: nn.Module, arch: str) -> list[tuple[str, nn.Module]] | None:
    """The network's layers by parameter prefix, or None when it is not a chain this module
    runs grouped (an architecture or a layer it does not know)."""
    chains = CHAINS.get(arch)
    if chains is None:
        return None
    found = [(f"{chain}.{index}", layer) for chain in chains
             for index, layer in enumerate(getattr(base, chain))]
    known = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.Flatten, *AS_THEY_ARE)
    if any(not isinstance(layer, known) for _, layer in found):
        return None
    if any(isinstance(layer, nn.BatchNorm2d) and layer.momentum is None for _, layer in found):
        return None  # a cumulative average reads num_batches_tracked per seed
    return found


def laid_out(params: dict[str, torch.Tensor], base: nn.Module,
             arch: str) -> dict[str, torch.Tensor]:
    """The stacked parameters (name -> ``[N, ...]``) in the layout the grouped kernels read:
    each convolution's weights ``[N, out, in, kh, kw]`` channels last, so that their view
    ``[N·out, in, kh, kw]`` is, like the activations. oneDNN then reads them as they are and
    hands their gradients back in that layout; contiguous, it copied them into it forward and
    backward, and the gradients' views back to ``[N, ...]`` copied them out again, every step.
    The values are unchanged, and so is every other tensor (and all of them when the network
    is not one this module runs grouped)."""
    chain = layers(base, arch)
    if chain is None:
        return params
    convolutions = {f"{name}.weight" for name, layer in chain if isinstance(layer, nn.Conv2d)}
    return {name: (channels_last(tensor) if name in convolutions else tensor)
            for name, tensor in params.items()}


def channels_last(stacked: torch.Tensor) -> torch.Tensor:
    """A leaf copy of stacked convolution weights ``[N, out, ...]`` whose view
    ``[N·out, ...]`` is channels last."""
    seeds, out = stacked.shape[:2]
    copy = stacked.detach().flatten(0, 1).contiguous(memory_format=torch.channels_last)
    return copy.unflatten(0, (seeds, out)).requires_grad_(stacked.requires_grad)


def grouped_forward(base: nn.Module, arch: str) -> Forward | None:
    """``forward(params, buffers, x)``: every seed's outputs ``[N, rows, outputs]`` from the
    stacked parameters and buffers (name -> ``[N, ...]``) and inputs ``[N, rows, ...]``; None
    when the network is not one this module runs grouped. ``base`` (its layers' settings and
    its train/eval mode) may live on the meta device."""
    chain = layers(base, arch)
    if chain is None:
        return None

    # Images into a convolution: the seeds' channels side by side, [rows, N·channels, h, w],
    # channels last in memory (oneDNN's grouped convolutions run about a tenth faster on them
    # on a CPU). Into a flatten (an MLP), they stay [N, rows, ...]: no copy.
    convolved = isinstance(chain[0][1], nn.Conv2d)

    def forward(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                x: torch.Tensor) -> torch.Tensor:
        seeds = x.shape[0]
        h = (x.transpose(0, 1).flatten(1, 2).contiguous(memory_format=torch.channels_last)
             if x.dim() == 5 and convolved else x)
        for name, layer in chain:
            h = apply(layer, name, h, seeds, params, buffers, base.training)
        return h

    return forward


def apply(layer: nn.Module, name: str, h: torch.Tensor, seeds: int,
          params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
          training: bool) -> torch.Tensor:
    """One layer on the stacked activations: ``[N, rows, features]`` after a flatten,
    ``[rows, N·channels, h, w]`` before."""
    if isinstance(layer, nn.Linear):
        return linear(h, params[f"{name}.weight"], params.get(f"{name}.bias"))
    if isinstance(layer, nn.Flatten):
        if h.dim() == 4:
            return h.flatten(1).unflatten(1, (seeds, -1)).transpose(0, 1)  # rows-first images
        return h.flatten(2)  # [N, rows, ...] tabular or image rows
    if isinstance(layer, nn.Conv2d):
        weight = params[f"{name}.weight"].flatten(0, 1)
        bias = params.get(f"{name}.bias")
        return F.conv2d(h, weight, None if bias is None else bias.flatten(), layer.stride,
                        layer.padding, layer.dilation, layer.groups * seeds)
    if isinstance(layer, nn.AdaptiveAvgPool2d) and layer.output_size in (1, (1, 1)):
        # Each channel's mean over its pixels, taken channels last: its backward pass then
        # hands the ReLU below a channels-last gradient. Adaptive pooling's was contiguous,
        # and a ReLU's backward over the two layouts ran about thirty times slower.
        return h.permute(0, 2, 3, 1).mean((1, 2), keepdim=True).permute(0, 3, 1, 2)
    if isinstance(layer, nn.BatchNorm2d):
        if training and layer.track_running_stats:
            buffers[f"{name}.num_batches_tracked"].add_(1)
        return F.batch_norm(h, buffers[f"{name}.running_mean"].view(-1),
                            buffers[f"{name}.running_var"].view(-1),
                            params[f"{name}.weight"].flatten(), params[f"{name}.bias"].flatten(),
                            training, layer.momentum or 0.0, layer.eps)
    return layer(h)
