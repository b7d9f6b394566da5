"""Precision chosen by the hardware, and our Muon checked against torch.optim.Muon."""

from __future__ import annotations

import pytest
import torch

from glassformer import precision
from glassformer.optim import Muon, make_optimizer, orthogonalize
from glassformer.precision import Capability, resolve_dtype
from glassformer.train import train_preset


def test_auto_follows_the_measured_capability(monkeypatch, capsys):
    slow = Capability("AVX2", native_bf16=False, bf16_speedup=0.0025)
    monkeypatch.setattr(precision, "cpu_capability", lambda: slow)
    assert resolve_dtype("auto") == "fp32"
    assert resolve_dtype("bf16") == "bf16"  # still honoured when asked for...
    err = capsys.readouterr().err
    assert "warning" in err and "400x slower" in err and "AVX2" in err  # ...with the measured slowdown
    fast = Capability("AVX512", native_bf16=True, bf16_speedup=3.1)
    monkeypatch.setattr(precision, "cpu_capability", lambda: fast)
    assert resolve_dtype("auto") == "bf16" and resolve_dtype("fp32") == "fp32"
    assert capsys.readouterr().err == ""
    # bf16 instructions, but bf16 products measured clearly slower (whole interval below 1): fp32
    vetoed = Capability("AVX512", True, 0.6, (0.5, 0.7), 11, "slower")
    monkeypatch.setattr(precision, "cpu_capability", lambda: vetoed)
    assert resolve_dtype("auto") == "fp32"
    # ... while a timing with no clear difference leaves the instructions' word standing: bf16
    monkeypatch.setattr(precision, "cpu_capability", lambda: Capability("AVX512", True, 1.05, (0.8, 1.3), 11))
    assert resolve_dtype("auto") == "bf16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("fp16")


def test_capability_is_measured_once_per_process():
    first = precision.cpu_capability()
    assert precision.cpu_capability() is first
    assert first.bf16_speedup > 0 and first.vector_isa
    assert first.summary.startswith(first.vector_isa) and first.best_dtype in ("bf16", "fp32")


def test_every_preset_defaults_to_auto_precision():
    from glassformer.train import TRAIN_PRESETS

    assert {name: cfg.dtype for name, cfg in TRAIN_PRESETS.items() if name != "nanogpt-cpu"} == \
           {name: "auto" for name in TRAIN_PRESETS if name != "nanogpt-cpu"}
    assert TRAIN_PRESETS["nanogpt-cpu"].dtype == "fp32"  # the reference recipe: as nanoGPT runs on a CPU


def _run_both(shape, ns_dtype, steps=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(*shape, generator=gen) * 0.02
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    a = Muon([ours], lr=0.01, weight_decay=0.1, ns_dtype=ns_dtype)
    b = torch.optim.Muon([theirs], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(steps):
        g = torch.randn(*shape, generator=gen)
        ours.grad, theirs.grad = g.clone(), g.clone()
        a.step()
        b.step()
    return start, ours.detach(), theirs.detach()


@pytest.mark.parametrize("shape", [(48, 144), (144, 48), (64, 64)])
@pytest.mark.parametrize("ns_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_our_muon_makes_the_same_updates_as_torch(shape, ns_dtype):
    """torch.optim.Muon always orthogonalizes in bf16; ours in fp32 (or bf16). Same algorithm:
    the total update after 3 steps agrees to bf16's precision (8 bits: ~0.4%, with margin)."""
    start, ours, theirs = _run_both(shape, ns_dtype)
    moved = (theirs - start).abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert moved > 0.01  # the parameters really moved
    assert abs(diff) <= 0.02 * moved, f"max |ours - torch| = {diff:.3g}, update size {moved:.3g}"


def test_orthogonalize_gives_singular_values_near_one():
    """Five quintic Newton-Schulz steps map singular values spread over 30x to roughly [0.7, 1.2]."""
    gen = torch.Generator().manual_seed(0)
    for m, n in [(32, 96), (96, 32), (192, 576)]:
        k = min(m, n)
        u, _ = torch.linalg.qr(torch.randn(m, k, generator=gen))
        v, _ = torch.linalg.qr(torch.randn(n, k, generator=gen))
        spread = torch.logspace(0, 1.5, k)                       # condition number ~32
        g = u @ torch.diag(spread) @ v.T
        s = torch.linalg.svdvals(orthogonalize(g))
        assert abs(s.min().item() - 0.9) <= 0.25 and abs(s.max().item() - 0.9) <= 0.35, ((m, n), s.min(), s.max())
        ratio = (s.max() / s.min()).item()
        assert abs(ratio - 1) <= 0.8 < abs(spread.max() / spread.min() - 1)  # from 32x to under 1.8x


def test_orthogonalizing_a_stack_equals_one_at_a_time():
    stack = torch.randn(5, 24, 40, generator=torch.Generator().manual_seed(1))
    together = orthogonalize(stack)
    for i in range(5):
        alone = orthogonalize(stack[i])
        assert abs((together[i] - alone).abs().max().item()) <= 1e-5


def test_split_qkv_orthogonalizes_each_part_on_its_own():
    from glassformer.model import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("tiny", n_heads=4, d_model=64))
    opt = make_optimizer(model, "muon", 0.01, 0.0, (0.9, 0.99), split_qkv=True)
    muon = opt.parts[0]
    qkv = model.blocks[0].attn.qkv.weight
    assert muon.splits[qkv] == [64, 64, 64]
    before = qkv.detach().clone()
    g = torch.randn_like(qkv)
    g[:, 64:] *= 100  # k and v get much larger gradients than q
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    qkv.grad = g
    opt.step()
    step = before - qkv.detach()
    q_part, kv_part = step[:, :64].norm(), step[:, 64:128].norm()
    assert abs(q_part / kv_part - 1) <= 0.2  # split: q's step is as large as k's despite its tiny gradient


def test_weight_decay_spares_position_tables_norms_and_biases():
    from glassformer.model import build_model, preset

    model = build_model(preset("tiny", position="learned"))
    opt = make_optimizer(model, "adamw", 1e-3, 0.1, (0.9, 0.99))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert "embed.positions.weight" not in decayed            # as the docstring says
    assert "embed.tok.weight" in decayed and "blocks.0.attn.qkv.weight" in decayed
    assert not any(n.endswith(".bias") or "norm" in n for n in decayed)


@pytest.mark.parametrize("cpu", [Capability("AVX2", False, 0.0025), Capability("AVX512", True, 3.0)],
                         ids=["avx2", "avx512-bf16"])
def test_a_run_trains_in_the_precision_its_cpu_is_fast_at(monkeypatch, tmp_path, cpu):
    from glassformer.train import start_or_resume

    monkeypatch.setattr(precision, "cpu_capability", lambda: cpu)
    cfg = train_preset("course", compile=False)
    run, _ = start_or_resume(cfg, tmp_path, None, resume=False)
    expected = "bf16" if cpu.native_bf16 else "fp32"
    assert run.dtype == expected
    muon = run.optimizer.parts[0]
    assert isinstance(muon, Muon) and muon.ns_dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)
    assert run.model.config == train_preset("course").model.replace(vocab_size=65)  # the same model on every CPU
