"""Chapter 10 in chromium: the tile-by-tile walk moves to the next (query tile, key tile) block
when its slider moves, and the k slider re-runs speculative decoding with the library's numbers."""

from __future__ import annotations

import re

import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_10_tile_walk_and_speculative_k(server, page):
    page.goto(server.url + "/chapter/10")
    wait_for_chapter(page, timeout=120)
    assert page.locator("text=queries 0-3 after keys 0-3").count() >= 1     # the first visit

    # The tile walk's slider (the second slider: tokens generated, visit, window, k): one step right is
    # the second visit, query tile 4-7 against key tile 0-3 (the loop's order, tiles of 4).
    slider = page.locator("[role=slider]").nth(1)
    slider.focus()
    slider.press("ArrowRight")
    wait_until(page, lambda: page.locator("text=queries 4-7 after keys 0-3").count() >= 1,
               "the running max/sum chart did not move to the second tile visit")

    # k from 4 to 1: one guess per round, so the number of target calls changes and the text stays greedy's.
    line = lambda: page.locator("text=/target calls instead of/").first.inner_text()  # noqa: E731
    before = line()
    k = page.locator("[role=slider]").nth(3)
    k.focus()
    k.press("Home")   # straight to the minimum: one change, one re-run (three arrow presses re-ran it thrice)
    wait_until(page, lambda: "k = 1" in line(), f"k did not change: {line()!r}")
    assert line() != before and "Same text as plain greedy: yes" in line(), line()
    calls = int(re.search(r"(\d+) target calls", line()).group(1))
    assert 32 <= calls <= 64, line()   # k = 1: each round adds 1 or 2 tokens of the 64
    assert_clean(page, "chapter 10")
    shot(page, "chapter10")
