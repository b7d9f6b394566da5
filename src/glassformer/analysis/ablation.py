"""Head ablation: switch attention heads off and measure what the model loses.

A head's whole contribution to the model passes through one tensor, its output z (the
pattern-weighted sum of values, hook point `blocks.{i}.attn.z`, shape [B, H, T, Dh]). The
output projection reads the H heads' outputs side by side, so setting head h's slice of z
to zero removes exactly that head's write into the residual stream and nothing else:

    attn_out = concat(z_0, ..., z_{H-1}) @ W_O + b_O  =  sum_h z_h @ W_O[h*Dh:(h+1)*Dh, :] + b_O
    (glassformer's Linear stores W_O as (in, out) = (H*Dh, D))

If the loss rises a lot when a head is off, the model relied on it; if it barely moves, the
other heads (or the MLPs) cover for it or it did little on this text. This is "zero
ablation" (Michel et al. 2019, "Are Sixteen Heads Really Better than One?", ablate heads
the same way and find many can go).

    >>> import torch
    >>> from glassformer.model import DecoderLM, preset
    >>> model = DecoderLM(preset("tiny")).eval()
    >>> ids = torch.tensor([[1, 2, 3, 4, 5]])
    >>> base, table = ablation_table(model, ids)    # table (n_layers, n_heads): loss change per head
    >>> table.shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import torch
import torch.nn.functional as F

from glassformer.model.hooks import HookFn

Head = tuple[int, int]  # (layer, head)


def zero_heads(heads: Iterable[int]) -> HookFn:
    """A hook for `blocks.{i}.attn.z` that zeroes the outputs of the given heads of that layer."""
    chosen = sorted(set(heads))

    def hook(z: torch.Tensor, name: str) -> torch.Tensor:   # z (B, H, T, Dh)
        z = z.clone()
        z[:, chosen] = 0.0                                   # these heads write nothing
        return z

    return hook


def ablation_hooks(heads: Iterable[Head]) -> dict[str, HookFn]:
    """{hook name: hook} that switches off every (layer, head) in `heads`, for `model.hooks(...)`."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    return {f"blocks.{layer}.attn.z": zero_heads(hs) for layer, hs in sorted(by_layer.items())}


@torch.no_grad()
def logits_without(model, ids: torch.Tensor, heads: Iterable[Head] = ()) -> torch.Tensor:
    """The model's logits (B, T, V) for ids (B, T) with the given (layer, head)s switched off."""
    model.eval()
    with model.hooks(ablation_hooks(heads)):
        return model(ids).float()


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean cross-entropy of predicting ids[:, t+1] from logits[:, t]: logits (B, T, V), ids (B, T)."""
    if ids.shape[1] < 2:
        raise ValueError("a loss needs at least 2 tokens: one to read, one to predict")
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()


def loss_without(model, ids: torch.Tensor, heads: Iterable[Head] = ()) -> float:
    """Next-token loss on ids (B, T) with the given (layer, head)s switched off (none: the normal loss)."""
    return next_token_loss(logits_without(model, ids, heads), ids)


def ablation_table(model, ids: torch.Tensor, budget_bytes: int = 2**28) -> tuple[float, torch.Tensor]:
    """(baseline loss, table): table (n_layers, n_heads) says how much the loss on ids (B, T) rises when
    that one head alone is switched off.

    Positive = the model did worse without the head. Every run (the baseline, then each head off in
    turn) is a copy of ids in one big batch: copy g+1 has head g switched off, copy 0 has none. One
    forward pass over the batch is much quicker than L*H+1 small ones; the batch is cut into chunks
    whose logits fit in budget_bytes.
    """
    L, H, V = model.config.n_layers, model.config.n_heads, model.config.vocab_size
    B, T = ids.shape
    runs: list[Head | None] = [None] + [(layer, head) for layer in range(L) for head in range(H)]
    chunk = max(1, budget_bytes // (B * T * V * 4))
    losses = []
    model.eval()
    for first in range(0, len(runs), chunk):
        group = runs[first:first + chunk]
        x = ids.repeat(len(group), 1)                                   # (G*B, T): copy g is rows g*B..g*B+B-1
        hooks = {f"blocks.{layer}.attn.z": zero_in_copies([(g, r[1]) for g, r in enumerate(group)
                                                           if r is not None and r[0] == layer], B)
                 for layer in range(L)}
        with torch.no_grad(), model.hooks(hooks):
            logits = model(x).float()                                   # (G*B, T, V)
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="none")
        losses.append(nll.view(len(group), B * (T - 1)).mean(1))        # (G,): one mean loss per copy
    losses = torch.cat(losses)                                          # (1 + L*H,)
    return losses[0].item(), (losses[1:] - losses[0]).view(L, H)


def zero_in_copies(copies_heads: list[tuple[int, int]], rows: int) -> HookFn:
    """A hook for `blocks.{i}.attn.z` of a batch made of copies of `rows` rows: for each (copy, head),
    zero that head's output in that copy only."""

    def hook(z: torch.Tensor, name: str) -> torch.Tensor:          # z (G*rows, H, T, Dh)
        if not copies_heads:
            return z
        z = z.clone()
        for copy, head in copies_heads:
            z[copy * rows:(copy + 1) * rows, head] = 0.0
        return z

    return hook


@lru_cache(maxsize=8)
def cached_ablation_table(model, ids: tuple[tuple[int, ...], ...]) -> tuple[float, torch.Tensor]:
    """ablation_table for ids given as nested tuples (hashable), cached; returns (baseline loss, table)."""
    return ablation_table(model, torch.tensor(ids))


@lru_cache(maxsize=1)
def held_out_text() -> str:
    """TinyShakespeare's last 10%: the validation split of train.train_val_split (1 character = 1 token there)."""
    from glassformer.data import load_text

    text, _ = load_text()
    return text[int(len(text) * 0.9):]


def validation_sample(tokenizer, windows: int = 8, length: int = 128, seed: int = 0) -> torch.Tensor:
    """(windows, length) token ids from TinyShakespeare's held-out last 10%, at fixed random places.

    The model never trained on this part (train.train_val_split keeps the last 10% out). Only a
    slice of text is tokenized, so this is quick even with a BPE tokenizer.
    """
    held_out = held_out_text()
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for start in torch.randint(0, len(held_out) - 8 * length, (windows,), generator=gen).tolist():
        ids = tokenizer.encode(held_out[start:start + 8 * length])  # 8 characters per token is plenty
        if len(ids) < length:
            raise ValueError(f"the tokenizer made only {len(ids)} tokens from {8 * length} characters")
        rows.append(ids[:length])
    return torch.tensor(rows)                                          # (windows, length)


def next_token_probs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, T-1): the probability the model gave the token that really came next, at each position.

    logits (B, T, V), ids (B, T): entry [b, t] is softmax(logits[b, t])[ids[b, t+1]]. Comparing it with and
    without some heads shows *where* in a text the heads mattered.
    """
    probs = logits[:, :-1].float().softmax(-1)                          # (B, T-1, V)
    return probs.gather(-1, ids[:, 1:, None])[..., 0]                   # (B, T-1)
