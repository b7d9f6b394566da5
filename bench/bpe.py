"""Byte-level BPE: glassformer's trainer and encoder vs Hugging Face `tokenizers` (Rust).

Trains on the whole of TinyShakespeare to vocabularies of 512 and 4096 and encodes the whole
corpus, measured in this one run; prints the median times and HF's speed relative to ours
(glassformer/timing.py: both in turns, the ratio with its interval and the number of runs, a
verdict only where the interval says so). Also times the straightforward algorithm that recounts
every pair after every merge, to 512, for scale.

    python bench/bpe.py [--repeats 6] [--skip-naive]
"""

from __future__ import annotations

import argparse
from collections import Counter

import regex

from glassformer import timing


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
    parser.add_argument("--repeats", type=int, default=6,
                        help="runs of each, in turns (6 is the fewest that can give a verdict)")
    args = parser.parse_args()

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from glassformer.data import load_text
    from glassformer.tokenizers.bpe import GPT2_PATTERN, BPETokenizer

    text, _ = load_text()
    print(f"TinyShakespeare: {len(text):,} characters")
    print(f"{'task':30s} {'glassformer':>12s} {'HF tokenizers':>14s}  HF's speed / ours (interval, runs)")

    def row(task: str, c: timing.Comparison, note: str = "") -> None:
        print(f"{task:30s} {c.baseline_timing.median:11.2f}s {c.candidate_timing.median:13.2f}s  "
              f"{c.figure(1)}: HF {c.says()}{note}")

    for vocab in (512, 4096):
        ours = BPETokenizer.train(text, vocab)

        def hf_train():
            hf = Tokenizer(models.BPE())
            hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            hf.train_from_iterator([text], trainers.BpeTrainer(
                vocab_size=vocab, min_frequency=2, show_progress=False,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
            return hf

        hf = hf_train()
        row(f"train to {vocab}", timing.compare(lambda: BPETokenizer.train(text, vocab), hf_train,
                                                names=("glassformer", "HF"), repeats=args.repeats, warmup=0))
        # A fresh tokenizer per run: an empty chunk cache, a cold encode.
        encoded = timing.compare(lambda: BPETokenizer(ours.merges, ours.pattern).encode(text), lambda: hf.encode(text),
                                 names=("glassformer", "HF"), repeats=args.repeats, warmup=0)
        ids, hf_ids = BPETokenizer(ours.merges, ours.pattern).encode(text), hf.encode(text).ids
        row(f"encode corpus, vocab {vocab}", encoded, f"   ({len(ids):,} vs {len(hf_ids):,} tokens)")
    if not args.skip_naive:
        c = timing.compare(lambda: naive_train(text, 512, GPT2_PATTERN), lambda: BPETokenizer.train(text, 512),
                           names=("recount", "incremental"), repeats=args.repeats, warmup=0)
        print(f"{'recount-every-merge to 512':30s} {c.baseline_timing.median:11.2f}s   incremental's speed / "
              f"recount's: {c.figure(0)}: incremental {c.says()}")


if __name__ == "__main__":
    main()
