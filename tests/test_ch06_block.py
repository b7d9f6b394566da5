"""Chapter 6's library functions (block_anatomy, gradient_norms) against independent references:
plain-Python arithmetic, the closed-form activations, finite differences, and the block's own equations."""

from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch

from glassformer.analysis import block_anatomy as anatomy
from glassformer.analysis import gradient_norms as gradnorms
from glassformer.model.block import Block
from glassformer.model.config import preset
from glassformer.model.decoder import DecoderLM
from glassformer.model.mlp import GeluMLP, SwiGLU


@pytest.fixture(scope="module")
def traced():
    torch.manual_seed(0)
    model = DecoderLM(preset("tiny").replace(mlp="swiglu", norm="rmsnorm", d_mlp=96)).eval()  # as the registry loads it
    ids = torch.tensor([[3, 14, 15, 9, 2, 6, 5]])
    with torch.no_grad():
        _, trace = model.run_with_trace(ids, "blocks.*")
    return model, ids, trace


@pytest.mark.parametrize("pre_norm", [True, False])
def test_every_stage_marker_is_exactly_one_line_of_the_code_it_names(pre_norm):
    block_lines = inspect.getsource(Block.forward).splitlines()
    for stage in anatomy.block_stages(pre_norm):
        sources = [SwiGLU.forward, GeluMLP.forward] if stage.in_mlp else [Block.forward]
        for fn in sources:
            lines = inspect.getsource(fn).splitlines()
            hits = [line for line in lines if stage.marker in line]
            assert len(hits) == 1, (stage.hook, fn.__qualname__, hits)
        if not stage.in_mlp:  # and in the branch of the arrangement: post-norm lines come after `if self.pre_norm`
            index = next(i for i, line in enumerate(block_lines) if stage.marker in line)
            branch_start = next(i for i, line in enumerate(block_lines) if "if self.pre_norm" in line)
            depth = len(block_lines[branch_start]) - len(block_lines[branch_start].lstrip())
            branch_end = next(i for i in range(branch_start + 1, len(block_lines))   # the first line back out
                              if block_lines[i].strip() and len(block_lines[i]) - len(block_lines[i].lstrip()) <= depth)
            if stage.hook != "resid_pre":
                assert (branch_start < index < branch_end) == pre_norm, stage.hook


def test_walk_block_reads_the_trace_and_the_additions_hold(traced):
    model, ids, trace = traced
    walk = anatomy.walk_block(trace, layer=1, pos=4, pre_norm=True)
    by = {s.stage.hook: s for s in walk}
    assert [s.stage.hook for s in walk] == ["resid_pre", "attn_in", "attn_out", "resid_mid", "mlp_in", "mlp.pre",
                                            "mlp.post", "mlp_out", "resid_post"]
    assert by["mlp.post"].shape == (1, 7, 96) and by["resid_post"].shape == (1, 7, 64)
    # the block's equations, checked on the walked vectors (pre-norm, eval mode: no dropout)
    torch.testing.assert_close(by["resid_mid"].vector, by["resid_pre"].vector + by["attn_out"].vector)
    torch.testing.assert_close(by["resid_post"].vector, by["resid_mid"].vector + by["mlp_out"].vector)
    # the norm printed is the plain Euclidean length
    v = by["attn_out"].vector.tolist()
    assert abs(by["attn_out"].norm - math.sqrt(sum(x * x for x in v))) < 1e-4
    # the next block starts where this one ended
    torch.testing.assert_close(anatomy.walk_block(trace, 1, 4, True)[-1].vector,
                               trace["blocks.1.resid_post"][0, 4])


def test_residual_shares_match_a_plain_python_computation(traced):
    model, ids, trace = traced
    rows = anatomy.residual_shares(trace, model.config.n_layers)
    assert len(rows) == 2 * model.config.n_layers
    length = lambda vec: math.sqrt(sum(x * x for x in vec))  # noqa: E731
    for row in rows:
        update, stream = {"attention": ("attn_out", "resid_pre"), "MLP": ("mlp_out", "resid_mid")}[row["sublayer"]]
        u = trace[f"blocks.{row['layer']}.{update}"][0].tolist()
        s = trace[f"blocks.{row['layer']}.{stream}"][0].tolist()
        expected = sum(length(a) / length(b) for a, b in zip(u, s)) / len(u)
        assert abs(row["share"] - expected) < 1e-5 * max(1.0, expected)


def test_compare_norms_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    out = anatomy.compare_norms(x, eps=0.0)
    mean = 3.0
    var = sum((v - mean) ** 2 for v in [1, 2, 3, 6]) / 4          # 3.5
    rms = math.sqrt(sum(v * v for v in [1, 2, 3, 6]) / 4)          # sqrt(12.5)
    ln, _ = out["LayerNorm"]
    rn, stats = out["RMSNorm"]
    for got, want in zip(ln.tolist(), [(v - mean) / math.sqrt(var) for v in [1, 2, 3, 6]]):
        assert abs(got - want) < 1e-5
    for got, want in zip(rn.tolist(), [v / rms for v in [1, 2, 3, 6]]):
        assert abs(got - want) < 1e-5
    assert abs(out["before"][1]["variance"] - var) < 1e-9 and abs(out["before"][1]["rms"] - rms) < 1e-9
    assert abs(out["LayerNorm"][1]["mean"]) < 1e-6 and abs(out["LayerNorm"][1]["variance"] - 1) < 1e-5
    assert abs(stats["rms"] - 1) < 1e-5 and abs(stats["mean"] - mean / rms) < 1e-5   # RMSNorm keeps a mean


def test_activation_curves_match_the_closed_forms():
    xs = [-3.0, -1.0, -0.25, 0.0, 0.5, 2.0]
    curves = anatomy.activation_curves(xs)
    for x, gelu, tanh_gelu, swish in zip(xs, curves["GELU"], curves["GELU (tanh)"], curves["SwiGLU gate (up = 1)"]):
        assert abs(gelu - 0.5 * x * (1 + math.erf(x / math.sqrt(2)))) < 1e-6
        assert abs(tanh_gelu - 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))) < 1e-6
        assert abs(swish - x / (1 + math.exp(-x))) < 1e-6


def test_mlp_parameter_counts_by_hand():
    counts = anatomy.mlp_parameter_counts(128)
    assert counts["GELU, F = 4D"] == (512, 2 * 128 * 512)
    f = counts["SwiGLU, F ≈ 8D/3"][0]
    assert f % 8 == 0 and abs(f - 8 * 128 / 3) < 8 and counts["SwiGLU, F ≈ 8D/3"][1] == 3 * 128 * f


def test_dropout_check_train_differs_eval_is_deterministic_and_the_model_is_untouched(traced):
    model, ids, _ = traced
    before = copy.deepcopy(model.state_dict())
    check = anatomy.dropout_check(model, ids, rate=0.2)
    assert check.rate == 0.2 and check.train_vs_train > 1e-3 and check.train_vs_eval > 1e-3
    assert check.eval_vs_eval == 0.0
    assert not model.training and all(b.dropout == model.config.dropout for b in model.blocks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert anatomy.dropout_check(model, ids, rate=0.0).train_vs_train == 0.0


def test_gradient_norm_matches_a_finite_difference():
    """The gradient's length along its own direction equals the loss's slope there (float64)."""
    torch.manual_seed(1)
    model = DecoderLM(gradnorms.stack_config(2, pre_norm=False, d_model=8, n_ctx=6)).double()
    ids = torch.randint(0, 65, (2, 7), generator=torch.Generator().manual_seed(1))
    norms = gradnorms.block_gradient_norms(model, ids)
    params = list(model.blocks[1].parameters())
    direction = [p.grad.clone() / norms[1] for p in params]

    def loss_at(step: float) -> float:
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for p, d in zip(twin.blocks[1].parameters(), direction):
                p.add_(step * d)
            logits = twin(ids[:, :-1])
            return float(torch.nn.functional.cross_entropy(logits.reshape(-1, 65), ids[:, 1:].reshape(-1)))

    eps = 1e-5
    slope = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert abs(slope - norms[1]) < 1e-6 * max(1.0, norms[1]), (slope, norms[1])


def test_layer_gradient_norms_are_reproducible_and_post_norm_means_the_2017_block():
    a = gradnorms.layer_gradient_norms.__wrapped__(3, False, 16, 1)
    b = gradnorms.layer_gradient_norms.__wrapped__(3, False, 16, 1)
    assert a == b and len(a) == 3 and all(g > 0 for g in a)
    assert gradnorms.layer_gradient_norms.__wrapped__(3, True, 16, 1) != a
    assert not DecoderLM(gradnorms.stack_config(3, False)).blocks[0].pre_norm
    rows = gradnorms.depth_sweep([2, 3], d_model=16, seeds=1)
    assert len(rows) == 2 * (2 + 3) and {r["norm"] for r in rows} == {"pre-norm", "post-norm"}
    with pytest.raises(ValueError):
        gradnorms.layer_gradient_norms(2, True, init="kaiming")


def test_the_chapters_xavier_finding_holds_at_its_default_depths():
    """The sentence the chapter prints for the 2017 initialisation: going from 2 to 24 layers, the
    pre-norm stack's last-layer gradient shrinks while the post-norm stack's does not shrink as much."""
    pre = [gradnorms.layer_gradient_norms(n, True, 32, 3, "xavier")[-1] for n in (2, 24)]
    post = [gradnorms.layer_gradient_norms(n, False, 32, 3, "xavier")[-1] for n in (2, 24)]
    assert pre[1] / pre[0] < 0.9 and post[1] / post[0] > pre[1] / pre[0]


@pytest.mark.parametrize("pre_norm", [True, False])
def test_stage_names_are_whole_and_fit_every_mlp_kind(pre_norm):
    """The step path prints each stage's short label; the heading prints its title. Both must read
    whole (no bracket left open) and hold for GELU and SwiGLU models alike."""
    for stage in anatomy.block_stages(pre_norm):
        for name in (stage.label, stage.title):
            assert name and name.count("(") == name.count(")"), name
            assert "SwiGLU" not in name and "GELU" not in name, name
    labels = [s.label for s in anatomy.block_stages(pre_norm)]
    assert len(labels) == len(set(labels)) == 9
