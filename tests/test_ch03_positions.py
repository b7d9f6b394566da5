"""Chapter 3's claims, checked against hand computation: the shipped position models still measure
what their cards say, RoPE's score depends only on the offset, a sinusoidal offset is a rotation,
and attention without positions or mask only moves its output rows when the tokens move."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from glassformer.analysis import extrapolation, position_lab
from glassformer.model import build_model, preset
from glassformer.model.position import sinusoidal_table


@pytest.mark.parametrize("scheme", extrapolation.SCHEMES)
def test_shipped_position_model_measures_what_its_card_says(scheme):
    model, tokenizer, card = extrapolation.load_position_model(scheme)
    assert model.config.position == scheme and card["position"] == scheme
    assert card["trained_length"] == extrapolation.TRAINED_LENGTH == card["recipe"]["model"]["n_ctx"]
    recipe = {k: v for k, v in card["recipe"].items() if k != "model"}
    reference = extrapolation.load_position_model("rope")[2]["recipe"]
    assert recipe == {k: v for k, v in reference.items() if k != "model"}  # one recipe for all five
    assert {k: v for k, v in card["recipe"]["model"].items() if k != "position"} == \
        {k: v for k, v in reference["model"].items() if k != "position"}
    windows = extrapolation.validation_windows(card["eval"]["windows"])
    fresh = extrapolation.loss_by_length(model, windows)  # runs 256 tokens: every scheme accepts it
    for length, recorded in card["loss_by_length"].items():
        assert abs(fresh[int(length)] - recorded) < 2e-3, (scheme, length, fresh[int(length)], recorded)
    if scheme == "learned":
        assert model.embed.positions.weight.shape[0] == extrapolation.SPAN and "never trained" in card["learned_rows_note"]


def test_shipped_position_models_are_small():
    files = [f for f in extrapolation.POSITION_MODELS_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 1.5e6
    for f in extrapolation.POSITION_MODELS_DIR.glob("*/model.safetensors"):
        header_len = int.from_bytes(f.read_bytes()[:8], "little")
        header = json.loads(f.read_bytes()[8:8 + header_len])
        assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}


def test_loss_at_length_predicts_the_same_characters_at_every_length():
    torch.manual_seed(0)
    model = build_model(preset("tiny", position="rope", n_ctx=64)).eval()
    ids = torch.randint(0, 65, (1000,))
    windows = extrapolation.eval_windows(ids, 3, span=32)                       # (3, 33)
    assert windows[0, 0] == ids[0] and windows[-1, -1] == ids[-1]
    by_hand = 0.0
    for w in windows:  # one window at a time, pieces of 8: -log p(target) summed by hand
        for start in range(0, 32, 8):
            logp = model(w[start:start + 8][None])[0].log_softmax(-1)          # (8, V)
            by_hand -= sum(logp[t, int(w[start + t + 1])].item() for t in range(8))
    assert abs(extrapolation.loss_at_length(model, windows, 8) - by_hand / (3 * 32)) < 1e-5


def test_extended_learned_table_keeps_the_trained_rows_and_outputs():
    torch.manual_seed(0)
    model = build_model(preset("tiny", n_ctx=16)).eval()
    bigger = extrapolation.extend_learned_positions(model, 40)
    assert torch.equal(bigger.embed.positions.weight[:16], model.embed.positions.weight)
    assert abs(bigger.embed.positions.weight[16:].std().item() - 0.02) < 0.005
    ids = torch.randint(0, 65, (1, 16))
    torch.testing.assert_close(bigger(ids), model(ids), atol=0, rtol=0)
    assert bigger(torch.randint(0, 65, (1, 40))).shape == (1, 40, 65)


@pytest.mark.parametrize("pair,head_dim,theta", [(0, 32, 10_000.0), (3, 32, 10_000.0), (5, 16, 500.0)])
def test_rope_rotates_each_vector_as_by_hand_and_the_score_depends_only_on_the_offset(pair, head_dim, theta):
    q, k = (1.5, 0.5), (-0.3, 1.2)
    omega = theta ** (-2 * pair / head_dim)

    def rotated(v, angle):  # the 2-D rotation, in plain Python
        return (v[0] * math.cos(angle) - v[1] * math.sin(angle), v[0] * math.sin(angle) + v[1] * math.cos(angle))

    for m, n in [(0, 0), (3, 7), (50, 41), (200, 203)]:
        q_rot, k_rot, dot, w = position_lab.rope_pair(q, k, m, n, head_dim=head_dim, theta=theta, pair=pair)
        assert abs(w - omega) < 1e-6 * omega
        # the library's frequency is float32-rounded; the rotation must use exactly that one
        for got, want in zip([*q_rot.tolist(), *k_rot.tolist()], [*rotated(q, m * w), *rotated(k, n * w)]):
            assert abs(got - want) < 1e-12
        by_hand = sum(a * b for a, b in zip(q, rotated(k, (n - m) * w)))
        assert abs(dot - by_hand) < 1e-12
    sweep = [position_lab.rope_pair(q, k, m, m + 4, head_dim=head_dim, theta=theta, pair=pair)[2]
             for m in range(0, 1000, 37)]
    assert max(sweep) - min(sweep) < 1e-9
    shifted = position_lab.rope_pair(q, k, 10, 15, head_dim=head_dim, theta=theta, pair=pair)[2]
    assert abs(shifted - sweep[0]) > 1e-3 or abs(math.cos(w) - 1) < 1e-6  # another offset, another score


def test_sinusoidal_offset_is_the_rotation_computed_by_hand():
    D = 16
    table = sinusoidal_table(80, D).double()                                    # (80, D)
    for p in (0, 7, 33):  # the table itself, from the formula
        for i in range(D // 2):
            w = 10_000.0 ** (-2 * i / D)
            assert abs(table[p, 2 * i] - math.sin(p * w)) < 1e-6 and abs(table[p, 2 * i + 1] - math.cos(p * w)) < 1e-6
    for i, k in [(0, 1), (2, 5), (7, 16)]:
        b = k * 10_000.0 ** (-2 * i / D)
        M = position_lab.sinusoidal_shift(D, i, k)
        hand = [[math.cos(b), math.sin(b)], [-math.sin(b), math.cos(b)]]
        assert max(abs(M[r][c].item() - hand[r][c]) for r in range(2) for c in range(2)) < 1e-15
        pair = table[:, 2 * i:2 * i + 2]                                        # (80, 2)
        assert (pair[:-k] @ M.T - pair[k:]).abs().max() < 1e-6


def with_big_weights(model):
    """Weights of std 0.3 instead of 0.02: fresh weights give nearly uniform attention and tiny outputs,
    where every difference would look like rounding."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def test_attention_without_positions_or_mask_just_moves_its_rows():
    torch.manual_seed(0)
    rng = random.Random(1)
    ids = [rng.randrange(65) for _ in range(20)]
    perm = list(range(19))
    random.Random(2).shuffle(perm)
    perm.append(19)
    none = with_big_weights(build_model(preset("tiny", position="none")))
    free = position_lab.permutation_gap(none, ids, perm, positions=False, causal=False)
    masked = position_lab.permutation_gap(none, ids, perm, positions=False, causal=True)
    assert free.max() < 1e-5
    assert masked[-1] < 1e-5 and masked.max() > 1e-3  # the last token saw the same set; the others did not
    for scheme in ("learned", "sinusoidal", "rope", "alibi"):
        model = with_big_weights(build_model(preset("tiny", position=scheme)))
        assert position_lab.permutation_gap(model, ids, perm, positions=False, causal=False).max() < 1e-5
        assert position_lab.permutation_gap(model, ids, perm, positions=True, causal=False).max() > 1e-4, scheme


@pytest.mark.parametrize("scheme", ["learned", "rope", "alibi"])
def test_order_blind_attention_with_everything_on_is_the_models_own_first_attention(scheme):
    torch.manual_seed(0)
    model = build_model(preset("tiny", position=scheme)).eval()
    ids = torch.randint(0, 65, (12,))
    _, trace = model.run_with_trace(ids[None], names="blocks.0.attn_out")
    ours = position_lab.order_blind_attention(model, ids, positions=True, causal=True)
    torch.testing.assert_close(ours, trace["blocks.0.attn_out"][0], atol=1e-6, rtol=0)


def test_a_shuffle_before_the_last_token_moves_one_layers_last_output_not_necessarily_a_stacks():
    """One attention layer without positions: the last position's output ignores the order of the
    tokens before it. Two layers: it need not, since layer 2 reads what each earlier token made of
    its own (shuffled) predecessors. Measured on the whole model's last logits."""
    rng = random.Random(3)
    ids = [rng.randrange(65) for _ in range(24)]
    perm = position_lab.shuffle_all_but_last(24, 5)
    assert sorted(perm) == list(range(24)) and perm[-1] == 23 and perm != list(range(24))
    assert position_lab.shuffle_all_but_last(3, 0) == [0, 1, 2]     # with two to shuffle, a seed can keep the order
    torch.manual_seed(0)
    one = with_big_weights(build_model(preset("tiny", position="none", n_layers=1)))
    two = with_big_weights(build_model(preset("tiny", position="none", n_layers=2)))
    assert position_lab.last_logits_gap(one, ids, perm) < 1e-4
    assert position_lab.last_logits_gap(two, ids, perm) > 1e-2
    # the shipped model without positions, on a line of Shakespeare: its last prediction moves too
    model, tokenizer, _ = extrapolation.load_position_model("none")
    line = tokenizer.encode("ROMEO:\nBut soft, what light through yonder window breaks?")
    assert position_lab.last_logits_gap(model, line, position_lab.shuffle_all_but_last(len(line), 0)) > 0.1
