"""Mixture of experts: grouped dispatch vs every expert on every token, and MoE vs its dense twin.

Measured in this one run, with glassformer/timing.py (one thread, warm-up, in turns, the median
ratio with its interval and the number of runs):

1. one MoE layer of 8 SwiGLU experts (D=128, expert width 172, 2 per token) on B x T tokens:
   model/moe.py's grouped dispatch (each expert runs once, on its own tokens) against
   `every_expert` (all 8 experts on all tokens, unchosen outputs weighted 0). Issue 19 asks >= 3x.
2. the course model (dense SwiGLU, width 344) against the same model with that MLP replaced by
   8 experts of width 172, 2 per token: equal active expert parameters per token (the router
   adds D x 8 = 1,024 per layer). Forward (no grad, eval) and a training step (forward +
   backward), as time per token. Issue 19 asks MoE <= 1.5x the dense twin's time per token.

    python bench/moe.py [--repeats 9] [--batch 8] [--seq 256]
"""

from __future__ import annotations

import argparse
import platform
import subprocess

import torch

from glassformer import timing
from glassformer.model import build_model, preset
from glassformer.model.moe import MoE, every_expert


def cpu_name() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("Flags")), [])
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} ({', '.join(have) or 'no avx2'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="pairs timed in turns per comparison")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    args = parser.parse_args()
    B, T = args.batch, args.seq
    n_tokens = B * T
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; fp32, 1 thread; {B} x {T} = {n_tokens} tokens per call")

    # 1. grouped dispatch vs every expert on every token, one layer.
    torch.manual_seed(0)
    layer = MoE("swiglu", 128, 172, n_experts=8, experts_per_token=2).eval()
    x = torch.randn(B, T, 128)
    with torch.no_grad():
        diff = (layer(x) - every_expert(layer, x)).abs().max().item()
        c = timing.compare(lambda: every_expert(layer, x), lambda: layer(x), names=("every expert", "grouped"),
                           repeats=args.repeats)
    print(f"\n1. one MoE layer, 8 experts, 2 per token (outputs agree to {diff:.1e}):")
    print(f"   every expert on every token {c.baseline_timing.figure()}, grouped {c.candidate_timing.figure()}")
    print(f"   grouped is {c.figure()} faster ({c.verdict}); required >= 3x: "
          f"{'met' if c.interval[0] >= 3 else 'met at the median' if c.speedup >= 3 else 'NOT met'}")

    # 2. MoE model vs its dense twin with equal active parameters per token.
    torch.manual_seed(0)
    dense = build_model(preset("course", dropout=0.0))
    moe = build_model(preset("course", dropout=0.0, n_experts=8, experts_per_token=2, d_expert=172))
    active = (moe.num_params() - sum(p.numel() for n, p in moe.named_parameters() if ".mlp.experts." in n)
              + sum(p.numel() for n, p in moe.named_parameters() if ".mlp.experts." in n) * 2 // 8)
    print(f"\n2. course model: dense twin {dense.num_params():,} parameters; MoE {moe.num_params():,} total, "
          f"{active:,} active per token")
    ids = torch.randint(0, 65, (B, T), generator=torch.Generator().manual_seed(0))

    def forward(model):
        with torch.no_grad():
            model(ids)

    def train_step(model):
        model.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        torch.nn.functional.cross_entropy(logits.reshape(-1, 65), ids[:, 1:].reshape(-1)).backward()

    for what, fn, models in (("forward", forward, (dense.eval(), moe.eval())),
                             ("training step", train_step, (dense.train(), moe.train()))):
        c = timing.compare(lambda: fn(models[0]), lambda: fn(models[1]), names=("dense", "moe"), repeats=args.repeats)
        per_token = [t.median / n_tokens * 1e6 for t in (c.baseline_timing, c.candidate_timing)]
        low, high = 1 / c.interval[1], 1 / c.interval[0]
        ratio = 1 / c.speedup
        print(f"   {what}: dense {per_token[0]:.2f} µs/token, MoE {per_token[1]:.2f} µs/token; "
              f"MoE/dense time {ratio:.2f}× ({low:.2f}–{high:.2f}×, {c.runs} runs in turns); "
              f"required <= 1.5x: {'met' if high <= 1.5 else 'met at the median' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
