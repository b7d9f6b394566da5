"""Chapter 11's library parts, each against an independent computation: the scaling-law fit (an exact
power law recovered, its uncertainty against the spread of refits, predictions against finite
differences, the compute-optimal split against a brute-force search), the page's "one more run" (the
same recipe as the table's runs, through the real `glassformer train` command line), and the routing
measures (the hook points read directly, the training loop's load measure, shares counted by hand).

Tolerances: 1e-6 relative on an exact, noise-free law (the fit is a few Levenberg-Marquardt steps
from the optimum of a float64 least-squares problem); the Monte Carlo check of the standard errors
allows the ratio of quoted to observed spread to be 0.6-1.6 (60 refits: the observed spread itself
is uncertain by ~10%).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from glassformer.analysis import experts as ex
from glassformer.analysis import scaling as sc
from glassformer.model import build_model, preset

SIZES = np.array([3.6e3, 1.4e4, 2.6e4, 6.4e4, 1.6e5, 3.1e5, 8.0e5])
BUDGETS = np.array([2.5e5, 4.9e5, 9.8e5, 2.0e6, 3.9e6])


# --- the fit ---------------------------------------------------------------------------------------

def test_an_exact_power_law_is_recovered_with_no_uncertainty():
    one = sc.fit_loss_vs_n(SIZES, 1.5 + 40.0 * SIZES ** -0.4)
    assert np.allclose(one.values, (1.5, 40.0, 0.4), rtol=1e-6), one.values
    assert max(one.errors) < 1e-6 and one.rms < 1e-9
    n, d = (a.ravel() for a in np.meshgrid(SIZES, BUDGETS))
    two = sc.fit_loss_vs_n_d(n, d, 1.2 + 30.0 * n ** -0.35 + 200.0 * d ** -0.3)
    assert np.allclose(two.values, (1.2, 30.0, 0.35, 200.0, 0.3), rtol=1e-6), two.values
    assert two.rms < 1e-9
    assert two.predict(5e4, 1e6) == pytest.approx(1.2 + 30.0 * 5e4 ** -0.35 + 200.0 * 1e6 ** -0.3, rel=1e-9)


def test_the_quoted_standard_errors_match_the_spread_of_refits_on_fresh_noise():
    """Refit the same law with 60 draws of noise (sd 0.01): the standard deviation of the fitted α and E
    across refits is what the covariance-based errors claim for a single fit."""
    rng = np.random.default_rng(0)
    truth = 1.5 + 40.0 * SIZES ** -0.4
    fits = [sc.fit_loss_vs_n(SIZES, truth + rng.normal(0, 0.01, SIZES.shape)) for _ in range(60)]
    for name in ("alpha", "E"):
        observed = np.std([f[name] for f in fits], ddof=1)
        quoted = np.sqrt(np.mean([f.error(name) ** 2 for f in fits]))
        assert 0.6 < quoted / observed < 1.6, (name, quoted, observed)
    inside = np.mean([abs(f["alpha"] - 0.4) <= 2 * f.error("alpha") for f in fits])
    assert inside >= 0.8, inside       # ~95% expected for a 2-standard-error interval


def test_prediction_error_is_the_covariance_seen_through_finite_differences():
    rng = np.random.default_rng(1)
    n, d = (a.ravel() for a in np.meshgrid(SIZES, BUDGETS))
    fit = sc.fit_loss_vs_n_d(n, d, 1.2 + 30.0 * n ** -0.35 + 200.0 * d ** -0.3 + rng.normal(0, 0.01, n.shape))
    N, D = 5e4, 7e5

    def law(values):
        E, A, alpha, B, beta = values
        return E + A * N ** -alpha + B * D ** -beta

    grad = []
    for i, v in enumerate(fit.values):
        h = 1e-6 * max(abs(v), 1e-3)
        up, down = list(fit.values), list(fit.values)
        up[i], down[i] = v + h, v - h
        grad.append((law(up) - law(down)) / (2 * h))
    grad = np.array(grad)
    expected = math.sqrt(grad @ fit.covariance @ grad)
    assert fit.prediction_error(N, D) == pytest.approx(expected, rel=1e-4)
    assert fit.new_run_error(N, D) == pytest.approx(math.hypot(expected, fit.scatter), rel=1e-4)
    assert fit.scatter == pytest.approx(math.sqrt(fit.rss / (fit.points - 5)))


def test_too_few_runs_are_refused():
    with pytest.raises(ValueError, match="at least 5 runs"):
        sc.fit_loss_vs_n_d(SIZES[:4], BUDGETS[:4], np.ones(4))


def test_the_compute_optimal_split_is_the_minimum_a_brute_force_search_finds():
    n, d = (a.ravel() for a in np.meshgrid(SIZES, BUDGETS))
    fit = sc.fit_loss_vs_n_d(n, d, 1.2 + 30.0 * n ** -0.35 + 200.0 * d ** -0.3)
    for compute in (1e10, 1e12, 1e14):
        n_opt, d_opt = sc.compute_optimal(fit, compute)
        grid = np.geomspace(1e1, 1e10, 200_001)
        best = grid[np.argmin(fit.predict(grid, compute / (6 * grid)))]
        assert n_opt == pytest.approx(best, rel=2e-4) and 6 * n_opt * d_opt == pytest.approx(compute)


def test_the_compute_frontier_by_hand():
    runs = [{"compute": 1, "val_loss": 3.0, "k": "a"}, {"compute": 2, "val_loss": 3.2, "k": "b"},
            {"compute": 2, "val_loss": 2.9, "k": "c"}, {"compute": 4, "val_loss": 2.95, "k": "d"},
            {"compute": 8, "val_loss": 2.5, "k": "e"}]
    assert [r["k"] for r in sc.compute_frontier(runs)] == ["a", "c", "e"]


# --- one more run, from the page ----------------------------------------------------------------

@pytest.mark.parametrize("shape,tokens", [((40, 2, 2), 737_280), ((16, 1, 2), 245_760), ((80, 4, 4), 491_520)])
def test_the_page_trains_the_tables_recipe_through_the_command_line(shape, tokens, tmp_path, monkeypatch):
    """`glassformer train` with run_arguments builds run_config's TrainConfig, but for the three fields
    that have no flag, which cannot change the final weights (a single evaluation, at the last step)."""
    from glassformer import train

    seen = {}

    def fake_train(cfg, out, **kwargs):
        seen["cfg"] = cfg
        return {"steps": 0}

    monkeypatch.setattr(train, "train", fake_train)
    assert train.main(sc.run_arguments(*shape, tokens) + ["--out", str(tmp_path / "run"), "--no-progress"]) == 0
    ours, table = seen["cfg"], sc.run_config(*shape, tokens)
    assert ours.model == table.model
    differ = {f.name for f in dataclasses.fields(table) if getattr(ours, f.name) != getattr(table, f.name)}
    assert differ <= {"eval_batches", "keep_best", "sample_tokens"}, differ
    assert ours.eval_interval == ours.max_steps == tokens // (sc.BATCH * sc.CONTEXT)   # one evaluation: the last step


def test_page_sizes_are_new_and_lie_inside_the_tables_range():
    counts = {name: sc.shape_counts(*shape).non_embedding for name, shape in (sc.SIZES | sc.PAGE_SIZES).items()}
    table = [counts[s] for s in sc.SIZES]
    for name in sc.PAGE_SIZES:
        assert name not in sc.SIZES and counts[name] not in table
        assert min(table) < counts[name] < max(table), name


def test_expected_seconds_interpolate_the_tables_speeds():
    runs = [{"non_embedding_parameters": 1_000, "tokens_per_s": 40_000, "run_seconds": 12.0, "train_seconds": 10.0},
            {"non_embedding_parameters": 100_000, "tokens_per_s": 10_000, "run_seconds": 14.0, "train_seconds": 10.0}]
    # halfway on a log axis (10,000 parameters): the geometric mean of the speeds, 20,000 tokens/s; + 3 s overhead
    assert sc.expected_seconds(runs, 10_000, 200_000) == pytest.approx(200_000 / 20_000 + 3.0)
    assert sc.expected_seconds(runs, 10, 40_000) == pytest.approx(1.0 + 3.0)     # below the table: its nearest speed


# --- routing on a text ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixture():
    torch.manual_seed(0)
    return build_model(preset("tiny", n_ctx=32, d_model=32, n_heads=2, mlp="swiglu", position="rope", norm="rmsnorm",
                              mlp_bias=False, n_experts=4, experts_per_token=2, d_expert=24)).eval()


def test_route_reads_the_hook_points_window_by_window(mixture):
    ids = torch.randint(0, 65, (32 * 3 + 5,), generator=torch.Generator().manual_seed(0))
    r = ex.route(mixture, ids, batch_size=2)
    assert r.probs.shape == (2, ids.numel(), 4) and r.experts.shape == r.gates.shape == (2, ids.numel(), 2)
    for start, stop in ((0, 32), (64, 96), (96, 101)):      # a full window and the short last one
        _, trace = mixture.run_with_trace(ids[start:stop][None], "blocks.*.mlp.*")
        for i in range(2):
            assert torch.equal(r.experts[i, start:stop], trace[f"blocks.{i}.mlp.experts"][0])
            torch.testing.assert_close(r.gates[i, start:stop], trace[f"blocks.{i}.mlp.gates"][0])
            torch.testing.assert_close(r.probs[i, start:stop], trace[f"blocks.{i}.mlp.router_logits"][0].softmax(-1))


def test_load_of_a_routed_text_is_the_training_loops_measure(mixture):
    ids = torch.randint(0, 65, (32 * 4 + 1,), generator=torch.Generator().manual_seed(1))
    ours = ex.route(mixture, ids[:-1]).load()
    theirs = ex.measure_load(mixture, ids)                   # windows of ids[:-1] paired with their targets
    assert ours.tokens == theirs.tokens == 128
    np.testing.assert_allclose(ours.token_share, theirs.token_share, atol=1e-6)
    np.testing.assert_allclose(ours.balance, theirs.balance, rtol=1e-5)
    assert all(abs(sum(row) - 2) < 1e-6 for row in ours.token_share)   # K = 2 experts per token


def test_specialisation_counted_by_hand():
    chars = list("aeio bcdf") + list("AEIO BCDF")            # 18 tokens: 8 vowels, 8 consonants, 2 spaces
    n = len(chars)
    first = torch.tensor([0 if c.lower() in "aeiou" else 1 for c in chars])   # expert 0 gets every vowel
    second = torch.full((n,), 2)                             # and every token also goes to expert 2
    routing = ex.Routing(torch.full((1, n, 3), 1 / 3), torch.stack([first, second], -1)[None],
                         torch.full((1, n, 2), 0.5))
    spec = ex.specialisation(routing, chars, 0)
    assert spec.tokens == [8, 10, 18]
    assert spec.text_share == pytest.approx([8 / 18, 8 / 18, 2 / 18, 0, 8 / 18])
    assert spec.share[0] == pytest.approx([1, 0, 0, 0, 0.5])
    assert spec.share[2] == pytest.approx(spec.text_share)    # an expert with every token is the text
    p = 8 / 18
    sd = math.sqrt(p * (1 - p) / 8 * (18 - 8) / 17)            # hypergeometric spread of a random 8 of 18
    assert spec.z[0][0] == pytest.approx((1 - p) / sd)
    assert spec.z[2] == [0, 0, 0, 0, 0]                       # no spread: no evidence either way
    # Expert 0 (8 vowels) and expert 1 (no vowel) are each 4.1 spreads from the text on vowels: clear. Their
    # consonant shares (0 and 80%, against 44%) are only 3.3 spreads away: not clear.
    assert {(e, c) for e, c, _, _ in spec.clear()} == {(0, "vowel"), (1, "vowel")}
    sd1 = math.sqrt(p * (1 - p) / 10 * (18 - 10) / 17)
    assert spec.z[1][1] == pytest.approx((0.8 - p) / sd1) and 3 < spec.z[1][1] < 4
    assert spec.top_chars[1][:2] == [(" ", 2), ("B", 1)]


def test_character_classes_split_the_vocabulary():
    from glassformer.registry import load_model

    vocab = list(load_model("course").tokenizer.ids)
    for ch in vocab:
        vowel, consonant, space, punctuation, upper = ex.char_classes(ch)
        assert vowel + consonant + space + punctuation == 1, repr(ch)
        assert not upper or vowel or consonant
    assert sum(ex.char_classes(ch)[0] for ch in vocab) == 10        # a e i o u, both cases


# --- the shipped table and models ---------------------------------------------------------------

def test_the_shipped_table_counts_what_its_shapes_hold():
    if not sc.RUNS_FILE.exists():
        pytest.skip("no scaling table shipped yet (scripts/ship_scaling_runs.py)")
    runs = sc.load_runs()["runs"]
    for size in {r["size"] for r in runs}:
        counts = sc.shape_counts(*sc.SIZES[size])
        for r in (r for r in runs if r["size"] == size):
            assert (r["parameters"], r["non_embedding_parameters"]) == (counts.total, counts.non_embedding)
            assert r["compute"] == 6 * r["non_embedding_parameters"] * r["tokens"]
            assert r["tokens"] == r["steps"] * sc.BATCH * sc.CONTEXT


def test_the_dense_twin_uses_what_the_mixture_uses_per_token_but_the_router():
    from glassformer.registry import MOE_MODELS_DIR, load_model

    if not (MOE_MODELS_DIR / "moe" / "model.safetensors").exists():
        pytest.skip("the chapter 11 models are not shipped yet (scripts/ship_moe_models.py)")
    moe, dense = load_model("moe").model, load_model("moe-dense").model
    c, D = moe.config, moe.config.d_model
    bias = c.mlp_bias                                          # the course preset's MLPs carry biases
    expert = 3 * D * c.d_expert + bias * (2 * c.d_expert + D)  # one SwiGLU expert: gate, up, down
    twin = 3 * D * dense.config.d_mlp + bias * (2 * dense.config.d_mlp + D)
    assert dense.config.d_mlp == c.experts_per_token * c.d_expert
    mine, theirs = sc.parameter_counts(moe), sc.parameter_counts(dense)
    per_layer_active = c.experts_per_token * expert + D * c.n_experts - twin      # router + the extra output biases
    extra_biases = bias * (c.experts_per_token - 1) * D             # each chosen expert adds its output bias
    assert mine.active - theirs.active == c.n_layers * per_layer_active == c.n_layers * (D * c.n_experts + extra_biases)
    assert mine.total - theirs.total == c.n_layers * (c.n_experts * expert + D * c.n_experts - twin)
    card = json.loads((MOE_MODELS_DIR / "moe" / "card.json").read_text())
    assert card["parameters"] == mine.as_dict()
