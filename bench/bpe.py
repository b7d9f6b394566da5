"""Byte-level BPE: glassformer's trainer and encoder vs Hugging Face `tokenizers` (Rust).

Trains on the whole of TinyShakespeare to vocabularies of 512 and 4096 and encodes the whole
corpus, measured in this one run; prints the times and ours/HF ratios. Also times the
straightforward algorithm that recounts every pair after every merge, to 512, for scale.

    python bench/bpe.py [--skip-naive]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import regex


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def naive_train(text: str, vocab_size: int, pattern: str) -> list[tuple[int, int]]:
    """Recount all pairs of all chunks after every merge (the textbook loop)."""
    from glassformer.tokenizers.bpe import merge_pair

    chunks = [list(c.encode("utf-8")) for c in regex.findall(pattern, text)]
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter()
        for ids in chunks:
            counts.update(zip(ids, ids[1:]))
        if not counts:
            break
        pair = max(counts, key=counts.get)
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
        merges.append(pair)
    return merges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow recount-every-merge baseline")
    args = parser.parse_args()

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from glassformer.data import load_text
    from glassformer.tokenizers.bpe import GPT2_PATTERN, BPETokenizer

    text, _ = load_text()
    print(f"TinyShakespeare: {len(text):,} characters")
    print(f"{'task':30s} {'glassformer':>12s} {'HF tokenizers':>14s} {'ours/HF':>9s}")
    for vocab in (512, 4096):
        ours, t_ours = timed(lambda: BPETokenizer.train(text, vocab))

        def hf_train():
            hf = Tokenizer(models.BPE())
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            hf.train_from_iterator([text], trainers.BpeTrainer(
                vocab_size=vocab, min_frequency=2, show_progress=False,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
            return hf

        hf, t_hf = timed(hf_train)
        print(f"{'train to ' + str(vocab):30s} {t_ours:11.2f}s {t_hf:13.2f}s {t_ours / t_hf:8.1f}x")
        fresh = BPETokenizer(ours.merges, ours.pattern)  # empty chunk cache: a cold encode
        ids, e_ours = timed(lambda: fresh.encode(text))
        hf_ids, e_hf = timed(lambda: hf.encode(text).ids)
        print(f"{'encode corpus, vocab ' + str(vocab):30s} {e_ours:11.2f}s {e_hf:13.2f}s {e_ours / e_hf:8.1f}x"
              f"   ({len(ids):,} vs {len(hf_ids):,} tokens)")
    if not args.skip_naive:
        _, t_naive = timed(lambda: naive_train(text, 512, GPT2_PATTERN))
        _, t_ours = timed(lambda: BPETokenizer.train(text, 512))
        print(f"{'recount-every-merge to 512':30s} {t_naive:11.2f}s   (incremental is {t_naive / t_ours:.0f}x faster)")


if __name__ == "__main__":
    main()
