"""Normalization: keep every token's vector at a steady scale before each sub-layer.

LayerNorm (Ba et al. 2016): subtract the vector's mean, divide by its standard deviation,
then scale and shift by learned per-dimension weights:

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias

RMSNorm (Zhang & Sennrich 2019): skip the mean and the bias; divide by the root mean square:

    y = x / sqrt(mean(x^2) + eps) * weight

Both act on the last dimension (D) of each token separately; no token sees another.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused kernel computes exactly the formula in the module docstring
        # (tests/test_components.py checks it against the hand-written version).
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Computed in fp32 even under bf16: squaring small numbers loses precision.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(kind: str, dim: int, eps: float) -> nn.Module:
    if kind == "layernorm":
        return LayerNorm(dim, eps)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps)
    raise ValueError(f"unknown norm {kind!r}")
