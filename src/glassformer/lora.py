"""LoRA: fine-tune a few low-rank matrices beside each frozen weight (Hu et al. 2021, "LoRA:
Low-Rank Adaptation of Large Language Models", eq. 3).

A linear layer y = x W (W: in x out) gets a trainable detour through a narrow rank r:

    y = x W + (x A) B * (alpha / r)        A: (in, r), B: (r, out)

W stays frozen; only A and B learn: r * (in + out) numbers instead of in * out. B starts at
zero, so the adapted model starts as exactly the base model. Once trained, the detour folds into
the weight (W' = W + A B * alpha / r, `merge_lora`), and the exported model is an ordinary model
of the original shape: nothing slower, nothing new to load.

    >>> from glassformer.model import build_model, preset
    >>> model = build_model(preset("tiny"))
    >>> n = add_lora(model, rank=4, targets=("qkv",))       # tiny: 2 blocks, qkv is 64 x 192
    >>> n == 2 * 4 * (64 + 192)
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.model.linear import Linear

# Which linear layers of a block can take adapters, by their last name: attention's fused q|k|v
# and output projections, the MLP's up, gate (SwiGLU) and down projections.
TARGETS = ("qkv", "out", "up", "gate", "down")


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank detour: y = base(x) + (x A) B * scale."""

    def __init__(self, base: Linear, rank: int, alpha: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        d_in, d_out = base.weight.shape
        self.base = base
        self.rank, self.scale = rank, alpha / rank
        self.a = nn.Parameter(torch.randn(d_in, rank, generator=generator) / math.sqrt(d_in))   # (in, r)
        self.b = nn.Parameter(torch.zeros(rank, d_out))                                        # (r, out)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a @ self.b) * self.scale                  # (..., out)

    def merged(self) -> Linear:
        """The base Linear with the detour folded into its weight: W + A B * scale."""
        with torch.no_grad():
            self.base.weight += (self.a @ self.b) * self.scale                   # (in, out)
        for p in self.base.parameters():
            p.requires_grad_(True)
        return self.base

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}"


def _targets(model: nn.Module, targets: tuple[str, ...]):
    """(parent module, attribute name) of every Linear inside the blocks whose name is in targets."""
    unknown = set(targets) - set(TARGETS)
    if unknown or not targets:
        raise ValueError(f"LoRA targets must be among {TARGETS}, got {sorted(unknown) or list(targets)}")
    found = []
    for name, module in model.named_modules():
        if not name.startswith("blocks."):
            continue
        for attr, child in module.named_children():
            if attr in targets and isinstance(child, Linear):
                found.append((module, attr))
    return found


def add_lora(model: nn.Module, rank: int, targets: tuple[str, ...] = TARGETS, alpha: float | None = None,
             seed: int = 0) -> int:
    """Freeze every weight of `model` and put adapters of `rank` on the chosen linear layers
    (in place); returns the number of trainable parameters. alpha defaults to rank (scale 1)."""
    if not (isinstance(rank, int) and rank >= 1):
        raise ValueError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    alpha = float(rank if alpha is None else alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"LoRA alpha must be a finite number > 0, got {alpha!r}")
    places = _targets(model, targets)
    if not places:
        raise ValueError(f"the model has no linear layers named {list(targets)} in its blocks")
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    for parent, attr in places:
        setattr(parent, attr, LoRALinear(getattr(parent, attr), rank, alpha, gen))
    return trainable_parameters(model)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight (in place) and make every parameter trainable again."""
    for module in list(model.modules()):
        for attr, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, attr, child.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
