"""Every built chapter runs headless as a script; the progress store survives reopening."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from glassformer.course import catalog, store

BUILT = [c for c in catalog.CHAPTERS if c.built]


@pytest.fixture(autouse=True)
def learner_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_first_three_chapters_are_built():
    assert [c.key for c in BUILT] == ["0", "1", "8"]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", BUILT, ids=[c.key for c in BUILT])
def test_chapter_runs_as_a_script(chapter):
    path = catalog.CHAPTER_DIR / chapter.module
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("text", ["", "x" * 5000, "emoji 🙂 中文 \x00\x07 control", "ü ß é ñ"])
def test_any_text_is_prepared_without_an_exception(text):
    from glassformer.course.common import prepare
    from glassformer.models import load_model

    loaded = load_model("course")
    prepared = prepare(loaded, text)
    assert 1 <= len(prepared.ids) <= loaded.model.config.n_ctx
    assert max(prepared.ids) < loaded.tokenizer.vocab_size
    if text in ("", "x" * 5000) or any(c not in loaded.tokenizer.ids for c in text):
        assert prepared.notices  # every substitution is explained on the page


def test_progress_is_kept_across_connections():
    store.record_answer("8", "seed", 1, True)
    store.record_answer("8", "beam", 0, False)
    store.mark_visited("8")
    store.set_setting("model", "course")
    assert store.answers("8") == {"seed": (1, True), "beam": (0, False)}
    assert store.progress()["8"] == {"visited": True, "answered": 2, "correct": 1}
    store.reset()
    assert store.progress() == {} and store.get_setting("model") == "course"


def test_home_page_marks_unbuilt_chapters_as_coming():
    from glassformer.course.server import home_page

    page = home_page()
    assert page.count("coming</span>") == len(catalog.CHAPTERS) - len(BUILT)
    assert 'href="/chapter/8/"' in page and 'href="/chapter/5/"' not in page
