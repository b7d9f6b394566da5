"""Train chapter 11's mixture of experts, its dense twin and the mixture without the balance loss,
and ship them in src/glassformer/assets/moe/.

    .venv/bin/python scripts/ship_moe_models.py                  # 3 x 150 s of training, ~8.5 min in all
    .venv/bin/python scripts/ship_moe_models.py --seconds 5 --threads 1 --dest /tmp/moe   # a smoke test, ~1 min

Three course-family character models of TinyShakespeare: the `course` training preset (RoPE,
RMSNorm, SwiGLU, Muon, context 256, batch 8, dropout 0.1, seed 1337), narrowed to d_model 64 with
4 layers of 4 heads so that the mixture fits in 2 MB as fp16. Only the feed-forward part differs:

    moe             8 SwiGLU experts of width 88 in every block, 2 per token, balance loss weight 0.01
    dense           one SwiGLU of width 2 x 88 = 176 in every block: the same active expert weights per
                    token (the mixture adds only its router, 64 x 8 weights per block)
    moe_no_balance  the mixture with balance_weight 0

Each is trained by the library's loop on the same wall-time budget (TrainConfig.time_budget: the
step count is fitted to the speed measured on this machine, so the faster model takes more steps),
on the same number of threads, eagerly (torch.compile handles the mixture's routing-dependent
shapes badly, and the twins are trained alike), in fp32: at this width bf16 gains the dense twin
nothing and costs the mixture its per-expert casts (one thread, AVX-512 with bf16, training steps
of 8 x 256 tokens: dense 105 ms fp32 / 110 ms bf16, mixture 125 ms fp32 / 238 ms bf16). The best
evaluated weights are stored as fp16, then measured again.

Each folder (registry.load_model("moe"), ("moe-dense"), ("moe-no-balance")) holds the weights and
card.json: the recipe, the CPU, parameters (total and active per token, with and without the
embedding table), forward FLOPs per token, steps, tokens seen, training time and tokens/s, the
machine's load average around the run, the whole-validation-split loss of the stored weights and,
for the mixtures, each layer's expert load over the validation split (analysis/experts.py) with
the busiest expert's share of the tokens. moe/card.json holds the three side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from glassformer import machine
from glassformer.analysis.experts import measure_load
from glassformer.analysis.scaling import forward_flops_per_token, parameter_counts
from glassformer.checkpoint import atomic_write_text, load_model_folder
from glassformer.data import load_text, train_val_split
from glassformer.precision import cpu_capability
from glassformer.registry import MOE_MODELS_DIR, SHIPPED
from glassformer.train import TrainConfig, export_model, train, train_preset

SEED = 1337
SHAPE = dict(d_model=64, n_layers=4, n_heads=4, d_mlp=176)   # d_mlp: the dense twin's width, 2 x the expert's
MIXTURE = dict(n_experts=8, experts_per_token=2, d_expert=88)
MODELS = {  # folder: (registry name, what differs, description)
    "moe": ("moe", dict(**MIXTURE, balance_weight=0.01),
            "8 experts of width 88 per block, 2 per token, Switch balance loss weight 0.01"),
    "dense": ("moe-dense", dict(),
              "the dense twin: one SwiGLU of width 176 per block, the mixture's active expert weights per token"),
    "moe_no_balance": ("moe-no-balance", dict(**MIXTURE, balance_weight=0.0),
                       "the mixture trained without the balance loss (balance_weight 0)"),
}
MAX_BYTES = 2_000_000


def recipe(changes: dict, seconds: float, dtype: str) -> TrainConfig:
    return train_preset("course", **SHAPE, **changes, time_budget=seconds, max_steps=100_000, compile=False,
                        dtype=dtype, seed=SEED)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def ship(folder: str, seconds: float, dtype: str, threads: int, work: Path, dest: Path) -> dict:
    name, changes, description = MODELS[folder]
    cfg = recipe(changes, seconds, dtype)
    run_dir, out = work / folder, dest / folder
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()
    started = time.perf_counter()
    summary = train(cfg, run_dir, progress=False)
    seconds_taken = time.perf_counter() - started
    load_after = os.getloadavg()
    card = export_model(run_dir, out)            # fp16; the whole-split val loss measured again on those weights
    model, tokenizer, _ = load_model_folder(out)
    counts = parameter_counts(model)
    card.update({
        "name": name, "folder": f"moe/{folder}", "description": description,
        "recipe": {"script": "scripts/ship_moe_models.py", "preset": "course", "shape": SHAPE, "changes": changes,
                   "time_budget_s": seconds, "threads": threads, "compile": False, "seed": SEED},
        "cpu_model": machine.facts().model,
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "parameters": counts.as_dict(),
        "forward_flops_per_token": forward_flops_per_token(model),
        "train_seconds_measured": round(seconds_taken, 1),        # training, evaluations and saving
        "tokens_per_s": round(summary["tokens"] / summary["wall_time_s"]),
    })
    if model.config.n_experts:
        text, _ = load_text()
        val_ids = train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long))[1]
        load = measure_load(model, val_ids)
        card["expert_load_validation"] = load.as_dict()
        card["busiest_expert_token_share"] = round(max(share for _, share in load.busiest), 4)
        card["even_token_share"] = model.config.experts_per_token / model.config.n_experts
    card["bytes"] = 0
    for _ in range(2):  # the second pass counts the card itself at its final size
        atomic_write_text(out / "card.json", json.dumps(card, indent=2) + "\n")
        card["bytes"] = folder_bytes(out)
    atomic_write_text(out / "card.json", json.dumps(card, indent=2) + "\n")
    if card["bytes"] > MAX_BYTES:
        print(f"warning: {out} holds {card['bytes']:,} bytes, more than {MAX_BYTES:,}", flush=True)
    return card


SIDE_BY_SIDE = ("name", "parameters", "forward_flops_per_token", "steps", "tokens", "tokens_per_s",
                "final_val_loss", "busiest_expert_token_share", "dtype_used", "load_average_1min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="wall-time budget of each model (default 150)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--dtype", default="fp32", choices=("auto", "bf16", "fp32"),
                        help="training precision (default fp32: see above)")
    parser.add_argument("--dest", type=Path, default=MOE_MODELS_DIR, help=f"where the folders go (default {MOE_MODELS_DIR})")
    parser.add_argument("--work", type=Path, default=None, help="where the training runs go (default: a temporary folder)")
    parser.add_argument("--only", choices=list(MODELS), nargs="*", default=None, help="train only these")
    args = parser.parse_args()
    assert all(SHIPPED[name] == MOE_MODELS_DIR / folder for folder, (name, _, _) in MODELS.items())
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="moe-") as tmp:
        for folder in args.only or MODELS:
            card = ship(folder, args.seconds, args.dtype, args.threads, args.work or Path(tmp), args.dest)
            print(json.dumps({k: card[k] for k in SIDE_BY_SIDE if k in card}), flush=True)
    cards = {folder: json.loads((args.dest / folder / "card.json").read_text()) for folder in MODELS
             if (args.dest / folder / "card.json").exists()}
    overview = {"script": "scripts/ship_moe_models.py", "cpu": cpu_capability().summary,
                "cpu_model": machine.facts().model,
                "val_loss_note": "mean cross-entropy (nats/char) over the whole validation split, fp16 weights",
                "models": {folder: {k: c[k] for k in SIDE_BY_SIDE if k in c} for folder, c in cards.items()},
                "script_seconds_this_run": round(time.perf_counter() - started, 1)}
    atomic_write_text(args.dest / "card.json", json.dumps(overview, indent=2) + "\n")
    print(f"{args.dest}: {folder_bytes(args.dest) / 1e6:.2f} MB in all; {overview['script_seconds_this_run']:.0f} s")


if __name__ == "__main__":
    main()
