"""Altair charts used across chapters. All render as SVG so their text is real text (and
testable), and all carry tooltips with the exact numbers."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np

SVG = {"embedOptions": {"renderer": "svg", "actions": False}}


def _data(rows: list[dict]) -> alt.Data:
    return alt.Data(values=rows)


def prob_bars(labels: Sequence[str], probs: Sequence[float], *, kept: Sequence[bool] | None = None,
              chosen: int | None = None, before: Sequence[float] | None = None, title: str = "",
              width: int = 560, height: int = 220) -> alt.Chart:
    """Bars of probabilities, one per token (in the given order).

    kept: False greys a bar out (removed by a filter); chosen: index drawn in red;
    before: the probabilities before filtering, drawn as outlines behind the bars.
    """
    rows = []
    for i, (label, p) in enumerate(zip(labels, probs)):
        status = "chosen" if i == chosen else ("kept" if kept is None or kept[i] else "removed")
        row = {"rank": i, "token": f"{label}", "key": f"{i:03d} {label}", "p": float(p), "status": status}
        if before is not None:
            row["before"] = float(before[i])
        rows.append(row)
    x = alt.X("key:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 4)", labelAngle=0,
                                                         labelFontSize=13, labelFont="monospace"))
    tooltip = [alt.Tooltip("token:N", title="token"), alt.Tooltip("p:Q", title="probability", format=".4f")]
    if before is not None:
        tooltip.append(alt.Tooltip("before:Q", title="before filtering", format=".4f"))
    color = alt.Color("status:N", legend=alt.Legend(title=None, orient="top"),
                      scale=alt.Scale(domain=["kept", "removed", "chosen"], range=["#2563eb", "#cbd5e1", "#dc2626"]))
    bars = alt.Chart(_data(rows)).mark_bar().encode(x=x, y=alt.Y("p:Q", title="probability",
                                                                 scale=alt.Scale(domain=[0, max(1e-9, max(
                                                                     [r["p"] for r in rows] +
                                                                     [r.get("before", 0) for r in rows]))])),
                                                  color=color, tooltip=tooltip)
    layers = [bars]
    if before is not None:
        layers.insert(0, alt.Chart(_data(rows)).mark_bar(fillOpacity=0, stroke="#94a3b8", strokeDash=[3, 2])
                      .encode(x=x, y="before:Q", tooltip=tooltip))
    return alt.layer(*layers).properties(title=title, width=width, height=height, usermeta=SVG)


def matrix_heatmap(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *,
                   title: str = "", row_title: str = "row", col_title: str = "column", value_title: str = "value",
                   scheme: str = "blues", cell: int = 22, domain: tuple[float, float] | None = None,
                   max_width: int = 640) -> alt.Chart:
    """A 2-D array as coloured cells; hover shows row, column and the exact value."""
    values = np.asarray(values, dtype=float)
    rows = []
    for r, rl in enumerate(row_labels):
        for c, cl in enumerate(col_labels):
            v = values[r, c]
            rows.append({"r": f"{r:04d} {rl}", "c": f"{c:04d} {cl}", "row": f"{r}: {rl}", "col": f"{c}: {cl}",
                         "v": None if not np.isfinite(v) else float(v), "shown": "−∞" if np.isneginf(v) else f"{v:.4f}"})
    label = alt.Axis(labelExpr="slice(datum.label, 5)", labelFont="monospace", labelFontSize=12)
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    width = min(max_width, cell * len(col_labels))
    return alt.Chart(_data(rows)).mark_rect().encode(
        x=alt.X("c:N", sort=None, title=col_title, axis=alt.Axis(labelExpr="slice(datum.label, 5)",
                                                                labelFont="monospace", labelAngle=0)),
        y=alt.Y("r:N", sort=None, title=row_title, axis=label),
        color=alt.Color("v:Q", title=value_title, scale=scale),
        tooltip=[alt.Tooltip("row:N", title=row_title), alt.Tooltip("col:N", title=col_title),
                 alt.Tooltip("shown:N", title=value_title)],
    ).properties(title=title, width=width, height=cell * len(row_labels), usermeta=SVG)


def attention_heatmap(pattern: np.ndarray, labels: Sequence[str], *, title: str = "") -> alt.Chart:
    """pattern (T, S): row = query position, column = key position, value = attention weight."""
    return matrix_heatmap(pattern, labels, labels, title=title, row_title="query (attending from)",
                          col_title="key (attending to)", value_title="weight", scheme="purples", domain=(0, 1))


def line_chart(rows: list[dict], x: str, y: str, color: str | None = None, *, title: str = "",
               width: int = 560, height: int = 240, y_title: str | None = None) -> alt.Chart:
    enc = {"x": alt.X(f"{x}:Q", title=x), "y": alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(zero=False)),
           "tooltip": [alt.Tooltip(f"{x}:Q"), alt.Tooltip(f"{y}:Q", format=".4f")]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None)
        enc["tooltip"].append(alt.Tooltip(f"{color}:N"))
    return alt.Chart(_data(rows)).mark_line(point=True).encode(**enc).properties(
        title=title, width=width, height=height, usermeta=SVG)


def value_bars(labels: Sequence[str], values: Sequence[float], *, status: Sequence[str] | None = None,
               colors: dict[str, str] | None = None, details: Sequence[dict] | None = None, title: str = "",
               value_title: str = "value", width: int = 560, height: int = 200) -> alt.Chart:
    """Bars of signed values (scores, dot products), one per label, in the given order.

    status: a category per bar (coloured by `colors`, {category: CSS colour}, shown in a legend);
    details: extra {tooltip title: value} per bar, shown on hover beside the exact value.
    Non-finite values (a masked -inf score) are drawn as no bar and shown as "−∞" on hover."""
    rows = []
    for i, (label, v) in enumerate(zip(labels, values)):
        v = float(v)
        row = {"key": f"{i:04d} {label}", "token": f"{i}: {label}", "v": v if np.isfinite(v) else 0.0,
               "shown": f"{v:.4f}" if np.isfinite(v) else ("−∞" if v < 0 else "+∞"),
               "status": status[i] if status is not None else "value"}
        row.update({k: str(x) for k, x in (details[i] if details is not None else {}).items()})
        rows.append(row)
    extra = list(details[0]) if details else []
    tooltip = ([alt.Tooltip("token:N", title="position: token"), alt.Tooltip("shown:N", title=value_title)]
               + [alt.Tooltip(f"{k}:N", title=k) for k in extra])
    domain = list(colors) if colors else sorted({r["status"] for r in rows})
    color = alt.Color("status:N", legend=alt.Legend(title=None, orient="top"),
                      scale=alt.Scale(domain=domain, range=list(colors.values())) if colors else alt.Undefined)
    x = alt.X("key:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 5)", labelAngle=0,
                                                          labelFontSize=12, labelFont="monospace"))
    return alt.Chart(_data(rows)).mark_bar().encode(x=x, y=alt.Y("v:Q", title=value_title), color=color,
                                                   tooltip=tooltip).properties(title=title, width=width,
                                                                               height=height, usermeta=SVG)
