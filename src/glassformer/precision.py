"""Which number format the matrix multiplies use, chosen by what this CPU is, confirmed by a timing.

bfloat16 (bf16) keeps float32's range with 8 bits of mantissa instead of 24: half the bytes,
and on hardware with bf16 instructions (AVX512-BF16 / AMX on recent x86, most GPUs) matrix
multiplies run 2-4x faster. Elsewhere bf16 is *emulated*, and on an AVX2-only CPU a bf16 matmul
was measured ~400x slower than fp32. So glassformer never assumes, and never trusts one timing
either: `dtype="auto"` is bf16 only where

1. the CPU lists bf16 dot-product instructions and torch's oneDNN may use them (machine.py: facts
   the processor reports, the same in every run), and
2. a timing does not contradict it: 512 x 512 matrix products in fp32 and bf16, in turns, 11 pairs
   (timing.compare). Only a bf16 product measured *clearly* slower (the whole interval below 1)
   overrules the facts; a noisy moment gives "no clear difference", which does not.

The decision and its evidence are kept in the machine's record (machine.py), so every later
process, on a quiet or a busy machine, makes the same choice. `glassformer info` shows it.

    >>> resolve_dtype("fp32")
    'fp32'
    >>> resolve_dtype("auto") in ("bf16", "fp32")
    True
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import torch

from glassformer import machine, timing

DTYPES = ("auto", "bf16", "fp32")
PROBE_SIZE = 512          # n of the n x n products timed where bf16 has instructions (~1 ms each)
EMULATED_PROBE_SIZE = 160  # where bf16 is emulated (~50x slower: ~4 ms each at this size)
PROBE_PAIRS = 21


@dataclass(frozen=True)
class Capability:
    """This machine's bf16 decision and the evidence for it."""

    vector_isa: str             # torch's kernel level: "AVX512", "AVX2", "DEFAULT" (e.g. ARM), ...
    native_bf16: bool           # bf16 instructions that torch may use (machine.CpuFacts.bf16_instructions)
    bf16_speedup: float         # median over pairs of fp32 matmul time / bf16 matmul time (>1: bf16 faster)
    interval: tuple[float, float] = (float("nan"), float("nan"))   # the speed-up's interval (timing.py)
    runs: int = 0               # pairs timed
    verdict: str = "unclear"    # timing.Comparison.verdict for bf16 against fp32
    measured_at: str = ""       # when the record was made ("" for one made by hand)

    @property
    def summary(self) -> str:
        """e.g. "AVX512 + bf16 (bf16 matmul 2.3x fp32, 2.1-2.5x over 11 runs)"."""
        native = " + bf16" if self.native_bf16 else ", no native bf16"
        spread = (f", {self.interval[0]:.2g}-{self.interval[1]:.2g}x over {self.runs} runs" if self.runs else "")
        return f"{self.vector_isa}{native} (bf16 matmul {self.bf16_speedup:.2g}x fp32{spread})"

    @property
    def best_dtype(self) -> str:
        # The instructions decide; the timing can only veto them, and only when bf16 is clearly slower.
        return "bf16" if self.native_bf16 and self.verdict != "slower" else "fp32"

    @property
    def reason(self) -> str:
        if not self.native_bf16:
            return "no bf16 instructions that torch may use on this CPU"
        if self.verdict == "slower":
            return "bf16 instructions reported, but bf16 products measured clearly slower than fp32"
        return "bf16 instructions reported" + (", and bf16 products measured faster" if self.verdict == "faster" else
                                               " (the timing showed no clear difference, which does not overrule them)")


def measure_bf16(native: bool, pairs: int = PROBE_PAIRS) -> timing.Comparison:
    """fp32 against bf16 n x n matrix products, in turns (timing.compare); small n where bf16 is emulated."""
    n = PROBE_SIZE if native else EMULATED_PROBE_SIZE
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    a16, b16 = a.bfloat16(), b.bfloat16()
    out32, out16 = torch.empty(n, n), torch.empty(n, n, dtype=torch.bfloat16)
    return timing.compare(lambda: torch.mm(a, b, out=out32), lambda: torch.mm(a16, b16, out=out16),
                          names=("fp32", "bf16"), repeats=pairs, warmup=2)


def _from_record(cpu: machine.CpuFacts, data: dict) -> Capability:
    return Capability(cpu.torch_isa, cpu.bf16_instructions, data["speedup"], tuple(data["interval"]), data["runs"],
                      data["verdict"], data.get("measured_at", ""))


@functools.cache
def cpu_capability() -> Capability:
    """This machine's bf16 decision: read from its record, or measured once (~0.1 s) and stored."""
    cpu = machine.facts()
    data = machine.section("bf16", lambda: measure_bf16(cpu.bf16_instructions).as_dict(), cpu=cpu)
    return _from_record(cpu, data)


def remeasure() -> Capability:
    """Measure again, replace the stored decision, and return it (glassformer info --remeasure)."""
    cpu = machine.facts()
    machine.save_section("bf16", measure_bf16(cpu.bf16_instructions).as_dict(), cpu)
    cpu_capability.cache_clear()
    return cpu_capability()


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
