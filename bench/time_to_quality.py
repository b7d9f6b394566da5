"""Time to quality: the course preset vs nanoGPT's CPU recipe, trained side by side on this machine.

    python bench/time_to_quality.py                  # course (dtype auto) + nanoGPT reference: ~20 min
    python bench/time_to_quality.py --fp32-too       # + the course preset forced to fp32: ~30 min
    python bench/time_to_quality.py --metrics runs/a/metrics.jsonl ...   # report existing runs only

Each run gets the same 10 minutes of wall time (compile included) and fits its cosine schedule
to it; each evaluates on the whole validation split at 2 and 5 minutes and at the end. The
reference is nanoGPT's recipe on a plain PyTorch model (bench/reference_gpt.py), fp32 and eager
as nanoGPT runs on a CPU. The runs go one after another, each in its own process, so they never
share the cores. The figures name this CPU (its vector instructions and bf16 support).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET = 570  # seconds: 10 minutes with room for starting Python and writing the card


def run_course(out: Path, extra: list[str]) -> Path:
    subprocess.run([sys.executable, "-m", "glassformer.train", "--preset", "course", "--out", str(out),
                    "--full-eval-at", "120,300", "--no-progress", "--time-budget", str(BUDGET), *extra], check=True)
    return out / "metrics.jsonl"


def run_reference(out: Path) -> Path:
    metrics = out / "metrics.jsonl"
    subprocess.run([sys.executable, str(Path(__file__).parent / "reference_gpt.py"), "--budget", str(BUDGET),
                    "--metrics", str(metrics)], check=True)
    return metrics


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curve(rows: list[dict]) -> dict[str, float]:
    """{"2 min": loss, "5 min": loss, "end": loss} on the whole validation split."""
    points = {f"{r['at'] / 60:.0f} min": r["full_val_loss"] for r in rows if "full_val_loss" in r}
    final = [r for r in rows if "final_val_loss" in r]
    if final:
        points["end"] = final[-1]["final_val_loss"]
        points["end_time"] = final[-1]["wall_time_s"]
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, nargs="*", help="existing runs' metrics.jsonl (skip training)")
    parser.add_argument("--fp32-too", action="store_true", help="also train the course preset forced to fp32")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--plot", type=Path, default=Path("out/time_to_quality.png"))
    args = parser.parse_args()

    from glassformer.precision import cpu_capability, resolve_dtype

    cap = cpu_capability()
    print(f"CPU: {cap.summary}; course preset trains in {resolve_dtype('auto')} here")
    out = args.out or Path(tempfile.mkdtemp(prefix="ttq-"))
    if args.metrics:
        curves = {m.parent.name: read(m) for m in args.metrics}
    else:
        curves = {f"course ({resolve_dtype('auto')}, auto)": read(run_course(out / "course", []))}
        if args.fp32_too:
            curves["course (fp32 forced)"] = read(run_course(out / "course-fp32", ["--dtype", "fp32"]))
        curves["nanoGPT CPU recipe (reference)"] = read(run_reference(out / "nanogpt"))

    table = {name: curve(rows) for name, rows in curves.items()}
    where = "read from the runs' metrics.jsonl" if args.metrics else "measured in this run"
    print(f"\nvalidation loss on the whole split (nats/char), {BUDGET} s budget each, {where}:")
    print(f"{'run':34s} {'2 min':>7s} {'5 min':>7s} {'end':>7s} {'at':>7s}")
    for name, c in table.items():
        print(f"{name:34s} " + " ".join(f"{c.get(k, float('nan')):7.4f}" for k in ("2 min", "5 min", "end"))
              + f" {c.get('end_time', float('nan')):6.0f}s")
    ref = next((c for n, c in table.items() if "nanogpt" in n.lower()), None)
    if ref and "end" in ref:
        for name, c in table.items():
            if "nanogpt" not in name.lower() and "end" in c:
                print(f"margin, {name} vs nanoGPT: {ref['end'] - c['end']:+.4f} (target >= 0.05)")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib for the plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, rows in curves.items():
        full = [(r["elapsed"] / 60, r["full_val_loss"]) for r in rows if "full_val_loss" in r]
        full += [(r["wall_time_s"] / 60, r["final_val_loss"]) for r in rows if "final_val_loss" in r]
        ax.plot(*zip(*full), marker="o", label=name)
    ax.set_xlabel(f"wall time (minutes, {cap.summary})", fontsize=8)
    ax.set_ylabel("validation loss, whole split (nats/char)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
