import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="3. Positional encoding", css_file="course.css")


@app.cell
def _():
    import math

    import altair as alt
    import marimo as mo
    import torch

    from glassformer.analysis import extrapolation, position_lab
    from glassformer.course import common
    from glassformer.course.widgets import (DragVectors, Question, TokenStrip, code_panel, line_chart, matrix_heatmap,
                                            quiz, quiz_feedback, token_label)
    from glassformer.model import build_model, preset
    from glassformer.model import position as pos_lib
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (DragVectors, Question, TokenStrip, alt, build_model, code_panel, common, extrapolation, line_chart, math,
            matrix_heatmap, mo, pos_lib, position_lab, preset, quiz, quiz_feedback, this, token_label, torch)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    "Dog bites man" and "man bites dog" use the same three words; only the order differs, and the order
    is the news. A Transformer has to know where each token sits. Yet the part of it that mixes
    tokens, attention, compares tokens by their *content* only: it scores every pair by a dot product
    and takes a weighted average by those scores. Nothing in that arithmetic says which token came first. This chapter first shows that
    blindness on your own text, then four common ways of telling a model about order (the
    **positional encoding**: sinusoidal and learned position vectors, RoPE, ALiBi; there are others,
    such as the learned relative-distance biases of T5), and finally measures, on five small models that
    differ only in that choice (those four, and none at all), what happens on texts longer than any they
    were trained on.
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
    prepared = common.prepare(loaded, text.value)
    model, tokenizer, cfg = loaded.model, loaded.tokenizer, loaded.model.config
    scheme_names = {"learned": "learned positions", "sinusoidal": "sinusoidal positions", "rope": "RoPE",
                    "alibi": "ALiBi", "none": "no positions at all"}
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return cfg, loaded, model, prepared, scheme_names, tokenizer


@app.cell
def _(mo):
    mo.md(r"""
    ## Attention alone cannot see order

    Take the text's token vectors as the rows of a matrix $X$ ($T$ rows). Attention computes
    $\text{softmax}(QK^\top/\sqrt{d_k})\,V$ with $Q = XW_Q$, $K = XW_K$, $V = XW_V$. Shuffle the rows:
    $X$ becomes $PX$ for a permutation matrix $P$. Then $Q, K, V$ become $PQ, PK, PV$, the score matrix
    becomes $P\,QK^\top P^\top$ (rows and columns shuffled the same way; softmax works row by row, so it
    does not care), and the output becomes

    $$\text{softmax}\!\left(\tfrac{P Q K^\top P^\top}{\sqrt{d_k}}\right) P V
      = P\,\text{softmax}\!\left(\tfrac{QK^\top}{\sqrt{d_k}}\right) P^\top P V
      = P\,\text{Attention}(X).$$

    The output rows are the same rows, shuffled the same way: every token gets exactly the result it
    had before, wherever it now stands. That is **permutation equivariance**: attention on its own
    treats the text as a bag of tokens. Two things in a real model break it. Its positional
    information, of course. And the causal mask (chapter 4), which lets token $t$ see only tokens $0..t$:
    after a shuffle a token sees a different set of neighbours. Even with the mask (but no positions),
    the *last* token sees all of them, in any order, so the output of one attention layer at the last
    position cannot change when only the tokens before it are shuffled. (A stack of layers is another
    matter: measured below.)

    Below, the chosen model's own first attention layer runs on your text twice, as written and
    with every token but the last shuffled, in four settings. The library function
    runs the real attention module; to switch the mask off it hands the softmax the scores from before
    the mask, through a hook.
    """)
    return


@app.cell
def _(code_panel, mo, position_lab):
    mo.accordion({
        "The code: order_blind_attention and permutation_gap (glassformer/analysis/position_lab.py)":
            mo.vstack([code_panel(position_lab.order_blind_attention,
                                  highlight=("positions and", "before_mask", "block.attn(")),
                       code_panel(position_lab.permutation_gap, highlight="amax")]),
    })
    return


@app.cell
def _(mo):
    shuffle_seed = mo.ui.number(start=0, stop=9999, step=1, value=0, label="shuffle seed")
    shuffle_seed
    return (shuffle_seed,)


@app.cell
def _(TokenStrip, cfg, extrapolation, mo, model, position_lab, prepared, scheme_names, shuffle_seed, token_label,
      tokenizer, torch):
    _ids = prepared.ids[-64:]  # a short stretch is enough, and keeps the table instant
    _T = len(_ids)
    perm = position_lab.shuffle_all_but_last(_T, int(shuffle_seed.value))  # the last token stays last
    _scheme = scheme_names[cfg.position]
    gaps = {(p, c): position_lab.permutation_gap(model, _ids, perm, positions=p, causal=c)
            for p in (False, True) for c in (False, True)}
    _label = {(False, False): "no positions, no mask", (False, True): "no positions, causal mask",
              (True, False): f"the model's positions ({_scheme}), no mask",
              (True, True): f"the model's positions ({_scheme}), causal mask (the real model)"}
    _rows = "\n".join(f"| {_label[k]} | {g.max().item():.2e} | {g[-1].item():.2e} |" for k, g in gaps.items())
    _strip = TokenStrip(tokens=[{"label": token_label(tokenizer.token_bytes(_ids[i])), "id": _ids[i],
                                 "hex": tokenizer.token_bytes(_ids[i]).hex(" "), "color": i % 8} for i in perm])
    _free = gaps[(False, False)].max().item()
    _masked = gaps[(False, True)]
    _scale = position_lab.order_blind_attention(model, torch.tensor(_ids), positions=False,
                                                causal=False).abs().max().item()
    _tol = 1e-5 * max(1.0, _scale)  # float32 keeps about 7 significant digits of numbers this size
    _withpos = gaps[(True, False)].max().item()
    _before_last = _ids[:-1]
    if [_ids[i] for i in perm] == _ids:   # nothing moved: say which of the three reasons it is
        _why = (f"your text has only {_T} token{'s' if _T != 1 else ''}, so fewer than two come before the last "
                "and there is nothing to shuffle: type a longer text" if _T < 3 else
                "every token before the last is the same token, so any shuffle gives the same text: type a more "
                "varied text" if len(set(_before_last)) == 1 else
                f"seed {shuffle_seed.value} happened to leave the tokens in the same order (with few tokens to "
                "shuffle, some seeds do): pick another seed")
        _verdict = f"The shuffled text is the same as the original: {_why}."
    else:
        _verdict = (
            f"Without positions and without the mask, the largest difference over all {_T} rows is {_free:.1e}: "
            + (f"float rounding, nothing more (the outputs themselves are up to {_scale:.2f} in size). Each token's "
               "output row simply moved with it. "
               if _free < _tol else "larger than float rounding. ")
            + f"With the causal mask the largest difference is {_masked.max().item():.2e}, "
            + ("but the last row still differs by only " + f"{_masked[-1].item():.1e}: it saw the same tokens. "
               if _masked[-1].item() < _tol else f"and the last row differs by {_masked[-1].item():.1e}. ")
            + (f"With the model's own positions ({_scheme}) the same shuffle changes the output by up to "
               f"{_withpos:.2e} even without the mask: now the order shows." if cfg.position != "none" else
               "This model has no positions, so the last two settings equal the first two."))
    # The whole stack: the shipped model without positions (the one measured at the end of the chapter).
    _none, _none_tok, _ = extrapolation.load_position_model("none")
    _none_ids = _none_tok.encode(prepared.text, errors="skip")[-_none.config.n_ctx:]
    _none_perm = position_lab.shuffle_all_but_last(len(_none_ids), int(shuffle_seed.value))
    if len(_none_ids) >= 3 and [_none_ids[i] for i in _none_perm] != _none_ids:
        _stack_gap = position_lab.last_logits_gap(_none, _none_ids, _none_perm)
        _stack = (f"That holds for *one* attention layer. A model stacks several, and from the second layer on "
                  "the tokens before the last hand on what they computed from their own predecessors, which the "
                  f"shuffle changed. Measured on the shipped {_none.config.n_layers}-layer character model without "
                  f"positions (the one compared at the end of this chapter), on the last {len(_none_ids)} "
                  f"characters of your text shuffled with the same seed: the last position's logits change by up "
                  f"to **{_stack_gap:.3g}**"
                  + (": even with no positions and the last token seeing the same set, the whole model's "
                     "prediction depends on the order." if _stack_gap > 1e-4 else
                     ", no more than float rounding: here the stack did not notice the order."))
    else:
        _stack = ""
    _which = (f"The last {_T} tokens" if len(prepared.ids) > _T else
              f"The {_T} token{'s' if _T != 1 else ''}")
    mo.vstack([mo.md(f"{_which} of your text, shuffled with seed {shuffle_seed.value} (the last one stays last):"),
               mo.ui.anywidget(_strip),
               mo.md("| setting | max \\|shuffled − original, moved with its token\\| (all rows) | the same, last row |\n"
                     "|---|---|---|\n" + _rows),
               mo.md(_verdict), *([mo.md(_stack)] if _stack else [])])
    return


@app.cell
def _(mo):
    mo.md(r"""
    So order must be put in. There are two families of answers: add a vector that says "I am at
    position $p$" to every token vector before the first block (**sinusoidal positions**, **learned
    positions**), or leave the token vectors alone and change how attention scores pairs of tokens
    according to how far apart they are (**RoPE**, **ALiBi**).

    ## Sinusoidal positions

    The 2017 Transformer adds a fixed table: row $p$ is the vector for position $p$. Its dimensions come
    in pairs, and each pair is a clock hand going round at its own speed: pair $i$ holds

    $$PE_{p,\,2i} = \sin(p\,\omega_i), \qquad PE_{p,\,2i+1} = \cos(p\,\omega_i),
      \qquad \omega_i = 10000^{-2i/D}.$$

    The first pair turns fastest, by 1 radian per position; each next pair turns more slowly. Read
    together, the pairs give every position its own pattern, a little like the digits of an odometer,
    with nothing to learn and no limit on $p$.
    """)
    return


@app.cell
def _(code_panel, pos_lib):
    code_panel(pos_lib.sinusoidal_table, highlight=("freq =", "angle =", "torch.stack"))
    return


@app.cell
def _(cfg, mo):
    table_width = min(cfg.d_model - cfg.d_model % 2, 128)
    pair = mo.ui.slider(0, table_width // 2 - 1, step=1, value=2, label="dimension pair i", show_value=True)
    shift = mo.ui.slider(1, 32, step=1, value=5, label="offset k (positions)", show_value=True)
    mo.hstack([pair, shift], justify="start")
    return pair, shift, table_width


@app.cell
def _(alt, cfg, line_chart, math, mo, pair, pos_lib, table_width):
    n_positions = 64
    sin_table = pos_lib.sinusoidal_table(n_positions + 32, table_width)       # (P, D): 32 rows spare for offsets
    _rows = [{"position": p, "dimension": d, "value": round(float(sin_table[p, d]), 4)}
             for p in range(n_positions) for d in range(table_width)]
    _cell = max(3, min(6, 640 // table_width))
    _heat = alt.Chart(alt.Data(values=_rows)).mark_rect().encode(
        x=alt.X("dimension:O", title="dimension", axis=alt.Axis(values=list(range(0, table_width, 8)), labelAngle=0)),
        y=alt.Y("position:O", title="position p", axis=alt.Axis(values=list(range(0, n_positions, 8)))),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1]), title="value"),
        tooltip=["position:O", "dimension:O", alt.Tooltip("value:Q", format=".4f")])
    _mark = alt.Chart(alt.Data(values=[{"dimension": 2 * pair.value}, {"dimension": 2 * pair.value + 1}])).mark_rect(
        fill=None, stroke="#111827", strokeWidth=1.5).encode(x="dimension:O")
    _heatmap = alt.layer(_heat, _mark).properties(
        width=_cell * table_width, height=4 * n_positions,
        title=f"sinusoidal table, D = {table_width}: rows = positions, columns = dimensions",
        usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    _omega = 10_000.0 ** (-2 * pair.value / table_width)
    _curve = line_chart([{"position": p, "value": float(sin_table[p, 2 * pair.value + j]), "dimension":
                          f"{2 * pair.value + j} ({'sin' if j == 0 else 'cos'})"}
                         for p in range(n_positions) for j in (0, 1)], "position", "value", "dimension",
                        title=f"pair {pair.value}: dimensions {2 * pair.value} and {2 * pair.value + 1}",
                        width=520, height=180)
    _note = ("" if table_width == cfg.d_model else
             f" (The chosen model is {cfg.d_model} wide; to stay readable the page draws the table for "
             f"D = {table_width}, whose pairs turn at the speeds above, not the first {table_width} columns "
             f"of a {cfg.d_model}-wide table.)")
    mo.vstack([mo.ui.altair_chart(_heatmap, chart_selection=False, legend_selection=False),
               mo.md(f"Pair {pair.value} turns by $\\omega_{{{pair.value}}}$ = {_omega:.4g} radians per position: "
                     f"a full turn every {2 * math.pi / _omega:,.1f} positions. (Pair 0 turns once every "
                     f"{2 * math.pi:.1f} positions, the last pair, {table_width // 2 - 1}, once every "
                     f"{2 * math.pi * 10_000.0 ** ((table_width - 2) / table_width):,.0f}.){_note}"),
               mo.ui.altair_chart(_curve, chart_selection=False, legend_selection=False)])
    return n_positions, sin_table


@app.cell
def _(mo):
    mo.md(r"""
    Why this particular table? Moving $k$ positions on adds $k\omega_i$ to every angle of pair $i$,
    and the angle-sum formulas turn that into a fixed $2\times2$ rotation of the pair, the same for
    every $p$:

    $$\begin{pmatrix}\sin((p+k)\omega)\\ \cos((p+k)\omega)\end{pmatrix}
      = \begin{pmatrix}\cos k\omega & \sin k\omega\\ -\sin k\omega & \cos k\omega\end{pmatrix}
        \begin{pmatrix}\sin p\omega\\ \cos p\omega\end{pmatrix}.$$

    So "$k$ positions later" is a linear map of the position vector that does not depend on where you
    start. That was the original paper's reason for the table: it expected offsets that are linear maps
    to be easy for the model's matrices to use. Here is the matrix for the pair and the offset chosen
    above, and a check on the library's table.
    """)
    return


@app.cell
def _(code_panel, mo, n_positions, pair, position_lab, shift, sin_table, table_width, torch):
    _M = position_lab.sinusoidal_shift(table_width, pair.value, shift.value)              # (2, 2)
    _cols = slice(2 * pair.value, 2 * pair.value + 2)
    _before = sin_table[:n_positions, _cols].double()                                    # (P, 2)
    _after = sin_table[shift.value:shift.value + n_positions, _cols].double()            # (P, 2)
    shift_error = (_before @ _M.T - _after).abs().max().item()
    _m = _M.tolist()
    _p = 10
    _v, _w = _before[_p].tolist(), (_M @ _before[_p]).tolist()
    mo.hstack([
        mo.md(f"$$M_{{k={shift.value}}} = \\begin{{pmatrix}} {_m[0][0]:.4f} & {_m[0][1]:.4f} \\\\ "
              f"{_m[1][0]:.4f} & {_m[1][1]:.4f} \\end{{pmatrix}}$$\n\n"
              f"Position {_p}, pair {pair.value}: $({_v[0]:.4f}, {_v[1]:.4f})$; times $M$ gives "
              f"$({_w[0]:.4f}, {_w[1]:.4f})$, and the table's row {_p + shift.value} holds "
              f"$({_after[_p][0]:.4f}, {_after[_p][1]:.4f})$.\n\n"
              f"Over all positions 0 to {n_positions - 1}: largest |M · row p − row p+{shift.value}| = "
              f"**{shift_error:.1e}** (the table is stored in float32, so about 1e-7 is rounding)."),
        mo.accordion({"The code: sinusoidal_shift (glassformer/analysis/position_lab.py)":
                      code_panel(position_lab.sinusoidal_shift)})], widths=[2, 3], align="start")
    return (shift_error,)


@app.cell
def _(build_model, code_panel, mo, pos_lib, preset, torch):
    _tiny = build_model(preset("tiny"))  # learned positions, a table of 64 rows (random weights: only the check matters)
    try:
        _tiny(torch.zeros(1, _tiny.config.n_ctx + 1, dtype=torch.long))
        _refusal = "(no error)"
    except ValueError as _exc:
        _refusal = str(_exc)
    mo.vstack([mo.md(rf"""
    ## Learned positions

    GPT-2 skips the formula: its table is one more weight matrix, $n_{{ctx}} \times D$, trained like the
    rest. It can learn whatever position code helps, but it has exactly $n_{{ctx}}$ rows. Position
    {_tiny.config.n_ctx} of a model with a {_tiny.config.n_ctx}-row table has no row at all, and the
    library says so when asked to run {_tiny.config.n_ctx + 1} tokens:

    > {_refusal}
    """), code_panel(pos_lib.LearnedPositions)])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## RoPE: rotate the query and the key

    **RoPE** (rotary position embedding, used by Llama, Qwen and the course model) adds nothing to the
    token vectors. Inside attention, it splits each query and key into 2-D pairs with frequencies built
    like the sinusoidal table's ($\omega_i = \theta^{-2i/d_k}$, $\theta$ = 10,000 by default) and *rotates*
    pair $i$ by the angle $p\,\omega_i$ of the token's position $p$. (Which dimensions form a pair is
    a layout choice: this library, like Hugging Face's Llama code, pairs dimension $j$ of a head with
    dimension $j + d_k/2$, not with its neighbour $j+1$.) Rotations
    keep lengths, and the dot product of two vectors depends only on their lengths and the angle
    between them. Rotating $q$ by $m\omega$ and $k$ by $n\omega$ changes that angle by $(n-m)\omega$:

    $$\big(R_{m\omega}\,q\big)\cdot\big(R_{n\omega}\,k\big) = q\cdot R_{(n-m)\omega}\,k .$$

    The score sees only the offset $n - m$, never the absolute positions: a **relative position**
    comes for free, and the formula is defined for any length (how well a model trained on short
    texts copes with longer ones is measured at the end of this chapter). Drag $q$ and $k$ below, and choose the positions $m$ (the query's)
    and $n$ (the key's) and the frequency pair; the picture under them is what the library's
    `apply_rope` makes of them.
    """)
    return


@app.cell
def _(code_panel, mo, pos_lib):
    mo.accordion({"The code: Rotary.cos_sin, rotate_half and apply_rope (glassformer/model/position.py)":
                  mo.vstack([code_panel(pos_lib.Rotary.cos_sin, highlight=("angle =", "torch.cat")),
                             code_panel(pos_lib.rotate_half), code_panel(pos_lib.apply_rope)])})
    return


@app.cell
def _(DragVectors, cfg, mo):
    # The draggable widget is shown by this cell, which never re-runs while it is dragged.
    qk = mo.ui.anywidget(DragVectors(
        vectors=[{"name": "q", "x": 1.5, "y": 0.5, "color": "#dc2626"},
                 {"name": "k", "x": 0.5, "y": 1.2, "color": "#2563eb"}],
        extent=2.0, step=0.1, size=280, title="drag q and k"))
    rope_m = mo.ui.slider(0, 63, step=1, value=3, label="query position m", show_value=True)
    rope_n = mo.ui.slider(0, 63, step=1, value=7, label="key position n", show_value=True)
    rope_pair_i = mo.ui.slider(0, cfg.head_dim // 2 - 1, step=1, value=0, label="frequency pair i", show_value=True)
    mo.hstack([qk, mo.vstack([rope_m, rope_n, rope_pair_i])], justify="start", align="center", gap=2)
    return qk, rope_m, rope_n, rope_pair_i


@app.cell
def _(DragVectors, cfg, mo, position_lab, qk, rope_m, rope_n, rope_pair_i, torch):
    _c = DragVectors.coords(qk.value)
    q_vec, k_vec = _c["q"], _c["k"]
    rope_args = dict(head_dim=cfg.head_dim, theta=cfg.rope_theta, pair=rope_pair_i.value)
    _qr, _kr, rope_dot, rope_omega = position_lab.rope_pair(q_vec, k_vec, rope_m.value, rope_n.value, **rope_args)
    _rotated = DragVectors(vectors=[
        {"name": "q", "x": q_vec[0], "y": q_vec[1], "color": "#fca5a5", "fixed": True, "dashed": True},
        {"name": "k", "x": k_vec[0], "y": k_vec[1], "color": "#93c5fd", "fixed": True, "dashed": True},
        {"name": "q′", "x": round(_qr[0].item(), 4), "y": round(_qr[1].item(), 4),
         "color": "#dc2626", "fixed": True},
        {"name": "k′", "x": round(_kr[0].item(), 4), "y": round(_kr[1].item(), 4),
         "color": "#2563eb", "fixed": True}], extent=2.0, step=0.0001, size=280,
        title=f"after RoPE: q′ = q at m = {rope_m.value}, k′ = k at n = {rope_n.value}")
    _plain = q_vec[0] * k_vec[0] + q_vec[1] * k_vec[1]
    mo.hstack([mo.ui.anywidget(_rotated), mo.md(
        f"Pair {rope_pair_i.value} of a head {cfg.head_dim} wide turns by ω = {rope_omega:.4g} rad per position "
        f"(θ = {cfg.rope_theta:g})."
        + ("" if cfg.position == "rope" else " (The chosen model does not use RoPE; this takes only its head width.)")
        + "\n\n"
        f"q rotated by m·ω = {rope_m.value * rope_omega:.3f} rad, k by n·ω = {rope_n.value * rope_omega:.3f} rad.\n\n"
        f"q · k before rotating: **{_plain:.4f}**\n\n"
        f"q′ · k′ after rotating: **{rope_dot:.6f}** (offset n − m = {rope_n.value - rope_m.value})")],
        widths=[2, 3], align="start")
    return k_vec, q_vec, rope_args, rope_dot


@app.cell
def _(mo, position_lab, q_vec, k_vec, rope_args, rope_m, rope_n, torch):
    _offset = rope_n.value - rope_m.value
    _starts = [m for m in range(0, 1000, 37) if m + _offset >= 0][:12]
    _dots = [position_lab.rope_pair(q_vec, k_vec, m, m + _offset, **rope_args)[2] for m in _starts]
    _dots32 = [position_lab.rope_pair(q_vec, k_vec, m, m + _offset, dtype=torch.float32, **rope_args)[2]
               for m in _starts]
    rope_spread = max(_dots) - min(_dots)
    _spread32 = max(_dots32) - min(_dots32)
    _rows = " | ".join(f"{m}" for m in _starts)
    _vals = " | ".join(f"{d:.6f}" for d in _dots)
    mo.md(f"Sweep: keep n − m = {_offset} and move the query from m = {_starts[0]} to {_starts[-1]}: "
          f"the rotated dot product, each computed by `apply_rope` in float64:\n\n"
          f"| m | {_rows} |\n|---|{'---|' * len(_starts)}\n| q·k | {_vals} |\n\n"
          f"Largest minus smallest: **{rope_spread:.1e}**: constant{' to better than 1e-6' if rope_spread < 1e-6 else ''}. "
          f"In float32, as the model computes, the spread is {_spread32:.1e}: rounding, since float32 keeps only "
          f"about 7 significant digits.")
    return (rope_spread,)


@app.cell
def _(cfg, mo):
    alibi_head = mo.ui.slider(0, cfg.n_heads - 1, step=1, value=0, label="head", show_value=True)
    mo.vstack([mo.md(r"""
    ## ALiBi: a penalty for distance

    **ALiBi** (attention with linear biases) gives attention no position vectors at all. It subtracts
    from each score a penalty proportional to how far back the key is:

    $$\text{score}_{h}(i, j) = \frac{q_i\cdot k_j}{\sqrt{d_k}} - s_h\,(i - j), \qquad j \le i,$$

    with a fixed slope $s_h$ per head $h$, never trained. For a power-of-two number of heads $H$ the
    slopes form a geometric sequence, $2^{-8/H}, 2^{-16/H}, \dots$; for other head counts the paper's
    rule mixes in slopes of the next power of two. Either way some heads are pushed hard toward the
    last few tokens and others only gently. Like RoPE, it depends only on the offset $i - j$,
    and it is defined for any length. Below: the slopes for as many heads as the chosen model has
    (whatever positions the model itself uses), and one head's bias on your text's first tokens,
    both from the library.
    """), alibi_head])
    return (alibi_head,)


@app.cell
def _(alibi_head, cfg, code_panel, math, matrix_heatmap, mo, pos_lib, prepared, token_label, tokenizer):
    _slopes = pos_lib.alibi_slopes(cfg.n_heads)                                     # (H,)
    _T = min(len(prepared.ids), 16)
    _bias = pos_lib.alibi_bias(_slopes, 0, _T, _T)                                  # (H, T, T)
    _labels = [token_label(tokenizer.token_bytes(i)) for i in prepared.ids[:_T]]
    _grid = _bias[alibi_head.value].clone()
    _grid[_grid.new_ones(_T, _T).triu(1).bool()] = float("-inf")                    # the causal mask, for the picture
    _chart = matrix_heatmap(_grid.numpy(), _labels, _labels, row_title="query i", col_title="key j",
                            value_title="bias", scheme="reds", cell=26, domain=(min(float(_grid[_grid.isfinite()].min()), -0.01), 0),
                            title=f"head {alibi_head.value}: bias = −{_slopes[alibi_head.value].item():.4g} × (i − j)")
    _s = _slopes[alibi_head.value].item()
    _slope_rows = " | ".join(f"{s:.4g}" for s in _slopes.tolist())
    mo.vstack([
        mo.md(f"| head | {' | '.join(str(h) for h in range(cfg.n_heads))} |\n|---|{'---|' * cfg.n_heads}\n"
              f"| slope | {_slope_rows} |\n\n"
              f"With equal dot products, head {alibi_head.value} gives a key 10 positions back "
              f"$e^{{-{_s:.4g} \\times 10}}$ = {math.exp(-_s * 10):.3g} times the weight of the current token; "
              f"100 positions back, {math.exp(-_s * 100):.3g} times"
              f"{' (if the context reached that far: this model stops at ' + str(cfg.n_ctx) + ' tokens)' if cfg.n_ctx <= 100 else ''}. The empty upper triangle is the causal mask (−∞)."),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
        mo.accordion({"The code: alibi_slopes and alibi_bias (glassformer/model/position.py)":
                      mo.vstack([code_panel(pos_lib.alibi_slopes), code_panel(pos_lib.alibi_bias)])})])
    return


@app.cell
def _(extrapolation, mo):
    _card = extrapolation.load_position_model("rope")[2]
    _r = _card["recipe"]
    _m = _r["model"]
    recipe_text = (f"{_m['n_layers']} layers, width {_m['d_model']}, {_m['n_heads']} heads; "
                   f"{_card['steps']} steps of {_r['batch_size']} windows of {_card['trained_length']} characters, "
                   f"{_r['optimizer']} at peak learning rate {_r['lr']:g}, seed {_r['seed']}")
    _span = extrapolation.SPAN
    _choices = {f"{n} windows ({n * _span:,} characters)": n for n in (16, 64)}
    eval_windows = mo.ui.dropdown(options=_choices, value=next(iter(_choices)), label="validation text to measure on")
    _lengths = extrapolation.LENGTHS
    _length_list = ", ".join(str(L) for L in _lengths[:-1]) + f" and {_lengths[-1]}"
    mo.vstack([mo.md(rf"""
    ## Measured: what happens past the training length

    Five small character models ship with the course, made by `scripts/ship_position_models.py`.
    They are identical in every setting ({recipe_text}) except the position scheme: learned,
    sinusoidal, RoPE, ALiBi, and none at all. All five saw only windows of
    {_card['trained_length']} characters during training. Now each one reads the same validation
    characters (Shakespeare it never trained on) cut into windows of {_length_list} characters, on
    this machine, as this page runs. Every length predicts exactly the same characters: a longer window
    gives more context before each one but, past {_card['trained_length']}, also positions the model never saw.

    The learned table had only {_card['trained_length']} rows. To run that model on {_span} characters at
    all, the script appended rows drawn like a fresh, untrained table's (random, small). Those rows
    were never trained; the measurement shows what a model does with positions it never saw.
    A model without positions needs nothing. It still has one clue to order, the causal mask: a token
    early in the window sees fewer tokens, and (as the shuffle table above showed) the mask makes the
    output depend on the order.
    """), eval_windows])
    return eval_windows, recipe_text


@app.cell
def _(alt, eval_windows, extrapolation, mo, scheme_names):
    with mo.status.spinner(title="Measuring five models at four lengths…"):
        losses = extrapolation.measured_losses(eval_windows.value)
    _lengths = extrapolation.LENGTHS
    _rows = [{"length": L, "loss": round(v[L], 4), "scheme": s} for s, v in losses.items() for L in _lengths]
    _chart = alt.Chart(alt.Data(values=_rows)).mark_line(point=True).encode(
        x=alt.X("length:Q", scale=alt.Scale(type="log", base=2), axis=alt.Axis(values=list(_lengths)),
                title=f"window length (characters); trained on {extrapolation.TRAINED_LENGTH}"),
        y=alt.Y("loss:Q", scale=alt.Scale(zero=False), title="validation loss (nats per character)"),
        color=alt.Color("scheme:N", title=None), tooltip=["scheme:N", "length:Q", alt.Tooltip("loss:Q", format=".4f")],
    ).properties(width=520, height=280, title="loss vs window length, measured now")
    _rule = alt.Chart(alt.Data(values=[{"length": extrapolation.TRAINED_LENGTH}])).mark_rule(
        strokeDash=[4, 3], color="#9ca3af").encode(x="length:Q")
    _long, _train = max(_lengths), extrapolation.TRAINED_LENGTH
    _table = ("| loss at length → | " + " | ".join(f"{L}" for L in _lengths) + f" | {_long} minus {_train} |\n|---|" +
              "---|" * (len(_lengths) + 1) + "\n" +
              "\n".join(f"| {scheme_names[s]} | " + " | ".join(f"{v[L]:.4f}" for L in _lengths) +
                        f" | {v[_long] - v[_train]:+.4f} |" for s, v in losses.items()))
    _layered = alt.layer(_chart, _rule).properties(usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.vstack([mo.ui.altair_chart(_layered, chart_selection=False, legend_selection=False), mo.md(_table)])
    return (losses,)


@app.cell
def _(eval_windows, extrapolation, losses, mo, scheme_names):
    _T, _L = extrapolation.TRAINED_LENGTH, max(extrapolation.LENGTHS)   # trained length, longest measured
    _growth = {s: v[_L] - v[_T] for s, v in losses.items()}
    _order = sorted(_growth, key=_growth.get)
    _best, _worst = _order[0], _order[-1]
    _at64 = min(losses, key=lambda s: losses[s][_T])
    _better_longer = [scheme_names[s] for s in _order if _growth[s] < 0]
    _cards = {s: extrapolation.load_position_model(s)[2]["loss_by_length"] for s in losses}
    _n = extrapolation.load_position_model("rope")[2]["eval"]["windows"]
    _sin = extrapolation.load_position_model("sinusoidal")[0]
    _tok_len = _sin.embed.tok.weight.norm(dim=-1).mean().item()
    _pos_len = _sin.embed.positions(0, 1).norm().item()
    _sin_note = (f"The sinusoidal model is behind already at {_T} ({losses['sinusoidal'][_T]:.4f} against "
                 f"{losses[_at64][_T]:.4f}). A likely reason, though this page does not test it: its position vectors have length {_pos_len:.2f} "
                 f"(every pair is a point on the unit circle), while its trained token vectors average {_tok_len:.2f}; "
                 f"the library adds the table as it is, without the 2017 paper's scaling of the token vectors by "
                 f"√D, so the first layer sees mostly position and little token."
                 if losses["sinusoidal"][_T] - losses[_at64][_T] > 0.05 and _pos_len > 2 * _tok_len else "")
    if eval_windows.value == _n:
        _gap = max(abs(_cards[s][str(L)] - losses[s][L]) for s in losses for L in extrapolation.LENGTHS)
        _card_note = (f"The cards shipped with the models recorded the same measurement, on the same {_n} windows, "
                      f"when the script made them; the largest difference from this run is {_gap:.1e}.")
    else:
        _card_note = (f"(The cards shipped with the models recorded this measurement on {_n} windows; at length {_T}: "
                      + ", ".join(f"{scheme_names[s]} {v[str(_T)]:.4f}" for s, v in _cards.items()) + ".)")
    mo.md(f"""
    What this run measured: at the training length ({_T}) the lowest loss is that of the model with
    **{scheme_names[_at64]}**, {losses[_at64][_T]:.4f}. From {_T} to {_L} characters, the model with
    **{scheme_names[_best]}** fares best (its loss changes by {_growth[_best]:+.4f} nats per character) and the
    one with **{scheme_names[_worst]}** {'degrades most' if _growth[_worst] > 0 else 'gains least'}
    ({_growth[_worst]:+.4f}; its loss at {_L} is {losses[_worst][_L]:.4f}).
    {("Going longer *helps* the model" + ("s" if len(_better_longer) > 1 else "") + " with "
      + ", ".join(_better_longer) + f": a lower loss at {_L} than at {_T}, so there the extra "
      "context outweighs whatever the unseen positions cost.")
     if _better_longer else "No scheme gets better with the longer windows here."}
    {_sin_note}

    {_card_note}
    """)
    return


@app.cell
def _(code_panel, extrapolation, mo):
    mo.accordion({"The code: loss_at_length and extend_learned_positions (glassformer/analysis/extrapolation.py)":
                  mo.vstack([code_panel(extrapolation.loss_at_length, highlight=("reshape(-1, length)", "cross_entropy")),
                             code_panel(extrapolation.extend_learned_positions, highlight="fresh =")])})
    return


@app.cell
def _(Question):
    questions = [
        Question("perm", "Without positions and without a mask, you shuffle the tokens of a text. What happens to "
                 "attention's outputs?",
                 ["They are the same rows, shuffled the same way", "They all change", "They are all equal",
                  "They come out in the original order"],
                 0, "Q, K and V rows move with their tokens and softmax works row by row, so each token gets exactly "
                    "the output it had: Attention(PX) = P·Attention(X)."),
        Question("sin-shift", "In the sinusoidal table, what turns position p's pair (sin pω, cos pω) into position "
                 "p+k's?",
                 ["A rotation by kω, the same for every p", "Adding k to both numbers",
                  "A different matrix for every p", "Nothing: the table must be learned"],
                 0, "The angle-sum formulas make it a 2×2 rotation by kω that depends on k, not on p: an offset is a "
                    "linear map."),
        Question("rope", "With RoPE, q is rotated for position m and k for position n. Their dot product depends on…",
                 ["only n − m (and q, k themselves)", "only m", "m + n", "nothing: rotation removes the position"],
                 0, "Rotating both changes the angle between them by (n − m)ω; the dot product depends on the lengths "
                    "and that angle only."),
        Question("learned", "Why can't a model with a learned position table of 64 rows be run as is on 100 tokens?",
                 ["Positions 64 to 99 have no row in the table", "Attention needs exactly 64 tokens",
                  "The vocabulary is too small", "Softmax overflows"],
                 0, "The table has one trained vector per position up to its size; beyond it there is nothing to look "
                    "up (the shipped model got extra, untrained rows only so it could be measured)."),
        Question("alibi", "What does ALiBi add to a score between query i and key j?",
                 ["−slope × (i − j), a slope per head", "A learned vector per position",
                  "A rotation of q and k", "Nothing; it scales the scores"],
                 0, "A fixed linear penalty on distance, steeper for some heads than others; no vectors are added."),
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
