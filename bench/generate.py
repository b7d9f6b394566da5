"""Prefill latency and greedy decoding speed: glassformer vs Hugging Face transformers.

A GPT-2-small-shaped model (124M parameters, random weights) is saved once and loaded
into both implementations, so both compute the same function. Everything is measured in
this one run, batch 1, 2 threads, on the CPU; the figures that matter are the ratios.
transformers runs in fp32; glassformer runs fp32 and each decode path this CPU offers
(glassformer/decode_paths.py: bf16 where the CPU does bf16 natively, int8 weight-only where
its int8 kernel is fast), and the one `fastest_path` picks. Each path also reports its
fraction of this machine's memory-bandwidth limit: weight bytes read per token divided by
the measured copy bandwidth gives the most tokens/s memory could feed.

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

    from glassformer.decode_paths import (available_paths, bytes_read_per_token, convert, copy_bandwidth,
                                          fastest_path_name)
    from glassformer.generate import generate
    from glassformer.precision import cpu_capability
    from glassformer.pretrained import load_pretrained

    torch.manual_seed(0)
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_capability().summary}")
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
            if cached:
                theirs_tok_s = n / b
        reference = generate(ours, prompt, n, temperature=0).tolist()
        same = reference == theirs.generate(prompt, **hf_kwargs).tolist()

        bandwidth = copy_bandwidth()
        offered = available_paths()
        chosen = fastest_path_name()
        path_rows = []
        for name in ("fp32", "bf16", "int8"):
            if name == "bf16" and name not in offered:
                continue  # a bf16 matmul without native support is hundreds of times slower: not worth timing
            path = convert(ours, name)
            tok_s = n / timed(lambda: generate(path.model, prompt, n, temperature=0), args.repeats)
            tokens = generate(path.model, prompt, n, temperature=0).tolist()
            agree = sum(x == y for x, y in zip(tokens[0][-n:], reference[0][-n:])) / n
            per_token = bytes_read_per_token(path.model)
            limit = bandwidth / per_token
            path_rows.append((name, tok_s, tok_s / theirs_tok_s, per_token, tok_s / limit, agree,
                              name in offered, name == chosen))

    print(f"\nGPT-2 small shape, batch 1, prompt {args.prompt_tokens} + {n} new tokens")
    print(f"{'metric':34s} {'glassformer':>12s} {'transformers':>12s} {'ours/theirs':>12s}")
    for name, a, b, better in rows:
        print(f"{name:34s} {a:12.1f} {b:12.1f} {a / b:11.2f}x  ({better} is better)")
    print(f"{'run_with_trace / forward, 256 tok':34s} {trace_ratio:12.2f}x  (target <= 1.5x)")
    print(f"greedy {n} tokens identical to transformers (fp32): {same}")
    print(f"\nDecode paths, greedy with KV cache; transformers fp32 = {theirs_tok_s:.1f} tok/s; "
          f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'path':6s} {'tok/s':>7s} {'vs transformers':>16s} {'MB/token':>9s} {'of bandwidth limit':>19s} "
          f"{'same tokens as fp32':>20s}")
    for name, tok_s, ratio, per_token, fraction, agree, fast, picked in path_rows:
        note = " <- fastest_path picks this" if picked else ("" if fast else "  (not offered: slow on this CPU)")
        print(f"{name:6s} {tok_s:7.1f} {ratio:15.2f}x {per_token / 2**20:9.1f} {fraction:18.0%} {agree:19.0%}{note}")
    best = next(r for r in path_rows if r[7])
    print(f"\nfastest path on this CPU: {best[0]}, {best[2]:.2f}x transformers fp32 tokens/s (goal >= 1.5x)")
    int8 = next(r for r in path_rows if r[0] == "int8")
    print(f"int8 weight-only: {int8[2]:.2f}x transformers fp32 tokens/s")


if __name__ == "__main__":
    main()
