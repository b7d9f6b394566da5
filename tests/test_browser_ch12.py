"""Chapter 12 in chromium: the page finds the induction head on the default repeated sequence; switching
that head off reports the repeat's loss the library computes for the same ablation; a longer sequence
redraws the scores."""

from __future__ import annotations

import re

import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_12_finds_the_induction_head_and_switching_it_off_costs_the_repeat(server, page):
    from glassformer.analysis import induction
    from glassformer.registry import load_model

    page.goto(server.url + "/chapter/12")
    wait_for_chapter(page)
    toy = load_model("induction").model
    ids = induction.repeated_random(toy.config.vocab_size, 20, seed=7)          # the page's default: n = 20, seed 7
    scores = induction.head_scores(toy, ids, 20)
    layer, head = scores.best("induction")
    best = f"highest induction score is layer {layer}, head {head}'s: {scores.induction[layer, head]:.3f}"
    assert page.locator(f"text=/{best}/").count() == 1
    assert page.locator("text=on your sequence").count() >= 1                     # the composition table

    # Switch the best induction head off: the page's numbers are the library's.
    expected = induction.ablate(toy, ids, 20, [(layer, head)], before=scores)
    page.locator("[role=checkbox], input[type=checkbox]").nth(layer * toy.config.n_heads + head).click()
    wait_until(page, lambda: page.locator(f"text=Without L{layer}H{head}: loss on the repeat").count() >= 1,
               "switching the head off did not report the loss")
    shown = page.locator(f"text=/Without L{layer}H{head}: loss on the repeat/").first.inner_text()
    before, after = map(float, re.search(r"repeat ([0-9.]+) → ([0-9.]+)", shown).groups())
    assert abs(before - expected.loss_before[1]) < 0.006 and abs(after - expected.loss_after[1]) < 0.006, shown
    assert after - before >= 1.0, shown

    # A longer sequence: one step right on the length slider, and the sequence line follows.
    slider = page.locator("[role=slider]").first
    slider.focus()
    slider.press("ArrowRight")
    wait_until(page, lambda: page.locator("text=(42 tokens: the first 21").count() >= 1,
               "the sequence did not follow the length slider")
    assert_clean(page, "chapter 12")
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot(page, "chapter12")
