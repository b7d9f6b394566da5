"""Chapter 11 in chromium: the whole page (quiz included) is complete within 20 s of navigation; a text
typed in the box is routed again, with the busiest expert the library finds for it; the layer slider
(the page's first) moves the load chart and its sentence to the next layer, with the library's numbers."""

from __future__ import annotations

import re
import time

import pytest
import torch

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TYPED = "To be, or not to be: that is the question."


def routing(text: str):
    """The shipped mixture's routing of `text`, by the library."""
    from glassformer.analysis import experts
    from glassformer.registry import load_model

    moe = load_model("moe")
    return experts.route(moe.model, torch.tensor(moe.tokenizer.encode(text)))


def busiest(layer: int, text: str) -> tuple[int, float]:
    """(expert, token share) of the shipped mixture's busiest expert in `layer` on `text`."""
    return routing(text).load().busiest[layer]


def shown_busiest(page, layer: int) -> tuple[int, str] | None:
    line = page.locator(f"text=/Layer {layer} on your text: the mixture's busiest expert/")
    if line.count() == 0:
        return None
    found = re.search(r"busiest expert, expert (\d+), gets\s*(\d+%)", line.first.inner_text())
    return (int(found.group(1)), found.group(2)) if found else None


def test_chapter_11_routes_a_typed_text_and_the_layer_slider_moves_the_load(server, page):
    started = time.perf_counter()
    page.goto(server.url + "/chapter/11")
    wait_for_chapter(page)
    seconds = time.perf_counter() - started - 0.5            # wait_for_chapter adds half a second
    assert seconds < 20, f"chapter 11 took {seconds:.1f} s to complete"
    assert page.locator("text=/forward tokens\\/s on this machine/").count() >= 1       # the measured table
    assert page.locator("text=/the mixture takes/").count() == 1

    box = page.locator("textarea").first
    box.fill(TYPED)
    box.press("Tab")                                          # marimo sends a text area's value on blur
    wait_until(page, lambda: page.locator(f"text=/your text \\({len(TYPED)} tokens\\)/").count() >= 1,
               "the routing strip did not follow the typed text")
    expert, share = busiest(0, TYPED)
    wait_until(page, lambda: shown_busiest(page, 0) == (expert, f"{share:.0%}"),
               f"layer 0's busiest expert should be expert {expert} with {share:.0%}: {shown_busiest(page, 0)}")
    # Hovering a character shows the router's probabilities: the last character in the last layer.
    r = routing(TYPED)
    last, layer = len(TYPED) - 1, r.probs.shape[0] - 1
    tip = page.locator(f"span[title^='{TYPED[-1]}  (position {last}, layer {layer})']").first.get_attribute("title")
    first = r.experts[layer, last, 0].item()
    assert f"expert {first}: {r.probs[layer, last, first].item():.1%}  ← chosen" in tip, tip

    slider = page.locator("[role=slider]").first              # the layer
    slider.focus()
    slider.press("ArrowRight")
    expert, share = busiest(1, TYPED)
    wait_until(page, lambda: shown_busiest(page, 1) == (expert, f"{share:.0%}"),
               f"layer 1's busiest expert should be expert {expert} with {share:.0%}: {shown_busiest(page, 1)}")
    assert page.locator("svg:has-text('layer 1: mixture of experts')").count() >= 1
    assert_clean(page, "chapter 11")
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    shot(page, "chapter11")
