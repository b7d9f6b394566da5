"""Copy a finished `glassformer train --preset course` run into the package as the shipped course model.

    python scripts/ship_course_model.py runs/course

Weights are stored in fp16 (half the size); the card's val loss is re-measured on the stored weights.
"""

import json
import sys
from pathlib import Path

from glassformer.registry import COURSE_MODEL_DIR
from glassformer.train import export_model

if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(__doc__)
    card = export_model(sys.argv[1], COURSE_MODEL_DIR)
    (COURSE_MODEL_DIR / "checkpoint.safetensors").unlink(missing_ok=True)
    print(json.dumps({k: v for k, v in card.items() if k != "preset_config"}, indent=2))
