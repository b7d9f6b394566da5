"""The course family: a GPT-style decoder whose pieces can be swapped, so chapters can
compare them on the same data: positions (learned, sinusoidal, RoPE, ALiBi, none), norm
(LayerNorm, RMSNorm), pre- or post-norm, and the MLP (GELU or SwiGLU).
"""

from __future__ import annotations

from torch import nn

from glassformer.model.attention import Attention
from glassformer.model.block import Block
from glassformer.model.decoder import DecoderLM
from glassformer.model.mlp import make_mlp
from glassformer.model.norm import make_norm
from glassformer.model.position import LearnedPositions, SinusoidalPositions


class CourseGPT(DecoderLM):
    def make_positions(self) -> nn.Module | None:
        c = self.config
        if c.position == "learned":
            return LearnedPositions(c.n_ctx, c.d_model)
        if c.position == "sinusoidal":
            return SinusoidalPositions(c.n_ctx, c.d_model)
        return None  # RoPE and ALiBi act inside attention; "none" has no positions at all

    def make_block(self, i: int) -> Block:
        c = self.config
        return Block(
            make_norm(c.norm, c.d_model, c.norm_eps),
            Attention(c.d_model, c.n_heads, c.kv_heads, c.dh, qkv_bias=c.attn_bias, out_bias=c.attn_out_bias,
                      qk_norm_eps=c.norm_eps if c.qk_norm else None, dropout=c.attention_dropout),
            make_norm(c.norm, c.d_model, c.norm_eps),
            make_mlp(c.mlp, c.d_model, c.mlp_width, c.mlp_bias),
            pre_norm=c.pre_norm, dropout=c.dropout,
        )
