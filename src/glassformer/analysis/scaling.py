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

import numpy as np

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


# --- fitting a scaling law to the runs ----------------------------------------------------------
#
# Two forms, both fitted by least squares on the loss itself (nats per character):
#
#     L(N)    = E + A·N^(−α)                    the runs of one token budget D (Kaplan et al. 2020)
#     L(N, D) = E + A·N^(−α) + B·D^(−β)         every run at once (Hoffmann et al. 2022, "approach 3")
#
# E is the loss that no size and no amount of data removes (what is unpredictable in the text itself,
# plus whatever this recipe can never learn); A·N^(−α) is what a model too small still loses, and
# B·D^(−β) what too few training tokens still lose.
#
# The fit is linear in E, A and B once the exponents are fixed, so it runs in two stages: a grid of
# exponents, each solved exactly by linear least squares (the "variable projection" trick), then
# Gauss–Newton steps with Levenberg–Marquardt damping on all the constants together from the grid's
# best point. The uncertainty is the usual one of nonlinear least squares: the covariance
# s²·(JᵀJ)⁻¹, with J the derivatives of the fitted losses with respect to the constants at the
# optimum and s² = (sum of squared residuals) / (points − constants). It assumes the misfit is noise
# of the same size on every run; a systematic bend that the form cannot follow shows instead as a
# large residual (LawFit.rms), which a page should print beside the constants.
#
# Internally N and D are divided by their geometric means (so that A·N^(−α) becomes a·x^(−α) with x
# near 1 and the constants are of similar size); the reported A and B are converted back, and their
# covariance with them.

EXPONENT_GRID = np.linspace(0.02, 3.0, 100)   # α and β tried by the grid stage (100 x 100 for the two-term law)


@dataclass(frozen=True)
class LawFit:
    """The constants of a fitted scaling law, their covariance and the misfit.

        >>> import numpy as np
        >>> n = np.array([1e4, 3e4, 1e5, 3e5, 1e6])
        >>> fit = fit_loss_vs_n(n, 1.5 + 40.0 * n ** -0.4)
        >>> [round(v, 4) for v in fit.values]
        [1.5, 40.0, 0.4]
        >>> round(fit.predict(1e7), 4)
        1.5634
    """

    names: tuple[str, ...]           # ("E", "A", "alpha") or ("E", "A", "alpha", "B", "beta")
    values: tuple[float, ...]
    covariance: np.ndarray           # (p, p), in the order of `names`
    rss: float                       # sum of squared residuals (nats²)
    points: int

    @property
    def errors(self) -> tuple[float, ...]:
        """Standard errors: the square roots of the covariance's diagonal (nan with no spare point)."""
        return tuple(float(math.sqrt(v)) if v >= 0 else float("nan") for v in np.diag(self.covariance))

    @property
    def scatter(self) -> float:
        """s = sqrt(rss / (points − constants)): the spread of a run around the law, as the fit estimates it
        (nan with no spare point)."""
        spare = self.points - len(self.names)
        return math.sqrt(self.rss / spare) if spare > 0 else float("nan")

    @property
    def rms(self) -> float:
        """Root-mean-square residual, in nats: how far the runs sit from the fitted law on average."""
        return math.sqrt(self.rss / self.points)

    def __getitem__(self, name: str) -> float:
        return self.values[self.names.index(name)]

    def error(self, name: str) -> float:
        return self.errors[self.names.index(name)]

    def _gradient(self, n, d) -> np.ndarray:
        """(p, ...) derivatives of the predicted loss with respect to the constants."""
        n = np.asarray(n, dtype=float)
        term_n = n ** -self["alpha"]
        rows = [np.ones_like(n), term_n, -self["A"] * term_n * np.log(n)]
        if "B" in self.names:
            d = np.asarray(d, dtype=float)
            term_d = d ** -self["beta"]
            rows += [term_d, -self["B"] * term_d * np.log(d)]
        return np.stack(np.broadcast_arrays(*rows))

    def predict(self, n, d=None):
        """The fitted loss at N = n (and D = d for the two-term law); arrays broadcast."""
        if "B" in self.names and d is None:
            raise ValueError("the two-term law L(N, D) needs the training tokens D as well")
        loss = self["E"] + self["A"] * np.asarray(n, dtype=float) ** -self["alpha"]
        if "B" in self.names:
            loss = loss + self["B"] * np.asarray(d, dtype=float) ** -self["beta"]
        return float(loss) if np.ndim(loss) == 0 else loss

    def prediction_error(self, n, d=None):
        """Standard error of `predict(n, d)` from the constants' covariance (first-order, "delta method")."""
        g = self._gradient(n, d)                                         # (p, ...)
        var = np.einsum("i...,ij,j...->...", g, self.covariance, g)
        err = np.sqrt(np.maximum(var, 0.0))
        return float(err) if np.ndim(err) == 0 else err

    def new_run_error(self, n, d=None):
        """Standard error of a new run's loss around `predict(n, d)`: the fit's own uncertainty and a run's
        scatter around the law together, sqrt(prediction_error² + scatter²)."""
        err = np.sqrt(np.asarray(self.prediction_error(n, d)) ** 2 + self.scatter ** 2)
        return float(err) if np.ndim(err) == 0 else err


def _design(x: np.ndarray, y: np.ndarray | None, alpha: np.ndarray, beta: np.ndarray | None) -> np.ndarray:
    """(G, P, 2 or 3) columns [1, x^−α, (y^−β)] for G exponent choices and P runs."""
    cols = [np.ones((len(alpha), len(x))), x[None, :] ** -alpha[:, None]]
    if y is not None:
        cols.append(y[None, :] ** -beta[:, None])
    return np.stack(cols, axis=-1)


def _residuals_and_jacobian(theta: np.ndarray, x: np.ndarray, y: np.ndarray | None,
                            loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """theta = (E, a, α[, b, β]) on the scaled axes -> residuals (P,) and their Jacobian (P, p)."""
    term_x = x ** -theta[2]
    cols = [np.ones_like(x), term_x, -theta[1] * term_x * np.log(x)]
    fitted = theta[0] + theta[1] * term_x
    if y is not None:
        term_y = y ** -theta[4]
        cols += [term_y, -theta[3] * term_y * np.log(y)]
        fitted = fitted + theta[3] * term_y
    return fitted - loss, np.stack(cols, axis=1)


def fit_law(n, d, loss) -> LawFit:
    """Least-squares fit of L(N) = E + A·N^(−α) (d None) or L(N, D) = E + A·N^(−α) + B·D^(−β) to the
    losses of runs with N = n non-embedding parameters and D = d training tokens (arrays of one length)."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    two = d is not None
    p = 5 if two else 3
    if len(n) < p or not (np.all(np.isfinite(loss)) and np.all(n > 0)):
        raise ValueError(f"fitting {p} constants needs at least {p} runs with finite losses and N > 0, got {len(n)}")
    n_ref = math.exp(np.log(n).mean())
    x = n / n_ref                                                     # (P,) near 1
    y, d_ref = None, 1.0
    if two:
        d = np.asarray(d, dtype=float)
        d_ref = math.exp(np.log(d).mean())
        y = d / d_ref
    # 1. the grid: every exponent choice solved exactly for the linear constants
    if two:
        alpha, beta = (g.ravel() for g in np.meshgrid(EXPONENT_GRID, EXPONENT_GRID, indexing="ij"))
    else:
        alpha, beta = EXPONENT_GRID, None
    X = _design(x, y, alpha, beta)                                    # (G, P, 2|3)
    linear = np.einsum("gkp,p->gk", np.linalg.pinv(X), loss)          # (G, 2|3) least-squares solutions
    rss = ((np.einsum("gpk,gk->gp", X, linear) - loss) ** 2).sum(1)   # (G,)
    best = int(np.nanargmin(rss))
    theta = np.array([linear[best, 0], linear[best, 1], alpha[best]] +
                     ([linear[best, 2], beta[best]] if two else []))
    # 2. Levenberg–Marquardt on all constants together
    r, J = _residuals_and_jacobian(theta, x, y, loss)
    cost, damping = float(r @ r), 1e-3
    for _ in range(200):
        JtJ = J.T @ J
        step = np.linalg.solve(JtJ + damping * np.diag(np.diag(JtJ) + 1e-12), -J.T @ r)
        trial = theta + step
        r_new, J_new = _residuals_and_jacobian(trial, x, y, loss)
        new_cost = float(r_new @ r_new)
        if np.isfinite(new_cost) and new_cost <= cost:
            converged = cost - new_cost <= 1e-15 * max(cost, 1e-30) or np.abs(step).max() < 1e-12
            theta, r, J, cost, damping = trial, r_new, J_new, new_cost, damping / 3
            if converged:
                break
        else:
            damping *= 4
            if damping > 1e12:
                break
    # 3. covariance s²·(JᵀJ)⁻¹, then back to the reported constants (A = a·n_ref^α, B = b·d_ref^β)
    spare = len(n) - p
    s2 = cost / spare if spare > 0 else float("nan")
    cov = s2 * np.linalg.pinv(J.T @ J)
    values = [theta[0], theta[1] * n_ref ** theta[2], theta[2]]
    T = np.eye(p)
    T[1, 1], T[1, 2] = n_ref ** theta[2], theta[1] * n_ref ** theta[2] * math.log(n_ref)
    if two:
        values += [theta[3] * d_ref ** theta[4], theta[4]]
        T[3, 3], T[3, 4] = d_ref ** theta[4], theta[3] * d_ref ** theta[4] * math.log(d_ref)
    names = ("E", "A", "alpha", "B", "beta") if two else ("E", "A", "alpha")
    return LawFit(names, tuple(float(v) for v in values), T @ cov @ T.T, cost, len(n))


def fit_loss_vs_n(n, loss) -> LawFit:
    """Least-squares fit of L(N) = E + A·N^(−α) to losses at sizes n (one token budget); >= 3 runs."""
    return fit_law(n, None, loss)


def fit_loss_vs_n_d(n, d, loss) -> LawFit:
    """Least-squares fit of L(N, D) = E + A·N^(−α) + B·D^(−β) to runs of sizes n and tokens d; >= 5 runs."""
    return fit_law(n, d, loss)


CHINCHILLA_TOKENS_PER_PARAMETER = 20   # Hoffmann et al. 2022: the compute-optimal D/N, roughly constant with scale


def compute_optimal(fit: LawFit, compute) -> tuple:
    """(N, D) that minimise the fitted L(N, D) at a training compute C = 6·N·D (Hoffmann et al. 2022):

        N_opt = G·(C/6)^(β/(α+β)),  G = (α·A / (β·B))^(1/(α+β)),  D_opt = C / (6·N_opt)

    (set dL/dN = 0 with D = C/(6N)). Needs a two-term fit with positive A, B, α, β."""
    if "B" not in fit.names:
        raise ValueError("the compute-optimal split needs the two-term law L(N, D)")
    a, b, alpha, beta = fit["A"], fit["B"], fit["alpha"], fit["beta"]
    if min(a, b, alpha, beta) <= 0:
        raise ValueError(f"the fitted law has no optimum: A, B, α, β must all be positive, got "
                         f"{a:.3g}, {b:.3g}, {alpha:.3g}, {beta:.3g}")
    c6 = np.asarray(compute, dtype=float) / 6
    n = (alpha * a / (beta * b)) ** (1 / (alpha + beta)) * c6 ** (beta / (alpha + beta))
    return n, c6 / n


def compute_frontier(runs: list[dict], loss: str = "val_loss", compute: str = "compute") -> list[dict]:
    """The runs no cheaper run beats: each has a lower loss than every run of less or equal compute
    (the lower envelope of loss against compute), ordered by compute. For any compute budget, the best
    of the runs it could pay for is the last frontier run within it."""
    frontier, best = [], math.inf
    for run in sorted(runs, key=lambda r: (r[compute], r[loss])):
        if run[loss] < best:
            frontier.append(run)
            best = run[loss]
    return frontier


# --- one more run, trained from a page ------------------------------------------------------------

# Shapes between the shipped SIZES, for a run the table does not hold (a page trains one and compares its
# loss with what the fitted law predicted for it). Same scheme: d_model, layers, heads.
PAGE_SIZES = {
    "d20-L2": (20, 2, 2),
    "d40-L2": (40, 2, 2),
    "d56-L3": (56, 3, 4),
    "d80-L4": (80, 4, 4),
}


def run_arguments(d_model: int, n_layers: int, n_heads: int, tokens: int) -> list[str]:
    """`glassformer train` flags for the run `run_config(d_model, n_layers, n_heads, tokens)` describes, so
    a background process (course/live_training.py) trains exactly that recipe. Three fields have no flag
    and keep the course preset's values: eval_batches, keep_best and sample_tokens; with a single
    evaluation, at the last step, they change neither the weights nor the whole-split validation loss
    (tests/test_ch11_moe_scaling.py checks that nothing else differs)."""
    cfg = run_config(d_model, n_layers, n_heads, tokens)
    m = cfg.model
    return ["--preset", "course", "--d-model", str(m.d_model), "--n-layers", str(m.n_layers),
            "--n-heads", str(m.n_heads), "--d-mlp", str(m.d_mlp), "--n-ctx", str(m.n_ctx),
            "--dropout", str(m.dropout), "--batch-size", str(cfg.batch_size), "--max-steps", str(cfg.max_steps),
            "--warmup-steps", str(cfg.warmup_steps), "--eval-interval", str(cfg.eval_interval),
            "--checkpoint-interval", str(cfg.checkpoint_interval), "--log-interval", str(cfg.log_interval),
            "--optimizer", cfg.optimizer, "--lr", repr(cfg.lr), "--min-lr", repr(cfg.min_lr),
            "--dtype", cfg.dtype, "--no-compile", "--seed", str(cfg.seed)]


def shape_counts(d_model: int, n_layers: int, n_heads: int) -> ParameterCounts:
    """ParameterCounts of the scaling family's model of this shape (built, not trained: a fraction of a second)."""
    from glassformer.model import build_model

    return parameter_counts(build_model(run_config(d_model, n_layers, n_heads, BATCH * CONTEXT).model))


def expected_seconds(runs: list[dict], non_embedding: int, tokens: int) -> float:
    """Training time of a run of `non_embedding` parameters on `tokens` tokens, from the table's own
    speeds: each size's median tokens/s, interpolated on log-log axes between the two nearest sizes
    (the nearest one's speed outside the table's range), plus the median time a run spent besides
    training (its evaluations, building, saving)."""
    by_size: dict[int, list[dict]] = {}
    for r in runs:
        by_size.setdefault(r["non_embedding_parameters"], []).append(r)
    if not by_size:
        raise ValueError("no runs to take a speed from")
    sizes = sorted(by_size)
    speed = [float(np.median([r["tokens_per_s"] for r in by_size[s]])) for s in sizes]
    rate = float(np.exp(np.interp(math.log(non_embedding), np.log(sizes), np.log(speed))))
    overhead = float(np.median([max(0.0, r["run_seconds"] - r["train_seconds"]) for r in runs]))
    return tokens / rate + overhead
