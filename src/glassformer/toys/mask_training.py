"""Why training needs the causal mask, measured: one small model trained twice, with and without it.

A language model is trained on every position of a window at once: position t predicts token t+1.
With the mask, position t can only use tokens 0..t, which is also all it will have when it
generates. Without it, position t can look at token t+1 itself, copy it, and get a training loss
far below what any honest predictor can reach; evaluated the honest way (mask on, as generation
must run, since token t+1 does not exist yet) that model is then worse than the one trained
with the mask.

    >>> run = train_pair(train_ids, val_ids, vocab_size=65)                          # doctest: +SKIP
    >>> run.train_loss["no mask"][-1] < run.train_loss["mask"][-1]                  # doctest: +SKIP
    True
    >>> run.honest_loss["no mask"] > run.honest_loss["mask"]                          # doctest: +SKIP
    True

Both models start from the same weights and see the same batches; the only difference is the
mask, switched off through hooks (attention_steps.without_causal_mask), the model code untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glassformer.data import random_batch
from glassformer.model import DecoderLM, ModelConfig
from glassformer.model.attention_steps import without_causal_mask
from glassformer.threads import one_thread

# Small enough for a few seconds of CPU per model: one block of width 32, windows of 16 characters.
# RoPE, because "look one position ahead" is then the same rule at every position and is learned within
# 200 steps (with learned absolute positions, 200 steps were not enough to learn to peek).
SMALL = dict(family="course", n_ctx=16, d_model=32, n_layers=1, n_heads=2, position="rope")


@dataclass
class MaskRun:
    steps: int
    seconds: float                                   # wall time of both training loops (this machine's CPU)
    train_loss: dict[str, list[float]] = field(default_factory=dict)   # "mask" / "no mask": loss per step
    honest_loss: dict[str, float] = field(default_factory=dict)        # held-out loss with the mask on
    peeking_loss: dict[str, float] = field(default_factory=dict)       # held-out loss with the mask off
    next_weight: dict[str, float] = field(default_factory=dict)        # best head's mean weight on key t+1


def _loss(model: DecoderLM, x: torch.Tensor, y: torch.Tensor, masked: bool) -> torch.Tensor:
    with model.hooks({} if masked else without_causal_mask()):
        logits = model(x)                                                # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def held_out_loss(model: DecoderLM, data: torch.Tensor, masked: bool, windows: int = 32, seed: int = 1) -> float:
    """Mean next-token loss on `windows` fixed random windows of `data`, with or without the mask."""
    x, y = random_batch(data, windows, model.config.n_ctx, torch.Generator().manual_seed(seed))
    return _loss(model.eval(), x, y, masked).item()


@torch.no_grad()
def next_token_weight(model: DecoderLM, data: torch.Tensor, windows: int = 32, seed: int = 1) -> float:
    """With the mask off: the attention weight position t gives to position t+1, averaged over
    positions and held-out windows, for the head of the first block that gives it the most."""
    x, _ = random_batch(data, windows, model.config.n_ctx, torch.Generator().manual_seed(seed))
    with model.hooks(without_causal_mask()):
        _, trace = model.eval().run_with_trace(x, names=["blocks.0.attn.pattern"])
    pattern = trace["blocks.0.attn.pattern"]                                # (B, H, T, T)
    ahead = pattern.diagonal(offset=1, dim1=-2, dim2=-1)                    # (B, H, T-1): weight on t+1
    return ahead.mean(dim=(0, 2)).max().item()


def train_pair(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, steps: int = 200, *,
               batch_size: int = 32, lr: float = 1e-2, seed: int = 0,
               on_step: Callable[[str, int, float], None] | None = None) -> MaskRun:
    """Train the SMALL model twice on random windows of train_ids (1-D token ids), once as usual and
    once with the causal mask off in every layer; same initial weights, same batches, AdamW with a
    cosine schedule. Then measure both on val_ids, with the mask on (honest) and off (peeking).

    on_step(name, step, loss) is called after every step of either run (a progress bar).
    """
    config = ModelConfig(vocab_size=vocab_size, **SMALL)
    run = MaskRun(steps, 0.0)
    start = time.perf_counter()
    with one_thread():
        for name, masked in [("mask", True), ("no mask", False)]:
            torch.manual_seed(seed)
            model = DecoderLM(config).train()
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
            gen = torch.Generator().manual_seed(seed)
            losses = run.train_loss[name] = []
            for step in range(1, steps + 1):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
                x, y = random_batch(train_ids, batch_size, config.n_ctx, gen)   # (B, T), (B, T)
                loss = _loss(model, x, y, masked)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if on_step is not None:
                    on_step(name, step, loss.item())
            run.honest_loss[name] = held_out_loss(model, val_ids, masked=True)
            run.peeking_loss[name] = held_out_loss(model, val_ids, masked=False)
            run.next_weight[name] = next_token_weight(model, val_ids)
    run.seconds = time.perf_counter() - start
    return run


def corpus_split(tokenizer, n_chars: int = 200_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n_chars characters of TinyShakespeare as token ids, split 90/10 into train and held-out."""
    from glassformer.data import load_text, train_val_split

    text, _ = load_text()
    return train_val_split(torch.tensor(tokenizer.encode(text[:n_chars])))


def course_tokenizer():
    """The course model's character tokenizer (65 characters of TinyShakespeare)."""
    from glassformer.registry import load_model

    return load_model("course").tokenizer
