"""What the learner made survives: a new training run keeps the old one, an ended run is reaped
whichever page stopped it, an oversized text is cut before any per-character work and never saved,
and a damaged progress file is set aside (and named) instead of breaking every page."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from glassformer.course import live_training
from test_ch09_training import wait_for  # the live-training tests' poll-until helper


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (Z = zombie), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_new_run_keeps_the_previous_one_and_an_ended_run_is_reaped(tmp_path):
    folder = tmp_path / "runs" / "live"
    folder.mkdir(parents=True)
    (folder / "checkpoint.safetensors").write_bytes(b"the learner's resumable run")
    (folder / "metrics.jsonl").write_text('{"step": 100, "train_loss": 2.0}\n')
    # A run that ends at once (an unknown preset): only its reaping matters here.
    info = live_training.launch(tmp_path, folder, ["--preset", "no-such-preset"])
    kept = Path(info["kept"])
    assert kept.parent == folder.parent and kept.name.startswith("live-")
    assert (kept / "checkpoint.safetensors").read_bytes() == b"the learner's resumable run"
    assert (kept / "metrics.jsonl").exists() and not (folder / "checkpoint.safetensors").exists()
    # Nobody polls: the launching process must still reap its child once it exits (no zombie).
    wait_for(lambda: (folder / "exit.json").exists(), 60, "the run to end")
    wait_for(lambda: _state(info["pid"]) in (None,), 10, f"pid {info['pid']} to be reaped (state {_state(info['pid'])})")
    # A second start keeps the first one's folder too, under another name.
    again = live_training.launch(tmp_path, folder, ["--preset", "no-such-preset"])
    assert again["kept"] and Path(again["kept"]) != kept and (Path(again["kept"]) / "train.log").exists()
    wait_for(lambda: (folder / "exit.json").exists(), 60, "the second run to end")


def test_resume_keeps_the_folder_in_place(tmp_path):
    folder = tmp_path / "live"
    folder.mkdir()
    (folder / "checkpoint.safetensors").write_bytes(b"x")
    assert live_training.keep_aside(tmp_path / "missing") is None
    assert live_training.keep_aside(tmp_path / "empty") is None
    info = live_training.launch(tmp_path, folder, ["--preset", "no-such-preset"], resume=True)
    assert info["kept"] is None and (folder / "checkpoint.safetensors").exists()
    wait_for(lambda: (folder / "exit.json").exists(), 60, "the run to end")


def test_an_oversized_text_is_cut_before_any_per_character_work(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    from glassformer.course import common
    from glassformer.registry import load_model

    loaded = load_model("course")
    huge = "To be, or not to be: that is the question.\n" * 25_000  # about 1.1 million characters
    prepared = common.prepare(loaded, huge)
    assert len(prepared.text) == common.MAX_TEXT_CHARS
    assert any(f"{common.MAX_TEXT_CHARS:,}" in n and f"{len(huge):,}" in n for n in prepared.notices)
    assert len(prepared.strip) <= loaded.model.config.n_ctx
    box = common.text_box()
    assert box._args.args["max-length"] == common.MAX_TEXT_CHARS


def test_the_store_refuses_oversized_values(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    from glassformer.course import store

    with pytest.raises(ValueError, match="at most"):
        store.set_setting("text", "x" * (store.MAX_SETTING_BYTES + 1))
    assert store.get_setting("text", "default") == "default"
    store.set_setting("text", "short")
    assert store.get_setting("text") == "short"


@pytest.mark.parametrize("damage", ["garbage", "torn"])
def test_a_damaged_progress_file_is_set_aside_and_named(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    from glassformer.course import server, store

    path = tmp_path / "progress.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:  # a real store with pages overwritten in the middle, as a write cut short leaves it
        with sqlite3.connect(path) as conn:
            conn.executescript(store.SCHEMA)
            conn.executemany("INSERT INTO settings VALUES (?, ?)", [(f"k{i}", json.dumps("v" * 500)) for i in range(200)])
        data = bytearray(path.read_bytes())
        data[4096:4096 * 6] = b"\xff" * (4096 * 5)
        path.write_bytes(bytes(data))
    assert store.progress() == {}
    store.mark_visited("0")
    assert store.progress()["0"]["visited"]
    damaged = store.damaged_files()
    assert [p.parent for p in damaged if p.parent == tmp_path] and all(p.exists() for p in damaged)
    aside = next(p for p in damaged if p.parent == tmp_path)
    assert aside.name.startswith("progress.sqlite3.damaged-")
    assert str(aside) in server.home_page()


def test_an_io_error_is_not_mistaken_for_a_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    from glassformer.course import store

    store.mark_visited("0")                                   # a healthy store, checked once
    store._checked.discard(tmp_path / "progress.sqlite3")     # as if a new process opened it
    real_open = store._open

    def failing_once(path):
        monkeypatch.setattr(store, "_open", real_open)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_open", failing_once)
    with pytest.raises(sqlite3.OperationalError):
        store.progress()
    assert not [p for p in store.damaged_files() if p.parent == tmp_path]
    assert store.progress()["0"]["visited"]                   # the file is still there, untouched
