"""Train the scaling runs chapter 11 fits its laws to, and ship their table in src/glassformer/assets/scaling/.

    .venv/bin/python scripts/ship_scaling_runs.py                # 35 runs, ~35 min of one core: ~18 min on 2
    .venv/bin/python scripts/ship_scaling_runs.py --estimate     # time 60 steps of each size, project the total
    .venv/bin/python scripts/ship_scaling_runs.py --sizes d16-L1 d24-L2 --budgets 20480 40960 --dest /tmp/s  # smoke

A family of course-shaped character models of TinyShakespeare (RoPE, RMSNorm, SwiGLU of width
~8/3 d_model, no dropout): the 7 SIZES of glassformer/analysis/scaling.py, from 3.6 thousand to 0.8
million non-embedding parameters (224x), each trained from scratch for each of the 5 token budgets
in BUDGETS (0.25 to 3.9 million tokens): fixed numbers of training tokens, not times, so every run
is comparable on any machine. One recipe for all (`scaling.run_config`: the library's loop, Muon,
batch 16 x 128 characters, learning rate 3e-3, warmup over the first 10% of the steps capped at
100, cosine decay to the end of each run's own budget, fp32, seed 1337): only the shape and the
budget change. For each run runs.json records the whole-validation-split loss of the final
weights, N with and without the embedding table, D, C = 6·N·D, forward FLOPs per token, steps,
wall time, tokens/s and the CPU; card.json the recipe, the sizes and the time of every session.
No weights are kept.

The runs are independent, so --jobs processes (default 2, one thread each: these matrices are too
small for a second thread to pay) train them side by side, the longest first. The script is
resumable: runs already in runs.json are skipped, each finished run is written at once, and the
card adds up the time of every session. The training split holds about 1.0 million characters, so
the largest budgets repeat it several times (the card says how many).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import torch

from glassformer import machine
from glassformer.analysis.emergence import training_compute
from glassformer.analysis.scaling import (BATCH, BUDGETS, CONTEXT, RECIPE, SCALING_DIR, SIZES,
                                          forward_flops_per_token, mlp_width, parameter_counts, run_config)
from glassformer.checkpoint import atomic_write_text, load_model_folder, read_json
from glassformer.model import build_model
from glassformer.precision import cpu_capability
from glassformer.train import TrainConfig, read_metrics, train


def recipe(size: str, tokens: int) -> TrainConfig:
    return run_config(*SIZES[size], tokens)


def run_key(size: str, tokens: int) -> str:
    return f"{size}@{tokens}"


def train_one(size: str, tokens: int) -> dict:
    """One run from scratch in a temporary folder; its row of the table. (Runs in a worker process.)"""
    torch.set_num_threads(1)
    cfg = recipe(size, tokens)
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        started = time.perf_counter()
        summary = train(cfg, Path(tmp) / "run", progress=False)
        seconds = time.perf_counter() - started
        model, _, _ = load_model_folder(Path(tmp) / "run")
    counts = parameter_counts(model)
    d, layers, heads = SIZES[size]
    return {
        "key": run_key(size, tokens), "size": size, "d_model": d, "n_layers": layers, "n_heads": heads,
        "d_mlp": mlp_width(d),
        "parameters": counts.total, "non_embedding_parameters": counts.non_embedding,
        "tokens": summary["tokens"], "steps": summary["steps"],
        "compute": training_compute(counts.non_embedding, summary["tokens"]),
        "compute_with_embeddings": training_compute(counts.total, summary["tokens"]),
        "forward_flops_per_token": forward_flops_per_token(model),
        "val_loss": summary["final_val_loss"], "train_loss": summary["final_train_loss"],
        "train_seconds": summary["wall_time_s"],           # the training loop (with its one evaluation)
        "run_seconds": round(seconds, 1),                  # + building the run, the final measures, saving
        "tokens_per_s": round(summary["tokens"] / summary["wall_time_s"]),
        "cpu": cpu_capability().summary, "cpu_model": machine.facts().model, "threads": 1,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# --- the table on disk ------------------------------------------------------------------------

def shared_recipe() -> dict:
    return {"script": "scripts/ship_scaling_runs.py", "library": "glassformer.analysis.scaling.run_config",
            "preset": "course", "train": RECIPE, "warmup_steps": "10% of the run's steps, at most 100",
            "mlp_width": "8 * ceil(d_model * 8/3 / 8)", "corpus": "tinyshakespeare"}


def load_table(path: Path) -> dict:
    """The table so far (empty if none); refused if it was made with another recipe or other shapes."""
    if not path.exists():
        return {"recipe": shared_recipe(), "runs": []}
    table = read_json(path)
    if table.get("recipe") != json.loads(json.dumps(shared_recipe())):
        raise SystemExit(f"{path} was made with another recipe: move it away to start again")
    for row in table["runs"]:
        if row["size"] in SIZES and (row["d_model"], row["n_layers"], row["n_heads"]) != SIZES[row["size"]]:
            raise SystemExit(f"{path}: size {row['size']} had another shape; move the file away to start again")
    return table


def save_table(path: Path, table: dict) -> None:
    table["runs"].sort(key=lambda r: (r["non_embedding_parameters"], r["tokens"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(table, indent=1) + "\n")


def write_card(dest: Path, table: dict, sessions: list[dict]) -> None:
    runs = table["runs"]
    n = [r["non_embedding_parameters"] for r in runs]
    train_tokens = 1_003_854   # the first 90% of TinyShakespeare's 1,115,394 characters
    card = {
        "what": "scaling runs: course-shaped character models of TinyShakespeare, several sizes x token budgets",
        "recipe": table["recipe"],
        "sizes": {r["size"]: {k: r[k] for k in ("d_model", "n_layers", "n_heads", "d_mlp", "parameters",
                                                 "non_embedding_parameters")} for r in runs},
        "budgets": sorted({r["tokens"] for r in runs}),
        "runs": len(runs),
        "non_embedding_span": round(max(n) / min(n), 1) if n else None,
        "epochs_at_largest_budget": round(max((r["tokens"] for r in runs), default=0) / train_tokens, 2),
        "val_loss_note": "mean cross-entropy (nats/char) over the whole validation split (last 10%), fp32, "
                         "final weights",
        "compute_note": "compute = 6 x non-embedding parameters x training tokens (Kaplan et al. 2020)",
        "cpus": sorted({f"{r['cpu_model']}: {r['cpu']}" for r in runs}),
        "sessions": sessions,
        "script_seconds_total": round(sum(s["seconds"] for s in sessions), 1),
        "weights_kept": "none",
    }
    atomic_write_text(dest / "card.json", json.dumps(card, indent=2) + "\n")


# --- planning ----------------------------------------------------------------------------------

def estimate(sizes: list[str], budgets: list[int], jobs: int, steps: int = 60) -> None:
    """Time `steps` real training steps of each size (one thread) and project every run's time."""
    torch.set_num_threads(1)
    total = 0.0
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="scaling-estimate-") as tmp:
            started = time.perf_counter()
            train(recipe(size, steps * BATCH * CONTEXT), Path(tmp) / "run", progress=False)
            seconds = time.perf_counter() - started
            rates = [r["tokens_per_s"] for r in read_metrics(Path(tmp) / "run" / "metrics.jsonl")
                     if "tokens_per_s" in r and r["step"] > 20]
        rate = statistics.median(rates)
        overhead = max(0.0, seconds - steps * BATCH * CONTEXT / rate)
        runs = [overhead + tokens / rate for tokens in budgets]
        total += sum(runs)
        print(f"{size}: {rate:,.0f} tokens/s, {overhead:.1f} s per run besides training; runs "
              + ", ".join(f"{t / 1e6:.2f}M tokens {s:.0f} s" for t, s in zip(budgets, runs)), flush=True)
    print(f"all runs: {total / 60:.1f} min of one core; with --jobs {jobs}: about {total / jobs / 60:.1f} min "
          f"(if the cores are otherwise idle)")


@functools.cache
def size_parameters(size: str) -> int:
    return parameter_counts(build_model(recipe(size, BATCH * CONTEXT).model)).total


def projected_seconds(pending: list[tuple[str, int]], done: list[dict]) -> float:
    """Seconds of one core the pending runs should take: each size's seconds per token so far, or for a
    size not run yet those of the nearest size by parameters (runs go largest first, so: an upper bound)."""
    per_token = {r["size"]: r["run_seconds"] / r["tokens"] for r in done}
    if not per_token:
        return float("nan")

    def rate(size: str) -> float:
        if size in per_token:
            return per_token[size]
        ratio = lambda s: abs(math.log(size_parameters(s) / size_parameters(size)))  # noqa: E731
        return per_token[min(per_token, key=ratio)]

    return sum(rate(size) * tokens for size, tokens in pending)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--budgets", nargs="*", type=int, default=list(BUDGETS), help="training tokens per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each (default 2)")
    parser.add_argument("--dest", type=Path, default=SCALING_DIR, help=f"where runs.json and card.json go "
                                                                      f"(default {SCALING_DIR})")
    parser.add_argument("--estimate", action="store_true", help="time a few steps of each size, project, train nothing")
    args = parser.parse_args()
    for tokens in args.budgets:
        recipe(args.sizes[0], tokens)          # a budget that is not a whole number of steps is refused here
    if args.estimate:
        estimate(args.sizes, args.budgets, args.jobs)
        return
    path = args.dest / "runs.json"
    table = load_table(path)
    card_path = args.dest / "card.json"
    sessions = read_json(card_path).get("sessions", []) if card_path.exists() and table["runs"] else []
    done = {r["key"] for r in table["runs"]}
    pending = [(s, t) for s in args.sizes for t in args.budgets if run_key(s, t) not in done]
    # The longest first, so that the last runs to finish are short ones and no job waits idle long.
    pending.sort(key=lambda st: -size_parameters(st[0]) * st[1])
    keys_this_session = {run_key(s, t) for s, t in pending}
    print(f"{len(done)} runs already in {path}; {len(pending)} to train with {args.jobs} job(s)", flush=True)
    if not pending:
        return
    session = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "jobs": args.jobs, "runs": 0, "seconds": 0.0,
               "cpu_model": machine.facts().model, "cpu": cpu_capability().summary}
    sessions.append(session)
    started = time.perf_counter()

    def finished(row: dict, left: list[tuple[str, int]]) -> None:
        row["jobs_at_once"] = args.jobs      # its wall time was measured with this many runs side by side
        table["runs"].append(row)
        save_table(path, table)
        session["runs"] += 1
        session["seconds"] = round(time.perf_counter() - started, 1)
        write_card(args.dest, table, sessions)
        ahead = projected_seconds(left, [r for r in table["runs"] if r["key"] in keys_this_session])
        print(f"[{session['runs']}/{len(pending)}] {row['size']} @ {row['tokens'] / 1e6:.2f}M tokens: val loss "
              f"{row['val_loss']:.4f}, N {row['non_embedding_parameters']:,}, {row['run_seconds']:.0f} s "
              f"({row['tokens_per_s']:,} tokens/s); {session['seconds'] / 60:.1f} min so far, about "
              f"{ahead / args.jobs / 60:.1f} min to go", flush=True)

    if args.jobs == 1:
        for i, (size, tokens) in enumerate(pending):
            finished(train_one(size, tokens), pending[i + 1:])
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(train_one, size, tokens): (size, tokens) for size, tokens in pending}
            left = list(pending)
            try:
                for future in as_completed(futures):
                    left.remove(futures[future])
                    finished(future.result(), left)
            except BaseException:   # a run failed, or Ctrl-C: start no queued run (the finished ones are saved)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    session["seconds"] = round(time.perf_counter() - started, 1)
    save_table(path, table)
    write_card(args.dest, table, sessions)
    print(f"{len(table['runs'])} runs in {path}; this session {session['seconds'] / 60:.1f} min, all sessions "
          f"{sum(s['seconds'] for s in sessions) / 60:.1f} min")


if __name__ == "__main__":
    main()
