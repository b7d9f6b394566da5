"""The decode paths (glassformer/decode_paths.py) and what they are made of: oneDNN's and fbgemm's
kernels (model/decode_kernels.py), the hook-free one-token step (model/decode_step.py), and how
`fastest_path_name` chooses. Each is checked against an independent computation: the model's
own forward pass, a plain `x @ W`, or fbgemm's quantization rule worked by hand."""

from __future__ import annotations

import copy
import gc

import pytest
import torch

from glassformer import decode_paths, machine
from glassformer.model import build_model, decode_kernels, preset
from glassformer.model.decode_kernels import DynamicInt8Linear, OneDnnLinear, SplitKLinear, on_huge_pages
from glassformer.model.decode_step import FastDecoderLM, fast_decoder, plain
from glassformer.model.quantize import dequantize

FAMILIES = {  # learned positions, LayerNorm, GELU / RoPE, RMSNorm, SwiGLU, grouped-query attention, q/k norm
    "gpt2-like": dict(position="learned"),
    "qwen3": dict(family="qwen3", position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, n_kv_heads=2),
    "moe": dict(position="learned", n_experts=4),                  # an MLP kind the short path calls as it is
}


def _model(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(preset("tiny", n_ctx=48, **FAMILIES[family])).eval()
    with torch.no_grad():  # larger weights than the training init, so the outputs are not all alike
        for p in model.parameters():
            p.mul_(5.0) if p.dim() == 2 else p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_one_token_steps_give_the_models_own_logits(family):
    model = _model(family)
    fast = fast_decoder(model)
    assert type(model).__name__ == "DecoderLM" and isinstance(fast, FastDecoderLM)   # the model itself unchanged
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.no_grad():
        reference = model(ids)                                   # (2, 20, V): no cache, every position at once
        cache = fast.new_cache(2, 20)
        steps = [fast(ids[:, :8], cache=cache)]                  # prefill: DecoderLM.forward
        steps += [fast(ids[:, t:t + 1], cache=cache) for t in range(8, 20)]   # one token at a time: the short path
    got = torch.cat(steps, dim=1)
    assert (got - reference).abs().max().item() <= 1e-5


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("kernel", decode_kernels.FP32_KERNELS)
@pytest.mark.parametrize("family", ["gpt2-like", "qwen3"])
def test_fp32_kernels_give_the_models_own_logits_in_both_steps(monkeypatch, family, kernel, batch):
    """A model whose matrices are multiplied by oneDNN or split-K (into 4 slices, as on 4 threads):
    prefill (DecoderLM.forward) and one-token steps (their plain functions) give the model's logits."""
    model = _model(family)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    fast = fast_decoder(decode_kernels.kernel_model(model, kernel), copy_first=False)
    monkeypatch.undo()
    if kernel == "split-k":
        assert fast.blocks[0].attn.qkv.weight.shape[0] == 4 and isinstance(fast.unembed, SplitKLinear)
    ids = torch.randint(0, model.config.vocab_size, (batch, 20))
    with torch.no_grad():
        reference = model(ids)                                   # (batch, 20, V)
        cache = fast.new_cache(batch, 20)
        steps = [fast(ids[:, :8], cache=cache)]
        steps += [fast(ids[:, t:t + 1], cache=cache) for t in range(8, 20)]
    got = torch.cat(steps, dim=1)
    assert (got - reference).abs().max().item() <= 1e-5 * reference.abs().max().item()


def test_a_copy_of_a_fast_decoder_steps_with_its_own_weights():
    import copy

    fast = fast_decoder(_model("gpt2-like"))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        cache = fast.new_cache(1, 3)
        fast(ids[:, :2], cache=cache)
        fast(ids[:, 2:], cache=cache)                             # a one-token step: builds the original's plan
        twin = copy.deepcopy(fast)
        twin.blocks[0].mlp.down.weight.mul_(2.0)                 # only the copy changes
        logits = {}
        for name, model in (("fast", fast), ("twin", twin)):
            cache = model.new_cache(1, 3)
            model(ids[:, :2], cache=cache)
            logits[name] = model(ids[:, 2:], cache=cache)[0, -1]              # the short path
        twin_reference = twin(ids)[0, -1]                       # no cache: the long path, DecoderLM.forward
    assert (logits["twin"] - twin_reference).abs().max().item() <= 1e-5
    assert (logits["twin"] - logits["fast"]).abs().max().item() > 1e-3


def test_the_next_generation_sees_a_replaced_module_and_the_model_still_pickles():
    import pickle

    from glassformer.model.linear import Linear

    fast = fast_decoder(_model("gpt2-like"))
    ids = torch.tensor([[1, 2, 3]])

    def last_step(model) -> torch.Tensor:                        # prefill two tokens, then one short step
        cache = model.new_cache(1, 3)
        model(ids[:, :2], cache=cache)
        return model(ids[:, 2:], cache=cache)[0, -1]

    with torch.no_grad():
        before = last_step(fast)
        d = fast.config.d_model
        fast.blocks[0].mlp.down = Linear(fast.blocks[0].mlp.down.weight.shape[0], d)   # new random weights
        after, reference = last_step(fast), fast(ids)[0, -1]     # fast(ids): no cache, the long path
        # After a short step the model pickles (its step's functions are not kept in it) and the copy
        # steps as it does.
        copied = pickle.loads(pickle.dumps(fast))
        copied_step = last_step(copied)
    assert (after - reference).abs().max().item() <= 1e-5
    assert (after - before).abs().max().item() > 1e-3
    assert (copied_step - after).abs().max().item() <= 1e-6


def test_fast_step_still_calls_hooks_when_something_is_attached():
    fast = fast_decoder(_model("gpt2-like"))
    seen = []
    with torch.no_grad():
        cache = fast.new_cache(1, 8)
        fast(torch.tensor([[1, 2]]), cache=cache)
        with fast.hooks({"blocks.0.attn.pattern": lambda x, name: seen.append(x.shape)}):
            fast(torch.tensor([[3]]), cache=cache)
    assert seen == [torch.Size([1, 4, 1, 3])]                   # the long path ran: one query, three keys


def test_fp32_path_without_a_faster_kernel_shares_the_models_weights(monkeypatch):
    monkeypatch.setattr(decode_kernels, "faster", lambda name: False)
    model = _model("gpt2-like")
    path = decode_paths.convert(model, "fp32")
    assert isinstance(path.model, FastDecoderLM) and type(model).__name__ == "DecoderLM"
    assert path.model.blocks[0].attn.qkv.weight.data_ptr() == model.blocks[0].attn.qkv.weight.data_ptr()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_onednn_linear_equals_x_times_w(dtype):
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN has no bf16 on this CPU (the bf16 path is not offered here)")
    w, b = torch.randn(40, 72), torch.randn(72)               # (in, out) as Linear holds it
    x = torch.randn(3, 5, 40)
    layer = OneDnnLinear(w.t().to(dtype), b.to(dtype))
    reference = x.to(dtype).float() @ w.to(dtype).float() + b.to(dtype).float()
    tolerance = 1e-4 if dtype == torch.float32 else 0.02 * reference.abs().max().item()
    assert (layer(x.to(dtype)).float() - reference).abs().max().item() <= tolerance


@pytest.mark.parametrize("parts,expected", [(1, 1), (2, 2), (3, 2), (4, 4), (64, 40)])
@pytest.mark.parametrize("bias", [True, False])
def test_split_k_linear_equals_x_times_w(monkeypatch, parts, expected, bias):
    """Split into the most slices up to `parts` that divide the input width (40), the sum of the
    slices' products is x @ W for up to SPLIT_ROWS rows (module and plain function); more rows,
    multiplied whole by oneDNN or, where torch lacks it, by x @ W, give it too."""
    w, b = torch.randn(40, 72), (torch.randn(72) if bias else None)   # (in, out) as Linear holds it
    x = torch.randn(3, 5, 40)
    layer = SplitKLinear(w.t(), b, parts)
    reference = x @ w + (b if bias else 0)
    assert layer.weight.shape == (expected, 40 // expected, 72)
    for rows in (x[:1, :1], x[0], x):                                 # 1, 5 (split) and 15 rows (multiplied whole)
        assert (layer(rows) - (rows @ w + (b if bias else 0))).abs().max().item() <= 1e-4
        flat = rows.reshape(-1, 40)
        assert (plain(layer)(flat) - (flat @ w + (b if bias else 0))).abs().max().item() <= 1e-4
    assert layer(x[:0]).shape == (0, 5, 72)                           # no rows, as Linear allows
    monkeypatch.setattr(decode_kernels, "onednn_linear", None)
    assert (layer(x) - reference).abs().max().item() <= 1e-4


def _fbgemm_by_hand(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """What DynamicInt8Linear should compute, step by step: each row divided by its largest |value|,
    the call's input quantized with one scale and zero point chosen for 7-bit unsigned integers
    (fbgemm's rule with reduce_range), multiplied in integers by q, rescaled, the row's factor put
    back. fbgemm clamps the rounded values to uint8's 0..255, not to 127: a row's value of exactly
    +1 (every row has one) lands on 128."""
    m = x.abs().amax(dim=1, keepdim=True)
    xr = x / m
    low, high = min(xr.min().item(), 0.0), max(xr.max().item(), 0.0)
    step = (high - low) / 127
    zero = round(-low / step)
    xq = torch.clamp(torch.round(xr / step) + zero, 0, 255)
    integers = (xq - zero).double() @ q.double().t()             # exact integer sums
    return (integers * step * scale.double()).float() * m + bias


def test_dynamic_int8_linear_matches_the_hand_computation():
    w, b = torch.randn(24, 64) * 0.1, torch.randn(24)           # (out, in)
    x = torch.randn(5, 64) * torch.tensor([[1.0], [10.0], [0.01], [3.0], [100.0]])   # rows of very different sizes
    layer = DynamicInt8Linear(w, b)
    reference = _fbgemm_by_hand(x, layer.q, layer.scale, b)
    got = layer(x)
    assert (got - reference).abs().max().item() <= 1e-3 * reference.abs().max().item()
    exact = x @ dequantize(layer.q, layer.scale).t() + b         # and close to the unrounded product, row by row
    for row in range(5):
        assert (got[row] - exact[row]).norm().item() <= 0.03 * exact[row].norm().item()


def test_dynamic_int8_sums_do_not_saturate():
    """fbgemm's kernel for CPUs without VNNI adds pairs of u8 x s8 products in int16: with full-range
    activations 64 products of 255 x 127 would come out ~32 instead of 64. Activations scaled for 7 bits
    round to at most 128, which keeps every pair below 2^15, so the answer is the same on every CPU."""
    layer = DynamicInt8Linear(torch.ones(8, 64), None)
    assert (layer(torch.ones(1, 64)) - 64).abs().max().item() <= 0.5


def test_huge_page_copy_is_an_equal_tensor_that_outlives_its_source():
    source = torch.randn(1024, 1024)                             # 4 MB: two huge pages' worth
    copy = on_huge_pages(source)
    expected = source.clone()
    del source
    gc.collect()
    assert copy.is_contiguous() and torch.equal(copy, expected)


def test_int8_dynamic_course_model_loses_at_most_001_nats_of_validation_loss():
    from glassformer.registry import load_model
    from glassformer.train import validation_loss

    course = load_model("course")
    fp32 = course.card["final_val_loss_fp32"]
    int8 = validation_loss(decode_kernels.dynamic_int8_model(course.model), course.tokenizer)
    assert abs(int8 - fp32) <= 0.01, (fp32, int8)


@pytest.mark.parametrize("int8pack,fbgemm,expected", [(3.0, 4.0, "int8-dynamic"), (4.0, 3.0, "int8")])
def test_fastest_path_takes_the_int8_kernel_measured_faster(monkeypatch, int8pack, fbgemm, expected):
    offered = {name: "measured" for name in decode_paths.PATHS}
    monkeypatch.setattr(decode_paths, "available_paths", lambda: offered)
    monkeypatch.setattr(decode_kernels, "measured", lambda: {"kernels": {"int8pack": {"speedup": int8pack},
                                                                         "fbgemm-int8": {"speedup": fbgemm}}})
    assert decode_paths.fastest_path_name() == expected
    del offered["int8"], offered["int8-dynamic"]
    assert decode_paths.fastest_path_name() == "bf16"
    del offered["bf16"]
    assert decode_paths.fastest_path_name() == "fp32"


def test_kernel_probe_is_measured_once_per_machine_and_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("GLASSFORMER_CACHE", str(tmp_path))
    decode_kernels._stored.cache_clear()
    calls = []
    older = {"threads": torch.get_num_threads(), "matrices": decode_kernels._probed(),
             "errors": {"int8pack": "absent", "fbgemm-int8": "absent"},
             "kernels": {"onednn": {"verdict": "faster", "speedup": 1.3, "interval": [1.2, 1.4], "runs": 9}}}
    fake = copy.deepcopy(older)
    fake["kernels"]["split-k"] = {"verdict": "unclear", "speedup": 1.1, "interval": [0.9, 1.4], "runs": 9}
    monkeypatch.setattr(decode_kernels, "_probe", lambda: calls.append(1) or fake)
    try:
        assert decode_kernels.faster("onednn") and not decode_kernels.faster("fbgemm-int8")
        decode_kernels._stored.cache_clear()                     # a new process: reads the record
        assert decode_kernels.faster("onednn") and calls == [1]
        assert decode_kernels.figure("onednn") == "1.30× (1.20–1.40×, 9 runs in turns)"
        assert decode_kernels.fp32_kernel() == "onednn"          # split-K was not clearly faster than x @ W
        machine.save_section(decode_kernels._section(), older)  # a record from before split-K existed
        decode_kernels._stored.cache_clear()
        assert decode_kernels.figure("split-k").startswith("1.10×") and calls == [1, 1]   # measured again
        machine.save_section(decode_kernels._section(), {**fake, "matrices": [[8, 8]]})   # made on other matrices
        decode_kernels._stored.cache_clear()
        assert decode_kernels.fp32_kernel() == "onednn" and calls == [1, 1, 1]
    finally:
        decode_kernels._stored.cache_clear()


@pytest.mark.parametrize("onednn,split,expected", [(1.5, 1.8, "split-k"), (1.8, 1.5, "onednn"), (None, None, None)])
def test_fp32_kernel_is_the_fastest_of_those_clearly_faster(monkeypatch, onednn, split, expected):
    def result(speedup):
        return {"verdict": "faster" if speedup else "unclear", "speedup": speedup or 1.0}
    monkeypatch.setattr(decode_kernels, "measured", lambda: {"kernels": {"onednn": result(onednn),
                                                                         "split-k": result(split)}})
    assert decode_kernels.fp32_kernel() == expected


def test_a_kernel_missing_on_this_cpu_is_not_offered(monkeypatch):
    """Where fbgemm is absent (ARM builds), building its layer raises: the probe records why and the
    int8-dynamic path is not offered, rather than failing."""
    class Missing:
        def __init__(self, *args):
            raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(decode_kernels, "DynamicInt8Linear", Missing)
    monkeypatch.setattr(decode_kernels, "PROBE_MATRICES", ((64, 96), (96, 64)))   # small: what is recorded matters here
    data = decode_kernels._probe()
    assert "fbgemm-int8" not in data["kernels"] and "NoQEngine" in data["errors"]["fbgemm-int8"]
    monkeypatch.setattr(decode_kernels, "measured", lambda: data)
    assert not decode_kernels.faster("fbgemm-int8") and decode_kernels.figure("fbgemm-int8").startswith("unavailable")


def test_the_shipped_benchmark_record_says_what_its_own_numbers_say():
    """Chapter 10 and the README print the recorded runs' ratios and verdicts: each is rebuilt here from
    the recorded seconds by timing.py (a record edited by hand, or made by an older rule, fails), and
    every run with CTranslate2 carries its goals timed head to head."""
    from glassformer.decode_paths import recorded_benchmarks
    from glassformer.timing import Comparison

    runs = recorded_benchmarks()
    assert runs, "no recorded benchmark ships with the package"
    for run in runs:
        assert run["cpu"] and run["flags"] and run["fastest_path"] in run["engines"]
        for r in run["ratios"]:
            again = Comparison(r["baseline"], r["candidate"], r["baseline_seconds"], r["candidate_seconds"])
            assert abs(again.speedup - r["speedup"]) < 1e-9 and r["runs"] == again.runs >= 6, r
            assert all(abs(a - b) < 1e-9 for a, b in zip(again.interval, r["interval"])), r
            assert (again.verdict, again.not_slower) == (r["verdict"], r["not_slower"]), r
        head_to_head = {(r["baseline"], r["candidate"]) for r in run["ratios"] if r["timed"] == "head to head"}
        if "CT2 float32" in run["engines"]:
            assert ("CT2 float32", "fp32") in head_to_head
            assert any(b.startswith("CT2") and c == run["fastest_path"] for b, c in head_to_head)
