"""Chapter 4 in a real browser: drag the query arrow, click a token, switch the mask off."""

from __future__ import annotations


import pytest

from browser_support import assert_clean, shot, svg_text, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_4_drag_click_and_mask(server, page):
    from glassformer.course.common import DEFAULT_TEXT
    from glassformer.registry import load_model

    T = len(load_model("course").tokenizer.encode(DEFAULT_TEXT))
    page.goto(server.url + "/chapter/4")
    wait_for_chapter(page)

    # 1. Drag q's tip one unit to the left: (1.5, 0.5) -> (0.5, 0.5); the score table is recomputed from it.
    assert page.locator("text=(1.5)·(1.0) + (0.5)·(1.0)").count() >= 1          # q·k0 at the start
    handle = page.locator("circle.gf-handle[data-name='q']").first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    unit = (300 - 2 * 14) / 4                                                      # DragVectors: size 300, extent 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(cx - unit * i / 5, cy)
    page.mouse.up()
    page.wait_for_selector("text=(0.5)·(1.0) + (0.5)·(1.0)", timeout=20_000)     # q·k0 = 0.5 + 0.5
    assert page.locator("text=q = (0.5, 0.5)").count() >= 1                       # the exact coordinates shown
    for _ in range(3):                                                             # the dragged tip has the keys:
        page.keyboard.press("ArrowUp")                                             # 0.1 up per press
    page.wait_for_selector("text=(0.5)·(1.0) + (0.8)·(1.0)", timeout=20_000)     # q·k0 = 0.5 + 0.8

    # 2. Click the third token: it becomes the query, and step 1's chart is redrawn for it.
    assert page.locator(f"text=scores of query {T - 1}").count() >= 1
    page.locator(".gf-token").nth(2).click()
    page.wait_for_selector("text=Now: position 2", timeout=20_000)
    wait_until(page, lambda: page.locator("text=scores of query 2").count() >= 1, "step 1 redrawn for query 2")
    assert page.locator("text=step 2: attention weights of query 2 (keys 0…2 add up to").count() >= 1

    # 3. Switch the causal mask off: the pattern fills in above the diagonal, the row chart says so.
    page.locator("text=causal mask (−∞ on every later key)").first.click()
    wait_until(page, lambda: page.locator("text=every query also sees later keys").count() >= 1, "mask-off heatmap")
    assert "mask OFF" in svg_text(page, "mask OFF (outline: on)")

    assert_clean(page, "chapter 4")
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot(page, "chapter04")  # from the top: the drag above scrolled marimo's container
