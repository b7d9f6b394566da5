"""Is an ability "emergent", or is the metric sharp? Two measures on the same models (chapter 12).

Wei et al. 2022 ("Emergent Abilities of Large Language Models") collected tasks on which models
score near zero up to some size and then much higher: abilities that seem to appear suddenly.
Schaeffer et al. 2023 ("Are Emergent Abilities of Large Language Models a Mirage?") argued that
many such jumps come from the metric: exact match of a k-token answer needs every token right,
so if each is right with probability p (independently), the score is about p^k, which stays near
0 while p grows and then rises steeply; the per-token loss of the same models falls smoothly.

Here both are measured on the same continuations of held-out text: the next k characters after
the first `prefix` letters of a long word ("Verona" given "Ve"), every character predicted from the
real text before it (teacher forcing). Exact match of all k characters equals what greedy decoding
would write: if every step's top choice is the true next character, greedy writes exactly them.

    per-character loss     mean of -ln p(true character) over the k positions
    per-character accuracy share of positions whose top choice is the true character
    exact match (j)        share of continuations whose first j characters are all top choices

    >>> windows = word_continuations("a Verona b Veronese " * 40, 5, k=3, context=8, min_word=6)
    >>> windows.texts[0]                 # 8 characters of context (ending in the prefix "Ve"), 3 to predict
    ('ona b Ve', 'ron')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.threads import one_thread

# The small character models scripts/ship_induction.py trains for this question (one recipe, four sizes).
LADDER_DIR = Path(__file__).parents[1] / "assets" / "induction" / "ladder"
# The continuations the page and the card score: 600 words of 8+ letters, 3 letters given, 5 to predict,
# 40 characters of context (the page scores six models on them in a few seconds on one core).
CONTINUATIONS = dict(n=600, k=5, prefix=3, context=40, min_word=8)


@dataclass
class Continuations:
    texts: list[tuple[str, str]]   # (context, continuation) pairs, as text
    context: int                   # characters of context before each continuation
    k: int                         # characters of continuation


def word_continuations(text: str, n: int, k: int = 5, prefix: int = 2, context: int = 56,
                       min_word: int = 7) -> Continuations:
    """n (context, continuation) pairs from `text`: each continuation is the k characters after the
    first `prefix` letters of a word of at least min_word letters (so it stays inside the word), the
    context the `context` characters before it (ending with those first letters). Words are taken
    evenly spread over the text."""
    if k + prefix > min_word:
        raise ValueError(f"k + prefix ({k + prefix}) must be at most min_word ({min_word})")
    starts = [m.start() for m in re.finditer(rf"\b[A-Za-z]{{{min_word},}}\b", text)
              if m.start() + prefix >= context]
    if len(starts) < n:
        raise ValueError(f"the text has only {len(starts)} words of {min_word}+ letters with {context} characters "
                         f"before them; asked for {n}")
    chosen = [starts[i * len(starts) // n] for i in range(n)]
    pairs = [(text[s + prefix - context:s + prefix], text[s + prefix:s + prefix + k]) for s in chosen]
    return Continuations(pairs, context, k)


@torch.no_grad()
def continuation_scores(model, tokenizer, cont: Continuations) -> dict:
    """{"loss", "accuracy", "exact": [exact match of the first j characters for j = 1..k]} for a
    character-level model on the continuations (one forward pass over all of them)."""
    ids = torch.tensor([tokenizer.encode(c + t) for c, t in cont.texts])       # (N, context + k)
    k = cont.k
    model.eval()
    with one_thread():
        logits = model(ids[:, :-1]).float()                                     # (N, context + k - 1, V)
    logits, target = logits[:, -k:], ids[:, -k:]                                # the k continuation predictions
    right = logits.argmax(-1) == target                                         # (N, k)
    return {"loss": F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)).item(),
            "accuracy": right.float().mean().item(),
            "exact": [right[:, :j].all(1).float().mean().item() for j in range(1, k + 1)]}


def training_compute(parameters: int, tokens: int) -> float:
    """Training compute in FLOPs, by the usual estimate of 6 per parameter per training token (2 for the
    forward pass, 4 for the backward; Kaplan et al. 2020). Wei et al. 2022 plot abilities against it."""
    return 6.0 * parameters * tokens


@dataclass
class Rung:
    name: str
    model: object
    tokenizer: object
    card: dict

    @property
    def parameters(self) -> int:
        return self.model.num_params()

    @property
    def tokens(self) -> int:
        return int(self.card["tokens"])

    @property
    def compute(self) -> float:
        return training_compute(self.parameters, self.tokens)


@lru_cache(maxsize=1)
def ladder() -> tuple[Rung, ...]:
    """The character models of TinyShakespeare trained here, by training compute: the ladder's four
    (one recipe, four sizes), chapter 10's draft model and the course model (longer recipes of their own)."""
    from glassformer.checkpoint import load_model_folder
    from glassformer.registry import DRAFT_MODEL_DIR, load_model

    rungs = [Rung(folder.name, *load_model_folder(folder)) for folder in sorted(LADDER_DIR.iterdir())
             if (folder / "model.safetensors").exists()]
    rungs.append(Rung("draft (chapter 10)", *load_model_folder(DRAFT_MODEL_DIR)))
    course = load_model("course")
    rungs.append(Rung("course model", course.model, course.tokenizer, course.card))
    return tuple(sorted(rungs, key=lambda r: r.compute))


@lru_cache(maxsize=1)
def ladder_scores() -> dict[str, dict]:
    """continuation_scores of every rung of `ladder()` on CONTINUATIONS of the held-out text, by name
    (computed once per process: the models and the text never change while it runs)."""
    from glassformer.analysis.ablation import held_out_text

    cont = word_continuations(held_out_text(), **CONTINUATIONS)
    return {r.name: continuation_scores(r.model, r.tokenizer, cont) for r in ladder()}
