"""Training throughput: glassformer's training step vs a minimal plain-PyTorch GPT step.

Same config for both (nanoGPT's CPU recipe: 4 layers, 4 heads, d=128, context 64, batch 12,
vocab 65), same optimizer (AdamW), measured in this one run, fp32 and bf16 autocast. Timed by
glassformer/timing.py: runs of `--chunk` steps of each model in turns (after 5 warm-up steps),
tokens/s from the median run, the ratio with its interval and number of runs.

    python bench/train.py [--steps 60] [--chunk 10] [--compile]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from glassformer import timing
from reference_gpt import MinimalGPT  # bench/ is on sys.path when run as a script


def training_steps(model, batch, bf16: bool, chunk: int):
    """A function running `chunk` AdamW training steps of `model` on `batch`."""
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
    return lambda: [step() for _ in range(chunk)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="steps of each model, in runs of --chunk")
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd step")
    args = parser.parse_args()

    from glassformer.model import build_model, preset

    cfg = preset("tiny", n_ctx=64, d_model=128, n_layers=4, n_heads=4, vocab_size=65)
    gen = torch.Generator().manual_seed(0)
    batch = (torch.randint(0, 65, (12, 64), generator=gen), torch.randint(0, 65, (12, 64), generator=gen))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; config 4L 4H d128 ctx64 batch12 vocab65")
    runs, per_run = max(1, args.steps // args.chunk), args.chunk * batch[0].numel()

    def models():
        torch.manual_seed(0)
        ours = build_model(cfg).train()
        torch.manual_seed(0)
        return ours, MinimalGPT(65, 64, 128, 4, 4).train()

    ours32, ref32 = models()
    ours16, ref16 = models()
    fns = {"minimal fp32": training_steps(ref32, batch, False, args.chunk),
           "glassformer fp32": training_steps(ours32, batch, False, args.chunk),
           "minimal bf16": training_steps(ref16, batch, True, args.chunk),
           "glassformer bf16": training_steps(ours16, batch, True, args.chunk)}
    if args.compile:  # what `glassformer train --compile` does: the same step, torch.compile'd
        torch.manual_seed(0)
        fns["glassformer bf16 + compile"] = training_steps(torch.compile(build_model(cfg).train()), batch, True,
                                                           args.chunk)
    times = timing.measure_in_turns(fns, repeats=runs, threads=None)   # run i of each is from round i
    print(f"{'step':28s} {'tok/s (median run)':>19s}  speed / minimal fp32 (interval, runs)")
    for name, t in times.items():
        c = timing.Comparison("minimal fp32", name, times["minimal fp32"].seconds, t.seconds)
        versus = "" if name == "minimal fp32" else f"{c.figure()}: {c.says()}"
        print(f"{name:28s} {per_run / t.median:19,.0f}  {versus}")
    same = timing.Comparison("minimal bf16", "glassformer bf16", times["minimal bf16"].seconds,
                             times["glassformer bf16"].seconds)
    print(f"glassformer bf16 / minimal bf16: {same.figure()}: {same.says()}")
    print("target: glassformer bf16 >= 1.5x minimal fp32")


if __name__ == "__main__":
    main()
