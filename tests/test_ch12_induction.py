"""Chapter 12's library, each piece checked against an independent computation: the induction,
previous-token and uniform scores against plain Python loops; per-position losses and the two
halves against log-softmax by hand; ablation through the hooks against zeroed output rows;
attention-only blocks (config mlp="none"); the training data; the continuation scores; the
shipped model's card against a fresh measurement of its stored weights; the background run."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from glassformer.analysis import emergence, induction
from glassformer.model import DecoderLM, build_model, hook_names, preset
from glassformer.toys import induction as toy


def causal_pattern(B, H, T, seed=0):
    """Random attention patterns: softmax of random scores with the causal mask."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, H, T, T, generator=g) * 2
    scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    return scores.softmax(-1)


@pytest.fixture(scope="module")
def attn_only():
    torch.manual_seed(0)
    return build_model(toy.default_config()).eval()


@pytest.fixture(scope="module")
def shipped():
    from glassformer.registry import load_model

    return load_model("induction")


def test_induction_score_is_the_mean_weight_on_the_token_after_the_earlier_occurrence():
    p = causal_pattern(2, 3, 10)
    period = 4
    for h in range(3):
        picked = [p[b, h, t, t - period + 1].item() for b in range(2) for t in range(period, 10)]
        assert abs(induction.induction_score(p, period)[h].item() - sum(picked) / len(picked)) < 1e-6


def test_previous_token_score_and_uniform_level_by_hand():
    p = causal_pattern(1, 2, 7, seed=3)
    for h in range(2):
        want = sum(p[0, h, t, t - 1].item() for t in range(1, 7)) / 6
        assert abs(induction.previous_token_score(p)[h].item() - want) < 1e-6
    T, period = 12, 5
    uniform = torch.ones(T, T).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]       # row t: 1/(t+1) on keys 0..t
    assert abs(induction.induction_score(uniform, period).item() - induction.uniform_induction(T, period)) < 1e-6
    assert abs(induction.uniform_induction(T, period) - sum(1 / (t + 1) for t in range(5, 12)) / 7) < 1e-12


def test_a_perfect_induction_pattern_scores_one_and_a_previous_token_pattern_zero():
    T, period = 8, 4
    perfect = torch.zeros(1, 1, T, T)
    for t in range(T):
        perfect[0, 0, t, t - period + 1 if t >= period else 0] = 1.0
    assert abs(induction.induction_score(perfect, period).item() - 1.0) < 1e-7
    prev = torch.zeros(1, 1, T, T)
    prev[0, 0, 0, 0] = 1.0
    for t in range(1, T):
        prev[0, 0, t, t - 1] = 1.0
    assert abs(induction.previous_token_score(prev).item() - 1.0) < 1e-7
    assert abs(induction.induction_score(prev, period).item()) < 1e-7   # t - 1 is never t - 3 here


def test_repeated_sequences():
    ids = induction.repeated_random(64, 5, seed=1, batch=3)
    assert ids.shape == (3, 10) and torch.equal(ids[:, :5], ids[:, 5:])
    assert torch.equal(ids, induction.repeated_random(64, 5, seed=1, batch=3))
    assert not torch.equal(ids, induction.repeated_random(64, 5, seed=2, batch=3))
    rep, n = induction.repeat_text([1, 2, 3, 4, 5, 6, 7], max_tokens=8)
    assert (rep, n) == ([4, 5, 6, 7, 4, 5, 6, 7], 4)
    with pytest.raises(ValueError):
        induction.repeat_text([1], 8)


def test_losses_and_halves_by_hand(attn_only):
    ids = induction.repeated_random(64, 6, seed=4, batch=2)            # (2, 12)
    losses = induction.per_position_loss(attn_only, ids)
    with torch.no_grad():
        logp = attn_only(ids).log_softmax(-1)
    for b in range(2):
        for t in range(11):
            assert abs(losses[b, t].item() + logp[b, t, ids[b, t + 1]].item()) < 1e-5
    first, repeat = induction.halves(losses, 6)
    by_hand_first = [losses[b, t].item() for b in range(2) for t in range(0, 5)]     # predicts tokens 1..5
    by_hand_repeat = [losses[b, t].item() for b in range(2) for t in range(6, 11)]   # predicts tokens 7..11
    assert abs(first - sum(by_hand_first) / 10) < 1e-6
    assert abs(repeat - sum(by_hand_repeat) / 10) < 1e-6
    assert abs(induction.in_context_score(losses, 6) - (repeat - first)) < 1e-9


def test_ablation_through_hooks_equals_zeroing_output_rows_and_stays_causal(attn_only):
    ids = induction.repeated_random(64, 8, seed=5, batch=2)
    off = [(0, 1)]
    clone = copy.deepcopy(attn_only)
    Dh = clone.config.head_dim
    with torch.no_grad():
        clone.blocks[0].attn.out.weight[1 * Dh:2 * Dh] = 0.0
    torch.testing.assert_close(induction.per_position_loss(attn_only, ids, off),
                               induction.per_position_loss(clone, ids))
    before = induction.head_scores(attn_only, ids, 8)
    after_l0 = induction.head_scores(attn_only, ids, 8, off)
    after_l1 = induction.head_scores(attn_only, ids, 8, [(1, 0)])
    assert torch.equal(after_l0.patterns[0], before.patterns[0])      # a head's output never feeds its own layer
    assert (after_l0.patterns[1] - before.patterns[1]).abs().max().item() > 1e-6   # but layer 1 reads it
    assert torch.equal(after_l1.patterns, before.patterns)             # the last layer's outputs feed no pattern


def test_attention_only_blocks_and_unchanged_models(tmp_path):
    from glassformer.checkpoint import load_model_folder, save_model_folder

    cfg = preset("tiny", mlp="none")
    model = build_model(cfg).eval()
    assert not [n for n in model.state_dict() if ".mlp." in n or ".norm2." in n]
    assert set(model.hook_points) == set(hook_names(cfg.n_layers, has_mlp=False))
    assert not [n for n in model.hook_points if "mlp" in n]
    ids = torch.tensor([[1, 2, 3, 4]])
    _, trace = model.run_with_trace(ids)
    torch.testing.assert_close(trace["blocks.0.resid_post"], trace["blocks.0.resid_mid"], atol=0, rtol=0)
    save_model_folder(model, toy.tokenizer(), tmp_path)
    again, _, _ = load_model_folder(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(again(ids), model(ids), atol=0, rtol=0)
    post = build_model(preset("tiny", mlp="none", pre_norm=False)).eval()
    _, trace = post.run_with_trace(ids)
    assert torch.equal(trace["blocks.1.resid_post"], trace["blocks.1.resid_mid"])
    full = DecoderLM(preset("tiny"))                                   # models with an MLP: as before
    assert {"blocks.0.mlp_in", "blocks.0.mlp.pre", "blocks.0.mlp_out"} <= set(full.hook_points)
    assert any(".mlp.up." in n for n in full.state_dict())


def test_training_batches_repeat_one_segment():
    gen = torch.Generator().manual_seed(0)
    ids, seg = toy.make_batch(16, 64, 64, gen, min_segment=8)
    for row, (a, b, L) in zip(ids, seg.tolist()):
        assert 8 <= L <= 32 and b >= a + L and b + L <= 64
        assert torch.equal(row[a:a + L], row[b:b + L])


def test_continuation_scores_by_hand(attn_only):
    text = "the Verona gentlemen remember Verona, " * 20
    cont = emergence.word_continuations(text, 6, k=3, prefix=2, context=10, min_word=6)
    assert all(len(c) == 10 and len(t) == 3 for c, t in cont.texts)
    tok = toy.tokenizer()
    cont.texts = [(c.replace(" ", "+").replace(",", "/"), t) for c, t in cont.texts]   # the toy knows no spaces
    got = emergence.continuation_scores(attn_only, tok, cont)
    right, nll = [], []
    for c, t in cont.texts:
        ids = torch.tensor([tok.encode(c + t)])
        with torch.no_grad():
            logp = attn_only(ids[:, :-1])[0].log_softmax(-1)
        row = []
        for j in range(3):
            pos = 10 + j - 1                                              # the prediction of character 10 + j
            row.append(int(logp[pos].argmax()) == tok.encode(t)[j])
            nll.append(-logp[pos, tok.encode(t)[j]].item())
        right.append(row)
    assert abs(got["loss"] - sum(nll) / len(nll)) < 1e-5
    assert abs(got["accuracy"] - sum(map(sum, right)) / 18) < 1e-9
    for j in range(1, 4):
        assert abs(got["exact"][j - 1] - sum(all(r[:j]) for r in right) / 6) < 1e-9


def test_the_shipped_model_measures_what_its_card_says(shipped):
    card = shipped.card["measured"]
    ev = card["eval"]
    ids = induction.repeated_random(shipped.model.config.vocab_size, ev["period"], ev["seed"], batch=ev["batch"])
    scores = induction.head_scores(shipped.model, ids, ev["period"])
    best = scores.best("induction")
    assert list(best) == [card["best_head"]["layer"], card["best_head"]["head"]]
    assert abs(scores.induction[best].item() - card["best_head"]["induction_score"]) < 1e-3
    assert scores.induction[best].item() >= 0.5 > 10 * induction.uniform_induction(2 * ev["period"], ev["period"])
    cut = induction.ablate(shipped.model, ids, ev["period"], [best], before=scores)
    assert abs(cut.repeat_loss_rise - card["best_head_off"]["repeat_loss_rise"]) < 1e-3
    assert cut.repeat_loss_rise >= 1.0
    comp = induction.composition_test(shipped.model, ids, ev["period"], scores)
    assert abs(comp.score_without_previous - card["composition"]["score_without_previous"]) < 1e-3
    assert shipped.card["bytes_total"] <= 2 * 2**20


def test_run_folder_from_the_command_line(tmp_path):
    assert toy.read_run(tmp_path)[0] == "none"
    code = toy.main(["--out", str(tmp_path), "--steps", "3", "--seed", "7", "--no-progress"])
    assert code == 0
    (tmp_path / "exit.json").write_text(json.dumps({"exit_code": code}))   # what live_training.main writes
    state, history, final = toy.read_run(tmp_path)
    assert state == "finished" and final["final"] == "done" and [r["step"] for r in history] == [0, 3]
    model, card, saved = toy.load(tmp_path)
    assert card["seed"] == 7 and saved == history and not math.isnan(history[-1]["loss_repeat"])


def test_the_background_runner_trains_the_induction_model(tmp_path):
    """The page's retraining path: live_training.launch(entry="induction") runs toys/induction.py's main
    in its own process, which writes history rows and exits 0; the lock is released."""
    import time

    from glassformer.course import live_training

    folder = tmp_path / "induction" / "live"
    info = live_training.launch(tmp_path, folder, ["--seed", "3", "--steps", "2"], entry="induction")
    assert "--entry" not in info["args"] and info["args"][:2] == ["--out", str(folder)]
    deadline = time.time() + 60
    while live_training.running(tmp_path) is not None and time.time() < deadline:
        time.sleep(0.1)
    state, history, final = toy.read_run(folder)
    assert state == "finished", (folder / "train.log").read_text()[-2000:]
    assert [r["step"] for r in history] == [0, 2] and final["final"] == "done"
    assert not live_training.lock_path(tmp_path).exists()
    with pytest.raises(ValueError):
        live_training.launch(tmp_path, folder, [], entry="python -c 'anything'")


def test_a_ladder_model_scores_what_the_card_says(shipped):
    from glassformer.analysis.ablation import held_out_text
    from glassformer.checkpoint import load_model_folder

    model, tok, card = load_model_folder(emergence.LADDER_DIR / "d16-L1")
    cont = emergence.word_continuations(held_out_text(), **emergence.CONTINUATIONS)
    got = emergence.continuation_scores(model, tok, cont)
    want = shipped.card["ladder"]["models"]["d16-L1"]["continuations"]
    assert abs(got["loss"] - want["loss"]) < 1e-3 and abs(got["accuracy"] - want["accuracy"]) < 1e-3
    assert all(abs(g - w) < 1e-3 for g, w in zip(got["exact"], want["exact"]))
    assert abs(emergence.training_compute(model.num_params(), card["tokens"]) - 6 * 5376 * card["tokens"]) < 1


def test_the_scores_run_on_a_gpt2_shaped_model():
    """GPT-2's family (learned positions, LayerNorm, tanh-GELU MLPs, 12 heads would be the real shape) with
    random weights: the same functions give scores in [0, 1] for every layer and head, and the composition
    test names heads of layers 0 and 1. (The page runs them on the real GPT-2 when it can be loaded.)"""
    torch.manual_seed(0)
    model = build_model(preset("gpt2", vocab_size=97, n_ctx=64, d_model=48, n_layers=3, n_heads=3)).eval()
    ids = induction.repeated_random(97, 16, seed=0, batch=2)
    scores = induction.head_scores(model, ids, 16)
    assert scores.induction.shape == scores.previous.shape == (3, 3)
    assert 0 <= scores.induction.min() and scores.induction.max() <= 1 and 0 <= scores.previous.min()
    comp = induction.composition_test(model, ids, 16, scores)
    assert comp.previous_head[0] == 0 and comp.induction_head[0] == 1 and comp.control_head != comp.previous_head
    assert math.isfinite(induction.in_context_score(induction.per_position_loss(model, ids), 16))
