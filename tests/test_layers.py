"""The import graph points one way: each layer imports only the layers below it, and the
library never imports the course."""

from __future__ import annotations

import json
import subprocess
import sys

LAYERS = [
    ["glassformer.tokenizers", "glassformer.timing"],
    ["glassformer.model"],
    ["glassformer.checkpoint", "glassformer.precision", "glassformer.sampling", "glassformer.data",
     "glassformer.chat", "glassformer.lora", "glassformer.machine", "glassformer.instructions"],
    ["glassformer.pretrained", "glassformer.generate", "glassformer.optim", "glassformer.errors"],
    ["glassformer.train", "glassformer.registry", "glassformer.threads", "glassformer.memory"],
    ["glassformer.analysis", "glassformer.toys", "glassformer.speculative", "glassformer.decode_paths",
     "glassformer.finetune", "glassformer.dpo"],
    ["glassformer.cli", "glassformer.course"],
]

PROBE = """
import importlib, json, sys
layers = json.loads(sys.argv[1])
report = []
import pkgutil
for i, layer in enumerate(layers):
    for name in layer:
        module = importlib.import_module(name)
        if hasattr(module, "__path__") and name != "glassformer.course":   # a package: every module in it
            for info in pkgutil.walk_packages(module.__path__, name + "."):
                importlib.import_module(info.name)
    above = [m for later in layers[i + 1:] for m in later]
    report.append(sorted(m for m in sys.modules if any(m == a or m.startswith(a + ".") for a in above)))
print(json.dumps(report))
"""


def test_each_layer_imports_nothing_above_it():
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(LAYERS)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    for layer, upward in zip(LAYERS, report):
        assert upward == [], f"importing {layer} also loaded modules of a higher layer: {upward}"
