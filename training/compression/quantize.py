"""Dynamic int8 quantization of Linear layers, stored as plain tensors.

Why not ``torch.ao.quantization.quantize_dynamic``: in the installed torch 2.13 it raises a
DeprecationWarning ("will be removed ... migrate to torchao"), and creating quantized tensors
(``torch.quantize_per_channel``) warns as deprecated too; its packed weights are also opaque
objects that safetensors cannot store. torchao's ``Int8DynamicActivationInt8WeightConfig`` is the
supported successor, but on CPU without ``torch.compile`` it ran 2x *slower* than float32 here,
and its weights are tensor subclasses. ``Int8Linear`` is the same scheme in a few lines: int8
weights with one scale per output row (symmetric), activations quantized per row at run time,
and the int8 x int8 -> int32 product from ``torch._int_mm`` (the kernel torchao uses), about 4x
faster than a float32 matmul on these CPUs. Its state is int8 and float32 tensors, so a
checkpoint stays safetensors + JSON.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

QMAX = 127  # symmetric int8 range [-127, 127]; -128 is left out so that negation is exact


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights (a float scale per output feature) that quantizes its
    input per row on the fly and multiplies in int8 on the CPU (dequantized float elsewhere)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.qweight: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        # A frozen parameter rather than a buffer: code that asks a model for its device
        # (next(model.parameters())) keeps working on a fully quantized network.
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize a trained Linear layer's weights (round to nearest, per output row)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        weight = linear.weight.detach().float().cpu()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / QMAX
        layer.qweight.copy_(torch.round(weight / scale[:, None]).clamp(-QMAX, QMAX))
        layer.scale.copy_(scale)
        if linear.bias is not None and layer.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        if rows.device.type == "cpu" and len(rows):
            x_scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / QMAX
            xq = torch.round(rows / x_scale).clamp(-QMAX, QMAX).to(torch.int8)
            out = torch._int_mm(xq, self.qweight.t()).float() * x_scale * self.scale
        else:
            out = rows @ self.dequantized_weight().t()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def linear_names(model: nn.Module) -> list[str]:
    """Qualified names of the Linear layers that dynamic quantization replaces."""
    return [name for name, module in model.named_modules() if type(module) is nn.Linear]


def quantize_dynamic(model: nn.Module, names: list[str] | None = None) -> nn.Module:
    """A copy of ``model`` (in eval mode) with its Linear layers (or those in ``names``)
    replaced by ``Int8Linear``; the original is left untouched."""
    quantized = copy.deepcopy(model).eval()
    for name in linear_names(quantized) if names is None else names:
        parent, _, attr = name.rpartition(".")
        owner = quantized.get_submodule(parent) if parent else quantized
        setattr(owner, attr, Int8Linear.from_float(getattr(owner, attr)))
    return quantized


def int8_placeholders(model: nn.Module, names: list[str]) -> None:
    """Replace the named Linear layers by empty ``Int8Linear`` ones of the same shape, in place,
    so that a quantized state dict can be loaded into a freshly built model."""
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        linear = getattr(owner, attr)
        setattr(owner, attr, Int8Linear(linear.in_features, linear.out_features,
                                        linear.bias is not None))
