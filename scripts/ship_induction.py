"""Train and ship chapter 12's models into src/glassformer/assets/induction/.

    .venv/bin/python scripts/ship_induction.py          # a few minutes on one CPU core

1. The two-layer attention-only induction model (glassformer/toys/induction.py, seed 0, fixed step
   count, one thread): fp16 model folder (loadable with registry.load_model("induction")), its
   training history (history.json: losses on the probe's two halves and every head's scores every
   25 steps), and card.json with the recipe and what was measured on the stored fp16 weights, on
   evaluation sequences the probe and the training never used: the best head's induction score,
   the repeat's loss with that head switched off, the composition test, the in-context score; and
   three shorter runs (1,200 steps) that show why the recipe is what it is: as shipped, with learned
   positions instead of ALiBi, and with the library's default start for the q/k/v weights.
2. A ladder of four small character models of TinyShakespeare (`glassformer.train`, one recipe,
   only the width and depth change) in ladder/<name>/, fp16, for the page's question about
   emergent abilities. With chapter 10's draft model and the course model above them they span
   three orders of magnitude of training compute; the card records every rung's loss and
   continuation scores, and the page recomputes them.

    --only induction | ladder   redo one part and keep the other's entry in the card
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from glassformer.analysis import emergence, induction
from glassformer.toys import induction as toy
from glassformer.train import export_model, train, train_preset

SEED, STEPS = 0, 2000
EVAL_PERIOD, EVAL_BATCH, EVAL_SEED = 32, 64, 2024       # evaluation: 64 random 32-token sequences, repeated
LADDER = {  # name: (d_model, n_layers, n_heads); every other setting is the shared recipe below
    "d16-L1": (16, 1, 2), "d32-L1": (32, 1, 2), "d64-L2": (64, 2, 4), "d128-L2": (128, 2, 4)}
LADDER_STEPS, LADDER_SEED = 1000, 1337
COMPARISON_STEPS = 1200


def comparison(config, recipe, ids) -> dict:
    """Train a variant of the recipe and measure it on the evaluation sequences (fp32, not shipped)."""
    model, history = toy.train_induction(config, recipe)
    scores = induction.head_scores(model, ids, EVAL_PERIOD)
    first, repeat = induction.halves(induction.per_position_loss(model, ids), EVAL_PERIOD)
    change = toy.phase_change(history)
    return {"steps": recipe.steps, "best_induction_score": round(scores.induction.max().item(), 4),
            "loss_first_copy": round(first, 4), "loss_repeat": round(repeat, 4),
            "first_step_a_head_reached_0.5": change["score_step"]}


def ship_induction_model() -> dict:
    config = toy.default_config()
    recipe = toy.Recipe(seed=SEED, steps=STEPS)
    started = time.perf_counter()
    model, history = toy.train_induction(config, recipe)
    seconds = time.perf_counter() - started
    toy.save(model, toy.ASSET_DIR, {}, history)
    shipped, _, _ = toy.load(toy.ASSET_DIR)   # measure the stored fp16 weights, not the fp32 ones
    ids = induction.repeated_random(config.vocab_size, EVAL_PERIOD, EVAL_SEED, batch=EVAL_BATCH)
    scores = induction.head_scores(shipped, ids, EVAL_PERIOD)
    best = scores.best("induction")
    cut = induction.ablate(shipped, ids, EVAL_PERIOD, [best], before=scores)
    comp = induction.composition_test(shipped, ids, EVAL_PERIOD, scores)
    r = lambda x: round(x, 4)  # noqa: E731
    change = toy.phase_change(history)
    # Why the recipe is what it is: the same training, shorter, with one choice undone at a time.
    short = toy.Recipe(**{**recipe.__dict__, "steps": COMPARISON_STEPS})
    comparisons = {
        "learned positions instead of ALiBi": comparison(config.replace(position="learned"), short, ids),
        "q/k/v weights starting at N(0, 0.02)": comparison(config, toy.Recipe(**{**short.__dict__, "qkv_std": 0.02}),
                                                           ids),
        "as shipped": comparison(config, short, ids),
    }
    return {
        "task": f"{config.n_ctx} random tokens of {config.vocab_size} with one segment of "
                f"{recipe.min_segment}-{config.n_ctx // 2} tokens appearing twice",
        "recipe": {"script": "scripts/ship_induction.py", "train": recipe.__dict__,
                   "optimizer": "AdamW (betas 0.9, 0.98), weight decay on matrices only, linear warmup, "
                                "cosine decay to 10% of the peak, gradients clipped at norm 1",
                   "init": "library defaults, then q/k/v weights N(0, 1/sqrt(d_model))",
                   "threads": 1},
        "config": config.to_dict(),
        "parameters": shipped.num_params(),
        "bytes": sum(f.stat().st_size for f in toy.ASSET_DIR.iterdir() if f.is_file()),
        "train_seconds_measured": round(seconds, 1),
        "history": {"file": "history.json", "probe": {"period": toy.PROBE_PERIOD, "batch": toy.PROBE_BATCH,
                                                       "seed": toy.PROBE_SEED},
                    "first_step_repeat_loss_1_nat_below_first": change["loss_step"],
                    "first_step_best_head_reached_0.5": change["score_step"]},
        "comparisons": comparisons,
        "measured": {
            "weights": "the stored fp16 weights, run in fp32",
            "eval": {"period": EVAL_PERIOD, "batch": EVAL_BATCH, "seed": EVAL_SEED},
            "induction_scores": [[r(v) for v in row] for row in scores.induction.tolist()],
            "previous_token_scores": [[r(v) for v in row] for row in scores.previous.tolist()],
            "uniform_induction_score": r(induction.uniform_induction(2 * EVAL_PERIOD, EVAL_PERIOD)),
            "best_head": {"layer": best[0], "head": best[1], "induction_score": r(scores.induction[best].item())},
            "loss_first_copy": r(cut.loss_before[0]), "loss_repeat": r(cut.loss_before[1]),
            "in_context_score": r(cut.icl_before),
            "best_head_off": {"loss_first_copy": r(cut.loss_after[0]), "loss_repeat": r(cut.loss_after[1]),
                              "repeat_loss_rise": r(cut.repeat_loss_rise), "in_context_score": r(cut.icl_after)},
            "composition": {k: (list(v) if isinstance(v, tuple) else r(v)) for k, v in comp.__dict__.items()},
        },
        "dtype": "float16",
    }


def ship_ladder() -> dict:
    folder = emergence.LADDER_DIR
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (d, layers, heads) in LADDER.items():
            cfg = train_preset("tiny", d_model=d, n_layers=layers, n_heads=heads, n_ctx=64, max_steps=LADDER_STEPS,
                               time_budget=None, dtype="fp32", seed=LADDER_SEED, optimizer="muon", lr=3e-3,
                               eval_interval=LADDER_STEPS, checkpoint_interval=LADDER_STEPS)
            started = time.perf_counter()
            train(cfg, Path(tmp) / name, progress=False)
            card = export_model(Path(tmp) / name, folder / name)
            card["train_seconds_measured"] = round(time.perf_counter() - started, 1)
            (folder / name / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    rows = {}
    for rung in emergence.ladder():   # the four above, chapter 10's draft model and the course model
        scores = emergence.ladder_scores()[rung.name]
        rows[rung.name] = {"parameters": rung.parameters, "tokens": rung.tokens, "compute": rung.compute,
                           "val_loss": rung.card["final_val_loss"],
                           "continuations": {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v])
                                             for k, v in scores.items()}}
        print(rung.name, json.dumps(rows[rung.name]), flush=True)
    return {"recipe": {"preset": "tiny", "steps": LADDER_STEPS, "seed": LADDER_SEED, "n_ctx": 64, "dtype": "fp32",
                       "optimizer": "muon", "lr": 3e-3, "changes": "d_model, n_layers, n_heads only"},
            "continuations": emergence.CONTINUATIONS, "models": rows}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["induction", "ladder"], help="redo one part, keep the other's card entry")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same arithmetic order on every machine; the card's time is one core's
    old = json.loads((toy.ASSET_DIR / "card.json").read_text()) if (toy.ASSET_DIR / "card.json").exists() else {}
    if args.only == "ladder":
        card = old
    else:
        card = ship_induction_model()
        print(json.dumps(card["measured"], indent=2), flush=True)
    card["ladder"] = ship_ladder() if args.only != "induction" else old["ladder"]
    for _ in range(2):  # the second pass counts the card itself at its final size
        card["bytes_total"] = sum(f.stat().st_size for f in toy.ASSET_DIR.rglob("*") if f.is_file())
        (toy.ASSET_DIR / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: v for k, v in card.items() if k not in ("config", "measured")}, indent=2))
