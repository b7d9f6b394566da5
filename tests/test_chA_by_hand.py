"""Appendix A: the toy forward pass, recomputed with plain Python arithmetic (lists, math.exp,
math.sqrt; no torch) from the hand-written tables, against every number the page prints; plus
the answer checker and the sentence preparation on bad input."""

from __future__ import annotations

import math

import pytest
import torch

from glassformer import sampling
from glassformer.toys import worked_example as we
from glassformer.course.widgets.number_table import format_number, table_html
from glassformer.model.decoder import DecoderLM

SENTENCES = ["the cat sat", "the dog ran", "dog ran .", "the", "cat sat"]
TOL = 1e-6  # the toy runs in float64, but RMSNorm computes in float32 (norm.py): errors ~1e-7


# --- the reference: the whole forward pass by hand, in plain Python ------------------------

def matmul(x: list[list[float]], w: list[list[float]]) -> list[list[float]]:
    return [[sum(a * w[i][j] for i, a in enumerate(row)) for j in range(len(w[0]))] for row in x]


def rmsnorm(x: list[list[float]], eps: float) -> tuple[list[float], list[list[float]]]:
    rms = [math.sqrt(sum(v * v for v in row) / len(row) + eps) for row in x]
    return rms, [[v / r for v in row] for row, r in zip(x, rms)]


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) if v != -math.inf else 0.0 for v in row]
    return [e / sum(exps) for e in exps]


def by_hand(ids: list[int], W: dict = we.WEIGHTS) -> dict[str, object]:
    eps, T, H, Dh = we.CONFIG.norm_eps, len(ids), we.CONFIG.n_heads, we.CONFIG.head_dim
    add = lambda a, b: [[u + v for u, v in zip(r, s)] for r, s in zip(a, b)]  # noqa: E731
    out: dict[str, object] = {}
    out["embed.tok"] = [list(W["embedding"][i]) for i in ids]
    out["embed.pos"] = [list(W["positions"][t]) for t in range(T)]
    x = out["blocks.0.resid_pre"] = add(out["embed.tok"], out["embed.pos"])
    out["rms_in"], xn = rmsnorm(x, eps)
    out["blocks.0.attn_in"] = xn
    q, k, v = (matmul(xn, W[n]) for n in ("W_Q", "W_K", "W_V"))                  # (T, H Dh)
    heads = lambda m: [[row[h * Dh:(h + 1) * Dh] for row in m] for h in range(H)]  # noqa: E731  (H, T, Dh)
    out["blocks.0.attn.q"], out["blocks.0.attn.k"], out["blocks.0.attn.v"] = heads(q), heads(k), heads(v)
    raw = [[[sum(a * b for a, b in zip(qt, ks)) for ks in out["blocks.0.attn.k"][h]] for qt in out["blocks.0.attn.q"][h]]
           for h in range(H)]
    out["scores_unscaled"] = raw
    scaled = out["blocks.0.attn.scores"] = [[[s / math.sqrt(Dh) for s in row] for row in m] for m in raw]
    masked = out["blocks.0.attn.masked_scores"] = [[[s if j <= i else -math.inf for j, s in enumerate(row)]
                                                    for i, row in enumerate(m)] for m in scaled]
    pattern = out["blocks.0.attn.pattern"] = [[softmax(row) for row in m] for m in masked]
    z = out["blocks.0.attn.z"] = [[[sum(pattern[h][t][s] * out["blocks.0.attn.v"][h][s][d] for s in range(T))
                                    for d in range(Dh)] for t in range(T)] for h in range(H)]
    out["z_side_by_side"] = [z[0][t] + z[1][t] for t in range(T)]
    o = out["blocks.0.attn_out"] = matmul(out["z_side_by_side"], W["W_O"])
    mid = out["blocks.0.resid_mid"] = add(x, o)
    out["rms_mid"], xn2 = rmsnorm(mid, eps)
    out["blocks.0.mlp_in"] = xn2
    gate, up = matmul(xn2, W["W_gate"]), matmul(xn2, W["W_up"])
    out["gate"], out["up"] = gate, up
    out["blocks.0.mlp.pre"] = gate
    out["silu"] = [[g / (1 + math.exp(-g)) for g in row] for row in gate]
    post = out["blocks.0.mlp.post"] = [[s * u for s, u in zip(a, b)] for a, b in zip(out["silu"], up)]
    down = out["blocks.0.mlp_out"] = matmul(post, W["W_down"])
    final_in = out["blocks.0.resid_post"] = add(mid, down)
    out["rms_post"], fn = rmsnorm(final_in, eps)
    out["final_norm"] = fn
    out["logits"] = [[sum(a * b for a, b in zip(row, word)) for word in W["embedding"]] for row in fn]
    out["probs"] = [softmax(row) for row in out["logits"]]
    return out


def assert_close(ours, theirs, where: str) -> None:
    """Nested lists, element by element, with an absolute tolerance (and −∞ equal to −∞)."""
    if isinstance(theirs, list):
        assert len(ours) == len(theirs), f"{where}: length {len(ours)} vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b, f"{where}[{i}]")
        return
    if math.isinf(theirs):
        assert ours == theirs, f"{where}: {ours} vs {theirs}"
    else:
        assert abs(ours - theirs) <= TOL, f"{where}: library {ours!r}, by hand {theirs!r}"


@pytest.fixture(scope="module")
def model():
    return we.build()


def printed(model, sentence: str) -> tuple[we.Prepared, dict[str, object], dict]:
    """Every table the page prints, computed the way the chapter computes it (its run cell)."""
    prepared = we.prepare(sentence)
    logits, trace = we.run(model, prepared.ids)
    parts = we.swiglu_parts(model, trace)
    z = trace["blocks.0.attn.z"][0]
    shown = {name: trace[name][0].tolist() for name in trace}
    shown.update({
        "scores_unscaled": we.unscaled_scores(trace)[0].tolist(),
        "probs": sampling.distribution(logits[0], 1.0).tolist(),
        "gate": parts["gate"][0].tolist(), "silu": parts["silu"][0].tolist(), "up": parts["up"][0].tolist(),
        "z_side_by_side": torch.cat([z[0], z[1]], dim=-1).tolist(),
        "rms_in": we.root_mean_square(trace["blocks.0.resid_pre"][0], we.CONFIG.norm_eps).tolist(),
        "rms_mid": we.root_mean_square(trace["blocks.0.resid_mid"][0], we.CONFIG.norm_eps).tolist(),
        "rms_post": we.root_mean_square(trace["blocks.0.resid_post"][0], we.CONFIG.norm_eps).tolist(),
    })
    return prepared, shown, trace


def test_the_toy_is_a_course_family_model_built_by_the_library(model):
    assert isinstance(model, DecoderLM)
    c = model.config
    assert (c.family, c.d_model, c.n_heads, c.head_dim, c.n_layers, c.n_ctx, c.vocab_size) == ("course", 6, 2, 3, 1, 3, 6)
    assert we.weights_of(model) == {k: [[float(v) for v in row] for row in t] for k, t in we.WEIGHTS.items()}
    assert model.unembed.weight is model.embed.tok.weight  # tied: the output head is the embedding table
    for table in we.WEIGHTS.values():  # small integers or one decimal: checkable by hand
        assert all(abs(v) <= 2 and abs(v * 10 - round(v * 10)) < 1e-12 for row in table for v in row)


@pytest.mark.parametrize("positions", ["hand", "off"])
@pytest.mark.parametrize("sentence", SENTENCES)
def test_every_printed_number_equals_plain_python_arithmetic(model, sentence, positions):
    tables = {"positions": [[0] * 6] * 3} if positions == "off" else {}  # "off": the page's checkbox
    if tables:
        model = we.build(tables)
    prepared, shown, trace = printed(model, sentence)
    reference = by_hand(prepared.ids, {**we.WEIGHTS, **tables})
    assert set(reference) <= set(shown), set(reference) - set(shown)
    for name, values in reference.items():
        assert_close(shown[name], values, f"{sentence!r} {name}")
    assert len(trace) == len(model.hook_points)  # nothing the page prints was left out of the comparison
    assert set(trace) <= set(reference), set(trace) - set(reference)


@pytest.mark.parametrize("positions", ["hand", "off"])
@pytest.mark.parametrize("sentence", SENTENCES)
def test_each_check_asks_for_a_printed_number_and_its_working_reaches_it(model, sentence, positions):
    tables = {"positions": [[0] * 6] * 3} if positions == "off" else {}
    if tables:
        model = we.build(tables)
    prepared, shown, trace = printed(model, sentence)
    reference = by_hand(prepared.ids, {**we.WEIGHTS, **tables})
    checks = we.checks(model, trace, prepared.words)
    assert tuple(checks) == we.STEPS  # the page makes one answer box per step, in this order
    for key, c in checks.items():
        value = reference[c.hook]
        for i in c.index:
            value = value[i]
        if math.isinf(value):
            assert c.working.value == value, key
        else:
            assert abs(c.working.value - value) <= TOL, (key, c.working.value, value)
        assert c.working.lines, key
        verdict = we.check(format_number(value, 3).replace("−", "-"), c.working)  # typing the printed digits
        assert verdict.kind == "right", (key, verdict)
        for why, slip in c.working.slips:  # a slip is never the right answer, and is recognized as itself
            assert abs(slip - c.working.value) > we.tolerance(c.working.value), (key, why)
            assert we.check(f"{slip:.4f}", c.working).kind == "slip", (key, why)


def test_the_default_sentence_checks_follow_the_last_word_through_every_step(model):
    prepared, shown, trace = printed(model, we.DEFAULT_SENTENCE)
    checks = we.checks(model, trace, prepared.words)
    last = len(prepared.words) - 1
    assert prepared.words == ["the", "cat", "sat"]
    per_head = lambda c: c.hook.startswith(("blocks.0.attn.", "scores"))  # noqa: E731  (H, T, ...) tables
    rows = {k: c.index[1] if per_head(c) else c.index[0] for k, c in checks.items()}
    assert [k for k, row in rows.items() if row != last] == ["embed", "mask"], rows  # the mask's is a future key
    # the checked softmax entry: head 0 of "sat" puts most of its weight on the noun "cat"
    assert checks["softmax"].asks == "head 0, query “sat”, key “cat”"
    assert max(shown["blocks.0.attn.pattern"][0][last]) == shown["blocks.0.attn.pattern"][0][last][1]


def test_the_checker_explains_slips_and_handles_bad_input(model):
    prepared, shown, trace = printed(model, we.DEFAULT_SENTENCE)
    checks = we.checks(model, trace, prepared.words)
    softmax_check, scale, norm, mask = checks["softmax"], checks["scale"], checks["norm"], checks["mask"]
    assert we.check(f"{softmax_check.working.value:.3f}", softmax_check.working).kind == "right"
    assert "without exponentiating" in we.check("0.83", softmax_check.working).message
    assert "√3" in we.check(f"{scale.working.value * math.sqrt(3) / 3:.3f}", scale.working).message
    assert "LayerNorm" in we.check(f"{norm.working.slips[2][1]:.3f}", norm.working).message
    assert we.check("-inf", mask.working).kind == "right" and we.check("−∞", mask.working).kind == "right"
    assert we.check("0", mask.working).kind == "wrong"
    q = checks["scores"].working  # q·k = two nonzero terms: stopping after the first is spotted
    first_term = float(q.lines[0].split("=")[1].split()[0])
    assert "after 1 of 3 terms" in we.check(f"{first_term:.3f}", q).message
    assert we.check("12345", q).kind == "wrong" and "line by line" in we.check("12345", q).message
    for bad in ["", "   ", "abc", "🙂", "中文", "\x00\x07", "1.2.3", "x" * 5000, "1/0", "nan", "inf"]:
        verdict = we.check(bad, q)
        assert verdict.kind in ("empty", "unreadable"), (bad, verdict)
        assert len(verdict.message) < 300 and "\x00" not in verdict.message
    assert we.parse_number(" −1,5 ") == -1.5 and we.parse_number("2/3") == pytest.approx(2 / 3, abs=1e-12)


@pytest.mark.parametrize("text, words, notice", [
    ("", ["the", "cat", "sat"], "empty"),
    ("The Dog ran.", ["dog", "ran", "."], "last 3"),
    ("the 🙂 cat", ["the", "cat"], "🙂"),
    ("中文 \x00\x07 control", ["the", "cat", "sat"], "\\x00"),
    ("x" * 5000, ["the", "cat", "sat"], "…"),
    ("the bird sang", ["the"], "bird"),
    ("cat", ["cat"], None),
])
def test_any_text_becomes_known_words_with_a_notice(text, words, notice):
    prepared = we.prepare(text)
    assert prepared.words == words and prepared.ids == [we.VOCAB.index(w) for w in words]
    if notice is None:
        assert not prepared.notices
    else:
        assert any(notice in n for n in prepared.notices), prepared.notices
        assert all(len(n) < 400 for n in prepared.notices)


def test_the_page_claims(model):
    # "the" at position 0 gives cat and dog the same logit: nothing before it can break the tie
    _, shown, _ = printed(model, "the cat sat")
    assert abs(shown["logits"][0][1] - shown["logits"][0][2]) <= TOL
    # the first word's row never depends on the words after it
    _, other, _ = printed(model, "the dog ran")
    assert_close(other["blocks.0.resid_post"][0], shown["blocks.0.resid_post"][0], "row 0")
    # the toy's predictions make sense: noun after "the", the agreeing verb after a noun, "." after a verb
    best = lambda row: we.VOCAB[max(range(6), key=lambda i: row[i])]  # noqa: E731
    assert best(shown["probs"][1]) == "sat" and best(other["probs"][1]) == "ran" and best(shown["probs"][2]) == "."
    # no positions: head 1 (whose keys read only the "early" dimension) scores every key the same
    flat = we.build({"positions": [[0] * 6] * 3})
    _, trace = we.run(flat, we.prepare("the cat sat").ids)
    head1 = trace["blocks.0.attn.scores"][0, 1]
    assert float((head1 - head1[:, :1]).abs().max()) <= TOL
    even = torch.tril(torch.ones(3, 3, dtype=torch.float64)) / torch.arange(1, 4, dtype=torch.float64)[:, None]
    assert float((trace["blocks.0.attn.pattern"][0, 1] - even).abs().max()) <= TOL  # "averages the words evenly"
    # quiz: doubling a vector leaves its RMSNorm unchanged (up to eps)
    x = trace["blocks.0.resid_pre"][0]
    norm = model.blocks[0].norm1
    with torch.no_grad():
        assert float((norm(2 * x) - norm(x)).abs().max()) < 1e-4


def test_epsilon_changes_no_result_by_as_much_as_a_ten_thousandth():
    """The page says the norm's ε changes the results by less than 0.0001: checked on every 3-word
    sentence the toy can read (shorter ones are their first rows: no row sees the words after it)."""
    import itertools

    ids = torch.tensor(list(itertools.product(range(len(we.VOCAB)), repeat=3)))   # (216, 3)
    for tables in (None, {"positions": [[0] * 6] * 3}):  # the page's checkbox switches positions off
        with_eps, without = we.build(tables), we.build(tables)
        for module in without.modules():
            if hasattr(module, "eps"):
                module.eps = 0.0
        with torch.no_grad():
            _, a = with_eps.run_with_trace(ids)
            _, b = without.run_with_trace(ids)
        worst = max(float((a[k] - b[k]).abs().max()) for k in a if "masked" not in k)
        assert 0 < worst < 1e-4, worst


def test_number_table_prints_what_the_checker_reads():
    assert format_number(-math.inf) == "−∞" and format_number(-0.0001) == "0.000" and format_number(-1.25) == "−1.250"
    markup = table_html([[1.0, -math.inf]], ["the"], ["a", "b"], highlight=(0, 1))
    assert "−∞" in markup and "#fde68a" in markup


def test_each_step_has_one_small_check_function_in_page_order():
    assert tuple(we.CHECKS) == we.STEPS and len(we.STEPS) == 14
    model = we.build()
    prepared = we.prepare("the cat sat")
    _, trace = we.run(model, prepared.ids)
    hand = we.checks(model, trace, prepared.words)
    assert list(hand) == list(we.STEPS) and all(c.key == k for k, c in hand.items())
    assert all(step.__doc__ for step in we.CHECKS.values())


def test_softmax_gives_exactly_zero_long_before_minus_infinity():
    """Appendix A's quiz: in exact arithmetic only −∞ gets weight 0; float32 rounds to 0 much sooner."""
    gap = we.softmax_zero_gap(torch.float32)
    weight = lambda x: torch.softmax(torch.tensor([0.0, x], dtype=torch.float32), dim=-1)[1].item()  # noqa: E731
    assert 100 < gap < 110
    assert weight(-gap - 0.05) == 0.0 and weight(-gap + 0.05) > 0.0
    assert we.softmax_zero_gap(torch.float64) > 700                 # the toy itself runs in float64
