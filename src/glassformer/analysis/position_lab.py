"""Experiments on positional information, each run by the model's own modules.

    order_blind_attention  block 0's attention on ids, with or without positions and the causal mask
    shuffle_all_but_last   a seeded shuffle of every position but the last
    permutation_gap        shuffle the tokens: do attention's output rows just move with them?
    last_logits_gap        the same shuffle through the whole model: does its last prediction move?
    sinusoidal_shift       the 2x2 rotation that moves one (sin, cos) pair of the table k positions on
    rope_pair              RoPE on a 2-D query and key placed in one frequency pair of a head

Shapes: T positions, D model width, Dh head width (see glassformer.model's legend).
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

import torch

from glassformer.model.position import Rotary, alibi_bias, apply_rope


@torch.no_grad()
def order_blind_attention(model, ids: torch.Tensor, *, positions: bool, causal: bool) -> torch.Tensor:
    """Output of block 0's attention sub-layer, (T, D), for ids (T,).

    positions=False gives attention only the token embeddings: no position vectors added,
    no RoPE rotation, no ALiBi bias. causal=False lets every token see every other one: the
    library's attention still runs, but a hook hands its softmax the scores from before the mask.
    """
    ids = model.check_ids(ids, 0)                                              # (1, T)
    T = ids.shape[1]
    x = model.embed.tok(ids)                                                   # (1, T, D)
    if positions and model.embed.positions is not None:
        x = x + model.embed.positions(0, T)                                    # (1, T, D)
    block = model.blocks[0]
    attn_in = block.norm1(x) if block.pre_norm else x                          # (1, T, D)
    rope = model.rotary.cos_sin(0, T, x.dtype) if positions and model.rotary is not None else None
    alibi = alibi_bias(model.alibi_slopes, 0, T, T) if positions and model.alibi_slopes is not None else None
    before_mask: list[torch.Tensor] = []
    hooks = {} if causal else {
        "blocks.0.attn.scores": lambda s, name: before_mask.append(s),       # (1, H, T, T) before the mask
        "blocks.0.attn.masked_scores": lambda s, name: before_mask[-1],       # ... handed on instead
    }
    with model.hooks(hooks):
        return block.attn(attn_in, rope=rope, alibi=alibi)[0]                  # (T, D)


def permutation_gap(model, ids: list[int], perm: list[int], *, positions: bool, causal: bool) -> torch.Tensor:
    """Per position t, max |out(shuffled)[t] - out(original)[perm[t]]|: (T,).

    The shuffled text is ids[perm] (its token t is the original's token perm[t]). All zeros
    (up to float rounding) means attention's output rows simply moved with their tokens."""
    original = order_blind_attention(model, torch.tensor(ids), positions=positions, causal=causal)        # (T, D)
    shuffled = order_blind_attention(model, torch.tensor(ids)[perm], positions=positions, causal=causal)  # (T, D)
    return (shuffled - original[perm]).abs().amax(dim=-1)                      # (T,)


def shuffle_all_but_last(T: int, seed: int) -> list[int]:
    """perm (T,): positions 0..T-2 in the order random.Random(seed) shuffles them, then T-1.

    The shuffled text is ids[perm]. A seed can leave the order as it was (with 2 positions to
    shuffle, half of the seeds do).

        >>> shuffle_all_but_last(4, 1)[-1]
        3
    """
    rest = list(range(T - 1))
    random.Random(seed).shuffle(rest)
    return rest + [T - 1] if T else []


@torch.no_grad()
def last_logits_gap(model, ids: list[int], perm: list[int]) -> float:
    """max |logits of the last position, shuffled text - the same, original text| of the whole model.

    With perm keeping the last token last (shuffle_all_but_last), one attention layer without
    positions gives that position exactly the same output (it attends to the same set of tokens).
    A stack of layers need not: from the second layer on, the earlier tokens bring what they
    computed from their own, now different, predecessors."""
    original = model(torch.tensor([ids]))[0, -1].float()                      # (V,)
    shuffled = model(torch.tensor([[ids[i] for i in perm]]))[0, -1].float()   # (V,)
    return float((shuffled - original).abs().max())


def sinusoidal_shift(d_model: int, pair: int, k: int) -> torch.Tensor:
    """M (2, 2) with table[p + k, 2i:2i+2] = M @ table[p, 2i:2i+2] for every p (i = pair).

    The pair holds (sin(p w), cos(p w)), w = 10000^(-2i/D). Moving k positions adds k w to the
    angle, and the angle-sum formulas make that a rotation that does not depend on p:
        sin(a + b) =  cos(b) sin(a) + sin(b) cos(a)
        cos(a + b) = -sin(b) sin(a) + cos(b) cos(a)        with b = k w

        >>> sinusoidal_shift(4, 0, 0)
        tensor([[1., 0.],
                [-0., 1.]], dtype=torch.float64)
    """
    b = k * 10_000.0 ** (-2 * pair / d_model)
    return torch.tensor([[math.cos(b), math.sin(b)], [-math.sin(b), math.cos(b)]], dtype=torch.float64)


@lru_cache(maxsize=8)
def _rotary(head_dim: int, theta: float, dtype: torch.dtype) -> Rotary:
    return Rotary(head_dim, theta).to(dtype)


def rope_pair(q: tuple[float, float], k: tuple[float, float], m: int, n: int, *, head_dim: int,
              theta: float = 10_000.0, pair: int = 0, dtype: torch.dtype = torch.float64):
    """Rotate a 2-D query to position m and a 2-D key to position n with the library's RoPE.

    The 2-D vectors go into frequency pair `pair` of a head of width head_dim (dimensions pair
    and pair + Dh/2, RoPE's "rotate half" layout; every other dimension 0), through
    Rotary.cos_sin and apply_rope, and come back out of that pair.
    Returns (q rotated, k rotated, their dot product, radians per position of the pair).
    """
    rotary = _rotary(head_dim, float(theta), dtype)
    half = head_dim // 2

    def rotate(v: tuple[float, float], position: int) -> torch.Tensor:
        x = torch.zeros(1, 1, 1, head_dim, dtype=dtype)                         # (B, H, T, Dh)
        x[..., pair], x[..., pair + half] = v[0], v[1]
        cos, sin = rotary.cos_sin(position, 1, dtype)                          # (1, Dh) each
        out = apply_rope(x, cos, sin)[0, 0, 0]                                 # (Dh,)
        return torch.stack([out[pair], out[pair + half]])                      # (2,)

    q_rot, k_rot = rotate(q, m), rotate(k, n)
    return q_rot, k_rot, float(q_rot @ k_rot), float(rotary.inv_freq[pair])
