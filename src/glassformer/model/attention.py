"""Causal self-attention: every token gathers information from the tokens before it.

For each position the model forms a query q ("what am I looking for?"), a key k ("what do
I contain?") and a value v ("what do I pass on?"). Position t's output is a weighted
average of the values of positions 0..t, weighted by how well its query matches each key
(Vaswani et al. 2017, eq. 1):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh) + mask) V

The mask puts -inf on future positions so that softmax gives them weight 0. The division
by sqrt(Dh) keeps the dot products at unit scale: with random unit-variance q and k their
dot product has variance Dh, and softmax of large numbers is nearly one-hot.

Several heads run side by side, each with its own slice of the projections. In grouped-
query attention (GQA) several query heads share one key/value head, which shrinks the KV
cache; multi-query attention (MQA) is the extreme of a single key/value head.

Two paths compute the same numbers:
- the eager reference path, written out step by step, whose scores and pattern can be traced;
- the fused path (torch's scaled_dot_product_attention), used when nobody is watching the
  scores, tested equal to the eager path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.model.hooks import HookPoint
from glassformer.model.linear import Linear
from glassformer.model.norm import RMSNorm
from glassformer.model.position import apply_rope


class KVCache:
    """Keys and values of every position seen so far, for every layer, preallocated.

    Generation processes the prompt once (prefill), then one new token per step (decode).
    Without a cache each step would recompute k and v for the whole prefix; with it, a step
    computes them for the new token only and reads the rest from here.

    Shapes: k and v are (L, B, Hkv, max_len, Dh); `length` positions are filled.
    """

    def __init__(self, n_layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        shape = (n_layers, batch, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' k, v (B, Hkv, T, Dh); return all positions so far (B, Hkv, S, Dh)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache is full: {end} positions needed, {self.max_len} allocated")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def rewind(self, length: int) -> None:
        """Forget every position from `length` on; the next update overwrites them
        (speculative decoding drops the guesses the big model rejected)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot rewind a cache of {self.length} positions to {length}")
        self.length = length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search: each beam continues from its parent's cache)."""
        self.k = self.k.index_select(1, index)
        self.v = self.v.index_select(1, index)

    def nbytes(self, filled_only: bool = True) -> int:
        per_position = self.k[:, :, :, :1].numel() * self.k.element_size() * 2  # k and v
        return per_position * (self.length if filled_only else self.max_len)


def causal_mask(start: int, n_queries: int, n_keys: int, device=None) -> torch.Tensor:
    """(T, S) booleans: True where query start+i may look at key j, i.e. j <= start + i.

        >>> causal_mask(0, 3, 3).int()
        tensor([[1, 0, 0],
                [1, 1, 0],
                [1, 1, 1]], dtype=torch.int32)
    """
    q_pos = torch.arange(start, start + n_queries, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(n_keys, device=device)[None, :]                    # (1, S)
    return k_pos <= q_pos


class Attention(nn.Module):
    """Multi-head causal self-attention with optional GQA, q/k norm, RoPE and ALiBi.

    q, k and v come from one fused projection (one matrix multiply instead of three):
    the first H*Dh outputs are the queries, then Hkv*Dh keys, then Hkv*Dh values.
    """

    def __init__(self, d_model: int, n_heads: int, kv_heads: int, head_dim: int, *,
                 qkv_bias: bool, out_bias: bool, qk_norm_eps: float | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = n_heads, kv_heads, head_dim
        self.qkv = Linear(d_model, (n_heads + 2 * kv_heads) * head_dim, bias=qkv_bias)
        self.out = Linear(n_heads * head_dim, d_model, bias=out_bias)
        self.q_norm = RMSNorm(head_dim, qk_norm_eps) if qk_norm_eps is not None else None
        self.k_norm = RMSNorm(head_dim, qk_norm_eps) if qk_norm_eps is not None else None
        self.dropout = dropout
        self.force_eager = False
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_scores, self.hook_masked_scores = HookPoint(), HookPoint()
        self.hook_pattern, self.hook_z = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, *, start: int = 0,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                alibi: torch.Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, Dh = self.n_heads, self.kv_heads, self.head_dim

        qkv = self.qkv(x)                                              # (B, T, (H + 2Hkv) Dh)
        q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        q = q.view(B, T, H, Dh)                                        # (B, T, H, Dh)
        k = k.view(B, T, Hkv, Dh)                                      # (B, T, Hkv, Dh)
        v = v.view(B, T, Hkv, Dh).transpose(1, 2)                      # (B, Hkv, T, Dh)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)                    # (B, H|Hkv, T, Dh)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)

        if cache is not None:
            k, v = cache.update(layer, k, v)                           # (B, Hkv, S, Dh)

        watched = self.hook_scores.active or self.hook_masked_scores.active or self.hook_pattern.active
        # Under CPU bf16 autocast the fused kernel is the slower one: training the course model
        # measured 17.4k tok/s fused vs 21.3k eager (bench/train.py config: 34.6k vs 47.4k).
        bf16_cpu = q.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        if self.force_eager or watched or bf16_cpu:
            z = self.eager(q, k, v, start=start, alibi=alibi)
        else:
            z = self.fused(q, k, v, start=start, alibi=alibi)
        z = self.hook_z(z)                                             # (B, H, T, Dh)
        z = z.transpose(1, 2).reshape(B, T, H * Dh)                    # (B, T, H Dh)
        return self.out(z)                                             # (B, T, D)

    def eager(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, start: int,
              alibi: torch.Tensor | None) -> torch.Tensor:
        """The reference path: every step written out, scores and pattern traceable."""
        T, S = q.shape[2], k.shape[2]
        if self.kv_heads != self.n_heads:  # GQA: each key/value head serves H/Hkv query heads
            k = k.repeat_interleave(self.n_heads // self.kv_heads, dim=1)  # (B, H, S, Dh)
            v = v.repeat_interleave(self.n_heads // self.kv_heads, dim=1)  # (B, H, S, Dh)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)    # (B, H, T, S)
        if alibi is not None:
            scores = scores + alibi                                    # (H, T, S) broadcast
        scores = self.hook_scores(scores)
        allowed = causal_mask(start, T, S, device=q.device)            # (T, S)
        masked = self.hook_masked_scores(scores.masked_fill(~allowed, float("-inf")))
        pattern = self.hook_pattern(masked.softmax(dim=-1))            # (B, H, T, S)
        if self.training and self.dropout > 0:
            pattern = F.dropout(pattern, self.dropout)
        return pattern @ v                                             # (B, H, T, Dh)

    def fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, start: int,
              alibi: torch.Tensor | None) -> torch.Tensor:
        """The same computation in torch's fused kernel (never forms the (T, S) matrix on some backends)."""
        T, S = q.shape[2], k.shape[2]
        dropout = self.dropout if self.training else 0.0
        gqa = self.kv_heads != self.n_heads
        if alibi is None and S == T:  # no cached prefix: the plain causal triangle
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout, enable_gqa=gqa)
        if alibi is None and T == 1:  # one new token sees every cached position
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, enable_gqa=gqa)
        allowed = causal_mask(start, T, S, device=q.device)            # (T, S)
        bias = torch.zeros(T, S, dtype=q.dtype, device=q.device).masked_fill(~allowed, float("-inf"))
        if alibi is not None:
            bias = bias + alibi.to(q.dtype)                            # (H, T, S)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, enable_gqa=gqa)
