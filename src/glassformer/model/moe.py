"""Mixture of experts: many feed-forward networks per block, each token sent to only a few.

A dense block runs one MLP of width F on every token. A mixture-of-experts (MoE) block holds
E experts (each an MLP of width F_e, the "expert width") and a router, one linear map D -> E.
For each token the router's logits go through a softmax; the K most probable experts run on
the token, and their outputs are summed weighted by those probabilities (the "gates"):

    p      = softmax(x · W_router)                  (E probabilities)
    top    = the K experts with the largest p
    g_j    = p_j            (Qwen3-MoE with norm_topk_prob=False)
    g_j    = p_j / Σ_top p  (Mixtral; Qwen3-MoE with norm_topk_prob=True: the kept gates sum to 1)
    moe(x) = Σ_{j in top} g_j · expert_j(x)

(Shazeer et al. 2017, "Outrageously Large Neural Networks"; Fedus et al. 2021, "Switch
Transformers"; Jiang et al. 2024, "Mixtral of Experts".)

Active vs total parameters, and FLOPs per token. With SwiGLU experts (3 matrices of D x F_e)
and no biases:

    total parameters   = E · 3·D·F_e + D·E        every expert is stored
    active per token   = K · 3·D·F_e + D·E        only the K chosen experts (and the router) run
    FLOPs per token    ≈ 2 · active               one multiply and one add per weight used

Worked example: D = 128, E = 8 experts of width F_e = 172, K = 2 per token.
One expert has 3·128·172 = 66,048 weights; the router 128·8 = 1,024.
Total: 8·66,048 + 1,024 = 529,408. Active: 2·66,048 + 1,024 = 133,120, so ~266k FLOPs per token.
A dense SwiGLU of width 2·172 = 344 (the course model's) has 3·128·344 = 132,096 weights: the
same work per token, with a quarter of the MoE's parameters.

    >>> moe_params(d_model=128, d_expert=172, n_experts=8, experts_per_token=2)
    (529408, 133120)

Dispatch. Running every expert on every token and zeroing the unchosen outputs costs E/K times
the FLOPs. Here the N·K (token, expert) slots are sorted by expert, so each expert runs once, as
one matrix multiply, on exactly the tokens routed to it; the outputs are scaled by their gates and
added back to their tokens (`index_add_`). `every_expert` is the plain reference the grouped path
is tested equal to.

Load balancing. Nothing stops a router from sending every token to one expert (which then does
all the work while the rest learn nothing). Switch Transformers add an auxiliary loss

    balance = E · Σ_i f_i · P_i

with f_i the fraction of the N·K slots routed to expert i and P_i the mean router probability
of expert i over the tokens. Perfectly balanced routing (f_i = P_i = 1/E) gives exactly 1;
every token's first choice the same expert with certainty gives E/K (one expert can hold at most
1/K of the slots; with K = 1, as in Switch, that is E). `balance_loss` computes it; the training loop
adds it, weighted by TrainConfig.balance_weight.

Dimension names: N = B·T tokens, E experts, K experts per token, F_e expert width.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from glassformer.model.hooks import HookPoint
from glassformer.model.linear import Linear


def moe_params(d_model: int, d_expert: int, n_experts: int, experts_per_token: int, kind: str = "swiglu",
               bias: bool = False) -> tuple[int, int]:
    """(total, active per token) parameters of one MoE layer: experts + router."""
    mats = 3 if kind == "swiglu" else 2
    one = mats * d_model * d_expert + (bias * ((mats - 1) * d_expert + d_model))
    router = d_model * n_experts
    return n_experts * one + router, experts_per_token * one + router


class StackedLinear(nn.Module):
    """E linear maps of the same shape, stored as one (E, in, out) tensor (our Linear's layout)."""

    def __init__(self, n: int, d_in: int, d_out: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(n, d_out)) if bias else None
        nn.init.normal_(self.weight, std=0.02)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e's map on rows x (n, in) -> (n, out): Linear's own ops, so one expert equals a dense MLP."""
        return x @ self.weight[e] if self.bias is None else torch.addmm(self.bias[e], x, self.weight[e])

    def extra_repr(self) -> str:
        n, d_in, d_out = self.weight.shape
        return f"experts={n}, in={d_in}, out={d_out}, bias={self.bias is not None}"


class Experts(nn.Module):
    """E feed-forward networks (the kinds of mlp.py: SwiGLU or GELU), weights stacked by expert."""

    def __init__(self, kind: str, n: int, d_model: int, d_expert: int, bias: bool) -> None:
        super().__init__()
        if kind not in ("swiglu", "gelu", "gelu_tanh"):
            raise ValueError(f"experts can be swiglu, gelu or gelu_tanh MLPs, not {kind!r}")
        self.kind, self.n = kind, n
        self.gate = StackedLinear(n, d_model, d_expert, bias) if kind == "swiglu" else None
        self.up = StackedLinear(n, d_model, d_expert, bias)
        self.down = StackedLinear(n, d_expert, d_model, bias)

    def run(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e on rows x (n, D) -> (n, D), computed as mlp.py's SwiGLU / GeluMLP compute it."""
        if self.kind == "swiglu":
            hidden = F.silu(self.gate.expert(e, x)) * self.up.expert(e, x)                 # (n, F_e)
        else:
            approximate = "tanh" if self.kind == "gelu_tanh" else "none"
            hidden = F.gelu(self.up.expert(e, x), approximate=approximate)                # (n, F_e)
        return self.down.expert(e, hidden)                                                # (n, D)


class MoE(nn.Module):
    """Router + experts; a drop-in replacement for the dense MLP of a block: (B, T, D) -> (B, T, D).

    renormalize: divide the K kept probabilities by their sum (Mixtral; Qwen3-MoE's norm_topk_prob).
    """

    def __init__(self, kind: str, d_model: int, d_expert: int, n_experts: int, experts_per_token: int,
                 bias: bool = False, renormalize: bool = True) -> None:
        super().__init__()
        if not 1 <= experts_per_token <= n_experts:
            raise ValueError(f"experts_per_token must be in [1, {n_experts}], got {experts_per_token}")
        self.n_experts, self.k, self.renormalize = n_experts, experts_per_token, renormalize
        self.router = Linear(d_model, n_experts, bias=False)
        self.experts = Experts(kind, n_experts, d_model, d_expert, bias)
        self.hook_router_logits = HookPoint()
        self.hook_experts = HookPoint()
        self.hook_gates = HookPoint()

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (chosen experts (B, T, K) int64, gates (B, T, K)), through the three hook points."""
        logits = self.hook_router_logits(self.router(x))                     # (B, T, E)
        probs = logits.float().softmax(-1)                                   # (B, T, E) in fp32, as HF does
        top_p, top_i = probs.topk(self.k, dim=-1)                            # (B, T, K) each, largest first
        if self.renormalize:
            top_p = top_p / top_p.sum(-1, keepdim=True)                      # (B, T, K), sums to 1
        return self.hook_experts(top_i), self.hook_gates(top_p.to(x.dtype))  # (B, T, K), (B, T, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        experts, gates = self.route(x)                                       # (B, T, K) each
        flat = x.reshape(-1, x.shape[-1])                                    # (N, D)
        slot_expert = experts.reshape(-1)                                    # (N*K,) slot s = token s // K
        order = torch.argsort(slot_expert, stable=True)                      # (N*K,) slots grouped by expert
        token = order // self.k                                              # (N*K,) the token of each sorted slot
        counts = torch.bincount(slot_expert, minlength=self.n_experts).tolist()  # E ints: slots per expert
        rows = flat.index_select(0, token)                                   # (N*K, D) tokens, grouped by expert
        outs, start = [], 0
        for e, n in enumerate(counts):                                       # each expert once, on its own tokens
            if n:
                outs.append(self.experts.run(e, rows[start:start + n]))     # (n, D)
            start += n
        y = torch.cat(outs) * gates.reshape(-1)[order, None]                 # (N*K, D) gate-weighted
        out = torch.zeros_like(flat).index_add_(0, token, y)                 # (N, D) sum of each token's K outputs
        return out.view_as(x)                                                # (B, T, D)


def every_expert(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The reference: every expert on every token, unchosen experts weighted 0. E/K times the work
    of MoE.forward, and the same result (tests/test_moe.py); bench/moe.py times the two."""
    experts, gates = moe.route(x)                                            # (B, T, K) each
    flat = x.reshape(-1, x.shape[-1])                                        # (N, D)
    weight = torch.zeros(flat.shape[0], moe.n_experts, dtype=x.dtype, device=x.device)  # (N, E)
    weight.scatter_(1, experts.reshape(-1, moe.k), gates.reshape(-1, moe.k))  # (N, E) gate or 0
    out = torch.zeros_like(flat)                                             # (N, D)
    for e in range(moe.n_experts):
        out += moe.experts.run(e, flat) * weight[:, e, None]                 # (N, D)
    return out.view_as(x)                                                    # (B, T, D)


# --- load balancing --------------------------------------------------------------------------

def expert_load(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """The fraction of routing slots each expert received: experts (..., K) int -> (E,), sums to 1."""
    counts = torch.bincount(experts.reshape(-1), minlength=n_experts)        # (E,)
    return counts.float() / experts.numel()                                  # (E,)


def balance_loss(router_logits: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss E · Σ_i f_i · P_i for one layer: 1 when balanced.

    router_logits (..., E), experts (..., K) -> a scalar. Gradients flow through P_i (the mean
    router probability); f_i (the fraction of slots) is a count and has none.
    (Transformers' `load_balancing_loss_func` sums f over the K choices instead of averaging, so
    its value is K times this one.)

        >>> balance_loss(torch.zeros(4, 2), torch.tensor([[0], [1], [0], [1]]))
        tensor(1.)
    """
    n = router_logits.shape[-1]
    probs = router_logits.float().softmax(-1).reshape(-1, n)                 # (N, E)
    return n * (expert_load(experts, n) * probs.mean(0)).sum()               # scalar


@contextlib.contextmanager
def routing_recorded(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward pass of `model` (a DecoderLM with MoE layers) fills the
    yielded dict with each layer's "blocks.{i}.mlp.router_logits" and "blocks.{i}.mlp.experts",
    gradients kept (the training loop's balance loss needs them). Uses the hook points, so
    nothing is stored on the model."""
    seen: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:
        seen[name] = x

    with model.hooks({"blocks.*.mlp.router_logits": keep, "blocks.*.mlp.experts": keep}):
        yield seen


def routing_summary(seen: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[list[float]]]:
    """(mean balance loss over the MoE layers, per-layer expert load) from routing_recorded's dict."""
    layers = sorted({name.rsplit(".", 2)[0] for name in seen}, key=lambda s: int(s.split(".")[1]))
    losses, loads = [], []
    for layer in layers:
        logits, chosen = seen[f"{layer}.mlp.router_logits"], seen[f"{layer}.mlp.experts"]
        losses.append(balance_loss(logits, chosen))
        loads.append([round(v, 4) for v in expert_load(chosen, logits.shape[-1]).tolist()])
    return torch.stack(losses).mean(), loads
