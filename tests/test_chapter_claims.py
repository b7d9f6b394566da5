"""Numbers the chapters print come from the computation they describe (checked against an
independent hand computation where there is one)."""

from __future__ import annotations

import importlib.util
import math
import re

import pytest

from glassformer.course import catalog

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def learner_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFORMER_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def page_text(key: str) -> str:
    """Run chapter `key` as marimo does and return all its outputs as one text."""
    chapter = catalog.chapter(key)
    spec = importlib.util.spec_from_file_location(f"chapter_{key}", catalog.CHAPTER_DIR / chapter.module)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs, _ = module.app.run()
    return "\n".join(str(getattr(o, "text", o)) for o in outputs if o is not None)


def test_chapter_0_shows_the_measured_difference_between_parallel_and_one_at_a_time():
    text = page_text("0")
    diffs = [float(x) for x in re.findall(r"<td>(\d\.\de[-+]\d+)</td>", text)]
    assert len(diffs) >= 2, "the timing table with max |Δ logit| per length is missing"
    assert all(abs(d) <= 1e-4 for d in diffs), diffs
    ratios = [float(x) for x in re.findall(r"<strong>([\d.]+)×</strong>", text)]
    assert len(ratios) >= 2 and all(r > 0 for r in ratios)


def test_chapter_8_hand_example_matches_a_hand_computation():
    text = page_text("8")
    e = [math.exp(2), math.exp(1), 1.0]
    soft = [v / sum(e) for v in e]
    e_half = [math.exp(4), math.exp(2), 1.0]
    half = [v / sum(e_half) for v in e_half]
    nucleus = [soft[0] / (soft[0] + soft[1]), soft[1] / (soft[0] + soft[1]), 0.0]
    for row in (soft, half, nucleus, [1.0, 0.0, 0.0]):
        cells = "</td>\n<td>".join(f"{p:.3f}" for p in row)
        assert cells in text, f"row {row} not on the page"


def test_chapter_1_steps_bpe_by_hand():
    text = page_text("1")
    # "aaabdaaabac": aa occurs 4 times, then ab and Za tie at 2 (the smaller ids win), then Z+Y.
    assert "a a: 4" in text and "a b: 2, Z a: 2" in text and "Z Y: 2" in text
    assert "[258, 100, 258, 97, 99]" in text
