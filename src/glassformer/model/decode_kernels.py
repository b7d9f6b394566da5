"""Other kernels for the same matrix products: how generation reads its weights faster.

A decode step multiplies one token's vector by every weight matrix, so its speed is how fast
the kernel streams the weights from memory. torch's default for `x @ W` (model/linear.py) is
not the fastest streamer on every CPU. This module offers three others, each used only where a
timing on this machine shows it faster (decided once per machine, kept in its record,
glassformer/machine.py, like the int8 decision of model/quantize.py):

- **oneDNN's inner product** (`torch.ops.mkldnn._linear_pointwise`), fp32 or bf16: the same
  arithmetic as `x @ W` up to rounding order, the weight kept as (out, in).
- **split-K**, fp32: the input dimension cut into one slice per thread, W's rows cut alike, and
  the partial products x_p W_p computed by one batched matmul (`torch.bmm`) and summed:

      x W = x_1 W_1 + x_2 W_2 + ... + x_P W_P        (x_p: a slice of x's columns; W_p: of W's rows)

  torch's batched matmul can give each entry a thread of its own (with the MKL build measured
  here, one matrix-vector product runs on one thread, so that is where the second core comes
  from), each streaming one contiguous block of the weight. This is measured, not derived: on
  other builds and CPUs the probe decides. Timed alone on one large
  matrix it streams no faster than oneDNN's (~35 GB/s on the 2-core AMD EPYC of the recorded
  benchmarks); in a decode step of many products it is faster: GPT-2 small's fp32 step took
  14.0 ms per token against 16.9 with oneDNN there (greedy, 128 tokens, in turns). A likely
  reason, not measured: each oneDNN call has a fixed cost (~15 us for a tiny product, against
  ~2 us for torch.bmm), larger still when the weights streamed between calls have pushed its
  state out of the CPU caches. Hence the probe below times many matrices, not one.
  Up to SPLIT_ROWS rows (one-token steps, batched or not) are split; a prompt's rows are one
  matrix product, by oneDNN on the same memory (W (in, out) is the blocks, stacked), since
  split-K wrote P times the output there (256-token prefill here: 0.98x transformers' speed,
  ~1.9x with oneDNN). The blocks' shape depends on the thread count at conversion, so a
  converted model's state_dict fits only a model converted with as many threads.
- **fbgemm's dynamic int8 product** (`torch.ops.quantized.linear_dynamic`): the int8 weights
  of model/quantize.py (the same q and per-channel scales) times *int8 activations*: at every
  call each row of x is rounded to 8 bits with a scale of its own, the integers are multiplied
  and summed in int32, and the result is scaled back to fp32. fbgemm has AVX2 kernels, so this
  works on CPUs without bf16 or VNNI instructions, where torch's weight-only int8 kernel is slow.

      row scale   m_i = max_j |x_ij|          x_ij / m_i ∈ [-1, 1]  (rounded to 8 bits by fbgemm)
      y_i = m_i · (x_i / m_i) (q s)ᵀ + b

fbgemm quantizes a whole call's input with one scale; dividing each row by its own maximum
first makes that scale per row (a long prompt's quiet rows keep their precision). Activations
are scaled for 7 bits (`reduce_range`), so they round to 0..128 rather than 0..255: on CPUs
without VNNI, fbgemm's kernel adds pairs of 8-bit products in 16 bits, which overflows with
full-range activations and would make the result depend on the CPU (2 x 128 x 127 = 32,512
fits; 2 x 255 x 127 does not).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import mmap
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from glassformer import timing
from glassformer.model.linear import Linear
from glassformer.model.quantize import Int8Embedding, quantize_per_channel

PROBE_ROUNDS = 9


HUGE_PAGE = 2 * 2**20


def on_huge_pages(t: torch.Tensor) -> torch.Tensor:
    """A copy of t in memory that Linux is asked to back with 2 MB pages (transparent huge pages).

    Streaming 500 MB of weights through 4 KB pages means ~120,000 address translations per token;
    with 2 MB pages, ~250. A decode step's 49 GPT-2-small matrix products measured 19.0 -> 17.2 ms
    per token here (2-core AMD EPYC). Where the system offers no such advice (not Linux, or a
    tensor under 2 MB) this is an ordinary contiguous copy.
    """
    nbytes = t.numel() * t.element_size()
    if not hasattr(mmap, "MADV_HUGEPAGE") or nbytes < HUGE_PAGE:
        return t.detach().clone(memory_format=torch.contiguous_format)              # one copy, contiguous
    buffer = mmap.mmap(-1, -(-nbytes // HUGE_PAGE) * HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # untouched
    buffer.madvise(mmap.MADV_HUGEPAGE)
    out = torch.frombuffer(buffer, dtype=t.dtype, count=t.numel()).view(t.shape)  # keeps `buffer` alive
    out.copy_(t.detach())
    return out


def _operator(namespace: str, name: str):
    """torch.ops.<namespace>.<name>.default, or None where this build of torch lacks it. Calling the
    operator itself skips torch.ops' lookup by name, a few microseconds per call."""
    try:
        return getattr(getattr(torch.ops, namespace), name).default
    except (AttributeError, RuntimeError):
        return None


onednn_linear = _operator("mkldnn", "_linear_pointwise")   # (x (N, in), weight (out, in), bias, "none", [], "")


class OneDnnLinear(nn.Module):
    """y = x Wᵀ + b by oneDNN's inner product; W (out, in) in the model's dtype, on huge pages."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if onednn_linear is None:
            raise RuntimeError("this build of torch has no oneDNN linear (torch.ops.mkldnn._linear_pointwise)")
        self.register_buffer("weight", on_huge_pages(weight))                        # (out, in)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())  # (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.is_contiguous():                                        # one token per row: as is
            return onednn_linear(x, self.weight, self.bias, "none", [], "")
        flat = x.reshape(-1, x.shape[-1]).contiguous()                                # (N, in)
        y = onednn_linear(flat, self.weight, self.bias, "none", [], "")              # (N, out)
        return y.view(*x.shape[:-1], y.shape[-1])                                     # (..., out)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, oneDNN"


# Split-K for up to this many rows (one-token steps, batched or not); more rows (a prompt): one matrix product.
# Measured here: 1 row faster split, 32 rows faster whole (oneDNN); 8 lies between and was not measured itself.
SPLIT_ROWS = 8


def split_k(flat: torch.Tensor, blocks: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(N, in) -> (N, out) for N <= SPLIT_ROWS rows: the P slices' partial products, one batched matmul
    (blocks (P, in/P, out)), summed, plus the bias. SplitKLinear.forward and the one-token step's plain
    function (model/decode_step.py) both compute it here."""
    parts, width, _ = blocks.shape
    slices = flat.view(flat.shape[0], parts, width).transpose(0, 1)            # (P, N, in/P)
    y = torch.bmm(slices, blocks).sum(dim=0)                                   # (N, out): P partial products
    return y if bias is None else y.add_(bias)


class SplitKLinear(nn.Module):
    """y = x Wᵀ + b as the sum of P partial products over slices of the input (the module docstring):
    W kept as P blocks (P, in/P, out), one per thread, on huge pages."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, parts: int) -> None:
        super().__init__()
        d_out, d_in = weight.shape
        parts = max(p for p in range(1, max(parts, 1) + 1) if d_in % p == 0)      # P divides the input width
        blocks = weight.detach().t().reshape(parts, d_in // parts, d_out)        # (P, in/P, out): W's rows, sliced
        self.register_buffer("weight", on_huge_pages(blocks))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())  # (out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts, width, d_out = self.weight.shape
        flat = x.reshape(-1, parts * width)                                         # (N, in)
        y = split_k(flat, self.weight, self.bias) if 0 < len(flat) <= SPLIT_ROWS else self.whole(flat)  # else: a prompt
        return y.view(*x.shape[:-1], d_out)                                        # (..., out)

    def whole(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, in) -> (N, out) as one matrix product, for more rows than SPLIT_ROWS (module docstring):
        oneDNN's inner product reading W (in, out) transposed as it lies, or `x @ W` where this torch
        lacks that kernel or it lacks the dtype."""
        w = self.weight.view(-1, self.weight.shape[2])                                 # (in, out): the blocks, stacked
        if onednn_linear is not None and flat.dtype in (torch.float32, torch.bfloat16) and len(flat):
            return onednn_linear(flat.contiguous(), w.t(), self.bias, "none", [], "")   # (N, out)
        return flat @ w if self.bias is None else torch.addmm(self.bias, flat, w)      # (N, out)

    def extra_repr(self) -> str:
        parts, width, d_out = self.weight.shape
        return f"in={parts * width}, out={d_out}, split-K into {parts}"


@contextlib.contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """torch's quantized engine set to `name` ("fbgemm", ...) for a while, then restored."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


class DynamicInt8Linear(nn.Module):
    """y = x (q s)ᵀ + b with int8 weights and, at every call, int8 activations (one scale per row)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        q, scale = quantize_per_channel(weight)                                       # (out, in), (out,)
        self.register_buffer("q", q)          # kept for inspection and byte counts; fbgemm packs its own copy
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        with quantized_engine("fbgemm"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")   # torch 2.13 deprecates them
            weights = torch._make_per_channel_quantized_tensor(q, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0)
            self.packed = torch.ops.quantized.linear_prepack(weights, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()                                      # (N, in)
        m = flat.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)                      # (N, 1) each row's scale
        y = torch.ops.quantized.linear_dynamic(flat / m, self.packed, True) * m        # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], y.shape[-1]).to(x.dtype)                          # (..., out)

    def __deepcopy__(self, memo: dict) -> DynamicInt8Linear:   # fbgemm's packed weights cannot be deep-copied
        clone = DynamicInt8Linear.__new__(DynamicInt8Linear)
        nn.Module.__init__(clone)
        for name, buffer in self._buffers.items():
            clone.register_buffer(name, None if buffer is None else buffer.clone())
        clone.packed = self.packed
        return clone

    def extra_repr(self) -> str:
        return f"in={self.q.shape[1]}, out={self.q.shape[0]}, int8 weights x int8 activations (fbgemm)"


def _replace_matrices(model: nn.Module, make) -> nn.Module:
    """A copy of `model` with every Linear and the unembedding built anew by make(weight (out, in), bias)."""
    copied = copy.deepcopy(model)
    for parent in list(copied.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Linear):                    # our Linear stores (in, out)
                setattr(parent, name, make(child.weight.detach().t(), child.bias))
    copied.unembed = make(model.unembed.weight.detach(), None)                   # (V, D)
    return copied


def kernel_linear(kernel: str, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """y = x Wᵀ + b, W (out, in), by `kernel`: "onednn", or "split-k" with one slice per thread of this process."""
    if kernel == "onednn":
        return OneDnnLinear(weight, bias)
    if kernel == "split-k":
        return SplitKLinear(weight, bias, torch.get_num_threads())
    raise ValueError(f"kernel must be one of {FP32_KERNELS}, got {kernel!r}")


def kernel_model(model: nn.Module, kernel: str) -> nn.Module:
    """A copy of `model` whose weight matrices are multiplied by `kernel` (kernel_linear; same dtype, same values)."""
    with torch.inference_mode(False), torch.no_grad():
        return _replace_matrices(model, functools.partial(kernel_linear, kernel))


def dynamic_int8_model(model: nn.Module) -> nn.Module:
    """A copy of `model` with int8 weight matrices multiplied by fbgemm with int8 activations; the token
    embedding becomes the same int8 table as model/quantize.py's; norms and position tables stay fp32."""
    with torch.inference_mode(False), torch.no_grad():
        quantized = _replace_matrices(model, DynamicInt8Linear)
        quantized.embed.tok = Int8Embedding(*quantize_per_channel(model.embed.tok.weight))
    return quantized.float()


# The matrices of six decoder layers at GPT-2 small's width (768) and an unembedding of 32,768 words,
# (in, out) as Linear holds them: ~140 MB in fp32, larger than the caches, in the order and at the
# shapes a decode step multiplies them. Many matrices, not one large one: a kernel's fixed cost per
# call counts as it does in a real step (25 calls here, 49 per token in GPT-2 small).
PROBE_MATRICES = ((768, 2304), (768, 768), (768, 3072), (3072, 768)) * 6 + ((768, 32768),)
KERNELS = ("onednn", "split-k", "int8pack", "fbgemm-int8")
FP32_KERNELS = ("onednn", "split-k")           # the kernels that compute in fp32, as `x @ W` does


def _probe() -> dict:
    """One token through PROBE_MATRICES: `x @ W` in fp32 and each kernel of KERNELS, in
    rounds (timing.measure_in_turns), on the threads generation will use (the process's)."""
    from glassformer.model.quantize import Int8Linear, int8_kernel

    gen = torch.Generator().manual_seed(0)
    plain = []
    for d_in, d_out in PROBE_MATRICES:
        layer = Linear(d_in, d_out)
        nn.init.normal_(layer.weight, std=0.02, generator=gen)
        plain.append(layer)
    xs = {d_in: torch.randn(1, d_in, generator=gen) for d_in, _ in PROBE_MATRICES}
    builders = {"onednn": lambda m: kernel_linear("onednn", m.weight.detach().t(), m.bias),
                "split-k": lambda m: kernel_linear("split-k", m.weight.detach().t(), m.bias),
                "int8pack": lambda m: Int8Linear(m, int8_kernel()),
                "fbgemm-int8": lambda m: DynamicInt8Linear(m.weight.detach().t(), m.bias)}
    fns, errors = {"fp32": lambda: [m(xs[m.weight.shape[0]]) for m in plain]}, {}
    for name in KERNELS:
        try:
            layers = [builders[name](m) for m in plain]
            [m(xs[d_in]) for m, (d_in, _) in zip(layers, PROBE_MATRICES)]        # raises where it is missing
        except (RuntimeError, AttributeError, NotImplementedError) as error:
            errors[name] = str(error).splitlines()[0][:120]
            continue
        fns[name] = lambda layers=layers: [m(xs[d_in]) for m, (d_in, _) in zip(layers, PROBE_MATRICES)]
    with torch.inference_mode():
        times = timing.measure_in_turns(fns, repeats=PROBE_ROUNDS, threads=None)
    kernels = {name: timing.Comparison("fp32", name, times["fp32"].seconds, times[name].seconds).as_dict()
               for name in fns if name != "fp32"}
    return {"threads": torch.get_num_threads(), "matrices": _probed(), "kernels": kernels, "errors": errors}


def _probed() -> list[list[int]]:
    """PROBE_MATRICES as a record keeps them: a record made on other matrices is measured again."""
    return [list(shape) for shape in PROBE_MATRICES]


def measured() -> dict:
    """The probe's result for this machine and thread count: read from its record, or measured once
    (~2-3 s) and stored."""
    return _stored(_section())


@functools.cache
def _stored(section: str) -> dict:
    from glassformer import machine

    def stale(data: dict | None) -> bool:
        # none yet, or one made on other matrices, or one from before a kernel of KERNELS existed
        return (data is None or data.get("matrices") != _probed()
                or bool(set(KERNELS) - set(data["kernels"]) - set(data["errors"])))

    return machine.section(section, _probe, stale)


def _section() -> str:
    """The record's section for the process's thread count: kernels rank differently on 1 and on 8 threads."""
    return f"decode-kernels-{torch.get_num_threads()}-threads"


def faster(name: str) -> bool:
    """Whether kernel `name` was measured clearly faster than fp32 `x @ W` on this machine."""
    return measured()["kernels"].get(name, {}).get("verdict") == "faster"


def fp32_kernel() -> str | None:
    """The fp32 kernel for decoding on this machine: of FP32_KERNELS, the one measured fastest among
    those measured clearly faster than `x @ W`; None (torch's `x @ W`) where none was."""
    kernels = measured()["kernels"]
    clear = [name for name in FP32_KERNELS if faster(name)]
    return max(clear, key=lambda name: kernels[name]["speedup"], default=None)


def figure(name: str) -> str:
    """e.g. "1.62× (1.50–1.71×, 9 runs in turns)" against fp32 `x @ W`, or why it is unavailable."""
    data = measured()["kernels"].get(name)
    if data is None:
        return f"unavailable ({measured()['errors'].get(name, 'not measured')})"
    low, high = data["interval"]
    return f"{data['speedup']:.2f}× ({low:.2f}–{high:.2f}×, {data['runs']} runs in turns)"


def remeasure() -> dict:
    """Measure again and replace the stored result (glassformer info --remeasure)."""
    from glassformer import machine

    _stored.cache_clear()
    machine.save_section(_section(), _probe())
    return measured()
