"""The Transformer, one concept per module.

Dimension legend used in every shape comment of this package:

    B   batch size
    T   query positions (tokens processed in this call)
    S   key/value positions (T plus whatever the KV cache already holds)
    D   model width (d_model)
    H   query heads
    Hkv key/value heads (H for multi-head, fewer for grouped-query, 1 for multi-query)
    Dh  head width (usually D / H)
    F   hidden width of the feed-forward network
    V   vocabulary size
    E   experts of a mixture-of-experts layer (K of them per token; F_e the width of one)

Modules, in the order a token meets them:
    config     ModelConfig dataclass and named presets
    hooks      HookPoint, Trace: how every intermediate is made visible
    position   learned, sinusoidal, RoPE and ALiBi positional information
    norm       LayerNorm and RMSNorm
    attention  causal self-attention (eager reference + fused path), GQA/MQA, KV cache
    mlp        the feed-forward network (GELU MLP, SwiGLU)
    moe        a mixture of experts in place of the MLP: router, top-k, grouped dispatch, balance loss
    block      one Transformer block: norm -> attention -> add -> norm -> MLP -> add
    families   the model families as data (GPT-2, Llama, Qwen3, Mixtral, Qwen3-MoE, course) and their checkpoint layouts
    decoder    the decoder-only language model every family is built as

Beside the decoder, for the chapters that take it apart or run it faster:
    attention_steps  one query's scores, mask, softmax and weighted sum, step by step
    cross_attention  attention from one sequence to another (q from the decoder, k/v from the encoder)
    seq2seq          a small encoder-decoder built from the same blocks
    tiled_attention  online-softmax attention over tiles, never forming the T x T matrix
    sliding_window   attention limited to the last w positions, applied through the hooks
    quantize         int8 weight-only quantization per output channel
"""

from glassformer.model.config import ModelConfig, PRESETS, preset
from glassformer.model.hooks import HookPoint, Trace, HOOK_NAMES, hook_names
from glassformer.model.families import FAMILIES
from glassformer.model.decoder import DecoderLM, KVCache, build_model

__all__ = [
    "ModelConfig", "PRESETS", "preset", "HookPoint", "Trace", "HOOK_NAMES", "hook_names",
    "FAMILIES", "DecoderLM", "KVCache", "build_model",
]
