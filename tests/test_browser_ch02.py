"""Chapter 2 in a real browser: picking another token of the text redraws its neighbours, and
"train again" retrains the bigram model with a new seed."""

from __future__ import annotations


import pytest

from browser_support import assert_clean, shot, wait_for_chapter, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_chapter_2_token_choice_and_bigram_retraining(server, page):
    from glassformer.analysis import embedding_space
    from glassformer.course.common import DEFAULT_TEXT
    from glassformer.course.widgets import token_label
    from glassformer.registry import load_model

    course = load_model("course")
    table = course.model.embed.tok.weight.detach()
    page.goto(server.url + "/chapter/2")
    wait_for_chapter(page, timeout=120)
    page.wait_for_selector("text=/Trained 200 steps \\(seed 0\\)/", timeout=60_000)

    # Pick the first token of the text: the neighbour chart must now be about it, with its real neighbours.
    first = DEFAULT_TEXT[0]
    select = page.locator("select", has=page.locator("option", has_text="(id ")).first
    select.select_option(label=next(o for o in select.locator("option").all_inner_texts() if o.startswith("0: ")))
    title = f"nearest neighbours of '{first}'"
    wait_until(page, lambda: page.locator(f"svg:has-text(\"{title}\")").count() > 0, "chart did not redraw")
    best, cosine = embedding_space.nearest(table, course.tokenizer.ids[first], 1)[0]
    page.wait_for_selector(f"text=Its nearest neighbour is {token_label(course.tokenizer.token_bytes(best))} "
                           f"with cosine {cosine:.3f}", timeout=10_000)
    chart = page.locator(f"svg:has-text(\"{title}\")").first.inner_html()
    assert f">{token_label(course.tokenizer.token_bytes(best))}<" in chart  # its nearest neighbour is a bar label

    # One position back along the text: the comparison chart is redrawn for that position.
    last = len(course.tokenizer.encode(DEFAULT_TEXT)) - 1
    page.wait_for_selector(f"text=next-token probabilities after position {last}", timeout=10_000)
    position = page.locator("[role=slider]").nth(2)  # neighbours shown, training steps, position
    position.focus()
    position.press("ArrowLeft")
    page.wait_for_selector(f"text=next-token probabilities after position {last - 1}", timeout=20_000)

    # Train again: a new seed, a new run, reported on the page.
    page.locator("button", has_text="train again").first.click()
    page.wait_for_selector("text=/Trained 200 steps \\(seed 1\\)/", timeout=60_000)
    assert_clean(page, "chapter 2")
    page.locator("text=All chapters").first.scroll_into_view_if_needed()  # the screenshot starts at the top
    shot(page, "chapter02")
