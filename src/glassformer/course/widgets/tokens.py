"""The token strip: text shown as the tokens the model sees (an anywidget, plain JS, no build)."""

from __future__ import annotations

import anywidget
import traitlets

PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#f5d0fe"]


def token_label(piece: bytes) -> str:
    """How a token's bytes are shown: visible whitespace, escaped control bytes, partial UTF-8 as hex."""
    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in piece)
    out = []
    for ch in text:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("⇥")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def token_rows(tokenizer, ids: list[int]) -> list[dict]:
    """One dict per token for the strip: label, id, bytes as hex, colour index."""
    rows = []
    for i, token_id in enumerate(ids):
        piece = tokenizer.token_bytes(token_id)
        rows.append({"label": token_label(piece), "id": int(token_id), "hex": piece.hex(" "), "color": i % len(PALETTE)})
    return rows


_ESM = """
function render({ model, el }) {
  const palette = %PALETTE%;
  const draw = () => {
    el.innerHTML = "";
    const box = document.createElement("div");
    box.className = "gf-strip";
    const tokens = model.get("tokens");
    const selected = model.get("selected");
    tokens.forEach((t, i) => {
      const span = document.createElement("span");
      span.className = "gf-token" + (t.unknown ? " gf-unknown" : "") + (i === selected ? " gf-selected" : "");
      span.style.background = t.unknown ? "#e5e7eb" : palette[t.color % palette.length];
      span.textContent = t.label;
      span.dataset.index = i;
      const tip = t.unknown ? `not in the vocabulary: ${t.label}` :
        `position ${i} · id ${t.id} · bytes ${t.hex}`;
      span.title = tip;
      span.setAttribute("aria-label", tip);
      span.addEventListener("click", () => { model.set("selected", i); model.save_changes(); });
      box.appendChild(span);
    });
    if (tokens.length === 0) {
      const empty = document.createElement("span");
      empty.className = "gf-empty";
      empty.textContent = "(no tokens)";
      box.appendChild(empty);
    }
    el.appendChild(box);
  };
  model.on("change:tokens", draw);
  model.on("change:selected", draw);
  draw();
}
export default { render };
"""

_CSS = """
.gf-strip { display: flex; flex-wrap: wrap; gap: 3px; font-family: ui-monospace, monospace; font-size: 15px;
            line-height: 1.9; padding: 6px 0; }
.gf-token { padding: 1px 4px; border-radius: 4px; cursor: pointer; white-space: pre; color: #111;
            border: 1px solid rgba(0,0,0,0.08); }
.gf-token:hover { outline: 2px solid #2563eb; }
.gf-selected { outline: 2px solid #dc2626; }
.gf-unknown { text-decoration: line-through; color: #6b7280; }
.gf-empty { color: #6b7280; font-style: italic; }
"""


class TokenStrip(anywidget.AnyWidget):
    """tokens: list of {label, id, hex, color, unknown?}; selected: index clicked (-1 = none)."""

    _esm = _ESM.replace("%PALETTE%", str(PALETTE))
    _css = _CSS
    tokens = traitlets.List([]).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
