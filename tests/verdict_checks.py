"""Checks that a page's speed verdicts follow from the figures printed beside them (timing.py's rule).

A figure reads "2.31× (1.94–2.60×, 9 runs in turns)": the median ratio, its interval and the
number of runs. The rule: "faster" only when the whole interval is above 1 + margin and there
were enough runs for a 95% interval (6), "slower" only when it is below 1 / (1 + margin), and
otherwise "no clear difference". Figures are printed to 2 decimals, so comparisons allow for
that rounding.
"""

from __future__ import annotations

import re

from glassformer import timing

NUMBER = r"(\d[\d,]*\.?\d*)"
FIGURE = rf"{NUMBER}× \({NUMBER}–{NUMBER}×, (\d+) runs in turns\)"
ROUNDING = 0.006


def number(text: str) -> float:
    return float(text.replace(",", ""))


def figure_values(match: re.Match, start: int = 1) -> tuple[float, float, float, int]:
    x, low, high, runs = (match.group(start + i) for i in range(4))
    return number(x), number(low), number(high), int(runs)


def expected_verdict(low: float, high: float, runs: int) -> set[str]:
    """The verdicts the rule allows for a printed interval (two where rounding leaves it open)."""
    if runs < 6:
        return {"unclear"}
    allowed = set()
    if low > 1 + timing.MARGIN - ROUNDING:
        allowed.add("faster")
    if high < 1 / (1 + timing.MARGIN) + ROUNDING:
        allowed.add("slower")
    if low <= 1 + timing.MARGIN + ROUNDING and high >= 1 / (1 + timing.MARGIN) - ROUNDING:
        allowed.add("unclear")
    return allowed


def check_figure(x: float, low: float, high: float, runs: int) -> None:
    assert low - ROUNDING <= x <= high + ROUNDING, f"median {x} outside its interval {low}–{high}"
    assert runs >= 1


def table_verdicts(text: str) -> list[tuple[float, float, float, int, str]]:
    """(median, low, high, runs, verdict) of every table row where a figure cell is followed by a verdict cell."""
    rows = []
    pattern = rf"<td>{FIGURE}</td>\s*<td>(?:<strong>|<em>)?(faster|slower|no clear difference)"
    for m in re.finditer(pattern, text):
        word = m.group(5)
        rows.append((*figure_values(m), "unclear" if word == "no clear difference" else word))
    return rows


def check_rows(rows) -> None:
    for x, low, high, runs, verdict in rows:
        check_figure(x, low, high, runs)
        assert verdict in expected_verdict(low, high, runs), (x, low, high, runs, verdict)
