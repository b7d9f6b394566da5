"""Looking at an embedding table: which tokens does a trained model put close together?

The table E is (V, D): row t is token t's vector. Two rows are "similar" when they point
the same way, whatever their lengths: cosine similarity, cos(a, b) = a.b / (|a| |b|),
1 for the same direction, 0 for perpendicular, -1 for opposite.

    >>> E = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]])
    >>> [(t, round(c, 3)) for t, c in nearest(E, 0, k=2)]
    [(1, 0.999), (2, 0.0)]
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass

import torch


def cosine_matrix(table: torch.Tensor) -> torch.Tensor:
    """(N, D) rows -> (N, N) cosine similarity of every pair of rows."""
    unit = torch.nn.functional.normalize(table.float(), dim=-1)          # (N, D), each row of length 1
    return unit @ unit.T                                                 # (N, N)


def nearest(table: torch.Tensor, token: int, k: int = 8) -> list[tuple[int, float]]:
    """The k rows most similar to row `token` (itself excluded): [(id, cosine)], best first."""
    table = table.float()
    lengths = table.norm(dim=-1).clamp_min(1e-12)                        # (V,): no normalized copy of a big table
    cos = (table @ table[token]) / (lengths * lengths[token])            # (V,)
    cos[token] = -float("inf")
    top = cos.topk(min(k, len(cos) - 1))
    return list(zip(top.indices.tolist(), top.values.tolist()))


def pca_2d(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project the rows onto the two directions along which they vary most.

    Returns coords (N, 2) and the fraction of the total variance each direction explains (2,).
    Centre the rows, take the singular value decomposition X = U S Vᵀ: the first two columns
    of V are those directions, and a row's coordinates are its dot products with them.
    """
    x = table.float() - table.float().mean(0)                            # (N, D)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)                  # s (min(N, D),), vh (., D)
    coords = x @ vh[:2].T                                                # (N, 2)
    return coords, (s[:2] ** 2) / (s ** 2).sum()


def token_classes(texts: list[str]) -> dict[str, list[int]]:
    """Group token indices by what their text is (surrounding spaces ignored). "vowels" and
    "consonants" are single lower-case letters (a e i o u and the rest of a-z); "punctuation" is
    made of punctuation marks only (a partial UTF-8 sequence, shown as �, is none of these).

        >>> token_classes(["a", "B", "b", "7", "!", " "])["letters"]
        [0, 1, 2]
    """
    groups: dict[str, list[int]] = {name: [] for name in
                                    ("vowels", "consonants", "upper-case", "lower-case", "letters", "digits",
                                     "punctuation", "whitespace")}
    for i, raw in enumerate(texts):
        t = raw.strip()
        if not t:
            groups["whitespace"].append(i)
        elif t.isdigit():
            groups["digits"].append(i)
        elif t.isalpha():
            groups["letters"].append(i)
            if t[0].isupper() and (len(t) == 1 or t[1:].islower() or t.isupper()):
                groups["upper-case"].append(i)
            elif t.islower():
                groups["lower-case"].append(i)
            if len(t) == 1 and t.isascii() and t.islower():
                groups["vowels" if t in "aeiou" else "consonants"].append(i)
        elif all(ch in string.punctuation or unicodedata.category(ch).startswith("P") for ch in t):
            groups["punctuation"].append(i)
    return groups


@dataclass
class GroupSimilarity:
    within_a: float          # mean cosine over distinct pairs inside group a
    within_b: float          # ... inside group b (nan when b has one member)
    between: float           # mean cosine over pairs with one member in each group
    nearest_same: float      # fraction of a's members whose nearest neighbour (in a and b) is also in a
    nearest_chance: float    # that fraction if neighbours were picked at random: (|a| - 1) / (|a| + |b| - 1)


def group_similarity(cos: torch.Tensor, a: list[int], b: list[int]) -> GroupSimilarity | None:
    """Do the tokens of group a sit closer to each other than to those of group b?
    cos is a cosine matrix (cosine_matrix); None when a has fewer than 2 members or b is empty."""
    if len(a) < 2 or not b:
        return None

    def mean_within(g: list[int]) -> float:
        if len(g) < 2:
            return float("nan")
        block = cos[g][:, g]                                             # (n, n)
        return float((block.sum() - block.diagonal().sum()) / (len(g) * (len(g) - 1)))

    both = a + b
    sub = cos[a][:, both].clone()                                        # (|a|, |a| + |b|)
    sub[range(len(a)), range(len(a))] = -float("inf")                    # a token is not its own neighbour
    hits = (sub.argmax(1) < len(a)).float().mean()
    return GroupSimilarity(mean_within(a), mean_within(b), float(cos[a][:, b].mean()), float(hits),
                           (len(a) - 1) / (len(both) - 1))
