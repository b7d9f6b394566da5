"""Induction heads: find them by score, and check what they do by switching them off.

An **induction head** completes a pattern seen earlier in the context: at a token A that
appeared before as "A B", it attends to the B that followed the earlier A and copies it, so
the model predicts B again. On a random sequence repeated twice,

    x_0 x_1 ... x_{n-1} | x_0 x_1 ... x_{n-1}        (period n, length 2n)

nothing in the first half can be predicted (random tokens), and everything in the second half
after its first token can, from the first half. Such a head has a recognisable pattern: from query t in the repeat
(token x_{t-n}) it attends to key t - n + 1 (the token after x_{t-n} in the first copy), a
stripe parallel to the diagonal, n - 1 positions to its left (Olsson et al. 2022, "In-context
Learning and Induction Heads"; Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits").

Scores, each a mean attention weight between 0 and 1 (per layer and head):

    induction(h) = mean over queries t = n .. 2n-1 of pattern_h[t, t - n + 1]
    previous(h)  = mean over queries t = 1 .. T-1 of pattern_h[t, t - 1]

A head that spreads its weight evenly over the t + 1 keys it may see gives 1 / (t + 1) to each:
that is the level of "no preference" to compare a score with (`uniform_induction`).

The in-context-learning score (Olsson et al.: loss at a late token minus loss at an early one)
is here the mean loss where the repeat can be predicted minus the mean loss where nothing can:
negative when the model uses what it read earlier.

In a two-layer attention-only model the induction head cannot work alone. Its key at position
s must say "the token *before* me was A", and only a head of an earlier layer can move that
fact into position s: a **previous-token head**. `composition_test` switches that head off and
measures the induction head's score again (and, as a control, switches off another head of the
same layer instead).

    >>> ids = repeated_random(vocab_size=10, length=4, seed=0)
    >>> ids.shape, bool((ids[0, :4] == ids[0, 4:]).all())
    (torch.Size([1, 8]), True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from glassformer.analysis.ablation import ablation_hooks
from glassformer.threads import one_thread

Head = tuple[int, int]  # (layer, head)


def repeated_random(vocab_size: int, length: int, seed: int, batch: int = 1, low: int = 0) -> torch.Tensor:
    """(batch, 2 * length) ids: `length` random tokens from [low, vocab_size), then the same tokens again.

    Reproducible from `seed` (its own torch.Generator; the global random state is untouched)."""
    if length < 2:
        raise ValueError(f"a repeated sequence needs a period of at least 2 tokens, got {length}")
    if not 0 <= low < vocab_size:
        raise ValueError(f"low must be in [0, {vocab_size}), got {low}")
    gen = torch.Generator().manual_seed(seed)
    first = torch.randint(low, vocab_size, (batch, length), generator=gen)    # (B, n)
    return torch.cat([first, first], dim=1)                                    # (B, 2n)


def repeat_text(ids: list[int], max_tokens: int) -> tuple[list[int], int]:
    """(ids + ids, period): a text's ids followed by themselves, the text first cut to its last
    max_tokens // 2 ids so that both copies fit in max_tokens."""
    keep = ids[-(max_tokens // 2):] if max_tokens >= 2 else []
    if len(keep) < 2:
        raise ValueError("a repeated text needs at least 2 tokens per copy")
    return keep + keep, len(keep)


def induction_score(pattern: torch.Tensor, period: int) -> torch.Tensor:
    """pattern (B, H, T, T) of a sequence that repeats with `period` -> (H,) induction scores.

    The mean over batch rows and queries t = period .. T-1 of the weight on key t - period + 1:
    the position right after the earlier occurrence of query t's token.

        >>> p = torch.zeros(1, 1, 4, 4); p[0, 0, 2, 1] = 1.0; p[0, 0, 3, 2] = 0.5
        >>> induction_score(p, period=2)          # (1.0 + 0.5) / 2
        tensor([0.7500])
    """
    B, H, T, S = pattern.shape
    if T != S:
        raise ValueError(f"need a square pattern (no KV cache), got {tuple(pattern.shape)}")
    if not 1 <= period < T:
        raise ValueError(f"period must be in [1, {T}) for {T} positions, got {period}")
    t = torch.arange(period, T)                                                # queries in the repeat
    return pattern.float()[:, :, t, t - period + 1].mean(dim=(0, 2))           # (B, H, T-n) -> (H,)


def uniform_induction(T: int, period: int) -> float:
    """The induction score of a head that spreads its weight evenly over every key it may see:
    the mean of 1 / (t + 1) over the same queries t = period .. T-1."""
    return sum(1.0 / (t + 1) for t in range(period, T)) / (T - period)


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """pattern (B, H, T, T) -> (H,): the mean weight on the token just before the query, over queries 1..T-1.

        >>> p = torch.eye(3)[None, None].roll(-1, dims=-1).tril(); p[0, 0, 0, 0] = 1.0
        >>> previous_token_score(p)
        tensor([1.])
    """
    T = pattern.shape[-1]
    t = torch.arange(1, T)
    return pattern.float()[:, :, t, t - 1].mean(dim=(0, 2))                    # (H,)


@dataclass
class HeadScores:
    induction: torch.Tensor   # (L, H)
    previous: torch.Tensor    # (L, H)
    patterns: torch.Tensor    # (L, B, H, T, T): the attention patterns they were computed from

    def best(self, kind: str = "induction", layer: int | None = None) -> Head:
        """The (layer, head) with the highest score of `kind` (in `layer` only, if given)."""
        table = getattr(self, kind)
        if layer is not None:
            return layer, int(table[layer].argmax())
        flat = int(table.flatten().argmax())
        return flat // table.shape[1], flat % table.shape[1]


@torch.no_grad()
def head_scores(model, ids: torch.Tensor, period: int, heads_off: Iterable[Head] = ()) -> HeadScores:
    """Every head's induction and previous-token score on ids (B, T) that repeat with `period`,
    optionally with some heads switched off (through the `blocks.{i}.attn.z` hooks, so a head
    switched off in layer 0 changes what the heads of layer 1 see)."""
    model.eval()
    with model.hooks(ablation_hooks(heads_off)), one_thread():
        _, trace = model.run_with_trace(ids, names="blocks.*.attn.pattern")
    patterns = torch.stack([trace[f"blocks.{i}.attn.pattern"] for i in range(model.config.n_layers)])
    return HeadScores(torch.stack([induction_score(p, period) for p in patterns]),
                      torch.stack([previous_token_score(p) for p in patterns]), patterns)


@torch.no_grad()
def per_position_loss(model, ids: torch.Tensor, heads_off: Iterable[Head] = ()) -> torch.Tensor:
    """(B, T-1): entry [b, t] is -ln p(ids[b, t+1] | ids[b, :t+1]), with the given heads switched off."""
    model.eval()
    with model.hooks(ablation_hooks(heads_off)), one_thread():
        logits = model(ids).float()                                            # (B, T, V)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")   # (B, T-1)


def halves(losses: torch.Tensor, period: int) -> tuple[float, float]:
    """(first, repeat): mean loss predicting tokens 1..n-1 (first copy: random, nothing to learn from)
    and tokens n+1..2n-1 (the repeat, each predictable from the first copy). losses (B, T-1) from
    per_position_loss, where column t predicts token t + 1. Token 0 has no prediction, and token n,
    the first of the repeat, is left out of both: nothing before it says the sequence will repeat."""
    T = losses.shape[1] + 1
    if not 2 <= period < T - 1:
        raise ValueError(f"period must be in [2, {T - 1}) for {T} tokens, got {period}")
    return losses[:, :period - 1].mean().item(), losses[:, period:].mean().item()


def in_context_score(losses: torch.Tensor, period: int) -> float:
    """Loss late in the context minus loss early (Olsson et al. 2022's in-context-learning score),
    here: the repeat's mean loss minus the first copy's (see `halves`). Negative = the model
    predicts better once it has seen the pattern."""
    first, repeat = halves(losses, period)
    return repeat - first


@dataclass
class Ablation:
    heads_off: list[Head]
    before: HeadScores
    after: HeadScores
    loss_before: tuple[float, float]     # (first copy, repeat) with every head on
    loss_after: tuple[float, float]      # the same with heads_off switched off

    @property
    def repeat_loss_rise(self) -> float:
        return self.loss_after[1] - self.loss_before[1]

    @property
    def icl_before(self) -> float:
        return self.loss_before[1] - self.loss_before[0]

    @property
    def icl_after(self) -> float:
        return self.loss_after[1] - self.loss_after[0]


def ablate(model, ids: torch.Tensor, period: int, heads_off: Iterable[Head],
           before: HeadScores | None = None) -> Ablation:
    """Scores and losses on repeated ids with every head on, and with `heads_off` switched off."""
    heads_off = sorted(set(heads_off))
    before = before if before is not None else head_scores(model, ids, period)
    return Ablation(heads_off, before, head_scores(model, ids, period, heads_off),
                    halves(per_position_loss(model, ids), period),
                    halves(per_position_loss(model, ids, heads_off), period))


@dataclass
class Composition:
    previous_head: Head          # the layer-0 head with the highest previous-token score
    induction_head: Head         # the layer-1 head with the highest induction score
    control_head: Head           # another layer-0 head (the one with the lowest previous-token score)
    score: float                 # the induction head's score, every head on
    score_without_previous: float
    score_without_control: float
    repeat_loss: float           # the repeat's mean loss, every head on
    repeat_loss_without_previous: float
    repeat_loss_without_control: float


def composition_test(model, ids: torch.Tensor, period: int, scores: HeadScores | None = None,
                     first: int = 0, second: int = 1) -> Composition:
    """Switch off layer `first`'s best previous-token head and measure layer `second`'s best
    induction head again; as a control, switch off another head of layer `first` instead (the one
    least like a previous-token head). Needs a model with at least two heads in layer `first`."""
    if model.config.n_heads < 2:
        raise ValueError("the control needs a second head in the earlier layer")
    scores = scores if scores is not None else head_scores(model, ids, period)
    prev = scores.best("previous", layer=first)
    ind = scores.best("induction", layer=second)
    order = scores.previous[first].argsort().tolist()                          # lowest previous-token score first
    control = (first, next(h for h in order if h != prev[1]))
    without_prev = head_scores(model, ids, period, [prev])
    without_control = head_scores(model, ids, period, [control])
    repeat = lambda off: halves(per_position_loss(model, ids, off), period)[1]  # noqa: E731
    return Composition(prev, ind, control, scores.induction[ind].item(), without_prev.induction[ind].item(),
                       without_control.induction[ind].item(), repeat([]), repeat([prev]), repeat([control]))
