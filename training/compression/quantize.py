"""Dynamic int8 quantization of Linear and LSTM/GRU layers, stored as plain tensors.

Why not ``torch.ao.quantization.quantize_dynamic``: in the installed torch 2.13 it raises a
DeprecationWarning ("will be removed ... migrate to torchao"), and creating quantized tensors
(``torch.quantize_per_channel``) warns as deprecated too; its packed weights are also opaque
objects that safetensors cannot store. torchao's ``Int8DynamicActivationInt8WeightConfig`` is the
supported successor, but on CPU without ``torch.compile`` it ran 2x *slower* than float32 here,
and its weights are tensor subclasses. ``Int8Linear`` is the same scheme in a few lines: int8
weights with one scale per output row (symmetric), activations quantized per row at run time,
and the int8 x int8 -> int32 product from ``torch._int_mm`` (the kernel torchao uses), about 4x
faster than a float32 matmul on a CPU that multiplies int8 in hardware (AVX-512 VNNI, AMX). On
one that does not (AVX2 alone), torch 2.13's ``_int_mm`` is a fallback 20-40x *slower* than a
float32 matmul (MiniLM's 288 x 1536 @ 1536 x 384: 205 ms against 5.3 ms), so there the weights
are dequantized and multiplied in float32 instead (``INT8_KERNEL``): the model stays 4x smaller
and as accurate, and about as fast as float. Its state is int8 and float32 tensors, so a
checkpoint stays safetensors + JSON.

``Int8RNN`` does the same for an LSTM or GRU: its input and hidden weight matrices
(``weight_ih_l*``, ``weight_hh_l*``) become int8 with a scale per row (one row per gate unit),
biases stay float32. torch's fused recurrent kernels read float weights, so it runs in one of
two ways: ``"dequant"`` rebuilds the float matrices at each call (a few hundred microseconds)
and runs torch's fused kernel on them; ``"int8"`` runs the recurrence itself, step by step, with
int8 products for the input and hidden projections. The benchmark (``bench/compression.py
--only lstm``) measures both; ``RECURRENT_MATMUL`` is the faster one on these CPUs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

QMAX = 127  # symmetric int8 range [-127, 127]; -128 is left out so that negation is exact
# How Int8RNN multiplies: "dequant" (torch's fused kernel on dequantized weights) was faster
# than "int8" (a step-by-step recurrence with int8 products) in the benchmark, see the module
# docstring.
RECURRENT_MATMUL = "dequant"
RECURRENT = (nn.LSTM, nn.GRU)


def cpu_multiplies_int8() -> bool:
    """Whether this CPU has the int8 dot-product instructions ``torch._int_mm`` is fast with."""
    capable = [getattr(torch.cpu, name, None)
               for name in ("_is_vnni_supported", "_is_amx_tile_supported")]
    return any(check() for check in capable if check is not None)


# Whether Int8Linear multiplies in int8 on the CPU, or dequantizes (see the module docstring).
INT8_KERNEL = cpu_multiplies_int8()


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one scale per row (round to nearest)."""
    weight = weight.detach().float()
    scale = weight.abs().amax(dim=1).clamp_min(1e-12) / QMAX
    return torch.round(weight / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8), scale


def int8_matmul(rows: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor,
                int8_kernel: bool = INT8_KERNEL) -> torch.Tensor:
    """``rows @ W.t()`` for an int8 ``W`` with per-row ``scale``: with ``int8_kernel`` on the
    CPU, the rows are quantized per row on the fly and multiplied in int8 (int32 sums);
    otherwise, and off the CPU, W is dequantized and multiplied in float32."""
    if not int8_kernel or rows.device.type != "cpu" or not len(rows):
        return rows @ (qweight.float() * scale[:, None]).t()
    x_scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / QMAX
    xq = torch.round(rows / x_scale).clamp(-QMAX, QMAX).to(torch.int8)
    return torch._int_mm(xq, qweight.t()).float() * x_scale * scale


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
        qweight, scale = quantize_rows(linear.weight.cpu())
        layer.qweight.copy_(qweight)
        layer.scale.copy_(scale)
        if linear.bias is not None and layer.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer.to(linear.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        out = int8_matmul(rows, self.qweight, self.scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int8RNN(nn.Module):
    """An LSTM or GRU (``nn.LSTM``/``nn.GRU`` arguments and call signature) whose weight
    matrices are int8 with a float scale per row; biases stay float32. Inference only."""

    shell: nn.LSTM | nn.GRU  # set in __init__, outside the module tree

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, bidirectional: bool = False,
                 matmul: str = RECURRENT_MATMUL) -> None:
        super().__init__()
        if matmul not in ("dequant", "int8"):
            raise ValueError(f"matmul must be 'dequant' or 'int8', not {matmul!r}")
        self.cell, self.matmul = cell, matmul
        self.hidden_size, self.num_layers, self.batch_first = hidden_size, num_layers, batch_first
        self.directions = 2 if bidirectional else 1
        shell = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](
            input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first,
            bidirectional=bidirectional)
        # The float module whose fused kernel runs on the dequantized weights: kept out of the
        # module tree, so its own (unused) float weights are neither saved nor counted.
        self.__dict__["shell"] = shell
        self.names: list[str] = list(shell._flat_weights_names)
        for name in self.names:
            tensor = getattr(shell, name)
            if name.startswith("weight_"):
                self.register_buffer("q" + name, torch.zeros(tensor.shape, dtype=torch.int8))
                self.register_buffer(name.replace("weight_", "scale_"), torch.ones(len(tensor)))
            else:  # frozen parameters, as Int8Linear's bias
                setattr(self, name, nn.Parameter(torch.zeros_like(tensor), requires_grad=False))

    @classmethod
    def from_float(cls, rnn: nn.LSTM | nn.GRU, matmul: str = RECURRENT_MATMUL) -> Int8RNN:
        """Quantize a trained LSTM or GRU's weight matrices (round to nearest, per row)."""
        cell = "lstm" if isinstance(rnn, nn.LSTM) else "gru"
        if isinstance(rnn, nn.LSTM) and rnn.proj_size:
            raise ValueError("LSTM with proj_size is not supported")
        layer = cls(cell, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bias,
                    rnn.batch_first, rnn.bidirectional, matmul)
        for name in layer.names:
            tensor = getattr(rnn, name).detach().cpu()
            if name.startswith("weight_"):
                qweight, scale = quantize_rows(tensor)
                getattr(layer, "q" + name).copy_(qweight)
                getattr(layer, name.replace("weight_", "scale_")).copy_(scale)
            else:
                getattr(layer, name).data.copy_(tensor)
        return layer

    def _weight(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, "q" + name), getattr(self, name.replace("weight_", "scale_"))

    def dequantized(self) -> dict[str, torch.Tensor]:
        """The float weights (and the biases) under nn.LSTM/nn.GRU's names."""
        out = {}
        for name in self.names:
            if name.startswith("weight_"):
                qweight, scale = self._weight(name)
                out[name] = qweight.float() * scale[:, None]
            else:
                out[name] = getattr(self, name)
        return out

    def forward(self, input: torch.Tensor | PackedSequence, hx: Any = None) -> Any:
        if self.matmul == "int8" and _data(input).device.type == "cpu":
            return self._int8_forward(input, hx)
        args = (input,) if hx is None else (input, hx)
        return torch.func.functional_call(self.shell, self.dequantized(), args)

    def _int8_forward(self, input: torch.Tensor | PackedSequence, hx: Any) -> Any:
        """The recurrence step by step over a packed batch (time-major, longest first), each
        step's hidden projection an int8 product; the input projection of every step of a
        layer is one int8 product."""
        packed = isinstance(input, PackedSequence)
        if not isinstance(input, PackedSequence):
            x = input if self.batch_first else input.transpose(0, 1)
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
            input = pack_padded_sequence(x, lengths, batch_first=True)
        data, batch_sizes, sorted_indices, unsorted_indices = input
        batch, lstm = int(batch_sizes[0]), self.cell == "lstm"
        zeros = data.new_zeros(self.num_layers * self.directions, batch, self.hidden_size)
        h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (zeros, zeros)
        if hx is not None and sorted_indices is not None:
            h0 = h0.index_select(1, sorted_indices)
            c0 = c0.index_select(1, sorted_indices) if c0 is not None else None
        sizes = batch_sizes.tolist()
        starts = [0, *torch.tensor(sizes).cumsum(0).tolist()[:-1]]
        h_n, c_n = [], []
        layer_input = data
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                k = layer * self.directions + direction
                h = h0[k].clone()
                c = c0[k].clone() if lstm and c0 is not None else None
                outputs.append(self._int8_direction(layer_input, suffix, bool(direction), h, c,
                                                    sizes, starts))
                h_n.append(h)
                c_n.append(c)
            layer_input = torch.cat(outputs, 1)
        hidden = torch.stack(h_n)
        if unsorted_indices is not None:
            hidden = hidden.index_select(1, unsorted_indices)
        state: Any = hidden
        if lstm:
            cell = torch.stack([c for c in c_n if c is not None])
            if unsorted_indices is not None:
                cell = cell.index_select(1, unsorted_indices)
            state = (hidden, cell)
        output = PackedSequence(layer_input, batch_sizes, sorted_indices, unsorted_indices)
        if packed:
            return output, state
        padded, _ = pad_packed_sequence(output, batch_first=self.batch_first)
        return padded, state

    def _int8_direction(self, layer_input: torch.Tensor, suffix: str, reverse: bool,
                        h: torch.Tensor, c: torch.Tensor | None, sizes: list[int],
                        starts: list[int]) -> torch.Tensor:
        """One direction of one layer (weights named ``*suffix``) over a packed batch whose
        step t holds ``sizes[t]`` rows from ``starts[t]``: its outputs, packed the same way.
        ``h`` (and ``c``, an LSTM's) start as the initial state and are updated in place to
        the final one."""
        # matmul="int8" is the int8 recurrence by choice, on any CPU (the benchmark's arm).
        gates_x = int8_matmul(layer_input, *self._weight("weight_ih" + suffix), int8_kernel=True)
        bias_ih = getattr(self, "bias_ih" + suffix, None)
        bias_hh = getattr(self, "bias_hh" + suffix, None)
        if bias_ih is not None:
            gates_x = gates_x + bias_ih
        w_hh = self._weight("weight_hh" + suffix)
        out = layer_input.new_empty(len(layer_input), self.hidden_size)
        for t in range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes)):
            start, n = starts[t], sizes[t]
            gates_h = int8_matmul(h[:n], *w_hh, int8_kernel=True)
            if bias_hh is not None:
                gates_h = gates_h + bias_hh
            gx = gates_x[start:start + n]
            if c is not None:
                i, f, g, o = (gx + gates_h).chunk(4, 1)
                c[:n] = torch.sigmoid(f) * c[:n] + torch.sigmoid(i) * torch.tanh(g)
                h[:n] = torch.sigmoid(o) * torch.tanh(c[:n])
            else:
                xr, xz, xn = gx.chunk(3, 1)
                hr, hz, hn = gates_h.chunk(3, 1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h[:n] = (1 - z) * torch.tanh(xn + r * hn) + z * h[:n]
            out[start:start + n] = h[:n]
        return out

    def extra_repr(self) -> str:
        return (f"{self.cell}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"directions={self.directions}, int8, matmul={self.matmul}")


def _data(input: torch.Tensor | PackedSequence) -> torch.Tensor:
    return input.data if isinstance(input, PackedSequence) else input


def linear_names(model: nn.Module) -> list[str]:
    """Qualified names of the Linear layers that dynamic quantization replaces."""
    return [name for name, module in model.named_modules() if type(module) is nn.Linear]


def quantizable_names(model: nn.Module) -> list[str]:
    """Qualified names of the layers dynamic quantization replaces: Linear, LSTM and GRU."""
    return [name for name, module in model.named_modules()
            if type(module) in (nn.Linear, nn.LSTM, nn.GRU)]


def quantize_dynamic(model: nn.Module, names: list[str] | None = None,
                     matmul: str = RECURRENT_MATMUL) -> nn.Module:
    """A copy of ``model`` (in eval mode) with its Linear, LSTM and GRU layers (or those in
    ``names``) replaced by ``Int8Linear`` / ``Int8RNN``; the original is left untouched.
    ``matmul``: how the recurrent layers multiply (see ``Int8RNN``)."""
    quantized = copy.deepcopy(model).eval()
    for name in quantizable_names(quantized) if names is None else names:
        parent, _, attr = name.rpartition(".")
        owner = quantized.get_submodule(parent) if parent else quantized
        layer = getattr(owner, attr)
        setattr(owner, attr, Int8RNN.from_float(layer, matmul) if isinstance(layer, RECURRENT)
                else Int8Linear.from_float(layer))
    return quantized


def int8_placeholders(model: nn.Module, names: list[str]) -> None:
    """Replace the named Linear, LSTM and GRU layers by empty ``Int8Linear`` / ``Int8RNN``
    ones of the same shape, in place, so that a quantized state dict can be loaded into a
    freshly built model."""
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        layer = getattr(owner, attr)
        if isinstance(layer, RECURRENT):
            setattr(owner, attr, Int8RNN("lstm" if isinstance(layer, nn.LSTM) else "gru",
                                         layer.input_size, layer.hidden_size, layer.num_layers,
                                         layer.bias, layer.batch_first, layer.bidirectional))
        else:
            setattr(owner, attr, Int8Linear(layer.in_features, layer.out_features,
                                            layer.bias is not None))
