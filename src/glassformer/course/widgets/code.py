"""Show the real source of the library function behind a figure."""

from __future__ import annotations

import inspect
from pathlib import Path

import marimo as mo

import glassformer


def code_panel(obj, title: str | None = None, note: str = "", highlight: str | tuple[str, ...] = ()) -> mo.Html:
    """obj's source, highlighted, headed by its module path and line numbers (inspect, not a copy).

    highlight: text(s) whose lines get a yellow background, e.g. the line that made the tensor
    shown beside the code."""
    obj = inspect.unwrap(obj)            # a decorated function: its own source and file, not the decorator's
    lines, start = inspect.getsourcelines(obj)
    file = Path(inspect.getsourcefile(obj)).resolve()
    root = Path(glassformer.__file__).resolve().parent.parent
    where = file.relative_to(root) if file.is_relative_to(root) else file.name
    name = title or f"{obj.__module__}.{obj.__qualname__}"
    header = f"**`{name}`** &nbsp; <small>`{where}` lines {start}–{start + len(lines) - 1}</small>"
    marks = (highlight,) if isinstance(highlight, str) else tuple(highlight)
    hot = [i + 1 for i, line in enumerate(lines) if any(m in line for m in marks)]
    parts = [mo.md(header)]
    if note:
        parts.append(mo.md(note))
    if hot:  # pygments draws line numbers and the highlighted lines; markdown code blocks cannot
        from pygments import highlight as render
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(hl_lines=hot, linenos="inline", linenostart=start, noclasses=True,
                                  style="friendly", hl_color="#fde68a")
        parts.append(mo.Html(f'<div style="font-size: 0.82rem; overflow-x: auto">'
                             f'{render("".join(lines), PythonLexer(), formatter)}</div>'))
    else:
        parts.append(mo.md("```python\n" + "".join(lines) + "```"))
    return mo.vstack(parts, gap=0.25)
