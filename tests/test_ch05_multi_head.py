"""Chapter 5's claims, each checked against an independent computation:
head ablation through hooks = zeroing the head's rows of the output projection; the ablation
table = losses computed by hand; concatenation + W_O = the sum of the heads' writes; the KV
cache sizes = the formula 2·L·Hkv·Dh·bytes; the pattern profile = plain Python loops."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from glassformer.analysis import ablation, heads, kv_memory
from glassformer.model import DecoderLM, preset
from glassformer.registry import load_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DecoderLM(preset("tiny")).eval()


@pytest.fixture(scope="module")
def course():
    return load_model("course")


def weights_zeroed(model, heads_off):
    """An independent ablation: a copy of the model whose W_O has zero rows for those heads' inputs."""
    clone = copy.deepcopy(model)
    Dh = clone.config.head_dim
    with torch.no_grad():
        for layer, head in heads_off:
            clone.blocks[layer].attn.out.weight[head * Dh:(head + 1) * Dh] = 0.0  # weight is (H*Dh, D)
    return clone


def plain_loss(logits, ids):
    """Mean -log p(next token), with log_softmax and gather rather than F.cross_entropy."""
    logp = logits[0, :-1].log_softmax(-1)
    return -logp.gather(1, ids[0, 1:, None]).mean().item()


@pytest.mark.parametrize("heads_off", [[(0, 1)], [(0, 0), (1, 3)], [(1, 0), (1, 1), (1, 2)]])
def test_hook_ablation_equals_zeroing_the_output_projection_rows(tiny, heads_off):
    ids = torch.randint(0, 65, (2, 20), generator=torch.Generator().manual_seed(1))
    got = ablation.logits_without(tiny, ids, heads_off)
    with torch.no_grad():
        want = weights_zeroed(tiny, heads_off)(ids)
        normal = tiny(ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - normal).abs().max().item() > 1e-4  # the ablation really changed something
    with torch.no_grad():
        torch.testing.assert_close(tiny(ids), normal, atol=0, rtol=0)  # and nothing stays attached


def test_ablation_table_matches_losses_computed_independently(course):
    model = course.model.eval()
    ids = torch.tensor([course.tokenizer.encode("ROMEO:\nBut soft, what light through yonder window breaks?")])
    got_base, table = ablation.ablation_table(model, ids)
    with torch.no_grad():
        base = plain_loss(model(ids), ids)
    assert abs(got_base - base) < 1e-5
    with torch.no_grad():
        for layer, head in [(0, 0), (1, 2), (3, 3)]:
            without = plain_loss(weights_zeroed(model, [(layer, head)])(ids), ids)
            assert abs(table[layer, head].item() - (without - base)) < 1e-4
    assert table.shape == (model.config.n_layers, model.config.n_heads)
    assert table.abs().max().item() > 0.01  # switching heads off is measurable on the trained model


def test_cached_table_is_the_same_numbers_and_chunking_changes_nothing(course):
    model = course.model.eval()
    ids = ablation.validation_sample(course.tokenizer, windows=2, length=16)
    base, table = ablation.cached_ablation_table(model, tuple(map(tuple, ids.tolist())))
    assert abs(base - ablation.loss_without(model, ids)) < 1e-6
    torch.testing.assert_close(table, ablation.ablation_table(model, ids)[1])
    one_run_per_chunk = ablation.ablation_table(model, ids, budget_bytes=1)[1]  # 17 separate forward passes
    torch.testing.assert_close(table, one_run_per_chunk, atol=1e-5, rtol=1e-4)


def test_validation_sample_comes_from_the_held_out_tenth(course):
    from glassformer.data import load_text

    text, _ = load_text()
    held_out = text[int(len(text) * 0.9):]
    sample = ablation.validation_sample(course.tokenizer, windows=3, length=40, seed=5)
    assert sample.shape == (3, 40)
    for row in sample.tolist():
        assert course.tokenizer.decode(row) in held_out
    assert torch.equal(sample, ablation.validation_sample(course.tokenizer, windows=3, length=40, seed=5))


def test_concatenation_and_projection_is_the_sum_of_head_writes(course):
    model = course.model.eval()
    ids = torch.tensor([course.tokenizer.encode("To be, or not to be")])
    with torch.no_grad():
        _, trace = model.run_with_trace(ids, ["blocks.*.attn.z", "blocks.*.attn_out"])
        for i, block in enumerate(model.blocks):
            z = trace[f"blocks.{i}.attn.z"]                          # (1, H, T, Dh)
            writes = heads.head_writes(block.attn, z)                # (1, H, T, D)
            # independent: each head's slice of z times its rows of W_O, by explicit slicing
            Dh = z.shape[-1]
            by_hand = sum(z[:, h] @ block.attn.out.weight[h * Dh:(h + 1) * Dh] for h in range(z.shape[1]))
            torch.testing.assert_close(writes.sum(1), by_hand, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(writes.sum(1) + block.attn.out.bias, trace[f"blocks.{i}.attn_out"],
                                       atol=1e-5, rtol=1e-5)


def test_pattern_profile_matches_plain_python():
    g = torch.Generator().manual_seed(3)
    T, H = 7, 2
    scores = torch.randn(1, H, T, T, generator=g).masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    pattern = scores.softmax(-1)
    prof = heads.pattern_profile(pattern)
    p = pattern[0].tolist()
    for h in range(H):
        rows = range(1, T)
        prev = sum(p[h][t][t - 1] for t in rows) / (T - 1)
        own = sum(p[h][t][t] for t in rows) / (T - 1)
        first = sum(p[h][t][0] for t in rows) / (T - 1)
        dist = sum(sum(p[h][t][s] * (t - s) for s in range(t + 1)) for t in rows) / (T - 1)
        ent = sum(-sum(w * math.log2(w) for w in p[h][t][:t + 1]) for t in rows) / (T - 1)
        for key, want in [("previous", prev), ("self", own), ("first", first), ("distance", dist), ("entropy", ent)]:
            assert abs(prof[key][h].item() - want) < 1e-5, (key, h)


@pytest.mark.parametrize("name", ["course", "gpt2", "qwen3-0.6b"])
def test_kv_bytes_equal_the_formula_for_every_kv_head_count(name):
    cfg = preset(name)
    for hkv in kv_memory.kv_head_choices(cfg.n_heads):
        assert cfg.n_heads % hkv == 0
        formula = 2 * cfg.n_layers * hkv * cfg.head_dim * 4        # k and v, fp32
        assert kv_memory.kv_bytes(cfg, 1, n_kv_heads=hkv) == formula
        assert kv_memory.kv_bytes(cfg, cfg.n_ctx, n_kv_heads=hkv, device="meta") == formula * cfg.n_ctx
        assert kv_memory.kv_bytes(cfg, 3, n_kv_heads=hkv, dtype=torch.bfloat16) == formula // 2 * 3
    assert kv_memory.kv_head_choices(cfg.n_heads)[0] == 1 and kv_memory.kv_head_choices(cfg.n_heads)[-1] == cfg.n_heads
    with pytest.raises(ValueError):
        kv_memory.kv_bytes(cfg, 1, n_kv_heads=cfg.n_heads + 1)


def test_meta_and_real_caches_report_the_same_bytes_and_a_filled_cache_grows_per_token(course):
    cfg = course.model.config
    assert kv_memory.kv_bytes(cfg, cfg.n_ctx) == kv_memory.kv_bytes(cfg, cfg.n_ctx, device="meta")
    model = course.model.eval()
    ids = torch.tensor([course.tokenizer.encode("Now is the winter")])
    cache = model.new_cache(max_len=40)
    with torch.no_grad():
        model(ids, cache=cache)
    assert cache.nbytes() == kv_memory.kv_bytes(cfg, 1) * ids.shape[1]


def test_a_gqa_model_runs_and_its_cache_is_smaller_by_the_group_size():
    cfg = preset("tiny", n_kv_heads=2)
    model = DecoderLM(cfg).eval()
    cache = model.new_cache(max_len=10)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
    assert cache.nbytes() == 3 * kv_memory.kv_bytes(cfg, 1)
    assert kv_memory.kv_bytes(cfg, 1, n_kv_heads=cfg.n_heads) == 2 * kv_memory.kv_bytes(cfg, 1)


def test_kv_table_marks_each_shape_as_built_and_orders_mha_first():
    rows = kv_memory.kv_table({"qwen": preset("qwen3-0.6b"), "gpt2": preset("gpt2")})
    qwen = [r for r in rows if r.shape == "qwen"]
    assert [r.n_kv_heads for r in qwen] == [16, 8, 1]
    assert [r.kind.endswith("(as built)") for r in qwen] == [False, True, False]
    gpt2 = [r for r in rows if r.shape == "gpt2"]
    assert gpt2[0].n_kv_heads == 12 and gpt2[-1].n_kv_heads == 1 and "as built" in gpt2[0].kind
    assert kv_memory.human_bytes(1536) == "1.5 KiB" and kv_memory.human_bytes(100) == "100 B"


def test_next_token_probs_and_loss_agree_with_a_hand_computation(course):
    model = course.model.eval()
    ids = torch.tensor([course.tokenizer.encode("Good morrow")])
    with torch.no_grad():
        logits = model(ids)
    probs = ablation.next_token_probs(logits, ids)[0]
    for t in range(ids.shape[1] - 1):
        row = [math.exp(v) for v in logits[0, t].tolist()]
        assert abs(probs[t].item() - row[ids[0, t + 1]] / sum(row)) < 1e-5
    mean_nll = -sum(math.log(p) for p in probs.tolist()) / len(probs)
    assert abs(ablation.next_token_loss(logits, ids) - mean_nll) < 1e-4
    with pytest.raises(ValueError):
        ablation.next_token_loss(logits[:, :1], ids[:, :1])


def test_describe_labels_follow_the_profile():
    def profile(previous=0.0, own=0.0, first=0.0, distance=3.0):
        return {"previous": torch.tensor([previous]), "self": torch.tensor([own]), "first": torch.tensor([first]),
                "distance": torch.tensor([distance]), "entropy": torch.tensor([1.0])}

    assert heads.describe(profile(previous=0.7), 0) == "previous token"
    assert heads.describe(profile(own=0.6), 0) == "itself"
    assert heads.describe(profile(first=0.9), 0) == "first token"
    assert heads.describe(profile(distance=2.2), 0) == "local, ~2 back"
    assert heads.describe(profile(distance=17.6), 0) == "long range, ~18 back"


def test_qwen3s_full_context_is_its_documented_length_not_the_largest_position_its_config_accepts():
    qwen = preset("qwen3-0.6b")
    assert qwen.n_ctx == 40_960 and kv_memory.documented_context(qwen) == 32_768
    (own,) = [r for r in kv_memory.kv_table({"Qwen3-0.6B": qwen}) if "as built" in r.kind]
    assert own.n_ctx == 32_768 and own.full_context == 2 * 28 * 8 * 128 * 4 * 32_768      # 7.0 GiB in fp32
    assert kv_memory.human_bytes(own.full_context) == "7.0 GiB"
    assert kv_memory.human_bytes(kv_memory.kv_bytes(qwen, qwen.n_ctx, device="meta")) == "8.8 GiB"
    assert kv_memory.documented_context(preset("gpt2")) == 1024                          # nothing to correct
    assert kv_memory.documented_context(preset("qwen3-0.6b", n_layers=2)) == 40_960      # another shape
