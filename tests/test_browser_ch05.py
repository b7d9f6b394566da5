"""Chapter 5 in chromium: switching a head off redraws the next-token distribution and reports the
validation loss without it; picking another layer redraws the all-heads grid; the KV-heads slider
changes the measured bytes."""

from __future__ import annotations

import re

import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_5_head_switch_layer_grid_and_kv_slider(server, page):
    from glassformer.analysis import ablation
    from glassformer.registry import load_model

    page.goto(server.url + "/chapter/5")
    wait_for_chapter(page)
    assert page.locator("text=all heads on").count() >= 1
    assert page.locator("text=layer 0: every head").count() >= 1

    # Switch off layer 0, head 2: the chart's title names it, and the page reports the validation loss
    # the library computes for the same ablation.
    course = load_model("course")
    val = ablation.validation_sample(course.tokenizer, windows=4, length=128)
    expected = ablation.loss_without(course.model.eval(), val, [(0, 2)])
    page.locator("[role=checkbox], input[type=checkbox]").nth(2).click()
    wait_until(page, lambda: page.locator("text=without 1 head: L0H2").count() >= 1,
               "the distribution's title did not name the switched-off head")
    shown = page.locator("text=/Loss on the validation sample: [0-9.]+ → [0-9.]+/").first.inner_text()
    after = float(re.search(r"validation sample: [0-9.]+ → ([0-9]+\.[0-9]+)", shown).group(1))
    assert abs(after - expected) < 2e-3, (shown, expected)

    # Another layer: the grid of all heads follows.
    page.locator("select").nth(1).select_option("2")          # model picker, layer, head, KV shape
    wait_until(page, lambda: page.locator("text=layer 2: every head").count() >= 1, "the grid did not change layer")

    # The KV-heads slider (Qwen3-0.6B shape, 8 KV heads as built): one step left = 4 KV heads, half the bytes.
    before = page.locator("text=/bytes per token \\(=/").first.inner_text()
    slider = page.locator("[role=slider]").last
    slider.focus()
    slider.press("ArrowLeft")
    wait_until(page, lambda: page.locator("text=/bytes per token \\(=/").first.inner_text() != before,
               "the KV bytes did not change with the slider")
    now = page.locator("text=/bytes per token \\(=/").first.inner_text()
    per_token = lambda s: int(re.search(r"([0-9,]+) bytes per token", s).group(1).replace(",", ""))  # noqa: E731
    assert per_token(now) * 2 == per_token(before) == 2 * 28 * 8 * 128 * 4, (before, now)
    assert_clean(page, "chapter 5")
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot(page, "chapter05")
