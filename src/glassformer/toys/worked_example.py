"""A forward pass small enough to do with pencil and paper (appendix A of the course).

The toy is a real glassformer model: a `ModelConfig` of the course family, built by
`build_model`, whose random weights are replaced by the small hand-written tables below.
Everything the appendix prints comes from `model.run_with_trace`; this module only says
what the toy is and how to check one number of it by hand.

    vocabulary   6 words: the cat dog sat ran .
    d_model      6   (D)        n_heads   2, head_dim 3 (Dh)
    context      3 tokens (T)   d_mlp     3 (F), SwiGLU, no biases
    positions    learned (a hand-written 3 x 6 table: no sines, no rotations)
    norm         RMSNorm, scale all 1       output head tied to the embedding table

The six dimensions were given meanings when the tables were written (a trained model's single
dimensions seldom have one you could name): 0 "is a determiner", 1 "is a noun", 2 "is a verb",
3 "ends a sentence", 4 "cat-like (+) or dog-like (-)", 5 "how early in the sentence".

    >>> model = build()
    >>> prepared = prepare("The cat sat")
    >>> prepared.ids, prepared.words
    ([0, 1, 3], ['the', 'cat', 'sat'])
    >>> logits, trace = run(model, prepared.ids)
    >>> tuple(trace["blocks.0.attn.pattern"].shape)   # (B, H, T, S)
    (1, 2, 3, 3)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from glassformer.model.config import ModelConfig
from glassformer.model.decoder import DecoderLM, build_model

VOCAB = ["the", "cat", "dog", "sat", "ran", "."]
DEFAULT_SENTENCE = "the cat sat"
DIMENSIONS = ["det", "noun", "verb", "end", "cat±dog", "early"]

CONFIG = ModelConfig(family="course", vocab_size=len(VOCAB), n_ctx=3, d_model=6, n_layers=1, n_heads=2,
                     head_dim=3, d_mlp=3, position="learned", norm="rmsnorm", norm_eps=1e-5, mlp="swiglu",
                     attn_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=True,
                     dropout=0.0, attn_dropout=0.0)

# The hand-written weights. Matrices are stored (in, out), as glassformer's Linear stores them:
# a row vector x times W, so row i says where input dimension i goes.
WEIGHTS: dict[str, list[list[float]]] = {
    # (V, D): one row per word; also the output head (tied embeddings)
    "embedding": [
        [2, 0, 0, 0, 0, 0],    # the
        [0, 2, 0, 0, 1, 0],    # cat
        [0, 2, 0, 0, -1, 0],   # dog
        [0, 0, 2, 0, 1, 0],    # sat
        [0, 0, 2, 0, -1, 0],   # ran
        [0, 0, 0, 2, 0, 0],    # .
    ],
    # (T, D): one row per position, added to the word's row
    "positions": [
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0.5],
        [0, 0, 0, 0, 0, 0],
    ],
    # (D, H*Dh): queries, keys and values; columns 0-2 are head 0, columns 3-5 head 1.
    # Head 0 looks for the noun: every word's query asks "noun?"; a noun's key answers most (the
    # cat±dog dimension lets a verb's key answer a little too).
    # Head 1 looks back to the start: its keys grow with the "early" dimension.
    "W_Q": [
        [1, 0, 0, 1, 0, 0],
        [1, 0, 0, 1, 0, 0],
        [1, 0, 0, 1, 0, 0],
        [1, 0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    "W_K": [
        [0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
    ],
    "W_V": [
        [0, 0, 0, 1, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    # (H*Dh, D): the heads' outputs, side by side, back to the 6 model dimensions
    "W_O": [
        [0, 0.5, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0],
        [0.5, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0.5],
    ],
    # (D, F): the MLP's gate and up projections: unit 0 fires on determiners, 1 on nouns, 2 on verbs
    "W_gate": [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
    ],
    "W_up": [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
    ],
    # (F, D): determiner -> noun next, noun -> verb next, verb -> end next
    "W_down": [
        [-1, 1, 0, 0, 0, 0],
        [0, -1, 1, 0, 0, 0],
        [0, 0, -1, 1, 0, 0],
    ],
}

# Where each hand table goes in the model (glassformer's parameter names). The norms keep their
# initial scale of 1 (a trained model learns these too).
PARAMETERS = {
    "embedding": "embed.tok.weight",
    "positions": "embed.positions.weight",
    "W_O": "blocks.0.attn.out.weight",
    "W_gate": "blocks.0.mlp.gate.weight",
    "W_up": "blocks.0.mlp.up.weight",
    "W_down": "blocks.0.mlp.down.weight",
}


def build(weights: dict[str, list[list[float]]] | None = None) -> DecoderLM:
    """The toy as a glassformer model, in float64 (the norms still compute in float32, as
    norm.py does for every model: results agree with exact arithmetic to about 1e-7).

    weights: tables to use instead of WEIGHTS' (same names and shapes), e.g. to try
    `build({"positions": [[0] * 6] * 3})`, a toy without position information."""
    tables = {**WEIGHTS, **(weights or {})}
    model = build_model(CONFIG).double().eval()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for table, name in PARAMETERS.items():
            params[name].copy_(torch.tensor(tables[table], dtype=torch.float64))
        qkv = [tables["W_Q"][i] + tables["W_K"][i] + tables["W_V"][i] for i in range(CONFIG.d_model)]
        params["blocks.0.attn.qkv.weight"].copy_(torch.tensor(qkv, dtype=torch.float64))  # (D, 3 H Dh)
        for name in ("blocks.0.norm1.weight", "blocks.0.norm2.weight", "final_norm.weight"):
            params[name].fill_(1.0)
    return model


def weights_of(model: DecoderLM) -> dict[str, list[list[float]]]:
    """The hand tables read back out of the model's parameters (the inverse of build)."""
    params = {name: p.detach().tolist() for name, p in model.named_parameters()}
    tables = {table: params[name] for table, name in PARAMETERS.items()}
    qkv = params["blocks.0.attn.qkv.weight"]                                # (D, 3 H Dh)
    width = CONFIG.n_heads * CONFIG.head_dim
    for n, table in enumerate(("W_Q", "W_K", "W_V")):
        tables[table] = [row[n * width:(n + 1) * width] for row in qkv]
    return tables


def root_mean_square(x: torch.Tensor, eps: float) -> torch.Tensor:
    """(..., D) -> (...): the number RMSNorm divides each row by, sqrt(mean(x^2) + eps)."""
    return (x.pow(2).mean(dim=-1) + eps).sqrt()


def run(model: DecoderLM, ids: list[int]):
    """(logits (1, T, V), trace of every hook point): the library's own forward pass."""
    with torch.no_grad():
        return model.run_with_trace(torch.tensor([ids]))


# --- the learner's sentence -------------------------------------------------------------

@dataclass
class Prepared:
    ids: list[int]
    words: list[str]
    notices: list[str] = field(default_factory=list)


def _shown(word: str, limit: int = 16) -> str:
    """A word as printable text for a markdown code span: control characters as \\x.., backticks
    as ', long words cut."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in word).replace("`", "'")
    return text if len(text) <= limit else text[:limit] + "…"


def prepare(text: str) -> Prepared:
    """Any text -> at most 3 known words, never an exception; every change is explained.

    Words are split at spaces, and "." is a word of its own; case is ignored.

        >>> prepare("The dog ran.").words
        ['dog', 'ran', '.']
        >>> prepare("the 🙂 cat").notices
        ['Not in the 6-word vocabulary, skipped: `🙂`.']
    """
    notices: list[str] = []
    if not text or not text.strip():
        return Prepared(*_ids(DEFAULT_SENTENCE), [f"The box is empty, so this uses “{DEFAULT_SENTENCE}”."])
    pieces = re.findall(r"[^\W_]+|[^\w\s]|_", text.lower())
    unknown = [p for p in pieces if p not in VOCAB]
    if unknown:
        shown = ", ".join(f"`{_shown(w)}`" for w in unknown[:8]) + (" …" if len(unknown) > 8 else "")
        notices.append(f"Not in the {len(VOCAB)}-word vocabulary, skipped: {shown}.")
    known = [p for p in pieces if p in VOCAB]
    if not known:
        notices.append(f"No known word is left, so this uses “{DEFAULT_SENTENCE}”.")
        known = DEFAULT_SENTENCE.split()
    if len(known) > CONFIG.n_ctx:
        notices.append(f"The toy's context is {CONFIG.n_ctx} words; it reads the last {CONFIG.n_ctx}: "
                       f"“{' '.join(known[-CONFIG.n_ctx:])}”.")
        known = known[-CONFIG.n_ctx:]
    return Prepared([VOCAB.index(w) for w in known], known, notices)


def _ids(sentence: str) -> tuple[list[int], list[str]]:
    words = sentence.split()
    return [VOCAB.index(w) for w in words], words


# --- checking a learner's number ---------------------------------------------------------

@dataclass
class Working:
    """How one printed number is computed by hand.

    lines: the calculation written out, one operation a line (each with its running value);
    partials: values a learner reaches by stopping early (the running sums of a dot product);
    slips: (what went wrong, the number that mistake gives), for the common mistakes.
    """
    value: float
    lines: list[str]
    partials: list[tuple[str, float]] = field(default_factory=list)
    slips: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:  # a "mistake" that gives the right number is no mistake here
        if math.isfinite(self.value):
            self.slips = [(why, v) for why, v in self.slips
                          if math.isfinite(v) and abs(v - self.value) > tolerance(self.value)]


@dataclass
class Verdict:
    kind: str        # "empty", "unreadable", "right", "slip", "wrong"
    message: str     # markdown; the learner's own text only ever inside a code span


def tolerance(value: float) -> float:
    """Right within 0.01, or within 0.5% for numbers above 2 (rounding to 3 decimals on the way is fine)."""
    return max(0.01, 0.005 * abs(value))


def parse_number(text: str) -> float | None:
    """The learner's typed number, forgiving of how people write numbers; None if it is not one.

        >>> parse_number(" −1,5 "), parse_number("2/3"), parse_number("-inf"), parse_number("abc")
        (-1.5, 0.6666666666666666, -inf, None)
    """
    if text is None:
        return None
    t = text.strip().replace("−", "-").replace("–", "-").replace(" ", "").replace("∞", "inf")
    if not t or len(t) > 40:
        return None
    if t.count(",") == 1 and "." not in t:
        t = t.replace(",", ".")
    if t.lower() in ("-inf", "-infinity"):
        return -math.inf
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)/[-+]?(\d+\.?\d*|\.\d+)", t):
        top, bottom = (float(p) for p in t.split("/"))
        return top / bottom if bottom != 0 else None
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", t):
        return None
    return float(t)


def check(text: str, working: Working) -> Verdict:
    """Compare a typed answer with the worked value: right, a known slip, or where to look."""
    if text is None or not text.strip():
        return Verdict("empty", "Type your number in the box (for example 0.58), then press Enter.")
    answer = parse_number(text)
    if answer is None:
        shown = _shown(text.strip(), 24)
        return Verdict("unreadable", f"`{shown}` is not a number I can read. Type digits with a decimal point, "
                                     "like -1.25 (a fraction like 2/3 works too).")
    target = working.value
    if math.isinf(target) or math.isinf(answer):
        if answer == target:
            return Verdict("right", "Right: −∞.")
        if target == -math.inf:
            return Verdict("wrong", f"Not quite: the mask does not put a number like {answer:g} there but −∞ "
                                    "(type -inf): e^x is above 0 for every finite x, so in exact arithmetic only "
                                    "e^−∞ = 0 gives that key no weight at all.")
        return Verdict("wrong", f"Not quite: {_fmt(answer)} vs the model's {_fmt(target)}.")
    if abs(answer - target) <= tolerance(target):
        return Verdict("right", f"Right: the model computed {target:.4f} (yours {answer:g}).")
    for why, value in working.slips:
        if math.isfinite(value) and abs(answer - value) <= tolerance(value):
            return Verdict("slip", f"Close: your {answer:g} is what you get if you {why}. "
                                   f"The model computed {target:.4f}.")
    for where, value in working.partials:
        if abs(answer - value) <= tolerance(value) and abs(value - target) > tolerance(target):
            return Verdict("slip", f"Your {answer:g} equals the running total {where}: the terms after it "
                                   f"are missing. The model computed {target:.4f}.")
    return Verdict("wrong", f"Not quite: the model computed {target:.4f}, you have {answer:g}. "
                            "Compare your steps with the working below, line by line.")


def _num(x: float) -> str:
    """A hand-table weight as written (1, -0.5), any other number to 3 decimals."""
    return f"{x:g}" if abs(x * 10 - round(x * 10)) < 1e-9 else _fmt(x)


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "−∞" if x < 0 else "∞"
    return f"{x:.3f}"


def dot_working(xs: list[float], ws: list[float], x_names: list[str], label: str = "") -> Working:
    """x · w written out term by term, with the running sum after each term."""
    lines, partials, total = [], [], 0.0
    for i, (x, w, name) in enumerate(zip(xs, ws, x_names)):
        total += x * w
        sign = "+" if i else " "
        lines.append(f"{sign} {_fmt(x)} × {_num(w)}  ({name}) = {_fmt(x * w)}   running total {_fmt(total)}")
        if i < len(xs) - 1:
            partials.append((f"after {i + 1} of {len(xs)} terms", total))
    if label:
        lines.append(f"= {_fmt(total)}  {label}")
    return Working(total, lines, partials)


# --- what the appendix prints, beyond the trace -------------------------------------------

def unscaled_scores(trace) -> torch.Tensor:
    """q · k for every head, query and key, before the division by sqrt(Dh): (B, H, T, S).

    attention.py computes `q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)` in one line;
    the appendix shows the two halves of that line as two steps."""
    q, k = trace["blocks.0.attn.q"], trace["blocks.0.attn.k"]              # (B, H, T, Dh)
    return q @ k.transpose(-2, -1)                                          # (B, H, T, S)


def swiglu_parts(model: DecoderLM, trace) -> dict[str, torch.Tensor]:
    """The MLP's hidden layer in its three pieces, each (B, T, F): gate, silu(gate), up.

    The gate is traced (blocks.0.mlp.pre); `up` is the model's own up projection applied to
    the traced MLP input; silu is the same torch function mlp.py calls."""
    mlp = model.blocks[0].mlp
    gate = trace["blocks.0.mlp.pre"]
    with torch.no_grad():
        up = mlp.up(trace["blocks.0.mlp_in"])
    return {"gate": gate, "silu": torch.nn.functional.silu(gate), "up": up}


# --- one check per step: the number to find, and its working ------------------------------

@dataclass
class Check:
    key: str
    hook: str          # the table the number is in (a trace name, or "scores_unscaled", "probs")
    index: tuple       # where in that table, without the batch dimension
    asks: str          # the entry, in words
    working: Working


def rms_working(x: list[float], j: int, eps: float, names: list[str]) -> Working:
    """RMSNorm of x, entry j, by hand: squares, their mean, + eps, square root, divide."""
    squares = [v * v for v in x]
    mean = sum(squares) / len(x)
    rms = math.sqrt(mean + eps)
    value = x[j] / rms
    lines = ["squares: " + " + ".join(_fmt(s) for s in squares) + f" = {_fmt(sum(squares))}",
             f"mean of the squares: {_fmt(sum(squares))} / {len(x)} = {mean:.4f}",
             f"root mean square: √({mean:.4f} + {eps:g}) = {rms:.4f}",
             f"{names[j]}: {_fmt(x[j])} / {rms:.4f} = {value:.4f}   (the norm's scale is 1)"]
    mu = sum(x) / len(x)
    var = sum((v - mu) ** 2 for v in x) / len(x)
    slips = [("divide by √(sum of squares), forgetting to take the mean first", x[j] / math.sqrt(sum(squares))),
             ("divide by the mean of the squares and forget the square root", x[j] / mean),
             ("subtract the mean first, as LayerNorm does (RMSNorm does not)", (x[j] - mu) / math.sqrt(var + eps))]
    return Working(value, lines, [], slips)


class _Pass:
    """One forward pass as the checks read it: every recorded tensor as nested lists (batch row 0),
    the hand tables read back from the model, and the choices several steps share (which key of
    head 0 to follow, which output dimension). Most checks follow the last word, t: its row is the
    one that predicts the next word."""

    def __init__(self, model: DecoderLM, trace, words: list[str]) -> None:
        self.model, self.trace, self.words = model, trace, words
        self.T, self.t = len(words), len(words) - 1
        self.eps, self.Dh = model.config.norm_eps, model.config.head_dim
        self.W = weights_of(model)
        self.x = self.get("blocks.0.resid_pre")                                   # (T, D)
        t = self.t
        raw_row = unscaled_scores(trace)[0, 0, t, :t + 1].tolist()
        self.key = max(range(t + 1), key=lambda s: (abs(raw_row[s]), -s))       # the key that matters most to head 0
        attn_out = self.get("blocks.0.attn_out")[t]
        self.out_col = max(range(model.config.d_model), key=lambda d: abs(attn_out[d]))   # attention's largest write

    def get(self, name: str) -> list:
        return self.trace[name][0].tolist()

    def where(self, d: int) -> str:
        return f"“{self.words[self.t]}”, dimension {DIMENSIONS[d]}"


def _check_embed(p: _Pass) -> Check:
    """A word's row plus its position's row (the second word's, when there is one)."""
    s = min(1, p.t)
    row_tok, row_pos = p.get("embed.tok")[s], p.get("embed.pos")[s]
    d = max(range(len(row_tok)), key=lambda i: (row_pos[i] != 0, abs(row_tok[i] + row_pos[i])))
    tok, pos = row_tok[d], row_pos[d]
    return Check("embed", "blocks.0.resid_pre", (s, d), f"“{p.words[s]}”, dimension {DIMENSIONS[d]}",
                 Working(tok + pos, [f"word row {_fmt(tok)} + position {s} row {_fmt(pos)} = {_fmt(tok + pos)}"],
                         slips=[("forget to add the position vector", tok)] if pos else []))


def _check_norm(p: _Pass) -> Check:
    """The norm before attention: the verb dimension of a verb, else the row's largest entry."""
    xt = p.x[p.t]
    j = 2 if p.words[p.t] in ("sat", "ran") else max(range(6), key=lambda d: abs(xt[d]))
    return Check("norm", "blocks.0.attn_in", (p.t, j), p.where(j), rms_working(xt, j, p.eps, DIMENSIONS))


def _check_qkv(p: _Pass) -> Check:
    """A query: the normalized row times column 0 of W_Q."""
    w = dot_working(p.get("blocks.0.attn_in")[p.t], [row[0] for row in p.W["W_Q"]], DIMENSIONS)
    return Check("qkv", "blocks.0.attn.q", (0, p.t, 0), f"head 0, “{p.words[p.t]}”, query entry 0", w)


def _raw_score(p: _Pass) -> Working:
    q, k = p.get("blocks.0.attn.q")[0], p.get("blocks.0.attn.k")[0]
    return dot_working(q[p.t], k[p.key], [f"q entry {i} × k entry {i}" for i in range(p.Dh)])


def _check_scores(p: _Pass) -> Check:
    """A raw score q · k of head 0: the last word's query and the key that matters most to it."""
    return Check("scores", "scores_unscaled", (0, p.t, p.key),
                 f"head 0, query “{p.words[p.t]}”, key “{p.words[p.key]}”", _raw_score(p))


def _check_scale(p: _Pass) -> Check:
    """The same score divided by √Dh."""
    raw = _raw_score(p).value
    scaled = raw / math.sqrt(p.Dh)
    return Check("scale", "blocks.0.attn.scores", (0, p.t, p.key),
                 f"head 0, query “{p.words[p.t]}”, key “{p.words[p.key]}”",
                 Working(scaled, [f"{_fmt(raw)} / √{p.Dh} = {_fmt(raw)} / {math.sqrt(p.Dh):.4f} = {scaled:.4f}"],
                         slips=[(f"divide by {p.Dh} instead of √{p.Dh}", raw / p.Dh),
                                (f"divide by √{p.model.config.d_model} (the model width) instead of √{p.Dh} "
                                 "(one head's width)", raw / math.sqrt(p.model.config.d_model)),
                                ("leave the score unscaled", raw)]))


def _check_mask(p: _Pass) -> Check:
    """A future key of the first query (when the sentence has 2+ words); else the one allowed score."""
    if p.T > 1:
        return Check("mask", "blocks.0.attn.masked_scores", (0, 0, 1), f"head 0, query “{p.words[0]}”, key "
                     f"“{p.words[1]}”", Working(-math.inf, ["key position 1 > query position 0: a future word, so −∞"]))
    return Check("mask", "blocks.0.attn.masked_scores", (0, 0, 0), f"head 0, query “{p.words[0]}”, key “{p.words[0]}”",
                 Working(p.get("blocks.0.attn.masked_scores")[0][0][0],
                         ["key position 0 ≤ query position 0: allowed, the score is unchanged"]))


def _check_softmax(p: _Pass) -> Check:
    """Softmax over the allowed keys of the last query, at the key followed since step 5."""
    t, key = p.t, p.key
    scores = p.get("blocks.0.attn.scores")[0][t][:t + 1]
    exps = [math.exp(v) for v in scores]
    total = sum(exps)
    weight = exps[key] / total
    lines = [f"e^{_fmt(v)} = {e:.4f}  (key “{p.words[i]}”)" for i, (v, e) in enumerate(zip(scores, exps))]
    lines += [f"sum = {total:.4f}", f"{exps[key]:.4f} / {total:.4f} = {weight:.4f}"]
    raws = unscaled_scores(p.trace)[0].tolist()[0][t][:t + 1]
    raw_exps = [math.exp(v) for v in raws]
    slips = [("use the scores without exponentiating", scores[key] / sum(scores) if sum(scores) else math.nan),
             ("use the unscaled scores (before ÷√3)", raw_exps[key] / sum(raw_exps))]
    return Check("softmax", "blocks.0.attn.pattern", (0, t, key),
                 f"head 0, query “{p.words[t]}”, key “{p.words[key]}”", Working(weight, lines, [], slips))


def _check_z(p: _Pass) -> Check:
    """Head 0's weighted sum of values, entry 0."""
    t = p.t
    pattern = p.get("blocks.0.attn.pattern")[0][t][:t + 1]
    v0 = [row[0] for row in p.get("blocks.0.attn.v")[0][:t + 1]]
    w = dot_working(pattern, v0, [f"weight on “{p.words[i]}”" for i in range(t + 1)])
    w.lines = [f"{'+' if i else ' '} {_fmt(a)} × {_fmt(b)}  (weight on “{p.words[i]}” × its value entry 0)"
               for i, (a, b) in enumerate(zip(pattern, v0))] + [f"= {_fmt(w.value)}"]
    w.slips = [("add the value entries without the weights", sum(v0))]
    w.__post_init__()
    return Check("z", "blocks.0.attn.z", (0, t, 0), f"head 0, “{p.words[t]}”, entry 0", w)


def _check_out(p: _Pass) -> Check:
    """The output projection: both heads side by side times the column of W_O attention writes most to."""
    z = p.get("blocks.0.attn.z")                                    # (H, T, Dh)
    zcat = [*z[0][p.t], *z[1][p.t]]                                 # the heads side by side: (H Dh,)
    w = dot_working(zcat, [row[p.out_col] for row in p.W["W_O"]],
                    ["h0 z0", "h0 z1", "h0 z2", "h1 z0", "h1 z1", "h1 z2"])
    return Check("out", "blocks.0.attn_out", (p.t, p.out_col), p.where(p.out_col), w)


def _check_resid(p: _Pass) -> Check:
    """The residual: the stream plus attention's output, in the same dimension."""
    a, r = p.get("blocks.0.attn_out")[p.t][p.out_col], p.x[p.t][p.out_col]
    return Check("resid", "blocks.0.resid_mid", (p.t, p.out_col), p.where(p.out_col),
                 Working(r + a, [f"{_fmt(r)} (the stream) + {_fmt(a)} (attention's output) = {_fmt(r + a)}"],
                         slips=[("forget the residual: attention's output alone", a)]))


def _check_mlp(p: _Pass) -> Check:
    """The MLP's hidden unit most active for the last word: norm, gate, up, SiLU, product."""
    mid = p.get("blocks.0.resid_mid")[p.t]
    post_row = p.get("blocks.0.mlp.post")[p.t]
    unit = max(range(p.model.config.d_mlp), key=lambda u: abs(post_row[u]))
    normed = rms_working(mid, unit, p.eps, DIMENSIONS)
    rms = math.sqrt(sum(v * v for v in mid) / len(mid) + p.eps)
    xn2 = [v / rms for v in mid]
    g = sum(a * row[unit] for a, row in zip(xn2, p.W["W_gate"]))
    u = sum(a * row[unit] for a, row in zip(xn2, p.W["W_up"]))
    silu = g / (1 + math.exp(-g))
    post = silu * u
    lines = ["the stream's norm, as in step 3: every entry divided by its root mean square",
             *["    " + ln for ln in normed.lines[:3]],
             "    normed row: " + ", ".join(_fmt(v) for v in xn2),
             f"gate = normed row · column {unit} of W_gate = {g:.4f}",
             f"up   = normed row · column {unit} of W_up   = {u:.4f}",
             f"silu(gate) = {g:.4f} / (1 + e^{_fmt(-g)}) = {g:.4f} / {1 + math.exp(-g):.4f} = {silu:.4f}",
             f"silu(gate) × up = {silu:.4f} × {u:.4f} = {post:.4f}"]
    raw_g = sum(a * row[unit] for a, row in zip(mid, p.W["W_gate"]))
    raw_u = sum(a * row[unit] for a, row in zip(mid, p.W["W_up"]))
    slips = [("skip the SiLU and multiply gate × up", g * u),
             ("skip the norm and use the stream itself", raw_g / (1 + math.exp(-raw_g)) * raw_u)]
    return Check("mlp", "blocks.0.mlp.post", (p.t, unit), f"“{p.words[p.t]}”, hidden unit {unit}",
                 Working(post, lines, [], slips))


def _check_mlp_out(p: _Pass) -> Check:
    """The stream after the MLP, in the dimension with the most terms to add (then the largest)."""
    mid = p.get("blocks.0.resid_mid")[p.t]
    hidden = p.get("blocks.0.mlp.post")[p.t]
    mlp_out_row = p.get("blocks.0.mlp_out")[p.t]

    def busy(d: int) -> tuple[int, float]:
        terms = sum(1 for h, row in zip(hidden, p.W["W_down"]) if h * row[d] != 0) + (mid[d] != 0)
        return terms, abs(mlp_out_row[d])
    col = max(range(p.model.config.d_model), key=busy)
    down = [row[col] for row in p.W["W_down"]]
    mlp_out = sum(h * d for h, d in zip(hidden, down))
    value = mid[col] + mlp_out
    lines = [f"{'+' if i else ' '} {_fmt(h)} × {_num(d)}  (hidden unit {i})" for i, (h, d) in enumerate(zip(hidden, down))]
    lines += [f"= {_fmt(mlp_out)}  the MLP's output, dimension {DIMENSIONS[col]}",
              f"{_fmt(mid[col])} (the stream) + {_fmt(mlp_out)} = {_fmt(value)}"]
    return Check("mlp_out", "blocks.0.resid_post", (p.t, col), p.where(col),
                 Working(value, lines, [], [("forget to add the stream (the residual)", mlp_out)]))


def _check_logit(p: _Pass) -> Check:
    """A logit: the final-normed row times a word's embedding row (“cat”, or “dog” after a cat)."""
    final = p.get("final_norm")[p.t]
    word = VOCAB.index("cat") if "cat" not in p.words[p.t:] else VOCAB.index("dog")
    w = dot_working(final, p.W["embedding"][word], DIMENSIONS)
    w.lines.append(f"= {_fmt(w.value)}  the logit of “{VOCAB[word]}”")
    return Check("logit", "logits", (p.t, word), f"after “{p.words[p.t]}”, the word “{VOCAB[word]}”", w)


def _check_probs(p: _Pass) -> Check:
    """A probability: softmax over the six logits, at the favourite next word."""
    logits = p.get("logits")[p.t]
    exps = [math.exp(v) for v in logits]
    total = sum(exps)
    best = max(range(len(VOCAB)), key=lambda i: logits[i])
    prob = exps[best] / total
    lines = [f"e^{_fmt(v)} = {e:.4f}  (“{VOCAB[i]}”)" for i, (v, e) in enumerate(zip(logits, exps))]
    lines += [f"sum = {total:.4f}", f"{exps[best]:.4f} / {total:.4f} = {prob:.4f}"]
    slips = [("divide the logit by the sum of the logits, without exponentiating",
              logits[best] / sum(logits) if sum(logits) else math.nan)]
    return Check("probs", "probs", (p.t, best), f"after “{p.words[p.t]}”, the word “{VOCAB[best]}”",
                 Working(prob, lines, [], slips))


# The steps that have a "check my answer" box, in the order of the page, each with the function that
# finds its number and writes out its working.
CHECKS = {"embed": _check_embed, "norm": _check_norm, "qkv": _check_qkv, "scores": _check_scores,
          "scale": _check_scale, "mask": _check_mask, "softmax": _check_softmax, "z": _check_z,
          "out": _check_out, "resid": _check_resid, "mlp": _check_mlp, "mlp_out": _check_mlp_out,
          "logit": _check_logit, "probs": _check_probs}
STEPS = tuple(CHECKS)


def checks(model: DecoderLM, trace, words: list[str]) -> dict[str, Check]:
    """The number each step of the appendix asks for, with its working from that step's printed inputs
    (one function per step: CHECKS)."""
    recorded = _Pass(model, trace, words)
    return {key: step(recorded) for key, step in CHECKS.items()}


# --- what softmax does with very negative scores -------------------------------------------

def softmax_zero_gap(dtype: torch.dtype = torch.float32) -> float:
    """How far below its row's largest score a score must be for torch.softmax in `dtype` to give it
    exactly 0 (to 0.01): e^x underflows long before x reaches −∞.

        >>> round(softmax_zero_gap(torch.float32))
        104
    """
    low, high = -2000.0, 0.0          # weight 0 at `low`, above 0 at `high`
    while high - low > 0.01:
        mid = (low + high) / 2
        weight = torch.softmax(torch.tensor([0.0, mid], dtype=dtype), dim=-1)[1]
        low, high = (mid, high) if weight == 0 else (low, mid)
    return -high
