"""Chapter 9's claims: per-position loss is -ln p(correct) and averages to train.loss_fn; gradient
accumulation = one bigger batch; stop + resume = straight; a diverging run stops with a clear error;
the training data can be cut short; background runs take a lock, stop on SIGINT with a checkpoint,
resume, and land in the model picker."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook

from glassformer import registry
from glassformer.course import live_training
from glassformer.analysis import training_lab
from glassformer.data import tinyshakespeare_bytes
from glassformer.model import build_model, preset
from glassformer.checkpoint import read_training_meta
from glassformer.train import TRAIN_PRESETS, loss_fn, read_metrics, start_or_resume, train, train_preset


def test_per_position_loss_is_minus_log_of_the_correct_tokens_probability_by_hand():
    torch.manual_seed(0)
    model = build_model(preset("tiny", n_ctx=16, d_model=32, n_heads=2)).eval()
    ids = [5, 17, 3, 3, 40, 2, 9]
    loss, p = training_lab.per_position_loss(model, ids)
    assert loss.shape == (len(ids) - 1,)
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]))[0].tolist()  # plain Python from here
    for t, row in enumerate(logits):
        top = max(row)
        z = sum(math.exp(v - top) for v in row)
        p_hand = math.exp(row[ids[t + 1]] - top) / z
        assert abs(p[t].item() - p_hand) <= 1e-6
        assert abs(loss[t].item() + math.log(p_hand)) <= 1e-5
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    with torch.no_grad():
        assert abs(loss.mean().item() - loss_fn(model, x, y).item()) <= 1e-6


def test_gradient_accumulation_equals_one_bigger_batch():
    result = training_lab.accumulation_gap(batch_size=16, micro_batches=4, steps=3)
    assert result["same_batches"]  # the two runs saw the same windows
    assert result["max_abs_diff"] <= 1e-5, result
    (a, b) = result["losses"]
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-5
    assert a[-1] < a[0]  # the steps did train (a comparison of two untouched models would prove nothing)


def small_corpus(tmp_path: Path, n: int = 20_000) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_bytes(tinyshakespeare_bytes()[:n])
    return path


@pytest.fixture
def ctrl_c_raises():
    """SIGINT becomes KeyboardInterrupt, as in a terminal (a pytest-xdist worker ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("optimizer, moment", [("adamw", "between two steps"),
                                               ("muon", "inside a step, after Muon's update, before AdamW's")])
def test_a_real_ctrl_c_saves_the_step_reached_and_resume_continues_it_bit_for_bit(tmp_path, optimizer, moment,
                                                                                   ctrl_c_raises):
    """A real SIGINT (what Ctrl-C and the page's Stop send) arrives between two checkpoints: train.py's
    own handler must save the step the run reached (inside a step: it finishes that step first, or half
    the weights would be updated), and --resume must carry on from exactly there to the weights of a
    run that never stopped."""
    steps, stop = 20, 7
    cfg = training_lab.tiny_config(optimizer=optimizer, max_steps=steps, eval_interval=stop, log_interval=1,
                                   eval_batches=1, sample_tokens=8, keep_best=False,
                                   checkpoint_interval=1000)  # no regular checkpoint before the end
    corpus, straight, broken = small_corpus(tmp_path), tmp_path / "straight", tmp_path / "broken"
    sent, muon_steps = [], []

    def after_evaluation(row):
        if moment == "between two steps" and not sent:
            sent.append(row["step"])
            signal.raise_signal(signal.SIGINT)

    def after_each_optimizer(opt, args, kwargs):
        if moment.startswith("inside") and type(opt).__name__ == "Muon":
            muon_steps.append(1)
            if len(muon_steps) == stop:  # step `stop` is half done
                sent.append(stop)
                signal.raise_signal(signal.SIGINT)

    with training_lab.one_thread():
        train(cfg, straight, corpus=corpus, progress=False)
        hook = register_optimizer_step_post_hook(after_each_optimizer)  # every optimizer, after its step
        try:
            with pytest.raises(KeyboardInterrupt):
                train(cfg, broken, corpus=corpus, progress=False, on_eval=after_evaluation)
        finally:
            hook.remove()
        assert sent == [stop]
        assert read_training_meta(broken / "checkpoint.safetensors")["step"] == stop  # written by the handler
        assert not (broken / "card.json").exists()  # the run stopped: it did not finish
        summary = train(cfg, broken, corpus=corpus, progress=False, resume=True)
    assert summary["steps"] == steps
    logged = [r["step"] for r in read_metrics(broken / "metrics.jsonl") if "train_loss" in r]
    assert logged == sorted(set(logged)), logged  # no step trained twice
    assert logged[-(steps - stop):] == list(range(stop + 1, steps + 1)), logged  # resumed at step stop + 1
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(broken / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_chapters_resume_check_resumes_from_the_checkpoint_the_stop_wrote():
    result = training_lab.resume_gap(steps=20)
    assert result["stopped_at"] == 10 and result["tensors"] > 0  # read from the checkpoint, not set by the lab
    assert result["max_abs_diff"] == 0.0 and result["losses_equal"], result


def test_a_diverging_run_stops_with_a_clear_error_logged(tmp_path):
    cfg = training_lab.tiny_config(lr=100.0, grad_clip=0.0, max_steps=60, warmup_steps=0, eval_interval=10,
                                   log_interval=1, eval_batches=1, sample_tokens=8)
    with pytest.raises(FloatingPointError, match="learning rate .* too high"), training_lab.one_thread():
        train(cfg, tmp_path / "run", corpus=small_corpus(tmp_path), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "became nan" in rows[-1]["error"] or "became inf" in rows[-1]["error"]
    assert all(math.isfinite(r["train_loss"]) for r in rows if "train_loss" in r)


def test_train_tokens_keeps_only_the_start_of_the_training_split(tmp_path):
    cfg = training_lab.tiny_config(train_tokens=500)
    run, _ = start_or_resume(cfg, tmp_path / "run", small_corpus(tmp_path), resume=False)
    full, _ = start_or_resume(training_lab.tiny_config(), tmp_path / "full", small_corpus(tmp_path), resume=False)
    assert len(run.train_ids) == 500 and torch.equal(run.train_ids, full.train_ids[:500])
    assert torch.equal(run.val_ids, full.val_ids)  # validation is untouched
    with pytest.raises(ValueError, match="train_tokens"):
        training_lab.tiny_config(train_tokens=10)


def test_live_preset_and_experiments_are_valid_configs():
    assert TRAIN_PRESETS["live"].time_budget and not TRAIN_PRESETS["live"].compile
    for name in live_training.EXPERIMENTS:
        args = live_training.experiment_args(name)
        assert args[:2] == ["--preset", "live"] and "--max-steps" in args


def test_learner_runs_are_offered_to_the_model_picker(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    assert registry.learner_runs_dir() == tmp_path / "runs" and tmp_path / "runs" in registry.runs_dirs()


def test_a_stale_lock_is_freed(tmp_path):
    lock = live_training.lock_path(tmp_path)
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "folder": "x"}))  # no such process
    assert live_training.running(tmp_path) is None and not lock.exists()
    lock.write_text(json.dumps({"pid": os.getpid(), "folder": "x"}))  # alive, but not a training run
    assert live_training.running(tmp_path) is None and not lock.exists()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_background_run_locks_stops_with_a_checkpoint_resumes_and_appears_in_the_picker(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    folder = registry.learner_runs_dir() / "t"
    args = ["--preset", "tiny", "--corpus", str(small_corpus(tmp_path)), "--n-ctx", "32", "--d-model", "32",
            "--n-heads", "2", "--eval-interval", "5", "--log-interval", "5", "--checkpoint-interval", "1000"]
    before = live_training.fingerprint(tmp_path, [folder])
    info = live_training.launch(tmp_path, folder, args + ["--max-steps", "100000"])
    try:
        with pytest.raises(live_training.Busy, match="already going"):
            live_training.launch(tmp_path, tmp_path / "other", args)
        wait_for(lambda: len(live_training.view(folder, True).evals) >= 2, 120, "two evaluations")
        assert live_training.fingerprint(tmp_path, [folder]) != before  # the page redraws
        assert not live_training.stop_run(tmp_path, tmp_path / "other")      # another page's Stop: not this run
        assert live_training.running(tmp_path)["pid"] == info["pid"]
        assert live_training.stop(tmp_path)
        assert live_training.running(tmp_path) is None and not live_training.lock_path(tmp_path).exists()
        stopped = live_training.view(folder, False)
        assert stopped.state == "stopped" and stopped.exit_code == 130, stopped
        assert (folder / "checkpoint.safetensors").exists()
        step = stopped.train[-1]["step"]
        live_training.launch(tmp_path, folder, args + ["--max-steps", str(step + 10)], resume=True)
        wait_for(lambda: live_training.running(tmp_path) is None, 120, "the resumed run to end")
        done = live_training.view(folder, False)
        assert done.state == "finished" and done.summary["steps"] == step + 10, done
        assert folder in registry.trained_runs()
    finally:
        holder = live_training.running(tmp_path)
        if holder is not None:
            os.kill(int(holder["pid"]), 9)
        assert info["pid"] > 0


def test_a_run_folder_reads_as_failed_with_its_reason_or_as_stopped(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    rows = [{"step": 10, "train_loss": 9000.0}, {"step": 21, "error": "loss became nan at step 21: ..."}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "exit.json").write_text(json.dumps({"exit_code": 3}))
    failed = live_training.view(folder, False)
    assert failed.state == "failed" and failed.error.startswith("loss became nan") and failed.exit_code == 3
    assert live_training.view(folder, True).state == "running"
    (folder / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (folder / "exit.json").write_text(json.dumps({"exit_code": 130}))
    early = live_training.view(folder, False)        # Ctrl-C before the first checkpoint: nothing to resume
    assert early.state == "failed" and "before its first checkpoint" in early.error
    (folder / "checkpoint.safetensors").write_bytes(b"")
    assert live_training.view(folder, False).state == "stopped"
    assert live_training.view(tmp_path / "nothing", False).state == "none"


def test_each_experiment_is_the_reference_with_exactly_one_setting_changed():
    """Chapter 9 says each button runs "the same model with one thing changed": parse every experiment's
    flags as `glassformer train` does and compare the training configs field by field."""
    import argparse
    import dataclasses

    from glassformer.train import OVERRIDES, add_arguments

    def config(name):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(live_training.experiment_args(name))
        cfg = train_preset(args.preset, **{k: v for k, v in vars(args).items() if k in OVERRIDES and v is not None})
        return dataclasses.asdict(cfg)

    reference = config("reference")
    assert reference["min_lr"] == 0.0 and reference["grad_clip"] == 1.0
    for name in live_training.EXPERIMENTS:
        changed = {k for k, v in config(name).items() if v != reference[k]}
        assert len(changed) == (0 if name == "reference" else 1), (name, changed)
