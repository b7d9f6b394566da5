"""Single components against hand-written formulas and hand-checkable numbers."""

from __future__ import annotations

import math

import torch

from glassformer.model.attention import causal_mask
from glassformer.model.norm import LayerNorm, RMSNorm
from glassformer.model.position import Rotary, alibi_slopes, apply_rope, sinusoidal_table


def test_layernorm_equals_its_formula():
    x = torch.randn(3, 5, 8)
    ln = LayerNorm(8)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(8))
        ln.bias.copy_(torch.randn(8))
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias
    assert (ln(x) - expected).abs().max().item() <= 1e-5


def test_rmsnorm_by_hand():
    # x = [3, 4]: mean of squares = 12.5, rms = 3.5355 -> [0.8485, 1.1314]
    y = RMSNorm(2, eps=0.0)(torch.tensor([3.0, 4.0]))
    assert (y - torch.tensor([3 / math.sqrt(12.5), 4 / math.sqrt(12.5)])).abs().max().item() <= 1e-6


def test_sinusoidal_values_by_hand():
    row = sinusoidal_table(3, 4)[2]  # position 2, frequencies 1 and 1/100
    expected = torch.tensor([math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)])
    assert (row - expected).abs().max().item() <= 1e-6


def test_rope_dot_product_depends_only_on_the_offset():
    rot = Rotary(8)
    q, k = torch.randn(8), torch.randn(8)

    def dot(pq: int, pk: int) -> float:
        cq, sq = rot.cos_sin(pq, 1, torch.float32)
        ck, sk = rot.cos_sin(pk, 1, torch.float32)
        return (apply_rope(q, cq[0], sq[0]) @ apply_rope(k, ck[0], sk[0])).item()

    assert abs(dot(5, 2) - dot(13, 10)) <= 1e-4
    assert abs(dot(5, 2) - dot(5, 3)) > 1e-3


def test_alibi_slopes_by_hand():
    expected = torch.tensor([2.0 ** -(i + 1) for i in range(8)])  # start 2^(-8/8), ratio 1/2
    assert (alibi_slopes(8) - expected).abs().max().item() <= 1e-9
    assert len(alibi_slopes(6)) == 6


def test_causal_mask_with_an_offset():
    # two new queries at positions 3 and 4 over 5 keys
    assert causal_mask(3, 2, 5).int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
