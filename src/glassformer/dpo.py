"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model", eq. 7).

Fine-tuning (`finetune`) shows the model the right reply. Preference training shows it two replies
to the same prompt, one preferred ("chosen") and one not ("rejected"), and raises the first's
probability relative to the second's, while a frozen copy of the starting model (the reference)
keeps it from drifting far. With log-probabilities of a whole reply under the policy (pi) and the
reference (ref):

    reward(y)  = beta * (log pi(y | x) - log ref(y | x))            the "implicit reward"
    loss       = -log sigmoid(reward(chosen) - reward(rejected))

No reward model, no sampling: RLHF's PPO needs both; DPO's loss is a classification loss on pairs.
Logged: the reward margin (chosen minus rejected), preference accuracy (how often the chosen reply
gets the higher reward), the KL divergence from the reference (per reply token, exact over the
vocabulary, on the chosen replies), and each side's mean implicit reward.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.chat import PlainFormat
from glassformer.finetune import IGNORE, Encoded, encode_all, Example, make_batch


@dataclass
class Pairs:
    chosen: Encoded
    rejected: Encoded


def read_pairs(path: str | Path) -> list[tuple[Example, Example]]:
    """(chosen, rejected) conversations from a JSONL file of {"prompt", "chosen", "rejected"}."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: each line must be JSON with 'prompt', 'chosen' and 'rejected'") from None
        user = {"role": "user", "content": prompt}
        out.append((Example([user, {"role": "assistant", "content": chosen}], row.get("task", "")),
                    Example([user, {"role": "assistant", "content": rejected}], row.get("task", ""))))
    if not out:
        raise ValueError(f"{path} holds no pairs")
    return out


def encode_pairs(fmt, tokenizer, pairs: list[tuple[Example, Example]], n_ctx: int) -> Pairs:
    chosen = encode_all(fmt, tokenizer, [c for c, _ in pairs], n_ctx, "response", "chosen")
    rejected = encode_all(fmt, tokenizer, [r for _, r in pairs], n_ctx, "response", "rejected")
    if chosen.dropped or rejected.dropped:
        raise ValueError("some pairs are longer than the model's context")
    return Pairs(chosen, rejected)


def reply_logprobs(model, data: Encoded, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum of log p over each reply's tokens (B,), logits (B, T, V), targets (B, T)) for conversations rows."""
    x, y = make_batch(data, rows)
    logits = model(x).float()                                               # (B, T, V)
    logp = logits.log_softmax(-1)
    token = logp.gather(-1, y.clamp(min=0)[..., None])[..., 0]             # (B, T)
    return (token * (y != IGNORE)).sum(-1), logits, y


def dpo_terms(model, reference, pairs: Pairs, rows: list[int], beta: float) -> dict[str, torch.Tensor]:
    """The DPO loss of conversations `rows` and what is logged with it."""
    pi_c, logits_c, y_c = reply_logprobs(model, pairs.chosen, rows)
    pi_r, _, _ = reply_logprobs(model, pairs.rejected, rows)
    with torch.no_grad():
        ref_c, ref_logits_c, _ = reply_logprobs(reference, pairs.chosen, rows)
        ref_r, _, _ = reply_logprobs(reference, pairs.rejected, rows)
    reward_c, reward_r = beta * (pi_c - ref_c), beta * (pi_r - ref_r)        # (B,)
    loss = -F.logsigmoid(reward_c - reward_r).mean()
    with torch.no_grad():                                                    # KL(pi || ref) per reply token
        reply = y_c != IGNORE                                                # (B, T)
        p_log, q_log = logits_c.log_softmax(-1), ref_logits_c.log_softmax(-1)
        kl = (p_log.exp() * (p_log - q_log)).sum(-1)                         # (B, T)
        kl = kl[reply].mean()
    return {"loss": loss, "margin": (reward_c - reward_r).detach().mean(),
            "accuracy": (reward_c > reward_r).float().mean(), "kl": kl,
            "chosen_reward": reward_c.detach().mean(), "rejected_reward": reward_r.detach().mean()}


@torch.no_grad()
def measure(model, reference, pairs: Pairs, beta: float, batch_size: int = 32) -> dict[str, float]:
    """Mean loss, reward margin, preference accuracy, KL, and each side's implicit reward over every pair,
    in eval mode. Accuracy counts strict wins of the chosen reply: it is 0 while the policy still equals
    the reference. A negative chosen reward means the chosen reply became less likely than under the
    reference (the margin can grow while both fall)."""
    was = model.training
    model.eval()
    n = len(pairs.chosen.ids)
    sums = {"loss": 0.0, "margin": 0.0, "accuracy": 0.0, "kl": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0}
    for start in range(0, n, batch_size):
        rows = list(range(start, min(start + batch_size, n)))
        terms = dpo_terms(model, reference, pairs, rows, beta)
        for k in sums:
            sums[k] += terms[k].item() * len(rows)
    model.train(was)
    return {k: round(v / n, 5) for k, v in sums.items()}


def dpo(model, tokenizer, train_pairs: list[tuple[Example, Example]], held_out: list[tuple[Example, Example]] | None = None,
        *, steps: int = 100, beta: float = 0.1, lr: float = 1e-4, batch_size: int = 16, seed: int = 0,
        eval_interval: int = 25, fmt=None, on_row=None) -> tuple[torch.nn.Module, list[dict]]:
    """Train a copy of `model` with DPO against a frozen copy of it; returns (policy, logged rows).

    Rows: every eval_interval steps, the held-out (or training) pairs' loss, reward margin,
    preference accuracy and KL to the reference."""
    if not (beta > 0 and steps >= 0 and batch_size >= 1):
        raise ValueError(f"DPO needs beta > 0, steps >= 0 and batch_size >= 1; got {beta}, {steps}, {batch_size}")
    fmt = fmt or PlainFormat()
    n_ctx = model.config.n_ctx
    train = encode_pairs(fmt, tokenizer, train_pairs, n_ctx)
    watch = encode_pairs(fmt, tokenizer, held_out, n_ctx) if held_out else train
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    policy = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rows = []

    def log(step: int, train_loss: float | None) -> None:
        row = {"step": step, **{f"held_out_{k}": v for k, v in measure(policy, reference, watch, beta).items()}}
        if train_loss is not None:
            row["train_loss"] = round(train_loss, 5)
        rows.append(row)
        if on_row is not None:
            on_row(row)

    log(0, None)
    for step in range(1, steps + 1):
        batch = torch.randint(len(train.chosen.ids), (batch_size,), generator=gen).tolist()
        terms = dpo_terms(policy, reference, train, batch, beta)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        if step % eval_interval == 0 or step == steps:
            log(step, terms["loss"].item())
    return policy.eval(), rows
