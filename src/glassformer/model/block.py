"""One Transformer block: attention (tokens talk to each other), then an MLP (each token thinks).

Pre-norm (GPT-2, Llama, Qwen and most models since 2019) normalizes the input of each
sub-layer and adds the sub-layer's output to an untouched residual stream:

    x = x + attn(norm1(x))
    x = x + mlp(norm2(x))

Post-norm (the original 2017 Transformer) normalizes after each addition instead:

    x = norm1(x + attn(x))
    x = norm2(x + mlp(x))

Pre-norm keeps a clean path from the output back to the input, which makes deep stacks
easier to train; post-norm usually needs a learning-rate warmup to train at all.

An attention-only block (mlp=None, config mlp="none") stops after the attention step: its
output is the stream after attention, and it has no norm2 and no MLP hook points. Chapter 12's
two-layer toy is built of these, so every path from input to output goes through attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.model.attention import Attention, KVCache
from glassformer.model.hooks import HookPoint


class Block(nn.Module):
    def __init__(self, norm1: nn.Module, attn: Attention, norm2: nn.Module | None, mlp: nn.Module | None,
                 *, pre_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if (norm2 is None) != (mlp is None):
            raise ValueError("a block has both norm2 and an MLP, or neither (attention-only)")
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp
        self.pre_norm = pre_norm
        self.dropout = dropout
        self.hook_resid_pre, self.hook_attn_in, self.hook_attn_out = HookPoint(), HookPoint(), HookPoint()
        self.hook_resid_mid = HookPoint()
        if mlp is not None:
            self.hook_mlp_in, self.hook_mlp_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training) if self.dropout > 0 else x

    def forward(self, x: torch.Tensor, *, start: int = 0, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                alibi: torch.Tensor | None = None, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D). start, rope, alibi, cache and layer go to attention unchanged:
        the position of x's first token, RoPE's (cos, sin), ALiBi's bias, the KV cache and this block's index."""
        attn_args = dict(start=start, rope=rope, alibi=alibi, cache=cache, layer=layer)
        x = self.hook_resid_pre(x)                                              # (B, T, D)
        if self.pre_norm:
            attn_out = self.hook_attn_out(self.attn(self.hook_attn_in(self.norm1(x)), **attn_args))
            mid = self.hook_resid_mid(x + self._drop(attn_out))                 # (B, T, D)
            if self.mlp is None:                                                # attention-only
                return self.hook_resid_post(mid)
            mlp_out = self.hook_mlp_out(self.mlp(self.hook_mlp_in(self.norm2(mid))))
            return self.hook_resid_post(mid + self._drop(mlp_out))              # (B, T, D)
        attn_out = self.hook_attn_out(self.attn(self.hook_attn_in(x), **attn_args))
        mid = self.hook_resid_mid(self.norm1(x + self._drop(attn_out)))         # (B, T, D)
        if self.mlp is None:                                                    # attention-only
            return self.hook_resid_post(mid)
        mlp_out = self.hook_mlp_out(self.mlp(self.hook_mlp_in(mid)))
        return self.hook_resid_post(self.norm2(mid + self._drop(mlp_out)))      # (B, T, D)
