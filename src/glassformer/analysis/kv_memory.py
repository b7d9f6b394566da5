"""How much memory the KV cache takes, measured by allocating the library's own KVCache.

During generation the model keeps every earlier position's keys and values, in every layer
(model/attention.py, KVCache). Per token that is

    2 (k and v) * n_layers * n_kv_heads * head_dim * bytes per number

and a full context is that times the context length. Multi-head attention (MHA) has one key/value head per
query head; grouped-query attention (GQA, Ainslie et al. 2023) lets groups of query heads share
one, and multi-query attention (MQA, Shazeer 2019) has a single key/value head for all of them.
The cache shrinks by n_heads / n_kv_heads; the query side, and so the number of attention
patterns, stays the same.

The numbers here are not the formula: they are `KVCache.nbytes` of a cache actually built. A
full context of a real model can be gigabytes, so for it the cache is built on PyTorch's
"meta" device, which records shapes and dtypes but allocates no memory; its byte count is the
same as a real one's (tests/test_ch05_multi_head.py checks both against the formula).

    >>> from glassformer.model.config import preset
    >>> kv_bytes(preset("gpt2"), tokens=1)                      # fp32, one position
    73728
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glassformer.model.attention import KVCache
from glassformer.model.config import ModelConfig, preset

# Context lengths a publisher documents where they differ from the most positions the checkpoint's
# config accepts (a preset's n_ctx copies Hugging Face's `max_position_embeddings`). Qwen3-0.6B: its
# model card (huggingface.co/Qwen/Qwen3-0.6B) gives "Context Length: 32,768"; its config.json has
# max_position_embeddings 40,960.
DOCUMENTED_CONTEXT = {"qwen3-0.6b": 32_768}


def kv_bytes(config: ModelConfig, tokens: int, *, n_kv_heads: int | None = None, batch: int = 1,
             dtype: torch.dtype = torch.float32, device: str = "cpu") -> int:
    """Bytes of a KV cache holding `tokens` positions for `config` (optionally with another n_kv_heads).

    Builds the cache (real memory on "cpu", none on "meta") and returns its nbytes."""
    kv_heads = config.n_kv_heads if n_kv_heads is None else n_kv_heads
    if config.n_heads % kv_heads:
        raise ValueError(f"n_kv_heads={kv_heads} must divide n_heads={config.n_heads}")
    cache = KVCache(config.n_layers, batch, kv_heads, tokens, config.head_dim, dtype=dtype, device=device)
    return cache.nbytes(filled_only=False)                     # k and v: (L, B, Hkv, tokens, Dh) each


def documented_context(config: ModelConfig) -> int:
    """The context length the model's publisher documents: DOCUMENTED_CONTEXT for a model of that
    preset's shape, else config.n_ctx.

        >>> documented_context(preset("qwen3-0.6b")), preset("qwen3-0.6b").n_ctx, documented_context(preset("gpt2"))
        (32768, 40960, 1024)
    """
    shape = ("family", "vocab_size", "n_ctx", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim")
    for name, tokens in DOCUMENTED_CONTEXT.items():
        if all(getattr(config, f) == getattr(preset(name), f) for f in shape):
            return tokens
    return config.n_ctx


def kv_head_choices(n_heads: int) -> list[int]:
    """The valid numbers of key/value heads: the divisors of n_heads (1 = MQA, n_heads = MHA)."""
    return [d for d in range(1, n_heads + 1) if n_heads % d == 0]


def attention_kind(n_heads: int, n_kv_heads: int) -> str:
    """'MHA', 'MQA' or 'GQA (g query heads per KV head)'."""
    if n_kv_heads == n_heads:
        return "MHA"
    if n_kv_heads == 1:
        return "MQA"
    return f"GQA ({n_heads // n_kv_heads} query heads per KV head)"


@dataclass(frozen=True)
class KVRow:
    shape: str             # which model's shape, e.g. "gpt2"
    kind: str              # MHA / GQA / MQA
    n_kv_heads: int
    per_token: int         # bytes, from a real 1-position cache
    full_context: int      # bytes for n_ctx positions, from a cache on the meta device
    n_ctx: int             # the documented context (documented_context), which full_context holds


def kv_table(shapes: dict[str, ModelConfig], dtype: torch.dtype = torch.float32) -> list[KVRow]:
    """For each shape: its own attention, plus MHA, MQA and (when n_heads allows) a GQA variant.
    A full context is the documented one (documented_context)."""
    rows = []
    for name, cfg in shapes.items():
        context = documented_context(cfg)
        choices = kv_head_choices(cfg.n_heads)
        variants = [cfg.n_heads, cfg.n_kv_heads, 1]
        middle = [d for d in choices if 1 < d < cfg.n_heads]
        if middle and cfg.n_kv_heads in (1, cfg.n_heads):
            variants.insert(1, middle[len(middle) // 2])      # a GQA example for an MHA model
        for kv in dict.fromkeys(variants):                     # keep order, drop repeats
            rows.append(KVRow(name, attention_kind(cfg.n_heads, kv) + (" (as built)" if kv == cfg.n_kv_heads else ""),
                              kv, kv_bytes(cfg, 1, n_kv_heads=kv, dtype=dtype),
                              kv_bytes(cfg, context, n_kv_heads=kv, dtype=dtype, device="meta"), context))
    return rows


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")

