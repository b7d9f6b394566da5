"""Sampling filters on distributions small enough to check by hand; seeds; beam search."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from glassformer.generate import beam_search, generate
from glassformer.model import build_model, preset
from glassformer.sampling import (filter_logits, greedy, make_generator, min_p_filter, next_token,
                                  sample, top_k_filter, top_p_filter)

PROBS = torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625])  # powers of two: sums are exact
LOGITS = PROBS.log()


def kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits).nonzero().flatten().tolist()


@pytest.mark.parametrize("p, expected", [(0.5, [0]), (0.51, [0, 1]), (0.75, [0, 1]), (0.76, [0, 1, 2]),
                                         (1.0, [0, 1, 2, 3, 4]), (0.01, [0])])
def test_top_p_keeps_the_smallest_prefix_reaching_p(p, expected):
    assert kept(top_p_filter(LOGITS, p)) == expected


def test_top_p_works_in_vocabulary_order_not_sorted_order():
    shuffled = LOGITS[[3, 0, 4, 2, 1]]  # best token now at index 1, second best at index 4
    assert kept(top_p_filter(shuffled, 0.75)) == [1, 4]


@pytest.mark.parametrize("k, expected", [(1, [0]), (3, [0, 1, 2]), (99, [0, 1, 2, 3, 4])])
def test_top_k(k, expected):
    assert kept(top_k_filter(LOGITS, k)) == expected


@pytest.mark.parametrize("m, expected", [(0.0, [0, 1, 2, 3, 4]), (0.25, [0, 1, 2]), (0.5, [0, 1]), (1.0, [0])])
def test_min_p_threshold_is_relative_to_the_top_token(m, expected):
    assert kept(min_p_filter(LOGITS, m)) == expected


def test_temperature_by_hand():
    # softmax([0, ln 3] / 0.5) = softmax([0, 2 ln 3]) = [1/10, 9/10]
    probs = filter_logits(torch.tensor([0.0, math.log(3.0)]), temperature=0.5).softmax(-1)
    assert (probs - torch.tensor([0.1, 0.9])).abs().max().item() <= 1e-6


def test_filters_compose_in_the_documented_order():
    # Temperature 2 flattens PROBS before top-p sees it: p ~ sqrt(PROBS) / sum
    # = [.343, .243, .172, .121, .121]; mass before each = [0, .343, .586, .757, ...] < .6 -> 3 kept.
    assert kept(filter_logits(LOGITS, temperature=2.0, top_p=0.6)) == [0, 1, 2]
    # At temperature 1: mass before = [0, .5, .75, ...] -> 2 kept.
    assert kept(filter_logits(LOGITS, temperature=1.0, top_p=0.6)) == [0, 1]
    # top-k runs before top-p: after top-k 2 the two survivors renormalize to [.585, .415] at T=2.
    assert kept(filter_logits(LOGITS, temperature=2.0, top_k=2, top_p=0.6)) == [0, 1]
    assert kept(filter_logits(LOGITS, temperature=2.0, top_k=2, top_p=0.5)) == [0]


def test_sampling_frequencies_follow_the_filtered_distribution():
    gen = make_generator(0)
    draws = sample(top_k_filter(LOGITS, 2).expand(20_000, -1), gen)
    share = (draws == 0).float().mean().item()
    assert abs(share - 2 / 3) <= 0.02  # renormalized: 0.5 / 0.75
    assert set(draws.tolist()) == {0, 1}


def test_same_seed_same_tokens_different_seed_different_tokens():
    torch.manual_seed(0)
    model = build_model(preset("tiny")).eval()
    a = generate(model, [1, 2, 3], 30, temperature=1.5, seed=123)
    b = generate(model, [1, 2, 3], 30, temperature=1.5, seed=123)
    c = generate(model, [1, 2, 3], 30, temperature=1.5, seed=124)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_temperature_zero_is_greedy():
    logits = torch.randn(4, 10)
    assert torch.equal(next_token(logits, temperature=0), greedy(logits))


@pytest.mark.parametrize("bad", [dict(temperature=-1.0), dict(top_k=0), dict(top_p=1.5), dict(top_p=0.0), dict(min_p=2.0)])
def test_bad_sampling_settings_are_refused(bad):
    with pytest.raises(ValueError):
        filter_logits(LOGITS, **{"temperature": 1.0, **bad})


def test_beam_search_with_enough_beams_finds_the_most_likely_sequence():
    torch.manual_seed(1)
    model = build_model(preset("tiny", vocab_size=4)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0)
    prompt = [1, 2]

    def logprob(seq):
        with torch.no_grad():
            logp = model(torch.tensor([prompt + list(seq)])).log_softmax(-1)[0]
        return sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(seq))

    best = max(itertools.product(range(4), repeat=3), key=logprob)  # brute force over all 64
    beams = beam_search(model, prompt, 3, num_beams=64, length_penalty=0.0)
    assert tuple(beams[0].tokens) == best
    assert abs(beams[0].logprob - logprob(best)) <= 1e-4
    assert beam_search(model, prompt, 3, num_beams=1)[0].tokens == generate(model, prompt, 3, temperature=0)[2:].tolist()


def test_on_step_shows_what_the_loop_drew_from_without_changing_it():
    from glassformer.generate import generate, stream
    from glassformer.model import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("tiny")).eval()
    settings = dict(temperature=0.9, top_k=10, seed=5)
    seen = []
    watched = [int(t[0]) for t in stream(model, [1, 2, 3], 15, on_step=seen.append, **settings)]
    assert watched == generate(model, [1, 2, 3], 15, **settings).tolist()[3:]  # observing changes nothing
    assert [s.index for s in seen] == list(range(15))
    for step, token in zip(seen, watched):
        probs = step.probs[0]
        assert abs(probs.sum().item() - 1) <= 1e-5 and int((probs > 0).sum()) <= 10  # top-k applied
        assert probs[token] > 0                                                       # drawn from it
        assert int(step.token[0]) == token
