"""The residual stream, layer by layer, and the logit lens: what the model would say if it stopped early.

A decoder-only model is a stack of blocks that each *add* to one running vector per position,
the residual stream (block.py). Only at the very end does the final norm + unembedding turn
that vector into scores. Nothing stops us applying that same last step after every block:
the "logit lens" (nostalgebraist, 2020) reads the stream at each depth as if it were final.

    stream(l) = embeddings                     l = 0
              = resid_post of block l-1        l = 1..L
    lens(l)   = unembed(final_norm(stream(l)))           (T, V) scores

lens(L) is exactly the model's own logits (tests/test_ch07_stacking.py checks it).

    >>> import torch
    >>> from glassformer.model import DecoderLM, preset
    >>> lens = logit_lens(DecoderLM(preset("tiny")), torch.tensor([1, 2, 3]))
    >>> lens.top_ids.shape, lens.first_top.shape
    (torch.Size([3, 3, 5]), torch.Size([3]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def residual_stream(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (T,) or (1, T) -> (stream, logits): the stream at every depth (L+1, T, D) and the logits (T, V).

    Row 0 is what enters block 0 (the embeddings, plus positions if the model adds them);
    row l is what leaves block l-1. Read through the model's hook points, never recomputed."""
    L = model.config.n_layers
    names = ["blocks.0.resid_pre"] + [f"blocks.{i}.resid_post" for i in range(L)]
    with torch.no_grad():
        logits, trace = model.run_with_trace(ids.reshape(1, -1), names=names)
    return torch.stack([trace[n][0] for n in names]).float(), logits[0].float()   # (L+1, T, D), (T, V)


def stream_norms(stream: torch.Tensor) -> torch.Tensor:
    """(L+1, T, D) -> (L+1, T): the length ||x|| of each position's vector at each depth."""
    return stream.norm(dim=-1)


def lens_logits(model, stream: torch.Tensor) -> torch.Tensor:
    """(..., D) stream vectors -> (..., V) scores, through the model's own final norm and unembedding."""
    with torch.no_grad():
        p = next(model.parameters())
        return model.unembed(model.final_norm(stream.to(p.dtype))).float()      # (..., V)


@dataclass
class LogitLens:
    top_ids: torch.Tensor      # (L+1, T, k) the k likeliest tokens at each depth and position
    top_probs: torch.Tensor    # (L+1, T, k) their probabilities
    final_ids: torch.Tensor    # (T,) the model's real prediction (argmax of its logits) at each position
    final_probs: torch.Tensor  # (L+1, T) the probability each depth gives that real prediction
    first_top: torch.Tensor    # (T,) the first depth at which the real prediction is the top token
    settled: torch.Tensor      # (T,) the first depth from which it stays the top token to the end
    max_diff: float            # max |lens(L) - model logits|: 0 up to rounding


def logit_lens(model, ids: torch.Tensor, k: int = 5) -> LogitLens:
    """Apply final norm + unembedding to the residual stream after every block (see module docstring).

    One depth at a time, keeping only the top k: a (T, V) score table per depth is already
    large for a big vocabulary (Qwen3: V = 151,936), and L+1 of them at once would be far larger."""
    stream, logits = residual_stream(model, ids)                                # (L+1, T, D), (T, V)
    final_ids = logits.argmax(-1)                                               # (T,)
    tops, top_ps, final_ps = [], [], []
    for depth in range(stream.shape[0]):
        lens = lens_logits(model, stream[depth])                                # (T, V)
        probs = lens.softmax(-1)                                                # (T, V)
        p, i = probs.topk(min(k, probs.shape[-1]), dim=-1)                      # (T, k)
        tops.append(i)
        top_ps.append(p)
        final_ps.append(probs.gather(-1, final_ids[:, None])[:, 0])            # (T,)
    top_ids, top_probs, final_probs = torch.stack(tops), torch.stack(top_ps), torch.stack(final_ps)
    is_top = top_ids[..., 0] == final_ids                                       # (L+1, T)
    depth = torch.arange(is_top.shape[0])[:, None]                              # (L+1, 1)
    first_top = torch.where(is_top, depth, is_top.shape[0]).min(0).values       # (T,)
    settled = torch.where(~is_top, depth, -1).max(0).values + 1                 # (T,) one past the last miss
    return LogitLens(top_ids, top_probs, final_ids, final_probs, first_top, settled,
                     (lens - logits).abs().max().item())                        # lens: the last depth's
