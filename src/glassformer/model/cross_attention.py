"""Cross-attention: one sequence asks questions, another sequence answers them.

In self-attention (attention.py) queries, keys and values all come from the same tokens.
In cross-attention the queries come from the sequence being written (the decoder's tokens,
T of them) and the keys and values from a sequence that was read earlier (the encoder's
output, the "memory", S positions). Vaswani et al. 2017 (section 3.2.3) use it to let a
translation attend to the sentence being translated:

    CrossAttention(X, M) = softmax((X W_q)(M W_k)^T / sqrt(Dh) + mask) (M W_v)

Nothing about the future needs hiding here: the whole memory is known before decoding
starts, so the default mask lets every query see every memory position. An encoder's
own self-attention is the special case M = X with no mask: `BidirectionalAttention`.

Hook points (like attention.py's): q [B, H, T, Dh], k and v [B, H, S, Dh],
scores [B, H, T, S] (before the mask), pattern [B, H, T, S] (rows sum to 1), z [B, H, T, Dh].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.model.hooks import HookPoint
from glassformer.model.linear import Linear


class CrossAttention(nn.Module):
    """Multi-head attention with queries from x (B, T, D) and keys/values from memory (B, S, D)."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int | None = None, *, bias: bool = True) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim or d_model // n_heads
        inner = n_heads * self.head_dim
        self.q = Linear(d_model, inner, bias=bias)          # from the decoder's stream
        self.kv = Linear(d_model, 2 * inner, bias=bias)     # from the encoder's output: keys, then values
        self.out = Linear(inner, d_model, bias=bias)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_scores, self.hook_pattern, self.hook_z = HookPoint(), HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), memory (B, S, D), mask (T, S) or (B, 1, T, S) booleans, True = may attend -> (B, T, D)."""
        B, T, _ = x.shape
        S = memory.shape[1]
        H, Dh = self.n_heads, self.head_dim
        q = self.hook_q(self.q(x).view(B, T, H, Dh).transpose(1, 2))          # (B, H, T, Dh)
        k, v = self.kv(memory).view(B, S, 2, H, Dh).unbind(dim=2)              # 2 x (B, S, H, Dh)
        k, v = self.hook_k(k.transpose(1, 2)), self.hook_v(v.transpose(1, 2))  # (B, H, S, Dh)
        scores = self.hook_scores(q @ k.transpose(-2, -1) / math.sqrt(Dh))     # (B, H, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        pattern = self.hook_pattern(scores.softmax(dim=-1))                     # (B, H, T, S)
        z = self.hook_z(pattern @ v)                                            # (B, H, T, Dh)
        return self.out(z.transpose(1, 2).reshape(B, T, H * Dh))                # (B, T, D)


class BidirectionalAttention(CrossAttention):
    """An encoder's self-attention: every position sees every position, before and after it.

    It is cross-attention of a sequence with itself and no mask. It takes (and ignores) the
    keyword arguments the library's Block passes to causal attention (start, rope, alibi,
    cache, layer): an encoder reads its whole input at once, with absolute positions added to
    its embeddings, so it has no cache and no rotary positions.
    """

    def forward(self, x: torch.Tensor, **_block_args) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, x)                                            # (B, T, D)
