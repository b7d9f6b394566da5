"""int8 weight-only quantization: every weight matrix as 8-bit integers plus one scale per output.

Generating one token reads every weight once, and on a CPU that reading, not the arithmetic,
sets the speed: a GPT-2-small decode step moves ~500 MB of fp32 weights. Store each weight as
an int8 q in [-127, 127] and one fp32 scale s per output channel (per row of the (out, in)
matrix), w ≈ q * s, and the same step reads a quarter of the bytes:

    s_o = max_i |w_oi| / 127          q_oi = round(w_oi / s_o)          |w_oi - q_oi s_o| <= s_o / 2

Activations stay in floating point ("weight-only"). Whether this is also *faster* depends on
the CPU having a kernel that multiplies by int8 weights directly (torch's
`_weight_int8pack_mm`): with AVX-512 and bf16 activations it reads the int8 bytes at full
speed; on an AVX2-only CPU the same kernel was measured ~7x slower than the fp32 matmul.
`int8_kernel()` measures it once on this machine; `quantize_model` always gives the smaller
model, and says which kernel its layers use.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.model.embedding import Unembed
from glassformer.model.linear import Linear


def quantize_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float weight -> int8 q (out, in) and fp32 scales (out,), with w ≈ q * s[:, None].

        >>> q, s = quantize_per_channel(torch.tensor([[0.5, -1.0, 0.25], [2.0, 0.0, -0.1]]))
        >>> q.tolist(), [round(x, 5) for x in s.tolist()]
        ([[64, -127, 32], [127, 0, -6]], [0.00787, 0.01575])
    """
    w = w.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127                  # (out,)
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()  # (out, in)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int8 q (out, in) and scales (out,) -> the float weight they stand for."""
    return q.float() * scale[:, None]


@dataclass(frozen=True)
class Int8Kernel:
    name: str                    # "int8pack" (int8 weights read directly) or "dequantize" (rebuild fp32 first)
    activations: torch.dtype     # the dtype the int8 kernel multiplies in
    speedup: float               # measured matrix-vector speed vs fp32 on this CPU (>1: faster)

    @property
    def fast(self) -> bool:
        return self.speedup >= 1.2


def _interleaved_ms(a, b, repeats: int = 9) -> tuple[float, float]:
    """Best times of a() and b() in ms, run alternately (a b a b ...): another program using the
    cores for a moment slows some runs down, never speeds one up, so the fastest run of each is
    the least disturbed."""
    a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return tuple(min(t) * 1e3 for t in times)


@functools.cache
def int8_kernel() -> Int8Kernel:
    """Measure, once per process, how fast an int8 matrix-vector product is on this CPU.

    The probe is one token times a (4096, 4096) matrix (64 MB in fp32: larger than the caches,
    like a real model's weights): fp32 against torch's int8 kernel, with bf16 activations
    where the CPU does bf16 natively (precision.cpu_capability), else fp32 activations.
    """
    from glassformer.precision import cpu_capability

    act = torch.bfloat16 if cpu_capability().best_dtype == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4096, 4096, generator=gen)
    x = torch.randn(1, 4096, generator=gen)
    q, s = quantize_per_channel(w)
    op = getattr(torch.ops.aten, "_weight_int8pack_mm", None)
    try:
        xa, sa = x.to(act), s.to(act)
        fp32_ms, int8_ms = _interleaved_ms(lambda: x @ w, lambda: op(xa, q, sa))
        return Int8Kernel("int8pack", act, fp32_ms / int8_ms)
    except (RuntimeError, AttributeError, TypeError):  # no such kernel in this torch build / CPU
        fp32_ms, deq_ms = _interleaved_ms(lambda: x @ w, lambda: x @ dequantize(q, s).t())
        return Int8Kernel("dequantize", torch.float32, fp32_ms / deq_ms)


PACK_MULTIPLE = 16


def packed(kernel: Int8Kernel, q: torch.Tensor) -> bool:
    """Whether q (out, in) is multiplied by torch's int8 kernel (else dequantized first)."""
    return kernel.name == "int8pack" and q.shape[1] % PACK_MULTIPLE == 0


def int8_matmul(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, kernel: Int8Kernel) -> torch.Tensor:
    """x (N, in) times the weight that q (out, in) and scale (out,) stand for -> (N, out), in x's dtype.

    torch's int8 kernel gives wrong results (or crashes) unless `in` is a multiple of 16
    (measured with torch 2.13: in = 24 or 344 came out wrong): other widths dequantize first.
    """
    if packed(kernel, q):
        return torch.ops.aten._weight_int8pack_mm(x.to(kernel.activations), q, scale.to(kernel.activations)).to(x.dtype)
    return x @ dequantize(q, scale).to(x.dtype).t()


class Int8Linear(nn.Module):
    """A Linear layer whose weight is int8 per output channel: y = x (q s)ᵀ + b."""

    def __init__(self, linear: Linear, kernel: Int8Kernel) -> None:
        super().__init__()
        q, scale = quantize_per_channel(linear.weight.t())            # our Linear stores (in, out)
        self.register_buffer("q", q)                                   # (out, in) int8
        self.register_buffer("scale", scale)                           # (out,)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])                                         # (N, in)
        y = int8_matmul(flat, self.q, self.scale, self.kernel)                    # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], y.shape[-1])                                 # (..., out)

    def extra_repr(self) -> str:
        kernel = "int8pack" if packed(self.kernel, self.q) else "dequantize"
        return f"in={self.q.shape[1]}, out={self.q.shape[0]}, int8 per channel, kernel={kernel}"


class Int8Unembed(nn.Module):
    """Logits from an int8 unembedding matrix (V, D) with one scale per vocabulary entry."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, kernel: Int8Kernel) -> None:
        super().__init__()
        self.register_buffer("q", q)                                   # (V, D) int8
        self.register_buffer("scale", scale)                           # (V,)
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])                                         # (N, D)
        return int8_matmul(flat, self.q, self.scale, self.kernel).view(*x.shape[:-1], -1)  # (..., V)


class Int8Embedding(nn.Module):
    """Token lookup from an int8 table: row t is q[t] * scale[t] (shares the unembedding's table when tied)."""

    def __init__(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)                                   # (V, D) int8
        self.register_buffer("scale", scale)                           # (V,)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.q[ids].float() * self.scale[ids].unsqueeze(-1)                # (B, T, D)


def quantize_model(model: nn.Module, kernel: Int8Kernel | None = None) -> nn.Module:
    """A copy of `model` with every weight matrix in int8 per output channel: each Linear, the
    unembedding and the token embedding (one shared int8 table when they are tied). Norms,
    biases and position tables stay fp32; the original model is not changed."""
    kernel = kernel or int8_kernel()
    tied = model.unembed.weight is model.embed.tok.weight
    quantized = copy.deepcopy(model)
    for parent in list(quantized.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Linear):
                setattr(parent, name, Int8Linear(child, kernel))
    q, scale = quantize_per_channel(model.unembed.weight)
    quantized.unembed = Int8Unembed(q, scale, kernel)
    if not tied:
        q, scale = quantize_per_channel(model.embed.tok.weight)
    quantized.embed.tok = Int8Embedding(q, scale)
    return quantized


def model_bytes(model: nn.Module) -> int:
    """Bytes of every weight the model holds (parameters and saved buffers), shared tensors counted once."""
    seen, total = set(), 0
    for t in model.state_dict().values():   # parameters and persistent buffers (not caches of them)
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total
