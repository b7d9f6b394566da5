"""Chapter 7's claims: the residual stream and logit lens, cross-attention, the encoder–decoder and
the shipped string reverser. Every check compares with an independent computation."""

import math

import numpy as np
import pytest
import torch

from glassformer.analysis import logit_lens as L
from glassformer.toys import reverser as R
from glassformer.model import DecoderLM, preset
from glassformer.model.cross_attention import BidirectionalAttention, CrossAttention
from glassformer.model.seq2seq import EncoderDecoder, Seq2SeqConfig, encoder_decoder_masks
from glassformer.registry import load_model


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a busy 2-core machine extra threads only add hand-off waits."""
    with R.one_thread():
        yield


@pytest.fixture(scope="module")
def course():
    return load_model("course")


def test_the_last_depth_of_the_logit_lens_is_the_models_own_output(course):
    for model, ids in [(course.model, torch.tensor(course.tokenizer.encode("ROMEO:\nBut soft, what light"))),
                       (DecoderLM(preset("tiny")).eval(), torch.tensor([5, 9, 1, 33, 2, 2, 7]))]:
        with torch.no_grad():
            real = model(ids[None])[0].float()                                 # plain forward, no hooks
        stream, _ = L.residual_stream(model, ids)
        assert stream.shape == (model.config.n_layers + 1, len(ids), model.config.d_model)
        diff = (L.lens_logits(model, stream[-1]) - real).abs().max().item()
        assert diff < 1e-4, diff
        lens = L.logit_lens(model, ids)
        assert abs(lens.max_diff) < 1e-4
        assert torch.equal(lens.final_ids, real.argmax(-1))
        # depth 0 is the embedding the model looks up (plus learned positions for the tiny model)
        with torch.no_grad():
            assert (stream[0] - model.embed(ids[None])[0]).abs().max().item() < 1e-6


def test_first_and_settled_depths_match_a_plain_python_scan(course):
    ids = torch.tensor(course.tokenizer.encode("First Citizen:\nBefore we proceed any further, hear me speak."))
    lens = L.logit_lens(course.model, ids, k=2)
    stream, logits = L.residual_stream(course.model, ids)
    probs = torch.softmax(L.lens_logits(course.model, stream), -1)             # (L+1, T, V)
    tops = probs.argmax(-1).tolist()
    for t in range(len(ids)):
        final = int(logits[t].argmax())
        column = [tops[d][t] == final for d in range(len(tops))]
        assert column[-1]                                                       # the last depth is the answer
        assert int(lens.first_top[t]) == column.index(True)
        settled = len(column)
        while settled > 0 and column[settled - 1]:
            settled -= 1
        assert int(lens.settled[t]) == settled
        assert max(abs(probs[d, t, final].item() - lens.final_probs[d, t].item()) for d in range(len(tops))) < 1e-5


def test_stream_norms_are_euclidean_lengths():
    x = torch.randn(3, 4, 8)
    expected = np.sqrt((x.numpy().astype(np.float64) ** 2).sum(-1))
    assert np.abs(L.stream_norms(x).numpy() - expected).max() < 1e-5


def reference_attention(x, memory, att: CrossAttention, mask=None):
    """softmax(Q K^T / sqrt(d)) V written out in numpy, head by head, from the module's weights."""
    H, Dh = att.n_heads, att.head_dim
    wq, bq = att.q.weight.detach().numpy(), att.q.bias.detach().numpy()
    wkv, bkv = att.kv.weight.detach().numpy(), att.kv.bias.detach().numpy()
    wo, bo = att.out.weight.detach().numpy(), att.out.bias.detach().numpy()
    Q = x @ wq + bq
    K = memory @ wkv[:, :H * Dh] + bkv[:H * Dh]
    V = memory @ wkv[:, H * Dh:] + bkv[H * Dh:]
    heads = []
    for h in range(H):
        s = slice(h * Dh, (h + 1) * Dh)
        scores = Q[:, s] @ K[:, s].T / math.sqrt(Dh)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        w = w / w.sum(-1, keepdims=True)
        heads.append(w @ V[:, s])
    return np.concatenate(heads, -1) @ wo + bo


def test_cross_attention_matches_an_explicit_softmax_reference():
    torch.manual_seed(0)
    att = CrossAttention(d_model=12, n_heads=3)
    for p in att.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, memory = torch.randn(1, 5, 12), torch.randn(1, 7, 12)                   # T = 5 queries, S = 7 keys
    mask = torch.rand(5, 7) > 0.3
    mask[:, 0] = True                                                           # every row keeps a key
    for m in (None, mask):
        with torch.no_grad():
            ours = att(x, memory, m)[0].numpy()
        ref = reference_attention(x[0].numpy(), memory[0].numpy(), att, None if m is None else m.numpy())
        assert np.abs(ours - ref).max() < 1e-5, np.abs(ours - ref).max()


def test_bidirectional_attention_sees_the_future_and_causal_attention_does_not():
    torch.manual_seed(1)
    model = EncoderDecoder(Seq2SeqConfig(vocab_size=10, n_ctx=8, d_model=16, n_heads=2, d_mlp=32)).eval()
    a, b = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3, 9]])           # differ only at the last position
    with torch.no_grad():
        assert (model.encode(a)[0, 0] - model.encode(b)[0, 0]).abs().max() > 1e-4   # encoder: position 0 changes
        memory = model.encode(a)
        la, lb = model.decode(a, memory), model.decode(b, memory)
    assert (la[0, :3] - lb[0, :3]).abs().max().item() < 1e-6                  # decoder: earlier positions don't
    assert isinstance(model.encoder[0].attn, BidirectionalAttention)


def test_masks_for_the_three_designs_by_hand():
    m = encoder_decoder_masks(3, 2)
    assert m["decoder-only"].int().tolist() == [[1 if k <= q else 0 for k in range(5)] for q in range(5)]
    assert m["encoder"].all() and m["encoder"].shape == (3, 3)
    assert m["enc-dec self"].int().tolist() == [[1, 0], [1, 1]]
    assert m["enc-dec cross"].all() and m["enc-dec cross"].shape == (2, 3)


def test_cross_attention_hook_points_record_patterns_that_sum_to_one():
    model, _ = R.load_reverser()
    src, dec_in, _target = R.batch(["hello", "world"])
    _, trace = model.run_with_trace(src, dec_in, names=["decoder.*.cross_attn.*", "encoder.0.attn.pattern"])
    c = model.config
    p = trace["decoder.1.cross_attn.pattern"]
    assert p.shape == (2, c.n_heads, 6, 5)
    assert (p.sum(-1) - 1).abs().max().item() < 1e-5
    assert trace["decoder.0.cross_attn.k"].shape == (2, c.n_heads, 5, c.d_model // c.n_heads)
    assert trace["encoder.0.attn.pattern"].shape == (2, c.n_heads, 5, 5)
    assert (trace["encoder.0.attn.pattern"][..., 0, 1:] > 0).all()             # position 0 attends forward


def test_held_out_strings_are_never_training_strings():
    train = R.random_words(2000, 3, split="train")
    test = R.random_words(2000, 3)
    assert not any(R.held_out(w) for w in train) and all(R.held_out(w) for w in test)
    assert not set(train) & set(test)
    assert all(R.MIN_LEN <= len(w) <= R.MAX_LEN and set(w) <= set(R.ALPHABET) for w in test)


def test_the_shipped_reverser_is_at_least_95_percent_exact_on_held_out_strings():
    model, card = R.load_reverser()
    words = R.random_words(400, seed=777)
    acc, misses = R.accuracy(model, words)
    # independent check of the scoring: count exact matches ourselves
    right = sum(R.reverse(model, w) == w[::-1] for w in words[:60])
    assert right == 60 - sum(1 for w, _ in misses if w in set(words[:60]))
    assert acc >= 0.95, (acc, misses[:10])
    assert card["recipe"]["steps"] > 0 and card["held_out_eval"]["exact_match"] >= 0.95
    size = sum(f.stat().st_size for f in R.ASSET_DIR.iterdir())
    assert size < 1_000_000, size


def test_problem_rejects_what_the_model_never_saw():
    assert R.problem("hello") is None
    assert "characters" in R.problem("ab") and "characters" in R.problem("abcdefghijk")
    assert "other than" in R.problem("Hello") and "other than" in R.problem("héllo🙂")
    with pytest.raises(ValueError):
        R.reverse(R.load_reverser()[0], "")


def test_mirror_weight_is_one_on_a_perfect_anti_diagonal_and_cross_attention_carries_the_input():
    S = 4
    perfect = torch.zeros(1, 1, S + 1, S)
    for t in range(S):
        perfect[0, 0, t, S - 1 - t] = 1.0
    perfect[0, 0, S] = 1 / S
    assert abs(R.mirror_weight(perfect).item() - 1.0) < 1e-6
    assert abs(R.mirror_weight(torch.full((1, 1, S + 1, S), 1 / S)).item() - 1 / S) < 1e-6
    model, _ = R.load_reverser()
    outs = {R.reverse(model, w, cross_attention=False) for w in ["abcdef", "zyxwvu", "qqqqqq"]}
    assert len(outs) == 1                                                       # blind to the input: same output


def test_greedy_decoding_equals_a_plain_argmax_loop_over_the_full_forward():
    model, _ = R.load_reverser()
    for word in ["abc", "hello", "abcdefghij"]:
        target = [R.BOS]
        with torch.no_grad():
            while len(target) <= model.config.n_ctx:
                nxt = int(model(torch.tensor([R.encode(word)]), torch.tensor([target]))[0, -1].argmax())
                if nxt == R.EOS:
                    break
                target.append(nxt)
        assert model.greedy(torch.tensor([R.encode(word)]), R.BOS, R.EOS)[0] == target[1:]
