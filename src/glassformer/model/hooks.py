"""Hook points: how every intermediate tensor of the model is made visible.

A HookPoint is an identity module placed on every sub-step of the forward pass.
Normally it returns its input untouched. A caller can attach functions to it, for a
while, through a context manager on the model:

    with model.hooks({"blocks.0.attn.z": zero_head_3}):
        logits = model(ids)            # head 3 of layer 0 is ablated

and `model.run_with_trace(ids)` attaches a recording function to each named point and
returns a Trace, a read-only mapping from names to tensors. Nothing is ever stashed on
the modules themselves: once the `with` block ends, the model is exactly as before.

The names follow one scheme, listed in HOOK_NAMES below with their shapes.
(Idea borrowed from TransformerLens's hook points; the code is our own.)
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch
from torch import nn

from glassformer.model.config import UnknownName

# A hook function gets the tensor and the hook's name; it returns a replacement tensor
# (to modify the computation) or None (to leave it alone).
HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]

# The naming scheme: name (with {i} for the block index), shape, what it is.
HOOK_NAMES: list[tuple[str, str, str]] = [
    ("embed.tok", "[B, T, D]", "token embeddings: one row of the embedding table per token"),
    ("embed.pos", "[B, T, D]", "positional embeddings added to the tokens (learned/sinusoidal only)"),
    ("blocks.{i}.resid_pre", "[B, T, D]", "the residual stream entering block i"),
    ("blocks.{i}.attn_in", "[B, T, D]", "normalized input to attention (pre-norm) or the raw stream (post-norm)"),
    ("blocks.{i}.attn.q", "[B, H, T, Dh]", "queries, after q-norm and RoPE when the model has them"),
    ("blocks.{i}.attn.k", "[B, Hkv, T, Dh]", "keys of the new positions, after k-norm and RoPE"),
    ("blocks.{i}.attn.v", "[B, Hkv, T, Dh]", "values of the new positions"),
    ("blocks.{i}.attn.scores", "[B, H, T, S]", "scaled dot products q.k / sqrt(Dh) (+ ALiBi bias), before the mask"),
    ("blocks.{i}.attn.masked_scores", "[B, H, T, S]", "scores with future positions set to -inf"),
    ("blocks.{i}.attn.pattern", "[B, H, T, S]", "attention weights: softmax of the masked scores; rows sum to 1"),
    ("blocks.{i}.attn.z", "[B, H, T, Dh]", "each head's output: the pattern-weighted sum of values"),
    ("blocks.{i}.attn_out", "[B, T, D]", "attention output after the output projection"),
    ("blocks.{i}.resid_mid", "[B, T, D]", "the residual stream after adding attention"),
    ("blocks.{i}.mlp_in", "[B, T, D]", "normalized input to the MLP (pre-norm) or the raw stream (post-norm)"),
    ("blocks.{i}.mlp.pre", "[B, T, F]", "MLP hidden layer before the activation (SwiGLU: the gate)"),
    ("blocks.{i}.mlp.post", "[B, T, F]", "MLP hidden layer after the activation (SwiGLU: act(gate) * up)"),
    ("blocks.{i}.mlp.router_logits", "[B, T, E]", "MoE: the router's score for every expert, before the softmax"),
    ("blocks.{i}.mlp.experts", "[B, T, K]", "MoE: the K experts each token is sent to (int64, most probable first)"),
    ("blocks.{i}.mlp.gates", "[B, T, K]", "MoE: the weight of each chosen expert's output (renormalized or not)"),
    ("blocks.{i}.mlp_out", "[B, T, D]", "MLP output after the down projection"),
    ("blocks.{i}.resid_post", "[B, T, D]", "the residual stream leaving block i"),
    ("final_norm", "[B, T, D]", "the last residual stream after the final norm"),
    ("logits", "[B, T, V]", "scores for every vocabulary entry at every position"),
]

# Points that exist only on the eager attention path (the fused kernel never forms them).
EAGER_ONLY = ("attn.scores", "attn.masked_scores", "attn.pattern")


# Points that exist only in blocks with an MLP (an attention-only model, mlp="none", has none of them).
MLP_ONLY = ("mlp_in", "mlp.pre", "mlp.post", "mlp_out")
# Points of a dense MLP only, and of a mixture of experts only (model/moe.py, config n_experts > 0).
DENSE_ONLY = ("mlp.pre", "mlp.post")
MOE_ONLY = ("mlp.router_logits", "mlp.experts", "mlp.gates")


def hook_names(n_layers: int, has_pos_embed: bool = True, has_mlp: bool = True, moe: bool = False) -> list[str]:
    """Every hook name of a model with `n_layers` blocks, in forward order."""
    names: list[str] = []
    absent = MLP_ONLY + MOE_ONLY if not has_mlp else DENSE_ONLY if moe else MOE_ONLY
    block_part = [n for n, _, _ in HOOK_NAMES if n.startswith("blocks.")
                  and n.removeprefix("blocks.{i}.") not in absent]
    for name, _, _ in HOOK_NAMES:
        if name == "embed.pos" and not has_pos_embed:
            continue
        if name.startswith("blocks."):
            if name == block_part[0]:
                for i in range(n_layers):
                    names.extend(n.format(i=i) for n in block_part)
            continue
        names.append(name)
    return names


# Attached functions live per thread: the course serves many learners from one shared model,
# each in its own thread, and one learner's trace or ablation must never touch another's run.
_ATTACHED = threading.local()


def attached() -> dict["HookPoint", list[HookFn]]:
    """This thread's attachments: hook point -> its functions."""
    table = getattr(_ATTACHED, "table", None)
    if table is None:
        table = _ATTACHED.table = {}
    return table


class HookPoint(nn.Module):
    """An identity module that callers can temporarily attach functions to."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""  # filled in by the model, e.g. "blocks.3.attn.pattern"

    @property
    def fns(self) -> list[HookFn]:
        return attached().get(self, [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = getattr(_ATTACHED, "table", None)
        if not table or self not in table:
            return x
        for fn in table[self]:
            out = fn(x, self.name)
            if out is not None:
                if out.shape != x.shape:
                    raise ValueError(f"hook on {self.name} returned shape {tuple(out.shape)}, "
                                     f"expected {tuple(x.shape)}")
                x = out
        return x

    @property
    def active(self) -> bool:
        return bool(self.fns)


class Trace(Mapping[str, torch.Tensor]):
    """Recorded intermediates of one forward pass: name -> tensor (detached)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self._tensors = tensors

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tensors, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise UnknownName(f"{name!r} was not recorded in this trace{hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        rows = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in list(self._tensors.items())[:4])
        more = f", ... ({len(self)} in all)" if len(self) > 4 else ""
        return f"Trace({rows}{more})"


def select_names(available: Iterable[str], patterns: Iterable[str] | str | None) -> list[str]:
    """The available names matching any of the patterns (exact names or globs like 'blocks.*.attn.pattern').

    Raises KeyError for a pattern that matches nothing, so a typo never silently records nothing.
    """
    available = list(available)
    if patterns is None:
        return available
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: list[str] = []
    for pattern in patterns:
        matched = [n for n in available if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            close = difflib.get_close_matches(pattern, available, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise UnknownName(f"no hook point matches {pattern!r}{hint}")
        chosen.extend(n for n in matched if n not in chosen)
    return [n for n in available if n in chosen]  # keep forward order


@contextlib.contextmanager
def attach(points: Mapping[str, "HookPoint"], fns: Mapping[str, HookFn | Iterable[HookFn]]) -> Iterator[None]:
    """Attach functions to the hook points `points` (name -> point) matching each key of `fns`
    (a name or a glob), in this thread only, for the duration of a `with` block."""
    table = attached()
    added: list[tuple[HookPoint, HookFn]] = []
    try:
        for pattern, fn_or_fns in fns.items():
            fn_list = [fn_or_fns] if callable(fn_or_fns) else list(fn_or_fns)
            for name in select_names(points, pattern):
                for fn in fn_list:
                    table.setdefault(points[name], []).append(fn)
                    added.append((points[name], fn))
        yield
    finally:
        for point, fn in added:
            table[point].remove(fn)
            if not table[point]:
                del table[point]
