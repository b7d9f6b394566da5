"""int8 weight-only quantization: every weight matrix as 8-bit integers plus one scale per output.

Generating one token reads every weight once, and on a CPU that reading, not the arithmetic,
sets the speed: a GPT-2-small decode step moves ~500 MB of fp32 weights. Store each weight as
an int8 q in [-127, 127] and one fp32 scale s per output channel (per row of the (out, in)
matrix), w ≈ q * s, and the same step reads a quarter of the bytes:

    s_o = max_i |w_oi| / 127          q_oi = round(w_oi / s_o)          |w_oi - q_oi s_o| <= s_o / 2

Activations stay in floating point ("weight-only"). Whether this is also *faster* depends on
the CPU having a kernel that multiplies by int8 weights directly (torch's
`_weight_int8pack_mm`): with AVX-512 and bf16 activations it reads the int8 bytes at full
speed; with fp32 activations (what a CPU without bf16 instructions uses) the same kernel was
measured 2-7x slower than the fp32 matmul. `int8_kernel()` decides from those facts, confirms
with a timing once per machine (kept in the machine's record, glassformer/machine.py);
`quantize_model` always gives the smaller model, and says which kernel its layers use.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch import nn

from glassformer import timing
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
    speedup: float               # median fp32 time / int8 time of a matrix-vector product (>1: int8 faster)
    fast: bool = False           # the decision: int8 is a speed path on this machine (int8_kernel)
    interval: tuple[float, float] = (float("nan"), float("nan"))   # the speed-up's interval (timing.py)
    runs: int = 0                # pairs timed
    verdict: str = "unclear"     # timing.Comparison.verdict for int8 against fp32

    @property
    def figure(self) -> str:
        """e.g. "5.1× (4.2–5.9×, 9 runs in turns)"."""
        if not self.runs:
            return f"{self.speedup:.2f}×"
        return f"{self.speedup:.2f}× ({self.interval[0]:.2f}–{self.interval[1]:.2f}×, {self.runs} runs in turns)"


PROBE_SHAPE = (4096, 4096)   # 64 MB in fp32: larger than the caches, like a real model's weights
PROBE_PAIRS = 15


def expected_fast(name: str, activations: torch.dtype) -> bool:
    """What the facts predict: torch's int8 kernel is fast with bf16 activations (used where the
    CPU has bf16 instructions). With fp32 activations the same kernel was measured 2-3x slower
    than the fp32 product on an AVX-512 CPU and ~7x slower on an AVX2-only one (torch 2.13), and
    rebuilding the fp32 weights first ("dequantize") reads more bytes than using them."""
    return name == "int8pack" and activations == torch.bfloat16


def _probe() -> tuple[str, torch.dtype, timing.Comparison]:
    """One token times a PROBE_SHAPE matrix: fp32 against the int8 kernel, in turns (timing.compare),
    with the activations precision.cpu_capability() chose."""
    from glassformer.precision import cpu_capability

    act = torch.bfloat16 if cpu_capability().best_dtype == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    q = torch.randint(-127, 128, PROBE_SHAPE, dtype=torch.int8, generator=gen)    # (out, in)
    s = torch.rand(PROBE_SHAPE[0], generator=gen) / 127 + 1e-3                    # (out,)
    w = dequantize(q, s)                                                          # (out, in) fp32
    x = torch.randn(1, PROBE_SHAPE[1], generator=gen)                             # (1, in)
    op = getattr(torch.ops.aten, "_weight_int8pack_mm", None)
    # Where the facts already say "not fast", the timing is evidence only: the fewest pairs that give an interval.
    pairs = PROBE_PAIRS if expected_fast("int8pack", act) else 6
    try:
        xa, sa = x.to(act), s.to(act)
        op(xa, q, sa)                                          # raises where the kernel is missing
        return "int8pack", act, timing.compare(lambda: nn.functional.linear(x, w), lambda: op(xa, q, sa),
                                               names=("fp32", "int8"), repeats=pairs)
    except (RuntimeError, AttributeError, TypeError):          # no such kernel in this torch build / CPU
        return "dequantize", torch.float32, timing.compare(lambda: nn.functional.linear(x, w),
                                                           lambda: x @ dequantize(q, s).t(),
                                                           names=("fp32", "int8"), repeats=6)


def _decide(name: str, activations: torch.dtype, data: dict) -> Int8Kernel:
    fast = expected_fast(name, activations) and data["verdict"] != "slower"   # the timing can only veto
    return Int8Kernel(name, activations, data["speedup"], fast, tuple(data["interval"]), data["runs"], data["verdict"])


def _evidence() -> dict:
    """The probe's result as the machine's record keeps it."""
    name, activations, comparison = _probe()
    return {"kernel": name, "activations": str(activations).removeprefix("torch."), **comparison.as_dict()}


@functools.cache
def int8_kernel() -> Int8Kernel:
    """Which int8 kernel this machine uses and whether it is a speed path: read from the machine's
    record (glassformer/machine.py), or measured once (~0.2 s) and stored.

    The facts decide (expected_fast), a timing in turns only confirms: int8 is "fast" when the
    kernel multiplies int8 weights by bf16 activations and was not measured clearly slower.
    """
    from glassformer import machine
    from glassformer.precision import cpu_capability

    act = "bfloat16" if cpu_capability().best_dtype == "bf16" else "float32"
    # Measure when there is no record, or it was made for the activations of another bf16 decision.
    data = machine.section("int8", _evidence,
                           lambda d: d is None or (d["kernel"] == "int8pack" and d["activations"] != act))
    return _decide(data["kernel"], getattr(torch, data["activations"]), data)


def remeasure_int8() -> Int8Kernel:
    """Measure again and replace the stored decision (glassformer info --remeasure)."""
    from glassformer import machine

    machine.save_section("int8", _evidence())
    int8_kernel.cache_clear()
    return int8_kernel()


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
