"""Train the chapter-7 encoder–decoder to reverse strings and ship it into the package.

    .venv/bin/python scripts/ship_reverser.py            # ~1 minute on one CPU core

Reproducible: fixed seed, fixed step count, one thread. Writes fp16 model.safetensors, config.json
and card.json (recipe + held-out exact-match accuracy measured on the stored fp16 weights) to
src/glassformer/assets/reverser/.
"""

import json
import time

import torch

from glassformer.toys import reverser

SEED, STEPS, BATCH, LR = 0, 1500, 64, 3e-3
EVAL_SEED, EVAL_N = 2024, 2000

if __name__ == "__main__":
    torch.set_num_threads(1)  # same arithmetic order on every machine
    config = reverser.default_config()
    losses: list[float] = []
    started = time.time()
    model = reverser.train_reverser(config, STEPS, SEED, batch_size=BATCH, lr=LR,
                                    on_step=lambda step, loss: losses.append(loss))
    seconds = time.time() - started
    reverser.save_reverser(model, reverser.ASSET_DIR, {})
    reverser.load_reverser.cache_clear()
    shipped, _ = reverser.load_reverser()
    acc, misses = reverser.accuracy(shipped, reverser.random_words(EVAL_N, EVAL_SEED))
    card = {
        "task": f"reverse a string of {reverser.MIN_LEN}-{reverser.MAX_LEN} lowercase letters a-z",
        "recipe": {"script": "scripts/ship_reverser.py", "seed": SEED, "steps": STEPS, "batch_size": BATCH,
                   "lr": LR, "optimizer": "AdamW (betas 0.9, 0.98; weight decay 0.01), 5% warmup, cosine decay",
                   "data": "fresh random strings every step, one length per batch; strings with "
                           "crc32 % 10 == 0 are held out (never trained on)"},
        "config": config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_train_loss": round(sum(losses[-50:]) / 50, 5),
        "train_seconds_measured": round(seconds, 1),
        "held_out_eval": {"seed": EVAL_SEED, "strings": EVAL_N, "exact_match": round(acc, 4),
                          "weights": "the stored fp16 weights, run in fp32"},
        "dtype": "float16",
    }
    (reverser.ASSET_DIR / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
