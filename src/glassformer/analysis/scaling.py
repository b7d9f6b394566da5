"""A model's size and cost counted as scaling laws count them, and the scaling runs trained here (chapter 11).

Scaling laws relate the loss to the parameters N, the training tokens D and the compute C:

    N          non-embedding parameters: every weight except the vocabulary and position tables
               (Kaplan et al. 2020 found the loss follows N far more cleanly without them)
    active N   for a mixture of experts, the weights one token uses: K of the E experts, plus the router
    forward FLOPs per token ≈ 2·N_active + 2·L·T·D_attn + 2·D·V
               one multiply-add per weight used, attention over an average of T/2 earlier positions
               for the scores and again for the mix, and the output layer (Kaplan et al. 2020, Table 1)
    C ≈ 6·N·D  training compute: 2 FLOPs per weight per token forward, 4 backward
               (`emergence.training_compute`)

Worked example, the tiny preset (V = 65, T = 64, D = 64, 2 layers of 4 heads, learned positions):
65·64 = 4,160 token-table and 64·64 = 4,096 position-table weights out of 108,352, so N = 100,096;
forward FLOPs per token = 2·100,096 + 2·2·64·64 + 2·64·65 = 224,896.

    >>> from glassformer.model import build_model, preset
    >>> counts = parameter_counts(build_model(preset("tiny")))
    >>> counts.total, counts.non_embedding, counts.active_non_embedding
    (108352, 100096, 100096)
    >>> forward_flops_per_token(build_model(preset("tiny")))
    224896

The runs. `scripts/ship_scaling_runs.py` trains every shape in SIZES for every token budget in
BUDGETS with one recipe (`run_config`: only the shape and the budget change) and ships the table of
their results (RUNS_FILE, read by `load_runs`); a page can train one more run with the same recipe.
The budgets are numbers of training tokens, not times, so a run means the same on every machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

SCALING_DIR = Path(__file__).parents[1] / "assets" / "scaling"
RUNS_FILE = SCALING_DIR / "runs.json"

SIZES = {  # name: (d_model, n_layers, n_heads); the SwiGLU width is mlp_width(d_model)
    "d16-L1": (16, 1, 2),
    "d24-L2": (24, 2, 2),
    "d32-L2": (32, 2, 2),
    "d48-L3": (48, 3, 3),
    "d64-L4": (64, 4, 4),
    "d96-L4": (96, 4, 4),
    "d128-L4": (128, 4, 4),   # the course model's shape
}
BUDGETS = (245_760, 491_520, 983_040, 1_966_080, 3_932_160)   # training tokens: 120 to 1,920 steps of 16 x 128
BATCH, CONTEXT = 16, 128
# Everything but the shape and the budget: the course preset's RoPE, RMSNorm, SwiGLU and Muon, without
# dropout (the largest budget reads the training split under 4 times), fp32 (the same arithmetic on every CPU).
RECIPE = dict(n_ctx=CONTEXT, batch_size=BATCH, dropout=0.0, optimizer="muon", lr=3e-3, min_lr=1e-4, dtype="fp32",
              compile=False, time_budget=None, keep_best=False, eval_batches=10, sample_tokens=0, log_interval=20,
              seed=1337)


def mlp_width(d_model: int) -> int:
    """8/3 of d_model rounded up to a multiple of 8, as the course model's 344 for 128 (SwiGLU's three
    matrices then hold about as many weights as a GELU MLP of width 4 x d_model).

        >>> [mlp_width(d) for d in (16, 64, 128)]
        [48, 176, 344]
    """
    return 8 * math.ceil(d_model * 8 / 3 / 8)


def run_config(d_model: int, n_layers: int, n_heads: int, tokens: int):
    """The scaling runs' TrainConfig for one shape and a budget of `tokens` training tokens: a whole
    number of steps of BATCH x CONTEXT, warmup over the first 10% (at most 100 steps), cosine decay to
    the run's own end."""
    from glassformer.train import train_preset

    steps, rest = divmod(tokens, BATCH * CONTEXT)
    if rest or steps < 1:
        raise ValueError(f"a token budget must be a positive multiple of {BATCH * CONTEXT} (one step), got {tokens}")
    return train_preset("course", d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_mlp=mlp_width(d_model),
                        max_steps=steps, warmup_steps=min(100, steps // 10), eval_interval=steps,
                        checkpoint_interval=steps, **RECIPE)


@dataclass(frozen=True)
class ParameterCounts:
    total: int                  # every stored weight
    non_embedding: int          # without the token table, a learned position table and an untied output table
    active: int                 # what one token uses: a mixture of experts counts K of its E experts
    active_non_embedding: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def parameter_counts(model) -> ParameterCounts:
    """ParameterCounts of a DecoderLM (dense or mixture of experts), counted on its weights."""
    total = embedding = experts = 0
    seen = set()
    for name, p in model.named_parameters():   # a tied output table is the token table: counted once
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if name in ("embed.tok.weight", "embed.positions.weight", "unembed.weight"):
            embedding += p.numel()
        elif ".mlp.experts." in name:
            experts += p.numel()
    c = model.config
    idle = experts - experts * c.experts_per_token // c.n_experts if c.n_experts else 0   # the unchosen experts
    return ParameterCounts(total, total - embedding, total - idle, total - embedding - idle)


def forward_flops_per_token(model) -> int:
    """Forward-pass FLOPs per token at full context (see the module docstring); a training step costs ~3x."""
    c = model.config
    attention = 2 * c.n_layers * c.n_ctx * c.n_heads * c.head_dim   # (T/2 scores + T/2 mixes) x D_attn, x2 FLOPs
    return 2 * parameter_counts(model).active_non_embedding + attention + 2 * c.d_model * c.vocab_size


def load_runs(path: str | Path = RUNS_FILE) -> dict:
    """The shipped table of scaling runs: {"recipe": ..., "runs": [one dict per (size, token budget)]}."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no scaling runs at {path}: make them with scripts/ship_scaling_runs.py")
    return json.loads(path.read_text())
