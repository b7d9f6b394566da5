"""Sliding-window attention: each position sees only the last `window` positions.

The causal mask lets position t read every position 0..t, so the KV cache grows with the
text. A sliding window (Longformer, Mistral) lets it read t-window+1..t only: the cache never
needs more than `window` positions per layer, and the work per token stops growing. What is
older than the window can still reach t indirectly, one layer at a time: through L layers
information can travel up to L·(window-1) positions back.

    >>> window_mask(0, 5, 5, window=2).int()
    tensor([[1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 1, 1]], dtype=torch.int32)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from glassformer.model.attention import causal_mask


def window_mask(start: int, n_queries: int, n_keys: int, window: int) -> torch.Tensor:
    """(T, S) booleans: query start+i may read key j when start+i-window < j <= start+i."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    q_pos = torch.arange(start, start + n_queries)[:, None]                   # (T, 1)
    k_pos = torch.arange(n_keys)[None, :]                                      # (1, S)
    return causal_mask(start, n_queries, n_keys) & (k_pos > q_pos - window)


@contextlib.contextmanager
def sliding_window(model, window: int) -> Iterator[None]:
    """Run `model` with every layer's attention limited to the last `window` positions.

    Done through the hook points, without touching the model's code: the masked scores of
    every layer get -inf outside the window before the softmax.
    """
    def limit(scores: torch.Tensor, name: str) -> torch.Tensor:                # (B, H, T, S)
        T, S = scores.shape[-2:]
        allowed = window_mask(S - T, T, S, window).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))

    with model.hooks({"blocks.*.attn.masked_scores": limit}):
        yield


def cache_positions(length: int, window: int | None) -> int:
    """Positions a KV cache must hold per layer after `length` tokens: all of them, or the window."""
    return length if window is None else min(length, window)
