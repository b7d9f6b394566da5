"""Run `glassformer train` in a background process, one run at a time per data folder.

A web page (chapter 9 of the course) starts real training runs. The page must never wait for
training, and two learners must not start two runs that fight over the same CPU cores, so:

- the run is a separate process, `python -m glassformer.course.live_training <run folder> <lock> <train
  arguments>`, which runs exactly `glassformer train <train arguments>` (`glassformer.train.main`); its output goes to
  <run folder>/train.log and its exit status to <run folder>/exit.json;
- a lock file holds the running process's pid; a lock whose process is gone is stale, and free;
- stopping sends SIGINT (what Ctrl-C sends): train.py finishes the optimizer step it is in, saves
  a checkpoint and exits, so the run can be continued later with `--resume`;
- a new run never deletes the one before it: the old folder is moved aside to <folder>-<date>-<time>
  (in runs/ a finished one stays in the model picker), and the page says where;
- the process that launched a run reaps it as soon as it ends (a thread waits on it), whichever page
  stopped it, so no zombie is left behind;
- the page follows a run by reading its metrics.jsonl (`read_metrics`), which train.py appends to
  as it goes.

    >>> launch(data, run_dir, ["--preset", "live"])      # doctest: +SKIP
    >>> running(data)                                   # doctest: +SKIP
    {'pid': 4242, 'folder': '.../runs/live', 'started': 1764090000.0}
    >>> stop(data)                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from glassformer.train import read_metrics

LOCK_NAME = "training.lock"

# What a background run can run: the module whose main(argv) the process calls. A fixed table, so a page
# picks one of these by name and never an arbitrary module. "induction" is chapter 12's toy model,
# "finetune" chapter 13's fine-tuning.
ENTRY_POINTS = {"train": "glassformer.train", "induction": "glassformer.toys.induction",
                "finetune": "glassformer.finetune"}


class Busy(RuntimeError):
    """Another run holds the lock."""


def lock_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / LOCK_NAME


def _alive(pid: int) -> bool:
    """Is `pid` a live (not zombie) process started by this module?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not one of ours
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():  # Linux: rule out a zombie and a recycled pid
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return state != "Z" and "glassformer.course.live_training" in cmdline
    return True


def running(data_dir: str | Path) -> dict | None:
    """The run holding the lock ({"pid", "folder", "args", "started"}), or None; removes a stale lock."""
    path = lock_path(data_dir)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # half-written: its writer is about to fill it in (or died doing so)
        if time.time() - path.stat().st_mtime < 10:
            return {"pid": None, "folder": "", "args": [], "started": time.time()}
        path.unlink(missing_ok=True)
        return None
    if _alive(int(info.get("pid") or 0)):
        return info
    path.unlink(missing_ok=True)  # stale: the process died without removing it
    return None


def launch(data_dir: str | Path, folder: str | Path, train_args: list[str], *, resume: bool = False,
           threads: int | None = 1, entry: str = "train") -> dict:
    """Start `glassformer train --out folder [--resume] *train_args` in the background.

    Raises Busy when another run holds the lock. A new (not resumed) run starts from an empty folder;
    what was there before is kept (see `keep_aside`), and the returned info names it under "kept".
    threads: the run's torch threads (None: torch's default, one per core). One leaves the other
    cores to the course server; on a busy machine two processes with two threads each on two cores
    were measured several times slower per step than with one thread each.
    entry: which program runs (ENTRY_POINTS), `glassformer train` by default; it gets the same arguments."""
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown entry {entry!r}; choose one of {sorted(ENTRY_POINTS)}")
    data_dir, folder = Path(data_dir), Path(folder)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(data_dir)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # atomic: one of two clicks wins
            break
        except FileExistsError:
            holder = running(data_dir)
            if holder is not None:
                raise Busy(f"a training run is already going on this server ({Path(holder['folder']).name}, "
                           f"pid {holder['pid']}); wait for it to end or stop it first") from None
    else:
        raise Busy("could not take the training lock")
    try:
        kept = None if resume else keep_aside(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exit.json").unlink(missing_ok=True)
        args = ["--out", str(folder), "--no-progress", *(["--resume"] if resume else []), *train_args]
        with (folder / "train.log").open("a") as log:
            chosen = ["--entry", entry] if entry != "train" else []
            child = subprocess.Popen([sys.executable, "-m", "glassformer.course.live_training", str(folder), str(path),
                                      *chosen, *args],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1",
                                          **({"OMP_NUM_THREADS": str(threads)} if threads else {})})
        threading.Thread(target=child.wait, name=f"reap training pid {child.pid}", daemon=True).start()
        info = {"pid": child.pid, "folder": str(folder), "args": args, "started": time.time()}
        os.write(fd, json.dumps(info).encode())
        info["kept"] = str(kept) if kept else None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return info


def keep_aside(folder: Path) -> Path | None:
    """Make room for a new run in `folder` without losing the old one: a folder with anything in it
    (a checkpoint that can be resumed, a finished model, the log of a failed run) is renamed to
    <folder>-<YYYYmmdd-HHMMSS> beside it, and that path is returned. Nothing is deleted."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(folder.stat().st_mtime))
    dest, n = folder.with_name(f"{folder.name}-{stamp}"), 2
    while dest.exists():
        dest, n = folder.with_name(f"{folder.name}-{stamp}-{n}"), n + 1
    folder.rename(dest)
    return dest


def stop(data_dir: str | Path, wait: float = 10.0) -> bool:
    """Ask the running run to stop (SIGINT: finish the step, save a checkpoint, exit); True once it has
    ended, waiting at most `wait` seconds. After that, SIGTERM and then SIGKILL."""
    info = running(data_dir)
    if info is None or not info.get("pid"):
        return info is None
    pid = int(info["pid"])
    for sig, grace in [(signal.SIGINT, wait), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + grace
        while time.time() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            break
    running(data_dir)  # removes the lock if the process ended without doing so
    return not _alive(pid)


def stop_run(data_dir: str | Path, folder: str | Path, wait: float = 10.0) -> bool:
    """Stop the run going on only if it is the one writing to `folder` (a page's Stop button stops its
    own run, never another page's); False when no run of that folder is going on."""
    holder = running(data_dir)
    if holder is None or holder.get("folder") != str(folder):
        return False
    stop(data_dir, wait)
    return True


@dataclass
class RunView:
    """What a page shows about one run folder: its metrics so far and how it ended (if it has)."""

    state: str                      # "none", "running", "finished", "stopped", "failed"
    train: list[dict] = field(default_factory=list)    # {"step", "train_loss", "lr", "elapsed", ...}
    evals: list[dict] = field(default_factory=list)    # {"step", "val_loss", "sample", "elapsed"}
    summary: dict = field(default_factory=dict)        # the final row: final_train_loss, final_val_loss, ...
    error: str = ""                 # why it failed (e.g. "loss became nan at step 12: ...")
    exit_code: int | None = None


def view(folder: str | Path, is_running: bool) -> RunView:
    """Read a run folder as the run writes it (safe to call while it is being written)."""
    folder = Path(folder)
    if not (folder / "metrics.jsonl").exists():
        return RunView("running" if is_running else "none")
    rows = read_metrics(folder / "metrics.jsonl")
    train = [r for r in rows if "train_loss" in r]
    evals = [r for r in rows if "val_loss" in r]
    summary = next((r for r in reversed(rows) if "final_val_loss" in r), {})
    error = next((r["error"] for r in reversed(rows) if "error" in r), "")
    exit_code = None
    try:
        exit_code = json.loads((folder / "exit.json").read_text())["exit_code"]
    except (OSError, ValueError, KeyError):
        pass
    if is_running:
        state = "running"
    elif error:
        state = "failed"
    elif summary:
        state = "finished"
    elif (folder / "checkpoint.safetensors").exists():
        state = "stopped"
    elif exit_code == 130:  # interrupted before its first checkpoint: nothing to resume from
        state, error = "failed", "stopped before its first checkpoint was saved: start it again"
    else:
        state = "failed"
    if state == "failed" and not error:
        log = folder / "train.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        error = lines[-1] if lines else f"the training process ended with exit code {exit_code}"
    return RunView(state, train, evals, summary, error, exit_code)


def main(argv: list[str] | None = None) -> int:
    """The background process: `glassformer train`, then its exit status recorded and the lock released."""
    argv = sys.argv[1:] if argv is None else argv
    folder, lock, train_args = Path(argv[0]), Path(argv[1]), argv[2:]
    entry = "train"
    if train_args[:1] == ["--entry"]:
        entry, train_args = train_args[1], train_args[2:]
    # A server started in the background may ignore SIGINT, and a child inherits that: turn Ctrl-C's
    # meaning back on, so that stop() gets "finish the step, save, exit" rather than nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1
    try:
        import importlib

        code = importlib.import_module(ENTRY_POINTS[entry]).main(train_args)
    except KeyboardInterrupt:
        code = 130
    finally:
        (folder / "exit.json").write_text(json.dumps({"exit_code": code, "ended": time.time()}))
        try:
            if json.loads(lock.read_text()).get("pid") == os.getpid():
                lock.unlink()
        except (OSError, ValueError):
            pass
    return code


if __name__ == "__main__":
    raise SystemExit(main())


# --- what chapter 9 runs ------------------------------------------------------------------------

# The live run: the "live" preset of train.py (a schedule fitted to 90 s of this machine's time).
LIVE_ARGS = ["--preset", "live"]

# Short runs that each show one way training goes wrong, beside a reference run: the "live" model,
# 200 steps (at most 60 s), peak lr 1e-2 after 50 warmup steps, cosine decay to 0 (min_lr 0, so that
# a lower peak needs no other change), gradients clipped at norm 1. Each experiment changes exactly one
# flag (tests/test_ch09_training.py checks it). Measured on a busy 2-core machine, one thread each,
# validation loss at step 200: reference 2.435; lr 1.0: the training loss rose to 61.5 (step 70), then
# fell, val 3.355; lr 100: nan at step 25, clipping notwithstanding; lr 1e-5: val 4.158 at step 25,
# 3.774 at 200; no warmup 2.751; 1,000 training characters: train 0.13, val 6.57 (lowest, 3.12, at
# step 25).
EXPERIMENT_BASE = ["--preset", "live", "--max-steps", "200", "--eval-interval", "25", "--time-limit", "60",
                   "--lr", "1e-2", "--min-lr", "0"]
EXPERIMENTS: dict[str, tuple[str, list[str]]] = {
    "reference": ("peak learning rate 1e-2 after 50 warmup steps, decaying to 0; gradients clipped at norm 1", []),
    "lr too high": ("peak learning rate 1.0", ["--lr", "1.0"]),
    "lr far too high": ("peak learning rate 100", ["--lr", "100"]),
    "lr too low": ("peak learning rate 1e-5", ["--lr", "1e-5"]),
    "no warmup": ("the full learning rate from the very first step", ["--warmup-steps", "0"]),
    "overfitting": ("only the first 1,000 characters of the training text", ["--train-tokens", "1000"]),
}


def experiment_args(name: str) -> list[str]:
    """The `glassformer train` arguments of experiment `name` (see EXPERIMENTS)."""
    return EXPERIMENT_BASE + EXPERIMENTS[name][1]


def fingerprint(data_dir: str | Path, folders: list[str | Path]) -> tuple:
    """Changes whenever a run starts or ends or writes a metric: a page polls this cheaply and redraws
    its charts only when it changes."""
    parts: list = [json.dumps(running(data_dir), sort_keys=True)]
    for folder in map(Path, folders):
        for name in ("metrics.jsonl", "exit.json"):
            try:
                st = (folder / name).stat()
                parts.append((str(folder), name, st.st_size, st.st_mtime_ns))
            except OSError:
                parts.append((str(folder), name, None))
    return tuple(parts)
