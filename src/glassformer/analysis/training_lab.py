"""Small, fast experiments that check what train.py claims, on a tiny model (chapter 9 runs them live).

- `per_position_loss`: the loss of one text, position by position: -log p(the token that really
  came next). Its mean is exactly what `train.loss_fn` returns for that text.
- `accumulation_gap`: one optimizer step on a batch of B sequences vs the same B sequences fed as
  k micro-batches of B/k with gradient accumulation, both by `train.train_step` itself.
- `resume_gap`: N steps in one go vs N/2 steps, a checkpoint, a fresh process state, --resume,
  and N/2 more, both by `train.train` itself.

Each returns the largest absolute difference it finds, so a page (or a test) can print it.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.checkpoint import read_training_meta
from glassformer.data import tinyshakespeare_bytes
from glassformer.model import DecoderLM, build_model, preset
from glassformer.optim import make_optimizer
from glassformer.threads import one_thread  # tiny models: one thread is faster, far faster on a busy machine
from glassformer.tokenizers.char import CharTokenizer
from glassformer.train import Run, TrainConfig, TrainState, train, train_step


def per_position_loss(model: DecoderLM, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, p): for each of the T - 1 positions that have a next token, the probability the model
    gave to the token that really came next, and loss = -ln(p). Shapes (T - 1,), fp32.

    One forward pass over T tokens scores all T - 1 predictions at once (teacher forcing: position
    t sees the real tokens 0..t, never the model's own guesses).

        >>> model = build_model(preset("tiny")).eval()
        >>> loss, p = per_position_loss(model, [1, 2, 3, 4])
        >>> loss.shape, bool(torch.allclose(loss, -p.log()))
        (torch.Size([3]), True)
    """
    x = torch.tensor([ids[:-1]])                    # (1, T-1) inputs
    y = torch.tensor(ids[1:])                       # (T-1,)   targets: the inputs shifted by one
    with torch.no_grad():
        logits = model(x)[0].float()                # (T-1, V)
    loss = F.cross_entropy(logits, y, reduction="none")   # (T-1,) -log softmax(logits)[target]
    return loss, torch.exp(-loss)


def _tiny_run(cfg: TrainConfig, data: torch.Tensor) -> Run:
    """A Run (the object train_step works on) around a fresh tiny model, fp32, no files."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).train()
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    gen = torch.Generator().manual_seed(cfg.seed)
    return Run(cfg=cfg, dtype="fp32", model=model, net=model, optimizer=optimizer, tokenizer=None,
               train_ids=data, val_ids=data, batch_gen=gen, out=Path("."), data_sha="", corpus="")


def tiny_config(**changes) -> TrainConfig:
    """A model of a few thousand parameters: steps take milliseconds."""
    model = preset("tiny", n_ctx=32, d_model=32, n_layers=2, n_heads=2, dropout=0.0)
    return dataclasses.replace(TrainConfig(model=model, batch_size=16, max_steps=20, lr=3e-3, warmup_steps=2,
                                           dtype="fp32", seed=7), **changes)


def _corpus_ids(n: int = 20_000) -> torch.Tensor:
    """The first n characters of TinyShakespeare as ids (fewer than the tiny model's 65 characters)."""
    text = tinyshakespeare_bytes()[:n].decode("utf-8", errors="ignore")
    return torch.tensor(CharTokenizer.train(text).encode(text))


@functools.lru_cache(maxsize=8)
def accumulation_gap(batch_size: int = 16, micro_batches: int = 4, steps: int = 3) -> dict:
    """Train `steps` steps twice from the same start on the same sequences: batch_size at once, and
    batch_size in `micro_batches` micro-batches whose gradients add up (grad_accum).

    Returns {"max_abs_diff": largest |difference| of any weight after the steps, "losses": the two
    loss curves, "n_params": ...}. Only floating-point rounding separates them (~1e-9 .. 1e-7): the mean
    of k micro-batch means of equal size is the mean of the whole batch."""
    data = _corpus_ids()
    runs = []
    for accum in (1, micro_batches):
        run = _tiny_run(tiny_config(batch_size=batch_size, grad_accum=accum), data)
        state = TrainState()
        with one_thread():
            losses = [train_step(run, state) for _ in range(steps)]
        runs.append((run.model, losses))
    (a, la), (b, lb) = runs
    diff = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
    return {"max_abs_diff": diff, "losses": (la, lb), "n_params": a.num_params(),
            "same_batches": _same_windows(data, batch_size, micro_batches)}


def _same_windows(data: torch.Tensor, batch_size: int, micro_batches: int) -> bool:
    """Do k draws of batch_size/k windows pick the same windows as one draw of batch_size? (They must,
    or the comparison above would compare different data.)"""
    from glassformer.data import random_batch

    T = tiny_config().model.n_ctx
    whole, _ = random_batch(data, batch_size, T, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    parts = [random_batch(data, batch_size // micro_batches, T, gen)[0] for _ in range(micro_batches)]
    return torch.equal(whole, torch.cat(parts))


@functools.lru_cache(maxsize=4)
def resume_gap(steps: int = 20) -> dict:
    """Train a tiny model `steps` steps straight, and again with a stop (Ctrl-C) after steps // 2, the
    checkpoint train.py writes when stopped, and --resume for the rest. Returns {"max_abs_diff": largest
    |difference| of any final weight, "losses_equal": the logged training losses are identical,
    "stopped_at": the step of that checkpoint, as train.py wrote it, ...}.

    The run's regular checkpoints come only at its end, so the one resumed from is the one the stop
    itself saved: without it there would be nothing to resume."""
    half = steps // 2
    cfg = tiny_config(max_steps=steps, eval_interval=half, checkpoint_interval=steps, log_interval=1,
                      eval_batches=1, sample_tokens=8, keep_best=False)
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_bytes(tinyshakespeare_bytes()[:20_000])
        straight, broken = Path(tmp) / "straight", Path(tmp) / "broken"
        train(cfg, straight, corpus=corpus, progress=False)

        def stop_at_half(row):
            if row["step"] == half:
                raise KeyboardInterrupt  # what Ctrl-C (or the page's Stop button: SIGINT) does

        try:
            train(cfg, broken, corpus=corpus, progress=False, on_eval=stop_at_half)
        except KeyboardInterrupt:
            pass
        stopped_at = read_training_meta(broken / "checkpoint.safetensors")["step"]
        train(cfg, broken, corpus=corpus, progress=False, resume=True)
        from safetensors.torch import load_file

        a, b = load_file(str(straight / "model.safetensors")), load_file(str(broken / "model.safetensors"))
        losses = [[(r["step"], r["train_loss"]) for r in _rows(f) if "train_loss" in r] for f in (straight, broken)]
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    return {"max_abs_diff": diff, "losses_equal": losses[0] == losses[1], "stopped_at": stopped_at, "steps": steps,
            "tensors": len(a)}


def _rows(folder: Path) -> list[dict]:
    from glassformer.train import read_metrics

    return read_metrics(folder / "metrics.jsonl")
