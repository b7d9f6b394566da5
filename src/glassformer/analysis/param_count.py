"""How many numbers a model learns, and where they sit, computed from its config alone.

No weights are built, so the count for a 600M-parameter model takes microseconds and no
memory. Every term is a matrix (rows x columns) or a vector the model really has;
tests/test_ch02_embeddings.py checks the totals against models built with random weights.

    >>> from glassformer.model import preset
    >>> parts = parameter_breakdown(preset("gpt2"))
    >>> parts["token embedding"], sum(parts.values())
    (38597376, 124439808)
"""

from __future__ import annotations

from glassformer.model.config import ModelConfig


def parameter_breakdown(c: ModelConfig) -> dict[str, int]:
    """Parameters per part of a DecoderLM built from c, in the order the input meets them.

    V vocabulary, D model width, L layers, H query heads, Hkv key/value heads, Dh head width,
    F MLP width. "unembedding" is 0 when tied: the output head reuses the embedding table.
    """
    V, D, L, F = c.vocab_size, c.d_model, c.n_layers, c.d_mlp
    H, Hkv, Dh = c.n_heads, c.n_kv_heads, c.head_dim
    norm = 2 * D if c.norm == "layernorm" else D                  # LayerNorm: scale and shift; RMSNorm: scale
    qkv = D * (H + 2 * Hkv) * Dh + ((H + 2 * Hkv) * Dh if c.attn_bias else 0)
    out = H * Dh * D + (D if c.attn_out_bias else 0)
    qk_norm = 2 * Dh if c.qk_norm else 0                          # one RMSNorm for q, one for k (shared by heads)
    matrices = {"swiglu": 3, "none": 0}.get(c.mlp, 2)             # SwiGLU: gate, up, down; GELU: up, down
    mlp = matrices * D * F + ((matrices - 1) * F + D if c.mlp_bias and matrices else 0)
    norms_per_block = 2 if matrices else 1                        # attention-only blocks have no norm 2
    return {
        "token embedding": V * D,
        "positions": c.n_ctx * D if c.position == "learned" else 0,   # sinusoidal, RoPE, ALiBi: computed, not learned
        "attention": L * (qkv + out + qk_norm),
        "MLP": L * mlp,
        "norms": (norms_per_block * L + 1) * norm,                # per block, and one final
        "unembedding": 0 if c.tie_embeddings else V * D,
    }
