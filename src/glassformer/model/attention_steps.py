"""Attention for one query, one step at a time: the numbers chapter 4 puts on screen.

`Attention.eager` (attention.py) computes every head and every position at once. This module
takes the tensors it recorded (the trace's q, k, v of one layer) and redoes the arithmetic for a
single head and a single query position, keeping each intermediate:

    dots    = K q                        (S,)   how well each key matches the query
    scores  = dots / sqrt(Dh) (+ bias)   (S,)   what the model's `attn.scores` hook records
    masked  = scores, -inf after t       (S,)   the causal mask
    weights = softmax(masked)            (S,)   `attn.pattern`, one row
    out     = weights @ V                (Dh,)  `attn.z`, one head at one position

tests/test_ch04_attention.py checks each against a plain-Python computation and against the
model's own traced pattern and z. The rest are the small experiments of the chapter: how the
variance of q.k grows with the width (why the sqrt(Dh)), how sharp a softmax is (entropy),
and a model run with the causal mask switched off (through hooks; the model is unchanged).

Shapes: S keys, T queries, H query heads, Hkv key/value heads, Dh head width.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch


def kv_head(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The key/value head that query head `head` reads (grouped-query attention).

    Attention.eager repeats each kv head H/Hkv times (repeat_interleave), so query heads
    0..g-1 share kv head 0, g..2g-1 share kv head 1, ... with g = H/Hkv.

        >>> [kv_head(h, 16, 8) for h in range(4)]     # Qwen3-0.6B: 16 query heads, 8 kv heads
        [0, 0, 1, 1]
    """
    if not 0 <= head < n_heads:
        raise ValueError(f"head {head} is outside 0..{n_heads - 1}")
    if n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} query heads cannot be split evenly over {n_kv_heads} kv heads")
    return head // (n_heads // n_kv_heads)


@dataclass
class QuerySteps:
    """Every intermediate of attention for one head and one query position t.

    q (Dh,), keys (S, Dh), values (S, Dh), dots (S,) = keys @ q, scores (S,) = dots * scale + bias,
    masked (S,) = scores with -inf where the mask forbids, weights (S,) = softmax(masked),
    out (Dh,) = weights @ values.
    """

    query: int
    q: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    dots: torch.Tensor
    scores: torch.Tensor
    masked: torch.Tensor
    weights: torch.Tensor
    out: torch.Tensor
    scale: float


def query_steps(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, query: int, *, scaled: bool = True,
                causal: bool = True, bias: torch.Tensor | None = None) -> QuerySteps:
    """Attention of position `query` for one head: q (T, Dh), k (S, Dh), v (S, Dh) -> QuerySteps.

    scaled=False leaves out the 1/sqrt(Dh); causal=False leaves out the mask (the query then
    also sees later positions). bias (S,) is added to the scores (ALiBi's distance penalty).

        >>> q = torch.tensor([[1.0, 0.0], [0.0, 2.0]]); k = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> s = query_steps(q, k, v=torch.eye(2), query=0)
        >>> s.dots.tolist(), s.weights.tolist()     # key 1 is in the future of query 0: weight 0
        ([1.0, 1.0], [1.0, 0.0])
    """
    q, k, v = q.float(), k.float(), v.float()
    scale = 1 / math.sqrt(q.shape[-1]) if scaled else 1.0
    dots = k @ q[query]                                                # (S,)
    scores = dots * scale
    if bias is not None:
        scores = scores + bias.float()
    start = k.shape[0] - q.shape[0]                                    # keys cached before the first query
    allowed = torch.arange(k.shape[0]) <= start + query                # (S,)
    masked = scores.masked_fill(~allowed, float("-inf")) if causal else scores
    weights = masked.softmax(dim=-1)                                   # (S,)
    return QuerySteps(query, q[query], k, v, dots, scores, masked, weights, weights @ v, scale)


def head_tensors(trace: Mapping[str, torch.Tensor], layer: int, head: int, n_heads: int, n_kv_heads: int,
                 batch: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (T, Dh), k (S, Dh), v (S, Dh) of query head `head` in block `layer`, from a trace that
    recorded blocks.{layer}.attn.q/k/v; k and v come from the kv head that `head` reads."""
    g = kv_head(head, n_heads, n_kv_heads)
    name = f"blocks.{layer}.attn."
    return trace[name + "q"][batch, head], trace[name + "k"][batch, g], trace[name + "v"][batch, g]


def score_bias(trace: Mapping[str, torch.Tensor], layer: int, head: int, batch: int = 0) -> torch.Tensor:
    """(T, S) what the model added to q.k/sqrt(Dh) before the mask: ALiBi's bias, zero otherwise.

    Measured, not assumed: the traced scores minus the scaled dot products of the traced q and k."""
    name = f"blocks.{layer}.attn."
    q, scores = trace[name + "q"][batch, head].float(), trace[name + "scores"][batch, head].float()
    n_heads, n_kv = trace[name + "q"].shape[1], trace[name + "k"].shape[1]
    k = trace[name + "k"][batch, kv_head(head, n_heads, n_kv)].float()
    return scores - q @ k.T / math.sqrt(q.shape[-1])


def entropy_bits(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of attention weights in bits over the last dimension (0 = all weight on one key,
    log2(n) = spread evenly over n keys); zero weights (masked keys) contribute nothing.

        >>> entropy_bits(torch.tensor([0.25, 0.25, 0.25, 0.25])).item()
        2.0
    """
    logs = torch.where(weights > 0, weights.log2(), torch.zeros_like(weights))
    return (weights * -logs).sum(dim=-1) + 0.0


def pattern_from_scores(scores: torch.Tensor, *, unscale: float = 1.0, causal: bool = True) -> torch.Tensor:
    """softmax over keys of scores (..., T, S) multiplied by `unscale`, causally masked.

    The model's `attn.scores` are already divided by sqrt(Dh); unscale=sqrt(Dh) gives back the
    weights the same q and k would get without that division. (With ALiBi the scores also hold
    the bias, which this multiplies too: unscale the q.k part alone for such models.)"""
    T, S = scores.shape[-2:]
    allowed = torch.arange(S)[None, :] <= torch.arange(S - T, S)[:, None]   # (T, S)
    scores = scores.float() * unscale
    if causal:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1)


@functools.lru_cache(maxsize=16)
def dot_product_spread(dims: tuple[int, ...], samples: int = 2000, seed: int = 0) -> list[dict]:
    """For each width d: the measured variance of q.k over `samples` pairs of random vectors whose
    entries are independent N(0, 1), before and after dividing by sqrt(d).

    Each of the d products q_i k_i has variance 1, so their sum has variance d: the spread of raw
    scores grows with the width, and dividing by sqrt(d) brings it back to 1.
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for d in dims:
        q = torch.randn(samples, d, generator=g, dtype=torch.float64)
        k = torch.randn(samples, d, generator=g, dtype=torch.float64)
        dots = (q * k).sum(dim=-1)                                     # (samples,)
        rows.append({"d": d, "raw": dots.var().item(), "scaled": (dots / math.sqrt(d)).var().item()})
    return rows


def without_causal_mask() -> dict:
    """Hook functions that switch the causal mask off in every layer, for `model.hooks(...)`.

    The hook on attn.scores remembers the scores; the hook on attn.masked_scores (which runs
    right after, on the same tensor with -inf after each query) hands the unmasked ones back.
    The model's code is untouched, and so is the model once the `with` block ends:

        with model.hooks(without_causal_mask()):
            logits = model(ids)            # every position now also sees the later ones
    """
    seen: dict[str, torch.Tensor] = {}

    def remember(scores: torch.Tensor, name: str) -> None:
        seen[name.removesuffix(".scores")] = scores

    def unmask(masked: torch.Tensor, name: str) -> torch.Tensor:
        return seen.pop(name.removesuffix(".masked_scores"))

    return {"blocks.*.attn.scores": remember, "blocks.*.attn.masked_scores": unmask}


def future_influence(model, ids: list[int], position: int, replacement: int, *, causal: bool = True) -> dict:
    """How much position `position`'s outputs move when the token just after it is replaced.

    Runs the model twice, on ids and on ids with ids[position + 1] = replacement, and compares,
    at `position` only, the last block's attention output and the logits. With the causal mask
    nothing can move (position t never reads t+1); without it, it does: a model trained that way
    could read the answer it is supposed to predict.

    Returns {"attn_out": max |change| of blocks.{L-1}.attn_out at position, "logits": max |change|
    of the logits there, "prob_before"/"prob_after": the probability given to ids[position + 1]
    (the original next token) at position, before and after the replacement}.
    """
    if not 0 <= position < len(ids) - 1:
        raise ValueError(f"position must have a token after it: 0 <= position < {len(ids) - 1}")
    changed = list(ids)
    changed[position + 1] = replacement
    last = f"blocks.{model.config.n_layers - 1}.attn_out"
    outs = []
    for seq in (ids, changed):
        with torch.no_grad(), model.hooks({} if causal else without_causal_mask()):
            logits, trace = model.run_with_trace(torch.tensor([seq]), names=[last])
        outs.append((logits[0, position].float(), trace[last][0, position].float()))
    (l0, a0), (l1, a1) = outs
    target = ids[position + 1]
    return {"attn_out": (a1 - a0).abs().max().item(), "logits": (l1 - l0).abs().max().item(),
            "prob_before": l0.softmax(-1)[target].item(), "prob_after": l1.softmax(-1)[target].item()}
