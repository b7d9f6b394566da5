"""Optimizers: AdamW for everything, or Muon for the blocks' weight matrices.

AdamW (Loshchilov & Hutter 2019) scales each weight's step by a running estimate of its
gradient's size. Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers") treats a
weight *matrix* as a whole: it takes the momentum of the gradient and replaces it by the
nearest semi-orthogonal matrix (all singular values ~1), so every direction the matrix can
move in gets a step of the same size instead of a few dominant directions taking it all.

The orthogonalisation is five steps of a Newton-Schulz iteration, a polynomial in X X^T that
pushes every singular value of X towards 1 using only matrix multiplies:

    X <- a X + (b A + c A^2) X,   A = X X^T,   (a, b, c) = (3.4445, -4.7750, 2.0315)

Those multiplies run in bf16 where this CPU does bf16 natively (see `precision`), in fp32
elsewhere: the bf16-only version in torch.optim.Muon is ~400x slower on an AVX2-only CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glassformer.model.attention import Attention

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalize(g: torch.Tensor, dtype: torch.dtype = torch.float32, steps: int = NS_STEPS,
                  eps: float = 1e-7) -> torch.Tensor:
    """An approximately semi-orthogonal matrix with g's singular vectors (singular values ~0.7-1.2).

    g is one matrix (m, n) or a stack of them (N, m, n), orthogonalized each on its own.

        >>> o = orthogonalize(torch.tensor([[3.0, 0.0], [0.0, 0.1]]))   # two directions, 30x apart
        >>> [round(v, 1) for v in o.diag().tolist()]                    # now steps of similar size
        [0.7, 1.1]
    """
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype) if g.dim() == 3 else g.to(dtype)[None]   # (N, m, n)
    wide = x.shape[-2] <= x.shape[-1]
    if not wide:                    # iterate on the smaller Gram matrix
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # Frobenius >= spectral norm: singular values <= 1
    for _ in range(steps):
        gram = x @ x.mT                                        # (N, m, m), m = the smaller side
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b A + c A^2
        x = torch.baddbmm(x, poly, x, beta=a)                  # a X + (b A + c A^2) X
    x = x if wide else x.mT
    return (x if g.dim() == 3 else x[0]).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for 2-D weights: Nesterov momentum, then orthogonalize, then a step scaled to
    AdamW's typical update size (0.2 * sqrt(max(rows, cols)), Liu et al. 2025), so the same
    learning rate and schedule work for the Muon and the AdamW parts of one model.

    `splits` (optional, by parameter) cuts a fused matrix along its output columns into parts
    that are orthogonalized separately, e.g. a fused q|k|v projection into q, k and v.
    Matrices of the same shape are orthogonalized together, as one batched product per step
    of the iteration (the blocks of a model repeat the same shapes).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_dtype: torch.dtype = torch.float32, splits: dict[nn.Parameter, list[int]] | None = None) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon updates matrices only; got a parameter of shape {tuple(p.shape)}")
        self.ns_dtype = ns_dtype
        self.splits = splits or {}

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            params, parts = [], []                       # parts: (parameter index, column slice, update)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)                  # buf = m buf + (1 - m) g
                update = p.grad.lerp(buf, momentum)              # Nesterov: look one step ahead
                widths = self.splits.get(p, [p.shape[1]])
                starts = [sum(widths[:i]) for i in range(len(widths))]
                parts += [(len(params), slice(s, s + w), update[:, s:s + w]) for s, w in zip(starts, widths)]
                params.append(p)
            by_shape: dict[tuple[int, int], list[int]] = {}
            for i, (_, _, u) in enumerate(parts):
                by_shape.setdefault(tuple(u.shape), []).append(i)
            for p in params:
                p.mul_(1 - lr * decay)
            for shape, members in by_shape.items():
                ortho = orthogonalize(torch.stack([parts[i][2] for i in members]), self.ns_dtype)  # (N, m, n)
                scale = 0.2 * math.sqrt(max(shape))
                for i, o in zip(members, ortho):
                    index, cols, _ = parts[i]
                    params[index][:, cols].sub_(o, alpha=lr * scale)


class Optimizers:
    """Several optimizers, each over its own parameters, stepped as one."""

    def __init__(self, *parts: torch.optim.Optimizer) -> None:
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def named_state(self, names: dict[nn.Parameter, str]) -> list[tuple[str, dict]]:
        """(parameter name, its state dict) in a fixed order; the dicts are the optimizers' own."""
        return [(f"{type(part).__name__.lower()}:{names[p]}", part.state[p])
                for part in self.parts for g in part.param_groups for p in g["params"]]


def make_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float, betas: tuple[float, float],
                   ns_dtype: torch.dtype = torch.float32, split_qkv: bool = False) -> Optimizers:
    """AdamW, with weight decay on the weight matrices and the embedding table only.

    Decay pulls weights towards zero, so it is kept off what should not shrink: norms' gains
    (which set a scale of 1), biases (offsets, not couplings between features) and position
    tables (the learned positions are few rows, each seen at every step; decaying them only
    blurs positions). kind="muon" hands the blocks' weight matrices to Muon instead.
    """
    to_muon, decayed, plain = [], [], []
    for n, p in model.named_parameters():
        if kind == "muon" and n.startswith("blocks.") and p.dim() == 2:
            to_muon.append(p)
        elif p.dim() >= 2 and "positions" not in n:
            decayed.append(p)
        else:
            plain.append(p)
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    parts: list[torch.optim.Optimizer] = [torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)]
    if to_muon:
        splits = {}
        if split_qkv:
            for module in model.modules():
                if isinstance(module, Attention):
                    Dh = module.head_dim
                    splits[module.qkv.weight] = [module.n_heads * Dh, module.kv_heads * Dh, module.kv_heads * Dh]
        parts.insert(0, Muon(to_muon, lr=lr, weight_decay=weight_decay, ns_dtype=ns_dtype, splits=splits))
    return Optimizers(*parts)
