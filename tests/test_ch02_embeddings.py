"""Chapter 2's library: the bigram model (bigram.py), the embedding-table measurements
(embedding_space.py) and parameter counts from a config (param_count.py), each checked against
an independent reference: plain-Python counting and loops, numpy, models built with random
weights, and Hugging Face transformers' own model classes."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from glassformer.toys import bigram
from glassformer.analysis import embedding_space
from glassformer.model import DecoderLM, preset
from glassformer.analysis.param_count import parameter_breakdown


# --- parameter counts ---------------------------------------------------------------------------

@pytest.mark.parametrize("config", [
    preset("course"),
    preset("tiny"),
    preset("tiny", tie_embeddings=False, position="sinusoidal", norm="rmsnorm"),
    preset("gpt2", vocab_size=97, n_ctx=32, d_model=64, n_layers=2, n_heads=4),
    preset("qwen3-0.6b", vocab_size=97, n_ctx=32, d_model=64, n_layers=2, head_dim=16, d_mlp=96),
    preset("course", n_kv_heads=2, qk_norm=True, tie_embeddings=False, norm="layernorm", mlp="gelu",
           position="learned", attn_out_bias=False, mlp_bias=False),
], ids=["course", "tiny", "untied-sinusoidal", "gpt2-shaped", "qwen3-shaped", "gqa-qknorm-untied"])
def test_parameter_breakdown_counts_what_a_built_model_holds(config):
    model = DecoderLM(config)
    assert sum(parameter_breakdown(config).values()) == sum(p.numel() for p in model.parameters())
    parts = parameter_breakdown(config)
    assert parts["token embedding"] == model.embed.tok.weight.numel()
    assert parts["unembedding"] == (0 if config.tie_embeddings else model.unembed.weight.numel())


def test_real_sized_counts_match_hugging_face_models_built_on_the_meta_device():
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen3Config, Qwen3ForCausalLM

    def hf_count(model) -> int:  # tied weights are one tensor: count each distinct parameter once
        return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

    with torch.device("meta"):
        gpt2 = GPT2LMHeadModel(GPT2Config())
        qwen = Qwen3ForCausalLM(Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                                            num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                                            head_dim=128, tie_word_embeddings=True))
    assert sum(parameter_breakdown(preset("gpt2")).values()) == hf_count(gpt2)
    assert sum(parameter_breakdown(preset("qwen3-0.6b")).values()) == hf_count(qwen)
    assert parameter_breakdown(preset("gpt2"))["token embedding"] == gpt2.transformer.wte.weight.numel()


# --- the bigram model ---------------------------------------------------------------------------

def test_counts_and_count_entropy_match_plain_python():
    text = "to be or not to be that is the question"
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text])
    pairs = Counter(zip(text, text[1:]))
    firsts = Counter(text[:-1])
    table = bigram.counts(ids, len(vocab))
    for (a, b), n in pairs.items():
        assert table[vocab.index(a), vocab.index(b)] == n
    assert int(table.sum()) == len(text) - 1
    by_hand = -sum(n / (len(text) - 1) * math.log(n / firsts[a]) for (a, _), n in pairs.items())
    assert abs(bigram.count_entropy(table) - by_hand) < 1e-12


def test_a_bigram_sees_only_the_current_token():
    model = bigram.Bigram(vocab_size=11, d_model=8)
    ids = torch.tensor([[1, 2, 3, 4]])
    changed = torch.tensor([[7, 9, 3, 4]])  # different earlier tokens, same last two
    with torch.no_grad():
        assert torch.equal(model(ids)[0, 2:], model(changed)[0, 2:])
        p = model.next_token_probs(4)
        assert abs(p.sum().item() - 1) < 1e-6 and torch.allclose(p, model(ids)[0, 3].softmax(-1))


@pytest.fixture(scope="module")
def shakespeare_chars():
    from glassformer.data import load_text, train_val_split
    from glassformer.registry import load_model

    tok = load_model("course").tokenizer
    text, _ = load_text()
    return train_val_split(torch.tensor(tok.encode(text, errors="skip"), dtype=torch.long)), tok.vocab_size


def test_trained_bigram_approaches_the_count_based_optimum(shakespeare_chars):
    (train, val), V = shakespeare_chars
    best = bigram.count_entropy(bigram.counts(train, V))   # no bigram model can do better on `train`
    run = bigram.train_bigram(train, V, 128, steps=600, seed=0)
    trained = bigram.mean_loss(run.model, train, 256)      # the whole training split
    assert trained > best - 1e-3, (trained, best)
    assert abs(trained - best) < 0.03, (trained, best)
    assert len(run.losses) == 600 and run.losses[-1][0] == 600
    assert abs(bigram.mean_loss(run.model, val, 256) - trained) < 0.1  # a bigram barely overfits 1M characters
    counted = bigram.mean_loss(bigram.CountBigram(bigram.counts(train, V)), train, 256)
    assert abs(counted - best) < 2e-3, (counted, best)  # the counting model scores its own entropy


def test_count_bigram_probabilities_by_hand():
    table = torch.tensor([[0, 2], [1, 1]])
    model = bigram.CountBigram(table, alpha=0.5)
    p = model(torch.tensor([[0, 1]]))[0].exp()
    assert torch.allclose(p, torch.tensor([[0.5 / 3, 2.5 / 3], [0.5, 0.5]]))


def test_mean_loss_scores_the_same_targets_as_train_evaluate():
    from glassformer.train import evaluate

    torch.manual_seed(0)
    model = DecoderLM(preset("tiny")).eval()
    data = torch.randint(0, 65, (64 * 9 + 17,))
    assert abs(bigram.mean_loss(model, data, 64) - evaluate(model, data, None)) < 1e-5
    x, y = bigram.spread_windows(data, 64, 4)
    assert x.shape == y.shape == (4, 64) and torch.equal(x[:, 1:], y[:, :-1])
    assert int(x[0, 0]) == int(data[0]) and torch.equal(y[-1], data[-64:])  # first and last windows at the ends
    logits = model(x)
    by_hand = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), y.reshape(-1)).item()
    assert abs(bigram.mean_loss(model, data, 64, windows=4) - by_hand) < 1e-5


def test_window_losses_are_what_mean_loss_averages_and_loss_gap_spreads_over_windows_by_hand():
    torch.manual_seed(0)
    model = DecoderLM(preset("tiny")).eval()
    data = torch.randint(0, 65, (64 * 9 + 17,))
    for windows in (None, 5):
        rows = bigram.window_losses(model, data, 64, windows)
        assert rows.shape == ((9 if windows is None else 5), 64)
        assert abs(rows.double().mean().item() - bigram.mean_loss(model, data, 64, windows)) < 1e-6
    x, y = bigram.spread_windows(data, 64, 5)
    logp = model(x).float().log_softmax(-1)
    by_hand = -logp.gather(-1, y[..., None])[..., 0]                       # (5, 64): -ln p(target)
    torch.testing.assert_close(bigram.window_losses(model, data, 64, 5), by_hand, atol=1e-5, rtol=0)
    # the gap: the mean of B - A over every target; its standard error from the 5 window means
    a = torch.rand(5, 64)
    b = a + torch.tensor([0.1, 0.3, -0.2, 0.5, 0.0])[:, None] + 0.01 * torch.randn(5, 64)
    gap = bigram.loss_gap(a, b)
    diffs = (b - a).double()
    means = [float(row.mean()) for row in diffs]
    centre = sum(means) / 5
    stderr = math.sqrt(sum((m - centre) ** 2 for m in means) / 4) / math.sqrt(5)
    assert abs(gap.mean - float(diffs.mean())) < 1e-12 and abs(gap.stderr - stderr) < 1e-9
    assert (gap.windows, gap.tokens) == (5, 320)
    assert gap.within_noise() == (abs(gap.mean) < 2 * stderr)
    assert bigram.loss_gap(a, a + 1.0).within_noise() is False      # the same shift in every window: no spread
    assert bigram.loss_gap(a[:1], b[:1]).within_noise()             # one window: nothing to judge the spread by
    with pytest.raises(ValueError):
        bigram.loss_gap(a, b[:4])


# --- the embedding table ------------------------------------------------------------------------

def plain_cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_nearest_and_cosine_matrix_match_plain_python():
    torch.manual_seed(1)
    table = torch.randn(12, 5)
    rows = table.tolist()
    brute = sorted(((plain_cosine(rows[3], rows[j]), j) for j in range(12) if j != 3), reverse=True)[:4]
    got = embedding_space.nearest(table, 3, k=4)
    assert [j for j, _ in got] == [j for _, j in brute]
    assert all(abs(c - b) < 1e-5 for (_, c), (b, _) in zip(got, brute))
    cos = embedding_space.cosine_matrix(table)
    assert abs(cos[2, 7].item() - plain_cosine(rows[2], rows[7])) < 1e-5
    assert abs(cos[4, 4].item() - 1) < 1e-5


def test_pca_matches_numpy_eigendecomposition_of_the_covariance():
    torch.manual_seed(2)
    table = torch.randn(40, 6) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    coords, explained = embedding_space.pca_2d(table)
    x = table.numpy().astype(np.float64)
    x = x - x.mean(0)
    values, vectors = np.linalg.eigh(x.T @ x)
    order = values.argsort()[::-1]
    assert np.allclose(explained.numpy(), values[order[:2]] / values.sum(), atol=1e-5)
    for k in range(2):  # each direction is defined up to its sign
        reference = x @ vectors[:, order[k]]
        sign = np.sign(reference @ coords[:, k].numpy())
        assert np.allclose(coords[:, k].numpy(), sign * reference, atol=1e-3)


def test_group_similarity_matches_plain_python_loops():
    torch.manual_seed(3)
    table = torch.randn(9, 4)
    rows = table.tolist()
    cos = embedding_space.cosine_matrix(table)
    a, b = [0, 2, 5], [1, 3, 4, 8]
    r = embedding_space.group_similarity(cos, a, b)
    within = [plain_cosine(rows[i], rows[j]) for i in a for j in a if i != j]
    between = [plain_cosine(rows[i], rows[j]) for i in a for j in b]
    assert abs(r.within_a - sum(within) / len(within)) < 1e-5
    assert abs(r.between - sum(between) / len(between)) < 1e-5
    hits = sum(max((j for j in a + b if j != i), key=lambda j: plain_cosine(rows[i], rows[j])) in a for i in a)
    assert abs(r.nearest_same - hits / len(a)) < 1e-6
    assert abs(r.nearest_chance - 2 / 6) < 1e-12
    assert embedding_space.group_similarity(cos, [0], b) is None  # a group of one has no pairs


def test_token_classes_on_characters_and_bpe_pieces():
    groups = embedding_space.token_classes(["a", "b", "E", "3", "!", " ", "\n", " the", "The", "42", "\ufffd"])
    assert groups["vowels"] == [0] and groups["consonants"] == [1]
    assert groups["upper-case"] == [2, 8] and groups["lower-case"] == [0, 1, 7]
    assert groups["digits"] == [3, 9] and groups["punctuation"] == [4] and groups["whitespace"] == [5, 6]


# --- the chapter's claims on the course model ---------------------------------------------------

def test_course_model_is_tied_and_its_logits_are_the_final_vector_times_the_table():
    from glassformer.registry import load_model

    model = load_model("course").model
    assert model.unembed.weight is model.embed.tok.weight
    ids = torch.tensor([[5, 17, 40, 1, 2]])
    logits, trace = model.run_with_trace(ids, names=["final_norm"])
    h = trace["final_norm"][0].double()                                   # (T, D)
    by_hand = h @ model.embed.tok.weight.detach().double().T              # (T, V)
    assert (by_hand - logits[0].double()).abs().max() < 1e-4


def test_course_model_lower_case_vowels_cluster():
    """The page's measured answer, checked here without the library's group code: every lower-case
    vowel's nearest lower-case letter (cosine, plain Python) is another vowel."""
    from glassformer.registry import load_model

    loaded = load_model("course")
    rows = loaded.model.embed.tok.weight.detach().tolist()
    ids = loaded.tokenizer.ids
    letters = "abcdefghijklmnopqrstuvwxyz"
    for v in "aeiou":
        best = max((c for c in letters if c != v), key=lambda c: plain_cosine(rows[ids[v]], rows[ids[c]]))
        assert best in "aeiou", (v, best)
