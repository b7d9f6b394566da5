"""What an attention head's pattern looks like, in a few numbers.

An attention pattern (hook point `blocks.{i}.attn.pattern`, [B, H, T, S]) says, for each query
position, how much weight each key position gets; every row sums to 1. Looking at sixteen
heatmaps is slow, so each head is summarised by where its weight goes on average:

    previous   weight on the token just before the query (position t-1)
    self       weight on the query's own position t
    first      weight on position 0 (many heads of large models park unused weight there, an
               "attention sink": Xiao et al. 2023)
    distance   expected distance back, sum_s p[t, s] * (t - s), in tokens
    entropy    how spread the row is, in bits (0 = all weight on one key)

Averages run over query positions 1..T-1 (position 0 can only look at itself, which says nothing).

    >>> import torch
    >>> p = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])   # (1, 1, 3, 3)
    >>> {k: round(v[0].item(), 2) for k, v in pattern_profile(p).items()}
    {'previous': 1.0, 'self': 0.0, 'first': 0.5, 'distance': 1.0, 'entropy': 0.0}
"""

from __future__ import annotations

import torch


def pattern_profile(pattern: torch.Tensor) -> dict[str, torch.Tensor]:
    """pattern (B, H, T, T), causal, rows summing to 1 -> {measure: (H,)} averaged over batch and queries 1..T-1."""
    B, H, T, S = pattern.shape
    if T != S or T < 2:
        raise ValueError(f"need a square pattern over at least 2 positions, got {tuple(pattern.shape)}")
    p = pattern.float()[:, :, 1:]                                       # (B, H, T-1, S): queries 1..T-1
    t = torch.arange(1, T)                                              # query positions
    s = torch.arange(S)                                                 # key positions
    previous = p[..., torch.arange(T - 1), t - 1]                       # (B, H, T-1): weight on t-1
    own = p[..., torch.arange(T - 1), t]                                # (B, H, T-1): weight on t
    first = p[..., 0]                                                   # (B, H, T-1)
    distance = (p * (t[:, None] - s[None, :]).clamp(min=0)).sum(-1)     # (B, H, T-1)
    entropy = -(p * p.clamp_min(1e-12).log2()).sum(-1)                  # (B, H, T-1)
    mean = lambda x: x.mean(dim=(0, 2))                                 # noqa: E731  -> (H,)
    return {"previous": mean(previous), "self": mean(own), "first": mean(first),
            "distance": mean(distance), "entropy": mean(entropy)}


def describe(profile: dict[str, torch.Tensor], head: int) -> str:
    """A short plain-language label for one head, from its profile (thresholds are rules of thumb)."""
    prev, own, first, dist = (profile[k][head].item() for k in ("previous", "self", "first", "distance"))
    if prev >= 0.5:
        return "previous token"
    if own >= 0.5:
        return "itself"
    if first >= 0.5:
        return "first token"
    return f"{'local' if dist <= 6 else 'long range'}, ~{dist:.0f} back"


def head_writes(attn, z: torch.Tensor) -> torch.Tensor:
    """Each head's own write into the residual stream: z (B, H, T, Dh) -> (B, H, T, D).

    The output projection W_O (attn.out.weight, (H*Dh, D)) reads the concatenated heads; cut into
    H blocks of Dh rows, it is one small projection per head, so

        attn_out = concat(z_0 .. z_{H-1}) @ W_O + b_O = sum_h z_h @ W_O[h*Dh:(h+1)*Dh] + b_O

    Summing the result over heads and adding attn.out.bias gives attn_out exactly (up to rounding).
    """
    H, Dh = z.shape[1], z.shape[3]
    w = attn.out.weight.view(H, Dh, -1)                                 # (H, Dh, D)
    return torch.einsum("bhtk,hkd->bhtd", z.to(w.dtype), w)             # (B, H, T, D)
