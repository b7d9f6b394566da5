"""Embeddings: turn token ids into vectors, and (at the end) vectors back into scores.

The embedding table is a (V, D) matrix; embedding token id t means reading row t. It is
a lookup, but it equals multiplying a one-hot vector by the matrix, which is why it can be
trained like any other weight. Models with absolute positions (learned or sinusoidal) add
a position vector to each token vector here.
"""

from __future__ import annotations

import torch
from torch import nn

from glassformer.model.hooks import HookPoint


class Embed(nn.Module):
    """Token lookup, plus absolute position vectors when the model has them."""

    def __init__(self, vocab_size: int, d_model: int, positions: nn.Module | None) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.positions = positions
        self.hook_tok = HookPoint()
        self.hook_pos = HookPoint() if positions is not None else None

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        x = self.hook_tok(self.tok(ids))                                  # (B, T, D)
        if self.positions is not None:
            pos = self.positions(start, ids.shape[1]).expand_as(x)        # (B, T, D)
            x = x + self.hook_pos(pos)
        return x
