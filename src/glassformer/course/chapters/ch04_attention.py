import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="4. Attention from scratch", css_file="course.css")


@app.cell
def _():
    import inspect
    import math

    import altair as alt
    import marimo as mo
    import numpy as np
    import torch

    from glassformer.toys import mask_training
    from glassformer.course import common
    from glassformer.course.widgets import (DragVectors, Question, TokenStrip, attention_heatmap, code_panel,
                                            line_chart, matrix_heatmap, prob_bars, quiz, quiz_feedback,
                                            token_label)
    from glassformer.course.widgets.charts import value_bars
    from glassformer.model import attention_steps as steps_lib
    from glassformer.model.attention import Attention
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name

    def no_legend(chart, outline="outline"):
        """prob_bars for attention weights: no kept/removed/chosen legend and no "before filtering" on hover
        (nothing is filtered in this chapter); the dashed outline's hover is called `outline`."""
        for part in chart.layer:
            if part.encoding["color"] is not alt.Undefined:
                part.encoding["color"]["legend"] = None
            for tip in part.encoding["tooltip"]:
                if tip["shorthand"] in ("p:Q", "before:Q"):
                    tip["title"] = "weight" if tip["shorthand"] == "p:Q" else outline
            part.encoding["y"]["title"] = "weight"                                # bars and outlines
        return chart
    return (Attention, DragVectors, Question, TokenStrip, attention_heatmap, code_panel, common, inspect,
            line_chart, mask_training, math, matrix_heatmap, mo, no_legend, np, prob_bars, quiz, quiz_feedback,
            steps_lib, this, token_label, torch, value_bars)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    Until now every token's vector was computed from that token alone (and its position). **Attention**
    is the step where positions exchange information: it is how the course model's guess after "But so"
    can depend on more than that last "o".

    Each position builds three vectors from its own vector, with three learned matrices:

    - a **query**: what this position is looking for;
    - a **key**: what this position offers to be found by;
    - a **value**: what this position hands over when it is found.

    Position $t$ compares its query with the key of every position $0 \dots t$ using the
    **dot product**, one number per key. **Softmax** turns those scores into **attention weights**: positive
    and adding up to 1. The output for position $t$ is the weighted average of the values. Think of a
    dictionary lookup that, instead of returning the one value whose key matches exactly, returns a
    blend of all values, mixed by how well each key matches.

    ## Similarity as a dot product

    The dot product of two vectors multiplies them coordinate by coordinate and adds up:
    $q \cdot k = q_x k_x + q_y k_y$. It is large when the arrows point the same way and are long,
    zero when they are perpendicular, negative when they point apart. Drag the tips of the query
    $q$ and the three keys below: the scores and the weights underneath are recomputed from the
    coordinates as you drag.
    """)
    return


@app.cell
def _(DragVectors, mo):
    toy = mo.ui.anywidget(DragVectors(
        vectors=[{"name": "q", "x": 1.5, "y": 0.5, "color": "#dc2626"},
                 {"name": "k0", "x": 1.0, "y": 1.0, "color": "#2563eb"},
                 {"name": "k1", "x": -1.0, "y": 0.5, "color": "#059669"},
                 {"name": "k2", "x": 0.5, "y": -1.5, "color": "#7c3aed"}],
        extent=2.0, step=0.1, size=300, title="one query, three keys (drag the tips)"))
    toy
    return (toy,)


@app.cell
def _(DragVectors, mo, no_legend, prob_bars, steps_lib, toy, torch):
    _c = DragVectors.coords(toy.value)
    _names = [n for n in _c if n != "q"]
    _q = torch.tensor([_c["q"]], dtype=torch.float64)                                  # (1, 2)
    _k = torch.tensor([_c[n] for n in _names], dtype=torch.float64)                    # (3, 2)
    # No mask (the three keys are not positions in a text) and no scaling (the toy is 2-D): plain
    # softmax of the dot products, computed by the same function as the model's steps further down.
    toy_steps = steps_lib.query_steps(_q, _k, _k, 0, scaled=False, causal=False)
    _twice = steps_lib.query_steps(2 * _q, _k, _k, 0, scaled=False, causal=False)
    _rows = "\n".join(
        f"| {n} | ({_c['q'][0]:.1f})·({_c[n][0]:.1f}) + ({_c['q'][1]:.1f})·({_c[n][1]:.1f}) = **{d:.2f}** | "
        f"{e:.3f} | {w:.1%} |"
        for n, d, e, w in zip(_names, toy_steps.dots.tolist(), toy_steps.dots.exp().tolist(),
                              toy_steps.weights.tolist()))
    _top = int(toy_steps.weights.argmax())
    _tied = [n for n, d in zip(_names, toy_steps.dots.tolist()) if abs(d - toy_steps.dots[_top].item()) < 1e-6]
    _chart = no_legend(prob_bars(_names, toy_steps.weights.tolist(), before=_twice.weights.tolist(),
                       title="attention weights (dashed outline: the same keys, q twice as long)",
                       width=300, height=170), outline="weight with q twice as long")
    mo.hstack([
        mo.md(f"| key | q · k | e^(q·k) | weight |\n|---|---|---|---|\n{_rows}\n\n"
              f"The weights are $e^{{q\\cdot k}}$ divided by their total, "
              f"{toy_steps.dots.exp().sum().item():.3f}. "
              + (f"{' and '.join(f'**{n}**' for n in _tied)} "
                 + ("gets the most" if len(_tied) == 1 else "tie for the most")
                 + f" ({toy_steps.weights[_top].item():.1%}{'' if len(_tied) == 1 else ' each'}). Stretch q to "
                   "twice its length and "
                 + ("it" if len(_tied) == 1 else "each")
                 + f" would get {_twice.weights[_top].item():.1%}: "
                 if len(_tied) < len(_names) else
                 "All three scores are equal, so the weights are too, and stretching q would change nothing "
                 "here. Drag a tip to break the tie: in general ")
              + "longer vectors make bigger scores, and bigger scores a sharper softmax. Keep that in mind "
                "for the section on $\\sqrt{d_k}$."),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False)], widths=[1, 1], align="start")
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Queries, keys and values in the trained model

    In a real model the vectors are not 2-D and not dragged by hand: each comes out of a learned
    matrix applied to the position's vector. For a whole text at once, with one row per position,

    $$Q = X W_Q, \qquad K = X W_K, \qquad V = X W_V$$

    where $X$ holds the $T$ vectors entering the layer (one per row; in the course model, as in most
    current ones, after the layer's norm), and each of $Q, K, V$ has $T$ rows of $d_k$ numbers. Models
    add their own touches: the course model's projections also add a bias, and it then rotates each
    query and key by its position (RoPE, chapter 3), so for it the $Q$ and $K$ shown below are the
    rotated ones, the ones attention uses; what the chosen model does is listed under the layer and
    head pickers. A layer runs several of these side by side, each with its own matrices: an
    **attention head** (chapter 5 is about why there are several). Below, pick a layer and a head of
    the chosen model and click a token of your text: that token is the query, and the charts show
    every step of its attention, with the exact number on hover.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text):
    loaded, load_problem = common.load_chosen(picker.value)
    # 64 tokens keep every chart readable (one bar per earlier token); longer text is cut, with a notice.
    prepared = common.prepare(loaded, text.value, max_tokens=64,
                              why="this page's charts draw one bar or cell per token, and 64 keep them readable")
    config = loaded.model.config
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return config, loaded, prepared


@app.cell
def _(config, mo):
    layer = mo.ui.dropdown({str(i): i for i in range(config.n_layers)}, value="0", label="layer")
    head = mo.ui.dropdown({str(h): h for h in range(config.n_heads)}, value="0", label="head")
    return head, layer


@app.cell
def _(TokenStrip, mo, prepared):
    strip = mo.ui.anywidget(TokenStrip(tokens=prepared.strip, selected=len(prepared.strip) - 1))
    return (strip,)


@app.cell
def _(config, head, layer, loaded, mo, prepared, steps_lib, strip, token_label, torch):
    ids = prepared.ids
    labels = [token_label(loaded.tokenizer.token_bytes(i)) for i in ids]
    # The strip may show characters the model skips (greyed): map the clicked strip entry to its id index.
    _known = [i for i, r in enumerate(prepared.strip) if not r.get("unknown")]
    _clicked = strip.value["selected"]
    query = sum(1 for i in _known if i <= _clicked) - 1 if _clicked >= 0 else len(ids) - 1
    query = min(max(query, 0), len(ids) - 1)
    L, Hq = layer.value, head.value
    with torch.no_grad():
        _, trace = loaded.model.run_with_trace(torch.tensor([ids]), names=[f"blocks.{L}.attn.*"])
    q_mat, k_mat, v_mat = steps_lib.head_tensors(trace, L, Hq, config.n_heads, config.n_kv_heads)
    bias = steps_lib.score_bias(trace, L, Hq)                                        # (T, S): ALiBi, else 0
    steps = steps_lib.query_steps(q_mat, k_mat, v_mat, query, bias=bias[query])
    pattern = trace[f"blocks.{L}.attn.pattern"][0, Hq].float()                      # (T, S)
    _kv = steps_lib.kv_head(Hq, config.n_heads, config.n_kv_heads)
    _gqa = (f" This model uses **grouped-query attention**: {config.n_heads} query heads share "
            f"{config.n_kv_heads} key/value heads, so query head {Hq} reads the keys and values of kv head {_kv}."
            if config.n_kv_heads != config.n_heads else "")
    # What this model does besides Q = X W_Q (read from its config, so it holds for any model in the picker).
    _extras = [("$X$ is the layer's input after its norm" if config.pre_norm else
                "$X$ is the residual stream itself (this model normalizes *after* attention: post-norm)"),
               "the projections add a bias" if config.attn_bias else "the projections add no bias"]
    if config.qk_norm:
        _extras.append("each head's q and k are then normalized (RMSNorm)")
    if config.position == "rope":
        _extras.append("q and k are then rotated by position (RoPE): the Q and K shown are the rotated ones")
    elif config.position == "alibi":
        _extras.append("a distance penalty (ALiBi) is added to every score in step 1")
    _extras = " In this model: " + "; ".join(_extras) + "."
    mo.vstack([
        mo.hstack([layer, head], justify="start"),
        mo.md(f"Click a token to make it the query (outlined in red). Now: position **{query}**, "
              f"`{labels[query]}`, in layer {L}, head {Hq}. Each head of this model has $d_k$ = "
              f"{config.head_dim} numbers per query, key and value.{_gqa}{_extras}"),
        strip])
    return L, Hq, bias, ids, labels, pattern, q_mat, query, steps, trace, k_mat, v_mat


@app.cell
def _(Hq, L, labels, matrix_heatmap, mo, q_mat, k_mat, v_mat):
    def qkv_map(m, name):
        cell = max(9, min(16, 520 // max(1, m.shape[0])))
        return mo.ui.altair_chart(matrix_heatmap(
            m.numpy(), labels, [str(j) for j in range(m.shape[1])], title=f"{name} of layer {L}, head {Hq}",
            row_title="position: token", col_title="coordinate", value_title=name, scheme="redblue",
            cell=cell, domain=(-float(m.abs().max()), float(m.abs().max()))), chart_selection=False,
            legend_selection=False)

    # Drawn only when opened (mo.lazy): three T x d_k heatmaps are the page's largest charts.
    mo.accordion({"Q, K and V of every token of your text (this head), as heatmaps": mo.lazy(lambda: mo.ui.tabs(
        {"Q (queries)": qkv_map(q_mat, "query"), "K (keys)": qkv_map(k_mat, "key"),
         "V (values)": qkv_map(v_mat, "value")}))})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Step 1: scores

    The query of the clicked position meets every key: $s_j = \dfrac{q \cdot k_j}{\sqrt{d_k}}$ (the
    division is explained in the next section; a model with ALiBi positions also adds its distance
    penalty here). Keys *after* the query get a score too, because the matrix multiplication computes
    them all, but the mask in step 2 throws them away.
    """)
    return


@app.cell
def _(bias, config, labels, math, mo, query, steps, value_bars):
    _status = ["earlier or itself" if j <= query else "later: masked in step 2" for j in range(len(labels))]
    _details = [{"q · k (before dividing)": f"{d:.4f}"} for d in steps.dots.tolist()]
    _chart = value_bars(labels, steps.scores.tolist(), status=_status, details=_details,
                        colors={"earlier or itself": "#2563eb", "later: masked in step 2": "#cbd5e1"},
                        title=f"step 1: scores of query {query} ('{labels[query]}') against every key",
                        value_title="score q·k/√d_k" + (" + ALiBi" if config.position == "alibi" else ""))
    _best = int(steps.masked.argmax())
    _b = bias[query, _best].item()                                                  # ALiBi's penalty, else 0
    _plus = f" {'−' if _b < 0 else '+'} {abs(_b):.3f}" if config.position == "alibi" else ""
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"Highest allowed score: key {_best} (`{labels[_best]}`), "
                     f"{steps.dots[_best].item():.3f} / √{config.head_dim}{_plus} = {steps.dots[_best].item():.3f} / "
                     f"{math.sqrt(config.head_dim):.3f}{_plus} = **{steps.scores[_best].item():.3f}**"
                     + (" (the last term is ALiBi's penalty for the distance from the query back to this key)."
                        if _plus else "."))])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Step 2: mask, then softmax

    Every later key's score becomes $-\infty$; then softmax: $w_j = e^{s_j} / \sum_i e^{s_i}$.
    Since $e^{-\infty} = 0$, the later keys get weight exactly 0, and the weights of keys $0 \dots t$
    add up to 1.
    """)
    return


@app.cell
def _(labels, mo, pattern, query, steps, value_bars):
    _status = ["earlier or itself" if j <= query else "later: score −∞, weight 0" for j in range(len(labels))]
    _details = [{"masked score": "−∞" if j > query else f"{m:.4f}"} for j, m in enumerate(steps.masked.tolist())]
    _chart = value_bars(labels, steps.weights.tolist(), status=_status, details=_details,
                        colors={"earlier or itself": "#2563eb", "later: score −∞, weight 0": "#cbd5e1"},
                        title=f"step 2: attention weights of query {query} (keys 0…{query} add up to "
                              f"{steps.weights.sum().item():.4f})", value_title="weight", height=180)
    _diff = (steps.weights - pattern[query]).abs().max().item()
    _top = steps.weights.topk(min(3, query + 1))
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md("Largest weights: " + ", ".join(f"key {j} (`{labels[j]}`) {w:.1%}"
                                                     for w, j in zip(_top.values.tolist(), _top.indices.tolist()))
                     + ". Recomputed here from the traced q and k; the model's own `attn.pattern` row "
                     + ("is exactly the same." if _diff == 0 else
                        f"differs by at most {_diff:.1e} (float rounding: the two computations add in another order).")
                     )])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Step 3: the weighted sum of values

    The output is $z = \sum_j w_j v_j$: the value vector of each position $0 \dots t$, scaled by its
    weight, all added up.
    Each row below is one key's contribution $w_j v_j$ (the ten heaviest, then the rest summed);
    the last row is their sum, the head's output for this position.
    """)
    return


@app.cell
def _(Hq, L, labels, matrix_heatmap, mo, np, query, steps, trace):
    _order = steps.weights[: query + 1].argsort(descending=True).tolist()
    _top, _rest = _order[:10], _order[10:]
    _parts = [(steps.weights[j] * steps.values[j]).numpy() for j in _top]
    _names = [f"{labels[j]} (key {j}, w={steps.weights[j].item():.3f})" for j in _top]
    if _rest:
        _parts.append(sum((steps.weights[j] * steps.values[j]).numpy() for j in _rest))
        _names.append(f"the other {len(_rest)} keys")
    _parts.append(steps.out.numpy())
    _names.append("= output z")
    _m = np.stack(_parts)
    _lim = float(np.abs(_m).max())
    _chart = matrix_heatmap(_m, _names, [str(c) for c in range(_m.shape[1])],
                            title=f"step 3: w_j · v_j and their sum (layer {L}, head {Hq}, query {query})",
                            row_title="contribution", col_title="coordinate", value_title="value",
                            scheme="redblue", cell=15, domain=(-_lim, _lim))
    _z = trace[f"blocks.{L}.attn.z"][0, Hq, query].float()
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"The model's own output for this head and position (`blocks.{L}.attn.z`) differs from "
                     f"this sum by at most {(steps.out - _z).abs().max().item():.1e}.")])
    return


@app.cell
def _(Hq, L, attention_heatmap, labels, mo, pattern):
    def full_pattern():
        cell = max(7, min(22, 560 // max(1, len(labels))))
        chart = attention_heatmap(pattern.numpy(), labels,
                                  title=f"every query at once: the whole pattern of layer {L}, head {Hq}")
        chart = chart.properties(width=cell * len(labels), height=cell * len(labels))
        for axis in "xy":  # labels as small as the cells, so that they do not overlap
            chart.encoding[axis]["axis"]["labelFontSize"] = min(12, cell + 1)
        return mo.ui.altair_chart(chart, chart_selection=False, legend_selection=False)

    mo.accordion({"All positions at once: the full attention pattern of this head (row = query)":
                  mo.lazy(full_pattern)})
    return


@app.cell
def _(code_panel, mo, steps_lib):
    mo.accordion({
        "The code behind the three steps: query_steps (glassformer/model/attention_steps.py)":
            code_panel(steps_lib.query_steps, highlight=("dots = ", "scores = dots", "masked = ", "weights = ",
                                                         "weights @ v")),
        "Which key/value head a query head reads: kv_head and head_tensors":
            mo.vstack([code_panel(steps_lib.kv_head), code_panel(steps_lib.head_tensors)]),
    })
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Why divide by $\sqrt{d_k}$? Measured

    Take $q$ and $k$ with $d$ independent entries, each of mean 0 and variance 1. Each product $q_i k_i$
    has variance 1, and the variances of independent terms add, so

    $$\operatorname{Var}(q \cdot k) = \sum_{i=1}^{d} \operatorname{Var}(q_i k_i) = d .$$

    The typical score is about $\sqrt{d}$ in size: the wider the head, the bigger the scores, and, as
    the toy showed, bigger scores make a sharper softmax. Near one-hot, a softmax hardly moves when its
    inputs change a little, so training, which learns by nudging scores, gets little signal. Dividing by
    $\sqrt{d_k}$ brings the variance back to 1 whatever the width. The chart draws random vectors right
    now and measures it:
    """)
    return


@app.cell
def _(mo):
    samples = mo.ui.slider(500, 8000, step=500, value=2000, label="random pairs per width", show_value=True)
    samples
    return (samples,)


@app.cell
def _(line_chart, mo, samples, steps_lib):
    dims = (2, 4, 8, 16, 32, 64, 128, 256, 512)
    spread = steps_lib.dot_product_spread(dims, samples=samples.value)
    _rows = ([{"width d": r["d"], "variance": r["raw"], "scores": "q·k"} for r in spread] +
             [{"width d": r["d"], "variance": r["scaled"], "scores": "q·k / √d"} for r in spread])
    _chart = line_chart(_rows, "width d", "variance", color="scores",
                        title=f"measured variance of the score, {samples.value} random pairs per width")
    _table = ("| width d | " + " | ".join(str(r["d"]) for r in spread) + " |\n|---|" + "---|" * len(spread) +
              "\n| variance of q·k | " + " | ".join(f"{r['raw']:.1f}" for r in spread) +
              " |\n| variance of q·k / √d | " + " | ".join(f"{r['scaled']:.2f}" for r in spread) + " |")
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False), mo.md(_table)])
    return


@app.cell
def _(code_panel, mo, steps_lib):
    # __wrapped__: the function under its lru_cache
    mo.accordion({"dot_product_spread (glassformer/model/attention_steps.py)":
                  code_panel(steps_lib.dot_product_spread.__wrapped__)})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### The same question on the trained model

    The traced scores are already divided by $\sqrt{d_k}$; multiplying them back by $\sqrt{d_k}$ gives
    the scores this head would produce without the division (in a model with ALiBi, its distance
    penalty is taken off first and added back after, since it was never divided). The **entropy** of
    each query's weights says how spread out they are: 0 bits when all the weight is on one key,
    $\log_2(t+1)$ bits when it is spread evenly over the $t+1$ keys position $t$ may see. (The model was
    trained *with* the division; a model trained without it would have learned other weights. What this
    shows is what the division does to the numbers this head actually makes.)
    """)
    return


@app.cell
def _(mo):
    unscaled = mo.ui.switch(value=False, label="remove the √d_k (multiply the scores back)")
    unscaled
    return (unscaled,)


@app.cell
def _(Hq, L, bias, config, labels, line_chart, math, mo, no_legend, pattern, prob_bars, query, steps_lib, trace,
      unscaled):
    _root = math.sqrt(config.head_dim)
    _scores = trace[f"blocks.{L}.attn.scores"][0, Hq]                               # (T, S), already / √Dh
    _with = steps_lib.pattern_from_scores(_scores)
    # ALiBi's penalty (bias, measured above) was never divided by √Dh: only the q·k part is multiplied back.
    _without = (steps_lib.pattern_from_scores(_scores, unscale=_root) if config.position != "alibi" else
                steps_lib.pattern_from_scores((_scores - bias) * _root + bias))
    _h_with, _h_without = steps_lib.entropy_bits(_with), steps_lib.entropy_bits(_without)
    _rows = ([{"query position": t, "entropy (bits)": h, "scores": "÷ √d_k (as trained)"}
              for t, h in enumerate(_h_with.tolist())] +
             [{"query position": t, "entropy (bits)": h, "scores": "without ÷ √d_k"}
              for t, h in enumerate(_h_without.tolist())])
    _entropy_chart = line_chart(_rows, "query position", "entropy (bits)", color="scores", height=200,
                                title=f"how spread each query's weights are, layer {L}, head {Hq}")
    _shown = _without if unscaled.value else _with
    _other = _with if unscaled.value else _without
    _keys = list(range(query + 1))
    _bars = no_legend(prob_bars([labels[j] for j in _keys], [_shown[query, j].item() for j in _keys],
                      before=[_other[query, j].item() for j in _keys], height=170,
                      title=(f"query {query}: weights WITHOUT ÷ √d_k (outline: with)" if unscaled.value else
                             f"query {query}: weights with ÷ √d_k, as trained (outline: without)")),
                      outline="weight with ÷ √d_k" if unscaled.value else "weight without ÷ √d_k")
    # Position 0 has one key (itself): 100% there whatever the scores. Count the queries that have a choice.
    _sat = int((_without[1:].max(dim=-1).values > 0.99).sum())
    _sat_with = int((_with[1:].max(dim=-1).values > 0.99).sum())
    _T = len(labels)
    _share = (f"of the {_T - 1} quer{'ies' if _T > 2 else 'y'} with more than one key to choose from (position 0 "
              f"sees only itself, so its weight is always 100% there), more than 99% of the weight lands on a "
              f"single key in {_sat_with} with the division and in {_sat} without it. " if _T > 1 else
              "your text is one token, whose only key is itself: its weight is 100% there either way. ")
    mo.vstack([
        mo.ui.altair_chart(_bars, chart_selection=False, legend_selection=False),
        mo.md(f"Query {query}: largest weight **{_shown[query].max().item():.1%}** "
              f"{'without' if unscaled.value else 'with'} the division "
              f"({_other[query].max().item():.1%} {'with' if unscaled.value else 'without'} it); entropy "
              f"{(_h_without if unscaled.value else _h_with)[query].item():.2f} bits. Over all {len(labels)} "
              f"position{'s' if len(labels) > 1 else ''} of this head: mean entropy "
              f"{_h_with.mean().item():.2f} bits with the division, "
              f"{_h_without.mean().item():.2f} bits without; " + _share +
              f"Multiplying every score by √{config.head_dim} = {_root:.2f} stretches the gaps between them, "
              f"and softmax turns bigger gaps into a more one-sided choice."),
        mo.ui.altair_chart(_entropy_chart, chart_selection=False, legend_selection=False)])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## The causal mask

    A language model is trained to predict, at every position $t$, the token at $t+1$, for all positions
    of a text in one pass. If position $t$ could attend to position $t+1$, it could simply copy the
    answer from there, and learn nothing it can use later, when the next token does not exist yet. The
    **causal mask** $M$ forbids it: $M_{tj} = 0$ for $j \le t$ and $-\infty$ for $j > t$, added to the
    scores before softmax. Switch it off to see which weights change in this head:
    """)
    return


@app.cell
def _(mo):
    masked_on = mo.ui.switch(value=True, label="causal mask (−∞ on every later key)")
    masked_on
    return (masked_on,)


@app.cell
def _(Hq, L, attention_heatmap, labels, masked_on, mo, no_legend, prob_bars, query, steps_lib, trace):
    _scores = trace[f"blocks.{L}.attn.scores"][0, Hq]                               # (T, S), before the mask
    _with = steps_lib.pattern_from_scores(_scores)
    _without = steps_lib.pattern_from_scores(_scores, causal=False)
    _T = len(labels)
    _future = _without.triu(diagonal=1).sum(dim=-1)                                 # (T,) weight on later keys
    _cell = max(7, min(18, 460 // max(1, _T)))
    _shown = _with if masked_on.value else _without
    _map = attention_heatmap(_shown.numpy(), labels, title=(
        f"mask on: layer {L}, head {Hq}, as the model runs" if masked_on.value else
        f"mask off: layer {L}, head {Hq}, every query also sees later keys"))
    _map = _map.properties(width=_cell * _T, height=_cell * _T)
    for _axis in "xy":  # labels as small as the cells, so that they do not overlap
        _map.encoding[_axis]["axis"]["labelFontSize"] = min(12, _cell + 1)
    _other = _without if masked_on.value else _with
    _row = no_legend(prob_bars(labels, _shown[query].tolist(), before=_other[query].tolist(),
                     kept=[j <= query for j in range(_T)], height=150,
                     title=(f"query {query}, mask on (outline: off); grey = later keys, weight 0"
                            if masked_on.value else
                            f"query {query}, mask OFF (outline: on); grey = later keys, now weighted")),
                     outline="weight, mask off" if masked_on.value else "weight, mask on")
    _avg_future = _future[:-1].mean().item() if _T > 1 else 0.0
    mo.vstack([
        mo.ui.altair_chart(_map, chart_selection=False, legend_selection=False),
        mo.ui.altair_chart(_row, chart_selection=False, legend_selection=False),
        mo.md((f"Without the mask, query {query} would put **{_future[query].item():.1%}** of its weight on "
               f"later tokens" if query < _T - 1 else
               f"Query {query} is the last position: no token comes after it, so the mask changes nothing in its "
               f"row" + (" (click an earlier token to see one change)" if _T > 1 else ""))
              + (f"; averaged over positions 0…{_T - 2}, the weight on later tokens would be {_avg_future:.1%}. "
                 if _T > 1 else ". ")
              + "Without the mask each allowed key keeps its score but loses weight, since the row must still add "
                "up to 1 and the later keys now take a share: the weights on and below the diagonal all shrink, and "
                "the triangle above it, all zeros with the mask, fills in. (The last position has no later token, "
                "so its row is the same either way.)")])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Does a later token change an earlier output? An experiment

    Replace the token right after the clicked position and run the whole model again, once as it is
    and once with the mask switched off in every layer (through hooks: the model's code is untouched).
    Then compare the clicked position's outputs before and after the replacement.
    """)
    return


@app.cell
def _(ids, labels, loaded, mo, query, steps_lib, token_label):
    if len(ids) < 2:
        _out = mo.md("This needs a text of at least two tokens.")
    else:
        _t = min(query, len(ids) - 2)
        _new = (ids[_t + 1] + 1) % loaded.tokenizer.vocab_size
        _new_label = token_label(loaded.tokenizer.token_bytes(_new))
        _on = steps_lib.future_influence(loaded.model, ids, _t, _new, causal=True)
        _off = steps_lib.future_influence(loaded.model, ids, _t, _new, causal=False)
        _which = "" if _t == query else f" (the clicked token is the last one, so position {_t} is used)"
        _out = mo.md(
            f"Position {_t} (`{labels[_t]}`){_which}; the next token `{labels[_t + 1]}` is replaced by "
            f"`{_new_label}`. At position {_t}, the largest change of any number of the last layer's attention "
            f"output and of the logits, and the probability given to the true next token `{labels[_t + 1]}`, "
            f"before → after the replacement:\n\n"
            f"| | last layer's attention output | logits | probability of the true next token `{labels[_t + 1]}` |\n"
            f"|---|---|---|---|\n"
            + "".join(f"| mask {name} | {r['attn_out']:.3g} | {r['logits']:.3g} | "
                      f"{r['prob_before']:.2%} → {r['prob_after']:.2%} |\n" for name, r in [("on", _on), ("off", _off)])
            + "\n"
            + (f"With the mask, position {_t}'s outputs do not move at all: nothing after it can reach it. "
               if max(_on["attn_out"], _on["logits"]) == 0 else
               f"With the mask, position {_t}'s outputs move by at most "
               f"{max(_on['attn_out'], _on['logits']):.1e}, float rounding: "
               f"nothing after it can reach it. ")
            + f"Without it they change by up to {_off['logits']:.3g} in the logits: the prediction for the next "
            f"token now depends on that next token itself. (This model was trained with the mask, so switching "
            f"it off feeds it something it never saw: look at the size of the change, not its direction.) "
            f"Would a model trained that way learn to read the answer instead of predicting it? The next "
            f"experiment trains one.")
    _out
    return


@app.cell
def _(mask_training, mo):
    _s = mask_training.SMALL
    _blocks = f"{_s['n_layers']} block" + ("s" if _s["n_layers"] > 1 else "")
    _pos = {"rope": "RoPE", "alibi": "ALiBi"}.get(_s["position"], _s["position"])
    mo.md(rf"""
    ### Training without the mask: the model learns to peek

    The experiment above used a model trained *with* the mask. What does a model learn when it is
    trained *without* it? Below, one small character model ({_blocks} of width {_s['d_model']},
    {_pos} positions, windows of {_s['n_ctx']} characters) is trained twice on TinyShakespeare: same
    starting weights, same batches, the only difference is the mask (switched off through the same
    hooks). Then both are measured on held-out text the honest way, with the mask on, as generation
    must run: when the model writes token $t+1$, that token does not exist yet. It takes a few
    seconds of CPU, so it runs when you ask.
    """)
    return


@app.cell
def _(mo):
    train_button = mo.ui.run_button(label="Train both models (200 steps each)")
    train_button
    return (train_button,)


@app.cell
def _(line_chart, mask_training, mo, train_button):
    mo.stop(not train_button.value, mo.md("*Press the button to train the two models.*"))
    _tok = mask_training.course_tokenizer()
    _train, _val = mask_training.corpus_split(_tok)
    with mo.status.progress_bar(total=400, title="training", remove_on_exit=True) as _bar:
        mask_run = mask_training.train_pair(_train, _val, _tok.vocab_size, steps=200,
                                            on_step=lambda name, step, loss: _bar.update())
    _rows = [{"step": i + 1, "training loss": v, "trained": name}
             for name, losses in mask_run.train_loss.items() for i, v in enumerate(losses) if i % 4 == 3]
    _m, _n = "mask", "no mask"
    _last = {k: sum(v[-20:]) / 20 for k, v in mask_run.train_loss.items()}   # mean of the last 20 steps
    mo.vstack([
        mo.ui.altair_chart(line_chart(_rows, "step", "training loss", color="trained", height=200,
                                      title="training loss (every 4th step), with and without the mask"),
                           chart_selection=False, legend_selection=False),
        mo.md(f"| trained | training loss (last 20 steps) | held-out loss, mask on (honest) | "
              f"held-out loss, mask off (peeking) |\n|:---|:---|:---|:---|\n"
              + "".join(f"| {k} | {_last[k]:.3f} | {mask_run.honest_loss[k]:.3f} | {mask_run.peeking_loss[k]:.3f} |\n"
                        for k in (_m, _n))
              + f"\nTrained without the mask, the model reaches a training loss of {_last[_n]:.3f} against "
                f"{_last[_m]:.3f}"
              + (": it has learned to look at the next character and copy it. " if _last[_n] < _last[_m] else
                 ": no lower, so in this run it did not learn to copy the next character. ")
              + f"Its most peeking head puts on average {mask_run.next_weight[_n]:.0%} of a position's attention on "
                f"the very next character (the model trained with the mask, run without it: "
                f"{mask_run.next_weight[_m]:.0%}). Measured the "
                f"honest way its loss is {mask_run.honest_loss[_n]:.3f}, against {mask_run.honest_loss[_m]:.3f} "
                f"for the model trained with the mask"
              + (": the skill it learned is useless when the next character is not there. "
                 if mask_run.honest_loss[_n] > mask_run.honest_loss[_m] else ". ")
              + f"(Loss in nats per character; training and measuring both models took "
                f"{mask_run.seconds:.1f} s on this machine's CPU.)"),
    ])
    return


@app.cell
def _(code_panel, mo, steps_lib):
    mo.accordion({
        "How the mask is switched off: without_causal_mask (glassformer/model/attention_steps.py)":
            code_panel(steps_lib.without_causal_mask),
        "The experiment: future_influence": code_panel(steps_lib.future_influence),
        "Training with and without the mask: train_pair (glassformer/toys/mask_training.py)":
            code_panel(mask_training.train_pair),
        "Entropy and the patterns with and without ÷ √d_k or the mask": mo.vstack(
            [code_panel(steps_lib.pattern_from_scores), code_panel(steps_lib.entropy_bits)]),
    })
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## The whole formula, and where it runs

    For all positions and one head at once, the three steps are

    $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right) V$$

    with $Q$ ($T \times d_k$: $T$ queries), $K$ and $V$ ($S \times d_k$: $S$ keys; $S = T$ on this page,
    and $S > T$ when keys of earlier tokens are kept from a previous step, as in generation, chapter 10),
    the mask $M$ ($T \times S$), and the result ($T \times d_k$). This is **scaled dot-product
    attention**. Below is glassformer's reference path for it, the one that ran for every picture on this
    page that shows scores or weights (recording them requires it; when nothing records them the model
    runs the same formula in PyTorch's fused kernel, tested to give the same numbers). The highlighted
    lines are the formula:
    """)
    return


@app.cell
def _(Attention, code_panel, inspect, mo):
    _marks = {"QKᵀ/√d_k": "scores = q @ k.transpose", "+ M (as −∞)": "masked_fill(~allowed",
              "softmax": "masked.softmax(dim=-1)", "· V": "return pattern @ v",
              "GQA: repeat the kv heads": "k = k.repeat_interleave"}
    _lines, _start = inspect.getsourcelines(Attention.eager)
    _where = {part: next(_start + i for i, line in enumerate(_lines) if mark in line) for part, mark in _marks.items()}
    mo.vstack([
        mo.md("| formula | line of `attention.py` | code |\n|:---|:---|:---|\n" + "\n".join(
            f"| {part} | {n} | `{_lines[n - _start].strip().split('  #')[0]}` |" for part, n in _where.items())),
        code_panel(Attention.eager, highlight=tuple(_marks.values())),
    ])
    return


@app.cell
def _(Question):
    questions = [
        Question("attn-softmax-sum",
                 "After the mask and softmax, what do the attention weights of one query add up to?",
                 ["1", "The number of earlier tokens", "0", "It depends on the scores"],
                 0, "Softmax divides each exponentiated score by their total, so the weights of the keys a query "
                    "may see always sum to 1; masked keys get exactly 0."),
        Question("attn-sqrt", "Why are the scores divided by √d_k?",
                 ["To make attention faster",
                  "Because q·k of random vectors with unit-variance entries has variance d_k: "
                  "without it, wide heads give huge scores and a nearly one-hot softmax",
                  "To keep the weights from being negative", "To undo the causal mask"],
                 1, "The variance of a sum of d independent unit-variance products is d; dividing by √d brings it "
                    "back to 1, so the softmax stays soft enough for training to adjust it."),
        Question("attn-mask", "What happens without the causal mask when the model is trained to predict token t+1 "
                              "at every position?",
                 ["Nothing: the mask only saves time", "Position t can read token t+1 and copy the answer",
                  "The weights no longer sum to 1", "The model can no longer see earlier tokens"],
                 1, "The experiment above shows it: without the mask, changing token t+1 changes position t's "
                    "prediction. A model trained that way would learn to look ahead, which is impossible when "
                    "generating."),
        Question("attn-dot", "A query points the same way as key A and is perpendicular to key B (both keys the same "
                              "length). Which key gets more weight?",
                 ["B", "A", "They get the same", "Neither: perpendicular keys are masked"],
                 1, "q·A is positive (same direction), q·B is 0 (perpendicular); softmax gives the larger score "
                    "the larger weight."),
        Question("attn-gqa", "In grouped-query attention with 16 query heads and 8 key/value heads, what is shared?",
                 ["Each pair of query heads uses the same keys and values", "All heads use one query",
                  "The attention weights of all heads are averaged", "Nothing: it is the same as 16 heads"],
                 0, "Each key/value head serves 16/8 = 2 query heads (kv_head(h) = h // 2): the queries differ, "
                    "the keys and values are shared, which halves the key/value cache."),
    ]
    return (questions,)


@app.cell
def _(questions, quiz, this):
    radios = quiz(this.key, questions)
    return (radios,)


@app.cell
def _(mo, questions, quiz_feedback, radios, this):
    mo.vstack([mo.md("## Check yourself"), quiz_feedback(this.key, questions, radios)])
    return


@app.cell
def _(common, this):
    common.footer(this.key)
    return


if __name__ == "__main__":
    app.run()
