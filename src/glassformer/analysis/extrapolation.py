"""Loss versus sequence length: how each way of giving a model positions copes with texts
longer than the ones it was trained on.

The package ships five tiny character-level models (assets/positions/<scheme>/, made by
scripts/ship_position_models.py) that differ only in their position scheme and were all
trained on windows of 64 characters. `loss_by_length` measures each one on the same
validation characters cut into windows of 32, 64, 128 and 256 characters:

    windows (N, 257) of the validation split, evenly spaced
    length L: each window -> 256 / L pieces of L inputs and L targets
    loss(L) = mean cross-entropy over the same N * 256 target characters, whatever L

So every length predicts exactly the same characters; what changes is how much text comes
before each one, and which positions the model has to handle (up to L - 1).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.model.config import POSITIONS
from glassformer.threads import one_thread

POSITION_MODELS_DIR = Path(__file__).parents[1] / "assets" / "positions"
SCHEMES: tuple[str, ...] = POSITIONS          # learned, sinusoidal, rope, alibi, none
TRAINED_LENGTH = 64                           # the window length every shipped model was trained on
LENGTHS = (32, 64, 128, 256)                  # the lengths the course measures
SPAN = max(LENGTHS)                           # characters predicted per evaluation window


def eval_windows(ids: torch.Tensor, n_windows: int, span: int = SPAN) -> torch.Tensor:
    """n_windows windows of span + 1 ids, evenly spaced over `ids` (no randomness): (N, span + 1).

        >>> eval_windows(torch.arange(10), 2, span=3)
        tensor([[0, 1, 2, 3],
                [6, 7, 8, 9]])
    """
    if len(ids) < span + 1:
        raise ValueError(f"{len(ids)} ids are too few for a window of {span + 1}")
    starts = torch.linspace(0, len(ids) - span - 1, n_windows).round().long()      # (N,)
    return torch.stack([ids[s:s + span + 1] for s in starts.tolist()])            # (N, span + 1)


@torch.no_grad()
def loss_at_length(model, windows: torch.Tensor, length: int) -> float:
    """Mean next-token loss (nats) over every target of `windows` (N, span + 1), read `length` at a time.

    Each window's span targets are cut into span / length consecutive pieces; every piece is a
    separate forward pass starting at position 0, so the model sees positions 0..length-1."""
    span = windows.shape[1] - 1
    if span % length:
        raise ValueError(f"length {length} does not divide the window span {span}")
    x = windows[:, :-1].reshape(-1, length)                                    # (N * span / L, L)
    y = windows[:, 1:].reshape(-1, length)                                     # (N * span / L, L)
    was_training = model.training
    model.eval()
    logits = model(x).float()                                                  # (N * span / L, L, V)
    model.train(was_training)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()


def loss_by_length(model, windows: torch.Tensor, lengths=LENGTHS) -> dict[int, float]:
    """{length: loss_at_length(model, windows, length)} for each length."""
    return {length: loss_at_length(model, windows, length) for length in lengths}


def extend_learned_positions(model, n_ctx: int, seed: int = 0):
    """A copy of `model` (learned positions) whose table has n_ctx rows: the trained rows, then
    new rows drawn like a fresh table's, N(0, 0.02), from `seed`. The new rows were never trained:
    this only makes the model *runnable* past its training length, so that it can be measured there."""
    from glassformer.model import build_model

    old = model.embed.positions.weight.detach()                                 # (T_train, D)
    if n_ctx < old.shape[0]:
        raise ValueError(f"cannot shrink the table from {old.shape[0]} to {n_ctx} rows")
    bigger = build_model(model.config.replace(n_ctx=n_ctx))
    state = {k: v for k, v in model.state_dict().items()}
    fresh = torch.randn(n_ctx - old.shape[0], old.shape[1], generator=torch.Generator().manual_seed(seed)) * 0.02
    state["embed.positions.weight"] = torch.cat([old, fresh])                   # (n_ctx, D)
    bigger.load_state_dict(state)
    return bigger.eval()


@lru_cache(maxsize=len(SCHEMES))
def load_position_model(scheme: str):
    """(model, tokenizer, card) of the shipped model that uses position scheme `scheme`."""
    from glassformer.checkpoint import load_model_folder

    if scheme not in SCHEMES:
        raise ValueError(f"no position model {scheme!r}; choose one of {SCHEMES}")
    folder = POSITION_MODELS_DIR / scheme
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{folder} is missing: run scripts/ship_position_models.py")
    return load_model_folder(folder)


@lru_cache(maxsize=4)
def validation_windows(n_windows: int) -> torch.Tensor:
    """Evenly spaced windows of the TinyShakespeare validation split, in the shipped models' ids."""
    from glassformer.data import load_text, train_val_split
    from glassformer.tokenizers.char import CharTokenizer

    text, _ = load_text()
    tokenizer = CharTokenizer.train(text)  # the shipped models' tokenizer: built the same way by train()
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    return eval_windows(train_val_split(ids)[1], n_windows)


@lru_cache(maxsize=4)
def measured_losses(n_windows: int = 16) -> dict[str, dict[int, float]]:
    """{scheme: {length: loss}} for every shipped position model, measured now on n_windows windows.

    On one thread (glassformer/threads.py): these matrices are tiny, and on a busy 2-core machine a
    second thread made the same measurement 9x slower (20.5 s against 2.2 s), not faster."""
    windows = validation_windows(n_windows)
    with one_thread():
        return {scheme: loss_by_length(load_position_model(scheme)[0], windows) for scheme in SCHEMES}
