"""Prefill latency and greedy decoding speed: glassformer vs Hugging Face transformers.

A GPT-2-small-shaped model (124M parameters, random weights) is saved once and loaded
into both implementations, so both compute the same function. Everything is measured in
this one run, batch 1, 2 threads, on the CPU; the figures that matter are the ratios.
transformers runs in fp32; glassformer runs fp32 and each decode path this CPU offers
(glassformer/decode_paths.py: bf16 where the CPU does bf16 natively, int8 weight-only where
its int8 kernel is fast), and the one `fastest_path` picks. Each path also reports its
fraction of this machine's memory-bandwidth limit: weight bytes read per token divided by
the measured copy bandwidth gives the most tokens/s memory could feed.

Every comparison is timed by glassformer/timing.py, as on the course's pages: the two (or
more) things in turns, after a warm-up, and each ratio printed with its interval and the
number of runs; "faster"/"slower" only where the interval says so. Here on the bench's 2
threads rather than the pages' one.

    python bench/generate.py [--new-tokens 128] [--repeats 6]
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from glassformer import timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=6,
                        help="runs of each thing, in turns (6 is the fewest that can give a verdict)")
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

    def versus(theirs_fn, ours_fn) -> timing.Comparison:
        """transformers (baseline) against glassformer (candidate), in turns: speedup > 1 = ours faster."""
        return timing.compare(theirs_fn, ours_fn, names=("transformers", "glassformer"), repeats=args.repeats,
                              threads=None)

    rows: list[tuple[str, timing.Comparison]] = []
    with torch.inference_mode():
        probe = torch.randint(0, 50257, (1, 64))
        diff = (ours(probe) - theirs(probe).logits).abs().max().item()
        print(f"same weights check: max |logits diff| = {diff:.2e}")

        for T in (32, 256):
            ids = torch.randint(0, 50257, (1, T))
            rows.append((f"prefill {T} tokens", versus(lambda: theirs(ids, use_cache=False), lambda: ours(ids))))

        ids = torch.randint(0, 50257, (1, 256))
        trace = timing.compare(lambda: ours(ids), lambda: ours.run_with_trace(ids), names=("forward", "trace"),
                               repeats=args.repeats, threads=None)

        prompt = torch.randint(0, 50257, (1, args.prompt_tokens))
        n = args.new_tokens
        hf_kwargs = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        for cached in (True, False):
            c = versus(lambda: theirs.generate(prompt, use_cache=cached, **hf_kwargs),
                       lambda: generate(ours, prompt, n, temperature=0, use_cache=cached))
            rows.append((f"greedy {n} tokens, {'with cache' if cached else 'no cache'}", c))
        reference = generate(ours, prompt, n, temperature=0).tolist()
        same = reference == theirs.generate(prompt, **hf_kwargs).tolist()

        bandwidth = copy_bandwidth()
        offered = available_paths()
        chosen = fastest_path_name()
        paths = {name: convert(ours, name) for name in ("fp32", "bf16", "int8")
                 # a bf16 matmul without native support is hundreds of times slower: not worth timing
                 if not (name == "bf16" and name not in offered)}
        # Every path and transformers in rounds (timing.measure_in_turns): run i of each is from round i.
        fns = {"transformers": lambda: theirs.generate(prompt, **hf_kwargs)}
        fns.update({name: (lambda m=path.model: generate(m, prompt, n, temperature=0)) for name, path in paths.items()})
        times = timing.measure_in_turns(fns, repeats=args.repeats, threads=None)
        path_rows = []
        for name, path in paths.items():
            c = timing.Comparison("transformers", name, times["transformers"].seconds, times[name].seconds)
            tok_s = n / times[name].median
            tokens = generate(path.model, prompt, n, temperature=0).tolist()
            agree = sum(x == y for x, y in zip(tokens[0][-n:], reference[0][-n:])) / n
            per_token = bytes_read_per_token(path.model)
            limit = bandwidth / per_token
            path_rows.append((name, tok_s, c, per_token, tok_s / limit, agree, name in offered, name == chosen))

    print(f"\nGPT-2 small shape, batch 1, prompt {args.prompt_tokens} + {n} new tokens; medians of runs in turns")
    print(f"{'task':34s} {'glassformer':>12s} {'transformers':>12s}  "
          "glassformer's speed / transformers' (interval, runs)")
    for name, c in rows:
        print(f"{name:34s} {c.candidate_timing.median * 1e3:10.1f}ms {c.baseline_timing.median * 1e3:10.1f}ms  "
              f"{c.figure()}: {c.says()}")
    print(f"{'run_with_trace / forward, 256 tok':34s} time ratio {1 / trace.speedup:.2f}x "
          f"(forward's speed / trace's {trace.figure()}; target: trace <= 1.5x the forward's time)")
    print(f"greedy {n} tokens identical to transformers (fp32): {same}")
    theirs_tok_s = n / times["transformers"].median
    print(f"\nDecode paths, greedy with KV cache; transformers fp32 = {theirs_tok_s:.1f} tok/s; "
          f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'path':6s} {'tok/s':>7s} {'vs transformers (interval, runs)':>40s} {'MB/token':>9s} "
          f"{'of bandwidth limit':>19s} {'same tokens as fp32':>20s}")
    for name, tok_s, c, per_token, fraction, agree, fast, picked in path_rows:
        note = " <- fastest_path picks this" if picked else ("" if fast else "  (not offered on this CPU)")
        print(f"{name:6s} {tok_s:7.1f} {c.figure():>40s} {per_token / 2**20:9.1f} {fraction:18.0%} {agree:19.0%}{note}")
    best = next(r for r in path_rows if r[7])
    print(f"\nfastest path on this CPU: {best[0]}, {best[2].figure()} transformers fp32 tokens/s: {best[2].says()} "
          f"(goal >= 1.5x)")
    int8 = next(r for r in path_rows if r[0] == "int8")
    print(f"int8 weight-only: {int8[2].figure()} transformers fp32 tokens/s: {int8[2].says()}")


if __name__ == "__main__":
    main()
