"""Train and ship the draft model for speculative decoding (chapter 10): a small character model
with the course model's vocabulary and context, cheap enough that guessing with it saves time.

    python scripts/ship_draft_model.py [--steps 2000] [--out runs/draft]

Recipe (recorded in the card): the course preset with d=64, 1 layer, 4 heads, SwiGLU 172, fixed
2000 steps, seed 1337, no time budget, no compile. Weights fp16 in src/glassformer/assets/draft/.
"""

import argparse
import json

from glassformer.registry import DRAFT_MODEL_DIR
from glassformer.train import export_model, train, train_preset

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default="runs/draft")
    args = parser.parse_args()
    cfg = train_preset("course", d_model=64, n_layers=1, n_heads=4, d_mlp=172, max_steps=args.steps,
                       time_budget=None, compile=False, warmup_steps=100, eval_interval=500)
    train(cfg, args.out)
    card = export_model(args.out, DRAFT_MODEL_DIR)
    (DRAFT_MODEL_DIR / "checkpoint.safetensors").unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in card.items() if k != "preset_config"}, indent=2))
