"""Show the real source of the library function behind a figure."""

from __future__ import annotations

import inspect
from pathlib import Path

import marimo as mo

import glassformer


def code_panel(obj, title: str | None = None, note: str = "") -> mo.Html:
    """obj's source, highlighted, headed by its module path and line numbers (inspect, not a copy)."""
    lines, start = inspect.getsourcelines(obj)
    file = Path(inspect.getsourcefile(obj)).resolve()
    root = Path(glassformer.__file__).resolve().parent.parent
    where = file.relative_to(root) if file.is_relative_to(root) else file.name
    name = title or f"{obj.__module__}.{obj.__qualname__}"
    header = f"**`{name}`** &nbsp; <small>`{where}` lines {start}–{start + len(lines) - 1}</small>"
    body = "```python\n" + "".join(lines) + "```"
    parts = [mo.md(header)]
    if note:
        parts.append(mo.md(note))
    parts.append(mo.md(body))
    return mo.vstack(parts, gap=0.25)
