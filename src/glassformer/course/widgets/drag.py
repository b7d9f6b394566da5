"""Draggable 2-D vectors: arrows from the origin on a grid, whose tips the learner drags
(an anywidget, plain JS, no build step).

In a marimo notebook:

    from glassformer.course.widgets import DragVectors
    arrows = mo.ui.anywidget(DragVectors(vectors=[
        {"name": "q", "x": 1.0, "y": 0.5, "color": "#dc2626"},
        {"name": "k1", "x": 0.8, "y": 1.2},
        {"name": "k1 rotated", "x": -0.4, "y": 1.4, "fixed": True, "dashed": True},  # drawn, not draggable
    ]))
    arrows                                   # one cell shows it
    DragVectors.coords(arrows.value)         # another cell reads it: {"q": (1.0, 0.5), "k1": (0.8, 1.2), ...}

Each vector is a dict: name (unique, shown at the tip), x, y, and optionally color (CSS),
fixed (True: drawn but not draggable, e.g. a vector computed from the others) and dashed.
Dragged tips snap to multiples of `step`, so the coordinates shown under the grid are exact.
While a tip is dragged, Python hears about it at most every `throttle_ms` milliseconds, and
once more on release; with `live=False` only on release (for expensive cells).
Keyboard: click a tip (or Tab to it), then the arrow keys move it by one `step`.
Python may also rewrite `vectors` (say, to update a fixed, computed vector): the drawing follows.
"""

from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#dc2626", "#2563eb", "#059669", "#7c3aed", "#d97706", "#0891b2", "#db2777", "#4b5563"];

function svg(tag, attrs, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(v, step) {
  const digits = Math.max(0, Math.min(6, Math.ceil(-Math.log10(step) - 1e-9)));
  return (Math.abs(v) < 1e-12 ? 0 : v).toFixed(digits);
}

function render({ model, el }) {
  let vectors = (model.get("vectors") || []).map(v => ({ ...v }));
  let active = -1;        // index being dragged
  let focused = -1;       // index the arrow keys move
  let lastSent = 0, pending = null;

  const root = document.createElement("div");
  root.className = "gf-drag";
  el.appendChild(root);
  const title = document.createElement("div");
  title.className = "gf-drag-title";
  root.appendChild(title);
  const box = svg("svg", { tabindex: 0, role: "application" }, null);
  root.appendChild(box);
  const table = document.createElement("div");
  table.className = "gf-drag-coords";
  root.appendChild(table);

  const geometry = () => {
    const size = model.get("size"), extent = model.get("extent"), pad = 14;
    const scale = (size - 2 * pad) / (2 * extent);
    return { size, extent, pad, scale,
             px: x => size / 2 + x * scale, py: y => size / 2 - y * scale,
             fromPx: (X, Y) => [(X - size / 2) / scale, (size / 2 - Y) / scale] };
  };

  const send = (force) => {
    const now = Date.now();
    const throttle = model.get("throttle_ms");
    if (!force && (!model.get("live") || now - lastSent < throttle)) {
      if (model.get("live") && !pending) pending = setTimeout(() => { pending = null; send(true); }, throttle);
      return;
    }
    if (pending) { clearTimeout(pending); pending = null; }
    lastSent = now;
    model.set("vectors", vectors.map(v => ({ ...v })));
    model.save_changes();
  };

  const snap = v => {
    const step = model.get("step"), extent = model.get("extent");
    const s = Math.round(v / step) * step;
    return Math.max(-extent, Math.min(extent, Number(s.toFixed(10))));
  };

  const draw = () => {
    const g = geometry(), step = model.get("step");
    title.textContent = model.get("title");
    box.innerHTML = "";
    box.setAttribute("width", g.size);
    box.setAttribute("height", g.size);
    box.setAttribute("viewBox", `0 0 ${g.size} ${g.size}`);
    const defs = svg("defs", {}, box);
    vectors.forEach((v, i) => {
      const color = v.color || PALETTE[i % PALETTE.length];
      const marker = svg("marker", { id: `gf-head-${i}-${uid}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
                                     markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }, marker);
    });
    // grid: a line every unit, the axes darker
    for (let t = -Math.floor(g.extent); t <= g.extent; t += 1) {
      const cls = t === 0 ? "gf-axis" : "gf-grid";
      svg("line", { x1: g.px(t), y1: g.py(-g.extent), x2: g.px(t), y2: g.py(g.extent), class: cls }, box);
      svg("line", { x1: g.px(-g.extent), y1: g.py(t), x2: g.px(g.extent), y2: g.py(t), class: cls }, box);
      if (t !== 0) {
        const lx = svg("text", { x: g.px(t), y: g.py(0) + 12, class: "gf-tick" }, box); lx.textContent = t;
        const ly = svg("text", { x: g.px(0) - 4, y: g.py(t) + 4, class: "gf-tick gf-tick-y" }, box); ly.textContent = t;
      }
    }
    vectors.forEach((v, i) => {
      const color = v.color || PALETTE[i % PALETTE.length];
      const group = svg("g", { class: "gf-vec" + (v.fixed ? " gf-fixed" : "") + (i === focused ? " gf-focused" : ""),
                               "data-name": v.name }, box);
      svg("line", { x1: g.px(0), y1: g.py(0), x2: g.px(v.x), y2: g.py(v.y), stroke: color, "stroke-width": 2.5,
                    "stroke-dasharray": v.dashed ? "5 4" : "none", "marker-end": `url(#gf-head-${i}-${uid})` }, group);
      // the name just beyond the tip, along the arrow, so that it does not sit on the arrowhead
      const len = Math.hypot(v.x, v.y), ux = len ? v.x / len : 0.7, uy = len ? v.y / len : 0.7;
      const label = svg("text", { x: g.px(v.x) + 16 * ux, y: g.py(v.y) - 16 * uy + 4, fill: color,
                                  class: "gf-label", "text-anchor": ux < -0.3 ? "end" : ux > 0.3 ? "start" : "middle" },
                        group);
      label.textContent = v.name;
      if (!v.fixed) {
        const handle = svg("circle", { cx: g.px(v.x), cy: g.py(v.y), r: 9, fill: color, "fill-opacity": 0.18,
                                       stroke: color, class: "gf-handle", "data-name": v.name }, group);
        const tip = svg("title", {}, handle);
        tip.textContent = `${v.name} = (${fmt(v.x, step)}, ${fmt(v.y, step)}): drag, or click and use the arrow keys`;
        handle.addEventListener("pointerdown", e => {
          active = i; focused = i;
          handle.setPointerCapture(e.pointerId);
          box.focus({ preventScroll: true });
          e.preventDefault();
          draw();
        });
      }
    });
    table.innerHTML = vectors.map((v, i) => {
      const color = v.color || PALETTE[i % PALETTE.length];
      return `<span class="gf-drag-coord" style="color:${color}">${v.name} = (${fmt(v.x, step)}, ${fmt(v.y, step)})` +
             `${v.fixed ? " <small>(computed)</small>" : ""}</span>`;
    }).join("");
  };

  const uid = Math.random().toString(36).slice(2, 8);

  box.addEventListener("pointermove", e => {
    if (active < 0) return;
    // client (screen) coordinates -> the drawing's own units, whatever CSS did to its size
    const g = geometry(), pt = box.createSVGPoint();
    pt.x = e.clientX; pt.y = e.clientY;
    const local = pt.matrixTransform(box.getScreenCTM().inverse());
    const [x, y] = g.fromPx(local.x, local.y);
    const nx = snap(x), ny = snap(y);
    if (nx === vectors[active].x && ny === vectors[active].y) return;
    vectors[active].x = nx; vectors[active].y = ny;
    draw();
    send(false);
  });
  const release = () => { if (active >= 0) { active = -1; send(true); draw(); } };
  box.addEventListener("pointerup", release);
  box.addEventListener("pointercancel", release);
  box.addEventListener("keydown", e => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (!(e.key in moves)) return;
    if (focused < 0 || vectors[focused].fixed) focused = vectors.findIndex(v => !v.fixed);
    if (focused < 0) return;
    const step = model.get("step"), [dx, dy] = moves[e.key];
    vectors[focused].x = snap(vectors[focused].x + dx * step);
    vectors[focused].y = snap(vectors[focused].y + dy * step);
    e.preventDefault();
    draw();
    send(true);
  });
  model.on("change:vectors", () => {
    if (active >= 0) return;  // Python echoing a drag in progress: keep following the pointer
    vectors = (model.get("vectors") || []).map(v => ({ ...v }));
    draw();
  });
  for (const name of ["extent", "step", "size", "title"]) model.on(`change:${name}`, draw);
  draw();
}
export default { render };
"""

_CSS = """
.gf-drag { display: inline-flex; flex-direction: column; gap: 4px; font-family: system-ui, sans-serif; }
.gf-drag-title { font-weight: 600; font-size: 14px; }
.gf-drag svg { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; touch-action: none; outline: none; }
.gf-drag svg:focus { border-color: #93c5fd; }
.gf-drag .gf-grid { stroke: #eef2f7; stroke-width: 1; }
.gf-drag .gf-axis { stroke: #9ca3af; stroke-width: 1.2; }
.gf-drag .gf-tick { font-size: 10px; fill: #6b7280; text-anchor: middle; }
.gf-drag .gf-tick-y { text-anchor: end; }
.gf-drag .gf-label { font: 600 13px ui-monospace, monospace; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.gf-drag .gf-handle { cursor: grab; }
.gf-drag .gf-handle:active { cursor: grabbing; }
.gf-drag .gf-focused .gf-handle { stroke-width: 2.5; fill-opacity: 0.35; }
.gf-drag-coords { display: flex; flex-wrap: wrap; gap: 4px 14px; font: 13px ui-monospace, monospace; max-width: 420px; }
"""


class DragVectors(anywidget.AnyWidget):
    """2-D vectors drawn as arrows from the origin; the learner drags the tips.

    vectors:     list of {"name": str, "x": float, "y": float, "color"?: str, "fixed"?: bool, "dashed"?: bool}
    extent:      the grid spans [-extent, extent] on both axes (tips are clamped to it)
    step:        tips snap to multiples of this, so the shown coordinates are exact
    size:        width = height of the drawing, in pixels
    title:       a line above the drawing
    live:        True: send positions while dragging (every throttle_ms); False: on release only
    """

    _esm = _ESM
    _css = _CSS
    vectors = traitlets.List(traitlets.Dict()).tag(sync=True)
    extent = traitlets.Float(2.0).tag(sync=True)
    step = traitlets.Float(0.1).tag(sync=True)
    size = traitlets.Int(300).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    live = traitlets.Bool(True).tag(sync=True)
    throttle_ms = traitlets.Int(120).tag(sync=True)

    @traitlets.validate("vectors")
    def _check(self, proposal):
        vectors = proposal["value"]
        names = [v.get("name") for v in vectors]
        if len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names):
            raise traitlets.TraitError(f"every vector needs a unique, non-empty name; got {names}")
        for v in vectors:
            if not all(isinstance(v.get(c), (int, float)) for c in ("x", "y")):
                raise traitlets.TraitError(f"vector {v.get('name')!r} needs numeric x and y")
        return vectors

    @staticmethod
    def coords(value) -> dict[str, tuple[float, float]]:
        """name -> (x, y), from the widget itself or from `mo.ui.anywidget(widget).value` (a dict of traitlets)."""
        vectors = value.vectors if isinstance(value, DragVectors) else value["vectors"]
        return {v["name"]: (float(v["x"]), float(v["y"])) for v in vectors}
