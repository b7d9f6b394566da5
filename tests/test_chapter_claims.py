"""Numbers the chapters print come from the computation they describe (checked against an
independent hand computation where there is one)."""

from __future__ import annotations

import importlib.util
import math
import re

import pytest

import verdict_checks  # tests/verdict_checks.py
from glassformer.course import catalog

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def learner_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def page_text(key: str) -> str:
    """Run chapter `key` as marimo does and return all its outputs as one text (for a page in a state of
    the test's own; a page's default state comes from the `course_page` fixture, run once per session)."""
    chapter = catalog.chapter(key)
    spec = importlib.util.spec_from_file_location(f"chapter_{key}", catalog.CHAPTER_DIR / chapter.module)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs, _ = module.app.run()
    return "\n".join(str(getattr(o, "text", o)) for o in outputs if o is not None)


def test_chapter_0_shows_the_measured_difference_between_parallel_and_one_at_a_time(course_page):
    text = course_page("0")  # the headless run's page: default text, course model
    diffs = [float(x) for x in re.findall(r"<td>(\d\.\de[-+]\d+)</td>", text)]
    assert len(diffs) >= 2, "the timing table with max |Δ logit| per length is missing"
    assert all(abs(d) <= 1e-4 for d in diffs), diffs
    # Each row's verdict follows from the interval printed beside it (timing.py's rule) ...
    rows = verdict_checks.table_verdicts(text)
    assert len(rows) == len(diffs), rows
    verdict_checks.check_rows(rows)
    # ... and so does the trend sentence, from the first and last rows' intervals.
    trend = re.search(r"The advantage of one call (grows with the length|shrinks with the length|shows no clear "
                      r"trend)", text)
    assert trend, "the trend sentence is missing"
    (_, lo0, hi0, _, _), (_, lo1, hi1, _, _) = rows[0], rows[-1]
    if trend.group(1).startswith("grows"):
        assert lo1 >= hi0 - verdict_checks.ROUNDING, rows
    elif trend.group(1).startswith("shrinks"):
        assert hi1 <= lo0 + verdict_checks.ROUNDING, rows


def test_chapter_8_hand_example_matches_a_hand_computation(course_page):
    text = course_page("8")  # the headless run's page: default text, course model
    e = [math.exp(2), math.exp(1), 1.0]
    soft = [v / sum(e) for v in e]
    e_half = [math.exp(4), math.exp(2), 1.0]
    half = [v / sum(e_half) for v in e_half]
    nucleus = [soft[0] / (soft[0] + soft[1]), soft[1] / (soft[0] + soft[1]), 0.0]
    for row in (soft, half, nucleus, [1.0, 0.0, 0.0]):
        cells = "</td>\n<td>".join(f"{p:.3f}" for p in row)
        assert cells in text, f"row {row} not on the page"


def test_chapter_1_steps_bpe_by_hand(course_page):
    text = course_page("1")  # the headless run's page: default text, course model
    # "aaabdaaabac": aa occurs 4 times, then ab and Za tie at 2 (the smaller ids win), then Z+Y.
    assert "a a: 4" in text and "a b: 2, Z a: 2" in text and "Z Y: 2" in text
    assert "[258, 100, 258, 97, 99]" in text
    # The sentence beside the live timing chart: its word follows from the measured growth's interval
    # and the growth the multiply-add count predicts (no adjective about the chart is fixed in the prose).
    found = re.search(r"take ([\d.]+) times the work.*?the time grew <strong>([\d.]+)×</strong> from 16 to 128 "
                      r"tokens \(([\d.]+)–([\d.]+)×, (\d+) runs in turns\): (less than|more than|about what|too few)",
                      text, re.S)
    assert found, "the sentence comparing measured growth with the count is missing"
    predicted, x, low, high = (float(found.group(i)) for i in range(1, 5))
    word, slack = found.group(6), 0.06                    # printed to one decimal
    assert low - slack <= x <= high + slack
    if word == "less than":
        assert high < predicted / 1.1 + slack
    elif word == "more than":
        assert low > predicted * 1.1 - slack
    elif word == "about what":
        assert high >= predicted / 1.1 - slack and low <= predicted * 1.1 + slack


def test_chapter_4_counts_one_sided_queries_among_those_with_a_choice(course_page):
    """Position 0 has one key, itself, and always puts 100% there: the share of one-sided queries
    must leave it out. Recounted from the course model's own scores, with softmax by hand."""
    import torch

    from glassformer.course.common import DEFAULT_TEXT
    from glassformer.registry import load_model

    text = course_page("4")  # the headless run's page: default text, course model
    found = re.search(r"of the (\d+) queries with more than one key to choose from .*? lands on a single key in "
                      r"(\d+) with the division and in (\d+) without it", text)
    assert found, "the sentence about queries that put more than 99% on one key is missing"
    course = load_model("course")
    ids = course.tokenizer.encode(DEFAULT_TEXT)
    with torch.no_grad():
        _, trace = course.model.run_with_trace(torch.tensor([ids]), names=["blocks.0.attn.scores"])
    scores = trace["blocks.0.attn.scores"][0, 0].double().tolist()           # layer 0, head 0: what the page shows

    def one_sided(scale: float) -> int:
        count = 0
        for t in range(1, len(ids)):                                          # position 0: no choice
            row = [s * scale for s in scores[t][:t + 1]]
            top = max(row)
            weights = [math.exp(s - top) for s in row]
            count += max(weights) / sum(weights) > 0.99
        return count

    head_dim = course.model.config.head_dim
    assert [int(g) for g in found.groups()] == [len(ids) - 1, one_sided(1.0), one_sided(math.sqrt(head_dim))]


def test_chapter_3_blames_the_seed_not_the_text_when_a_shuffle_keeps_the_order():
    from glassformer.course import store

    store.set_setting("text", "abc")          # two tokens before the last: seed 0 leaves them in place
    text = page_text("3")
    assert "seed 0 happened to leave the tokens in the same order" in text
    assert "fewer than two come before the last" not in text and "The 3 tokens of your text" in text
    store.set_setting("text", "a")
    text = page_text("3")
    assert "only 1 token, so fewer than two come before the last" in text and "The 1 token of your text" in text


def test_chapter_9_says_whose_text_it_counts_when_it_falls_back():
    from glassformer.course import store

    store.set_setting("text", "a")            # one token: nothing to predict, so the page uses "To be"
    text = page_text("9")
    assert "The text “To be” (yours could not be used: see the note above) is 5 tokens long" in text
    assert "Your text is" not in text.replace("Your text is a single token", "")
