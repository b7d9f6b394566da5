"""The decode step without the glass: one new token through the model, hook points skipped.

DecoderLM.forward is written to be read and traced: every intermediate passes a hook point,
and Block, Attention and the MLP are modules of their own. Each of those is a Python call,
about 270 per token for GPT-2 small. Once the matrix products stream their weights at memory
speed (model/decode_kernels.py), that Python work is a real share of a decode step, and it
costs more inside a real step than timed alone: calling the 49 projections of GPT-2 small as
modules rather than as plain functions measured ~0.6 ms per token in a step, ~0.15 ms in a
small loop (most likely because the ~500 MB of weights streamed between calls push the
interpreter's own objects out of the CPU caches).

FastDecoderLM is the same model with a shorter path for exactly the case generation repeats:
one new token per row, a KV cache, nothing attached to any hook point, eval mode, no autocast,
a pre-norm model without ALiBi and with torch's fused attention. At the first such step of each
generation (each new KV cache), each layer's norms, projections and MLP are turned into plain
functions with their weights bound where their kind allows (`plain`; others, such as RMSNorm,
a mixture of experts or the int8 layers, are called as modules), so a step is a short loop over
tuples of functions: the same kernels on the same weights in the same order as
DecoderLM.forward, so the same numbers (tests compare the logits). Every other call goes
through DecoderLM.forward unchanged. The decode paths of glassformer/decode_paths.py run on it.

A one-token step of GPT-2 small makes 274 module calls through DecoderLM.forward; on the fp32
decode path it makes 3 here (the model itself and the token and position lookups). Measured on
that path, 2-core AMD EPYC, greedy 128 tokens: 20.1 ms per token with a module call per norm,
projection and MLP, 19.0 ms with these plain functions (1.05x, interval 1.04-1.06x, 16 runs in
turns).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.model.attention import Attention, KVCache
from glassformer.model.decode_kernels import SPLIT_ROWS, OneDnnLinear, SplitKLinear, onednn_linear, split_k
from glassformer.model.decoder import DecoderLM
from glassformer.model.hooks import attached
from glassformer.model.linear import Linear
from glassformer.model.mlp import GeluMLP, SwiGLU
from glassformer.model.norm import LayerNorm
from glassformer.model.position import apply_rope

Fn = Callable[[torch.Tensor], torch.Tensor]


def plain(module: nn.Module) -> Fn:
    """What `module` computes, as a plain function with its weights bound: no module call, no hook
    point. Projections and MLPs take x (B, d_in), contiguous, as the one-token step gives them;
    a kind it does not know, or a module with torch hooks of its own, is called as it is."""
    if module._forward_hooks or module._forward_pre_hooks:        # torch's own hooks: keep the module call
        return module
    if isinstance(module, OneDnnLinear):
        w, b = module.weight, module.bias
        return lambda x: onednn_linear(x, w, b, "none", [], "")
    if isinstance(module, SplitKLinear):
        w, b = module.weight, module.bias
        return lambda x: split_k(x, w, b) if 0 < x.shape[0] <= SPLIT_ROWS else module(x)   # (B, in) -> (B, out)
    if isinstance(module, Linear):
        w, b = module.weight, module.bias
        return (lambda x: x @ w) if b is None else (lambda x: torch.addmm(b, x, w))
    if isinstance(module, LayerNorm):
        shape, w, b, eps = module.weight.shape, module.weight, module.bias, module.eps
        return lambda x: F.layer_norm(x, shape, w, b, eps)
    if isinstance(module, GeluMLP):
        up, down, approximate = plain(module.up), plain(module.down), module.approximate
        return lambda x: down(F.gelu(up(x), approximate=approximate))
    if isinstance(module, SwiGLU):
        gate, up, down = plain(module.gate), plain(module.up), plain(module.down)
        return lambda x: down(F.silu(gate(x)) * up(x))
    return module


class Layer(NamedTuple):
    """One block for the one-token step: its computations as plain functions."""
    norm1: Fn
    qkv: Fn
    qk_norms: tuple[Fn, Fn] | None
    out: Fn
    norm2: Fn | None
    mlp: Fn | None


def layer_of(block: nn.Module) -> Layer:
    """A pre-norm Block (model/block.py) as a Layer; an attention-only block has no norm2 or mlp."""
    attn = block.attn
    qk_norms = (plain(attn.q_norm), plain(attn.k_norm)) if attn.q_norm is not None else None
    mlp = block.mlp is not None
    return Layer(plain(block.norm1), plain(attn.qkv), qk_norms, plain(attn.out),
                 plain(block.norm2) if mlp else None, plain(block.mlp) if mlp else None)


class Plan(NamedTuple):
    """A whole model for the one-token step."""
    layers: list[Layer]
    embed_tok: Fn                                   # ids (B,) -> (B, D)
    positions: Callable | None                      # (start, 1) -> (1, D), for learned or fixed positions
    final: Fn                                       # final norm, then the unembedding: (B, D) -> (B, V)


def plan_of(model: DecoderLM) -> Plan | None:
    """model's step as a Plan, or None where the short path does not apply to its structure."""
    if model.alibi_slopes is not None or not all(b.pre_norm and type(b.attn) is Attention and not b.attn.force_eager
                                                 for b in model.blocks):
        return None
    final_norm, unembed = plain(model.final_norm), plain(model.unembed)
    return Plan([layer_of(b) for b in model.blocks], model.embed.tok, model.embed.positions,
                lambda x: unembed(final_norm(x)))


# model -> (its KV cache, its plan): a plan is made at the first one-token step with each new cache, so
# once per generation, and sees whatever was changed between generations (a module replaced, a LoRA
# merged, .to(), set_attention). Kept outside the model so that copying or saving it carries no functions.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class FastDecoderLM(DecoderLM):
    """A DecoderLM whose one-token steps with a cache skip the hook points (module docstring).

    Within one generation (one KV cache) the step keeps the modules it started with."""

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        plan = self.step_plan(cache) if cache is not None and ids.dim() == 2 and ids.shape[1] == 1 else None
        if plan is None:
            return super().forward(ids, cache, last_only)
        start = cache.length
        ids = self.check_ids(ids, start)
        x = plan.embed_tok(ids[:, 0])                                               # (B, D)
        if plan.positions is not None:
            x = x + plan.positions(start, 1)                                        # (1, D) broadcast
        rope = self.rotary.cos_sin(start, 1, x.dtype) if self.rotary is not None else None
        B, H, Hkv, Dh = x.shape[0], self.config.n_heads, self.config.n_kv_heads, self.config.head_dim
        gqa = Hkv != H
        for i, (norm1, qkv, qk_norms, out, norm2, mlp) in enumerate(plan.layers):
            # With one position the fused projection's outputs are already in head order: viewed
            # as (B, H + 2Hkv, 1, Dh), split gives q, k and v in the cache's layout (split_with_sizes
            # is Tensor.split without its Python wrapper).
            q, k, v = qkv(norm1(x)).view(B, H + 2 * Hkv, 1, Dh).split_with_sizes([H, Hkv, Hkv], dim=1)
            if qk_norms is not None:
                q, k = qk_norms[0](q), qk_norms[1](k)
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            k, v = cache.update(i, k, v)                                            # (B, Hkv, S, Dh)
            z = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)            # (B, H, 1, Dh)
            x = x + out(z.view(B, H * Dh))                                          # (B, D)
            if mlp is not None:
                x = x + mlp(norm2(x))
        cache.advance(1)
        return plan.final(x)[:, None]                                               # (B, 1, V)

    def step_plan(self, cache: KVCache) -> Plan | None:
        """The plan for a one-token step with `cache`, or None when the long path must run: in
        training, under autocast, with anything attached to a hook point or a torch module hook
        registered globally, or for a model the short path does not cover (plan_of)."""
        if (self.training or attached() or torch.is_autocast_enabled("cpu")
                or nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks):
            return None
        made = _PLANS.get(self)
        if made is None or made[0]() is not cache:
            made = _PLANS[self] = (weakref.ref(cache), plan_of(self))
        return made[1]


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
