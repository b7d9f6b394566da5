"""Training: the loss falls, resume = uninterrupted, checkpoints are atomic, DDP = one process."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from glassformer.checkpoint import CheckpointError, atomic_write, load_model_folder
from glassformer.data import CorpusError, load_text, tinyshakespeare_path
from glassformer.train import TrainConfig, lr_at, train, train_preset

FAST = dict(max_steps=40, batch_size=8, eval_interval=20, checkpoint_interval=20, log_interval=1,
            eval_batches=2, sample_tokens=20, warmup_steps=5, n_ctx=32, d_model=32, n_heads=2)


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_learning_rate_schedule_by_hand():
    cfg = TrainConfig(lr=1.0, min_lr=0.0, warmup_steps=10, max_steps=110)
    got = [lr_at(s, cfg) for s in (0, 4, 9, 10, 60, 110)]
    expected = [0.1, 0.5, 1.0, 1.0, 0.5, 0.0]
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-12


def test_loss_falls_on_the_tiny_preset_in_the_precision_this_cpu_chooses(tmp_path):
    cfg = train_preset("tiny", max_steps=150, eval_interval=150, checkpoint_interval=150)
    assert cfg.dtype == "auto"
    summary = train(cfg, tmp_path, progress=False)
    rows = [r for r in metrics(tmp_path) if "train_loss" in r]
    first, last = rows[0]["train_loss"], summary["final_val_loss"]
    assert first > 3.5          # ~ln(65) = 4.17 at random init
    assert last < 2.7, f"val loss {last} did not fall enough from {first}"
    model, tok, card = load_model_folder(tmp_path)
    assert card["final_val_loss"] == summary["final_val_loss"] and card["data_sha256"].startswith("86c4e6aa")
    assert tok.vocab_size == 65 and model.config.vocab_size == 65


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, optimizer):
    cfg = train_preset("tiny", optimizer=optimizer, **FAST)
    straight = tmp_path / "straight"
    train(cfg, straight, progress=False)

    def interrupt(row):
        if row["step"] == 20:
            raise KeyboardInterrupt

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, broken, progress=False, on_eval=interrupt)
    assert max(r["step"] for r in metrics(broken)) == 20
    train(cfg, broken, progress=False, resume=True)

    losses = lambda f: [(r["step"], r["train_loss"]) for r in metrics(f) if "train_loss" in r]
    assert losses(broken) == losses(straight)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(broken / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = load_file(str(broken / "checkpoint.safetensors"))  # the optimizer's moments were kept too
    expected = "momentum_buffer" if optimizer == "muon" else "exp_avg_sq"
    assert any(k.endswith(expected) for k in saved)


@pytest.mark.slow
def test_compiled_training_follows_the_eager_loss_curve(tmp_path, capsys):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        if os.environ.get("CI") == "true":  # CI must exercise the compiled path
            pytest.fail("no C compiler: torch.compile on CPU needs one (apt-get install gcc g++)", pytrace=False)
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    cfg = train_preset("tiny", dropout=0.0, **FAST)  # compiled dropout draws other masks
    train(cfg, tmp_path / "eager", progress=False)
    train(dataclasses.replace(cfg, compile=True), tmp_path / "compiled", progress=False)
    assert "compiled the training step" in capsys.readouterr().err  # not the eager fall-back
    eager = [r["train_loss"] for r in metrics(tmp_path / "eager") if "train_loss" in r]
    fused = [r["train_loss"] for r in metrics(tmp_path / "compiled") if "train_loss" in r]
    assert len(eager) == len(fused) >= 3
    # Same batches and weights; only the kernels' rounding differs (bf16 autocast).
    assert max(abs(a - b) for a, b in zip(eager, fused)) <= 0.05, (eager, fused)
    assert fused[-1] < fused[0] - 0.5


def test_training_falls_back_to_eager_when_compiling_fails(tmp_path, monkeypatch, capsys):
    def broken_compile(model, **kwargs):
        def fails(*args, **kw):
            raise RuntimeError("no C++ compiler found")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    cfg = dataclasses.replace(train_preset("tiny", **FAST), compile=True)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert "torch.compile is unavailable here" in capsys.readouterr().err
    assert summary["steps"] == cfg.max_steps and summary["final_val_loss"] < 4.0


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "checkpoint.safetensors"
    target.write_bytes(b"complete old checkpoint")

    def crash_midway(tmp):
        Path(tmp).write_bytes(b"half a new chec")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, crash_midway)
    assert target.read_bytes() == b"complete old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]  # no temp file left


def test_a_truncated_checkpoint_is_refused_not_loaded(tmp_path):
    cfg = train_preset("tiny", **{**FAST, "max_steps": 20})
    train(cfg, tmp_path, progress=False)
    ckpt = tmp_path / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        train(cfg, tmp_path, progress=False, resume=True)


def ranks_said(stderr: str) -> str:
    """What a failed multi-process run's ranks said: their own error lines first (a rank that aborts says
    why above the launcher's long summary, which alone fills the last 2,000 characters), then the end."""
    keys = ("terminate called", "what():", "Error", "error:", "Exception")
    own = [line for line in stderr.splitlines() if any(k in line for k in keys) and "elastic" not in line]
    return "\n".join(own[:20]) + "\n...\n" + stderr[-1500:]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    args = ["--preset", "tiny", "--max-steps", "12", "--batch-size", "8", "--dtype", "fp32", "--log-interval", "1",
            "--eval-interval", "100", "--checkpoint-interval", "100", "--no-progress", "--n-ctx", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "glassformer.train", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "glassformer.train", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, ranks_said(two.stderr)
    a = [r["train_loss"] for r in metrics(tmp_path / "one") if "train_loss" in r]
    b = [r["train_loss"] for r in metrics(tmp_path / "two") if "train_loss" in r]
    assert len(a) == len(b) == 12
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-4, list(zip(a, b))
    assert abs(a[0] - a[-1]) > 0.1  # the loss moved, so the comparison means something


def test_corpus_offline_without_cache_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_CACHE", str(tmp_path))
    with pytest.raises(CorpusError, match="GLASSFORMER_TINYSHAKESPEARE"):
        tinyshakespeare_path()


def test_corpus_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "input.txt"
    fake.write_text("not shakespeare " * 100)
    monkeypatch.setenv("GLASSFORMER_TINYSHAKESPEARE", str(fake))
    with pytest.raises(CorpusError, match="sha256 mismatch"):
        tinyshakespeare_path()


def test_any_utf8_corpus_can_be_used(tmp_path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    text, digest = load_text(corpus)
    assert text.startswith("the quick") and len(digest) == 64
    summary = train(train_preset("tiny", **{**FAST, "max_steps": 10}), tmp_path / "run", corpus=corpus, progress=False)
    _, tok, _ = load_model_folder(tmp_path / "run")
    assert tok.vocab_size == len(set(text)) and summary["steps"] == 10


def test_resume_keeps_the_precision_the_run_started_in(tmp_path, monkeypatch):
    """`auto` is decided again by timing on resume; a near-threshold timing must not switch a run's
    precision half-way (the resumed steps would no longer equal an uninterrupted run's)."""
    from glassformer import train as train_module

    cfg = train_preset("tiny", **{**FAST, "max_steps": 20})
    monkeypatch.setattr(train_module, "agreed_dtype", lambda requested: "fp32")
    train(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(train_module, "agreed_dtype", lambda requested: "bf16")   # the timing now says bf16
    run, state = train_module.start_or_resume(dataclasses.replace(cfg, max_steps=30), tmp_path / "run", None,
                                              resume=True)
    assert state.step == 20 and run.dtype == "fp32"
