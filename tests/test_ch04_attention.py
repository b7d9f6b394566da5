"""Chapter 4's numbers: attention for one query, step by step (glassformer.model.attention_steps),
checked against plain-Python arithmetic and against the model's own traced pattern and z."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from glassformer.model import DecoderLM, preset
from glassformer.model import attention_steps as A


def traced(model: DecoderLM, ids: list[int], layer: int):
    with torch.no_grad():
        return model.run_with_trace(torch.tensor([ids]), names=[f"blocks.{layer}.attn.*"])[1]


@pytest.fixture(scope="module")
def course():
    from glassformer.registry import load_model

    return load_model("course")


@pytest.mark.parametrize("n_heads,n_kv", [(16, 8), (6, 2), (4, 1), (4, 4)])
def test_kv_head_is_the_head_that_repeat_interleave_gives(n_heads, n_kv):
    # Attention.eager repeats each kv head n_heads // n_kv times: read the mapping off that tensor.
    served_by = torch.arange(n_kv).repeat_interleave(n_heads // n_kv, dim=0).tolist()
    assert [A.kv_head(h, n_heads, n_kv) for h in range(n_heads)] == served_by
    with pytest.raises(ValueError):
        A.kv_head(n_heads, n_heads, n_kv)


def test_query_steps_match_plain_python():
    rnd = random.Random(0)
    T, Dh, t = 5, 3, 3
    q = [[rnd.uniform(-2, 2) for _ in range(Dh)] for _ in range(T)]
    k = [[rnd.uniform(-2, 2) for _ in range(Dh)] for _ in range(T)]
    v = [[rnd.uniform(-2, 2) for _ in range(Dh)] for _ in range(T)]
    s = A.query_steps(torch.tensor(q), torch.tensor(k), torch.tensor(v), t)
    dots = [sum(a * b for a, b in zip(q[t], k[j])) for j in range(T)]
    scores = [d / math.sqrt(Dh) for d in dots]
    exps = [math.exp(scores[j]) if j <= t else 0.0 for j in range(T)]
    weights = [e / sum(exps) for e in exps]
    out = [sum(weights[j] * v[j][c] for j in range(T)) for c in range(Dh)]
    for name, ours, ref in [("dots", s.dots, dots), ("scores", s.scores, scores), ("weights", s.weights, weights),
                            ("out", s.out, out)]:
        assert max(abs(a - b) for a, b in zip(ours.tolist(), ref)) < 1e-5, name
    assert s.masked[t + 1:].tolist() == [-math.inf] * (T - t - 1)
    unscaled = A.query_steps(torch.tensor(q), torch.tensor(k), torch.tensor(v), t, scaled=False, causal=False)
    e = [math.exp(d) for d in dots]
    assert max(abs(a - b / sum(e)) for a, b in zip(unscaled.weights.tolist(), e)) < 1e-6


@pytest.mark.parametrize("overrides", [dict(), dict(n_kv_heads=2, position="rope"), dict(n_kv_heads=1, position="alibi")],
                         ids=["mha-learned", "gqa-rope", "mqa-alibi"])
def test_query_steps_reproduce_the_traced_pattern_and_z(overrides):
    torch.manual_seed(0)
    model = DecoderLM(preset("tiny", **overrides)).eval()
    ids = torch.randint(0, 65, (12,)).tolist()
    cfg = model.config
    for layer in range(cfg.n_layers):
        trace = traced(model, ids, layer)
        for head in range(cfg.n_heads):
            q, k, v = A.head_tensors(trace, layer, head, cfg.n_heads, cfg.n_kv_heads)
            bias = A.score_bias(trace, layer, head)
            if cfg.position != "alibi":
                assert bias.abs().max().item() < 1e-5  # no bias: the traced scores are exactly q.k / sqrt(Dh)
            for t in (0, 5, 11):
                s = A.query_steps(q, k, v, t, bias=bias[t])
                pattern = trace[f"blocks.{layer}.attn.pattern"][0, head, t]
                z = trace[f"blocks.{layer}.attn.z"][0, head, t]
                assert (s.weights - pattern).abs().max().item() < 1e-5, (layer, head, t)
                assert (s.out - z).abs().max().item() < 1e-5, (layer, head, t)


def test_steps_on_the_course_model_match_its_trace(course):
    ids = course.tokenizer.encode("ROMEO:\nBut soft, what light")
    cfg = course.model.config
    trace = traced(course.model, ids, 2)
    q, k, v = A.head_tensors(trace, 2, 1, cfg.n_heads, cfg.n_kv_heads)
    s = A.query_steps(q, k, v, len(ids) - 1)
    assert (s.weights - trace["blocks.2.attn.pattern"][0, 1, -1]).abs().max().item() < 1e-5
    assert (s.out - trace["blocks.2.attn.z"][0, 1, -1]).abs().max().item() < 1e-5


def test_patterns_with_and_without_the_scaling_and_the_mask(course):
    ids = course.tokenizer.encode("To be, or not to be")
    trace = traced(course.model, ids, 0)
    scores = trace["blocks.0.attn.scores"][0]                                    # (H, T, T)
    assert (A.pattern_from_scores(scores) - trace["blocks.0.attn.pattern"][0]).abs().max().item() < 1e-6
    # Without the division: softmax of the raw dot products, by numpy.
    q, k = trace["blocks.0.attn.q"][0, 0].double().numpy(), trace["blocks.0.attn.k"][0, 0].double().numpy()
    raw = q @ k.T
    raw[np.triu_indices(len(ids), 1)] = -np.inf
    ref = np.exp(raw - raw.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    ours = A.pattern_from_scores(scores[0], unscale=math.sqrt(course.model.config.head_dim))
    assert np.abs(ours.double().numpy() - ref).max() < 1e-4
    unmasked = A.pattern_from_scores(scores[0], causal=False)
    assert unmasked[0, 1:].sum().item() > 0 and abs(unmasked.sum(-1) - 1).max().item() < 1e-5


def test_entropy_bits_by_hand():
    w = [0.5, 0.25, 0.125, 0.125, 0.0]
    by_hand = -sum(p * math.log2(p) for p in w if p > 0)   # 1.75 bits
    assert abs(A.entropy_bits(torch.tensor(w)).item() - by_hand) < 1e-6
    assert A.entropy_bits(torch.tensor([1.0, 0.0])).item() == 0.0


def test_dot_product_variance_grows_with_the_width_and_the_scaling_undoes_it():
    rows = A.dot_product_spread((2, 32, 512), samples=4000)
    for r in rows:
        assert abs(r["raw"] / r["d"] - 1) < 0.15, r            # Var(q.k) = d
        assert abs(r["scaled"] - 1) < 0.15, r                  # Var(q.k / sqrt d) = 1
        assert abs(r["raw"] - r["d"] * r["scaled"]) < 1e-9 * r["d"]


def test_switching_the_mask_off_through_hooks(course):
    model, ids = course.model, course.tokenizer.encode("First Citizen:")
    x = torch.tensor([ids])
    with torch.no_grad():
        before = model(x)
        with model.hooks(A.without_causal_mask()):
            _, trace = model.run_with_trace(x, names=["blocks.*.attn.scores", "blocks.*.attn.pattern"])
        after = model(x)
    assert torch.equal(before, after)  # the model is unchanged once the `with` block ends
    for layer in range(model.config.n_layers):
        pattern = trace[f"blocks.{layer}.attn.pattern"][0]
        plain = trace[f"blocks.{layer}.attn.scores"][0].softmax(-1)      # softmax with no mask at all
        assert (pattern - plain).abs().max().item() < 1e-6
        assert pattern.triu(diagonal=1).sum().item() > 0.1               # later keys now get weight


def test_a_later_token_moves_an_earlier_output_only_without_the_mask(course):
    ids = course.tokenizer.encode("ROMEO:\nBut soft")
    with_mask = A.future_influence(course.model, ids, 4, course.tokenizer.ids["x"])
    without = A.future_influence(course.model, ids, 4, course.tokenizer.ids["x"], causal=False)
    assert with_mask["attn_out"] < 1e-6 and with_mask["logits"] < 1e-6
    assert abs(with_mask["prob_before"] - with_mask["prob_after"]) < 1e-6
    assert without["attn_out"] > 1e-3 and without["logits"] > 1e-3
    with pytest.raises(ValueError):
        A.future_influence(course.model, ids, len(ids) - 1, 0)


def test_drag_vectors_api():
    import traitlets

    from glassformer.course.widgets import DragVectors

    w = DragVectors(vectors=[{"name": "q", "x": 1, "y": -0.5}, {"name": "k", "x": 0.2, "y": 0.3, "fixed": True}])
    assert DragVectors.coords(w) == {"q": (1.0, -0.5), "k": (0.2, 0.3)}
    assert DragVectors.coords({"vectors": w.vectors}) == DragVectors.coords(w)  # mo.ui.anywidget(...).value form
    with pytest.raises(traitlets.TraitError):
        w.vectors = [{"name": "q", "x": 0, "y": 0}, {"name": "q", "x": 1, "y": 1}]
    with pytest.raises(traitlets.TraitError):
        w.vectors = [{"name": "q", "x": "1", "y": 0}]


def test_a_model_trained_without_the_mask_learns_to_peek_and_fails_honestly():
    from glassformer.toys import mask_training as M

    tok = M.course_tokenizer()
    train_ids, val_ids = M.corpus_split(tok, n_chars=60_000)
    run = M.train_pair(train_ids, val_ids, tok.vocab_size, steps=200)
    last = {k: sum(v[-20:]) / 20 for k, v in run.train_loss.items()}
    assert last["no mask"] < last["mask"] - 1.0, last                        # copying the next character
    assert run.next_weight["no mask"] > 0.5 > run.next_weight["mask"], run.next_weight
    assert run.honest_loss["no mask"] > run.honest_loss["mask"] + 1.0, run.honest_loss   # useless at generation
    assert run.peeking_loss["no mask"] < run.honest_loss["mask"], run.peeking_loss


def test_held_out_loss_with_the_mask_is_the_plain_cross_entropy():
    from glassformer.toys import mask_training as M
    from glassformer.data import random_batch

    torch.manual_seed(0)
    model = DecoderLM(preset("tiny")).eval()
    data = torch.randint(0, 65, (500,))
    x, y = random_batch(data, 32, model.config.n_ctx, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logp = model(x).double().log_softmax(-1)                            # (B, T, V)
    by_hand = -logp.gather(-1, y[..., None]).mean().item()
    assert abs(M.held_out_loss(model, data, masked=True) - by_hand) < 1e-5


def test_a_text_cut_by_the_pages_own_limit_says_so_not_the_context(course):
    """Chapter 4 reads at most 64 tokens to keep its charts readable; the notice gives that reason,
    and the context only when the context is what cut the text."""
    from glassformer.course import common

    text = "To be, or not to be, that is the question. " * 3                      # 129 characters
    page = common.prepare(course, text, max_tokens=64, why="one bar per token stays readable")
    assert len(page.ids) == 64 and page.notices[-1].endswith("(one bar per token stays readable).")
    assert "context" not in page.notices[-1]
    assert common.prepare(course, text, max_tokens=64).notices[-1].endswith("(this page reads at most 64 tokens).")
    whole = common.prepare(course, text * 2)                                      # 258 characters > 256
    assert len(whole.ids) == 256 and whole.notices[-1].endswith("(the model's context is 256 tokens).")
    assert common.prepare(course, text * 2, max_tokens=1000).ids == whole.ids    # a page limit above the context
