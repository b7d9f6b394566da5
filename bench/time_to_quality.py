"""Time to quality: validation loss against wall time for a training run, vs nanoGPT's CPU anchor.

    python bench/time_to_quality.py               # trains --preset course now (~10 min), then reports
    python bench/time_to_quality.py --metrics runs/course/metrics.jsonl [--plot out/curve.png]

The run evaluates on the whole validation split at 2, 5 and 10 minutes of wall time (train's
--full-eval-at), so the figures are measured, not interpolated. The anchor is nanoGPT's CPU recipe
(4 layers, d=128, context 64, batch 12, lr 1e-3) as measured on this kind of machine: val ~1.84
after ~1.8 min, ~1.69 after ~3 min, ~1.50 after 9.5 min. To measure that recipe here in the
same run instead, add --anchor (trains glassformer's `nanogpt-cpu` preset, fp32, for 10 minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ANCHOR = [(108, 1.84), (180, 1.69), (570, 1.50)]  # (seconds, val loss), nanoGPT CPU recipe


def run(preset: str, out: Path, extra: list[str]) -> Path:
    subprocess.run([sys.executable, "-m", "glassformer.train", "--preset", preset, "--out", str(out),
                    "--full-eval-at", "120,300,600", "--no-progress", *extra], check=True)
    return out / "metrics.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, nargs="*", help="existing runs' metrics.jsonl (skip training)")
    parser.add_argument("--anchor", action="store_true", help="also train nanoGPT's CPU recipe for 10 minutes")
    parser.add_argument("--plot", type=Path, default=Path("out/time_to_quality.png"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp())
    if args.metrics:
        curves = {f"glassformer {m.parent.name}": read(m) for m in args.metrics}
    else:
        curves = {"glassformer course preset": read(run("course", tmp / "course", []))}
    if args.anchor:
        curves["nanoGPT CPU recipe (measured here)"] = read(run("nanogpt-cpu", tmp / "anchor",
                                                                ["--time-limit", "600", "--dtype", "fp32"]))
    for name, rows in curves.items():
        print(f"{name}:")
        for r in rows:
            if "full_val_loss" in r:
                print(f"  {r['at'] / 60:4.1f} min (step {r['step']}): val {r['full_val_loss']:.4f} on the whole val split")
        final = [r for r in rows if "val_loss" in r][-1]
        print(f"  end {final['elapsed'] / 60:4.1f} min (step {final['step']}): val {final['val_loss']:.4f} (20-batch estimate)")
        summary = [r for r in rows if "final_val_loss" in r]
        if summary:
            print(f"  final model: val {summary[-1]['final_val_loss']:.4f} on the whole val split")
    print("nanoGPT CPU anchor (quoted): " + ", ".join(f"{s / 60:.1f} min -> {v}" for s, v in ANCHOR))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib for the plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, rows in curves.items():
        ev = [r for r in rows if "val_loss" in r]
        ax.plot([r["elapsed"] / 60 for r in ev], [r["val_loss"] for r in ev], marker="o", ms=3, label=f"{name}: val")
        full = [r for r in rows if "full_val_loss" in r]
        ax.scatter([r["elapsed"] / 60 for r in full], [r["full_val_loss"] for r in full], s=40, zorder=3,
                   label=f"{name}: whole val split")
    ax.plot([s / 60 for s, _ in ANCHOR], [v for _, v in ANCHOR], "k--", marker="x", label="nanoGPT CPU recipe (anchor)")
    ax.axhline(1.45, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("wall time (minutes, 2 CPU cores)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_ylim(1.35, 2.4)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
