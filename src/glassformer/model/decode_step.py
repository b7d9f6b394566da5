"""The decode step without the glass: one new token through the model, hook points skipped.

DecoderLM.forward is written to be read and traced: every intermediate passes a hook point,
and Block, Attention and the MLP are modules of their own. Each of those is a Python call,
about 270 per token for GPT-2 small, and once the matrix products stream their weights at
memory speed (model/decode_kernels.py) those calls are ~8% of a decode step (measured
22.3 -> 20.4 ms per token, GPT-2 small, 2-core AMD EPYC).

FastDecoderLM is the same model with a shorter path for exactly the case generation repeats:
one new token per row, a KV cache, nothing attached to any hook point, eval mode, no autocast,
a pre-norm model without ALiBi and with torch's fused attention. It calls the same projection,
norm and MLP modules in the same order as DecoderLM.forward, so it computes the same numbers
(tests compare the logits); every other call goes through DecoderLM.forward unchanged. The
decode paths of glassformer/decode_paths.py run on it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from glassformer.model.attention import Attention, KVCache
from glassformer.model.decoder import DecoderLM
from glassformer.model.hooks import attached
from glassformer.model.position import apply_rope


def attend_one(attn: Attention, x: torch.Tensor, cache: KVCache, layer: int,
               rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Attention.forward for one new position per row, x (B, D), without its hook points.

    With one position the fused projection's outputs are already in head order: viewing them as
    (B, H + 2Hkv, 1, Dh) and splitting gives q, k and v in the cache's layout, no transposes."""
    B = x.shape[0]
    H, Hkv, Dh = attn.n_heads, attn.kv_heads, attn.head_dim
    q, k, v = attn.qkv(x).view(B, H + 2 * Hkv, 1, Dh).split([H, Hkv, Hkv], dim=1)   # (B, H|Hkv, 1, Dh)
    if attn.q_norm is not None:
        q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    k, v = cache.update(layer, k, v)                                            # (B, Hkv, S, Dh)
    z = F.scaled_dot_product_attention(q, k, v, enable_gqa=Hkv != H)           # (B, H, 1, Dh), contiguous
    return attn.out(z.view(B, H * Dh))                                          # (B, D)


class FastDecoderLM(DecoderLM):
    """A DecoderLM whose one-token steps with a cache skip the hook points (module docstring)."""

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        if cache is None or ids.dim() != 2 or ids.shape[1] != 1 or not self.short_path_applies():
            return super().forward(ids, cache, last_only)
        start = cache.length
        ids = self.check_ids(ids, start)
        x = self.embed(ids, start)[:, 0]                                            # (B, D)
        rope = self.rotary.cos_sin(start, 1, x.dtype) if self.rotary is not None else None
        for i, block in enumerate(self.blocks):
            x = x + attend_one(block.attn, block.norm1(x), cache, i, rope)
            if block.mlp is not None:
                x = x + block.mlp(block.norm2(x))
        cache.advance(1)
        return self.unembed(self.final_norm(x))[:, None]                            # (B, 1, V)

    def short_path_applies(self) -> bool:
        return (not self.training and not attached() and self.alibi_slopes is None
                and not torch.is_autocast_enabled("cpu")
                and all(b.pre_norm and not b.attn.force_eager for b in self.blocks))


def fast_decoder(model: DecoderLM, copy_first: bool = True) -> FastDecoderLM:
    """`model` as a FastDecoderLM: a shallow copy sharing every module and weight (copy_first),
    or the model itself, its class changed (for a copy the caller already owns)."""
    if copy_first:
        shallow = copy.copy(model)
        shallow.__dict__ = {**model.__dict__, "_modules": dict(model._modules),
                            "_parameters": dict(model._parameters), "_buffers": dict(model._buffers)}
        model = shallow
    model.__class__ = FastDecoderLM
    return model
