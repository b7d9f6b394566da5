"""What a user can get wrong gets one line that names the flag, the file or the folder, and the
cause, with exit status 2, before anything runs: never a traceback, never a run that trains on a
NaN, never the wrong reason. The commands are run for real (`cli.main`, in this process so that the
whole file stays fast); the library's own checks (sampling, generate) are called directly."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from course_server import free_port
from safetensors import SafetensorError

from glassformer import cli
from glassformer.checkpoint import save_model_folder
from glassformer.data import tinyshakespeare_bytes
from glassformer.generate import beam_search, generate
from glassformer.model import build_model, preset
from glassformer.sampling import distribution, filter_logits, next_token
from glassformer.tokenizers.char import CharTokenizer

REPO = Path(__file__).resolve().parents[1]


def error_line(err: str, command: str) -> str:
    """The one error line of a command's stderr (other lines may be progress notes, never a traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"glassformer {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_bytes(tinyshakespeare_bytes()[:20_000])
    return path


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, corpus) -> Path:
    """A tiny model folder as `glassformer train` writes one."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(corpus.read_text())
    model = build_model(preset("tiny", vocab_size=tokenizer.vocab_size, n_ctx=16, d_model=16, n_layers=1, n_heads=2))
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_model_folder(model.eval(), tokenizer, folder)
    return folder


# --- glassformer train --------------------------------------------------------------------------

# A model of a few thousand weights and three steps: should a check be missing, the run is quick.
QUICK = ["--no-progress", "--max-steps", "3", "--eval-interval", "3", "--dtype", "fp32", "--n-ctx", "16",
         "--d-model", "16", "--n-layers", "1", "--n-heads", "2"]


def train_cli(capsys, out: Path, corpus: Path | None, *flags: str) -> tuple[int, str]:
    args = ["train", "--out", str(out), *QUICK, *flags] + (["--corpus", str(corpus)] if corpus else [])
    code = cli.main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [
    ("--min-lr", "-1"),          # trained with a negative learning rate, exit 0
    ("--min-lr", "nan"),         # blamed on "the learning rate is probably too high"
    ("--weight-decay", "nan"),   # the same
    ("--grad-clip", "nan"),      # silently no clipping
    ("--time-budget", "nan"),    # "cannot convert float NaN to integer", after the calibration steps
    ("--time-limit", "nan"),     # never stops early
    ("--lr", "inf"),
    ("--warmup-steps", "-5"),
    ("--seed", str(2**64)),      # "Overflow when unpacking long long", naming no flag
    ("--dropout", "nan"),        # refused, but naming a ModelConfig field rather than the flag
])
def test_train_refuses_a_bad_number_before_training_naming_the_flag(capsys, tmp_path, corpus, flag, value):
    code, err = train_cli(capsys, tmp_path / "run", corpus, flag, value)
    line = error_line(err, "train")
    assert code == 2 and line.startswith(f"glassformer train: error: {flag} "), err
    assert value in line or str(float(value)) in line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before the first step


@pytest.mark.parametrize("flags, said", [
    (["--n-experts", "-1"], "--n-experts must be >= 0"),
    (["--n-experts", "4", "--experts-per-token", "5"], "--experts-per-token must be between 1 and n_experts (4), got 5"),
    (["--n-experts", "4", "--experts-per-token", "0"], "--experts-per-token must be between 1 and n_experts (4), got 0"),
    (["--n-experts", "4", "--d-expert", "0"], "--d-expert must be positive"),
    (["--n-experts", "4", "--balance-weight", "nan"], "--balance-weight must be a finite number >= 0, got nan"),
    (["--n-experts", "4", "--mlp", "none"], "--mlp must name the experts' kind"),
    (["--experts-per-token", "2"], "--experts-per-token applies only to a mixture of experts"),  # else: ignored
    (["--d-expert", "8"], "--d-expert applies only to a mixture of experts"),
    (["--balance-weight", "0.1"], "--balance-weight applies only to a mixture of experts"),
    (["--n-experts", "10000000000"], "--n-experts 10000000000 needs at least"),              # else: killed for memory
])
def test_train_refuses_bad_expert_settings_naming_the_flag(capsys, tmp_path, corpus, flags, said):
    code, err = train_cli(capsys, tmp_path / "run", corpus, *flags)
    line = error_line(err, "train")
    assert code == 2 and line.startswith(f"glassformer train: error: {said}"), err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before the first step


def test_a_corpus_too_short_for_the_context_is_refused_at_the_start(capsys, tmp_path):
    short = tmp_path / "short.txt"
    short.write_bytes(tinyshakespeare_bytes()[:150])  # 15 characters of validation text, context 16
    code, err = train_cli(capsys, tmp_path / "run", short)
    line = error_line(err, "train")
    assert code == 2 and "too short for a context of 16" in line and "at least 170 characters" in line, err
    assert not (tmp_path / "run").exists()


def test_a_corpus_that_is_a_folder_is_called_a_folder(capsys, tmp_path):
    code, err = train_cli(capsys, tmp_path / "run", tmp_path)
    line = error_line(err, "train")
    assert code == 2 and "is a folder" in line and "does not exist" not in line, err


def test_a_context_too_long_for_memory_is_refused_with_the_estimate_before_allocating(capsys, tmp_path):
    # bf16 training takes the eager attention path: 1 layer of (16 rows, 2 heads, 100000, 100000) bf16
    # weights, 640 GB (TinyShakespeare's validation split, 111,540 characters, holds such a window).
    code, err = train_cli(capsys, tmp_path / "run", None, "--n-ctx", "100000", "--dtype", "bf16")
    line = error_line(err, "train")
    assert code == 2 and line.startswith("glassformer train: error: --n-ctx 100000 needs at least 640.0 GB"), err
    assert not (tmp_path / "run").exists()


def test_a_full_disk_while_saving_is_one_line_naming_the_folder_and_the_cause(capsys, tmp_path, corpus, monkeypatch):
    def disk_full(tensors, path, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("glassformer.checkpoint.save_file", disk_full)
    out = tmp_path / "run"
    code, err = train_cli(capsys, out, corpus, "--max-steps", "1", "--eval-interval", "1")  # saves after step 1
    line = error_line(err, "train")
    assert code == 2 and str(out) in line and "No space left on device" in line, err
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written file left


@pytest.mark.skipif(os.name != "posix", reason="the file size limit (RLIMIT_FSIZE) is POSIX")
def test_a_write_the_system_refuses_names_the_folder_and_the_cause(tmp_path, monkeypatch):
    """The same with a real failing write: under a file size limit the kernel refuses safetensors' write."""
    import resource
    import signal

    model = build_model(preset("tiny"))  # 400 KB of weights
    tokenizer = CharTokenizer.train("abc")
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a .pyc cut short by the limit would break its module
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then an oversized write fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(OSError) as caught:
            save_model_folder(model, tokenizer, out)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(out) in str(caught.value) and "File too large" in str(caught.value), caught.value
    assert isinstance(caught.value.__cause__, SafetensorError)  # safetensors met it, in a real write
    assert os.listdir(out) == []  # no half-written file left behind


# --- a model folder with a damaged file ---------------------------------------------------------

def damaged_copy(folder: Path, tmp_path: Path, name: str, change) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    text = (copy / name).read_text()
    (copy / name).write_text(change(text))
    return copy


def edit_json(edit):
    def change(text: str) -> str:
        data = json.loads(text)
        edit(data)
        return json.dumps(data)
    return change


@pytest.mark.parametrize("name, change, field", [
    ("config.json", edit_json(lambda d: d.pop("model")), "'model'"),                              # KeyError
    ("config.json", edit_json(lambda d: d["model"].update(n_layers="4")), "n_layers"),            # TypeError
    ("config.json", edit_json(lambda d: d["model"].update(d_model=16.5)), "d_model"),
    ("tokenizer.json", lambda text: text[:-1], "not valid JSON"),             # said without the file
    ("tokenizer.json", edit_json(lambda d: d.pop("chars")), "'chars'"),                           # KeyError
    ("tokenizer.json", edit_json(lambda d: d.update(chars=["ab"])), "'chars'"),
    ("tokenizer.json", lambda text: json.dumps({"kind": "bpe", "merges": [[1]]}), "'merges'"),
], ids=["no-model", "n_layers-string", "d_model-float", "not-json", "no-chars", "chars-not-single", "bad-merges"])
def test_a_damaged_model_folder_names_the_file_and_the_field(capsys, tmp_path, model_folder, name, change, field):
    folder = damaged_copy(model_folder, tmp_path, name, change)
    code = cli.main(["generate", "--model", str(folder), "--max-new-tokens", "1"])
    captured = capsys.readouterr()
    line = error_line(captured.err, "generate")
    assert code == 2 and str(folder / name) in line and field in line, captured.err
    assert captured.out == ""


# --- glassformer start: the address --------------------------------------------------------------

@pytest.fixture
def no_server(monkeypatch):
    """Should the address checks let a bad address through, fail at once instead of serving."""
    def refuse(name="course"):
        raise RuntimeError("the server was about to start")

    monkeypatch.setattr("glassformer.registry.load_model", refuse)


def test_start_refuses_a_port_out_of_range(capsys, no_server):
    code = cli.main(["start", "--port", "99999", "--no-browser"])  # was an OverflowError traceback
    line = error_line(capsys.readouterr().err, "start")
    assert code == 2 and line.startswith("glassformer start: error: --port ") and "65535" in line


def test_start_on_an_address_of_another_machine_says_so_not_port_in_use(capsys, no_server):
    port = free_port()  # a port nobody holds: only the address can be wrong; 192.0.2.1 is TEST-NET-1 (RFC 5737)
    code = cli.main(["start", "--host", "192.0.2.1", "--port", str(port), "--no-browser"])
    line = error_line(capsys.readouterr().err, "start")
    assert code == 2 and "--host 192.0.2.1 is not an address of this machine" in line and "in use" not in line, line


# --- sampling -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(preset("tiny")).eval()


LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0])


def test_a_nan_top_p_is_refused_not_ignored():
    for fn in (next_token, distribution, filter_logits):
        with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got nan"):
            fn(LOGITS, 1.0, None, math.nan)


@pytest.mark.parametrize("knobs, name", [({"top_p": -1.0}, "top_p"), ({"top_k": 0}, "top_k"),
                                         ({"min_p": 2.0}, "min_p"), ({"min_p": math.nan}, "min_p")])
def test_temperature_zero_still_checks_the_other_knobs(knobs, name):
    for fn in (next_token, distribution):
        with pytest.raises(ValueError, match=name):
            fn(LOGITS, temperature=0, **knobs)


def test_generate_refuses_float_ids_as_the_model_does(tiny):
    assert generate(tiny, [1, 2], 2, temperature=0).tolist()[:2] == [1, 2]
    with pytest.raises(TypeError, match="integer"):
        generate(tiny, [1.0, 2.7], 2, temperature=0)   # was silently truncated to [1, 2]
    with pytest.raises(TypeError, match="integer"):
        tiny(torch.tensor([[1.0, 2.7]]))                # what the model itself says


def test_beam_search_refuses_a_nan_length_penalty(tiny):
    assert all(math.isfinite(b.score) for b in beam_search(tiny, [1, 2], 3, num_beams=2))
    with pytest.raises(ValueError, match="length_penalty must be a finite number, got nan"):
        beam_search(tiny, [1, 2], 3, num_beams=2, length_penalty=math.nan)  # was NaN scores


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--top-p", "nan"), ("--top-k", "0"),
                                         ("--temperature", "-1")])
def test_generate_names_the_flag_and_prints_nothing_before_the_error(capsys, model_folder, flag, value):
    code = cli.main(["generate", "--model", str(model_folder), "--prompt", "ROMEO:", flag, value])
    captured = capsys.readouterr()
    line = error_line(captured.err, "generate")
    assert code == 2 and line.startswith(f"glassformer generate: error: {flag} "), captured.err
    assert "greedy()" not in line and captured.out == ""  # the prompt is not printed before the error


# --- CI runs every test -----------------------------------------------------------------------------

def test_ci_sets_ci_true_itself(tmp_path):
    """.ci/run must export CI=true: without it the browser tests skip when chromium is missing."""
    fake_make = tmp_path / "make"
    fake_make.write_text('#!/bin/sh\necho "make $* with CI=${CI-unset}"\n')
    fake_make.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["bash", str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "make test with CI=true", result
