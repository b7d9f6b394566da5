"""Three ways to run the same model for generation, and the fastest one on this CPU.

Decoding one token reads every weight once, so on a CPU its speed is set by how many bytes
the weights take and how fast memory delivers them:

- fp32: the reference. Greedy tokens are identical to Hugging Face transformers in fp32.
- bf16: weights and activations in bfloat16, half the bytes. Only where the CPU computes bf16
  natively (precision.cpu_capability): elsewhere a bf16 matmul is hundreds of times slower.
- int8: int8 weights, one scale per output channel (model/quantize.py), a quarter of the bytes.
  Only where this CPU's int8 kernel was measured faster than fp32 (quantize.int8_kernel).

`fastest_path` picks by those measurements, as training picks its precision: nothing here
assumes the CPU it happens to run on.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from glassformer.model.embedding import Unembed
from glassformer.model.linear import Linear
from glassformer.model.quantize import Int8Linear, Int8Unembed, int8_kernel, quantize_model
from glassformer.precision import cpu_capability

PATHS = ("fp32", "bf16", "int8")


@dataclass
class DecodePath:
    name: str            # "fp32", "bf16" or "int8"
    model: nn.Module     # the model converted for this path (the fp32 model itself for "fp32")
    why: str             # the measurement that allows or recommends it on this CPU


def available_paths() -> dict[str, str]:
    """Path name -> why it is offered on this CPU (fp32 always is)."""
    paths = {"fp32": "the reference precision, fast everywhere"}
    cap = cpu_capability()
    if cap.best_dtype == "bf16":
        paths["bf16"] = f"{cap.summary}"
    kernel = int8_kernel()
    if kernel.fast:
        paths["int8"] = f"int8 kernel ({kernel.name}, {str(kernel.activations).removeprefix('torch.')} " \
                        f"activations) measured {kernel.speedup:.1f}x the fp32 matrix-vector product"
    return paths


def convert(model: nn.Module, name: str) -> DecodePath:
    """The model prepared for path `name` (a copy; the fp32 model itself for "fp32")."""
    if name not in PATHS:
        raise ValueError(f"decode path must be one of {PATHS}, got {name!r}")
    why = available_paths().get(name, "not recommended on this CPU (measured slower than fp32)")
    if name == "fp32":
        return DecodePath(name, model, why)
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, even when called under inference mode
        if name == "bf16":
            return DecodePath(name, copy.deepcopy(model).to(torch.bfloat16), why)
        return DecodePath(name, quantize_model(model), why)


def fastest_path_name() -> str:
    """The path with the fewest bytes per token among those this CPU runs fast: int8, then bf16, then fp32."""
    offered = available_paths()
    return next(name for name in ("int8", "bf16", "fp32") if name in offered)


def fastest_path(model: nn.Module) -> DecodePath:
    """`model` converted for the fastest path on this CPU (fastest_path_name)."""
    return convert(model, fastest_path_name())


def bytes_read_per_token(model: nn.Module) -> int:
    """Weight bytes one decode step reads: every weight matrix and the whole unembedding
    (the embedding lookup reads one row, norms and biases are negligible)."""
    total = 0
    for module in model.modules():
        if isinstance(module, Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif isinstance(module, (Int8Linear, Int8Unembed)):
            total += module.q.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, Unembed):
            total += module.weight.numel() * module.weight.element_size()
    return total


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Measured memory bandwidth of this machine, bytes/s: a large tensor copied (read + write)."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best
