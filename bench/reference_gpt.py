"""The reference the benchmarks compare glassformer with: a GPT written as briefly as plain
PyTorch allows (nanoGPT's architecture: learned positions, pre-norm LayerNorm, GELU MLP, tied
unembedding), and nanoGPT's CPU training recipe for TinyShakespeare run on it.

    python bench/reference_gpt.py --budget 570 --metrics out/nanogpt.jsonl

The recipe: 4 layers, 4 heads, d=128, context 64, batch 12, dropout 0, AdamW (lr 1e-3, betas
0.9/0.99, weight decay 0.1 on matrices), 100 warmup steps then cosine to 1e-4, clipping at 1.0,
fp32 (nanoGPT runs a CPU without autocast), eager. Its cosine schedule is fitted to the time
budget on this machine exactly as glassformer's `time_budget` does: the step time measured
over steps 10-60 (still in warmup) sets the number of steps, re-fitted every 500 steps.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class MinimalBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class MinimalGPT(nn.Module):
    def __init__(self, vocab: int, ctx: int, d: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.Sequential(*[MinimalBlock(d, heads) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight
        for name, p in self.named_parameters():  # nanoGPT's init
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc_out.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def loss_of(model, x, y) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def whole_split_loss(model, data: torch.Tensor, ctx: int) -> float:
    """Mean loss over non-overlapping windows covering the split once (as glassformer's cards)."""
    from glassformer.data import sequential_batches

    model.eval()
    total, count = 0.0, 0
    for x, y in sequential_batches(data, 64, ctx):
        total += loss_of(model, x, y).item() * x.numel()
        count += x.numel()
    model.train()
    return total / count


def train_reference(budget: float, metrics: Path, full_eval_at=(120, 300), seed: int = 1337) -> dict:
    from glassformer.data import load_text, random_batch, train_val_split
    from glassformer.tokenizers.char import CharTokenizer

    started = time.perf_counter()
    text, _ = load_text(None)
    tok = CharTokenizer.train(text)
    train_ids, val_ids = train_val_split(torch.tensor(tok.encode(text)))
    ctx, batch, lr, min_lr, warmup = 64, 12, 1e-3, 1e-4, 100
    torch.manual_seed(seed)
    model = MinimalGPT(tok.vocab_size, ctx, 128, 4, 4).train()
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    max_steps, step, times, last_fit = 1_000_000, 0, [], (0, 0.0)
    pending = sorted(full_eval_at)
    metrics.parent.mkdir(parents=True, exist_ok=True)
    with metrics.open("w") as log:
        while step < max_steps:
            t0 = time.perf_counter()
            if step < warmup:
                rate = lr * (step + 1) / warmup
            else:
                progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
                rate = min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
            for g in opt.param_groups:
                g["lr"] = rate
            loss = loss_of(model, *random_batch(train_ids, batch, ctx, gen))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - started
            if 10 < step <= 60:
                times.append(time.perf_counter() - t0)
            if step == 60:  # fit the schedule to the budget, as glassformer's time_budget does
                per_step = sorted(times)[len(times) // 2]
                max_steps = step + int((budget * 0.95 - elapsed) / per_step)
                last_fit = (step, elapsed)
                log.write(json.dumps({"step": step, "fitted_max_steps": max_steps}) + "\n")
            elif step > 60 and step % 500 == 0:  # and re-fit it as glassformer does at every evaluation
                per_step = (elapsed - last_fit[1]) / (step - last_fit[0])
                max_steps = step + max(1, int((budget * 0.95 - elapsed) / per_step))
                last_fit = (step, elapsed)
            if step % 100 == 0:
                log.write(json.dumps({"step": step, "train_loss": round(loss.item(), 5),
                                      "elapsed": round(elapsed, 2)}) + "\n")
            while pending and elapsed >= pending[0]:
                log.write(json.dumps({"step": step, "full_val_loss": round(whole_split_loss(model, val_ids, ctx), 5),
                                      "elapsed": round(time.perf_counter() - started, 2), "at": pending.pop(0)}) + "\n")
        summary = {"step": step, "steps": step, "wall_time_s": round(time.perf_counter() - started, 1),
                   "final_val_loss": round(whole_split_loss(model, val_ids, ctx), 4)}
        summary["wall_time_s"] = round(time.perf_counter() - started, 1)
        log.write(json.dumps(summary) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=570.0, help="seconds of wall time for the whole run")
    parser.add_argument("--metrics", type=Path, default=Path("out/nanogpt-reference/metrics.jsonl"))
    args = parser.parse_args()
    print(json.dumps(train_reference(args.budget, args.metrics)))


if __name__ == "__main__":
    main()
