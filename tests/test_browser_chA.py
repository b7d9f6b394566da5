"""Appendix A in chromium: the toy's tables render, a wrong answer in a "check my answer" box shows
the slip and the working, the right one is accepted, and a new sentence recomputes the tables."""

from __future__ import annotations

import time

import pytest

from browser_support import assert_clean, shot, wait_for_chapter
from glassformer.toys import worked_example as we
from glassformer.course.widgets.number_table import format_number

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORDER = list(we.STEPS)  # the answer boxes, in page order


def expected(sentence: str) -> dict[str, we.Check]:
    model = we.build()
    prepared = we.prepare(sentence)
    _, trace = we.run(model, prepared.ids)
    return we.checks(model, trace, prepared.words)


def test_appendix_a_check_my_answer(server, page):
    page.goto(server.url + "/chapter/A")
    wait_for_chapter(page)
    checks = expected(we.DEFAULT_SENTENCE)
    assert list(checks) == ORDER
    softmax = checks["softmax"].working
    boxes = page.locator("input[placeholder='your number']")
    assert boxes.count() == len(ORDER)
    box = boxes.nth(ORDER.index("softmax"))

    box.fill("0.83")  # the scores divided by their sum, without e^x: a known slip
    box.press("Enter")
    page.wait_for_selector("text=without exponentiating", timeout=20_000)
    assert page.locator("text=Find the first line where yours differs").count() == 1
    total_line = next(line for line in softmax.lines if line.startswith("sum = "))
    assert page.locator(f"text={total_line}").count() >= 1  # the working: e^score per key, then their sum

    box.fill(f"{softmax.value:.3f}")
    box.press("Enter")
    page.wait_for_selector(f"text=Right: the model computed {softmax.value:.4f}", timeout=20_000)

    mask = boxes.nth(ORDER.index("mask"))
    mask.fill("hello")
    mask.press("Enter")
    page.wait_for_selector("text=is not a number I can read", timeout=20_000)

    # a new sentence: the toy reruns, the highlighted numbers follow it
    dog = expected("the dog ran")
    sentence = page.locator("textarea").first
    sentence.fill("the dog ran")
    sentence.press("Tab")
    page.wait_for_selector("text=After “the dog ran” the toy's favourite next word is", timeout=20_000)
    z_value = format_number(dog["z"].working.value)
    assert page.locator(f"td:text-is('{z_value}')").count() >= 1

    # positions off: head 1's keys read only the position dimension, so it spreads its weight evenly
    head1 = page.locator("table:has(caption:text-is('head 1: weights a')) td")
    before = head1.all_inner_texts()
    page.locator("[role=checkbox]").first.click()  # "switch the positions off", the page's only checkbox
    even = ["1.000", "0.000", "0.000", "0.500", "0.500", "0.000", "0.333", "0.333", "0.333"]
    deadline = time.time() + 20
    while time.time() < deadline and head1.all_inner_texts() != even:
        page.wait_for_timeout(100)
    assert head1.all_inner_texts() == even and before != even, before
    assert_clean(page, "appendix A")
    page.locator("text=All chapters").first.scroll_into_view_if_needed()  # the shot starts at the top
    shot(page, "chapterA")
