"""The feed-forward network: the same small two-layer network applied to every token.

Attention moves information between positions; the MLP then transforms each position's
vector on its own. GPT-2 widens D to F = 4D, applies GELU, and projects back:

    mlp(x) = W_down · gelu(W_up · x + b_up) + b_down

Llama and Qwen use SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): two
parallel up-projections, one passed through SiLU acting as a gate on the other:

    mlp(x) = W_down · (silu(W_gate · x) * (W_up · x))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.model.hooks import HookPoint
from glassformer.model.linear import Linear


class GeluMLP(nn.Module):
    """Up-project, GELU, down-project. `approximate="tanh"` is GPT-2's "gelu_new"."""

    def __init__(self, d_model: int, d_mlp: int, bias: bool = True, approximate: str = "none") -> None:
        super().__init__()
        self.up = Linear(d_model, d_mlp, bias=bias)
        self.down = Linear(d_mlp, d_model, bias=bias)
        self.approximate = approximate
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.up(x))                                    # (B, T, F)
        post = self.hook_post(F.gelu(pre, approximate=self.approximate))   # (B, T, F)
        return self.down(post)                                             # (B, T, D)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, bias: bool = False) -> None:
        super().__init__()
        self.gate = Linear(d_model, d_mlp, bias=bias)
        self.up = Linear(d_model, d_mlp, bias=bias)
        self.down = Linear(d_mlp, d_model, bias=bias)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.hook_pre(self.gate(x))                       # (B, T, F)
        post = self.hook_post(F.silu(gate) * self.up(x))         # (B, T, F)
        return self.down(post)                                   # (B, T, D)


def make_mlp(kind: str, d_model: int, d_mlp: int, bias: bool) -> nn.Module:
    if kind == "gelu":
        return GeluMLP(d_model, d_mlp, bias)
    if kind == "gelu_tanh":
        return GeluMLP(d_model, d_mlp, bias, approximate="tanh")
    if kind == "swiglu":
        return SwiGLU(d_model, d_mlp, bias)
    raise ValueError(f"unknown mlp {kind!r}")
