"""Chapter 7 in chromium: the logit-lens focus slider moves the measured sentence to another position;
a string the reverser cannot take gives a notice; a valid one is reversed on the page exactly as the
library reverses it; switching cross-attention off shows the blind decoder's output; the live held-out
accuracy is the library's own number."""

from __future__ import annotations

import re

import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_7_lens_focus_reverser_input_and_accuracy(server, page):
    from glassformer.toys import reverser

    model, _ = reverser.load_reverser()
    page.goto(server.url + "/chapter/7")
    wait_for_chapter(page)
    assert page.locator("text=logit lens: the top token at each depth").count() >= 1

    # The focus slider: one step left moves the sentence to the previous position.
    focus_line = lambda: page.locator("text=/At the focus position .*position \\d+\\)/").first.inner_text()  # noqa: E731
    position = lambda: int(re.search(r"position (\d+)\)", focus_line()).group(1))  # noqa: E731
    before = position()
    slider = page.locator("[role=slider]").first
    slider.focus()
    slider.press("ArrowLeft")
    wait_until(page, lambda: position() == before - 1, "the focus sentence did not move to the previous position")

    # The reverser: a too-long string gives a notice; a valid one is reversed as the library reverses it.
    box = page.locator("input[type=text]").first
    box.fill("glassformers")
    box.press("Enter")
    page.wait_for_selector("text=/cannot go into this model: it has 12 characters/", timeout=20_000)
    word = "reverse"
    expected = reverser.reverse(model, word)
    box.fill(word)
    box.press("Enter")
    wait_until(page, lambda: page.locator(f"text=/Input {word} → output {expected}/").count() >= 1,
               f"the page did not show the reverser's output {expected!r}")
    assert page.locator("text=decoder layer 1, head 0").count() >= 1

    # Switching cross-attention off: the page shows what the blind decoder writes, as the library does.
    blind = reverser.reverse(model, word, cross_attention=False)
    page.locator("text=switch cross-attention off").first.click()
    wait_until(page, lambda: page.locator("text=/With cross-attention switched off/").count() >= 1,
               "switching cross-attention off did not report the blind output")
    shown = page.locator("text=/With cross-attention switched off/").first.inner_text()
    assert f"writes {blind or '(nothing)'}" in shown, (shown, blind)

    # The accuracy line is the library's measurement on the same strings.
    acc, misses = reverser.accuracy(model, reverser.random_words(300, 0))
    line = page.locator("text=/fresh held-out strings/").first.inner_text()
    assert f"{300 - len(misses)} of 300" in line and f"{acc:.1%}" in line, line
    assert_clean(page, "chapter 7")
    shot(page, "chapter07")
