"""Where a mixture of experts sends the tokens of a text: each expert's load, layer by layer (chapter 11).

Every token goes to K of the E experts of each MoE layer, so a layer fills N·K routing slots for
N tokens. For each expert:

    slot share    its fraction of the N·K slots (the shares sum to 1; perfectly even: 1/E)
    token share   the fraction of the N tokens sent to it (= K × slot share, as a token never picks
                  the same expert twice; the shares sum to K; perfectly even: K/E)

and for the layer the Switch balance loss E·Σ_i f_i·P_i over the whole text (model/moe.py's
`balance_loss`: 1 when perfectly even, at most E/K when every token's first choice is one expert with certainty).
Worked example: with E = 8 and K = 2, an even router gives every expert a quarter of the tokens;
a busiest expert with a token share of 0.9 sees nine tokens in ten.

Token by token: `route` reads the router's probabilities, the chosen experts and their gates for every
token of a text (the hook points blocks.{i}.mlp.router_logits / experts / gates), and `specialisation`
asks whether the tokens one expert receives differ in kind (vowels, consonants, spaces, punctuation,
upper case) from the text as a whole, by more than a random subset of the same size would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from glassformer.data import sequential_batches
from glassformer.model.moe import routing_recorded
from glassformer.threads import one_thread


@dataclass
class ExpertLoad:
    slot_share: list[list[float]]    # [layer][expert]: fraction of the layer's routing slots
    token_share: list[list[float]]   # [layer][expert]: fraction of the tokens routed to the expert
    balance: list[float]             # [layer]: E·Σ f_i·P_i over the whole text
    tokens: int                      # how many tokens were routed

    @property
    def busiest(self) -> list[tuple[int, float]]:
        """[layer]: (the expert with the most tokens, its token share)."""
        return [max(enumerate(row), key=lambda pair: pair[1]) for row in self.token_share]

    def as_dict(self, digits: int = 4) -> dict:
        r = lambda v: round(v, digits)  # noqa: E731
        return {"tokens": self.tokens,
                "slot_share": [[r(v) for v in row] for row in self.slot_share],
                "token_share": [[r(v) for v in row] for row in self.token_share],
                "balance_loss": [r(v) for v in self.balance],
                "busiest_expert": [{"expert": e, "token_share": r(share)} for e, share in self.busiest]}


@torch.no_grad()
def measure_load(model, ids: torch.Tensor, batch_size: int = 16) -> ExpertLoad:
    """ExpertLoad of a DecoderLM with MoE layers on ids (1-D), read in non-overlapping windows of the
    model's context (as `train.evaluate` reads the validation split), through the router hook points."""
    c = model.config
    if not c.n_experts:
        raise ValueError("measure_load needs a mixture of experts (config.n_experts > 0)")
    counts = torch.zeros(c.n_layers, c.n_experts)                  # (L, E) slots per expert
    prob_sums = torch.zeros(c.n_layers, c.n_experts)               # (L, E) summed router probabilities
    tokens = 0
    was_training = model.training
    model.eval()
    with one_thread():
        for x, _ in sequential_batches(ids, batch_size, c.n_ctx):
            with routing_recorded(model) as seen:
                model(x)                                            # (B, T) -> fills seen
            for i in range(c.n_layers):
                chosen = seen[f"blocks.{i}.mlp.experts"]            # (B, T, K)
                logits = seen[f"blocks.{i}.mlp.router_logits"]      # (B, T, E)
                counts[i] += torch.bincount(chosen.reshape(-1), minlength=c.n_experts).float()
                prob_sums[i] += logits.float().softmax(-1).reshape(-1, c.n_experts).sum(0)
            tokens += x.numel()
    model.train(was_training)
    slots = counts / (tokens * c.experts_per_token)                # (L, E) f_i, rows sum to 1
    mean_probs = prob_sums / tokens                                # (L, E) P_i
    balance = c.n_experts * (slots * mean_probs).sum(-1)           # (L,)
    return ExpertLoad(slots.tolist(), (slots * c.experts_per_token).tolist(), balance.tolist(), tokens)


# --- one text, token by token ------------------------------------------------------------------

@dataclass
class Routing:
    """Where every token of a text went, in every MoE layer (L layers, N tokens, E experts, K per token)."""

    probs: torch.Tensor      # (L, N, E) the router's softmax probabilities
    experts: torch.Tensor    # (L, N, K) the chosen experts, most probable first
    gates: torch.Tensor      # (L, N, K) the weights their outputs were summed with

    @property
    def n_experts(self) -> int:
        return self.probs.shape[-1]

    def load(self) -> ExpertLoad:
        """Each layer's ExpertLoad over these tokens (as `measure_load` computes it over a split)."""
        L, N, E = self.probs.shape
        K = self.experts.shape[-1]
        counts = torch.stack([torch.bincount(self.experts[i].reshape(-1), minlength=E) for i in range(L)]).float()
        slots = counts / (N * K)                                            # (L, E) f_i
        balance = E * (slots * self.probs.float().mean(1)).sum(-1)          # (L,) E·Σ f_i·P_i
        return ExpertLoad(slots.tolist(), (slots * K).tolist(), balance.tolist(), N)


@torch.no_grad()
def route(model, ids: torch.Tensor, batch_size: int = 16) -> Routing:
    """Routing of the tokens ids (1-D) through every MoE layer of `model`, read through the hook points
    blocks.{i}.mlp.router_logits / experts / gates. A text no longer than the context is read in one
    piece from position 0; a longer one in consecutive windows of the context (the last may be shorter)."""
    c = model.config
    if not c.n_experts:
        raise ValueError("route needs a mixture of experts (config.n_experts > 0)")
    ids = ids.reshape(-1)
    if ids.numel() == 0:
        raise ValueError("no tokens to route")
    names = ["blocks.*.mlp.router_logits", "blocks.*.mlp.experts", "blocks.*.mlp.gates"]
    full, rest = divmod(ids.numel(), c.n_ctx)
    pieces = [ids[:full * c.n_ctx].view(full, c.n_ctx)[i:i + batch_size] for i in range(0, full, batch_size)]
    if rest:
        pieces.append(ids[full * c.n_ctx:].view(1, rest))
    parts: dict[str, list[torch.Tensor]] = {"probs": [], "experts": [], "gates": []}
    was_training = model.training
    model.eval()
    with one_thread():
        for x in pieces:                                                       # (b, t)
            _, trace = model.run_with_trace(x, names)
            parts["probs"].append(torch.stack([trace[f"blocks.{i}.mlp.router_logits"].float().softmax(-1)
                                               .reshape(-1, c.n_experts) for i in range(c.n_layers)]))   # (L, b·t, E)
            for key in ("experts", "gates"):
                parts[key].append(torch.stack([trace[f"blocks.{i}.mlp.{key}"].reshape(-1, c.experts_per_token)
                                               for i in range(c.n_layers)]))                               # (L, b·t, K)
    model.train(was_training)
    return Routing(*(torch.cat(parts[key], dim=1) for key in ("probs", "experts", "gates")))


# --- do experts specialise? ----------------------------------------------------------------------
#
# A character model's tokens fall into plain classes. For each expert of a layer: the share of each
# class among the tokens routed to it, against the share in the whole text. If the router ignored what a
# token is, an expert's tokens would be a random subset of the text, and its share of a class would
# differ from the text's only by chance: by about sd = sqrt(p(1−p)/n · (N−n)/(N−1)) for a class of share
# p, n tokens routed to the expert out of N (the hypergeometric spread of a random subset). A difference
# counts as clear when it is both large (the expert's share at least LIFT times the text's, or at most
# 1/LIFT of it) and far beyond chance (at least Z_CLEAR spreads): 4 spreads keeps the chance of even one
# false call among the 5 classes x 8 experts x 4 layers of a page well under 1%.

CLASSES = ("vowel", "consonant", "space", "punctuation", "upper case")
VOWELS = set("aeiouAEIOU")
LIFT, Z_CLEAR = 1.5, 4.0


def char_classes(ch: str) -> tuple[bool, ...]:
    """Which CLASSES a character belongs to. The first four split every character (space: any white space,
    the line break included; punctuation: anything that is neither a letter nor white space); upper case
    cuts across vowels and consonants.

        >>> char_classes("E"), char_classes(" ")
        ((True, False, False, False, True), (False, False, True, False, False))
    """
    letter = ch.isalpha()
    return (ch in VOWELS, letter and ch not in VOWELS, ch.isspace(), not letter and not ch.isspace(), ch.isupper())


@dataclass
class Specialisation:
    """One layer's experts against the text's own mix of character classes."""

    classes: tuple[str, ...]
    text_share: list[float]          # [class]: share of the text's tokens
    tokens: list[int]                # [expert]: tokens routed to it (a token counts for each of its K experts)
    share: list[list[float]]         # [expert][class]: share among the expert's tokens (nan when it has none)
    z: list[list[float]]             # [expert][class]: (share − text share) / the random-subset spread
    top_chars: list[list[tuple[str, int]]]   # [expert]: its most frequent characters and their counts
    n: int                           # tokens in the text

    def clear(self) -> list[tuple[int, str, float, float]]:
        """(expert, class, its share, the text's share) for every clear difference, largest |z| first."""
        found = []
        for e, row in enumerate(self.share):
            for c, share in enumerate(row):
                p, z = self.text_share[c], self.z[e][c]
                big = share >= LIFT * p or share <= p / LIFT
                if math.isfinite(z) and abs(z) >= Z_CLEAR and big:
                    found.append((abs(z), e, self.classes[c], share, p))
        return [(e, name, share, p) for _, e, name, share, p in sorted(found, key=lambda f: (-f[0], f[1]))]


def specialisation(routing: Routing, chars: list[str], layer: int, top: int = 5) -> Specialisation:
    """Specialisation of `layer`'s experts over the routed tokens, whose characters are `chars`
    (one per token, in order: a character-level model's tokens)."""
    experts = routing.experts[layer]                                    # (N, K)
    n = experts.shape[0]
    if len(chars) != n:
        raise ValueError(f"{len(chars)} characters for {n} routed tokens")
    flags = torch.tensor([char_classes(ch) for ch in chars], dtype=torch.float64)   # (N, C)
    text_share = flags.mean(0)                                          # (C,)
    member = torch.zeros(n, routing.n_experts, dtype=torch.float64)     # (N, E) 1 where the token went
    member.scatter_(1, experts, 1.0)
    tokens = member.sum(0)                                              # (E,)
    share = (member.T @ flags) / tokens[:, None]                        # (E, C) nan for an idle expert
    finite_pop = ((n - tokens) / max(n - 1, 1)).clamp(min=0)[:, None]   # (E, 1) without replacement
    sd = (text_share * (1 - text_share) / tokens[:, None] * finite_pop).sqrt()      # (E, C)
    diff = share - text_share
    z = torch.where(sd > 0, diff / sd.clamp(min=1e-300), torch.zeros_like(diff))   # no spread: no evidence
    z = torch.where(tokens[:, None] > 0, z, torch.full_like(z, float("nan")))
    top_chars = []
    for e in range(routing.n_experts):
        counts: dict[str, int] = {}
        for i in member[:, e].nonzero().flatten().tolist():
            counts[chars[i]] = counts.get(chars[i], 0) + 1
        top_chars.append(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
    return Specialisation(CLASSES, text_share.tolist(), [int(t) for t in tokens.tolist()], share.tolist(),
                          z.tolist(), top_chars, n)


def follows_character(routing: Routing, chars: list[str], layer: int) -> float:
    """The share of tokens whose first-choice expert in `layer` is the one their character most often gets
    there: 1 when the router's choice depends on the character alone, lower when the context changes it.

        >>> r = Routing(torch.zeros(1, 4, 2), torch.tensor([[[0], [0], [1], [1]]]), torch.ones(1, 4, 1))
        >>> follows_character(r, list("aaab"), 0)      # 'a' goes to 0 twice and to 1 once; 'b' to 1
        0.75
    """
    first = routing.experts[layer, :, 0].tolist()
    if len(chars) != len(first):
        raise ValueError(f"{len(chars)} characters for {len(first)} routed tokens")
    counts: dict[str, dict[int, int]] = {}
    for ch, e in zip(chars, first):
        counts.setdefault(ch, {}).setdefault(e, 0)
        counts[ch][e] += 1
    return sum(max(c.values()) for c in counts.values()) / len(first)
