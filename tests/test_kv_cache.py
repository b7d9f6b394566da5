"""Cached decoding = full recomputation, and the fused attention path = the eager reference."""

from __future__ import annotations

import pytest
import torch

from glassformer.generate import generate
from glassformer.model import build_model, preset

VARIANTS = {
    "learned": dict(position="learned"),
    "sinusoidal-rmsnorm": dict(position="sinusoidal", norm="rmsnorm"),
    "rope-gqa": dict(position="rope", n_kv_heads=2),
    "alibi-mqa": dict(position="alibi", n_kv_heads=1),
    "post-norm-swiglu": dict(pre_norm=False, mlp="swiglu"),
    "qwen3": dict(family="qwen3", position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, n_kv_heads=2),
}


def tiny(**changes):
    torch.manual_seed(0)
    model = build_model(preset("tiny", **changes)).eval()
    with torch.no_grad():  # larger weights than the training init, so outputs are not all alike
        for p in model.parameters():
            p.mul_(5.0) if p.dim() == 2 else p.add_(torch.randn_like(p) * 0.1)
    return model


def max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    d = (a - b).abs()
    return f"max abs diff {d.max():.3g}, mean {d.mean():.3g}"


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_cached_logits_equal_full_recompute_at_every_step(changes):
    model = tiny(**changes)
    ids = torch.randint(0, 65, (2, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model(ids)                                     # (B, T, V) in one pass
        cache = model.new_cache(batch=2)
        steps = [model(ids[:, :7], cache=cache)]              # prefill 7 positions
        for t in range(7, 30):
            steps.append(model(ids[:, t:t + 1], cache=cache))  # then one at a time
    cached = torch.cat(steps, dim=1)
    assert cache.length == 30
    assert (cached - full).abs().max().item() <= 1e-5, max_diff(cached, full)


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_fused_attention_equals_eager(changes):
    model = tiny(**changes)
    ids = torch.randint(0, 65, (2, 40), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fused = model(ids)
        model.set_attention("eager")
        eager = model(ids)
    assert (fused - eager).abs().max().item() <= 1e-5, max_diff(fused, eager)


def test_generation_with_and_without_cache_is_identical():
    model = tiny(position="rope")
    with_cache = generate(model, [1, 2, 3], 40, temperature=0.9, top_k=20, seed=7)
    without = generate(model, [1, 2, 3], 40, temperature=0.9, top_k=20, seed=7, use_cache=False)
    assert with_cache.tolist() == without.tolist()


def test_cache_memory_is_counted():
    model = tiny(n_kv_heads=2)
    cache = model.new_cache(batch=1, max_len=10)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
    # 2 layers x 2 kv heads x 16 dims x (k and v) x 4 bytes, per position
    assert cache.nbytes() == 3 * 2 * 2 * 16 * 2 * 4
