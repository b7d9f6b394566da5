"""Speculative decoding: a small model guesses, the big model checks several guesses at once.

Decoding one token reads every weight of the big (target) model once, and reading k+1
positions in one call costs about the same as reading one. So let a small (draft) model,
cheap to run, propose k tokens one by one; then run the target once on all of them. Its
logits at each proposed position say what it would have chosen there itself:

- greedy (temperature 0): keep proposals while they equal the target's own argmax; at the
  first mismatch take the target's token instead. The text is exactly greedy target text.
- sampling: keep proposal x (drawn from the draft's q) with probability min(1, p(x)/q(x));
  on a rejection draw instead from max(0, p - q), renormalized. Every token then has exactly
  the target's distribution p (Leviathan et al. 2023; Chen et al. 2023), however bad the draft.

When all k proposals are kept the target's logits after the last one give one more token
for free. Each round therefore adds between 1 and k+1 tokens for one target call.

    >>> from glassformer.model import build_model, preset
    >>> target = build_model(preset("tiny")).eval()
    >>> draft = build_model(preset("tiny", n_layers=1)).eval()
    >>> out = speculative_generate(target, draft, [5, 6, 7], 10, k=3)
    >>> from glassformer.generate import generate
    >>> out.tokens == generate(target, [5, 6, 7], 10, temperature=0).tolist()[3:]
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from glassformer.generate import eos_ids
from glassformer.model import DecoderLM
from glassformer.sampling import distribution, make_generator


@dataclass
class Round:
    """One draft-then-verify round, handed to the on_round observer."""

    proposed: list[int]        # the draft's k guesses
    accepted: int              # how many of them the target kept (a prefix)
    added: list[int]           # the tokens this round appended: the kept guesses + one from the target


@dataclass
class Speculation:
    tokens: list[int]                          # the new tokens
    rounds: list[Round] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Kept guesses / proposed guesses."""
        proposed = sum(len(r.proposed) for r in self.rounds)
        return sum(r.accepted for r in self.rounds) / proposed if proposed else 0.0


def verify(p: torch.Tensor, q: torch.Tensor, proposed: Sequence[int],
           generator: torch.Generator | None) -> tuple[int, int]:
    """Decide how many proposals to keep and which token follows them.

    p: (k+1, V) the target's distributions at the k proposed positions and one past them;
    q: (k, V) the draft's distributions the proposals were drawn from. Returns (kept, next token).
    """
    for i, x in enumerate(proposed):
        ratio = p[i, x] / q[i, x]
        u = torch.rand((), generator=generator)
        if u < ratio:                            # kept with probability min(1, p/q)
            continue
        residual = (p[i] - q[i]).clamp(min=0)    # what p has that q over-proposed away
        if residual.sum() <= 0:                  # p == q here (cannot reject, but be safe): use p
            residual = p[i]
        return i, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))
    return len(proposed), int(torch.multinomial(p[-1], 1, generator=generator))


@torch.inference_mode()
def speculative_generate(target: DecoderLM, draft: DecoderLM, prompt: Sequence[int], max_new_tokens: int, *,
                         k: int = 4, temperature: float = 0.0, seed: int | None = None,
                         eos_id: int | Sequence[int] | None = None,
                         on_round: Callable[[Round], None] | None = None) -> Speculation:
    """Generate up to max_new_tokens after `prompt` (one sequence) with `draft` proposing k tokens a round.

    Both models must share the vocabulary. temperature 0 is greedy (output identical to the
    target's greedy output); above 0 each token is distributed exactly as the target's
    sampling at that temperature would be.
    """
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"draft and target must share a vocabulary: {draft.config.vocab_size} vs "
                         f"{target.config.vocab_size} entries")
    if k < 1:
        raise ValueError(f"k (guesses per round) must be >= 1, got {k}")
    context = [int(t) for t in prompt]
    if not context:
        raise ValueError("empty prompt: give at least one token")
    need = len(context) + max_new_tokens + k + 1
    limit = min(target.config.n_ctx, draft.config.n_ctx)
    if need > limit:
        raise ValueError(f"prompt of {len(context)} tokens + {max_new_tokens} new + {k + 1} of look-ahead exceeds "
                         f"the models' context of {limit} tokens")
    generator = make_generator(seed, "cpu")
    stops = set(eos_ids(eos_id))
    t_cache, d_cache = target.new_cache(1, need), draft.new_cache(1, need)
    out = Speculation([])
    while len(out.tokens) < max_new_tokens:
        start = len(context)
        # The draft reads what it has not seen yet, then guesses k tokens one at a time.
        logits = draft(torch.tensor([context[d_cache.length:]]), cache=d_cache, last_only=True)[0, -1]
        proposed, q_rows = [], []
        for i in range(k):
            q = distribution(logits, temperature)                               # (V,)
            x = int(torch.multinomial(q, 1, generator=generator))
            proposed.append(x)
            q_rows.append(q)
            if i < k - 1:
                logits = draft(torch.tensor([[x]]), cache=d_cache)[0, -1]
        # The target reads the same unseen tokens plus all k guesses in one call.
        fresh = context[t_cache.length:] + proposed
        t_logits = target(torch.tensor([fresh]), cache=t_cache)[0, -(k + 1):]   # (k+1, V)
        p = distribution(t_logits, temperature)                                 # (k+1, V)
        kept, nxt = verify(p, torch.stack(q_rows), proposed, generator)
        added = proposed[:kept] + [nxt]
        context += added
        # Forget the rejected guesses; the token the target chose is read next round.
        t_cache.rewind(start + kept)
        d_cache.rewind(min(d_cache.length, start + kept))
        round_ = Round(proposed, kept, added)
        out.rounds.append(round_)
        if on_round is not None:
            on_round(round_)
        out.tokens += added
        if stops and stops.intersection(added):
            first = min(i for i, t in enumerate(out.tokens) if t in stops)
            out.tokens = out.tokens[:first + 1]
            break
    out.tokens = out.tokens[:max_new_tokens]
    return out
