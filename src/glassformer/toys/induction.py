"""A two-layer attention-only model trained on random tokens with a repeated segment (chapter 12).

Each training sequence is random tokens in which one random segment appears twice:

    random ... | segment | random ... | segment again | random ...

The first occurrence of the segment cannot be predicted (every token is random), the second
can, after its first token, by finding the earlier occurrence of the current token and copying
the token that followed it. A model with two layers of attention and no MLP learns that, with a
(blurry) previous-token head in layer 0 and induction heads in layer 1, and it learns it
suddenly: for a while the repeat is barely easier than the first occurrence, then its loss
drops within a few hundred steps while induction scores rise (the "phase change" of Olsson et
al. 2022). `train_induction` records both along the way.

    VOCAB            the 64 symbols that stand for the token ids (so sequences are readable)
    default_config   the model: course family, ALiBi, LayerNorm, mlp="none"
    make_batch       training sequences (and where their segments are)
    fresh_model      the model before training (wider q, k, v weights than the library's default)
    train_induction  the training loop, with the probe measurements every `eval_every` steps
    phase_change     when, in a history, the repeat got easier and a head became an induction head
    save / load      fp16 model folder (loadable with registry.load_model("induction")) + history.json
    main, read_run   `python -m glassformer.toys.induction --out DIR [--seed N]`: the run chapter 12
                     starts in the background (course/live_training.py), writing metrics.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.analysis import induction
from glassformer.model import DecoderLM, ModelConfig, build_model
from glassformer.threads import one_thread
from glassformer.tokenizers.char import CharTokenizer

VOCAB = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"   # 64 symbols, one per id
ASSET_DIR = Path(__file__).parents[1] / "assets" / "induction"
PROBE_PERIOD, PROBE_BATCH, PROBE_SEED = 32, 16, 12345   # the probe: 16 random 32-token sequences, each repeated


def tokenizer() -> CharTokenizer:
    return CharTokenizer(list(VOCAB))


def default_config(d_model: int = 64, n_heads: int = 4, n_ctx: int = 64) -> ModelConfig:
    """Two blocks of attention only: no MLP, so whatever the model computes, attention computes it.

    ALiBi positions (Press et al. 2022): each head's scores get a penalty growing with the distance
    back, steep for head 0 (slope 1/4), nearly flat for head 3 (1/256). Head 0 of layer 0 therefore
    starts out leaning on the last few tokens, a rough previous-token head, and the induction
    circuit has something to build on. The card's "comparisons" record what this is worth: the
    same 1,200-step run with learned positions instead (scripts/ship_induction.py)."""
    return ModelConfig(family="course", vocab_size=len(VOCAB), n_ctx=n_ctx, d_model=d_model, n_layers=2,
                       n_heads=n_heads, position="alibi", norm="layernorm", mlp="none", dropout=0.0)


@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    min_segment: int = 8          # segment lengths are drawn from [min_segment, n_ctx // 2]
    eval_every: int = 25
    qkv_std: float | None = None  # std of the q, k, v weights at the start; None: 1 / sqrt(d_model)


def make_batch(batch: int, T: int, vocab_size: int, gen: torch.Generator,
               min_segment: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T), segments (B, 3)): random tokens with one segment of length L copied from
    position a to position b >= a + L (no overlap). segments[i] = (a, b, L)."""
    ids = torch.randint(0, vocab_size, (batch, T), generator=gen)                 # (B, T)
    segments = torch.empty(batch, 3, dtype=torch.long)
    for i in range(batch):
        L = int(torch.randint(min_segment, T // 2 + 1, (), generator=gen))
        a = int(torch.randint(0, T - 2 * L + 1, (), generator=gen))
        b = int(torch.randint(a + L, T - L + 1, (), generator=gen))
        ids[i, b:b + L] = ids[i, a:a + L]
        segments[i] = torch.tensor([a, b, L])
    return ids, segments


def probe(vocab_size: int = len(VOCAB)) -> torch.Tensor:
    """The fixed probe every measurement in the history uses: (16, 64) repeated random sequences."""
    return induction.repeated_random(vocab_size, PROBE_PERIOD, PROBE_SEED, batch=PROBE_BATCH)


def measure(model: DecoderLM, ids: torch.Tensor, period: int) -> dict:
    """One history row's measurements on repeated sequences ids: the two halves' losses and every
    head's induction and previous-token scores, rounded for storage."""
    scores = induction.head_scores(model, ids, period)
    first, repeat = induction.halves(induction.per_position_loss(model, ids), period)
    r = lambda t: [[round(v, 4) for v in row] for row in t.tolist()]  # noqa: E731
    return {"loss_first": round(first, 4), "loss_repeat": round(repeat, 4),
            "induction": r(scores.induction), "previous": r(scores.previous)}


def fresh_model(config: ModelConfig, recipe: Recipe) -> DecoderLM:
    """The model before its first step: the library's initialisation, then wider q, k, v weights.

    The library's N(0, 0.02) start (GPT-2's, chosen for D = 768) leaves q.k / sqrt(Dh) near 0 in a
    D = 64 model (`score_spread`), and the gradient of each of q and k is proportional to the other:
    the patterns barely move. N(0, 1/D) gives the scores a spread of about 1 from the start."""
    torch.manual_seed(recipe.seed)
    model = build_model(config)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.normal_(0.0, recipe.qkv_std or config.d_model ** -0.5)
    return model.eval()


@torch.no_grad()
def score_spread(model: DecoderLM, ids: torch.Tensor, layer: int = 0) -> float:
    """The standard deviation of q.k / sqrt(Dh) in `layer` on ids, over every head and (query, key) pair:
    how far the attention scores are from all equal (before ALiBi's distance penalty and the mask)."""
    with one_thread():
        _, trace = model.run_with_trace(ids, names=[f"blocks.{layer}.attn.q", f"blocks.{layer}.attn.k"])
    q, k = trace[f"blocks.{layer}.attn.q"], trace[f"blocks.{layer}.attn.k"]      # (B, H, T, Dh)
    return (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).std().item()            # (B, H, T, T) -> number


def train_induction(config: ModelConfig, recipe: Recipe, on_eval=None, time_limit: float | None = None,
                    should_stop=None) -> tuple[DecoderLM, list[dict]]:
    """Train a fresh model with `recipe`; returns (model, history).

    AdamW, linear warmup then cosine decay to 10% of the peak, gradients clipped at norm 1, fresh
    random batches every step (an endless supply: no sequence is seen twice). Every eval_every
    steps, and at the end, `measure` on the probe makes one history row (also passed to on_eval).
    time_limit (seconds) or should_stop() ending the loop early still records a final row."""
    model = fresh_model(config, recipe)
    gen = torch.Generator().manual_seed(recipe.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    keep = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": keep, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.98))

    def lr_factor(step: int) -> float:
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    probe_ids = probe(config.vocab_size)
    history: list[dict] = []
    started = time.perf_counter()
    recent: list[float] = []

    def record(step: int) -> None:
        row = {"step": step, "train_loss": round(sum(recent) / len(recent), 4) if recent else None,
               **measure(model, probe_ids, PROBE_PERIOD), "elapsed": round(time.perf_counter() - started, 2)}
        recent.clear()
        history.append(row)
        if on_eval is not None:
            on_eval(row)

    with one_thread():
        record(0)
        step = 0
        while step < recipe.steps:
            model.train()
            ids, _ = make_batch(recipe.batch_size, config.n_ctx, config.vocab_size, gen, recipe.min_segment)
            logits = model(ids)                                                    # (B, T, V)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            recent.append(loss.item())
            out_of_time = time_limit is not None and time.perf_counter() - started > time_limit
            stop = out_of_time or (should_stop is not None and should_stop())
            if step % recipe.eval_every == 0 or step == recipe.steps or stop:
                record(step)
            if stop:
                break
    return model.eval(), history


def phase_change(history: list[dict], drop: float = 1.0, score: float = 0.5) -> dict:
    """When, in a training history, the repeat got easier and a head became an induction head.

    {"head": the (layer, head) with the highest induction score in the last row,
     "loss_step": the first step whose repeat loss is at least `drop` nats below the first copy's,
     "score_step": the first step at which that head's induction score reached `score`,
     "before": the last row before score_step (None if there is none)} (steps None: never reached).

        >>> rows = [{"step": s, "loss_first": 4.2, "loss_repeat": r, "induction": [[0.0], [i]]}
        ...         for s, r, i in [(0, 4.2, 0.02), (25, 4.1, 0.1), (50, 2.0, 0.7)]]
        >>> {k: v for k, v in phase_change(rows).items() if k != "before"}
        {'head': (1, 0), 'loss_step': 50, 'score_step': 50}
    """
    last = torch.tensor(history[-1]["induction"])
    flat = int(last.flatten().argmax())
    head = (flat // last.shape[1], flat % last.shape[1])
    loss_step = next((r["step"] for r in history if r["loss_repeat"] <= r["loss_first"] - drop), None)
    index = next((i for i, r in enumerate(history) if r["induction"][head[0]][head[1]] >= score), None)
    return {"head": head, "loss_step": loss_step, "score_step": history[index]["step"] if index is not None else None,
            "before": history[index - 1] if index else None}


# --- the shipped model ------------------------------------------------------------------------

def save(model: DecoderLM, folder: Path, card: dict, history: list[dict]) -> None:
    """fp16 model folder (config.json, model.safetensors, tokenizer.json, card.json) + history.json."""
    from glassformer.checkpoint import atomic_write_text, save_model_folder

    save_model_folder(model, tokenizer(), folder, card=card, dtype=torch.float16)
    atomic_write_text(Path(folder) / "history.json", json.dumps(history, separators=(",", ":")) + "\n")


def load(folder: Path = ASSET_DIR):
    """(model, card, history) of a saved model folder; fp16 weights computed in fp32."""
    from glassformer.checkpoint import load_model_folder

    model, _, card = load_model_folder(folder)
    return model, card, read_history(folder)


def read_history(folder: Path = ASSET_DIR) -> list[dict]:
    """The training history saved beside a model (history.json), [] if there is none."""
    history_file = Path(folder) / "history.json"
    return json.loads(history_file.read_text()) if history_file.exists() else []


# --- the background run chapter 12 starts -------------------------------------------------------

def read_run(folder: Path) -> tuple[str, list[dict], dict]:
    """(state, history rows, final row) of a run folder written by `main`, safe while it runs.

    state: "none" (nothing yet), "running" (rows but no end), "finished", "stopped", "failed"."""
    from glassformer.train import read_metrics

    folder = Path(folder)
    path = folder / "metrics.jsonl"
    rows = read_metrics(path) if path.exists() else []
    history = [r for r in rows if "loss_repeat" in r]
    final = next((r for r in reversed(rows) if "final" in r), {})
    try:
        code = json.loads((folder / "exit.json").read_text())["exit_code"]
    except (OSError, ValueError, KeyError):
        code = None
    if code is None:
        state = "running" if rows or path.exists() else "none"
    elif code == 0 and final:
        state = "finished"
    elif code == 130 or final.get("final") == "stopped":
        state = "stopped"
    else:
        state = "failed"
    return state, history, final


def main(argv: list[str] | None = None) -> int:
    """Train one model with the shipped recipe (a seed and a time limit of your choice), writing every
    history row to <out>/metrics.jsonl as it is measured, and the model to <out>/ at the end."""
    parser = argparse.ArgumentParser(prog="python -m glassformer.toys.induction",
                                     description="Train chapter 12's two-layer attention-only model.")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the shipped recipe's")
    parser.add_argument("--time-limit", type=float, default=80.0, help="stop cleanly after this many seconds")
    parser.add_argument("--no-progress", action="store_true", help="(accepted for the course's runner)")
    parser.add_argument("--resume", action="store_true", help="not supported: these runs are short")
    args = parser.parse_args(argv)
    if args.resume:
        print("induction runs cannot be resumed; start a new one", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shipped = shipped_recipe()
    recipe = Recipe(**{**shipped.__dict__, "seed": args.seed, "steps": args.steps or shipped.steps})
    torch.set_num_threads(1)
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # stop after this step, keep the rows
    with (out / "metrics.jsonl").open("a") as log:
        def write(row: dict) -> None:
            log.write(json.dumps(row) + "\n")
            log.flush()

        write({"step": 0, "recipe": recipe.__dict__, "config": default_config().to_dict()})
        model, history = train_induction(default_config(), recipe, on_eval=write, time_limit=args.time_limit,
                                         should_stop=lambda: bool(interrupted))
        last = history[-1]
        ended = "stopped" if interrupted else ("time limit" if last["step"] < recipe.steps else "done")
        write({"final": ended, "step": last["step"], "seconds": last["elapsed"]})
    save(model, out, {"seed": args.seed, "steps": last["step"], "ended": ended}, history)
    return 130 if interrupted else 0


def shipped_recipe() -> Recipe:
    """The recipe of the shipped model (scripts/ship_induction.py), from its card when present."""
    card = ASSET_DIR / "card.json"
    if card.exists():
        return Recipe(**json.loads(card.read_text())["recipe"]["train"])
    return Recipe()


if __name__ == "__main__":
    raise SystemExit(main())
