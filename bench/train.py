"""Training throughput: glassformer's training step vs a minimal plain-PyTorch GPT step.

Same config for both (nanoGPT's CPU recipe: 4 layers, 4 heads, d=128, context 64, batch 12,
vocab 65), same optimizer (AdamW), measured in this one run, fp32 and bf16 autocast.

    python bench/train.py [--steps 60] [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from reference_gpt import MinimalGPT  # bench/ is on sys.path when run as a script


def tokens_per_second(model, batch, steps: int, bf16: bool) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batch

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.numel() / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd step")
    args = parser.parse_args()

    from glassformer.model import build_model, preset

    cfg = preset("tiny", n_ctx=64, d_model=128, n_layers=4, n_heads=4, vocab_size=65)
    gen = torch.Generator().manual_seed(0)
    batch = (torch.randint(0, 65, (12, 64), generator=gen), torch.randint(0, 65, (12, 64), generator=gen))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; config 4L 4H d128 ctx64 batch12 vocab65")
    print(f"{'dtype':6s} {'glassformer tok/s':>18s} {'minimal GPT tok/s':>18s} {'ours/minimal':>13s}")
    base_fp32 = None
    for bf16 in (False, True):
        torch.manual_seed(0)
        ours = build_model(cfg).train()
        torch.manual_seed(0)
        ref = MinimalGPT(65, 64, 128, 4, 4).train()
        a = tokens_per_second(ours, batch, args.steps, bf16)
        b = tokens_per_second(ref, batch, args.steps, bf16)
        base_fp32 = base_fp32 or b
        print(f"{'bf16' if bf16 else 'fp32':6s} {a:18,.0f} {b:18,.0f} {a / b:12.2f}x")
    print(f"glassformer bf16 vs minimal fp32: {a / base_fp32:.2f}x (target >= 1.5x)")
    if args.compile:  # what `glassformer train --compile` does: the same step, torch.compile'd
        torch.manual_seed(0)
        fused = tokens_per_second(torch.compile(build_model(cfg).train()), batch, args.steps, True)
        print(f"glassformer bf16 + torch.compile: {fused:,.0f} tok/s = {fused / a:.2f}x eager bf16, "
              f"{fused / base_fp32:.2f}x minimal fp32")


if __name__ == "__main__":
    main()
