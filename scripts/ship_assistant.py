"""Fine-tune the course model into chapter 13's assistants and ship them into src/glassformer/assets/assistant/.

    .venv/bin/python scripts/ship_assistant.py          # about 15 minutes on one core

Every run starts from the shipped course model, trains on the shipped instruction set
(assets/instructions: first word, last word, is it a question) for the same number of steps with the
same recipe (finetune.default_train_config, fp32, seed 0), and is scored on all 300 held-out examples:

    sft              every weight, loss on the reply tokens only (the default)      shipped (fp16)
    sft-all-tokens   every weight, loss on every token, as pre-training does        shipped (fp16)
    lora-r<R>        LoRA adapters of rank R on every linear layer, reply loss       card only; r8 shipped
                     (adapters merged into the weights, fp16)
    dpo              `sft` after a DPO step on last-word preference pairs            shipped (fp16)

card.json holds the table the chapter shows (exact match and format compliance before and after,
per task, trainable parameters, wall time, CPU) and the DPO step's history (reward margin, preference
accuracy, KL to the reference). The shipped folders are re-scored on their stored fp16 weights.

    --steps N        steps per run (default 600)
    --only NAME ...  redo these runs and keep the others' entries in the card
    --rescore        train nothing: score the shipped folders again (after_fp16, per example)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from glassformer import dpo as dpo_lib
from glassformer.checkpoint import load_model_folder, save_model_folder
from glassformer.finetune import (INSTRUCTIONS_DIR, FinetuneConfig, chat_format, default_train_config, evaluate,
                                  finetune, read_examples)
from glassformer.machine import facts
from glassformer.registry import ASSISTANT_DIR, load_model

SEED, STEPS, THREADS = 0, 600, 1
LORA_RANKS = (1, 2, 4, 8, 16, 32)
RUNS = {"sft": {"loss_on": "response"}, "sft-all-tokens": {"loss_on": "all"},
        **{f"lora-r{r}": {"loss_on": "response", "lora_rank": r} for r in LORA_RANKS}}
SHIPPED = ("sft", "sft-all-tokens", "lora-r8")
DPO = {"steps": 150, "beta": 0.1, "lr": 1e-4, "batch_size": 16, "eval_interval": 10, "seed": SEED}


def scores(result: dict) -> dict:
    """What the card keeps of an `evaluate` result (no samples)."""
    return {k: v for k, v in result.items() if k != "samples"}


def run_one(name: str, steps: int, work: Path) -> dict:
    base = load_model("course")
    options = RUNS[name]
    fcfg = FinetuneConfig(default_train_config(base.model.config, max_steps=steps, seed=SEED, dtype="fp32"),
                          eval_limit=None, **options)
    started = time.perf_counter()
    summary = finetune(fcfg, base, INSTRUCTIONS_DIR / "train.jsonl", work / name,
                       held_out_file=INSTRUCTIONS_DIR / "test.jsonl", measure_before=False, progress=True)
    summary["seconds_with_scoring"] = round(time.perf_counter() - started, 1)
    summary.pop("before", None)
    return summary


def rescore(name: str, held_out) -> dict:
    """Exactly the stored fp16 weights of a shipped folder, scored on every held-out example, with each
    example's verdict (tests re-score the first few and compare)."""
    shipped, tokenizer, _ = load_model_folder(ASSISTANT_DIR / name)
    return scores(evaluate(shipped, tokenizer, held_out, per_example=True))


def ship(name: str, work: Path, held_out) -> dict:
    """Store a run's model in fp16 and score exactly the stored weights."""
    model, tokenizer, card = load_model_folder(work / name)
    dest = ASSISTANT_DIR / name
    save_model_folder(model, tokenizer, dest, dtype=torch.float16)
    shipped, _, _ = load_model_folder(dest)
    after = rescore(name, held_out)
    card = {**card, "name": name, "stored_dtype": "float16", "after_fp32": card.get("after"), "after": after}
    save_model_folder(shipped, tokenizer, dest, card=card, dtype=torch.float16)
    return after


def run_dpo(held_out) -> dict:
    """The preference step on the shipped sft model: right last word (chosen) over another word of the line."""
    model, tokenizer, card = load_model_folder(ASSISTANT_DIR / "sft")
    fmt = chat_format(tokenizer)
    train_pairs = dpo_lib.read_pairs(INSTRUCTIONS_DIR / "preferences_train.jsonl")
    test_pairs = dpo_lib.read_pairs(INSTRUCTIONS_DIR / "preferences_test.jsonl")
    last_word = [ex for ex in held_out if ex.task == "last_word"]
    before = scores(evaluate(model, tokenizer, last_word, fmt))
    started = time.perf_counter()
    policy, rows = dpo_lib.dpo(model, tokenizer, train_pairs, test_pairs, fmt=fmt, **DPO,
                               on_row=lambda r: print(json.dumps(r), flush=True))
    seconds = time.perf_counter() - started
    dest = ASSISTANT_DIR / "dpo"
    save_model_folder(policy, tokenizer, dest, dtype=torch.float16)
    shipped, _, _ = load_model_folder(dest)
    after_last = scores(evaluate(shipped, tokenizer, last_word, fmt))
    after_all = scores(evaluate(shipped, tokenizer, held_out, fmt))
    result = {"recipe": DPO, "pairs": {"train": len(train_pairs), "held_out": len(test_pairs)},
              "seconds": round(seconds, 1), "history": rows, "last_word_before": before,
              "last_word_after": after_last, "all_tasks_after": after_all}
    save_model_folder(shipped, tokenizer, dest, dtype=torch.float16,
                      card={**card, "name": "dpo", "kind": "dpo", "base_model": "assistant/sft", "dpo": result,
                            "after": after_all})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--only", nargs="+", choices=[*RUNS, "dpo"], default=None)
    parser.add_argument("--rescore", action="store_true")
    args = parser.parse_args()
    if args.rescore:
        card_path = ASSISTANT_DIR / "card.json"
        card, held_out = json.loads(card_path.read_text()), read_examples(INSTRUCTIONS_DIR / "test.jsonl")
        for name in SHIPPED:
            card["runs"][name]["after_fp16"] = rescore(name, held_out)
        card["dpo"]["all_tasks_after"] = rescore("dpo", held_out)
        card_path.write_text(json.dumps(card, indent=2))
        return
    torch.set_num_threads(THREADS)
    card_path = ASSISTANT_DIR / "card.json"
    card = json.loads(card_path.read_text()) if args.only and card_path.exists() else {}
    todo = args.only or [*RUNS, "dpo"]
    held_out = read_examples(INSTRUCTIONS_DIR / "test.jsonl")
    ASSISTANT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if "base" not in card or not args.only:
        base = load_model("course")
        card["base"] = scores(evaluate(base.model, base.tokenizer, held_out))
        print(f"base model: exact match {card['base']['exact_match']:.1%}", flush=True)
    runs = card.setdefault("runs", {})

    def save() -> None:   # after every run: a crash later keeps what was measured
        card.update({"made_by": "scripts/ship_assistant.py", "base_model": "course", "data": "assets/instructions",
                     "held_out_examples": len(held_out), "steps": args.steps, "seed": SEED, "threads": THREADS,
                     "dtype": "fp32", "cpu": facts().describe(), "lora_ranks": list(LORA_RANKS),
                     "shipped": [*SHIPPED, "dpo"],
                     "partial_run_seconds" if args.only else "script_seconds": round(time.perf_counter() - started, 1)})
        card_path.write_text(json.dumps(card, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in todo if n in RUNS]:
            runs[name] = run_one(name, args.steps, Path(tmp))
            if name in SHIPPED:
                runs[name]["after_fp16"] = ship(name, Path(tmp), held_out)
            print(f"{name}: exact match {runs[name]['after']['exact_match']:.1%} after {runs[name]['steps']} steps, "
                  f"{runs[name]['trainable_parameters']:,} trainable parameters", flush=True)
            save()
    if "dpo" in todo:
        card["dpo"] = run_dpo(held_out)
    save()
    print(f"wrote {card_path} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
