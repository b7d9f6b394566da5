"""Four ways to run the same model for generation, and the fastest one on this CPU.

Decoding one token reads every weight once, so on a CPU its speed is set by how many bytes
the weights take, how fast memory delivers them and how well the kernel streams them:

- fp32: the reference arithmetic; its matrices are multiplied by the fp32 kernel measured fastest
  here (oneDNN's or split-K, model/decode_kernels.py) where one was clearly faster than torch's
  default, else the model as it is.
- bf16: weights and activations in bfloat16, half the bytes. Only where the CPU computes bf16
  natively (precision.cpu_capability): elsewhere a bf16 matmul is hundreds of times slower.
- int8: int8 weights, one scale per output channel (model/quantize.py), a quarter of the bytes,
  activations in floating point. Only where this CPU's weight-only int8 kernel is a speed path
  (quantize.int8_kernel: it needs bf16 instructions).
- int8-dynamic: the same int8 weights, and each call's activations rounded to int8 too, so
  the product is all integers (fbgemm, which has AVX2 kernels). Offered where it was measured
  faster than fp32: the fast path of CPUs without bf16.

`fastest_path` picks the path with the fewest bytes per weight among those offered, and between
the two int8 paths the one whose kernel measured faster. Each decision rests on what the CPU
reports and a timing kept per machine (glassformer/machine.py), so the path does not change with
how busy the machine was when a process started.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from glassformer.model import DecoderLM, decode_kernels
from glassformer.model.decode_step import fast_decoder
from glassformer.model.decode_kernels import (DynamicInt8Linear, OneDnnLinear, SplitKLinear, dynamic_int8_model,
                                                kernel_model, on_huge_pages)
from glassformer.model.embedding import Unembed
from glassformer.model.linear import Linear
from glassformer.model.quantize import Int8Linear, Int8Unembed, int8_kernel, quantize_model
from glassformer.precision import cpu_capability

PATHS = ("fp32", "bf16", "int8", "int8-dynamic")
KERNEL_NAMES = {"onednn": "oneDNN's inner product", "split-k": "split-K (torch.bmm, one slice of the input per thread)"}


@dataclass
class DecodePath:
    name: str            # one of PATHS
    model: nn.Module     # the model converted for this path (the fp32 model itself for "fp32")
    why: str             # the measurement that allows or recommends it on this CPU


def available_paths() -> dict[str, str]:
    """Path name -> why it is offered on this CPU (fp32 always is)."""
    fp32 = decode_kernels.fp32_kernel()
    kernel = (f"{KERNEL_NAMES[fp32]}, measured at {decode_kernels.figure(fp32)} the speed of torch's default"
              if fp32 else "torch's default (neither oneDNN's nor split-K measured faster here)")
    paths = {"fp32": f"the reference precision, fast everywhere; kernel: {kernel}"}
    cap = cpu_capability()
    if cap.best_dtype == "bf16":
        paths["bf16"] = f"{cap.summary}"
    kernel = int8_kernel()
    if kernel.fast:
        paths["int8"] = f"int8 kernel ({kernel.name}, {str(kernel.activations).removeprefix('torch.')} " \
                        f"activations) measured {kernel.figure} the fp32 matrix-vector product"
    if decode_kernels.faster("fbgemm-int8"):
        paths["int8-dynamic"] = f"fbgemm's int8 x int8 kernel measured {decode_kernels.figure('fbgemm-int8')} " \
                                "fp32 on a small model's matrices"
    return paths


def convert(model: nn.Module, name: str) -> DecodePath:
    """The model prepared for path `name`: a copy (for fp32 without a faster kernel, one sharing the model's
    weights), whose one-token steps skip the hook points (model/decode_step.py)."""
    if name not in PATHS:
        raise ValueError(f"decode path must be one of {PATHS}, got {name!r}")
    why = available_paths().get(name, "not a speed path on this CPU (glassformer info says why)")
    if name == "fp32":
        fp32 = decode_kernels.fp32_kernel()
        converted = kernel_model(model, fp32) if fp32 else model
    elif name == "int8-dynamic":
        converted = dynamic_int8_model(model)
    else:
        with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, even when called under inference mode
            if name == "bf16":
                bf16 = copy.deepcopy(model).to(torch.bfloat16)
                converted = kernel_model(bf16, "onednn") if decode_kernels.faster("onednn") else bf16
            else:
                converted = quantize_model(model)
    if isinstance(converted, DecoderLM):  # one-token steps skip the hook points (model/decode_step.py)
        converted = fast_decoder(converted, copy_first=converted is model)
    return DecodePath(name, converted, why)


def fastest_path_name() -> str:
    """The path with the fewest bytes per token among those this CPU runs fast (int8, then bf16, then
    fp32); of the two int8 paths, the one whose kernel was measured faster (decode_kernels.measured)."""
    offered = available_paths()
    int8 = [name for name in ("int8", "int8-dynamic") if name in offered]
    if len(int8) == 2:
        speed = decode_kernels.measured()["kernels"]
        int8.sort(key=lambda name: -speed.get("int8pack" if name == "int8" else "fbgemm-int8", {}).get("speedup", 0))
    return next(name for name in (*int8, "bf16", "fp32") if name in offered)


def fastest_path(model: nn.Module) -> DecodePath:
    """`model` converted for the fastest path on this CPU (fastest_path_name)."""
    return convert(model, fastest_path_name())


def bytes_read_per_token(model: nn.Module) -> int:
    """Weight bytes one decode step reads: every weight matrix and the whole unembedding
    (the embedding lookup reads one row, norms and biases are negligible)."""
    total = 0
    for module in model.modules():
        if isinstance(module, (Linear, OneDnnLinear, SplitKLinear)):
            total += module.weight.numel() * module.weight.element_size()
        elif isinstance(module, (Int8Linear, Int8Unembed, DynamicInt8Linear)):
            total += module.q.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, Unembed):
            total += module.weight.numel() * module.weight.element_size()
    return total


def memory_read(megabytes: int = 256) -> tuple[Callable[[], object], int]:
    """A read of memory, and the bytes it reads: a tensor larger than the caches, on huge pages as the
    decode kernels' weights are, summed on the process's threads (what a decode step does to its
    weights: read each once). Timed, bytes / seconds is the read bandwidth; it moves with what else the
    machine (or, on a virtual machine, its host) is doing, so time it beside what it is compared with
    (bench/generate.py times it in the engines' rounds)."""
    src = on_huge_pages(torch.ones(megabytes * 2**20 // 4))
    return src.sum, src.numel() * 4


BENCH_RECORD = Path(__file__).parent / "assets" / "bench" / "generate.json"


def recorded_benchmarks(path: Path = BENCH_RECORD) -> list[dict]:
    """The runs of `python bench/generate.py --record` shipped with the package: GPT-2-small-shaped
    decoding against transformers and CTranslate2, each run with its CPU, date and figures."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return []


def machine_report(remeasure: bool = False) -> str:
    """What `glassformer info` prints: the CPU's facts, each decision taken from them, the timing
    that confirmed it (from the machine's record) and the decode paths that follow."""
    from glassformer import machine, precision
    from glassformer.model import quantize

    if remeasure:
        cap, kernel = precision.remeasure(), quantize.remeasure_int8()
        decode_kernels.remeasure()
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
             "decode kernels against fp32 x @ W, one token through six width-768 layers' matrices and a "
             f"32,768-word unembedding, {torch.get_num_threads()} threads: "
             + "; ".join(f"{name} {decode_kernels.figure(name)}" for name in decode_kernels.KERNELS),
             f"decode paths offered: {', '.join(available_paths())}; fastest: {fastest_path_name()}",
             "The facts decide; a timing can only overrule them when it is clearly against them. "
             + ("Measured again just now." if remeasure else
                "Stored once per machine: `glassformer info --remeasure` measures again.")]
    return "\n".join(lines)
