"""Supervised fine-tuning: teach a pretrained language model to answer in a chat format.

Pre-training taught the model to continue text. Fine-tuning continues training the same weights,
now on conversations (`chat`): a prompt, then the reply the model should have written. Two choices
matter most:

- **which tokens carry the loss.** By default only the reply's (`loss_on="response"`): the model
  is graded on what it should write, not on predicting the questions, which it will never have
  to write. `loss_on="all"` trains on every token, as pre-training does, for comparison.
- **which weights move.** All of them, or, with `lora_rank`, only small low-rank adapters beside
  the frozen weights (`lora`), folded into the weights when the model is saved.

The loop reuses `train`'s pieces (TrainConfig, the learning-rate schedule, the optimizers, bf16
autocast, fitting the schedule to a time budget, atomic checkpoints and --resume, metrics.jsonl);
only the batches differ: whole conversations padded to the longest one in the batch, with the
targets that carry no loss set to -100, which cross-entropy ignores.

    glassformer finetune --from course --data instructions --time-budget 60 --out runs/sft

The output folder is an ordinary model folder (`registry.load_model("runs/sft")`) whose card records
the held-out exact match before and after (`evaluate`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from glassformer.chat import Message, PlainFormat, check_messages, find_chat_template
from glassformer.checkpoint import (CheckpointError, atomic_write, atomic_write_text, load_training_state,
                                    read_training_meta, save_model_folder, save_training_state)
from glassformer.errors import BadSetting, report_user_errors
from glassformer.generate import stream
from glassformer.lora import TARGETS, add_lora, has_lora, merge_lora, trainable_parameters
from glassformer.optim import make_optimizer
from glassformer.precision import autocast, cpu_capability, resolve_dtype
from glassformer.train import (BUDGET_CALIBRATION_STEPS, TrainConfig, TrainState, agree_to_stop, fit_to_budget,
                               interrupts_deferred, loss_fn, lr_at, read_metrics)

LossOn = Literal["response", "all"]
IGNORE = -100                      # a target cross-entropy skips (F.cross_entropy's ignore_index)
INSTRUCTIONS_DIR = Path(__file__).parent / "assets" / "instructions"   # the shipped dataset (`--data instructions`)


@dataclass(frozen=True)
class FinetuneConfig:
    train: TrainConfig                      # lr, batch, steps, time budget, precision, intervals, seed
    loss_on: LossOn = "response"
    lora_rank: int | None = None            # None: every weight trains
    lora_alpha: float | None = None         # adapter scale alpha / rank (default alpha = rank)
    lora_targets: tuple[str, ...] = TARGETS
    eval_limit: int | None = 200            # held-out examples whose exact match the card records (None: all)

    def __post_init__(self) -> None:
        if self.loss_on not in get_args(LossOn):
            raise BadSetting("loss_on", f"must be one of {get_args(LossOn)}, got {self.loss_on!r}")
        if self.lora_rank is not None and not (isinstance(self.lora_rank, int) and self.lora_rank >= 1):
            raise BadSetting("lora", f"(the rank) must be an integer >= 1, got {self.lora_rank!r}")
        if self.eval_limit is not None and self.eval_limit < 0:
            raise BadSetting("eval_limit", f"must be >= 0, got {self.eval_limit!r}")

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "loss_on": self.loss_on, "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha, "lora_targets": list(self.lora_targets), "eval_limit": self.eval_limit}


def default_train_config(model_config, **overrides) -> TrainConfig:
    """Fine-tuning's recipe: a short warmup, AdamW, no weight decay (it would pull the pretrained weights
    towards zero, not towards what they were). The peak rate: the course model on the shipped instruction
    set, 60 s on one thread, 6 candidate tasks: held-out exact match 2.0% at lr 1e-3, 2.3% at 3e-3
    (first word: 6% vs 10%); 3e-3 it is."""
    base = dict(model=model_config, batch_size=16, max_steps=500, lr=3e-3, min_lr=1e-4, warmup_steps=20,
                weight_decay=0.0, optimizer="adamw", dtype="auto", eval_interval=100, eval_batches=4,
                checkpoint_interval=100, log_interval=10, sample_tokens=0)
    return TrainConfig(**{**base, **overrides})


# --- data --------------------------------------------------------------------------------------

@dataclass
class Example:
    messages: list[Message]
    task: str = ""

    @property
    def answer(self) -> str:
        """The expected final reply (what exact match compares against)."""
        return self.messages[-1]["content"]


def parse_example(row: dict, where: str) -> Example:
    """{"prompt", "response"} or {"messages": [...]} (either with an optional "task")."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: each line must be a JSON object")
    task = row.get("task", "")
    if "messages" in row:
        messages = row["messages"]
        check_messages(messages, where)
    elif "prompt" in row and "response" in row:
        if not (isinstance(row["prompt"], str) and isinstance(row["response"], str)):
            raise ValueError(f"{where}: 'prompt' and 'response' must be strings")
        messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    else:
        raise ValueError(f"{where}: a line needs 'prompt' and 'response', or 'messages'")
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: the last message must be the assistant's (the reply to learn)")
    return Example(messages, str(task))


def read_examples(path: str | Path) -> list[Example]:
    """Examples from a JSONL file; an error names the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc})") from None
        examples.append(parse_example(row, f"{path}:{number}"))
    if not examples:
        raise ValueError(f"{path} holds no examples")
    return examples


def resolve_data(data: str | Path, eval_data: str | Path | None = None) -> tuple[Path, Path | None]:
    """(training file, held-out file or None). `data` may be "instructions" (the shipped set), a
    folder holding train.jsonl (and test.jsonl), or a JSONL file."""
    path = INSTRUCTIONS_DIR if str(data) == "instructions" else Path(data).expanduser()
    if path.is_dir():
        train_file, test_file = path / "train.jsonl", path / "test.jsonl"
        if not train_file.exists():
            raise FileNotFoundError(f"{path} has no train.jsonl")
        held_out = Path(eval_data) if eval_data else (test_file if test_file.exists() else None)
        return train_file, held_out
    if not path.exists():
        raise FileNotFoundError(f"no data file {path}")
    return path, Path(eval_data) if eval_data else None


def chat_format(tokenizer, folder: Path | None = None):
    """The pretrained model's own chat template when its tokenizer files carry one, else the plain
    format; for a tokenizer that cannot encode one of the plain format's markers, an error naming it."""
    if folder is not None:
        template = find_chat_template(folder)
        if template is not None:
            return template
    fmt = PlainFormat()
    if getattr(tokenizer, "kind", None) == "char":
        missing = tokenizer.unknown(fmt.markers())
        if missing:
            raise ValueError(f"the model's {tokenizer.vocab_size}-character vocabulary lacks the chat format's "
                             f"markers {missing}")
    return fmt


def encode_example(fmt, tokenizer, messages: list[Message], loss_on: LossOn = "response") -> tuple[list[int], list[bool]]:
    """(token ids, learn) for one conversation: learn[i] says whether token i is a target the loss
    is taken on (a reply token, or every token with loss_on="all"). Each piece is encoded on its own,
    so no token straddles the border between prompt and reply."""
    ids: list[int] = []
    learn: list[bool] = []
    for text, is_reply in fmt.segments(messages):
        piece = tokenizer.encode(text)
        ids += piece
        learn += [is_reply or loss_on == "all"] * len(piece)
    return ids, learn


@dataclass
class Encoded:
    ids: list[torch.Tensor]        # one (L,) tensor per conversation
    learn: list[torch.Tensor]      # (L,) booleans
    dropped: int = 0               # conversations longer than the context, left out

    def head(self, n: int) -> "Encoded":
        return Encoded(self.ids[:n], self.learn[:n], self.dropped)


def encode_all(fmt, tokenizer, examples: list[Example], n_ctx: int, loss_on: LossOn, what: str) -> Encoded:
    out = Encoded([], [])
    for i, ex in enumerate(examples):
        if getattr(tokenizer, "kind", None) == "char":
            text = "".join(t for t, _ in fmt.segments(ex.messages))
            unknown = tokenizer.unknown(text)
            if unknown:
                raise ValueError(f"{what} example {i + 1} has characters the model does not know: "
                                 f"{' '.join(map(repr, unknown[:5]))}")
        ids, learn = encode_example(fmt, tokenizer, ex.messages, loss_on)
        if len(ids) > n_ctx + 1:  # inputs are ids[:-1]: a window of n_ctx
            out.dropped += 1
            continue
        out.ids.append(torch.tensor(ids, dtype=torch.long))
        out.learn.append(torch.tensor(learn, dtype=torch.bool))
    if not out.ids:
        raise ValueError(f"every {what} example is longer than the model's context of {n_ctx} tokens")
    return out


def make_batch(data: Encoded, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x (B, T) and targets y (B, T) for conversations `rows`, padded to the longest; a target
    that carries no loss (not learned, or padding) is IGNORE."""
    T = max(len(data.ids[r]) for r in rows) - 1
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for b, r in enumerate(rows):
        ids, learn = data.ids[r], data.learn[r]
        n = len(ids) - 1
        x[b, :n] = ids[:-1]
        y[b, :n] = ids[1:].masked_fill(~learn[1:], IGNORE)       # token t+1 is learned from position t
    return x, y


@torch.no_grad()
def reply_loss(model, data: Encoded, batch_size: int = 32) -> float:
    """Mean cross-entropy per learned target over every conversation of `data`, in fp32."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data.ids), batch_size):
        x, y = make_batch(data, list(range(start, min(start + batch_size, len(data.ids)))))
        logits = model(x).float()
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE,
                                 reduction="sum").item()
        count += int((y != IGNORE).sum())
    model.train(was_training)
    return total / max(1, count)


# --- metrics -----------------------------------------------------------------------------------

def end_token(fmt, tokenizer) -> int | list[int] | None:
    """The id(s) at which a greedy reply stops: the plain format's "$", or the tokenizer's end-of-sequence ids."""
    if isinstance(fmt, PlainFormat):
        ids = tokenizer.encode(fmt.END)
        return ids[0] if len(ids) == 1 else None
    return tokenizer.eos_id


@torch.no_grad()
def evaluate(model, tokenizer, examples: list[Example], fmt=None, slack: int = 8, per_example: bool = False) -> dict:
    """Greedy replies to the held-out prompts: exact match (the reply, cut where the format ends it, is
    exactly the expected answer) and format compliance (the reply ended where the format says, within
    the answer's length + `slack` tokens), overall and per task; with per_example, also whether each
    example's reply was exactly right ("per_example", in the examples' order).

        >>> from glassformer.registry import load_model
        >>> m = load_model("course")
        >>> evaluate(m.model, m.tokenizer, [Example([{"role": "user", "content": "Hi"},
        ...                                            {"role": "assistant", "content": "HI"}])])["n"]
        1
    """
    fmt = fmt or chat_format(tokenizer)
    stop = end_token(fmt, tokenizer)
    was_training = model.training
    model.eval()
    rows = []
    for ex in examples:
        prompt = tokenizer.encode(fmt.prompt(ex.messages[:-1]))
        room = model.config.n_ctx - len(prompt)
        budget = min(room, len(tokenizer.encode(ex.answer)) + slack)
        if budget <= 0:
            rows.append((ex, "", False))
            continue
        new = [int(t[0]) for t in stream(model, prompt, budget, temperature=0.0, eos_id=stop)]
        reply, ended = fmt.reply(tokenizer.decode(new))
        rows.append((ex, reply, ended))
    model.train(was_training)

    def summary(subset) -> dict:
        n = len(subset)
        return {"n": n, "exact_match": sum(r == ex.answer and ok for ex, r, ok in subset) / max(1, n),
                "format_ok": sum(ok for _, _, ok in subset) / max(1, n)}

    tasks = sorted({ex.task for ex, _, _ in rows if ex.task})
    extra = {"per_example": [r == ex.answer and ok for ex, r, ok in rows]} if per_example else {}
    return {**summary(rows), "by_task": {t: summary([r for r in rows if r[0].task == t]) for t in tasks}, **extra,
            "samples": [{"prompt": ex.messages[-2]["content"] if len(ex.messages) > 1 else "", "expected": ex.answer,
                         "reply": r, "ended": ok} for ex, r, ok in rows[:5]]}


# --- the run -----------------------------------------------------------------------------------

@dataclass
class FinetuneRun:
    """What is fixed for one fine-tuning run (the pieces `train`'s helpers read: cfg, world, log)."""

    fcfg: FinetuneConfig
    cfg: TrainConfig               # fcfg.train, with max_steps fitted to the time budget
    dtype: str
    model: torch.nn.Module
    optimizer: object
    tokenizer: object
    fmt: object
    data: Encoded
    held_out: Encoded | None
    batch_gen: torch.Generator
    out: Path
    meta: dict                     # base model, data checksums, what the card and resume check
    world: int = 1                 # one process (fit_to_budget and agree_to_stop read it)

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    def log(self, row: dict) -> None:
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    def rng_states(self) -> dict[str, torch.Tensor]:
        return {"torch": torch.get_rng_state(), "batch": self.batch_gen.get_state()}


def file_sha(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def source_folder(loaded) -> Path | None:
    """The folder a pretrained model's tokenizer came from (where its chat template would be)."""
    path = getattr(loaded.tokenizer, "path", None)
    return Path(path).parent if path is not None else None


def exported(run: FinetuneRun) -> torch.nn.Module:
    """The model as saved: adapters folded into the weights (a copy; training goes on with the adapters)."""
    return merge_lora(copy.deepcopy(run.model)) if has_lora(run.model) else run.model


CHAT_FILES = ("tokenizer_config.json", "chat_template.jinja")   # a pretrained tokenizer's template and end token


def save_model(run: FinetuneRun, card: dict | None = None) -> None:
    save_model_folder(exported(run), run.tokenizer, run.out, card=card)
    source = run.meta.get("tokenizer_folder")
    for name in CHAT_FILES if source and Path(source).resolve() != run.out.resolve() else ():
        if (Path(source) / name).exists():  # so the fine-tuned folder keeps its chat template
            text = (Path(source) / name).read_text()
            atomic_write_text(run.out / name, text)


def start_or_resume(fcfg: FinetuneConfig, loaded, train_file: Path, held_out_file: Path | None, out: Path,
                    resume: bool) -> tuple[FinetuneRun, TrainState]:
    cfg = fcfg.train
    meta = {"base": loaded.name, "data": str(train_file), "data_sha256": file_sha(train_file),
            "held_out": str(held_out_file) if held_out_file else None, "held_out_sha256": file_sha(held_out_file),
            "tokenizer_folder": str(source_folder(loaded)) if source_folder(loaded) else None}
    state = TrainState()
    saved = None
    if resume:
        if not (out / "checkpoint.safetensors").exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {out / 'checkpoint.safetensors'}")
        saved = read_training_meta(out / "checkpoint.safetensors")
        if "finetune" not in saved:
            raise CheckpointError(f"cannot resume: {out} holds no fine-tuning run")
        differs = [k for k in ("base", "data_sha256") if saved["finetune_meta"].get(k) != meta[k]]
        was = FinetuneConfig(**{**saved["finetune"], "train": TrainConfig.from_dict(saved["finetune"]["train"]),
                                "lora_targets": tuple(saved["finetune"]["lora_targets"])})
        differs += [k for k in ("loss_on", "lora_rank", "lora_alpha", "lora_targets") if getattr(was, k) != getattr(fcfg, k)]
        differs += [k for k in ("batch_size", "grad_accum", "optimizer") if getattr(was.train, k) != getattr(cfg, k)]
        if differs:
            raise CheckpointError(f"cannot resume {out}: settings differ from the checkpoint's run: {', '.join(differs)}")
        if was.train.time_budget is not None and cfg.time_budget is not None:
            cfg = dataclasses.replace(cfg, max_steps=was.train.max_steps)

    model = copy.deepcopy(loaded.model).float().train()   # the registry's copy is shared: never train it
    tokenizer = loaded.tokenizer
    fmt = chat_format(tokenizer, source_folder(loaded))
    data = encode_all(fmt, tokenizer, read_examples(train_file), model.config.n_ctx, fcfg.loss_on, "training")
    held_out = (encode_all(fmt, tokenizer, read_examples(held_out_file), model.config.n_ctx, "response", "held-out")
                if held_out_file else None)
    torch.manual_seed(cfg.seed)
    if fcfg.lora_rank is not None:
        add_lora(model, fcfg.lora_rank, fcfg.lora_targets, fcfg.lora_alpha, seed=cfg.seed)
    dtype = resolve_dtype(cfg.dtype)
    if saved is not None and saved.get("dtype") in ("bf16", "fp32") and cfg.dtype == "auto":
        if saved["dtype"] == "fp32" or cpu_capability().native_bf16:
            dtype = saved["dtype"]
    ns_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), ns_dtype=ns_dtype)
    batch_gen = torch.Generator().manual_seed(cfg.seed)
    run = FinetuneRun(fcfg, cfg, dtype, model, optimizer, tokenizer, fmt, data, held_out, batch_gen, out, meta)
    if saved is not None:
        rng = load_training_state(run.checkpoint_path, model, optimizer)
        torch.set_rng_state(rng["torch"])
        batch_gen.set_state(rng["batch"])
        state = TrainState(step=saved["step"], tokens=saved["tokens"], elapsed_before=saved["elapsed"],
                           best_val=saved["best_val"], best_step=saved["best_step"])
        run.meta.update({k: saved["finetune_meta"][k] for k in ("before",) if k in saved["finetune_meta"]})
        kept = [r for r in read_metrics(out / "metrics.jsonl") if r.get("step", 0) <= state.step]
        atomic_write(out / "metrics.jsonl", lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    return run, state


def train_step(run: FinetuneRun, state: TrainState) -> float:
    """One optimizer step over batch_size conversations (in grad_accum micro-batches)."""
    cfg = run.cfg
    lr = lr_at(state.step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    micro = cfg.batch_size // cfg.grad_accum
    loss_sum, tokens = 0.0, 0
    for _ in range(cfg.grad_accum):
        rows = torch.randint(len(run.data.ids), (micro,), generator=run.batch_gen).tolist()
        x, y = make_batch(run.data, rows)
        with autocast(run.dtype):
            loss = loss_fn(run.model, x, y) / cfg.grad_accum      # mean over the learned targets only
        loss.backward()
        loss_sum += loss.item()
        tokens += x.numel()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], cfg.grad_clip)
    with interrupts_deferred(state):  # a Ctrl-C here would leave half the weights updated
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.tokens += tokens
        state.lr = lr
    return loss_sum


def save_checkpoint(run: FinetuneRun, state: TrainState, rng: dict | None = None) -> None:
    meta = {"step": state.step, "tokens": state.tokens, "elapsed": state.elapsed(), "best_val": state.best_val,
            "best_step": state.best_step, "config": run.cfg.to_dict(), "dtype": run.dtype,
            "finetune": {**run.fcfg.to_dict(), "train": run.cfg.to_dict()}, "finetune_meta": run.meta}
    save_training_state(run.checkpoint_path, run.model, run.optimizer, rng or run.rng_states(), meta)
    if state.best_step is None:
        save_model(run)


def maybe_evaluate(run: FinetuneRun, state: TrainState, force: bool) -> dict | None:
    if run.held_out is None or not (force or state.step % run.cfg.eval_interval == 0):
        return None
    val = reply_loss(run.model, run.held_out.head(run.cfg.eval_batches * 32))   # the same examples every time
    if not math.isfinite(val):
        raise FloatingPointError(f"held-out loss became {val} at step {state.step}: the learning rate "
                                 f"({state.lr:.2g}) is probably too high")
    row = {"step": state.step, "val_loss": round(val, 5), "elapsed": round(state.elapsed(), 2)}
    run.log(row)
    if run.cfg.keep_best and (state.best_val is None or row["val_loss"] < state.best_val):
        state.best_val, state.best_step = row["val_loss"], state.step
        save_model(run)
    return row


def finetune(fcfg: FinetuneConfig, loaded, train_file: str | Path, out_dir: str | Path, *,
             held_out_file: str | Path | None = None, resume: bool = False, progress: bool = True,
             time_limit: float | None = None, measure_before: bool = True) -> dict:
    """Fine-tune `loaded` (a registry.LoadedModel) on the conversations in train_file; write the
    result to out_dir as a model folder (adapters merged). Returns the summary the card records.

    With a held-out file, the reply loss is evaluated every eval_interval steps (the saved model is
    the best one when keep_best), and exact match is measured on up to eval_limit held-out examples
    before (measure_before) and after training."""
    out = Path(out_dir)
    if not resume and (out / "checkpoint.safetensors").exists():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or --out for a new folder")
    run, state = start_or_resume(fcfg, loaded, Path(train_file), Path(held_out_file) if held_out_file else None,
                                 out, resume)
    held_examples = read_examples(held_out_file)[:fcfg.eval_limit] if held_out_file else []
    if measure_before and held_examples and "before" not in run.meta:
        run.meta["before"] = {k: v for k, v in evaluate(loaded.model, run.tokenizer, held_examples, run.fmt).items()
                              if k != "samples"}
        print(f"before: exact match {run.meta['before']['exact_match']:.1%}, format followed "
              f"{run.meta['before']['format_ok']:.1%} on {run.meta['before']['n']} held-out examples", file=sys.stderr)
    trainable = trainable_parameters(run.model)
    what = f"LoRA rank {fcfg.lora_rank}" if fcfg.lora_rank else "every weight"
    print(f"{'resuming at step ' + str(state.step) if state.step else 'fine-tuning'} {loaded.name}: {what}, "
          f"{trainable:,} trainable parameters of {sum(p.numel() for p in run.model.parameters()):,}; "
          f"{len(run.data.ids)} conversations ({run.data.dropped} longer than the context left out), "
          f"loss on {fcfg.loss_on} tokens, {run.dtype} matrix multiplies", file=sys.stderr)
    run.log({"step": state.step, "trainable_parameters": trainable, "dtype": run.dtype, "loss_on": fcfg.loss_on,
             "lora_rank": fcfg.lora_rank, "threads": torch.get_num_threads()})
    state.started = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=run.cfg.max_steps, initial=state.step, unit="step", dynamic_ncols=True, file=sys.stderr)
    budget = run.cfg.time_budget is not None
    step_times: list[float] = []
    last_fit = (state.step, state.elapsed())
    rng_at_step_start = None
    try:
        while state.step < run.cfg.max_steps:
            rng_at_step_start, started = run.rng_states(), time.perf_counter()
            loss = train_step(run, state)
            rng_at_step_start = None
            if state.interrupted:
                raise KeyboardInterrupt
            loss, out_of_time = agree_to_stop(run, state, loss, time_limit)
            if budget and BUDGET_CALIBRATION_STEPS[0] < state.step <= BUDGET_CALIBRATION_STEPS[1]:
                step_times.append(time.perf_counter() - started)
            if budget and state.step == BUDGET_CALIBRATION_STEPS[1] and step_times:
                fit_to_budget(run, state, sorted(step_times)[len(step_times) // 2])
                last_fit = (state.step, state.elapsed())
            elif budget and state.step % run.cfg.eval_interval == 0 and state.step > last_fit[0] >= BUDGET_CALIBRATION_STEPS[1]:
                fit_to_budget(run, state, (state.elapsed() - last_fit[1]) / (state.step - last_fit[0]))
                last_fit = (state.step, state.elapsed())
            last = out_of_time or state.step >= run.cfg.max_steps
            if state.step % run.cfg.log_interval == 0 or last:
                run.log({"step": state.step, "train_loss": round(loss, 5), "lr": state.lr,
                         "elapsed": round(state.elapsed(), 2)})
            if bar is not None:
                bar.total = run.cfg.max_steps
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            maybe_evaluate(run, state, force=last)
            if state.step % run.cfg.checkpoint_interval == 0 or last:
                save_checkpoint(run, state)
            if out_of_time:
                break
    except FloatingPointError as exc:
        run.log({"step": state.step, "error": str(exc)})
        raise
    except KeyboardInterrupt:
        save_checkpoint(run, state, rng_at_step_start)
        print(f"interrupted at step {state.step}; checkpoint saved in {run.checkpoint_path}; continue with --resume",
              file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    return finish(run, state, held_examples)


def finish(run: FinetuneRun, state: TrainState, held_examples: list[Example]) -> dict:
    """Reload the best weights, measure exact match on the held-out examples, write the card."""
    from glassformer.checkpoint import load_model_folder

    model, _, _ = load_model_folder(run.out)   # what was saved (the best evaluation, adapters merged)
    summary = {"steps": state.step, "wall_time_s": round(state.elapsed(), 1), "best_step": state.best_step,
               "best_val_reply_loss": state.best_val,
               "trainable_parameters": trainable_parameters(run.model), "loss_on": run.fcfg.loss_on,
               "lora_rank": run.fcfg.lora_rank}
    if held_examples:
        after = evaluate(model, run.tokenizer, held_examples, run.fmt)
        summary["after"] = {k: v for k, v in after.items() if k != "samples"}
        summary["samples"] = after["samples"]
    if "before" in run.meta:
        summary["before"] = run.meta["before"]
    card = {"name": run.out.name, "kind": "finetuned", "base_model": run.meta["base"], "chat_format": run.fmt.name,
            "data": run.meta["data"], "data_sha256": run.meta["data_sha256"], "held_out": run.meta["held_out"],
            "held_out_sha256": run.meta["held_out_sha256"], "conversations": len(run.data.ids),
            "left_out_too_long": run.data.dropped, "recipe": {**run.fcfg.to_dict(), "train": run.cfg.to_dict()},
            "dtype_used": run.dtype, "cpu": cpu_capability().summary, "threads": torch.get_num_threads(), **summary,
            "exact_match_note": "greedy reply cut at the format's end marker, compared character for character "
                                "with the expected answer; fp32"}
    save_model_folder(model, run.tokenizer, run.out, card=card)
    run.log({"step": state.step, **{k: v for k, v in summary.items() if k != "samples"}})
    return summary


# --- command line (`glassformer finetune`) ------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="base", default="course",
                        help="the model to fine-tune: course (default), gpt2, qwen3-0.6b, or a model folder")
    parser.add_argument("--data", default="instructions",
                        help="JSONL of {prompt, response} or {messages}; a folder with train.jsonl and test.jsonl; "
                             "or 'instructions' (the shipped Shakespeare instruction set, the default)")
    parser.add_argument("--eval-data", default=None, help="held-out JSONL (default: the folder's test.jsonl)")
    parser.add_argument("--out", default="runs/finetune", help="output folder (default runs/finetune)")
    parser.add_argument("--loss-on", choices=get_args(LossOn), default="response",
                        help="tokens the loss is taken on: the replies only (default) or all")
    parser.add_argument("--lora", type=int, default=None, metavar="RANK",
                        help="train low-rank adapters of this rank instead of every weight (merged on export)")
    parser.add_argument("--lora-alpha", type=float, default=None, help="adapter scale alpha / rank (default alpha = rank)")
    parser.add_argument("--lora-targets", default=",".join(TARGETS),
                        help=f"comma-separated linear layers that get adapters (of {', '.join(TARGETS)})")
    parser.add_argument("--eval-limit", type=int, default=200, help="held-out examples scored for exact match")
    parser.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    parser.add_argument("--time-limit", type=float, default=None, help="stop cleanly after this many seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, kind in [("max_steps", int), ("time_budget", float), ("batch_size", int), ("grad_accum", int),
                       ("lr", float), ("min_lr", float), ("warmup_steps", int), ("weight_decay", float),
                       ("grad_clip", float), ("eval_interval", int), ("checkpoint_interval", int),
                       ("log_interval", int), ("seed", int)]:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None)
    parser.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default=None)
    parser.add_argument("--optimizer", choices=("adamw", "muon"), default=None)


TRAIN_FLAGS = ("max_steps", "time_budget", "batch_size", "grad_accum", "lr", "min_lr", "warmup_steps", "weight_decay",
               "grad_clip", "eval_interval", "checkpoint_interval", "log_interval", "seed", "dtype", "optimizer")


def run(args: argparse.Namespace) -> int:
    from glassformer.registry import load_model

    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if args.time_budget is not None and args.max_steps is None:
        overrides["max_steps"] = 1_000_000   # the budget sets the step count
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    train_file, held_out = resolve_data(args.data, args.eval_data)
    loaded = load_model(args.base)
    fcfg = FinetuneConfig(default_train_config(loaded.model.config, **overrides), loss_on=args.loss_on,
                          lora_rank=args.lora, lora_alpha=args.lora_alpha, lora_targets=targets,
                          eval_limit=args.eval_limit)
    try:
        summary = finetune(fcfg, loaded, train_file, args.out, held_out_file=held_out, resume=args.resume,
                           progress=not args.no_progress, time_limit=args.time_limit)
    except KeyboardInterrupt:
        return 130
    except FloatingPointError as exc:
        print(f"glassformer finetune: stopped: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glassformer.finetune", description="Fine-tune a model to chat.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return report_user_errors("finetune", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
