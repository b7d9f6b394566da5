"""The Llama / Qwen3 family: no absolute positions (RoPE inside attention), RMSNorm,
SwiGLU MLP, grouped-query attention, no biases by default. Qwen3 (2025) adds an RMSNorm
on every head's queries and keys before RoPE (`qk_norm`); Llama does not.
"""

from __future__ import annotations

from glassformer.model.attention import Attention
from glassformer.model.block import Block
from glassformer.model.config import ModelConfig
from glassformer.model.decoder import DecoderLM
from glassformer.model.mlp import SwiGLU
from glassformer.model.norm import RMSNorm


class Qwen3(DecoderLM):
    def check_config(self, config: ModelConfig) -> None:
        wrong = {k: getattr(config, k) for k, v in
                 dict(position="rope", norm="rmsnorm", pre_norm=True, mlp="swiglu").items()
                 if getattr(config, k) != v}
        if wrong:
            raise ValueError(f"Qwen3/Llama is RoPE + pre-norm RMSNorm + SwiGLU; config has {wrong}")

    def make_positions(self) -> None:
        return None  # positions enter through RoPE, inside attention

    def make_block(self, i: int) -> Block:
        c = self.config
        return Block(
            RMSNorm(c.d_model, c.norm_eps),
            Attention(c.d_model, c.n_heads, c.kv_heads, c.dh, qkv_bias=c.attn_bias, out_bias=c.attn_out_bias,
                      qk_norm_eps=c.norm_eps if c.qk_norm else None, dropout=c.attention_dropout),
            RMSNorm(c.d_model, c.norm_eps),
            SwiGLU(c.d_model, c.mlp_width, bias=c.mlp_bias),
            pre_norm=True, dropout=c.dropout,
        )
