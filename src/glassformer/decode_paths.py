"""Three ways to run the same model for generation, and the fastest one on this CPU.

Decoding one token reads every weight once, so on a CPU its speed is set by how many bytes
the weights take and how fast memory delivers them:

- fp32: the reference. Greedy tokens are identical to Hugging Face transformers in fp32.
- bf16: weights and activations in bfloat16, half the bytes. Only where the CPU computes bf16
  natively (precision.cpu_capability): elsewhere a bf16 matmul is hundreds of times slower.
- int8: int8 weights, one scale per output channel (model/quantize.py), a quarter of the bytes.
  Only where this CPU's int8 kernel is a speed path (quantize.int8_kernel).

`fastest_path` picks by those decisions, as training picks its precision: each rests on what
the CPU reports, confirmed by a timing, and is kept per machine (glassformer/machine.py), so the
path does not change with how busy the machine was when a process started.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from glassformer import timing
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
                        f"activations) measured {kernel.figure} the fp32 matrix-vector product"
    return paths


def convert(model: nn.Module, name: str) -> DecodePath:
    """The model prepared for path `name` (a copy; the fp32 model itself for "fp32")."""
    if name not in PATHS:
        raise ValueError(f"decode path must be one of {PATHS}, got {name!r}")
    why = available_paths().get(name, "not a speed path on this CPU (glassformer info says why)")
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


def copy_bandwidth(megabytes: int = 256, repeats: int = 7) -> float:
    """Measured memory bandwidth of this machine, bytes/s: a large tensor copied (read + write),
    the median of `repeats` copies (timing.measure)."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    copied = timing.measure(lambda: dst.copy_(src), repeats=repeats)
    return 2 * src.numel() * 4 / copied.median


def machine_report(remeasure: bool = False) -> str:
    """What `glassformer info` prints: the CPU's facts, each decision taken from them, the timing
    that confirmed it (from the machine's record) and the decode paths that follow."""
    from glassformer import machine, precision
    from glassformer.model import quantize

    if remeasure:
        cap, kernel = precision.remeasure(), quantize.remeasure_int8()
    else:
        cap, kernel = cpu_capability(), int8_kernel()
    cpu = machine.facts()
    record = machine.load_record(cpu)

    def timed(section: str, what: str) -> str:
        data = record.get(section)
        if not data:
            return "  (no stored timing)"
        low, high = data["interval"]
        medians = (f"{data['baseline_median_s'] * 1e3:.2f} ms {data['baseline']}, "
                   f"{data['candidate_median_s'] * 1e3:.2f} ms {data['candidate']}")
        return (f"  timing: {what}: {data['candidate']} {data['speedup']:.2f}× the speed of {data['baseline']} "
                f"({low:.2f}–{high:.2f}×, {data['runs']} runs in turns; medians {medians}; "
                f"verdict: {data['verdict']}), measured {data.get('measured_at', '?')}")

    size = precision.PROBE_SIZE if cap.native_bf16 else precision.EMULATED_PROBE_SIZE
    act = str(kernel.activations).removeprefix("torch.")
    int8_why = ("its int8 kernel with bf16 activations" if quantize.expected_fast(kernel.name, kernel.activations)
                else f"the {kernel.name} kernel with {act} activations is not the fast path")
    lines = [cpu.describe(),
             f"record: {machine.record_path(cpu)}",
             f"training precision (--dtype auto): {cap.best_dtype}: {cap.reason}",
             timed("bf16", f"{size} x {size} matrix product, one thread"),
             f"int8 weights: {'a speed path' if kernel.fast else 'smaller, not a speed path'}: {int8_why}"
             + (", measured clearly slower" if kernel.verdict == "slower" and not kernel.fast else ""),
             timed("int8", f"one token times a {quantize.PROBE_SHAPE[0]} x {quantize.PROBE_SHAPE[1]} matrix "
                           f"({kernel.name}, {act} activations), one thread"),
             f"decode paths offered: {', '.join(available_paths())}; fastest: {fastest_path_name()}",
             "The facts decide; a timing can only overrule them when it is clearly against them. "
             + ("Measured again just now." if remeasure else
                "Stored once per machine: `glassformer info --remeasure` measures again.")]
    return "\n".join(lines)
