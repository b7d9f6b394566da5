"""Chapter 13 in chromium: the base model and the assistants answer the default request, a new request
typed in the box gets the right answer checked by the rule, and the LoRA rank slider recounts the
trainable parameters with the library's count."""

from __future__ import annotations

import copy

import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_13_answers_a_typed_request_and_the_rank_slider_recounts(server, page):
    from glassformer import lora
    from glassformer.registry import load_model

    page.goto(server.url + "/chapter/13")
    wait_for_chapter(page)
    assert page.locator("text=the right answer is `discontent`").count() + \
        page.locator("text=/right answer is\\s*discontent/").count() >= 1
    assert page.locator("text=/exactly right and the base model/").count() == 1

    box = page.locator("textarea").first
    box.fill("First word: Good morrow, cousin.")
    box.press("Tab")                                        # marimo sends a text area's value on blur
    wait_until(page, lambda: page.locator("text=/right answer is\\s*Good/").count() >= 1,
               "the answers did not follow the typed request")

    base = load_model("course").model
    counted = lora.add_lora(copy.deepcopy(base), 16)
    slider = page.locator("[role=slider]").nth(5)   # temperature, top-k, top-p, min-p, requests scored, then the rank
    slider.focus()
    slider.press("ArrowRight")                              # 8 -> 16
    wait_until(page, lambda: page.locator(f"text=/Counted on the model just now: {counted:,} trainable/").count() >= 1,
               f"the rank slider did not recount ({counted:,} expected)")
    assert_clean(page, "chapter 13")
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot(page, "chapter13")
