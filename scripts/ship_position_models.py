"""Train the five position-scheme models chapter 3 compares, and ship them in the package.

    python scripts/ship_position_models.py [--steps 1000] [--only rope alibi] [--work DIR]

Five tiny character-level models on TinyShakespeare, identical in every setting (size, data,
seed, batch order, step count, optimizer, fp32) except ModelConfig.position: learned,
sinusoidal, rope, alibi, none. Each is trained by the library's own loop (glassformer.train)
on windows of 64 characters, then stored as fp16 safetensors under
src/glassformer/assets/positions/<scheme>/ with a card.json holding the recipe and the
losses measured on the stored weights at lengths 32, 64, 128 and 256
(glassformer.analysis.extrapolation.loss_by_length, the function the chapter runs).

Learned positions have one trained row per position, 64 rows here, so such a model cannot even
be run on 65 characters. To measure it past 64 anyway, the shipped table gets rows 64..255 drawn
like a fresh table's (normal, std 0.02, fixed seed) and never trained
(glassformer.analysis.extrapolation.extend_learned_positions); the card says so. The other schemes need
nothing: sinusoidal, RoPE and ALiBi compute their positions from a formula for any length, and
"none" has no positions at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from glassformer.checkpoint import load_model_folder, save_model_folder
from glassformer.analysis.extrapolation import (LENGTHS, POSITION_MODELS_DIR, SCHEMES, SPAN, TRAINED_LENGTH,
                                       extend_learned_positions, loss_by_length, validation_windows)
from glassformer.train import train, train_preset

CARD_WINDOWS = 16  # evaluation windows of SPAN + 1 characters the card's losses use (the chapter's default)


def recipe(scheme: str, steps: int):
    """The one training recipe, with only the position scheme varying."""
    return train_preset("tiny", position=scheme, n_ctx=TRAINED_LENGTH, d_model=64, n_layers=2, n_heads=4,
                        batch_size=32, max_steps=steps, time_budget=None, lr=2e-3, min_lr=1e-4, warmup_steps=50,
                        dtype="fp32", compile=False, eval_interval=steps, eval_batches=20,
                        checkpoint_interval=steps, sample_tokens=48, keep_best=False, seed=1337)


def ship(scheme: str, steps: int, work: Path) -> dict:
    cfg = recipe(scheme, steps)
    run_dir = work / scheme
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    summary = train(cfg, run_dir, progress=False)
    seconds = time.perf_counter() - started
    model, tokenizer, _ = load_model_folder(run_dir)
    note = None
    if scheme == "learned":
        model = extend_learned_positions(model, SPAN, seed=0)
        note = (f"rows 0..{TRAINED_LENGTH - 1} of the position table are trained; rows {TRAINED_LENGTH}..{SPAN - 1} "
                f"were added after training, drawn like a fresh table's (normal, std 0.02, seed 0), never trained")
    dest = POSITION_MODELS_DIR / scheme
    save_model_folder(model, tokenizer, dest, dtype=torch.float16)
    shipped, _, _ = load_model_folder(dest)  # measure exactly what is stored (fp16 weights, fp32 arithmetic)
    losses = loss_by_length(shipped, validation_windows(CARD_WINDOWS))
    card = {
        "name": f"positions/{scheme}", "position": scheme, "trained_length": TRAINED_LENGTH,
        "recipe": cfg.to_dict(), "script": "scripts/ship_position_models.py", "stored_dtype": "float16",
        "steps": summary["steps"], "train_seconds": round(seconds, 1),
        "final_train_loss": summary["final_train_loss"],
        "final_val_loss_at_64_fp32": summary["final_val_loss"],
        "eval": {"windows": CARD_WINDOWS, "span": SPAN, "split": "validation (last 10%)",
                 "how": "glassformer.analysis.extrapolation.loss_by_length on validation_windows(windows)"},
        "loss_by_length": {str(k): round(v, 4) for k, v in losses.items()},
        **({"learned_rows_note": note} if note else {}),
    }
    save_model_folder(shipped, tokenizer, dest, card=card, dtype=torch.float16)
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--only", choices=SCHEMES, nargs="*", default=None, help="train only these schemes")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny matrices: on a shared 2-core machine a second thread measured 30x slower, not faster
    work = args.work or Path(tempfile.mkdtemp(prefix="positions-"))
    for scheme in args.only or SCHEMES:
        card = ship(scheme, args.steps, work)
        print(json.dumps({k: card[k] for k in ("name", "steps", "train_seconds", "loss_by_length")}), flush=True)
    total = sum(f.stat().st_size for f in POSITION_MODELS_DIR.rglob("*") if f.is_file())
    print(f"{POSITION_MODELS_DIR}: {total / 1e6:.2f} MB in all; lengths {LENGTHS}")


if __name__ == "__main__":
    main()
