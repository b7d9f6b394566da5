"""Where a mixture of experts sends the tokens of a text: each expert's load, layer by layer (chapter 11).

Every token goes to K of the E experts of each MoE layer, so a layer fills N·K routing slots for
N tokens. For each expert:

    slot share    its fraction of the N·K slots (the shares sum to 1; perfectly even: 1/E)
    token share   the fraction of the N tokens sent to it (= K × slot share, as a token never picks
                  the same expert twice; the shares sum to K; perfectly even: K/E)

and for the layer the Switch balance loss E·Σ_i f_i·P_i over the whole text (model/moe.py's
`balance_loss`: 1 when perfectly even, E when every token goes to one expert with certainty).
Worked example: with E = 8 and K = 2, an even router gives every expert a quarter of the tokens;
a busiest expert with a token share of 0.9 sees nine tokens in ten.
"""

from __future__ import annotations

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
