"""The course in a real browser: Debian's chromium driven by Playwright.

Opens the home page and every built chapter, waits for the outputs, fails on any marimo error
output or console error, performs one interaction per chapter, saves a screenshot of each page
(out/screenshots/), and checks that quiz progress is kept on disk for a new server process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from browser_support import ERROR_TEXTS, assert_clean, shot, svg_text, wait_for_chapter
from course_server import Server, free_port
from glassformer.course.catalog import CHAPTERS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_home_page_lists_chapters(server, page):
    page.goto(server.url + "/")
    assert page.title() == "glassformer"
    for ch in CHAPTERS:
        assert page.locator(f"text={ch.title}").count() >= 1
    coming = [c for c in CHAPTERS if not c.built]
    assert page.locator("text=coming").count() == len(coming)
    assert_clean(page, "home")
    shot(page, "home")


def test_chapter_0_pipeline_stage_click(server, page):
    from glassformer.course.common import DEFAULT_TEXT
    from glassformer.registry import load_model

    course = load_model("course")
    T, D = len(course.tokenizer.encode(DEFAULT_TEXT)), course.model.config.d_model
    page.goto(server.url + "/chapter/0")
    wait_for_chapter(page)
    assert page.locator(f"text=[1, {T}, D={D}]").count() >= 1  # the shape of the learner's text, computed
    page.locator("text=3 · vectors").first.click()
    page.wait_for_selector("text=embeddings: [1,", timeout=20_000)
    assert_clean(page, "chapter 0")
    shot(page, "chapter0")


def test_chapter_1_merge_slider_changes_the_tokens(server, page):
    page.goto(server.url + "/chapter/1")
    wait_for_chapter(page, timeout=120)
    before = page.locator("text=/^Merge \\d+:/").first.inner_text()
    slider = page.locator("[role=slider]").nth(2)  # vocabulary, corpus size, merges applied
    slider.focus()
    for _ in range(5):
        slider.press("ArrowRight")
    merge = page.locator("text=/^Merge \\d+:/").first
    number = lambda text: int(text.split()[1].rstrip(":"))  # noqa: E731
    expected = number(before) + 5  # five steps right: merges may arrive one by one, so wait for the last
    deadline = time.time() + 20
    while time.time() < deadline and number(merge.inner_text()) != expected:
        page.wait_for_timeout(100)
    assert number(merge.inner_text()) == expected, f"the shown merge went from {before!r} to {merge.inner_text()!r}"
    assert_clean(page, "chapter 1")
    shot(page, "chapter1")


def test_chapter_8_temperature_slider_redraws_the_distribution(server, page):
    page.goto(server.url + "/chapter/8")
    wait_for_chapter(page)
    title = "next token:"
    before = svg_text(page, title)
    slider = page.locator("[role=slider]").first  # temperature
    slider.focus()
    for _ in range(6):
        slider.press("ArrowLeft")
    deadline = time.time() + 20
    while time.time() < deadline and svg_text(page, title) == before:
        page.wait_for_timeout(100)
    assert svg_text(page, title) != before, "the distribution did not change with the temperature"
    assert_clean(page, "chapter 8")
    shot(page, "chapter8")


def test_quiz_progress_is_kept_on_disk_for_a_new_server_process(server, data_dir, browser):
    """An answer given on the session's server is shown by a second server process started on the
    same learner data (what a restart does: nothing is kept in the first process's memory)."""
    import threading

    second = Server(data_dir)
    starting = threading.Thread(target=second.start)   # it reads nothing until a page is opened on it
    starting.start()
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(server.url + "/chapter/8")
    wait_for_chapter(pg)
    pg.locator("text=Exactly the same text").first.click()
    pg.wait_for_selector("text=Right.", timeout=20_000)
    context.close()
    starting.join()
    try:
        assert second.proc is not None and second.proc.poll() is None, "the second server did not start"
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(second.url + "/")
        row = pg.locator("li", has_text="From logits to words")
        assert "quiz 1/1" in row.inner_text()
        pg.goto(second.url + "/chapter/8")
        wait_for_chapter(pg)
        pg.wait_for_selector("text=Right.", timeout=20_000)  # the saved answer is restored
        context.close()
    finally:
        second.stop()


def test_appendix_b_glossary_search(server, page):
    from glassformer.course import glossary

    page.goto(server.url + "/chapter/B")
    page.wait_for_selector(f"text=/{len(glossary.TERMS)} of {len(glossary.TERMS)} terms/", timeout=90_000)
    box = page.get_by_placeholder("search: a word, e.g. nucleus, bytes, greedy")
    box.fill("nucleus")
    box.press("Enter")
    page.wait_for_selector(f"text=/1 of {len(glossary.TERMS)} terms match/", timeout=20_000)
    assert page.locator("a[href='/chapter/8/']", has_text="From logits to words").count() >= 1  # the link to where it is taught
    assert_clean(page, "appendix B")
    shot(page, "appendixB")


def test_glassformer_edit_opens_the_chapter_in_marimos_editor(tmp_path, browser):
    import re
    import threading

    port = free_port()
    env = {**os.environ, "GLASSFORMER_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "glassformer.cli", "edit", "8", "--dir", str(tmp_path / "mine"),
                             "--no-browser", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.time() + 60
        url = None
        while time.time() < deadline and url is None:
            found = [m.group(0) for line in lines for m in [re.search(r"http://(127\.0\.0\.1|localhost):\d+\S*", line)]
                     if m]
            url = found[0] if found else None
            time.sleep(0.3)
        assert url and "access_token" in url, "".join(lines)[-2000:]  # marimo's token authentication is on
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.goto(url)
        pg.wait_for_selector("text=common.header(this.key)", timeout=90_000)   # the chapter's code, editable
        pg.wait_for_selector("text=Chapter 8", timeout=90_000)                 # and it ran: its header rendered
        for text in ERROR_TEXTS:
            assert pg.locator(f"text={text}").count() == 0, f"edit: error output: {text}"
        shot(pg, "edit-chapter8")
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in "".join(lines), "".join(lines)[-3000:]
