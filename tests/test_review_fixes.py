"""The reliability defects found in review, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from glassformer.checkpoint import CheckpointError, atomic_write
from glassformer.train import train, train_preset

FAST = dict(max_steps=20, batch_size=8, eval_interval=20, checkpoint_interval=10, log_interval=1,
            eval_batches=2, sample_tokens=10, warmup_steps=5, n_ctx=32, d_model=32, n_heads=2)


def interrupted_run(tmp_path: Path, **changes) -> Path:
    """A tiny run stopped by Ctrl-C at step 10, its checkpoint on disk."""
    def stop(row):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(train_preset("tiny", **{**FAST, "eval_interval": 10, **changes}), out, progress=False, on_eval=stop)
    return out


# --- resume refuses what it cannot continue ---------------------------------------------------

def test_resume_with_another_optimizer_is_refused(tmp_path):
    out = interrupted_run(tmp_path, optimizer="adamw")
    with pytest.raises(CheckpointError, match="optimizer differs.*'adamw'.*'muon'"):
        train(train_preset("tiny", **{**FAST, "optimizer": "muon"}), out, progress=False, resume=True)


def test_resume_with_another_model_shape_is_refused(tmp_path):
    out = interrupted_run(tmp_path)
    with pytest.raises(CheckpointError, match="d_model: checkpoint 32, now 48"):
        train(train_preset("tiny", **{**FAST, "d_model": 48}), out, progress=False, resume=True)


def test_resume_on_another_corpus_is_refused(tmp_path):
    out = interrupted_run(tmp_path)
    other = tmp_path / "other.txt"
    other.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 100)
    with pytest.raises(CheckpointError, match="another corpus"):
        train(train_preset("tiny", **FAST), out, corpus=other, progress=False, resume=True)


def test_a_corrupt_checkpoint_through_the_cli_is_one_line(tmp_path):
    out = interrupted_run(tmp_path)
    ckpt = out / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    result = subprocess.run([sys.executable, "-m", "glassformer.cli", "train", "--preset", "tiny", "--out", str(out),
                             "--resume", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("glassformer train: error:")]
    assert len(lines) == 1 and "not a readable checkpoint" in lines[0], result.stderr


def test_programming_errors_keep_their_traceback():
    from glassformer.errors import report_user_errors

    def bug():
        raise TypeError("unsupported operand type(s)")

    with pytest.raises(TypeError):
        report_user_errors("train", bug)
    with pytest.raises(KeyError):
        report_user_errors("train", lambda: {}["missing"])
    assert report_user_errors("train", lambda: (_ for _ in ()).throw(ValueError("bad flag"))) == 2


# --- generation --------------------------------------------------------------------------------

def _tiny_model(**changes):
    from glassformer.model import build_model, preset

    torch.manual_seed(0)
    model = build_model(preset("tiny", **changes)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else None
    return model


def test_generation_stops_at_any_of_several_eos_ids():
    from glassformer.generate import beam_search, generate

    model = _tiny_model()
    free = generate(model, [5, 6, 7], 24, temperature=0).tolist()[3:]
    j = next(i for i in range(1, len(free)) if free[i] not in free[:i])  # a token that first appears at j
    unused = next(t for t in range(65) if t not in free)
    stopped = generate(model, [5, 6, 7], 24, temperature=0, eos_id=[unused, free[j]]).tolist()[3:]
    assert stopped == free[:j + 1], (free, stopped)  # stops at the second id of the list
    stop = free[0]  # the likeliest first token: at step 0 a candidate ends with it
    for order in ([unused, stop], [stop, unused]):  # the id may be first or second in the list
        seen = []
        beams = beam_search(model, [5, 6, 7], 8, num_beams=3, eos_id=order,
                            on_step=lambda step, cands: seen.append(cands))
        assert any(b.tokens == [stop] and fate == "finished" for b, fate in seen[0]), seen[0]
        for beam in beams:
            assert stop not in beam.tokens[:-1]  # nothing continues past an end-of-sequence id


def test_qwen3_style_eos_list_is_kept_when_loading(tmp_path):
    from hf_models import save_qwen3
    from tokenizers import Tokenizer, models

    from glassformer.pretrained import load_pretrained

    save_qwen3(tmp_path, vocab_size=101)
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [99, 100]}))
    _, tokenizer = load_pretrained(tmp_path)
    assert tokenizer.eos_id == [99, 100]


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_cached_and_uncached_generation_agree_after_the_window_slides(position):
    from glassformer.generate import generate

    model = _tiny_model(position=position, n_ctx=16)
    prompt = list(range(3, 13))
    kwargs = dict(temperature=0, truncate=True)
    cached = generate(model, prompt, 40, use_cache=True, **kwargs).tolist()      # 50 tokens > 3 windows of 16
    fresh = generate(model, prompt, 40, use_cache=False, **kwargs).tolist()
    assert len(cached) == 50 and cached == fresh
    sampled = [generate(model, prompt, 40, use_cache=c, temperature=1.0, seed=3, truncate=True).tolist()
               for c in (True, False)]
    assert sampled[0] == sampled[1]


def test_stream_decoder_flushes_a_partial_character():
    from glassformer.cli import StreamDecoder
    from glassformer.tokenizers.bpe import BPETokenizer

    tok = BPETokenizer.train("plain ascii text " * 20, vocab_size=260)
    ids = tok.encode("ok ") + list("👍".encode("utf-8"))[:2]  # the emoji's first 2 of 4 bytes, then the end
    decoder = StreamDecoder(tok)
    shown = "".join(decoder.push(i) for i in ids)
    assert shown == "ok "
    assert decoder.flush() == "\ufffd"  # the unfinished character is shown, not silently dropped


# --- tracing has a memory budget -----------------------------------------------------------------

def test_a_trace_over_the_memory_budget_is_refused_before_running():
    from glassformer.model import build_model, preset

    model = build_model(preset("tiny", n_ctx=64)).eval()
    ids = torch.randint(0, 65, (1, 64))
    need = model.trace_bytes(None, 64)
    logits, trace = model.run_with_trace(ids, budget=need)  # exactly fits
    assert abs(sum(t.numel() * t.element_size() for t in trace.values()) - need) == 0
    with pytest.raises(ValueError, match="GiB"):
        model.run_with_trace(ids, budget=need - 1)
    fits = model.max_trace_tokens(budget=need // 2)
    assert model.trace_bytes(None, fits) <= need // 2 < model.trace_bytes(None, fits + 1)
    only_resid = model.max_trace_tokens("blocks.*.resid_post", budget=need // 2)
    assert only_resid == 64  # a few hook names fit where all do not


def test_a_big_model_traces_only_what_fits():
    from glassformer.model import build_model, preset

    with torch.device("meta"):  # the shape of GPT-2 small without allocating its weights
        model = build_model(preset("gpt2"))
    fits = model.max_trace_tokens()
    assert 100 < fits < 1024  # all hooks over 1024 tokens would be ~2.6 GiB
    assert model.trace_bytes(None, fits) <= 2**30


def test_the_trace_command_caps_the_length_with_a_notice(monkeypatch, capsys):
    from glassformer import cli
    from glassformer.model import decoder

    monkeypatch.setattr(decoder, "TRACE_BUDGET_BYTES", 2_000_000)  # as if the model were much bigger
    assert cli.main(["trace", "--text", "To be, or not to be, that is the question. " * 6]) == 0
    out = capsys.readouterr()
    assert "GiB of memory; tracing the last" in out.err
    shown = int(out.out.split("tokens")[0].split()[-1])
    assert 1 <= shown < 200  # fewer tokens than the text has


# --- DDP: every rank takes the same stop decision -------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("case", ["time-limit", "nan"])
def test_ddp_ranks_agree_to_stop(tmp_path, case):
    args = ["--preset", "tiny", "--max-steps", "100000", "--batch-size", "8", "--dtype", "fp32", "--n-ctx", "32",
            "--eval-interval", "100000", "--checkpoint-interval", "100000", "--no-progress"]
    args += ["--time-limit", "1.5"] if case == "time-limit" else ["--lr", "1e6", "--grad-clip", "0", "--warmup-steps", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = tmp_path / "logs"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "--log-dir", str(logs), "--redirects", "3",
                             "-m", "glassformer.train", *args, "--out", str(tmp_path / "run")],
                            env=env, capture_output=True, text=True, timeout=180)  # a hang would time out
    if case == "time-limit":
        assert result.returncode == 0, result.stderr[-2000:]
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["steps"] < 100000 and rows[-1]["wall_time_s"] < 60
    else:
        assert result.returncode != 0
        per_rank = {f.parent.name: f.read_text() for f in logs.rglob("stderr.log")}
        assert sorted(per_rank) == ["0", "1"], per_rank
        for rank, text in per_rank.items():  # each rank stopped on its own: none was left waiting
            assert "stopped: loss became nan at step" in text, (rank, text[-2000:])


# --- durable checkpoints ---------------------------------------------------------------------------

def test_atomic_write_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "checkpoint.safetensors"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"new checkpoint"))
    assert target.read_bytes() == b"new checkpoint"
    assert len(synced) == 2
    assert str(synced[0]).startswith(str(tmp_path / ".checkpoint.safetensors."))  # the data, before the rename
    assert str(synced[1]) == str(tmp_path)                                        # the rename itself


# --- hub lookups report unexpected errors ----------------------------------------------------------

def test_unexpected_errors_in_hub_lookups_are_not_swallowed(monkeypatch, tmp_path):
    import huggingface_hub

    from glassformer import pretrained, registry

    def broken(*args, **kwargs):
        raise TypeError("a bug, not a missing file")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", broken)
    with pytest.raises(TypeError):
        registry.hub_cached("gpt2")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    with pytest.raises(TypeError):
        pretrained.resolve("some-user/some-model")


# --- the course --------------------------------------------------------------------------------------

def test_the_picker_says_when_the_saved_model_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from glassformer.course import common, store

    store.set_setting("model", "runs/deleted-run")
    loaded, problem = common.load_chosen("course")
    assert loaded.name == "course" and "runs/deleted-run" in problem and "not available" in problem
    store.set_setting("model", "course")
    assert common.load_chosen("course")[1] is None


def test_resume_honours_a_new_max_steps(tmp_path):
    out = interrupted_run(tmp_path)
    summary = train(train_preset("tiny", **{**FAST, "max_steps": 14}), out, progress=False, resume=True)
    assert summary["steps"] == 14


def test_an_old_format_checkpoint_is_named_as_such(tmp_path):
    from safetensors.torch import load_file, save_file

    out = interrupted_run(tmp_path)
    ckpt = out / "checkpoint.safetensors"
    from safetensors import safe_open
    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(ckpt))
    renamed = {}
    for i, key in enumerate(sorted(k for k in tensors if k.startswith("optim."))):
        renamed[f"optim.{i}.{key.rsplit('.', 1)[1]}"] = tensors[key]
    save_file({**{k: v for k, v in tensors.items() if not k.startswith("optim.")}, **renamed}, str(ckpt), metadata=meta)
    with pytest.raises(CheckpointError, match="older glassformer"):
        train(train_preset("tiny", **FAST), out, progress=False, resume=True)


def test_a_cached_trace_is_costed_by_its_new_tokens():
    from glassformer.model import build_model, preset

    model = build_model(preset("tiny", n_ctx=64)).eval()
    cache = model.new_cache(1, 64)
    model(torch.randint(0, 65, (1, 60)), cache=cache)
    one = model.trace_bytes(None, 1, n_keys=61)
    _, trace = model.run_with_trace(torch.randint(0, 65, (1, 1)), cache=cache, budget=one)  # fits exactly
    assert abs(sum(t.numel() * t.element_size() for t in trace.values()) - one) == 0
    assert one < model.trace_bytes(None, 61) / 10  # not costed as a 61 x 61 trace
