"""Positional information: how the model knows where each token is.

Attention by itself treats its input as a set: shuffle the tokens and every output is
shuffled the same way. Four ways to tell it about order:

- learned absolute (GPT-2): a trainable vector per position, added to the token embedding.
- sinusoidal (Vaswani et al. 2017, section 3.5): fixed sines and cosines of geometrically
  spaced frequencies, added to the token embedding. A shift by k positions is a fixed
  rotation of each (sin, cos) pair, so relative offsets are a linear function.
- RoPE (Su et al. 2021, "RoFormer"): rotate each (q, k) pair of dimensions by an angle
  proportional to the position; the dot product q.k then depends only on the offset.
- ALiBi (Press et al. 2021, "Train Short, Test Long"): no vectors at all; add
  -slope * distance to each attention score, a different slope per head.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    """One trainable D-vector per position 0..n_ctx-1."""

    def __init__(self, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_ctx, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, start: int, length: int) -> torch.Tensor:
        return self.weight[start:start + length]  # (T, D)


def sinusoidal_table(n_pos: int, d_model: int) -> torch.Tensor:
    """The fixed sinusoidal table: row p, columns (2i, 2i+1) = (sin, cos)(p / 10000^(2i/D)).

        >>> sinusoidal_table(2, 4)[1]   # position 1: sin(1), cos(1), sin(0.01), cos(0.01)
        tensor([0.8415, 0.5403, 0.0100, 0.9999])
    """
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]                    # (P, 1)
    freq = 10_000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (D/2,)
    angle = pos * freq                                                         # (P, D/2)
    table = torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(n_pos, d_model)  # (P, D)
    return table.float()


class SinusoidalPositions(nn.Module):
    """The sinusoidal table as a module; it has no trainable parameters."""

    def __init__(self, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_table(n_ctx, d_model), persistent=False)

    def forward(self, start: int, length: int) -> torch.Tensor:
        if start + length > self.table.shape[0]:  # past the trained length: the formula still applies
            table = sinusoidal_table(start + length, self.table.shape[1]).to(self.table.device)
            return table[start:start + length]  # (T, D)
        return self.table[start:start + length]  # (T, D)


class Rotary(nn.Module):
    """Rotary position embedding (RoPE), in the "rotate half" layout Hugging Face uses.

    Dimension j of the first half is paired with dimension j + Dh/2; the pair at position p
    is rotated by the angle p * theta^(-2j/Dh).
    """

    def __init__(self, head_dim: int, theta: float = 10_000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (Dh/2,)
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def cos_sin(self, start: int, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions start..start+length-1, each (T, Dh)."""
        end = start + length
        if self._cache is None or self._cache[0] < end or self._cache[1].device != self.inv_freq.device:
            n = max(end, 2 * (self._cache[0] if self._cache else 0), 256)
            pos = torch.arange(n, dtype=torch.float32, device=self.inv_freq.device)
            angle = torch.outer(pos, self.inv_freq)                # (P, Dh/2)
            angle = torch.cat([angle, angle], dim=-1)              # (P, Dh)
            self._cache = (n, angle.cos(), angle.sin())
        _, cos, sin = self._cache
        return cos[start:end].to(dtype), sin[start:end].to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1), where x1 and x2 are the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every (j, j + Dh/2) pair of x (B, H, T, Dh) by its position's angle."""
    return x * cos + rotate_half(x) * sin


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes: a geometric sequence starting at 2^(-8/n).

        >>> alibi_slopes(4)
        tensor([0.2500, 0.0625, 0.0156, 0.0039])

    For a head count that is not a power of two, the paper's rule interleaves the
    slopes of the next power of two.
    """
    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        lower = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(lower) + power_of_two(2 * lower)[0::2][: n_heads - lower]
    return torch.tensor(slopes)


def alibi_bias(slopes: torch.Tensor, start: int, length: int, n_keys: int) -> torch.Tensor:
    """The additive ALiBi score bias, (H, T, S): -slope * (query position - key position)."""
    q_pos = torch.arange(start, start + length, device=slopes.device)[:, None]  # (T, 1)
    k_pos = torch.arange(n_keys, device=slopes.device)[None, :]                 # (1, S)
    distance = (q_pos - k_pos).clamp(min=0).to(slopes.dtype)                    # (T, S)
    return -slopes[:, None, None] * distance                                     # (H, T, S)


def make_positions(kind: str, n_ctx: int, d_model: int) -> nn.Module | None:
    """The table added to the token embeddings, for the schemes that add one; RoPE and ALiBi
    act inside attention instead, and "none" has no positional information at all."""
    if kind == "learned":
        return LearnedPositions(n_ctx, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositions(n_ctx, d_model)
    return None
