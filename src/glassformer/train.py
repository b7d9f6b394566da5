"""Training: show the model text, measure how surprised it is by each next character, nudge
every weight to be less surprised, repeat.

One step:
    1. take B random windows of T + 1 characters; inputs are the first T, targets the last T
       (so one window holds T examples: after each prefix, the character that follows);
    2. loss = cross-entropy = mean over positions of -log p(correct next token);
    3. backpropagation computes d loss / d weight for every weight;
    4. the optimizer (AdamW, or Muon for the blocks' matrices: `optim`) moves each weight a small
       step against its gradient, with a learning rate that warms up linearly, then decays
       along a cosine.

Also here: gradient accumulation (several micro-batches per step), gradient clipping, bf16
autocast where this CPU is fast at it (`precision`), a schedule fitted to a time budget,
periodic evaluation on the held-out 10%, text samples, metrics.jsonl, atomic checkpoints with
--resume, and data-parallel training on several processes:
`torchrun --nproc_per_node=2 -m glassformer.train`.

The loop (`train`) reads top-down: start_or_resume -> repeat train_step, maybe_evaluate,
maybe_checkpoint -> finish.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from glassformer.checkpoint import (CheckpointError, atomic_write, load_training_state, load_weights,
                                    read_training_meta, save_model_folder, save_training_state)
from glassformer.data import CorpusError, load_text, random_batch, sequential_batches, train_val_split
from glassformer.errors import BadSetting, report_user_errors
from glassformer.generate import generate
from glassformer.memory import available_bytes
from glassformer.model import DecoderLM, ModelConfig, build_model, preset
from glassformer.model.config import MLPS, NORMS, POSITIONS, check_field_types
from glassformer.model.moe import moe_params, routing_recorded, routing_summary
from glassformer.optim import Optimizers, make_optimizer
from glassformer.precision import DTYPES, autocast, cpu_capability, resolve_dtype
from glassformer.tokenizers.char import CharTokenizer

Optimizer = Literal["adamw", "muon"]
OPTIMIZERS = get_args(Optimizer)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=lambda: preset("tiny"))
    batch_size: int = 32           # sequences per step, summed over processes and micro-batches
    grad_accum: int = 1            # micro-batches per step (each of batch_size / grad_accum / processes)
    max_steps: int = 1000
    time_budget: float | None = None  # seconds: fit max_steps (and so the schedule) to this wall time
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    optimizer: Optimizer = "adamw"  # or "muon": Muon for the blocks' weight matrices, AdamW for the rest
    split_qkv: bool = False        # Muon: orthogonalize the fused q|k|v matrix as three matrices
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 disables clipping
    dtype: str = "auto"            # matrix multiplies: "auto" (bf16 where native and faster), "bf16", "fp32"
    compile: bool = False          # torch.compile the training step (needs a C++ compiler; eager if it fails)
    eval_interval: int = 250
    eval_batches: int = 20
    sample_tokens: int = 200
    checkpoint_interval: int = 250
    log_interval: int = 10
    keep_best: bool = True         # the saved model is the one with the lowest val loss seen at an eval
    seed: int = 1337
    train_tokens: int | None = None  # train on only the first N tokens of the training split (overfitting demo)
    balance_weight: float = 0.01   # MoE models: weight of the load-balancing loss (Switch Transformers' 0.01; 0: none)

    def __post_init__(self) -> None:
        """Every value is checked here, before anything trains: a NaN or a negative rate would
        otherwise train on silently, or fail minutes later blaming something else."""
        def need(ok: bool, name: str, problem: str) -> None:
            if not ok:
                raise BadSetting(name, f"{problem}, got {getattr(self, name)!r}")

        def finite(name: str) -> bool:
            return math.isfinite(getattr(self, name))

        check_field_types(self)
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {OPTIMIZERS}")
        need(self.dtype in DTYPES, "dtype", f"must be one of {DTYPES}")
        for name in ("batch_size", "grad_accum", "max_steps", "eval_interval", "eval_batches", "checkpoint_interval",
                     "log_interval"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("warmup_steps", "sample_tokens"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        need(finite("lr") and self.lr > 0, "lr", "must be a finite number > 0")
        need(finite("min_lr") and 0 <= self.min_lr <= self.lr, "min_lr",
             f"must be between 0 and the peak learning rate ({self.lr:g})")
        need(finite("weight_decay") and self.weight_decay >= 0, "weight_decay", "must be a finite number >= 0")
        need(finite("grad_clip") and self.grad_clip >= 0, "grad_clip", "must be a finite number >= 0 (0: no clipping)")
        for name in ("beta1", "beta2"):
            need(0 <= getattr(self, name) < 1, name, "must be in [0, 1)")
        need(0 <= self.seed < 2**64, "seed", "must be in [0, 2**64), what a random generator takes")
        need(self.time_budget is None or (finite("time_budget") and self.time_budget > 0), "time_budget",
             "must be a finite number of seconds > 0")
        need(finite("balance_weight") and self.balance_weight >= 0, "balance_weight", "must be a finite number >= 0")
        need(self.train_tokens is None or self.train_tokens > self.model.n_ctx, "train_tokens",
             f"must exceed the context ({self.model.n_ctx})")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{**data, "model": ModelConfig.from_dict(data["model"])})


# What `time_budget` leaves for the final evaluations and saving: fitting the schedule assumes
# the measured step time holds, and evaluations add a few percent on top.
BUDGET_CALIBRATION_STEPS = (10, 60)   # steps whose speed sets max_steps (after compile and warm-up)
BUDGET_SAFETY = 0.95

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Seconds on a laptop CPU: for tests and for trying the loop out.
    "tiny": TrainConfig(model=preset("tiny"), batch_size=16, max_steps=200, lr=2e-3, warmup_steps=20,
                        eval_interval=100, eval_batches=5, checkpoint_interval=100, sample_tokens=80),
    # nanoGPT's CPU recipe (4 layers, 4 heads, d=128, context 64, batch 12, AdamW, lr 1e-3), the
    # reference the course preset is measured against; its cosine schedule is fitted to 10 minutes.
    "nanogpt-cpu": TrainConfig(model=preset("tiny", n_ctx=64, d_model=128, n_layers=4, n_heads=4),
                               batch_size=12, max_steps=100_000, time_budget=570, lr=1e-3, min_lr=1e-4,
                               warmup_steps=100, dtype="fp32", eval_interval=500, eval_batches=20),
    # The shipped course model: 10 minutes on 2 CPU cores, whatever the CPU. Muon for the blocks'
    # matrices learns much more per step than AdamW; torch.compile makes each step faster after a
    # compile of 20-30 s; the schedule is fitted to the time budget on the machine that trains.
    # Muon on the fused q|k|v matrix, not on q, k and v apart (split_qkv): one 10-minute run each, bf16,
    # whole-split val: d=128 fused 1.4318 vs split 1.4550 (the split run trained faster and overfit:
    # its best evaluation came 570 steps before the end); d=192 fused 1.4504 vs split 1.4375.
    "course": TrainConfig(model=preset("course"), batch_size=8, max_steps=100_000, time_budget=570, lr=3e-3,
                          min_lr=1e-4, warmup_steps=100, optimizer="muon", compile=True, eval_interval=500,
                          eval_batches=20, checkpoint_interval=500),
    # Chapter 9's live run: small enough to learn visibly in about 90 s on 2 shared CPU cores, with an
    # evaluation and a text sample every 50 steps for the page's live chart.
    "live": TrainConfig(model=preset("tiny", n_ctx=128, d_model=96, n_layers=3, n_heads=4), batch_size=16,
                        max_steps=100_000, time_budget=90, lr=3e-3, min_lr=1e-4, warmup_steps=50,
                        eval_interval=50, eval_batches=4, sample_tokens=120, checkpoint_interval=100,
                        log_interval=10),
}

def train_preset(name: str, **overrides) -> TrainConfig:
    """The preset called `name` with `overrides` (TrainConfig or ModelConfig fields)."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"no training preset named {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    base = TRAIN_PRESETS[name]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model_changes = {k: v for k, v in overrides.items() if k in model_fields}
    train_changes = {k: v for k, v in overrides.items() if k not in model_fields}
    return dataclasses.replace(base, model=base.model.replace(**model_changes), **train_changes)


def agreed_dtype(requested: str) -> str:
    """resolve_dtype(requested), the same on every process: rank 0 measures, the others take its
    answer (timings taken while processes compete for the cores could disagree near the threshold)."""
    dtype = resolve_dtype(requested) if dist_info()[0] == 0 or requested != "auto" else "fp32"
    if dist_info()[1] > 1 and requested == "auto":
        setup_distributed()
        code = torch.tensor([1 if dtype == "bf16" else 0])
        torch.distributed.broadcast(code, src=0)
        dtype = "bf16" if int(code) else "fp32"
    return dtype


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


def loss_fn(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions: logits (B, T, V) vs targets (B, T)."""
    logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model: DecoderLM, data: torch.Tensor, batches: int | None, batch_size: int = 32,
             seed: int = 0) -> float:
    """Mean loss on `batches` fixed random windows, or on the whole split when batches is None.

    Always in fp32, whatever the training precision: this is the number cards and tests compare,
    and bf16 would both round it and, on CPUs without native bf16, take minutes instead of seconds."""
    was_training = model.training
    model.eval()
    T = model.config.n_ctx
    if batches is None:
        total, count = 0.0, 0
        for x, y in sequential_batches(data, 64, T):
            total += loss_fn(model, x, y).item() * x.numel()
            count += x.numel()
        loss = total / count
    else:
        gen = torch.Generator().manual_seed(seed + 999)  # the same windows at every evaluation
        loss = sum(loss_fn(model, *random_batch(data, batch_size, T, gen)).item() for _ in range(batches)) / batches
    model.train(was_training)
    return loss


# --- the pieces of a run ----------------------------------------------------------------------

@dataclass
class TrainState:
    """What changes as training goes: saved in every checkpoint."""

    step: int = 0
    tokens: int = 0
    elapsed_before: float = 0.0        # wall time of earlier sessions of this run (resume)
    best_val: float | None = None      # the lowest evaluation loss so far, and its step
    best_step: int | None = None
    started: float = field(default_factory=time.perf_counter)
    lr: float = 0.0                    # the learning rate the last step used
    interrupted: bool = False          # a Ctrl-C held back during an optimizer step
    routing: dict | None = None        # MoE: the last micro-batch's balance loss and per-layer expert load (logged)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


@dataclass
class Run:
    """Everything fixed for one run: config, model, data, optimizer, where it writes."""

    cfg: TrainConfig
    dtype: str                         # "bf16" or "fp32", resolved for this machine
    model: DecoderLM
    net: torch.nn.Module               # the model as trained: compiled and/or DDP-wrapped
    optimizer: Optimizers
    tokenizer: CharTokenizer
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    batch_gen: torch.Generator
    out: Path
    data_sha: str
    corpus: str
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    def log(self, row: dict) -> None:
        if self.main:
            with (self.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")

    def rng_states(self) -> dict[str, torch.Tensor]:
        return {"torch": torch.get_rng_state(), "batch": self.batch_gen.get_state()}


def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not launched by torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def setup_distributed() -> tuple[int, int]:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    return rank, world


def compiled(model: DecoderLM, cfg: TrainConfig, dtype: str, data: torch.Tensor, rows: int, say: bool):
    """torch.compile(model), tried once on a throwaway batch so that a machine without a working
    compiler falls back to eager at once; the trial uses forked RNG states and leaves no gradients."""
    net = torch.compile(model)
    started = time.perf_counter()
    try:
        with torch.random.fork_rng():
            x, y = random_batch(data, rows, cfg.model.n_ctx, torch.Generator().manual_seed(0))
            with autocast(dtype):
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


def check_resumable(meta: dict, cfg: TrainConfig, data_sha: str, path: Path) -> TrainConfig:
    """The checkpoint's config, if this run may continue it; otherwise an error naming what differs."""
    saved = TrainConfig.from_dict(meta["config"])
    if meta.get("data_sha256") not in (None, data_sha):
        raise CheckpointError(f"cannot resume {path}: it was trained on another corpus "
                              f"(sha256 {meta['data_sha256'][:12]}..., this one {data_sha[:12]}...)")
    model_diff = {k: (v, getattr(cfg.model, k)) for k, v in saved.model.to_dict().items()
                  if k != "vocab_size" and getattr(cfg.model, k) != v}
    if model_diff:
        shown = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in model_diff.items())
        raise CheckpointError(f"cannot resume {path}: the model differs ({shown})")
    for key in ("optimizer", "split_qkv", "batch_size", "grad_accum"):
        if getattr(saved, key) != getattr(cfg, key):
            raise CheckpointError(f"cannot resume {path}: {key} differs (checkpoint {getattr(saved, key)!r}, "
                                  f"now {getattr(cfg, key)!r})")
    return saved


def check_corpus_length(val_ids: torch.Tensor, n_ctx: int, corpus: str | Path | None) -> None:
    """The validation split (the last 10%, the shorter split) must hold a window of n_ctx + 1 tokens:
    said at the start, not at the first evaluation, steps later."""
    if len(val_ids) <= n_ctx:
        name = "TinyShakespeare" if corpus is None else str(corpus)
        raise CorpusError(f"corpus {name} is too short for a context of {n_ctx}: its validation split (the last "
                          f"10%) has {len(val_ids)} tokens; give it at least {10 * (n_ctx + 1)} characters or a "
                          f"smaller --n-ctx")


def attention_weight_bytes(cfg: TrainConfig, dtype: str, world: int = 1) -> int:
    """The memory one training step needs for its attention weights alone: a (B, H, T, T) matrix per
    layer, kept for the backward pass, for a micro-batch of B rows (a lower bound of the step's memory).

    Training forms them when it takes the eager attention path, as bf16 training on a CPU does
    (the fused kernel is the slower one under bf16 autocast: see Attention.forward), and whenever
    attention dropout is on (the fused kernel then forms them too, in fp32); otherwise the fused
    kernel works in tiles and they take nothing. Growing with T squared, they are what first makes a
    long context impossible: the tiny preset at n_ctx=20000 in bf16 needs 2 layers x 16 x 4 x 20000^2 x 2 bytes.

        >>> attention_weight_bytes(train_preset("tiny", n_ctx=20_000), "bf16") / 1e9
        102.4
    """
    m = cfg.model
    if dtype != "bf16" and m.attn_dropout == 0:
        return 0
    rows = cfg.batch_size // cfg.grad_accum // world
    return m.n_layers * rows * m.n_heads * m.n_ctx ** 2 * (2 if dtype == "bf16" else 4)


def expert_training_bytes(cfg: TrainConfig) -> int:
    """The memory a mixture of experts' expert weights take while training: each weight, its gradient
    and the optimizer's two moments, 4 fp32 numbers (Muon keeps one moment for its matrices: an upper
    bound). Every expert is stored and trained, whichever few a token uses, so this grows with
    n_experts. The tiny preset's MLP (GELU, 64 -> 256 -> 64, biases) has 33,088 weights; as 100,000
    experts in each of its 2 layers (and a router of 64 x 100,000) it would need 106 GB:

        >>> round(expert_training_bytes(train_preset("tiny", n_experts=100_000)) / 1e9, 1)
        106.1
    """
    m = cfg.model
    if not m.n_experts:
        return 0
    total, _ = moe_params(m.d_model, m.d_expert, m.n_experts, m.experts_per_token, m.mlp, m.mlp_bias)
    return m.n_layers * total * 4 * 4


def check_memory(cfg: TrainConfig, dtype: str, world: int) -> None:
    """Refuse, before allocating anything, a step that cannot fit in this machine's memory."""
    need, have = attention_weight_bytes(cfg, dtype, world), available_bytes()
    if have is not None and need > have:
        raise BadSetting("n_ctx", f"{cfg.model.n_ctx} needs at least {need / 1e9:.1f} GB of memory for one training "
                                  f"step's attention weights alone; this machine has {have / 1e9:.1f} GB available: "
                                  f"lower --n-ctx or --batch-size, or raise --grad-accum")
    need = expert_training_bytes(cfg)
    if have is not None and need > have:
        raise BadSetting("n_experts", f"{cfg.model.n_experts} needs at least {need / 1e9:.1f} GB of memory for the "
                                      f"experts' weights, gradients and optimizer state alone; this machine has "
                                      f"{have / 1e9:.1f} GB available: lower --n-experts or --d-expert")


def start_or_resume(cfg: TrainConfig, out: Path, corpus: str | Path | None, resume: bool) -> tuple[Run, TrainState]:
    """Build the model, data and optimizer; on resume, restore all of them from the checkpoint."""
    rank, world = setup_distributed()
    text, data_sha = load_text(corpus)
    checkpoint_path = out / "checkpoint.safetensors"
    state = TrainState()
    meta = None
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}")
        meta = read_training_meta(checkpoint_path)
        if "config" not in meta:
            raise CheckpointError(f"cannot resume: {checkpoint_path} has no training metadata")
        tokenizer = CharTokenizer.load(out / "tokenizer.json")
        unknown = tokenizer.unknown(text)
        if unknown:
            raise CheckpointError(f"cannot resume {checkpoint_path}: the corpus has characters the run's tokenizer "
                                  f"never saw ({' '.join(map(repr, unknown[:5]))})")
    else:
        tokenizer = CharTokenizer.train(text)
    if cfg.model.vocab_size != tokenizer.vocab_size:
        cfg = dataclasses.replace(cfg, model=cfg.model.replace(vocab_size=tokenizer.vocab_size))
    if meta is not None:
        saved = check_resumable(meta, cfg, data_sha, checkpoint_path)
        if saved.time_budget is not None and cfg.time_budget is not None:  # keep the steps fitted to the budget
            cfg = dataclasses.replace(cfg, max_steps=saved.max_steps)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = train_val_split(ids)
    if cfg.train_tokens is not None:  # less data than the model can memorize: it overfits
        train_ids = train_ids[:cfg.train_tokens]
    check_corpus_length(val_ids, cfg.model.n_ctx, corpus)  # (train_tokens > n_ctx is TrainConfig's check)
    if cfg.batch_size % (cfg.grad_accum * world):
        raise ValueError(f"batch_size {cfg.batch_size} must divide evenly into {cfg.grad_accum} micro-batches "
                         f"x {world} processes")

    dtype = agreed_dtype(cfg.dtype)
    if meta is not None and cfg.dtype == "auto" and meta.get("dtype") in DTYPES and meta["dtype"] != dtype:
        # Continue in the precision the run started in (bit for bit), unless that is bf16 on a CPU
        # without native bf16, where it would be hundreds of times slower.
        if meta["dtype"] == "fp32" or cpu_capability().native_bf16:
            dtype = meta["dtype"]
    check_memory(cfg, dtype, world)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).train()
    ns_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                               ns_dtype=ns_dtype, split_qkv=cfg.split_qkv)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    if meta is not None:
        rng = load_training_state(checkpoint_path, model, optimizer)
        torch.set_rng_state(rng["torch"])
        batch_gen.set_state(rng["batch"])
        state = TrainState(step=meta["step"], tokens=meta["tokens"], elapsed_before=meta["elapsed"],
                           best_val=meta["best_val"], best_step=meta["best_step"])
        if rank == 0:  # drop metrics logged after the checkpoint: they will be recomputed
            kept = [r for r in read_metrics(out / "metrics.jsonl") if r["step"] <= state.step]
            atomic_write(out / "metrics.jsonl",
                         lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")

    state.started = time.perf_counter()  # wall time counts everything from here, compiling included
    local = cfg.batch_size // cfg.grad_accum // world
    net = compiled(model, cfg, dtype, train_ids, local, rank == 0) if cfg.compile else model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
    run = Run(cfg, dtype, model, net, optimizer, tokenizer, train_ids, val_ids, batch_gen, out, data_sha,
              "tinyshakespeare" if corpus is None else str(corpus), rank, world)
    return run, state


def train_step(run: Run, state: TrainState) -> float:
    """One optimizer step over batch_size sequences (in grad_accum micro-batches, split across
    processes); returns the mean loss, averaged over processes."""
    cfg, T = run.cfg, run.cfg.model.n_ctx
    micro = cfg.batch_size // cfg.grad_accum        # rows of one global micro-batch
    local = micro // run.world                      # rows this process computes
    lr = lr_at(state.step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros(())
    for micro_step in range(cfg.grad_accum):
        x, y = random_batch(run.train_ids, micro, T, run.batch_gen)       # the same global batch on every rank
        x, y = x[run.rank * local:(run.rank + 1) * local], y[run.rank * local:(run.rank + 1) * local]
        last = micro_step == cfg.grad_accum - 1
        no_sync = run.net.no_sync() if run.world > 1 and not last else contextlib.nullcontext()
        moe = run.model.config.n_experts > 0       # MoE: + the weighted balance loss (model/moe.py)
        with no_sync:
            with autocast(run.dtype), routing_recorded(run.model) if moe else contextlib.nullcontext() as routing:
                loss = loss_fn(run.net, x, y) / cfg.grad_accum
            if moe:
                balance, load = routing_summary(routing)
                state.routing = {"balance_loss": round(balance.item(), 5), "expert_load": load}
                (loss + balance * (cfg.balance_weight / cfg.grad_accum)).backward()
            else:
                loss.backward()
        loss_sum += loss.detach()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    with interrupts_deferred(state):  # a Ctrl-C here would leave half the weights updated
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens += cfg.batch_size * T
        state.lr = lr
    return loss_sum.item()


@contextlib.contextmanager
def interrupts_deferred(state: "TrainState"):
    """Hold a Ctrl-C that arrives inside the block until the block is done (state.interrupted is
    set; the loop raises KeyboardInterrupt right after). Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: setattr(state, "interrupted", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def agree_to_stop(run: Run, state: TrainState, loss: float, time_limit: float | None) -> tuple[float, bool]:
    """(the loss averaged over processes, whether every process stops now for lack of time).

    One all-reduce carries both, so every rank takes the same decision at the same step: a rank
    that stopped alone would leave the others waiting forever in their next collective."""
    out_of_time = time_limit is not None and state.elapsed() >= time_limit
    if run.world > 1:
        both = torch.tensor([loss, float(out_of_time)], dtype=torch.float64)
        torch.distributed.all_reduce(both)
        loss, out_of_time = both[0].item() / run.world, both[1].item() > 0
    if not math.isfinite(loss):  # every rank sees the same averaged value, so every rank raises
        raise FloatingPointError(f"loss became {loss} at step {state.step}: the learning rate "
                                 f"({lr_at(state.step - 1, run.cfg):.2g}) is probably too high")
    return loss, out_of_time


def fit_to_budget(run: Run, state: TrainState, seconds_per_step: float) -> None:
    """Set max_steps so the run ends within cfg.time_budget at `seconds_per_step`.

    First done at step BUDGET_CALIBRATION_STEPS[1], from the median step time (for presets whose
    warmup is longer than that, such as `course`, no learning rate already used changes; a shorter
    warmup, as in `live`, has already begun its decay); then again at every evaluation, from
    the average time per step since the previous fit (evaluations included), so a machine that
    slows down mid-run still finishes on time. Every rank takes rank 0's answer."""
    cfg = run.cfg
    remaining = cfg.time_budget * BUDGET_SAFETY - state.elapsed()
    steps = torch.tensor([min(cfg.max_steps if state.step < BUDGET_CALIBRATION_STEPS[1] else 10**9,
                              state.step + max(1, int(remaining / seconds_per_step)))])
    if run.world > 1:
        torch.distributed.broadcast(steps, src=0)
    if int(steps) != cfg.max_steps:
        run.cfg = dataclasses.replace(cfg, max_steps=int(steps))
        run.log({"step": state.step, "fitted_max_steps": int(steps), "seconds_per_step": round(seconds_per_step, 5),
                 "time_budget": cfg.time_budget})


def sample_text(run: Run, state: TrainState) -> str:
    model, tok = run.model, run.tokenizer
    model.eval()
    prompt = tok.encode("\n") if "\n" in tok.ids else [0]
    out_ids = generate(model, prompt, min(run.cfg.sample_tokens, run.cfg.model.n_ctx - 1), temperature=0.8,
                       top_k=40, seed=state.step)
    model.train()
    return tok.decode(out_ids.tolist()[1:])


def maybe_evaluate(run: Run, state: TrainState, force: bool) -> dict | None:
    """Every eval_interval steps (and when forced): val loss on fixed windows, a text sample, and
    the best model so far saved. Only the main process evaluates."""
    if not run.main or not (force or state.step % run.cfg.eval_interval == 0):
        return None
    cfg = run.cfg
    val_loss = evaluate(run.model, run.val_ids, cfg.eval_batches, min(cfg.batch_size, 32), cfg.seed)
    if not math.isfinite(val_loss):  # the weights hold inf/nan: no sample can be drawn from them either
        raise FloatingPointError(f"validation loss became {val_loss} at step {state.step}: the learning rate "
                                 f"({state.lr:.2g}) is probably too high")
    row = {"step": state.step, "val_loss": round(val_loss, 5),
           "elapsed": round(state.elapsed(), 2), "sample": sample_text(run, state)}
    run.log(row)
    if cfg.keep_best and (state.best_val is None or row["val_loss"] < state.best_val):
        state.best_val, state.best_step = row["val_loss"], state.step
        save_model_folder(run.model, run.tokenizer, run.out)
    return row


def save_checkpoint(run: Run, state: TrainState, rng: dict[str, torch.Tensor] | None = None) -> None:
    """Everything needed to continue exactly, as it is at the start of step `state.step`."""
    if not run.main:
        return
    meta = {"step": state.step, "tokens": state.tokens, "elapsed": state.elapsed(), "best_val": state.best_val,
            "best_step": state.best_step, "config": run.cfg.to_dict(), "dtype": run.dtype,
            "optimizer": run.cfg.optimizer, "data_sha256": run.data_sha}
    save_training_state(run.checkpoint_path, run.model, run.optimizer, rng or run.rng_states(), meta)
    if not run.cfg.keep_best or state.best_step is None:
        save_model_folder(run.model, run.tokenizer, run.out)


def finish(run: Run, state: TrainState) -> dict:
    """Reload the best weights, measure train and (whole-split) val loss, write the card."""
    summary = {"steps": state.step, "wall_time_s": round(state.elapsed(), 1), "tokens": state.tokens}
    if run.main:
        if run.cfg.keep_best and state.best_step is not None:  # ship the weights with the lowest val loss
            path = run.out / "model.safetensors"
            from safetensors.torch import load_file
            load_weights(run.model, load_file(str(path)), str(path))
            summary["best_step"] = state.best_step
        summary["final_train_loss"] = round(evaluate(run.model, run.train_ids, run.cfg.eval_batches,
                                                     min(run.cfg.batch_size, 32), run.cfg.seed), 4)
        summary["final_val_loss"] = round(evaluate(run.model, run.val_ids, None), 4)  # the whole val split
        card = {"name": run.out.name, "preset_config": run.cfg.to_dict(), "dtype_used": run.dtype,
                "cpu": cpu_capability().summary, "data_sha256": run.data_sha, "corpus": run.corpus, **summary,
                "val_loss_note": "mean cross-entropy (nats/char) over the whole validation split (last 10%), fp32"}
        save_model_folder(run.model, run.tokenizer, run.out, card=card)
        run.log({"step": state.step, **summary})
    if run.world > 1:
        torch.distributed.barrier()
    return summary


# --- the loop -----------------------------------------------------------------------------

def train(cfg: TrainConfig, out_dir: str | Path, *, corpus: str | Path | None = None, resume: bool = False,
          progress: bool = True, time_limit: float | None = None, full_eval_at: list[float] = (),
          on_eval=None) -> dict:
    """Train a character-level model on `corpus` (TinyShakespeare by default) into out_dir.

    Returns a summary (steps, wall time, final train/val loss). Ctrl-C saves a checkpoint and
    re-raises KeyboardInterrupt; `resume=True` continues from out_dir's checkpoint, bit for bit
    (except with a time_budget: its schedule is re-fitted to the measured speed, which varies).
    time_limit (seconds) ends training early, cleanly. full_eval_at (seconds of wall time) adds
    evaluations on the whole validation split as training passes those times ("time to quality").
    on_eval(row) is called with every evaluation row (the course's live chart).
    """
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise BadSetting("time_limit", f"must be a finite number of seconds > 0, got {time_limit!r}")
    if not all(math.isfinite(t) and t >= 0 for t in full_eval_at):
        raise BadSetting("full_eval_at", f"takes finite numbers of seconds >= 0, got {list(full_eval_at)}")
    run, state = start_or_resume(cfg, Path(out_dir), corpus, resume)
    announce(run, state)
    bar = progress_bar(run, state) if progress else None
    pending_full_evals = sorted(t for t in full_eval_at if t > state.elapsed_before)
    budget = run.cfg.time_budget is not None
    step_times, last_fit, window = [], (state.step, state.elapsed()), (time.perf_counter(), state.tokens)
    rng_at_step_start = None
    try:
        while state.step < run.cfg.max_steps:
            rng_at_step_start, step_started = run.rng_states(), time.perf_counter()
            loss = train_step(run, state)
            rng_at_step_start = None  # the step is done: a Ctrl-C from here on saves the state after it
            if state.interrupted:
                raise KeyboardInterrupt
            loss, out_of_time = agree_to_stop(run, state, loss, time_limit)
            if budget and BUDGET_CALIBRATION_STEPS[0] < state.step <= BUDGET_CALIBRATION_STEPS[1]:
                step_times.append(time.perf_counter() - step_started)
            if budget and state.step == BUDGET_CALIBRATION_STEPS[1] and step_times:
                fit_to_budget(run, state, sorted(step_times)[len(step_times) // 2])  # the median step
                last_fit = (state.step, state.elapsed())
            elif (budget and state.step % run.cfg.eval_interval == 0 and last_fit[0] >= BUDGET_CALIBRATION_STEPS[1]
                  and state.step > last_fit[0]):
                fit_to_budget(run, state, (state.elapsed() - last_fit[1]) / (state.step - last_fit[0]))
                last_fit = (state.step, state.elapsed())
            last = out_of_time or state.step >= run.cfg.max_steps
            if state.step % run.cfg.log_interval == 0 or last:
                window = log_progress(run, state, loss, window, bar)
            if bar is not None:
                bar.update(1)
            row = maybe_evaluate(run, state, force=last)
            if row is not None and bar is not None:
                bar.write(f"step {state.step}: val loss {row['val_loss']:.3f}\n{row['sample']}\n" + "-" * 40)
            if row is not None and on_eval is not None:
                on_eval(row)
            while run.main and pending_full_evals and state.elapsed() >= pending_full_evals[0]:
                run.log({"step": state.step, "full_val_loss": round(evaluate(run.model, run.val_ids, None), 5),
                         "elapsed": round(state.elapsed(), 2), "at": pending_full_evals.pop(0)})
            if state.step % run.cfg.checkpoint_interval == 0 or last:
                save_checkpoint(run, state)
            if out_of_time:
                break
    except FloatingPointError as exc:  # the loss is NaN or infinite: say so in the log, keep nothing
        run.log({"step": state.step, "error": str(exc)})
        raise
    except KeyboardInterrupt:
        save_checkpoint(run, state, rng_at_step_start)  # mid-step: roll back to the step's start
        if bar is not None:
            bar.write(f"interrupted at step {state.step}; checkpoint saved in {run.checkpoint_path}; "
                      f"continue with --resume")
        raise
    finally:
        if bar is not None:
            bar.close()
    return finish(run, state)


def announce(run: Run, state: TrainState) -> None:
    if run.main:
        what = f"resuming at step {state.step}" if state.step else "starting"
        print(f"{what}: {run.model.num_params():,} parameters, {run.dtype} matrix multiplies "
              f"(asked: {run.cfg.dtype}; this CPU: {cpu_capability().summary}), {torch.get_num_threads()} threads",
              file=sys.stderr)
        run.log({"step": state.step, "dtype": run.dtype, "dtype_asked": run.cfg.dtype,
                 "cpu": cpu_capability().summary, "threads": torch.get_num_threads(), "processes": run.world})


def progress_bar(run: Run, state: TrainState):
    if not run.main:
        return None
    from tqdm import tqdm
    return tqdm(total=run.cfg.max_steps, initial=state.step, unit="step", dynamic_ncols=True, file=sys.stderr)


def log_progress(run: Run, state: TrainState, loss: float, window: tuple[float, int], bar) -> tuple[float, int]:
    now = time.perf_counter()
    tok_s = (state.tokens - window[1]) / max(1e-9, now - window[0])
    run.log({"step": state.step, "train_loss": round(loss, 5), "lr": state.lr,
             "tokens_per_s": round(tok_s), "elapsed": round(state.elapsed(), 2), **(state.routing or {})})
    if bar is not None:
        bar.total = run.cfg.max_steps  # fitted to the time budget after the first steps
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}")
    return now, state.tokens


def validation_loss(model: DecoderLM, tokenizer, corpus: str | Path | None = None) -> float:
    """Mean loss over the whole validation split (the last 10% of the corpus), in fp32, as the card reports it."""
    text, _ = load_text(corpus)
    ids = torch.tensor(tokenizer.encode(text, errors="skip"), dtype=torch.long)
    return evaluate(model, train_val_split(ids)[1], None)


def export_model(run_dir: str | Path, dest: str | Path, dtype: torch.dtype = torch.float16) -> dict:
    """Copy a trained model into dest with weights stored as `dtype` (half the size of fp32),
    re-measuring its validation loss with exactly the stored weights for the card."""
    from glassformer.checkpoint import load_model_folder

    model, tokenizer, card = load_model_folder(run_dir)
    save_model_folder(model, tokenizer, dest, dtype=dtype)
    shipped, _, _ = load_model_folder(dest)  # read back: the rounding to dtype is what is measured
    card = {**card, "name": Path(dest).name, "stored_dtype": str(dtype).removeprefix("torch."),
            "final_val_loss_fp32": card["final_val_loss"],
            "final_val_loss": round(validation_loss(shipped, tokenizer), 4)}
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
    for name, kind in [("max_steps", int), ("time_budget", float), ("batch_size", int), ("grad_accum", int),
                       ("lr", float), ("min_lr", float), ("warmup_steps", int), ("weight_decay", float),
                       ("grad_clip", float), ("eval_interval", int), ("checkpoint_interval", int),
                       ("log_interval", int), ("seed", int), ("train_tokens", int), ("n_layers", int), ("n_heads", int),
                       ("n_kv_heads", int), ("d_model", int), ("n_ctx", int), ("d_mlp", int), ("dropout", float),
                       ("attn_dropout", float)]:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    for name, choices in [("dtype", DTYPES), ("optimizer", OPTIMIZERS), ("position", POSITIONS), ("norm", NORMS),
                          ("mlp", MLPS)]:
        parser.add_argument("--" + name, choices=choices, default=None)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the training step (faster after a 20-30 s compile; needs a C++ compiler)")
    parser.add_argument("--split-qkv", dest="split_qkv", action=argparse.BooleanOptionalAction, default=None,
                        help="Muon: orthogonalize the fused q|k|v matrix as three matrices")
    moe = parser.add_argument_group("mixture of experts (model/moe.py, chapter 11)")
    moe.add_argument("--n-experts", dest="n_experts", type=int, default=None, metavar="N",
                     help="replace every block's MLP by N experts and a router (default 0: one dense MLP)")
    moe.add_argument("--experts-per-token", dest="experts_per_token", type=int, default=None, metavar="K",
                     help="experts each token is sent to, 1..N (default 2, or 1 with a single expert)")
    moe.add_argument("--d-expert", dest="d_expert", type=int, default=None, metavar="F",
                     help="hidden width of one expert (default: the dense MLP's width, so K experts do K times "
                          "its work per token; for the same work give --d-mlp / K)")
    moe.add_argument("--balance-weight", dest="balance_weight", type=float, default=None, metavar="W",
                     help="weight of the load-balancing loss added to the training loss (default 0.01; 0: none)")


# Every flag above whose name is a TrainConfig or ModelConfig field overrides that field of the preset.
OVERRIDES = {f.name for f in dataclasses.fields(TrainConfig) + dataclasses.fields(ModelConfig)} - {"model"}
MOE_ONLY = ("experts_per_token", "d_expert", "balance_weight")   # flags that mean nothing to a dense model


def moe_overrides(args: argparse.Namespace, base: TrainConfig) -> dict:
    """What the MoE flags change beyond their own fields; a flag a dense model would silently ignore
    is refused."""
    experts = base.model.n_experts if args.n_experts is None else args.n_experts
    if experts == 0:
        for name in MOE_ONLY:
            if getattr(args, name) is not None:
                raise BadSetting(name, "applies only to a mixture of experts: add --n-experts N (N >= 1), "
                                       f"got {getattr(args, name)!r} for a dense model")
        return {}
    changes = {}
    if args.experts_per_token is None and experts == 1:
        changes["experts_per_token"] = 1  # the default 2 cannot choose among a single expert
    if base.compile and args.compile is None:
        # The dispatch's shapes depend on the routing (how many tokens each expert gets), so the
        # compiled step breaks into pieces and recompiles: the course preset with 8 experts measured
        # 1,800 tokens/s compiled (after a 38 s compile) against 7,000 eager (fp32, one thread, on a
        # busy 2-core machine).
        changes["compile"] = False
    return changes


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in vars(args).items() if k in OVERRIDES and v is not None}
    moe_changes = moe_overrides(args, train_preset(args.preset))
    overrides |= moe_changes
    if args.max_steps is not None and args.time_budget is None:
        overrides["time_budget"] = None  # an explicit step count wins over the preset's time budget
    cfg = train_preset(args.preset, **overrides)
    out = Path(args.out or f"runs/{args.preset}")
    if not args.resume and (out / "checkpoint.safetensors").exists():
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it or --out for a new folder")
    rank, world = dist_info()
    if rank == 0:
        print(f"training preset {args.preset!r} into {out} on {world} process(es)", file=sys.stderr)
        if "compile" in moe_changes:
            print("note: training the mixture of experts eagerly (its dispatch measured slower compiled; "
                  "--compile to compile anyway)", file=sys.stderr)
    try:
        full_eval_at = [float(t) for t in args.full_eval_at.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--full-eval-at takes seconds separated by commas, got {args.full_eval_at!r}") from None
    try:
        summary = train(cfg, out, corpus=args.corpus, resume=args.resume, progress=not args.no_progress,
                        time_limit=args.time_limit, full_eval_at=full_eval_at)
    except KeyboardInterrupt:
        return 130
    except FloatingPointError as exc:  # a diverged run is a recipe problem, not a bug: one line, no traceback
        print(f"glassformer train: stopped: {exc}", file=sys.stderr)
        return 3
    if rank == 0:
        print(json.dumps(summary, indent=2))
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glassformer.train", description="Train a character-level model.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return report_user_errors("train", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
