"""Which number format the matrix multiplies use, chosen by measuring this machine.

bfloat16 (bf16) keeps float32's range with 8 bits of mantissa instead of 24: half the bytes,
and on hardware with native bf16 instructions (AVX512-BF16 / AMX on recent x86, most GPUs)
matrix multiplies run 2-4x faster. Elsewhere bf16 is *emulated*, and on an AVX2-only CPU a
bf16 matmul was measured ~400x slower than fp32. So glassformer never assumes: `dtype="auto"`
asks the CPU what it supports, confirms it with a tiny timing once per process, and uses
bf16 only where it is both native and measurably faster.

    >>> resolve_dtype("fp32")
    'fp32'
    >>> resolve_dtype("auto") in ("bf16", "fp32")
    True
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import torch

DTYPES = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class Capability:
    """What this process measured about its CPU, once."""

    vector_isa: str          # torch's kernel level: "AVX512", "AVX2", "DEFAULT" (e.g. ARM), ...
    native_bf16: bool        # oneDNN reports bf16 instructions (AVX512-BF16 / AMX)
    bf16_speedup: float      # fp32 matmul time / bf16 matmul time, measured (>1: bf16 is faster)

    @property
    def summary(self) -> str:
        """e.g. "AVX512 + bf16 (bf16 matmul 3.1x fp32)" or "AVX2, no native bf16 (bf16 matmul 0.01x fp32)"."""
        native = " + bf16" if self.native_bf16 else ", no native bf16"
        return f"{self.vector_isa}{native} (bf16 matmul {self.bf16_speedup:.2g}x fp32)"

    @property
    def best_dtype(self) -> str:
        # 1.2x: below that the rounding is not worth it (and timings this small are noisy).
        return "bf16" if self.native_bf16 and self.bf16_speedup >= 1.2 else "fp32"


def _matmul_seconds(dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):  # warm up: the first calls may pick or JIT a kernel
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def cpu_capability() -> Capability:
    """Measure once per process (~20 ms with native bf16, ~60 ms without)."""
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    # Small matrices where bf16 is emulated: one 256^2 product would take ~0.1 s at 0.27 GFLOP/s.
    n = 256 if native else 96
    with torch.random.fork_rng():
        speedup = _matmul_seconds(torch.float32, n, 5) / _matmul_seconds(torch.bfloat16, n, 5)
    return Capability(torch.backends.cpu.get_cpu_capability(), native, speedup)


def resolve_dtype(requested: str) -> str:
    """"auto" -> "bf16" or "fp32" for this machine; "bf16" and "fp32" are kept as asked
    ("bf16" on a machine without fast bf16 works, slowly, and says so on stderr)."""
    if requested not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {requested!r}")
    if requested == "fp32":
        return "fp32"
    cap = cpu_capability()
    if requested == "auto":
        return cap.best_dtype
    if cap.best_dtype != "bf16":
        how = f"about {1 / cap.bf16_speedup:.0f}x slower" if cap.bf16_speedup < 1 else "no faster"
        print(f"warning: bf16 was asked for, but this CPU has {cap.summary}: its matrix multiplies are {how} "
              f"than fp32 (use --dtype auto or fp32)", file=sys.stderr)
    return "bf16"


def autocast(dtype: str):
    """Context manager: matrix multiplies in bf16 when dtype == "bf16", plain fp32 otherwise."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
