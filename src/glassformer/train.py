"""Training: show the model text, measure how surprised it is by each next character, nudge
every weight to be less surprised, repeat.

One step:
    1. take B random windows of T + 1 characters; inputs are the first T, targets the last T
       (so one window holds T examples: after each prefix, the character that follows);
    2. loss = cross-entropy = mean over positions of -log p(correct next token);
    3. backpropagation computes d loss / d weight for every weight;
    4. AdamW moves each weight a small step against its gradient (Loshchilov & Hutter 2019),
       with a learning rate that warms up linearly, then decays along a cosine.

Also here: gradient accumulation (several micro-batches per step), gradient clipping,
bf16 autocast (matrix multiplies in bfloat16, weights kept in fp32), periodic evaluation on
the held-out 10%, text samples, metrics.jsonl, atomic checkpoints with --resume, and
data-parallel training on several processes: `torchrun --nproc_per_node=2 -m glassformer.train`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from glassformer.checkpoint import atomic_write, load_weights, save_model_folder, weights_of
from glassformer.data import load_text, random_batch, sequential_batches, train_val_split
from glassformer.generate import generate
from glassformer.model import DecoderLM, ModelConfig, build_model, preset
from glassformer.model.config import MLPS, NORMS, POSITIONS

OPTIMIZERS = ("adamw", "muon")
DTYPES = ("bf16", "fp32")
from glassformer.tokenizers.char import CharTokenizer


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=lambda: preset("tiny"))
    batch_size: int = 32           # sequences per step, summed over processes and micro-batches
    grad_accum: int = 1            # micro-batches per step (each of batch_size / grad_accum / processes)
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    optimizer: str = "adamw"       # "adamw", or "muon": Muon for the blocks' weight matrices, AdamW for the rest
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 disables clipping
    dtype: str = "bf16"            # autocast dtype for matrix multiplies: "bf16" or "fp32"
    compile: bool = False          # torch.compile the training step (needs a C++ compiler; eager if it fails)
    eval_interval: int = 250
    eval_batches: int = 20
    sample_tokens: int = 200
    checkpoint_interval: int = 250
    log_interval: int = 10
    keep_best: bool = True         # the saved model is the one with the lowest val loss seen at an eval
    seed: int = 1337

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be 'bf16' or 'fp32', got {self.dtype!r}")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "checkpoint_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{**data, "model": ModelConfig.from_dict(data["model"])})


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Seconds on a laptop CPU: for tests and for trying the loop out.
    "tiny": TrainConfig(model=preset("tiny"), batch_size=16, max_steps=200, lr=2e-3, warmup_steps=20,
                        eval_interval=100, eval_batches=5, checkpoint_interval=100, sample_tokens=80),
    # nanoGPT's CPU recipe, the reference the course preset is measured against.
    "nanogpt-cpu": TrainConfig(model=preset("tiny", n_ctx=64, d_model=128, n_layers=4, n_heads=4),
                               batch_size=12, max_steps=16_000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                               dtype="fp32", eval_interval=500, eval_batches=20),
    # The shipped course model: under 10 minutes on 2 CPU cores. Muon for the blocks' matrices
    # learns much more per step than AdamW (val 1.486 vs 1.524 after 5 minutes here, although
    # each step is ~25% slower); torch.compile makes each step ~1.2x faster after a ~20 s compile.
    # lr 3e-3 rather than 2e-3: val 1.4352 vs 1.4549 after the same 5000 steps.
    "course": TrainConfig(model=preset("course"), batch_size=8, max_steps=5000, lr=3e-3, min_lr=1e-4,
                          warmup_steps=100, optimizer="muon", compile=True, eval_interval=500,
                          eval_batches=20, checkpoint_interval=500),
}


def train_preset(name: str, **overrides) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise KeyError(f"no training preset named {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    base = TRAIN_PRESETS[name]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_changes = {k: v for k, v in overrides.items() if k in model_fields}
    train_changes = {k: v for k, v in overrides.items() if k not in model_fields}
    return dataclasses.replace(base, model=base.model.replace(**model_changes), **train_changes)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to cfg.min_lr at max_steps.

        >>> cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=10, max_steps=110)
        >>> lr_at(4, cfg), lr_at(10, cfg), lr_at(60, cfg), lr_at(110, cfg)
        (0.5, 1.0, 0.5, 0.0)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


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


def make_optimizer(model: DecoderLM, cfg: TrainConfig) -> Optimizers:
    """AdamW with weight decay only on matrices (not on norms' gains, biases or position tables' rows).

    optimizer="muon" hands the blocks' weight matrices to Muon instead, which replaces each
    update by its nearest orthogonal matrix; its learning rate is scaled to match AdamW's
    update size, so the same lr and schedule apply. The embedding stays with AdamW.
    """
    named = list(model.named_parameters())
    to_muon = [p for n, p in named if cfg.optimizer == "muon" and n.startswith("blocks.") and p.dim() == 2]
    taken = {id(p) for p in to_muon}
    matrices = [p for n, p in named if p.dim() >= 2 and id(p) not in taken]
    others = [p for n, p in named if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": cfg.weight_decay}, {"params": others, "weight_decay": 0.0}]
    parts = [torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)]
    if to_muon:
        parts.insert(0, torch.optim.Muon(to_muon, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                         adjust_lr_fn="match_rms_adamw"))
    return Optimizers(*parts)


def autocast(cfg: TrainConfig):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.dtype == "bf16")


def loss_fn(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions: logits (B, T, V) vs targets (B, T)."""
    logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model: DecoderLM, data: torch.Tensor, cfg: TrainConfig, batches: int | None) -> float:
    """Mean loss on `batches` fixed random windows, or on the whole split when batches is None."""
    was_training = model.training
    model.eval()
    T = model.config.n_ctx
    if batches is None:
        total, count = 0.0, 0
        for x, y in sequential_batches(data, 64, T):
            with autocast(cfg):
                total += loss_fn(model, x, y).item() * x.numel()
            count += x.numel()
        loss = total / count
    else:
        gen = torch.Generator().manual_seed(cfg.seed + 999)  # the same windows at every evaluation
        losses = []
        for _ in range(batches):
            with autocast(cfg):
                losses.append(loss_fn(model, *random_batch(data, min(cfg.batch_size, 32), T, gen)).item())
        loss = sum(losses) / len(losses)
    model.train(was_training)
    return loss


# --- distributed helpers ------------------------------------------------------------------

def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not launched by torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def compiled(model: DecoderLM, cfg: TrainConfig, data: torch.Tensor, rows: int, say: bool):
    """torch.compile(model), tried once on a throwaway batch so that a machine without a working
    compiler falls back to eager at once; the trial uses forked RNG states and leaves no gradients."""
    net = torch.compile(model)
    started = time.perf_counter()
    try:
        with torch.random.fork_rng():
            x, y = random_batch(data, rows, cfg.model.n_ctx, torch.Generator().manual_seed(0))
            with autocast(cfg):
                loss = loss_fn(net, x, y)
            loss.backward()
    except Exception as exc:  # no compiler, unsupported platform...: training still works, only slower
        if say:
            print(f"torch.compile is unavailable here ({type(exc).__name__}: {str(exc)[:200]}); training eagerly",
                  file=sys.stderr)
        net = model
    else:
        if say:
            print(f"compiled the training step in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    model.zero_grad(set_to_none=True)
    return net


def setup_distributed() -> tuple[int, int]:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    return rank, world


# --- training state on disk ---------------------------------------------------------------

def optimizer_state(optimizer: Optimizers) -> list[tuple[torch.Tensor, dict]]:
    """(parameter, its state dict) in a fixed order; the dicts are the optimizers' own."""
    return [(p, part.state[p]) for part in optimizer.parts for g in part.param_groups for p in g["params"]]


def save_checkpoint(path: Path, model: DecoderLM, optimizer: Optimizers, step: int,
                    rng_states: tuple[torch.Tensor, torch.Tensor], cfg: TrainConfig, elapsed: float,
                    tokens: int, best: dict) -> None:
    """Everything needed to continue exactly: weights, the optimizers' moments, step, and the
    RNG states (global, batch sampler) as they were at the start of step `step`."""
    tensors = {f"model.{k}": v for k, v in weights_of(model).items()}
    for i, (_, state) in enumerate(optimizer_state(optimizer)):
        for key, value in state.items():  # AdamW: step, exp_avg, exp_avg_sq; Muon: momentum_buffer
            value = torch.as_tensor(value).detach()
            tensors[f"optim.{i}.{key}"] = value.clone().reshape(-1) if key == "step" else value.contiguous()
    tensors["rng.torch"], tensors["rng.batch"] = rng_states
    meta = {"step": str(step), "elapsed": str(elapsed), "tokens": str(tokens), "config": json.dumps(cfg.to_dict()),
            "best": json.dumps(best)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_checkpoint(path: Path, model: DecoderLM, optimizer: Optimizers,
                    batch_gen: torch.Generator) -> dict:
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
    except (SafetensorError, OSError) as exc:
        raise RuntimeError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    for i, (_, state) in enumerate(optimizer_state(optimizer)):
        prefix = f"optim.{i}."
        state.update({k[len(prefix):]: v.reshape(()).clone() if k.endswith(".step") else v.clone()
                      for k, v in tensors.items() if k.startswith(prefix)})
    torch.set_rng_state(tensors["rng.torch"])
    batch_gen.set_state(tensors["rng.batch"])
    return {"step": int(meta["step"]), "elapsed": float(meta["elapsed"]), "tokens": int(meta["tokens"]),
            "config": json.loads(meta["config"]), "best": json.loads(meta.get("best", "{}"))}


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            break
    return rows


# --- the loop -----------------------------------------------------------------------------

def train(cfg: TrainConfig, out_dir: str | Path, *, corpus: str | Path | None = None, resume: bool = False,
          progress: bool = True, time_limit: float | None = None, full_eval_at: list[float] = (),
          on_eval=None) -> dict:
    """Train a character-level model on `corpus` (TinyShakespeare by default) into out_dir.

    Returns a summary (steps, wall time, final train/val loss). Ctrl-C saves a checkpoint
    and re-raises KeyboardInterrupt; `resume=True` continues from out_dir's checkpoint.
    time_limit (seconds) ends training early, cleanly, as if max_steps had been reached.
    full_eval_at (seconds of wall time) adds evaluations on the whole validation split as
    training passes those times (the "time to quality" figures).
    on_eval(row) is called with every evaluation row (used by the course's live chart).
    """
    rank, world = setup_distributed()
    main_process = rank == 0
    out = Path(out_dir)
    ckpt_path, metrics_path = out / "checkpoint.safetensors", out / "metrics.jsonl"

    text, data_sha = load_text(corpus)
    if resume and (out / "tokenizer.json").exists():
        tokenizer = CharTokenizer.load(out / "tokenizer.json")
    else:
        tokenizer = CharTokenizer.train(text)
    if cfg.model.vocab_size != tokenizer.vocab_size:
        cfg = dataclasses.replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
    ids = torch.tensor(tokenizer.encode(text, errors="skip"), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids)
    T = cfg.model.n_ctx
    if cfg.batch_size % (cfg.grad_accum * world):
        raise ValueError(f"batch_size {cfg.batch_size} must divide evenly into {cfg.grad_accum} micro-batches "
                         f"x {world} processes")
    micro = cfg.batch_size // cfg.grad_accum            # rows of one global micro-batch
    local = micro // world                              # rows this process computes

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    model.train()
    optimizer = make_optimizer(model, cfg)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed_before, tokens_seen = 0, 0.0, 0
    best = {"val_loss": None, "step": None}  # the lowest eval val loss so far, and its step
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {ckpt_path}")
        state = load_checkpoint(ckpt_path, model, optimizer, batch_gen)
        saved = TrainConfig.from_dict(state["config"])
        if saved.model != cfg.model:
            raise ValueError("cannot resume: the checkpoint's model config differs from the requested one")
        step, elapsed_before, tokens_seen = state["step"], state["elapsed"], state["tokens"]
        best.update(state["best"])
        if main_process:  # drop metrics logged after the checkpoint: they will be recomputed
            kept = [r for r in read_metrics(metrics_path) if r["step"] <= step]
            atomic_write(metrics_path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))
    elif main_process:
        out.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("")

    start = time.perf_counter()  # wall time counts everything from here, compiling included
    net = compiled(model, cfg, train_ids, local, main_process) if cfg.compile else model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)

    def log(row: dict) -> None:
        if main_process:
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def rng_now() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.get_rng_state(), batch_gen.get_state()

    def checkpoint(rng_states=None) -> None:
        if main_process:
            save_checkpoint(ckpt_path, model, optimizer, step, rng_states or rng_now(), cfg, elapsed(), tokens_seen,
                            best)
            if not cfg.keep_best or best["step"] is None:
                save_model_folder(model, tokenizer, out)

    def sample_text() -> str:
        model.eval()
        prompt = tokenizer.encode("\n") if "\n" in tokenizer.ids else [0]
        out_ids = generate(model, prompt, min(cfg.sample_tokens, T - 1), temperature=0.8, top_k=40, seed=step)
        model.train()
        return tokenizer.decode(out_ids.tolist()[1:])

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    bar = None
    if progress and main_process:
        from tqdm import tqdm
        bar = tqdm(total=cfg.max_steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)

    last_train_loss, in_step = float("nan"), False
    pending_full_evals = sorted(t for t in full_eval_at if t > elapsed_before)
    window_tokens, window_start = 0, time.perf_counter()
    try:
        while step < cfg.max_steps:
            # A Ctrl-C before the optimizer step rolls back to this step's start, RNG states included.
            rng_at_step_start, in_step = rng_now(), True
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros(())
            for micro_step in range(cfg.grad_accum):
                x, y = random_batch(train_ids, micro, T, batch_gen)          # the same global batch on every rank
                x, y = x[rank * local:(rank + 1) * local], y[rank * local:(rank + 1) * local]
                sync = micro_step == cfg.grad_accum - 1
                ctx = net.no_sync() if world > 1 and not sync else contextlib.nullcontext()
                with ctx, autocast(cfg):
                    loss = loss_fn(net, x, y) / cfg.grad_accum
                with ctx:
                    loss.backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step, in_step = step + 1, False
            optimizer.zero_grad(set_to_none=True)
            if world > 1:
                torch.distributed.all_reduce(loss_sum)
                loss_sum /= world
            tokens_seen += cfg.batch_size * T
            window_tokens += cfg.batch_size * T
            last_train_loss = loss_sum.item()
            if not math.isfinite(last_train_loss) and main_process:
                raise FloatingPointError(f"loss became {last_train_loss} at step {step}: the learning rate "
                                         f"({lr:.2g}) is probably too high")

            if step % cfg.log_interval == 0 or step == cfg.max_steps:
                now = time.perf_counter()
                tok_s = window_tokens / max(1e-9, now - window_start)
                window_tokens, window_start = 0, now
                log({"step": step, "train_loss": round(last_train_loss, 5), "lr": lr,
                     "tokens_per_s": round(tok_s), "elapsed": round(elapsed(), 2)})
                if bar is not None:
                    bar.set_postfix(loss=f"{last_train_loss:.3f}", tok_s=f"{tok_s:,.0f}")
            if bar is not None:
                bar.update(1)
            out_of_time = time_limit is not None and elapsed() >= time_limit
            if main_process and (step % cfg.eval_interval == 0 or step == cfg.max_steps or out_of_time):
                row = {"step": step, "val_loss": round(evaluate(model, val_ids, cfg, cfg.eval_batches), 5),
                       "elapsed": round(elapsed(), 2), "sample": sample_text()}
                log(row)
                if cfg.keep_best and (best["val_loss"] is None or row["val_loss"] < best["val_loss"]):
                    best.update(val_loss=row["val_loss"], step=step)
                    save_model_folder(model, tokenizer, out)
                if bar is not None:
                    bar.write(f"step {step}: val loss {row['val_loss']:.3f}\n{row['sample']}\n" + "-" * 40)
                if on_eval is not None:
                    on_eval(row)
            while main_process and pending_full_evals and elapsed() >= pending_full_evals[0]:
                mark = pending_full_evals.pop(0)
                log({"step": step, "full_val_loss": round(evaluate(model, val_ids, cfg, None), 5),
                     "elapsed": round(elapsed(), 2), "at": mark})
            if step % cfg.checkpoint_interval == 0 or step == cfg.max_steps or out_of_time:
                checkpoint()
            if out_of_time:
                break
    except KeyboardInterrupt:
        checkpoint(rng_at_step_start if in_step else None)
        if bar is not None:
            bar.write(f"interrupted at step {step}; checkpoint saved in {ckpt_path}; continue with --resume")
        raise
    finally:
        if bar is not None:
            bar.close()

    summary = {"steps": step, "wall_time_s": round(elapsed(), 1), "tokens": tokens_seen}
    if main_process:
        if cfg.keep_best and best["step"] is not None:  # ship the weights with the lowest val loss
            load_weights(model, load_file(str(out / "model.safetensors")), str(out / "model.safetensors"))
            summary["best_step"] = best["step"]
        summary["final_train_loss"] = round(evaluate(model, train_ids, cfg, cfg.eval_batches), 4)
        summary["final_val_loss"] = round(evaluate(model, val_ids, cfg, None), 4)  # the whole val split
        card = {"name": out.name, "preset_config": cfg.to_dict(), "data_sha256": data_sha,
                "corpus": "tinyshakespeare" if corpus is None else str(corpus), **summary,
                "val_loss_note": "mean cross-entropy (nats/char) over the whole validation split (last 10%)"}
        save_model_folder(model, tokenizer, out, card=card)
        log({"step": step, **summary})
    if world > 1:
        torch.distributed.barrier()
    return summary


def validation_loss(model: DecoderLM, tokenizer, cfg: TrainConfig, corpus: str | Path | None = None) -> float:
    """Mean loss over the whole validation split (the last 10% of the corpus), as the card reports it."""
    text, _ = load_text(corpus)
    ids = torch.tensor(tokenizer.encode(text, errors="skip"), dtype=torch.long)
    return evaluate(model, train_val_split(ids)[1], cfg, None)


def export_model(run_dir: str | Path, dest: str | Path, dtype: torch.dtype = torch.float16) -> dict:
    """Copy a trained model into dest with weights stored as `dtype` (half the size of fp32),
    re-measuring its validation loss with exactly the stored weights for the card."""
    from glassformer.checkpoint import load_model_folder

    model, tokenizer, card = load_model_folder(run_dir)
    save_model_folder(model, tokenizer, dest, dtype=dtype)
    shipped, _, _ = load_model_folder(dest)  # read back: the rounding to dtype is what is measured
    cfg = TrainConfig.from_dict(card["preset_config"])
    card = {**card, "name": Path(dest).name, "stored_dtype": str(dtype).removeprefix("torch."),
            "final_val_loss_fp32": card["final_val_loss"],
            "final_val_loss": round(validation_loss(shipped, tokenizer, cfg), 4)}
    save_model_folder(shipped, tokenizer, dest, card=card, dtype=dtype)
    return card


# --- command line (also `glassformer train`) ------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", choices=sorted(TRAIN_PRESETS), help="recipe to start from")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<preset>)")
    parser.add_argument("--corpus", default=None, help="any UTF-8 text file (default: TinyShakespeare)")
    parser.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    parser.add_argument("--time-limit", type=float, default=None, help="stop cleanly after this many seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--full-eval-at", default="", help="comma-separated seconds at which to evaluate on the "
                        "whole validation split, e.g. 120,300,600")
    for name, kind in [("max_steps", int), ("batch_size", int), ("grad_accum", int), ("lr", float),
                       ("min_lr", float), ("warmup_steps", int), ("weight_decay", float), ("grad_clip", float),
                       ("eval_interval", int), ("checkpoint_interval", int), ("log_interval", int), ("seed", int),
                       ("n_layers", int), ("n_heads", int), ("n_kv_heads", int), ("d_model", int),
                       ("n_ctx", int), ("d_mlp", int), ("dropout", float), ("attn_dropout", float)]:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    for name, choices in [("dtype", DTYPES), ("optimizer", OPTIMIZERS), ("position", POSITIONS), ("norm", NORMS),
                          ("mlp", MLPS)]:
        parser.add_argument("--" + name, choices=choices, default=None)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the training step (faster after a 20-30 s compile; needs a C++ compiler)")


# Every flag above whose name is a TrainConfig or ModelConfig field overrides that field of the preset.
OVERRIDES = {f.name for f in dataclasses.fields(TrainConfig) + dataclasses.fields(ModelConfig)} - {"model"}


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in vars(args).items() if k in OVERRIDES and v is not None}
    cfg = train_preset(args.preset, **overrides)
    out = Path(args.out or f"runs/{args.preset}")
    if not args.resume and (out / "checkpoint.safetensors").exists():
        print(f"error: {out} already holds a training run; pass --resume to continue it or --out for a new folder",
              file=sys.stderr)
        return 2
    rank, world = dist_info()
    if rank == 0:
        print(f"training preset {args.preset!r} into {out} on {world} process(es); "
              f"{build_model(cfg.model).num_params():,} parameters", file=sys.stderr)
    try:
        full_eval_at = [float(t) for t in args.full_eval_at.split(",") if t.strip()]
        summary = train(cfg, out, corpus=args.corpus, resume=args.resume, progress=not args.no_progress,
                        time_limit=args.time_limit, full_eval_at=full_eval_at)
    except KeyboardInterrupt:
        return 130
    if rank == 0:
        print(json.dumps(summary, indent=2))
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glassformer.train", description="Train a character-level model.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
