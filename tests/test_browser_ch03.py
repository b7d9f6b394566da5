"""Chapter 3 in a real browser: move RoPE's query position, pick a sinusoidal pair, drag q, see the
extrapolation chart measured on the page."""

from __future__ import annotations


import pytest

from browser_support import assert_clean, shot, svg_text, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def press(page, slider_index: int, key: str, times: int) -> None:
    slider = page.locator("[role=slider]").nth(slider_index)
    slider.scroll_into_view_if_needed()
    slider.focus()
    for _ in range(times):
        slider.press(key)


def test_chapter_3_rope_offset_sinusoid_pair_and_extrapolation(server, page):
    from glassformer.analysis import position_lab
    from glassformer.registry import load_model

    cfg = load_model("course").model.config
    rope = dict(head_dim=cfg.head_dim, theta=cfg.rope_theta, pair=0)
    page.goto(server.url + "/chapter/3")
    wait_for_chapter(page)

    # The extrapolation chart was measured on the page: one line per scheme.
    chart = svg_text(page, "loss vs window length")
    for scheme in ("learned", "sinusoidal", "rope", "alibi", "none"):
        assert scheme in chart

    # 1. RoPE: query position m 3 -> 6 (key at 7): the offset becomes 1 and the score is the library's.
    before = page.locator("text=/offset n − m = 4/").count()
    assert before >= 1
    press(page, 2, "ArrowRight", 3)                 # sliders: pair i, offset k, m, n, RoPE pair, ALiBi head
    expected = position_lab.rope_pair((1.5, 0.5), (0.5, 1.2), 6, 7, **rope)[2]
    page.wait_for_selector("text=/offset n − m = 1\\)/", timeout=20_000)
    assert page.locator(f"text={expected:.6f}").count() >= 1
    assert page.locator("text=/keep n − m = 1 and move the query/").count() >= 1

    # 2. Sinusoidal: dimension pair 2 -> 5; the curve's title follows, and the shift check still holds.
    assert "pair 2: dimensions 4 and 5" in svg_text(page, "pair 2: dimensions")
    press(page, 0, "ArrowRight", 3)
    wait_until(page, lambda: page.locator("svg:has-text('pair 5: dimensions 10 and 11')").count() >= 1,
               "the curve of pair 5")

    # 3. Drag q's tip one unit left: (1.5, 0.5) -> (0.5, 0.5); the plain dot product with k = (0.5, 1.2) follows.
    handle = page.locator("circle.gf-handle[data-name='q']").first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    unit = (280 - 2 * 14) / 4                       # DragVectors: size 280, extent 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(cx - unit * i / 5, cy)
    page.mouse.up()
    page.wait_for_selector(f"text=q · k before rotating: {0.5 * 0.5 + 0.5 * 1.2:.4f}", timeout=20_000)
    expected = position_lab.rope_pair((0.5, 0.5), (0.5, 1.2), 6, 7, **rope)[2]
    page.wait_for_selector(f"text={expected:.6f}", timeout=20_000)   # the rotated score follows the drag too

    assert_clean(page, "chapter 3")
    shot(page, "chapter03")
