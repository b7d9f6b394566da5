"""The simplest language model: guess the next token from the current token alone.

A bigram model is the two ends of a Transformer with nothing in between: the embedding
table turns the current token id into a vector (D), a linear layer turns that vector into
one score per vocabulary entry (V). No attention, no blocks, so nothing before the current
token can matter. Its loss is the baseline a Transformer has to beat: the gap between the
two is what attention and the blocks buy.

    >>> model = Bigram(vocab_size=65, d_model=16)
    >>> model(torch.tensor([[3, 1, 4]])).shape
    torch.Size([1, 3, 65])

Counting does the same job without training: p(b | a) = count(a b) / count(a). The lowest
average loss any bigram model can reach on a text is the conditional entropy of those
counts (`count_entropy`); training the embedding + linear model approaches it
(tests/test_ch02_embeddings.py checks it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.data import random_batch, sequential_batches, spread_windows
from glassformer.model.embedding import Embed
from glassformer.model.linear import Linear
from glassformer.threads import one_thread


class Bigram(nn.Module):
    """ids (B, T) -> logits (B, T, V): the model's Embed, then one Linear layer; position t sees token t only."""

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.embed = Embed(vocab_size, d_model, positions=None)   # the same class the Transformer uses
        self.head = Linear(d_model, vocab_size)                   # W (D, V) and a bias (V)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)                                       # (B, T, D)
        return self.head(x)                                       # (B, T, V)

    def next_token_probs(self, token: int) -> torch.Tensor:
        """p(next | current = token), shape (V,)."""
        with torch.no_grad():
            return self(torch.tensor([[token]]))[0, 0].float().softmax(-1)


@dataclass
class BigramRun:
    model: Bigram
    steps: int
    seconds: float                       # wall time of the training loop (this machine's CPU)
    losses: list[tuple[int, float]] = field(default_factory=list)   # (step, training loss of that batch)


def train_bigram(data: torch.Tensor, vocab_size: int, d_model: int, steps: int = 200, *, batch_size: int = 16,
                 block_size: int = 64, lr: float = 3e-2, seed: int = 0,
                 on_step: Callable[[int, float], None] | None = None) -> BigramRun:
    """Train a Bigram on random windows of `data` (1-D token ids) with AdamW: the same loop as
    the Transformer's (batch -> cross-entropy -> backprop -> step), minus everything else.

    on_step(step, loss) is called after every step (a progress bar, a live chart).
    """
    with one_thread():
        torch.manual_seed(seed)
        model = Bigram(vocab_size, d_model)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(seed)
        losses = []
        start = time.perf_counter()
        for step in range(1, steps + 1):
            lr_now = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))   # cosine decay to 0
            for group in opt.param_groups:
                group["lr"] = lr_now
            x, y = random_batch(data, batch_size, block_size, gen)             # (B, T), (B, T)
            logits = model(x)                                                  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append((step, loss.item()))
            if on_step is not None:
                on_step(step, loss.item())
        model.eval()
        return BigramRun(model, steps, time.perf_counter() - start, losses)


def counts(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """C (V, V): C[a, b] = how often token b directly follows token a in `ids`.

        >>> counts(torch.tensor([0, 1, 0, 1, 1]), 2).tolist()
        [[0, 2], [1, 1]]
    """
    pairs = ids[:-1] * vocab_size + ids[1:]                                # (N - 1,)
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)


def count_entropy(table: torch.Tensor) -> float:
    """The average loss (nats per token) of the counting bigram on the text it counted:
    -sum_ab C[a,b]/N * log(C[a,b] / C[a,:].sum()). No bigram model does better on that text.

        >>> round(count_entropy(torch.tensor([[0, 2], [1, 1]])), 4)   # 2 of 4 pairs are a coin flip
        0.3466
    """
    c = table.double()
    rows = c.sum(1, keepdim=True)                                          # (V, 1)
    seen = c > 0
    return float(-(c[seen] * (c / rows.clamp_min(1))[seen].log()).sum() / c.sum())


class CountBigram(nn.Module):
    """The counting bigram as a model, so it can be scored like any other: logits = log p(b | a)
    with p(b | a) = (C[a, b] + alpha) / (C[a, :].sum() + alpha V). The small alpha gives a pair
    never seen in counting a tiny probability instead of 0 (whose log is -infinity)."""

    def __init__(self, table: torch.Tensor, alpha: float = 0.01) -> None:
        super().__init__()
        c = table.double() + alpha                                          # (V, V)
        self.register_buffer("logp", (c / c.sum(1, keepdim=True)).log().float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.logp[ids]                                               # (B, T, V): already log-probabilities


def window_losses(model: nn.Module, data: torch.Tensor, block_size: int, windows: int | None = None) -> torch.Tensor:
    """Next-token cross-entropy (nats) of every target scored, one row per window: (N, block_size).

    windows=None: consecutive windows covering the whole split (exactly the targets
    `train.evaluate(model, data, None)` scores for a model with context block_size); a number:
    that many `spread_windows` (faster, a sample). Give two models the same arguments and they
    are scored on the same targets, row for row, so their losses can be compared target by target."""
    was_training = model.training
    model.eval()
    if windows is None:
        batches = sequential_batches(data, 16, block_size)
    else:
        batches = [spread_windows(data, block_size, windows)]
    rows = []
    with torch.no_grad():
        for x, y in batches:
            logits = model(x).float()                                      # (B, T, V)
            rows.append(F.cross_entropy(logits.transpose(1, 2), y, reduction="none"))   # (B, T)
    model.train(was_training)
    return torch.cat(rows)                                                 # (N, T)


def mean_loss(model: nn.Module, data: torch.Tensor, block_size: int, windows: int | None = None) -> float:
    """Mean next-token cross-entropy (nats per token) of any ids -> logits model, over the
    targets `window_losses` scores (windows=None: the whole split; a number: that many windows
    spread across it)."""
    return float(window_losses(model, data, block_size, windows).double().mean())


@dataclass(frozen=True)
class LossGap:
    """How much higher model B's loss is than model A's on the same targets, and how sure that is."""
    mean: float      # mean over all targets of loss_B - loss_A (nats per token)
    stderr: float    # standard error of `mean`, from the spread of the per-window means (nan for 1 window)
    windows: int
    tokens: int

    def within_noise(self) -> bool:
        """True when `mean` is within two standard errors of 0 (or there is no spread to judge by):
        on these windows the two models cannot be told apart."""
        return not math.isfinite(self.stderr) or abs(self.mean) < 2 * self.stderr


def loss_gap(losses_a: torch.Tensor, losses_b: torch.Tensor) -> LossGap:
    """B's loss minus A's, target by target, from two `window_losses` of the same windows (N, T).

    Neighbouring targets of one window are not independent (a hard passage is hard for both
    models), so the spread is taken over windows: the standard error is the standard deviation
    of the N per-window mean differences divided by sqrt(N).

        >>> gap = loss_gap(torch.zeros(4, 2), torch.tensor([[1., 1.], [3., 3.], [1., 1.], [3., 3.]]))
        >>> gap.mean, round(gap.stderr, 4), gap.within_noise()
        (2.0, 0.5774, False)
    """
    if losses_a.shape != losses_b.shape:
        raise ValueError(f"the two models were scored on different targets: {tuple(losses_a.shape)} "
                         f"vs {tuple(losses_b.shape)}")
    diff = (losses_b - losses_a).double()                                  # (N, T)
    per_window = diff.mean(dim=1)                                          # (N,)
    n = per_window.numel()
    stderr = float(per_window.std() / math.sqrt(n)) if n > 1 else math.nan
    return LossGap(float(diff.mean()), stderr, n, diff.numel())
