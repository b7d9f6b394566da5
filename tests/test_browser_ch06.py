"""Chapter 6 in chromium: stepping through the block moves to the next sub-layer (the bar strip's
title, its length ‖x‖ as the library's trace gives it, and the highlighted line of Block.forward);
the dropout table shows eval mode is deterministic."""

from __future__ import annotations

import re

import pytest
import torch

from browser_support import assert_clean, shot, svg_text, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_6_step_through_the_block(server, page):
    from glassformer.analysis import block_anatomy
    from glassformer.course.common import DEFAULT_TEXT
    from glassformer.registry import load_model

    course = load_model("course")
    ids = torch.tensor([course.tokenizer.encode(DEFAULT_TEXT)])
    with torch.no_grad():
        _, trace = course.model.run_with_trace(ids, "blocks.0.*")
    walk = block_anatomy.walk_block(trace, 0, ids.shape[1] - 1, pre_norm=True)

    page.goto(server.url + "/chapter/6")
    wait_for_chapter(page)
    assert f"‖x‖ = {walk[0].norm:.3f}" in svg_text(page, "step 1 · resid_pre")

    slider = page.locator("[role=slider]").nth(2)  # layer, token position, step through the block
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    wait_until(page, lambda: page.locator("svg:has-text('step 3 · attn_out')").count() >= 1,
               "the bar strip did not move to step 3 (attention's output)")
    assert f"‖x‖ = {walk[2].norm:.3f}" in svg_text(page, "step 3 · attn_out")
    assert page.locator("text=Step 3: attention's output").count() >= 1
    # The highlighted line of the real Block.forward is attention's line (pygments gives the highlighted
    # lines a background colour; line-number spans are transparent).
    marked = page.locator("span[style*='background-color: rgb(255, 255, 204)'], "   # the browser reports rgb()
                          "span[style*='background-color: rgb(253, 230, 138)']")
    wait_until(page, lambda: any("self.attn(" in t for t in marked.all_inner_texts()),
               "Block.forward's attention line is not highlighted")

    # Dropout: two evaluation-mode runs agree exactly, two training-mode runs do not.
    row = page.locator("text=/evaluation mode, run 1 vs run 2/").first
    assert row.count() == 1
    table = page.locator("table:has-text('evaluation mode, run 1 vs run 2')").first.inner_text()
    assert re.search(r"evaluation mode, run 1 vs run 2\s+0\b", table), table
    train = float(re.search(r"training mode, run 1 vs run 2\s+([0-9.e+-]+)", table).group(1))
    assert train > 0, table
    assert_clean(page, "chapter 6")
    shot(page, "chapter06")
