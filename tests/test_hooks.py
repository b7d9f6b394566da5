"""Hook points: names, shapes, tracing leaves logits unchanged, and hooks can edit activations."""

from __future__ import annotations

import pytest
import torch

from glassformer.model import HOOK_NAMES, build_model, hook_names, preset
from glassformer.model.hooks import MOE_ONLY


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(preset("tiny", n_kv_heads=2, position="rope")).eval()


IDS = torch.tensor([[5, 9, 2, 7, 7, 1]])


def test_every_documented_name_is_recorded_with_its_shape(model):
    logits, trace = model.run_with_trace(IDS)
    assert list(trace) == hook_names(2, has_pos_embed=False)
    B, T, D, H, Hkv, Dh, F, V = 1, 6, 64, 4, 2, 16, 256, 65
    sizes = dict(B=B, T=T, S=T, D=D, H=H, Hkv=Hkv, Dh=Dh, F=F, V=V)
    for pattern, shape, _ in HOOK_NAMES:
        if pattern == "embed.pos" or pattern.removeprefix("blocks.{i}.") in MOE_ONLY:  # MoE's: tests/test_moe.py
            continue
        expected = tuple(sizes[d.strip()] for d in shape.strip("[]").split(","))
        for i in range(2):
            assert tuple(trace[pattern.format(i=i)].shape) == expected, pattern


def test_tracing_does_not_change_logits(model):
    with torch.no_grad():
        plain = model(IDS)
        traced, trace = model.run_with_trace(IDS)
    assert torch.equal(trace["logits"], traced)
    assert (plain - traced).abs().max().item() <= 1e-5


def test_pattern_is_causal_and_rows_sum_to_one(model):
    _, trace = model.run_with_trace(IDS, names="blocks.*.attn.pattern")
    assert list(trace) == ["blocks.0.attn.pattern", "blocks.1.attn.pattern"]
    p = trace["blocks.1.attn.pattern"]
    assert (p.sum(-1) - 1).abs().max().item() <= 1e-6
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert p[..., future].abs().max().item() == 0.0


def test_masked_scores_are_minus_infinity_in_the_future(model):
    _, trace = model.run_with_trace(IDS, names=["blocks.0.attn.scores", "blocks.0.attn.masked_scores"])
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    assert torch.isneginf(trace["blocks.0.attn.masked_scores"][..., future]).all()
    assert torch.isfinite(trace["blocks.0.attn.scores"]).all()


def test_ablating_a_head_through_a_hook_equals_zeroing_its_output_weights(model):
    def zero_head_1(z, name):
        z = z.clone()
        z[:, 1] = 0
        return z

    with torch.no_grad(), model.hooks({"blocks.0.attn.z": zero_head_1}):
        ablated = model(IDS)
    assert not model.hook_points["blocks.0.attn.z"].active, "hook left attached after the with block"

    # Independent route: zero the output-projection rows that read head 1 (dims 16..31).
    with torch.no_grad():
        edited = build_model(model.config).eval()
        edited.load_state_dict(model.state_dict())
        edited.blocks[0].attn.out.weight[16:32, :] = 0
        expected = edited(IDS)
        original = model(IDS)
    assert (ablated - expected).abs().max().item() <= 1e-5
    assert (ablated - original).abs().max().item() > 1e-3, "ablation had no effect: test is vacuous"


def test_unknown_hook_name_is_a_clear_error(model):
    with pytest.raises(KeyError, match="did you mean"):
        model.run_with_trace(IDS, names="blocks.0.attn.patern")
    _, trace = model.run_with_trace(IDS, names="logits")
    with pytest.raises(KeyError, match="not recorded"):
        trace["blocks.0.attn.pattern"]


def test_hook_that_changes_the_shape_is_refused(model):
    with pytest.raises(ValueError, match="returned shape"), model.hooks({"blocks.0.mlp.post": lambda x, n: x[..., :3]}):
        model(IDS)


def test_hooks_attached_in_one_thread_do_not_touch_another(model):
    """The course serves many learners from one model; an ablation in one must not leak."""
    import threading

    with torch.no_grad():
        clean = model(IDS)
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def ablating_learner():
        with torch.no_grad(), model.hooks({"blocks.*.attn.z": lambda z, n: torch.zeros_like(z)}):
            inside.set()
            outside.wait(timeout=10)
            seen["ablated"] = model(IDS)

    def other_learner():
        inside.wait(timeout=10)
        with torch.no_grad():
            seen["other"] = model(IDS)
            _, seen["trace"] = model.run_with_trace(IDS, names="logits")
        outside.set()

    threads = [threading.Thread(target=ablating_learner), threading.Thread(target=other_learner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (seen["other"] - clean).abs().max().item() <= 1e-6
    assert (seen["trace"]["logits"] - clean).abs().max().item() <= 1e-6
    assert (seen["ablated"] - clean).abs().max().item() > 1e-3
