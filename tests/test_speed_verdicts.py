"""Chapter 10's speed verdicts follow from the figures printed beside them, and its §3 claims hold
(one run of the page; chapters 0 and 1 are checked in test_chapter_claims.py)."""

from __future__ import annotations

import re

import pytest

import verdict_checks  # tests/verdict_checks.py

pytestmark = pytest.mark.slow


def test_chapter_10_verdicts_follow_their_intervals(course_page):
    text = course_page("10")  # the headless run of the page: default settings, course model

    rows = verdict_checks.table_verdicts(text)      # the KV cache table, then one row per tiled-attention length
    assert len(rows) == 1 + 2, rows                  # the course model; the default lengths 256 and 1024
    verdict_checks.check_rows(rows)

    spec = re.search(rf"speculative ran at {verdict_checks.FIGURE} plain greedy's speed: (?:<strong>|<em>)?"
                     r"(faster|slower|no clear difference)", text)
    assert spec, "the speculative decoding verdict is missing"
    verdict = {"no clear difference": "unclear"}.get(spec.group(5), spec.group(5))
    verdict_checks.check_rows([(*verdict_checks.figure_values(spec), verdict)])

    tiny = re.search(rf"int8 generation was (?:<strong>|<em>)?(faster|slower|not clearly faster or slower)"
                     rf"(?:</strong>|</em>)? than fp32 on this machine right now: it ran at {verdict_checks.FIGURE}", text)
    assert tiny, "the int8 speed sentence is missing"
    verdict = {"not clearly faster or slower": "unclear"}.get(tiny.group(1), tiny.group(1))
    verdict_checks.check_rows([(*verdict_checks.figure_values(tiny, 2), verdict)])

    # A cause of a speed result is stated as a hypothesis, never as a finding.
    for cause in ("Python's overhead", "caches", "per-call cost"):
        for sentence in re.findall(rf"[^.]*{re.escape(cause)}[^.]*\.", text):
            before = text[max(0, text.find(sentence) - 200):text.find(sentence) + len(sentence)]
            assert "hypothesis" in before, sentence

    # §3: the window losses sample the whole validation split; the weights' two formats are named;
    # the speculative section says which prompt it uses; "1 tokens" never appears.
    assert "spread evenly over the whole validation split" in text
    assert "fp16" in text and "of the shipped fp16 file" in text
    assert re.search(r"64 tokens after a \d+-character prompt", text)
    assert not re.search(r"\b1 tokens\b", text)
