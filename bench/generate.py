"""Prefill latency and greedy decoding speed: glassformer vs Hugging Face transformers.

A GPT-2-small-shaped model (124M parameters, random weights) is saved once and loaded
into both implementations, so both compute the same function. Everything is measured in
this one run, fp32, batch 1, on the CPU; the figures that matter are the ratios.

    python bench/generate.py [--new-tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def timed(fn, repeats: int) -> float:
    """Median wall time of fn() over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers import GPT2Config, GPT2LMHeadModel

    from glassformer.generate import generate
    from glassformer.pretrained import load_pretrained

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as folder:  # one set of weights, loaded by both
        GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)
        ours, _ = load_pretrained(folder)
        theirs = GPT2LMHeadModel.from_pretrained(folder).eval()

    rows: list[tuple[str, float, float, str]] = []
    with torch.inference_mode():
        probe = torch.randint(0, 50257, (1, 64))
        diff = (ours(probe) - theirs(probe).logits).abs().max().item()
        print(f"same weights check: max |logits diff| = {diff:.2e}")

        for T in (32, 256):
            ids = torch.randint(0, 50257, (1, T))
            a = timed(lambda: ours(ids), args.repeats)
            b = timed(lambda: theirs(ids, use_cache=False), args.repeats)
            rows.append((f"prefill {T} tokens (ms)", a * 1e3, b * 1e3, "lower"))

        ids = torch.randint(0, 50257, (1, 256))
        a = timed(lambda: ours(ids), args.repeats)
        b = timed(lambda: ours.run_with_trace(ids), args.repeats)
        trace_ratio = b / a

        prompt = torch.randint(0, 50257, (1, args.prompt_tokens))
        n = args.new_tokens
        hf_kwargs = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        for cached in (True, False):
            a = timed(lambda: generate(ours, prompt, n, temperature=0, use_cache=cached), args.repeats)
            b = timed(lambda: theirs.generate(prompt, use_cache=cached, **hf_kwargs), args.repeats)
            label = "with cache" if cached else "no cache"
            rows.append((f"greedy tokens/s, {label}", n / a, n / b, "higher"))
        same = generate(ours, prompt, 32, temperature=0).tolist() == theirs.generate(
            prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0).tolist()

    print(f"\nGPT-2 small shape, fp32, batch 1, prompt {args.prompt_tokens} + {n} new tokens")
    print(f"{'metric':34s} {'glassformer':>12s} {'transformers':>12s} {'ours/theirs':>12s}")
    for name, a, b, better in rows:
        print(f"{name:34s} {a:12.1f} {b:12.1f} {a / b:11.2f}x  ({better} is better)")
    print(f"{'run_with_trace / forward, 256 tok':34s} {trace_ratio:12.2f}x  (target <= 1.5x)")
    print(f"greedy 32 tokens identical to transformers: {same}")


if __name__ == "__main__":
    main()
