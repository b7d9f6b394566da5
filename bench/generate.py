"""Prefill latency and greedy decoding speed: glassformer vs Hugging Face transformers and CTranslate2.

A GPT-2-small-shaped model (124M parameters, random weights) is saved once and loaded into
every engine, so all compute the same function. Everything is measured in this one run, batch
1, on the process's threads (2 by default), on the CPU; the figures that matter are the ratios.
transformers runs in fp32; CTranslate2 (the `bench` extra; converted from the same checkpoint)
runs each compute type it offers on this CPU; glassformer runs every decode path
(glassformer/decode_paths.py), and says which one `fastest_path` picks. Each row also reports
its share of this machine's memory-bandwidth limit: the measured read bandwidth divided by the
weight bytes read per token gives the most tokens/s memory could feed. On a shared host the
bandwidth moves from minute to minute, so a 256 MB read is timed in the engines' own rounds.

Every comparison is timed by glassformer/timing.py, as on the course's pages: the things in
turns, after a warm-up, each ratio printed with its interval and the number of runs;
"faster"/"slower" only where the interval says so. The two goals against CTranslate2 (glassformer's
fp32 at least level with its float32, glassformer's fastest path with its fastest) are timed again
head to head, the two engines alone in turns, so that each pair of runs is seconds apart; a goal
is met, within the 5% margin, when the whole interval is at or above 1 / 1.05 (not shown slower
than that: timing.Comparison.not_slower); the same goals as they came out in the rounds of every
engine are printed and recorded beside them.

Random weights make every next-token choice a near tie, so they say nothing about the quality
of a rounded path: that is measured on the trained course model (validation loss on the whole
split, and how often each path picks fp32's next character).

    python bench/generate.py [--new-tokens 128] [--repeats 6] [--duel-repeats 16] [--threads 2] [--emulate-avx2]

--emulate-avx2 runs the same benchmark in a child process limited to AVX2 (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA, FBGEMM_ENABLE_INSTRUCTIONS, MKL_ENABLE_INSTRUCTIONS, CT2_FORCE_CPU_ISA) and
checks that each limit took effect.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from glassformer import timing

READ = "memory read (256 MB)"   # timed with the engines, in the same rounds: the read bandwidth

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "CT2_FORCE_CPU_ISA": "AVX2"}


def isa_checks() -> list[str]:
    """What each library runs on here, each read from the library itself (not from the environment)."""
    import warnings

    lines = [f"torch kernels (ATen): {torch.backends.cpu.get_cpu_capability()}"]
    probe = subprocess.run([sys.executable, "-c", "import torch; torch.ops.mkldnn._linear_pointwise("
                            "torch.ones(1, 64), torch.ones(64, 64), None, 'none', [], '')"],
                           env={**os.environ, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True)
    isa = next((line.split("isa:")[1] for line in probe.stdout.splitlines() if "isa:" in line), "?")
    lines.append(f"torch's oneDNN: {isa}; bf16 in oneDNN: {bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}")
    # fbgemm without VNNI adds pairs of u8 x s8 products in int16, which saturates: 64 products of
    # 255 x 127 (activations at full range) give 64 exactly with VNNI and ~32.4 without it.
    from glassformer.model.decode_kernels import quantized_engine

    with quantized_engine("fbgemm"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = torch.quantize_per_channel(torch.ones(8, 64), torch.full((8,), 1 / 127, dtype=torch.double),
                                       torch.zeros(8, dtype=torch.long), 0, torch.qint8)
        full = torch.ops.quantized.linear_dynamic(torch.ones(1, 64), torch.ops.quantized.linear_prepack(w, None),
                                                  False)[0, 0].item()
    kind = "VNNI kernel (exact)" if abs(full - 64) < 0.5 else "AVX2 kernel (int16 pair sums saturate)"
    lines.append(f"fbgemm: {kind}: 64 full-range products sum to {full:.2f}")
    return lines


# Each engine and path decodes in a child process of its own, as it would be deployed, and the
# children are timed in turns from here. In one shared process, running one engine slowed the next:
# after a single CTranslate2 call every later torch call was ~30% slower (int8-dynamic 102 -> 70
# tok/s, fp32 45 -> 36; CPU affinity, idle spinning and large matrix products unchanged), and
# alternating with transformers cost glassformer's fp32 path 5-8%. A timed call is one
# "run" over a pipe (a round trip of ~0.1 ms) and the greedy generation it starts.


def serve(kind: str, name: str, folder: str, threads: int, n: int, prompt: list[int]) -> None:
    """The child's side: load one engine, say it is ready, then generate once per line read."""
    torch.set_num_threads(threads)
    report, per_token = "", 0
    if kind == "ct2":
        import ctranslate2

        engine = ctranslate2.Generator(folder, device="cpu", compute_type=name, intra_threads=threads)
        tokens = [[("<|endoftext|>" if i == 50256 else f"t{i}") for i in prompt]]

        def run() -> list[int]:
            out = engine.generate_batch(tokens, max_length=n, min_length=n, beam_size=1, sampling_topk=1,
                                        include_prompt_in_result=False)[0].sequences[0]
            return [50256 if t == "<|endoftext|>" else int(t[1:]) for t in out]
    elif kind == "transformers":
        from transformers import GPT2LMHeadModel

        from glassformer.decode_paths import bytes_read_per_token
        from glassformer.pretrained import load_pretrained

        model = GPT2LMHeadModel.from_pretrained(folder).eval()
        per_token = bytes_read_per_token(load_pretrained(folder)[0])
        ids = torch.tensor([prompt])
        kwargs = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)

        def run() -> list[int]:
            with torch.inference_mode():
                return model.generate(ids, **kwargs)[0, -n:].tolist()
    else:
        from glassformer.decode_paths import bytes_read_per_token, convert
        from glassformer.generate import generate
        from glassformer.pretrained import load_pretrained

        path = convert(load_pretrained(folder)[0], name)
        per_token, report = bytes_read_per_token(path.model), path.why

        def run() -> list[int]:
            return generate(path.model, prompt, n, temperature=0)[-n:].tolist()
    run()                                                                    # warm, and fail here if it fails
    print(json.dumps({"report": report, "bytes_per_token": per_token}), flush=True)
    for _ in sys.stdin:
        print(json.dumps(run()), flush=True)


class Engine:
    """One engine in a child process (serve); call() runs one greedy generation there."""

    def __init__(self, kind: str, name: str, folder: str, threads: int, n: int, prompt: list[int]) -> None:
        self.log = tempfile.TemporaryFile("w+")                  # the child's stderr (CTranslate2 reports there)
        env = {**os.environ, "CT2_VERBOSE": "1"} if kind == "ct2" else None
        self.child = subprocess.Popen([sys.executable, __file__, "--serve", kind, name, folder, str(threads), str(n),
                                       json.dumps(prompt)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.log, text=True, env=env)
        line = self.child.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"{kind} {name} did not start:\n{self.log.read()[-2000:]}")
        ready = json.loads(line)
        self.report, self.bytes_per_token = ready["report"], ready["bytes_per_token"]

    def __call__(self) -> list[int]:
        self.child.stdin.write("run\n")
        self.child.stdin.flush()
        return json.loads(self.child.stdout.readline())

    def said(self, *keys: str) -> str:
        """The lines of the child's stderr that mention any of keys, de-duplicated."""
        self.log.seek(0)
        lines = [line.split("] ")[-1].strip(" -") for line in self.log.read().splitlines()
                 if any(k in line for k in keys)]
        return "; ".join(dict.fromkeys(lines))

    def close(self) -> None:
        self.child.stdin.close()
        self.child.wait(timeout=60)


def ctranslate2_model(folder: str) -> str | None:
    """The checkpoint in `folder` converted for CTranslate2 (float32 weights, as saved); None, with a
    note, when CTranslate2 is not installed."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        print("CTranslate2 is not installed (pip install -e '.[bench]'): no CTranslate2 rows")
        return None
    # The converter reads the vocabulary from a tokenizer: token i is named "t<i>" (GPT-2's last id is
    # its end-of-text token), so a prompt of ids passes through unchanged.
    vocab = {f"t{i}": i for i in range(50256)} | {"<|endoftext|>": 50256}
    Path(folder, "vocab.json").write_text(json.dumps(vocab))
    Path(folder, "merges.txt").write_text("#version: 0.2\n")
    Path(folder, "tokenizer_config.json").write_text(json.dumps({"model_type": "gpt2"}))
    converted = str(Path(folder) / "ctranslate2")
    TransformersConverter(folder).convert(converted, force=True)
    return converted


def course_quality(paths: list[str]) -> list[tuple[str, float, float, float]]:
    """(path, validation loss, loss - fp32's, share of next-character picks equal to fp32's) on the
    trained course model, whole validation split, for each path."""
    from glassformer.data import load_text, train_val_split
    from glassformer.decode_paths import convert
    from glassformer.registry import load_model
    from glassformer.train import evaluate

    course = load_model("course")
    val = train_val_split(torch.tensor(course.tokenizer.encode(load_text()[0], errors="skip")))[1]
    x = val[:64 * 256].view(64, 256)
    with torch.no_grad():
        reference_loss, reference_top = evaluate(course.model, val, None), course.model(x).argmax(-1)
        rows = [("fp32 (torch's x @ W)", reference_loss, 0.0, 1.0)]
        for name in paths:
            model = convert(course.model, name).model
            loss = evaluate(model, val, None)
            rows.append((name, loss, loss - reference_loss, (model(x).argmax(-1) == reference_top).float().mean().item()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=6,
                        help="runs of each thing, in turns (6 is the fewest that can give a verdict)")
    parser.add_argument("--duel-repeats", type=int, default=16,
                        help="rounds of each head-to-head against CTranslate2 (the two engines alone, in turns)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="run in a child process limited to AVX2 (see the module docstring)")
    parser.add_argument("--skip-quality", action="store_true", help="leave out the course-model quality table")
    parser.add_argument("--record", type=Path, metavar="JSON",
                        help="also add this run's figures to JSON (a list of runs; chapter 10 shows the package's "
                             "own, src/glassformer/assets/bench/generate.json)")
    parser.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)   # internal: one engine's child process
    args = parser.parse_args()
    if args.repeats < 6 or args.duel_repeats < 6:
        parser.error("--repeats and --duel-repeats must be at least 6, the fewest runs that can give a verdict")
    if args.serve:
        kind, name, folder, threads, n, prompt = args.serve
        return serve(kind, name, folder, int(threads), int(n), json.loads(prompt))
    if args.emulate_avx2:
        argv = [a for a in sys.argv[1:] if a != "--emulate-avx2"]
        sys.exit(subprocess.run([sys.executable, __file__, *argv], env={**os.environ, **AVX2_ONLY}).returncode)

    from transformers import GPT2Config, GPT2LMHeadModel

    from glassformer import machine
    from glassformer.decode_paths import PATHS, available_paths, convert, fastest_path_name, memory_read
    from glassformer.generate import generate
    from glassformer.pretrained import load_pretrained

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    limits = {k: v for k, v in os.environ.items() if k in AVX2_ONLY}
    print(machine.facts().describe())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f"; EMULATED AVX2 ({' '.join(f'{k}={v}' for k, v in limits.items())})" if limits else ""))
    for line in isa_checks():
        print(f"  {line}")

    prompt = torch.randint(0, 50257, (1, args.prompt_tokens))
    n = args.new_tokens
    folder = tempfile.mkdtemp(prefix="bench-generate-")  # one set of weights, loaded by every engine
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)
    ours, _ = load_pretrained(folder)
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval()

    offered = available_paths()
    chosen = fastest_path_name()
    # A bf16 matmul without native support is ~100-400x slower: not worth timing where it is not offered.
    paths = [name for name in PATHS if name in offered or name != "bf16"]
    fp32 = convert(ours, "fp32").model

    def versus(theirs_fn, ours_fn) -> timing.Comparison:
        """transformers (baseline) against glassformer (candidate), in turns: speedup > 1 = ours faster."""
        return timing.compare(theirs_fn, ours_fn, names=("transformers", "glassformer"), repeats=args.repeats,
                              threads=None)

    rows: list[tuple[str, timing.Comparison]] = []
    with torch.inference_mode():
        probe = torch.randint(0, 50257, (1, 64))
        diff = (ours(probe) - theirs(probe).logits).abs().max().item()
        print(f"same weights check: max |logits diff| = {diff:.2e} (fp32 path: "
              f"{(fp32(probe) - theirs(probe).logits).abs().max().item():.2e})")

        for T in (32, 256):
            ids = torch.randint(0, 50257, (1, T))
            rows.append((f"prefill {T} tokens", versus(lambda: theirs(ids, use_cache=False), lambda: fp32(ids))))

        ids = torch.randint(0, 50257, (1, 256))
        trace = timing.compare(lambda: ours(ids), lambda: ours.run_with_trace(ids), names=("forward", "trace"),
                               repeats=args.repeats, threads=None)

        hf_kwargs = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
        c = versus(lambda: theirs.generate(prompt, use_cache=False, **hf_kwargs),
                   lambda: generate(fp32, prompt, n, temperature=0, use_cache=False))
        rows.append((f"greedy {n} tokens, no cache", c))
        reference = generate(ours, prompt, n, temperature=0)[0, -n:].tolist()
        same = reference == theirs.generate(prompt, **hf_kwargs)[0, -n:].tolist()

    # Every engine and path in a child process of its own, timed in rounds (timing.measure_in_turns):
    # run i of each is from round i, so runs of two of them are pairs.
    specs = {"transformers fp32": ("transformers", "fp32", folder)}
    specs.update({name: ("glassformer", name, folder) for name in paths})
    converted = ctranslate2_model(folder)
    if converted:
        import ctranslate2

        specs.update({f"CT2 {ct}": ("ct2", ct, converted) for ct in sorted(ctranslate2.get_supported_compute_types("cpu"))})
    engines = {}
    for name, (kind, detail, where) in specs.items():
        engines[name] = Engine(kind, detail, where, args.threads, n, prompt[0].tolist())
    ct2 = [name for name in engines if name.startswith("CT2")]
    if ct2:
        print(f"  CTranslate2 {ctranslate2.__version__}: {engines[ct2[0]].said('Selected ISA', 'backend', 'MKL')}; "
              f"compute types {[name[4:] for name in ct2]}")
    # The read bandwidth moves with what else the host is doing, so it is timed in the same rounds.
    read, read_bytes = memory_read()
    times = timing.measure_in_turns({**engines, READ: read}, repeats=args.repeats, threads=None)
    reads = times.pop(READ)
    bandwidth = read_bytes / reads.median
    # Round by round: does an engine's speed follow the host's bandwidth? (A memory-bound engine should.)
    print("\nRound by round: read GB/s, then each engine's tok/s")
    for r, seconds in enumerate(reads.seconds):
        print(f"  {r + 1:2d}  {read_bytes / seconds / 1e9:5.1f}  "
              + "  ".join(f"{name} {n / times[name].seconds[r]:.1f}" for name in engines))
    # The two goals, head to head: the two engines alone, in turns, so each pair of runs is
    # seconds apart rather than a whole round (on a shared host the bandwidth moves within a round).
    # CTranslate2's fastest is the compute type with the best median in those rounds.
    goals = []
    if ct2:
        if "CT2 float32" in times:
            goals.append(("CT2 float32", "fp32", "fp32 against CTranslate2's float32"))
        fastest = (min(ct2, key=lambda name: times[name].median), chosen)
        if not goals or goals[0][:2] != fastest:         # one pair when both goals are the same two engines
            goals.append((*fastest, "glassformer's fastest path against CTranslate2's fastest"))
    duels = []                                          # one Comparison per goal, in the goals' order
    for baseline, candidate, _ in goals:
        duel = timing.measure_in_turns({baseline: engines[baseline], candidate: engines[candidate]},
                                       repeats=args.duel_repeats, threads=None)
        duels.append(timing.Comparison(baseline, candidate, duel[baseline].seconds, duel[candidate].seconds))
    tokens = {name: engine() for name, engine in engines.items()}
    per_token = {name: engine.bytes_per_token for name, engine in engines.items()}
    for name in ct2:  # CTranslate2 reads what our path of the same precision reads
        per_token[name] = per_token["fp32" if name == "CT2 float32" else "int8"]
    for engine in engines.values():
        engine.close()
    shutil.rmtree(folder, ignore_errors=True)
    agree = {name: sum(a == b for a, b in zip(tokens[name], tokens["fp32"])) / n for name in engines}

    print(f"\nGPT-2 small shape, batch 1, prompt {args.prompt_tokens} + {n} new tokens; medians of runs in turns")
    print(f"{'task':34s} {'glassformer':>12s} {'transformers':>12s}  "
          "glassformer's speed / transformers' (interval, runs)")
    for name, c in rows:
        print(f"{name:34s} {c.candidate_timing.median * 1e3:10.1f}ms {c.baseline_timing.median * 1e3:10.1f}ms  "
              f"{c.figure()}: {c.says()}")
    print(f"{'run_with_trace / forward, 256 tok':34s} time ratio {1 / trace.speedup:.2f}x "
          f"(forward's speed / trace's {trace.figure()}; target: trace <= 1.5x the forward's time)")
    print(f"greedy {n} tokens identical to transformers (glassformer's model as loaded, fp32): {same}")

    print(f"\nGreedy decoding with KV cache, {n} tokens; measured read bandwidth {bandwidth / 1e9:.1f} GB/s "
          "(a 256 MB tensor on huge pages, summed, timed in the same rounds as the engines)")
    print(f"{'engine, path':20s} {'tok/s':>7s} {'MB/token':>9s} {'of bandwidth limit':>19s} "
          f"{'same tokens as fp32':>20s}")
    for name, t in times.items():
        tok_s = n / t.median
        note = ""
        if name in paths:
            note = " <- fastest_path picks this" if name == chosen else ("" if name in offered else "  (not offered)")
        print(f"{name:20s} {tok_s:7.1f} {per_token[name] / 2**20:9.1f} {tok_s * per_token[name] / bandwidth:18.0%} "
              f"{agree[name]:19.0%}{note}")

    # Every ratio pairs runs of the same rounds: of the rounds of every engine (against transformers, and
    # the goals as they came out there), then of the head-to-head rounds, which say whether a goal is met.
    pairs = [("transformers fp32", "fp32"), ("transformers fp32", chosen)] + [(b, c) for b, c, _ in goals]
    ratios = [timing.Comparison(b, c, times[b].seconds, times[c].seconds) for b, c in pairs]
    print("\nRatios (runs of the same rounds of every engine, paired):")
    for c in ratios:
        print(f"  {c.candidate} {c.figure()} {c.baseline}'s tokens/s: {c.says()}")
    edge = 1 / (1 + timing.MARGIN)
    if goals:
        print(f"\nThe goals, head to head ({args.duel_repeats} rounds of the two alone, in turns). Goal >= 1, met "
              f"within the {timing.MARGIN:.0%} margin when the whole interval is at or above {edge:.3f} (not shown "
              "slower than that, on this machine, in these rounds):")
    for (_, _, what), c in zip(goals, duels):
        shown = ("goal met" if c.verdict == "faster" else
                 f"goal met within the margin (not shown slower than {edge:.3f}x)" if c.not_slower else "goal NOT shown")
        print(f"  {what}: {c.candidate} {c.figure()} {c.baseline}'s tokens/s: {c.says()}; {shown}")

    quality = []
    if not args.skip_quality:
        print("\nQuality on the trained course model (whole validation split, nats/char; next character picked "
              "as fp32 picks it, 16,384 positions)")
        quality = course_quality([p for p in paths if p != "fp32"] + ["fp32"])
        for name, loss, delta, same_char in quality:
            label = "fp32 (decode path)" if name == "fp32" else name
            print(f"  {label:24s} {loss:.4f}  {delta:+.4f}  {same_char:.2%}")
    if args.record:
        cpu = machine.facts()
        run = {"cpu": cpu.model, "flags": list(cpu.flags or ()), "emulated_avx2": bool(limits), "limits": limits,
               "torch": torch.__version__, "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
               "new_tokens": n, "prompt_tokens": args.prompt_tokens, "bandwidth_gb_s": bandwidth / 1e9,
               "fastest_path": chosen, "offered": list(offered),
               "engines": {name: {"tok_s": n / t.median, "mb_per_token": per_token[name] / 2**20,
                                  "same_tokens_as_fp32": agree[name]}
                           for name, t in times.items()},
               "ratios": [c.as_dict() | {"timed": how, "baseline_seconds": list(c.baseline_seconds),
                                         "candidate_seconds": list(c.candidate_seconds)}
                          for how, group in (("in rounds of every engine", ratios), ("head to head", duels))
                          for c in group],
               "quality": [{"path": name, "val_loss": loss, "delta": delta, "same_next_char": same_char}
                           for name, loss, delta, same_char in quality]}
        runs = json.loads(args.record.read_text()) if args.record.exists() else []
        runs = [r for r in runs if (r["cpu"], r["flags"], r["emulated_avx2"]) != (run["cpu"], run["flags"],
                                                                                  run["emulated_avx2"])]
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(runs + [run], indent=1) + "\n")
        print(f"\nrecorded in {args.record}")


if __name__ == "__main__":
    main()
