"""The GPT-2 family (Radford et al. 2019): learned positions, pre-norm LayerNorm blocks,
a GELU (tanh approximation) MLP four times as wide, biases everywhere, and an
unembedding tied to the token embedding.
"""

from __future__ import annotations

from glassformer.model.attention import Attention
from glassformer.model.block import Block
from glassformer.model.config import ModelConfig
from glassformer.model.decoder import DecoderLM
from glassformer.model.mlp import make_mlp
from glassformer.model.norm import LayerNorm
from glassformer.model.position import LearnedPositions


class GPT2(DecoderLM):
    def check_config(self, config: ModelConfig) -> None:
        wrong = {k: getattr(config, k) for k, v in
                 dict(position="learned", norm="layernorm", pre_norm=True, qk_norm=False).items()
                 if getattr(config, k) != v}
        if wrong or config.mlp not in ("gelu", "gelu_tanh"):
            raise ValueError(f"GPT2 is learned positions + pre-norm LayerNorm + GELU MLP; config has {wrong or config.mlp}")

    def make_positions(self) -> LearnedPositions:
        return LearnedPositions(self.config.n_ctx, self.config.d_model)

    def make_block(self, i: int) -> Block:
        c = self.config
        return Block(
            LayerNorm(c.d_model, c.norm_eps),
            Attention(c.d_model, c.n_heads, c.kv_heads, c.dh, qkv_bias=c.attn_bias, out_bias=c.attn_out_bias,
                      dropout=c.attention_dropout),
            LayerNorm(c.d_model, c.norm_eps),
            make_mlp(c.mlp, c.d_model, c.mlp_width, c.mlp_bias),
            pre_norm=True, dropout=c.dropout,
        )
