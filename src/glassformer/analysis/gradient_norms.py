"""Pre-norm versus post-norm, measured: how large each layer's gradient is at initialisation.

Build a fresh model (`build_model`, the library's own initialisation) with the 2017 post-norm
block or the pre-norm block, run one batch, backpropagate the next-token loss once, and take the
length of the gradient of each block's parameters:

    g_l = sqrt( sum over the parameters p of block l of sum(p.grad ** 2) )

A training step moves each weight by roughly learning_rate x its gradient (for plain SGD; Adam
divides by a running size of the gradient), so layers with very different g_l move at very
different speeds under one learning rate.

    >>> norms = layer_gradient_norms(4, pre_norm=True, d_model=16, seeds=1)
    >>> len(norms)
    4

Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture", study exactly this.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from glassformer.model.config import ModelConfig
from glassformer.model.decoder import DecoderLM, build_model
from glassformer.threads import one_thread

INITS = ("library", "xavier")


def stack_config(n_layers: int, pre_norm: bool, d_model: int = 32, vocab_size: int = 65,
                 n_ctx: int = 32) -> ModelConfig:
    """A small course-family model: LayerNorm + GELU MLP + learned positions, as in GPT-2 (the 2017
    Transformer had ReLU and sinusoidal positions), with no dropout; only `pre_norm` and the depth vary."""
    return ModelConfig(family="course", vocab_size=vocab_size, n_ctx=n_ctx, d_model=d_model, n_layers=n_layers,
                       n_heads=4, position="learned", norm="layernorm", mlp="gelu", pre_norm=pre_norm, dropout=0.0)


def xavier_init(model: DecoderLM) -> None:
    """Re-initialise every weight matrix with Glorot/Xavier normal (std = sqrt(2 / (in + out))), the
    initialisation Xiong et al. (2020) assume in their pre-norm/post-norm analysis, instead of the
    library's GPT-2 scheme (std 0.02, output projections scaled by 1 / sqrt(2L))."""
    for name, p in model.named_parameters():
        if p.dim() == 2 and "positions" not in name:
            torch.nn.init.xavier_normal_(p)


def block_gradient_norms(model: DecoderLM, ids: torch.Tensor) -> list[float]:
    """One backward pass of the next-token loss on ids (B, T+1); the gradient length per block."""
    model.zero_grad(set_to_none=True)
    logits = model(ids[:, :-1])                                            # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    norms = []
    for block in model.blocks:
        squares = sum(float(p.grad.double().pow(2).sum()) for p in block.parameters() if p.grad is not None)
        norms.append(math.sqrt(squares))
    return norms


@functools.lru_cache(maxsize=256)
def layer_gradient_norms(n_layers: int, pre_norm: bool, d_model: int = 32, seeds: int = 3, init: str = "library",
                         batch: int = 8, n_tokens: int = 32) -> tuple[float, ...]:
    """Gradient length per layer at initialisation, averaged over `seeds` fresh models (seed 0, 1, ...),
    each run on its own batch of uniformly random token ids (B = batch, T = n_tokens).

    Random ids, not text: at initialisation the model knows nothing, and this isolates what the
    architecture does to the gradient. Cached: the same arguments return the same numbers at once.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    total = [0.0] * n_layers
    config = stack_config(n_layers, pre_norm, d_model, n_ctx=n_tokens)
    # Matrices this small run fastest on one thread (glassformer/threads.py); several threads on a
    # busy 2-core machine measured ~30x slower here (98 s vs 2.9 s for a full sweep).
    rng = torch.random.get_rng_state()
    try:
        with one_thread():
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = build_model(config)
                if init == "xavier":
                    xavier_init(model)
                gen = torch.Generator().manual_seed(seed)
                ids = torch.randint(0, config.vocab_size, (batch, n_tokens + 1), generator=gen)   # (B, T+1)
                for i, g in enumerate(block_gradient_norms(model, ids)):
                    total[i] += g / seeds
    finally:
        torch.random.set_rng_state(rng)
    return tuple(total)


def depth_sweep(depths: Sequence[int], d_model: int = 32, seeds: int = 3, init: str = "library") -> list[dict]:
    """layer_gradient_norms for every depth and both arrangements, as rows
    {"layers", "norm": "pre-norm" | "post-norm", "layer", "grad_norm"}."""
    rows = []
    for n in depths:
        for pre_norm in (True, False):
            for layer, g in enumerate(layer_gradient_norms(n, pre_norm, d_model, seeds, init)):
                rows.append({"layers": n, "norm": "pre-norm" if pre_norm else "post-norm", "layer": layer,
                             "grad_norm": g})
    return rows


def first_to_last(norms: Sequence[float]) -> float:
    """How many times larger the first layer's gradient is than the last layer's."""
    return norms[0] / norms[-1]
