"""A small matrix as a plain table of numbers, for pages where the reader checks digits by hand.

    number_table([[1, 2], [3, 4]], ["the", "cat"], ["d0", "d1"], title="x", highlight=(1, 0))

Every value is printed to `digits` decimals; −∞ is written as such (greyed), and the
highlighted cell (the one a "check my answer" box asks for) gets a yellow background.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import marimo as mo

CELL = "padding: 2px 8px; text-align: right; font-family: ui-monospace, monospace; font-size: 0.85rem"
HEAD = "padding: 2px 8px; font-size: 0.78rem; color: #475569; font-weight: 600"


def format_number(v: float, digits: int | None = 3) -> str:
    """How a table prints one value: −∞ for minus infinity, a true minus sign, `digits` decimals
    (None: as written, for hand-chosen weights like 2, 0.5, −1)."""
    if math.isinf(v):
        return "−∞" if v < 0 else "∞"
    text = f"{v:g}" if digits is None else f"{v:.{digits}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")  # -0.000 prints as 0.000
    return text.replace("-", "−")


def table_html(values: Sequence[Sequence[float]], row_labels: Sequence[str], col_labels: Sequence[str], *,
               title: str = "", highlight: tuple[int, int] | None = None, digits: int | None = 3) -> str:
    head = "".join(f'<th style="{HEAD}">{html.escape(str(c))}</th>' for c in col_labels)
    body = []
    for r, (label, row) in enumerate(zip(row_labels, values)):
        cells = []
        for c, v in enumerate(row):
            style = CELL
            if highlight == (r, c):
                style += "; background: #fde68a; outline: 2px solid #d97706; font-weight: 700"
            elif math.isinf(v) or v == 0:
                style += "; color: #94a3b8"   # zeros and −∞ recede: the numbers that matter stand out
            cells.append(f'<td style="{style}">{format_number(float(v), digits)}</td>')
        body.append(f'<tr><th style="{HEAD}; text-align: left">{html.escape(str(label))}</th>{"".join(cells)}</tr>')
    caption = (f'<caption style="caption-side: top; text-align: left; font-weight: 600; font-size: 0.85rem; '
               f'padding-bottom: 2px">{title}</caption>') if title else ""
    return (f'<table class="gf-numbers" style="border-collapse: collapse; border: 1px solid #e2e8f0; '
            f'margin: 0">{caption}<thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def number_table(values: Sequence[Sequence[float]], row_labels: Sequence[str], col_labels: Sequence[str], *,
                 title: str = "", highlight: tuple[int, int] | None = None, digits: int | None = 3) -> mo.Html:
    """values (rows × columns, lists or a 2-D tensor's .tolist()) as an HTML table."""
    return mo.Html(table_html(values, row_labels, col_labels, title=title, highlight=highlight, digits=digits))
