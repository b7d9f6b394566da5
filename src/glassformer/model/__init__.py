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

Modules, in the order a token meets them:
    config     ModelConfig dataclass and named presets
    hooks      HookPoint, Trace: how every intermediate is made visible
    position   learned, sinusoidal, RoPE and ALiBi positional information
    norm       LayerNorm and RMSNorm
    attention  causal self-attention (eager reference + fused path), GQA/MQA, KV cache
    mlp        the feed-forward network (GELU MLP, SwiGLU)
    block      one Transformer block: norm -> attention -> add -> norm -> MLP -> add
    decoder    the decoder-only language model shared by every family
    gpt2, qwen3, course   the model families
"""

from glassformer.model.config import ModelConfig, PRESETS, preset
from glassformer.model.hooks import HookPoint, Trace, HOOK_NAMES, hook_names
from glassformer.model.decoder import DecoderLM, KVCache
from glassformer.model.gpt2 import GPT2
from glassformer.model.qwen3 import Qwen3
from glassformer.model.course import CourseGPT
from glassformer.model.build import build_model

__all__ = [
    "ModelConfig", "PRESETS", "preset", "HookPoint", "Trace", "HOOK_NAMES", "hook_names",
    "DecoderLM", "KVCache", "GPT2", "Qwen3", "CourseGPT", "build_model",
]
