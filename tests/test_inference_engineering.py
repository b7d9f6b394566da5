"""Chapter 10's library: int8 weight-only quantization, tiled (online-softmax) attention, the
memory measurement, sliding-window attention, speculative decoding, decode paths."""

from __future__ import annotations

import math

import pytest
import torch

from glassformer.generate import generate
from glassformer.memory import peak_tensor_bytes
from glassformer.model import build_model, preset
from glassformer.model.linear import Linear
from glassformer.model.quantize import (Int8Kernel, Int8Linear, dequantize, model_bytes, quantize_model,
                                        quantize_per_channel)
from glassformer.model.sliding_window import sliding_window, window_mask
from glassformer.model.tiled_attention import plain_attention, tiled_attention
from glassformer.speculative import speculative_generate, verify

PACKED = Int8Kernel("int8pack", torch.bfloat16, 1.0)
DEQUANT = Int8Kernel("dequantize", torch.float32, 1.0)


# --- int8 ------------------------------------------------------------------------------------

def test_per_channel_rounding_error_is_at_most_half_a_step():
    w = torch.randn(48, 40) * torch.rand(48, 1) * 3        # rows of very different sizes
    q, s = quantize_per_channel(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    for o in range(w.shape[0]):                             # by hand: s_o = max |w_o| / 127
        assert abs(s[o].item() - w[o].abs().max().item() / 127) <= 1e-7
        assert ((w[o] - q[o].float() * s[o]).abs() <= s[o] / 2 + 1e-7).all()


@pytest.mark.parametrize("kernel", [PACKED, DEQUANT], ids=["int8pack", "dequantize"])
@pytest.mark.parametrize("d_in", [64, 344, 24])             # 344, 24: not multiples of 16 (the kernel's rule)
def test_int8_linear_equals_the_product_with_its_dequantized_weight(kernel, d_in):
    linear = Linear(d_in, 72)
    torch.nn.init.normal_(linear.bias)
    layer = Int8Linear(linear, kernel)
    x = torch.randn(2, 5, d_in)
    reference = x @ dequantize(layer.q, layer.scale).t() + linear.bias      # (2, 5, 72), plain fp32
    got = layer(x)
    tolerance = 0.02 * reference.abs().max().item() if kernel is PACKED else 1e-4   # bf16 activations
    assert (got - reference).abs().max().item() <= tolerance


def test_quantized_model_is_a_quarter_of_the_bytes_and_close():
    model = build_model(preset("tiny", n_ctx=32)).eval()
    quantized = quantize_model(model, DEQUANT)
    assert model.embed.tok.weight.dtype == torch.float32    # the original is untouched
    ratio = model_bytes(quantized) / model_bytes(model)
    assert 0.25 < ratio < 0.32, ratio                       # int8 matrices + fp32 scales, norms, positions
    ids = torch.randint(0, 65, (1, 20))
    with torch.no_grad():
        assert (quantized(ids) - model(ids)).abs().max().item() < 0.05


def test_int8_course_model_loses_at_most_001_nats_of_validation_loss():
    from glassformer.model.quantize import int8_kernel
    from glassformer.registry import load_model
    from glassformer.train import validation_loss

    course = load_model("course")
    fp32 = course.card["final_val_loss_fp32"]   # the same measurement on the fp32 weights (test_shipped_model checks it)
    int8 = validation_loss(quantize_model(course.model, int8_kernel()), course.tokenizer)
    assert abs(int8 - fp32) <= 0.01, (fp32, int8)


# --- tiled attention and memory --------------------------------------------------------------

@pytest.mark.parametrize("T,S,tile,causal", [(37, 37, 8, True), (37, 37, 64, True), (5, 40, 16, True),
                                             (33, 33, 7, False), (1, 50, 16, True)])
def test_tiled_attention_equals_plain_attention(T, S, tile, causal):
    q = torch.randn(2, 3, T, 16)
    k, v = torch.randn(2, 2, 3, S, 16).unbind(0)
    steps = []
    got = tiled_attention(q, k, v, tile=tile, causal=causal, on_tile=steps.append)
    assert (got - plain_attention(q, k, v, causal=causal)).abs().max().item() < 1e-5
    if causal and T == S:   # by hand: query tile i visits key tiles 0..i only
        n = math.ceil(T / tile)
        assert len(steps) == n * (n + 1) // 2


def test_plain_attention_memory_grows_with_the_square_and_tiled_does_not():
    peaks = {}
    for T in (512, 2048):
        q, k, v = torch.randn(3, 1, 2, T, 32).unbind(0)
        peaks[T] = (peak_tensor_bytes(plain_attention, q, k, v)[1], peak_tensor_bytes(tiled_attention, q, k, v, tile=128)[1])
    scores = 2 * 2048 * 2048 * 4                             # (H, T, T) fp32, by hand
    assert peaks[2048][0] >= scores                          # the plain path forms the scores at least once
    assert peaks[2048][0] / peaks[512][0] > 12               # ~16x for 4x the length
    assert peaks[2048][1] < scores / 8                       # tiled never forms them
    assert peaks[2048][1] / peaks[512][1] < 5                # and grows about linearly


# --- sliding window --------------------------------------------------------------------------

def test_window_mask_by_hand():
    allowed = window_mask(2, 3, 5, window=2)                 # queries at positions 2, 3, 4
    assert allowed.int().tolist() == [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


def test_a_window_limits_how_far_back_a_token_can_be_seen():
    model = build_model(preset("tiny", n_ctx=64)).eval()    # 2 layers
    ids = torch.randint(0, 65, (1, 24))
    changed = ids.clone()
    changed[0, 0] = (ids[0, 0] + 1) % 65
    with torch.no_grad():
        with sliding_window(model, 64):                      # a window as long as the text: no change
            same = model(ids)
        assert (same - model(ids)).abs().max().item() < 1e-5
        with sliding_window(model, 4):
            a, b = model(ids), model(changed)
    moved = (a - b).abs().amax(dim=-1)[0]                    # per position
    reach = 2 * (4 - 1)                                      # 2 layers x (window - 1) positions
    assert (moved[reach + 1:] == 0).all() and (moved[:reach + 1] > 0).any()


# --- speculative decoding --------------------------------------------------------------------

def test_greedy_speculative_output_is_the_target_greedy_output():
    torch.manual_seed(0)
    target = build_model(preset("tiny", n_ctx=128)).eval()
    for draft in (build_model(preset("tiny", n_ctx=128, n_layers=1)).eval(), target):
        for k in (1, 3, 6):
            prompt = torch.randint(0, 65, (9,)).tolist()
            out = speculative_generate(target, draft, prompt, 40, k=k)
            assert out.tokens == generate(target, prompt, 40, temperature=0).tolist()[9:]
    assert speculative_generate(target, target, prompt, 40, k=4).acceptance_rate == 1.0


def test_verify_leaves_every_token_distributed_as_the_target():
    """Draw proposals from q, keep or replace them with verify(): the first token must follow p."""
    gen = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.05, 0.40, 0.05, 0.30, 0.20], [0.2] * 5, [0.2] * 5])  # target at 3 positions
    q = torch.tensor([[0.40, 0.10, 0.30, 0.10, 0.10], [0.2] * 5])             # a bad draft
    n = 20_000
    counts = torch.zeros(5)
    for _ in range(n):
        proposed = [int(torch.multinomial(q[i], 1, generator=gen)) for i in range(2)]
        kept, nxt = verify(p, q, proposed, gen)
        counts[proposed[0] if kept >= 1 else nxt] += 1
    chi2 = (((counts - n * p[0]) ** 2) / (n * p[0])).sum().item()
    draft_chi2 = (((n * q[0] - n * p[0]) ** 2) / (n * p[0])).sum().item()   # what keeping every guess gives
    assert chi2 < 18.47, chi2                                # chi-square, 4 degrees of freedom, p = 0.001
    assert draft_chi2 > 1000                                 # so the test can tell the two apart


def test_speculative_sampling_is_reproducible_and_checks_its_input():
    target = build_model(preset("tiny", n_ctx=64)).eval()
    a = speculative_generate(target, target, [1, 2], 20, temperature=1.0, seed=3).tokens
    assert a == speculative_generate(target, target, [1, 2], 20, temperature=1.0, seed=3).tokens
    with pytest.raises(ValueError, match="vocabulary"):
        speculative_generate(target, build_model(preset("tiny", vocab_size=70)), [1], 5)
    with pytest.raises(ValueError, match="context"):
        speculative_generate(target, target, [1] * 60, 10)


def test_kv_cache_rewind():
    model = build_model(preset("tiny", n_ctx=64)).eval()
    ids = torch.randint(0, 65, (1, 12))
    with torch.no_grad():
        cache = model.new_cache(1, 20)
        model(ids, cache=cache)
        cache.rewind(8)
        again = model(ids[:, 8:], cache=cache)               # positions 8..11 recomputed after the rewind
        assert (again - model(ids)[:, 8:]).abs().max().item() < 1e-5
    with pytest.raises(ValueError):
        cache.rewind(13)
