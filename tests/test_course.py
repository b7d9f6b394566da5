"""Every built chapter runs headless as a script; the progress store survives reopening."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from glassformer.course import catalog, store
from run_chapters import picker_chapters

BUILT = [c for c in catalog.CHAPTERS if c.built]


@pytest.fixture(autouse=True)
def learner_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_built_chapters():
    assert [c.key for c in BUILT] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "A", "B"]


@pytest.fixture(scope="session")
def headless(headless_runs):
    return headless_runs["course"].results()


@pytest.mark.slow
@pytest.mark.parametrize("chapter", BUILT + [catalog.TEMPLATE], ids=[c.key for c in BUILT] + ["template"])
def test_chapter_runs_as_a_script(chapter, headless):
    result = headless[chapter.key]
    assert result["ok"], result["error"]


@pytest.mark.parametrize("text", ["", "x" * 5000, "emoji 🙂 中文 \x00\x07 control", "ü ß é ñ"])
def test_any_text_is_prepared_without_an_exception(text):
    from glassformer.course.common import prepare
    from glassformer.registry import load_model

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


def test_home_page_marks_unbuilt_chapters_as_coming(monkeypatch):
    from glassformer.course.server import home_page

    page = home_page()
    assert page.count("coming</span>") == len(catalog.CHAPTERS) - len(BUILT)
    planned = catalog.Chapter("14", "A chapter not written yet", "Planned.", "ch14_not_written.py")
    monkeypatch.setattr(catalog, "CHAPTERS", [*catalog.CHAPTERS, planned])   # every real chapter is built now
    page = home_page()
    assert page.count("coming</span>") == len(catalog.CHAPTERS) - len(BUILT) >= 1
    assert 'href="/chapter/8/"' in page and 'href="/chapter/14/"' not in page


@pytest.fixture
def cached_gpt2(tmp_path, monkeypatch):
    from hf_models import make_gpt2_cache

    hub = make_gpt2_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    return hub


def test_a_cached_hub_model_is_offered_and_loads_offline(cached_gpt2):
    from glassformer.course.common import load_chosen, prepare
    from glassformer.registry import available_models

    entries = {e.name: e for e in available_models()}
    assert entries["gpt2"].available and "cache" in entries["gpt2"].description
    assert not entries["qwen3-0.6b"].available and "offline" in entries["qwen3-0.6b"].reason
    loaded, problem = load_chosen("gpt2")
    assert problem is None and loaded.name == "gpt2" and not loaded.is_char_level
    for text in ["", "To be 🙂 中文 \x00", "be " * 500]:
        prepared = prepare(loaded, text)
        assert 1 <= len(prepared.ids) <= loaded.model.config.n_ctx
        assert loaded.tokenizer.decode(prepared.ids)  # real tokens, not placeholders
    assert prepare(loaded, "be " * 500).notices  # truncated, and the page says so
    from glassformer.registry import hub_tokenizer  # chapter 1's third column: the tokenizer file alone

    text = "To be, or not to be 🙂"
    assert hub_tokenizer("gpt2").encode(text) == loaded.tokenizer.encode(text)


@pytest.fixture(scope="session")
def headless_bpe(headless_runs):
    return headless_runs["bpe"].results()


def test_the_chapters_on_the_pickers_model():
    assert picker_chapters() == ["0", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12"]


@pytest.mark.slow
@pytest.mark.parametrize("key", picker_chapters())
def test_chapter_runs_on_a_bpe_model(key, headless_bpe):
    """The chapters' BPE-model paths (multi-byte tokens, a 64-token context) run without an error."""
    result = headless_bpe[key]
    assert result["ok"], result["error"]
    assert not [w for w in result["warnings"] if "could not load" in w], result["warnings"]  # no silent fall back


def test_quiz_options_are_shuffled_so_the_answer_position_is_no_hint():
    import ast

    from glassformer.course.widgets.quiz import Question

    positions = []
    for chapter in BUILT:
        source = (catalog.CHAPTER_DIR / chapter.module).read_text()
        assert f'header("{chapter.key}")' not in source and f'quiz("{chapter.key}"' not in source  # from the catalog
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Question":
                key, prompt, options, answer = (ast.literal_eval(a) for a in node.args[:4])
                shown = Question(key, prompt, options, answer, "").shown_options()
                assert sorted(shown) == sorted(options) and shown == Question(key, prompt, options, answer, "").shown_options()
                positions.append(shown.index(options[answer]))
    assert len(positions) >= 10 and len(set(positions)) >= 3, positions  # the right answer moves around


# Bold words in chapters that are emphasis or slider names, not terms the chapter introduces.
NOT_TERMS = {"your", "one", "step", "when does it stop?", "by hand first.", "quirks", "b", "t", "d", "v"}


def test_every_bold_term_of_a_chapter_is_in_the_glossary_and_every_link_resolves():
    import re

    from glassformer.course import glossary

    names = {n.lower() for t in glossary.TERMS for n in (t.name, *t.aliases)}
    symbols = {s.lower() for s, _ in glossary.SYMBOLS}
    for term in glossary.TERMS:
        assert catalog.chapter(term.chapter).built, f"{term.name!r} links to unbuilt chapter {term.chapter}"
    missing = []
    for chapter in BUILT:
        source = (catalog.CHAPTER_DIR / chapter.module).read_text()
        for bold in re.findall(r"\*\*([^*{}\n]{1,60})\*\*", source):
            word = bold.strip().lower()
            if word in NOT_TERMS or word in symbols or word.startswith(("right", "not quite")):
                continue
            if word not in names and word.rstrip("s") not in names and word + "s" not in names:
                missing.append((chapter.key, bold))
    assert not missing, f"bold terms not in the glossary: {missing}"
    assert [t.name for t in glossary.search("NUCLEUS")] == ["top-p"] and len(glossary.search("")) == len(glossary.TERMS)
