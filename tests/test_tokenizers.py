"""Tokenizers: round trips over hard strings, hand-checkable merges, parity with HF `tokenizers`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glassformer.tokenizers.bpe import BPETokenizer, merge_pair
from glassformer.tokenizers.char import CharTokenizer, UnknownCharacterError
from glassformer.tokenizers.pretrained import _byte_decoder

HARD = [
    "",
    "hello world",
    "  leading and trailing spaces  ",
    "emoji 🙂👍🏽 and a family 👨‍👩‍👧",
    "中文字符和日本語のテキスト",
    "e\u0301 combining acute, n\u0303",
    "control \x00\x01\x7f and \t tabs \r\n newlines",
    "numbers 1234567 3.14159 and punctuation!?…",
    "<|endoftext|> looks special but is text",
    "ÿ\u00a0\u2028 odd spaces",
]


@pytest.fixture(scope="module")
def shakespeare() -> str:
    from glassformer.data import load_text

    return load_text()[0]


@pytest.fixture(scope="module")
def bpe(shakespeare) -> BPETokenizer:
    return BPETokenizer.train(shakespeare[:100_000], 400, special_tokens=["<|endoftext|>"])


@pytest.mark.parametrize("text", HARD)
def test_bpe_round_trip_hard_strings(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", None])
def test_bpe_round_trip_whole_corpus(shakespeare, pattern):
    tok = BPETokenizer.train(shakespeare[:50_000], 300, pattern=pattern)
    ids = tok.encode(shakespeare)
    assert tok.decode(ids) == shakespeare
    assert len(ids) < len(shakespeare.encode("utf-8"))  # merges actually compress


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_bpe_round_trip_property(text):
    tok = _property_tokenizer()
    assert tok.decode(tok.encode(text)) == text


_TOK = []


def _property_tokenizer() -> BPETokenizer:
    if not _TOK:
        _TOK.append(BPETokenizer.train("the cat sat on the mat; the dog ate the hat. " * 20 + "héllo wörld 🙂", 300))
    return _TOK[0]


def test_lone_surrogate_is_rejected_clearly(bpe):
    with pytest.raises(ValueError, match="lone surrogate U\\+D800"):
        bpe.encode("ok \ud800 not ok")


def test_merges_by_hand():
    # "aaabdaaabac": "aa" x4 -> 256; "ab" and "Za" tie at 2, smaller ids win -> "ab" = 257; "Z"+"ab" x2 -> 258
    tok = BPETokenizer.train("aaabdaaabac", 259, pattern=None)
    assert [(m.pair, m.new_id, m.token, m.count) for m in tok.merges] == [
        ((97, 97), 256, b"aa", 4), ((97, 98), 257, b"ab", 2), ((256, 257), 258, b"aaab", 2)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert merge_pair([1, 1, 1, 2], (1, 1), 9) == [9, 1, 2]


def test_special_tokens_only_when_allowed(bpe):
    eot = bpe.special_tokens["<|endoftext|>"]
    assert bpe.eos_id == eot == 400 - 1
    assert eot not in bpe.encode("a<|endoftext|>b")
    assert bpe.encode("a<|endoftext|>b", allowed_special="all") == [*bpe.encode("a"), eot, *bpe.encode("b")]
    assert bpe.decode([eot]) == "<|endoftext|>"


def test_save_load_round_trip(bpe, tmp_path):
    bpe.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(tmp_path / "tok.json")
    text = HARD[3] + HARD[4]
    assert loaded.encode(text) == bpe.encode(text)
    assert loaded.merges == bpe.merges


def test_bad_vocab_size():
    with pytest.raises(ValueError, match="smaller than the 256 byte tokens"):
        BPETokenizer.train("abc", 100)


def _hf_train(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([text], trainer)
    return hf


def test_training_matches_hf_tokenizers_merge_for_merge(shakespeare):
    text = shakespeare[:300_000]
    ours = BPETokenizer.train(text, 700, pattern="gpt2")
    hf = _hf_train(text, 700)
    to_byte = _byte_decoder()

    def as_bytes(piece: str) -> bytes:
        return bytes(to_byte[c] for c in piece)

    hf_merges = json.loads(hf.to_str())["model"]["merges"]
    hf_pairs = [tuple(as_bytes(p) for p in (m.split(" ") if isinstance(m, str) else m)) for m in hf_merges]
    our_pairs = [(ours.vocab[m.pair[0]], ours.vocab[m.pair[1]]) for m in ours.merges]
    assert len(our_pairs) == len(hf_pairs) == 700 - 256
    assert our_pairs == hf_pairs

    sample = shakespeare[500_000:520_000] + "".join(HARD)
    hf_tokens = [as_bytes(t) for t in hf.encode(sample).tokens]
    our_tokens = [ours.token_bytes(i) for i in ours.encode(sample)]
    assert our_tokens == hf_tokens


def test_char_tokenizer(shakespeare):
    tok = CharTokenizer.train(shakespeare)
    assert tok.vocab_size == 65
    assert tok.decode(tok.encode(shakespeare[:5000])) == shakespeare[:5000]
    assert tok.encode("\n") == [0]  # sorted vocabulary: newline is the smallest character
    with pytest.raises(UnknownCharacterError, match="'🙂'"):
        tok.encode("hi 🙂")
    assert tok.unknown("hi 🙂 ü 🙂") == ["🙂", "ü"]
    assert tok.decode(tok.encode("hi 🙂", errors="skip")) == "hi "
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([70])
