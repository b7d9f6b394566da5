"""Tiled attention: the FlashAttention idea, written to be read, not to be fast.

Plain attention forms the whole (T, S) matrix of scores, then its softmax: memory that grows
with the square of the length (8,192 tokens: 256 MB per head in fp32). But each output row
only needs a running summary of the scores seen so far. Visit the keys in tiles of `tile`
positions and keep, per query row,

    m = the largest score seen so far       l = Σ exp(score - m)       acc = Σ exp(score - m) v

When a new tile brings a larger maximum m', everything kept so far was computed against the
old m: multiply l and acc by exp(m - m') and it is as if m' had been used all along. After the
last tile, out = acc / l is exactly softmax(scores) @ V: the "online softmax" (Milakov and
Gimelshein 2018), which FlashAttention (Dao et al. 2022) runs tile by tile in fast on-chip
memory. Here the point is the memory: the largest thing ever formed is a (tile, tile) block
(with a tile as long as the text that is the whole matrix again, plus the running sums).

    >>> import torch
    >>> q, k, v = torch.randn(3, 1, 2, 40, 8).unbind(0)
    >>> plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    >>> bool((tiled_attention(q, k, v, tile=16) - plain).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class TileStep:
    """What one (query tile, key tile) visit left behind, for the tile-by-tile animation."""

    query_tile: tuple[int, int]     # rows [start, end)
    key_tile: tuple[int, int]       # key positions [start, end)
    running_max: torch.Tensor       # (B, H, tq) m after this tile
    running_sum: torch.Tensor       # (B, H, tq) l after this tile


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, tile: int = 64, causal: bool = True,
                    on_tile: Callable[[TileStep], None] | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √Dh + mask) v without forming the (T, S) matrix.

    q (B, H, T, Dh); k, v (B, H, S, Dh); the last query is position S-1 (as with a KV cache);
    returns (B, H, T, Dh). With causal=True, key tiles entirely in a query tile's future are
    skipped: they would only add weights of zero.
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    B, H, T, Dh = q.shape
    S = k.shape[2]
    offset = S - T                                                   # query row i is position offset + i
    scale = 1 / math.sqrt(Dh)
    out = torch.empty_like(q)
    for q0 in range(0, T, tile):
        q1 = min(q0 + tile, T)
        q_tile = q[:, :, q0:q1] * scale                              # (B, H, tq, Dh)
        m = torch.full((B, H, q1 - q0, 1), float("-inf"), dtype=q.dtype)
        l = torch.zeros(B, H, q1 - q0, 1, dtype=q.dtype)
        acc = torch.zeros(B, H, q1 - q0, Dh, dtype=q.dtype)
        last_key = offset + q1 if causal else S                      # keys this query tile may see
        for k0 in range(0, last_key, tile):
            k1 = min(k0 + tile, last_key)
            s = q_tile @ k[:, :, k0:k1].transpose(-2, -1)            # (B, H, tq, tk)
            if causal and k1 > offset + q0:                          # the tile crosses the diagonal
                q_pos = torch.arange(offset + q0, offset + q1)[:, None]
                k_pos = torch.arange(k0, k1)[None, :]
                s = s.masked_fill(k_pos > q_pos, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))   # (B, H, tq, 1)
            rescale = torch.exp(m - m_new)                           # how much the old sums shrink
            p = torch.exp(s - m_new)                                 # (B, H, tq, tk)
            l = l * rescale + p.sum(dim=-1, keepdim=True)
            acc = acc * rescale + p @ v[:, :, k0:k1]                 # (B, H, tq, Dh)
            m = m_new
            if on_tile is not None:
                on_tile(TileStep((q0, q1), (k0, k1), m[..., 0].clone(), l[..., 0].clone()))
        out[:, :, q0:q1] = acc / l
    return out


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """The textbook formula, forming the whole (T, S) matrix: the reference tiled_attention must equal."""
    T, S = q.shape[2], k.shape[2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])        # (B, H, T, S)
    if causal:
        q_pos = torch.arange(S - T, S)[:, None]
        scores = scores.masked_fill(torch.arange(S)[None, :] > q_pos, float("-inf"))
    return scores.softmax(dim=-1) @ v                                # (B, H, T, Dh)
