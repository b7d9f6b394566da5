import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="6. The Transformer block", css_file="course.css")


@app.cell
def _():
    import altair as alt
    import marimo as mo
    import torch

    from glassformer.analysis import block_anatomy as anatomy
    from glassformer.analysis import gradient_norms as gradnorms
    from glassformer.course import common
    from glassformer.course.widgets import Question, TokenStrip, code_panel, line_chart, quiz, quiz_feedback
    from glassformer.model.block import Block
    from glassformer.model.norm import LayerNorm, RMSNorm
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Block, LayerNorm, Question, RMSNorm, TokenStrip, alt, anatomy, code_panel, common, gradnorms, line_chart,
            mo, quiz, quiz_feedback, this, torch)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    A Transformer is the same unit repeated: the **Transformer block**. Each block takes one vector per
    token and returns one vector per token, with the same number of coordinates, so blocks can be
    stacked as deep as you like. Inside, two **sub-layers** take turns. Attention lets every token read
    from itself and earlier tokens (chapters 4 and 5). The **MLP** then works on each token's vector
    alone: a small two-layer network, the same for every position.

    Two pieces of plumbing wrap each sub-layer. A **residual connection** adds the sub-layer's output
    to its input instead of replacing it, so the running vector (the *residual stream*) accumulates
    the updates of every sub-layer. A **normalization** rescales the vector before the sub-layer reads it, so its
    input has a steady size whatever came before. This chapter follows one token's vector through
    every step of one block of a real, trained model, on your text.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value)
    cfg = loaded.model.config
    ids = torch.tensor([prepared.ids])                                       # (1, T)
    with torch.no_grad():
        _, trace = loaded.model.run_with_trace(ids, "blocks.*")
    labels = [r["label"] for r in prepared.strip if not r.get("unknown")]   # one per id
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return cfg, ids, labels, loaded, prepared, trace


@app.cell
def _(cfg, mo):
    _norm = "RMSNorm" if cfg.norm == "rmsnorm" else "LayerNorm"
    if cfg.pre_norm:
        _where = ("**pre-norm**: the norm sits *inside* each branch, before the sub-layer, and the stream $x$ "
                  "itself is never normalized on its way through the block")
        _math = (r"x_{\text{mid}} = x + \operatorname{Attn}(\operatorname{Norm}_1(x)) \qquad "
                 r"x_{\text{out}} = x_{\text{mid}} + \operatorname{MLP}(\operatorname{Norm}_2(x_{\text{mid}}))")
    else:
        _where = ("**post-norm** (the 2017 arrangement): each sub-layer reads the stream as it is, and the norm "
                  "rescales the stream after each addition")
        _math = (r"x_{\text{mid}} = \operatorname{Norm}_1(x + \operatorname{Attn}(x)) \qquad "
                 r"x_{\text{out}} = \operatorname{Norm}_2(x_{\text{mid}} + \operatorname{MLP}(x_{\text{mid}}))")
    mo.md(f"""
    ## One block, in two lines of math

    This model's blocks are {_where}:

    $${_math}$$

    Here Norm is {_norm} and $x$ is the stream: one vector of $D = {cfg.d_model}$ numbers per token, for
    all $T$ tokens at once, so the tensors are $[B, T, D]$. Norm and the MLP work on each token's vector
    on its own; Attn is the one step where a token's result depends on other tokens. Step through it
    below, following one token.
    """)
    return


@app.cell
def _(cfg, mo, prepared):
    _T = len(prepared.ids)
    layer = mo.ui.slider(0, cfg.n_layers - 1, step=1, value=0, label="layer", show_value=True)
    position = mo.ui.slider(0, _T - 1, step=1, value=_T - 1, label="token position", show_value=True)
    stage_step = mo.ui.slider(1, 9, step=1, value=1, label="step through the block", show_value=True)
    mo.hstack([layer, position, stage_step], justify="start", wrap=True)
    return layer, position, stage_step


@app.cell
def _(TokenStrip, anatomy, cfg, labels, layer, mo, position, prepared, stage_step, trace):
    walk = anatomy.walk_block(trace, layer.value, position.value, cfg.pre_norm)
    current = walk[stage_step.value - 1]
    _known = [r for r in prepared.strip if not r.get("unknown")]
    _strip = TokenStrip(tokens=_known, selected=position.value)
    _path = " → ".join(f"**{s.stage.label}**" if s is current else s.stage.label for s in walk)
    _label = labels[position.value].replace("`", "'")
    mo.vstack([mo.md(f"Token {position.value}, `{_label}` (outlined in red), in layer {layer.value}:"),
               mo.ui.anywidget(_strip), mo.md(_path)])
    return current, walk


@app.cell
def _(alt, cfg, current, layer, mo, walk):
    def vector_bars(values, title: str, color: str = "#2563eb", width: int = 640, height: int = 150) -> alt.Chart:
        """One bar per coordinate of a vector; hover shows the index and the exact value."""
        _rows = [{"i": i, "value": float(v)} for i, v in enumerate(values)]
        return alt.Chart(alt.Data(values=_rows)).mark_bar(color=color).encode(
            x=alt.X("i:Q", title="coordinate", scale=alt.Scale(domain=[0, len(_rows)])),
            y=alt.Y("value:Q", title="value"),
            tooltip=[alt.Tooltip("i:Q", title="coordinate"), alt.Tooltip("value:Q", format=".4f")],
        ).properties(title=title, width=width, height=height,
                     usermeta={"embedOptions": {"renderer": "svg", "actions": False}})

    _stage_rows = [{"step": f"{n + 1}. {s.stage.hook}", "norm": s.norm, "now": "this step" if s is current else "other",
                    "title": s.stage.title, "shape": str(list(s.shape))} for n, s in enumerate(walk)]
    _norms = alt.Chart(alt.Data(values=_stage_rows)).mark_bar().encode(
        x=alt.X("step:N", sort=None, title=None, axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("norm:Q", title="‖vector‖"),
        color=alt.Color("now:N", scale=alt.Scale(domain=["this step", "other"], range=["#dc2626", "#cbd5e1"]),
                        legend=None),
        tooltip=["title:N", "shape:N", alt.Tooltip("norm:Q", format=".3f")],
    ).properties(title="the vector's length at every step of the block", width=640, height=140,
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    _width = current.vector.shape[0]
    _kind = "F (the MLP's hidden width)" if current.stage.hook.startswith("mlp.") else "D (the model width)"
    _at = {s.stage.hook: s for s in walk}
    _what = {   # what this step did to the vector, in numbers read from the same trace
        "resid_pre": (f"The block's input: the stream as block {layer.value - 1} left it." if layer.value else
                      "The block's input: the token's embedding"
                      + (" plus its position's embedding" if cfg.position in ("learned", "sinusoidal") else "")
                      + ", not yet touched by any block."),
        "attn_in": f"‖x‖ went from {_at['resid_pre'].norm:.3f} to {_at['attn_in'].norm:.3f}.",
        "attn_out": "What attention read from this and earlier tokens, projected back to D numbers.",
        "resid_mid": f"Stream (‖x‖ = {_at['resid_pre'].norm:.3f}) + attention's output "
                     f"({_at['attn_out'].norm:.3f}) "
                     f"= a vector of length {_at['resid_mid'].norm:.3f}.",
        "mlp_in": f"‖x‖ went from {_at['resid_mid'].norm:.3f} to {_at['mlp_in'].norm:.3f}.",
        "mlp.pre": f"Widened from {_at['mlp_in'].vector.shape[0]} to {_at['mlp.pre'].vector.shape[0]} numbers.",
        "mlp.post": f"The activation bent each of the {_at['mlp.post'].vector.shape[0]} numbers on its own.",
        "mlp_out": f"Narrowed back from {_at['mlp.post'].vector.shape[0]} to {_at['mlp_out'].vector.shape[0]} numbers.",
        "resid_post": f"Stream ({_at['resid_mid'].norm:.3f}) + the MLP's output ({_at['mlp_out'].norm:.3f}) = a "
                      f"vector of length {_at['resid_post'].norm:.3f}, the next block's input.",
    }
    if cfg.mlp == "swiglu":  # mlp.pre records the gate's projection; mlp.post is silu(gate) times the up-projection
        _F = _at["mlp.post"].vector.shape[0]
        _what.update({"mlp.pre": f"Widened from {_at['mlp_in'].vector.shape[0]} to {_F} numbers: this is the "
                                 f"gate's projection. SwiGLU's second up-projection runs beside it, without a hook.",
                      "mlp.post": f"SiLU bent each of the {_F} gate numbers on its own, and each was multiplied "
                                  f"by the matching number of the second up-projection."})
    if not cfg.pre_norm:  # the 2017 arrangement: no norm before the sub-layers, a norm after each addition
        _what.update(attn_in="Unchanged: post-norm feeds the raw stream to attention.",
                     mlp_in="Unchanged: post-norm feeds the stream itself to the MLP.",
                     resid_mid=f"Norm 1 of (stream + attention's output): length {_at['resid_mid'].norm:.3f}.",
                     resid_post=f"Norm 2 of (stream + the MLP's output): length {_at['resid_post'].norm:.3f}.")
    _what = _what[current.stage.hook]
    mo.vstack([
        mo.md(f"### Step {walk.index(current) + 1}: {current.stage.title}\n\n"
              f"Hook `blocks.{layer.value}.{current.stage.hook}`, tensor shape **{list(current.shape)}** "
              f"(batch, tokens, {_kind}); this token's vector has {_width} numbers and length "
              f"‖x‖ = {current.norm:.3f}. {_what}"),
        vector_bars(current.vector.tolist(), f"step {walk.index(current) + 1} · {current.stage.hook} · "
                                             f"‖x‖ = {current.norm:.3f} · {_width} numbers"),
        _norms,
    ])
    return (vector_bars,)


@app.cell
def _(Block, code_panel, current, loaded, mo, walk):
    # A step inside the MLP happens on the block's MLP line; the MLP's own forward is shown below it.
    _mlp_line = next(s.stage.marker for s in walk if s.stage.hook == "mlp_out")
    _panels = [code_panel(Block.forward, highlight=_mlp_line if current.stage.in_mlp else current.stage.marker)]
    if current.stage.in_mlp:
        _mlp = type(loaded.model.blocks[0].mlp)
        _panels.append(code_panel(_mlp.forward, highlight=current.stage.marker))
    mo.vstack([mo.md("The code that made this step's vector (highlighted): the block's real `forward`, "
                     "read from its file when the page ran." +
                     (" The step is inside the MLP, so its `forward` is shown too." if current.stage.in_mlp else ""))]
              + _panels)
    return


@app.cell
def _(cfg, mo):
    mo.md(rf"""
    ## Normalization: LayerNorm and RMSNorm

    A sub-layer works best when its input has a predictable size. **LayerNorm** (GPT-2, the 2017
    Transformer) makes each token's vector have mean 0 and variance 1, then applies a learned scale
    $\gamma$ and shift $\beta$ per coordinate. **RMSNorm** (Llama, Qwen, this course's model) skips the
    mean and the shift: it only divides by the root mean square, so the vector's length becomes
    $\sqrt{{D}}$ before the learned scale.

    $$\text{{LayerNorm}}(x) = \frac{{x - \mu}}{{\sqrt{{\sigma^2 + \epsilon}}}}\,\gamma + \beta
      \qquad \text{{RMSNorm}}(x) = \frac{{x}}{{\sqrt{{\tfrac1D \sum_j x_j^2 + \epsilon}}}}\,\gamma$$

    Below, the chosen token's vector as it enters the block, through both of the library's modules, built
    fresh ($\gamma = 1$, $\beta = 0$), so only the formula differs.
    """)
    return


@app.cell
def _(anatomy, cfg, layer, loaded, mo, torch, walk):
    norm_results = anatomy.compare_norms(walk[0].vector, eps=cfg.norm_eps)
    with torch.no_grad():   # the model's own first norm, with its learned scale (and shift, for LayerNorm)
        _own = loaded.model.blocks[layer.value].norm1(walk[0].vector.to(next(loaded.model.parameters()).dtype)).float()
    _kind = "RMSNorm" if cfg.norm == "rmsnorm" else "LayerNorm"
    _learned = "learned scale" if cfg.norm == "rmsnorm" else "learned scale and shift"
    _own_txt = (f"This model's blocks use {_kind}. Its own first norm in layer {layer.value}, with its {_learned}, "
                f"turns the same vector into one of length {_own.norm():.3f}"
                + (f" (step 2 above: {walk[1].norm:.3f})" if cfg.pre_norm else "")
                + f": the distance from √D is the {_learned}'s doing, not the formula's.")
    _rows = "\n".join(f"| {name} | {s['mean']:+.4f} | {s['variance']:.4f} | {s['rms']:.4f} | {v.norm():.3f} |"
                      for name, (v, s) in norm_results.items())
    _ln, _rms = norm_results["LayerNorm"][1], norm_results["RMSNorm"][1]
    mo.md(f"| vector | mean | variance | root mean square | length ‖x‖ |\n|---|---|---|---|---|\n{_rows}\n\n"
          f"LayerNorm's output has mean {_ln['mean']:+.1e} and variance {_ln['variance']:.4f}; RMSNorm's keeps a "
          f"mean of {_rms['mean']:+.4f} (it never subtracts it) and has root mean square {_rms['rms']:.4f}. "
          f"Both lengths are close to √D = {cfg.d_model ** 0.5:.3f}: "
          f"the {'small ε keeps them slightly below' if _rms['rms'] < 1 else 'ε changes them only slightly'}. "
          + _own_txt)
    return (norm_results,)


@app.cell
def _(LayerNorm, RMSNorm, anatomy, code_panel, mo):
    mo.accordion({"The code: LayerNorm.forward and RMSNorm.forward (glassformer/model/norm.py)":
                  mo.vstack([code_panel(LayerNorm.forward), code_panel(RMSNorm.forward)]),
                  "compare_norms (glassformer/analysis/block_anatomy.py)": code_panel(anatomy.compare_norms)})
    return


@app.cell
def _(anatomy, cfg, mo):
    _counts = anatomy.mlp_parameter_counts(cfg.d_model)
    _mlp_kind = {"swiglu": "SwiGLU", "gelu": "GELU", "gelu_tanh": "GELU (tanh)"}[cfg.mlp]
    _rows = "\n".join(f"| {name} | {f} | {n:,} |" for name, (f, n) in _counts.items())
    mo.md(rf"""
    ## The MLP: widen, bend, narrow

    The MLP widens each token's vector from $D$ to $F$ numbers, passes each of them through a fixed
    bend, the **activation function**, and projects back to $D$. Without the bend, two matrices in a row
    would collapse into one matrix: the MLP would be a single linear map. GPT-2 uses **GELU**
    (a smooth version of "negative → 0"). Llama and Qwen use **SwiGLU**: two up-projections, one bent by
    SiLU ($x\,\sigma(x)$) and used as a *gate* that multiplies the other, element by element.

    $$\text{{GELU MLP}}(x) = W_{{\text{{down}}}}\,\operatorname{{gelu}}(W_{{\text{{up}}}} x) \qquad
      \text{{SwiGLU}}(x) = W_{{\text{{down}}}}\big(\operatorname{{silu}}(W_{{\text{{gate}}}} x) \odot W_{{\text{{up}}}} x\big)$$

    This model: {_mlp_kind}, $D = {cfg.d_model} \to F = {cfg.d_mlp}$ ({cfg.d_mlp / cfg.d_model:.2f}× wider).
    SwiGLU has three matrices instead of two, so models give it a narrower $F$ to spend about the same
    number of parameters. Counted on the library's modules at $D = {cfg.d_model}$ (weights only):

    | MLP | F | parameters |
    |---|---|---|
    {_rows}
    """)
    return


@app.cell
def _(anatomy, line_chart, mo):
    _xs = [x / 4 for x in range(-20, 13)]
    _curves = anatomy.activation_curves(_xs)
    _rows = [{"input": x, "output": y, "function": name} for name, ys in _curves.items() for x, y in zip(_xs, ys)]
    _at = {name: ys[_xs.index(-1.0)] for name, ys in _curves.items()}
    mo.vstack([
        mo.ui.altair_chart(line_chart(_rows, "input", "output", "function", height=220,
                                      title="activations, computed by the library's MLP modules (one unit, weights 1)"),
                           chart_selection=False, legend_selection=False),
        mo.md(f"At input −1 they give GELU {_at['GELU']:.4f}, GELU (tanh) {_at['GELU (tanh)']:.4f} and the SwiGLU "
              f"gate {_at['SwiGLU gate (up = 1)']:.4f}: small negative values leak through, unlike ReLU's hard 0. "
              f"For large positive inputs all three approach the input itself, for large negative ones 0.")])
    return


@app.cell
def _(cfg, current, layer, mo, position, vector_bars, walk):
    _post = walk[6].vector                                                     # (F,) mlp.post
    _energy = _post.pow(2)
    _order = _energy.argsort(descending=True)
    _cum = _energy[_order].cumsum(0) / _energy.sum().clamp_min(1e-30)
    _half = int((_cum < 0.5).sum()) + 1
    _top = _order[:8].tolist()
    _top_txt = ", ".join(f"#{i} ({_post[i].item():+.3f})" for i in _top)
    _made_by = ("SiLU of the gate projection times the up-projection" if cfg.mlp == "swiglu"
                else "the activation's output")
    mo.vstack([
        mo.md(f"### Which hidden units fire for this token\n\nThe {cfg.d_mlp} hidden values at "
              f"`blocks.{layer.value}.mlp.post` for token {position.value}, layer {layer.value}: "
              f"{_made_by}. "
              f"Half of this vector's squared length sits in {_half} of the {cfg.d_mlp} units "
              f"({_half / cfg.d_mlp:.1%}); "
              f"the strongest: {_top_txt}. Move the token or layer slider to see a different set fire."),
        vector_bars(_post.tolist(), f"mlp.post, layer {layer.value}, token {position.value}: {cfg.d_mlp} hidden units",
                    color="#7c3aed"),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Residual connections: how much does each sub-layer add?

    Because each sub-layer's output is *added* to the stream, a sub-layer can leave the stream almost
    untouched (output near 0) or rewrite it. A useful measure: the length of the update divided by the
    length of the stream it joins, $\lVert \text{update} \rVert / \lVert x \rVert$, averaged over the
    tokens of your text. The addition also gives the gradient a direct path back through every layer
    (the derivative of $x + f(x)$ is $1 + f'(x)$; in a pre-norm stack nothing else sits on that path),
    one reason deep stacks can be trained at all.
    """)
    return


@app.cell
def _(alt, anatomy, cfg, mo, trace):
    shares = anatomy.residual_shares(trace, cfg.n_layers)
    _chart = alt.Chart(alt.Data(values=shares)).mark_line(point=True).encode(
        x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("share:Q", title="‖update‖ / ‖stream‖"),
        color=alt.Color("sublayer:N", title=None, scale=alt.Scale(domain=["attention", "MLP"],
                                                                   range=["#ea580c", "#2563eb"])),
        tooltip=["layer:O", "sublayer:N", alt.Tooltip("share:Q", format=".3f")],
    ).properties(title="share each sub-layer adds to the residual stream, on your text", width=560, height=200,
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    _big = max(shares, key=lambda r: r["share"])
    _small = min(shares, key=lambda r: r["share"])
    _attn = [r["share"] for r in shares if r["sublayer"] == "attention"]
    _mlp = [r["share"] for r in shares if r["sublayer"] == "MLP"]
    mo.vstack([
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
        mo.md(f"On your text the largest update is the {_big['sublayer']} of layer {_big['layer']}: "
              f"{_big['share']:.2f}× the length of the stream it joins; the smallest is the {_small['sublayer']} of "
              f"layer {_small['layer']} ({_small['share']:.2f}×). Averaged over layers, attention's update is "
              f"{sum(_attn) / len(_attn):.2f}× as long as the stream it joins, and the MLP's "
              f"{sum(_mlp) / len(_mlp):.2f}×."),
    ])
    return (shares,)


@app.cell
def _(anatomy, code_panel, mo):
    mo.accordion({"The code: walk_block and residual_shares (glassformer/analysis/block_anatomy.py)":
                  mo.vstack([code_panel(anatomy.walk_block), code_panel(anatomy.residual_shares)])})
    return


@app.cell
def _(mo):
    grad_d, grad_seeds = 32, 3   # the width of the measured stacks, and how many initialisations each number averages
    mo.md(rf"""
    ## Pre-norm or post-norm, measured

    The 2017 Transformer put the norm *after* the addition, on the stream itself: **post-norm**,
    $x \leftarrow \operatorname{{Norm}}(x + f(x))$. GPT-2 and almost every model since moved it inside the
    branch: **pre-norm**, $x \leftarrow x + f(\operatorname{{Norm}}(x))$. Post-norm models were known to
    need **warmup**: a learning rate that starts near 0 and grows over the first steps.

    Here is a measurement instead of a story. The page builds fresh stacks of each kind with the
    library (`ModelConfig(pre_norm=False)` gives the 2017 block), runs one batch of random tokens,
    backpropagates once and measures each layer's **gradient** length: how hard the first step of plain
    gradient descent would push that layer's weights. (Adam, which most Transformers train with, divides
    each number of the gradient by a running estimate of its size, so its steps are not proportional to
    these lengths.) Each number is averaged over {grad_seeds} random initialisations; the models are small
    ($D = {grad_d}$) so this runs in seconds, and is cached.
    """)
    return grad_d, grad_seeds


@app.cell
def _(mo):
    deepest = mo.ui.dropdown(options={"24 layers": 24, "48 layers (slower)": 48, "12 layers": 12}, value="24 layers",
                             label="deepest stack")
    init = mo.ui.radio(options={"Xavier (as in Xiong et al. 2020)": "xavier",
                                "GPT-2's (this library's default)": "library"},
                       value="Xavier (as in Xiong et al. 2020)", label="initialisation", inline=True)
    mo.hstack([deepest, init], justify="start", gap=2)
    return deepest, init


@app.cell
def _(alt, deepest, grad_d, grad_seeds, gradnorms, init, mo):
    depths = [n for n in (2, 6, 12, 24, 48) if n <= deepest.value]
    with mo.status.spinner(title="Measuring gradients at initialisation…"):
        sweep = gradnorms.depth_sweep(depths, d_model=grad_d, seeds=grad_seeds, init=init.value)
    _per_layer = alt.Chart(alt.Data(values=sweep)).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("layer:Q", title="layer (0 = nearest the input)", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("grad_norm:Q", title="gradient length", scale=alt.Scale(type="log")),
        color=alt.Color("norm:N", title=None, scale=alt.Scale(domain=["pre-norm", "post-norm"],
                                                                range=["#2563eb", "#dc2626"])),
        tooltip=["layers:Q", "norm:N", "layer:Q", alt.Tooltip("grad_norm:Q", format=".4f")],
    ).properties(width=150, height=150).facet(
        facet=alt.Facet("layers:O", title="gradient length per layer, for stacks of N layers (log scale)"),
        columns=5,
    ).resolve_scale(x="independent").properties(usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.ui.altair_chart(_per_layer, chart_selection=False, legend_selection=False)
    return depths, sweep


@app.cell
def _(depths, grad_d, grad_seeds, gradnorms, init, mo):
    def measured(n, pre):
        return gradnorms.layer_gradient_norms(n, pre, grad_d, grad_seeds, init.value)

    _lo, _hi = depths[0], depths[-1]
    _rows = "\n".join(
        f"| {n} | {measured(n, True)[0]:.3f} | {measured(n, True)[-1]:.3f} | "
        f"{gradnorms.first_to_last(measured(n, True)):.2f}× | {measured(n, False)[0]:.3f} | "
        f"{measured(n, False)[-1]:.3f} | {gradnorms.first_to_last(measured(n, False)):.2f}× |" for n in depths)
    _pre_last = measured(_hi, True)[-1] / measured(_lo, True)[-1]
    _post_last = measured(_hi, False)[-1] / measured(_lo, False)[-1]
    _gap = measured(_hi, False)[-1] / measured(_hi, True)[-1]

    def change(r):
        if 0.9 < r < 1.1:
            return f"about the same size (×{r:.2f})"
        return f"{1 / r:.1f}× smaller" if r < 1 else f"{r:.1f}× larger"

    _first_pre = gradnorms.first_to_last(measured(_hi, True))
    _first_post = gradnorms.first_to_last(measured(_hi, False))
    _pattern = _pre_last < 0.9 and _post_last >= 0.9   # pre-norm's last-layer gradient shrinks, post-norm's does not
    _post_top = max(range(_hi), key=lambda i: measured(_hi, False)[i])       # where post-norm's gradient peaks
    # Xiong et al.'s per-layer picture: post-norm's gradient grows towards the output, pre-norm's stays level.
    _post_grows = _first_post < 1
    _pre_level = 0.8 < _first_pre < 1.25
    _per_layer = (f"in these {_hi}-layer stacks the post-norm gradient is largest at layer {_post_top} and its first "
                  f"layer's is {_first_post:.2f}× its last layer's; the pre-norm one's first layer's is "
                  f"{_first_pre:.2f}× its last's.")
    if _pattern and init.value == "xavier":
        _reading = (
            "With this initialisation the gradient of the last layer shrinks as the pre-norm stack grows and does "
            "not shrink as the post-norm stack grows. That part matches what Xiong et al. (2020) derive for the 2017 "
            "setup: near the output, a post-norm gradient whose size does not depend on the depth and a pre-norm "
            "one that shrinks with it. Their argument for warmup builds on that: large gradients near the output "
            "make the first steps at a full learning rate unstable, and warmup avoids that by starting small. "
            "This page measures the gradients; the link to warmup is their argument, not a measurement here. "
            + ("They also describe, layer by layer, a post-norm gradient that grows from the input towards the "
               "output and a pre-norm one that stays about level; that matches here too: "
               if _post_grows and _pre_level else
               "Their layer-by-layer picture (a post-norm gradient growing from the input towards the output, a "
               "pre-norm one staying about level) does not match these stacks: ")
            + _per_layer)
    else:
        _reading = (
            "Xiong et al. (2020) derive, for Xavier initialisation, a pre-norm gradient near the output that "
            "shrinks as the stack grows and a post-norm one that does not. "
            + ("These numbers show that pattern too, with another initialisation."
               if _pattern else "These numbers do not show that pattern: where the norm sits matters, and so does "
                                "how the weights start." + (" Switch to Xavier to compare." if init.value != "xavier"
                                                            else "")))
    mo.md(f"""
    | layers | pre-norm: first layer | last layer | first ÷ last | post-norm: first layer | last layer | first ÷ last |
    |---|---|---|---|---|---|---|
    {_rows}

    What these numbers say: going from {_lo} to {_hi} layers, the last layer's gradient becomes
    {change(_pre_last)} in the pre-norm stack and {change(_post_last)} in the post-norm stack. At {_hi}
    layers the post-norm stack's last layer gets {_gap:.2f}× the pre-norm one's gradient, and the first
    layer's gradient is {_first_pre:.2f}× the last layer's in pre-norm and {_first_post:.2f}× in post-norm.

    {_reading}
    """)
    return


@app.cell
def _(code_panel, gradnorms, mo):
    mo.accordion({"The code: layer_gradient_norms and block_gradient_norms (glassformer/analysis/gradient_norms.py)":
                  mo.vstack([code_panel(gradnorms.layer_gradient_norms.__wrapped__),   # under its lru_cache
                             code_panel(gradnorms.block_gradient_norms)])})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Dropout: noise in training, none in use

    **Dropout** is a training-time regularizer: with probability $p$ it zeroes each number of a
    sub-layer's output before the addition, and scales the survivors by $1/(1-p)$ so the expected
    value is unchanged. The model cannot lean on any single coordinate. In evaluation mode
    (`model.eval()`) dropout does nothing, so the same input always gives the same output. Below, a copy
    of the chosen model runs your text twice in training mode and twice in evaluation mode.
    """)
    return


@app.cell
def _(cfg, mo):
    drop_rate = mo.ui.slider(0.0, 0.5, step=0.05, value=round(cfg.dropout, 2), label="dropout rate p",
                             show_value=True)
    drop_rate
    return (drop_rate,)


@app.cell
def _(anatomy, cfg, drop_rate, ids, loaded, mo):
    check = anatomy.dropout_check(loaded.model, ids, rate=drop_rate.value)
    _origin = (f"This model was trained with residual dropout p = {cfg.dropout}"
               if "preset_config" in loaded.card else   # the course model and your own runs record their recipe
               f"This model's configuration sets residual dropout p = {cfg.dropout} (a model imported for use "
               f"need not record the rate it was trained with)")
    _attn = (f" In training mode this model also drops attention weights, with probability {cfg.attn_dropout}; "
             f"the slider does not change that." if cfg.attn_dropout > 0 else "")
    if check.train_vs_train > 0:
        _train_txt = "Two training-mode runs differ: each drew its own random mask" + (
            " (with p = 0, only on the attention weights)." if check.rate == 0 else ".")
    else:
        _train_txt = ("With nothing to drop, training mode is deterministic too." if check.rate == 0 and
                      not cfg.attn_dropout else "The two training-mode runs happened to agree.")
    mo.md(f"""
    {_origin}; here p = {check.rate:.2f}.{_attn}

    | comparison | max \\|difference\\| of the logits |
    |---|---|
    | training mode, run 1 vs run 2 | {check.train_vs_train:.4g} |
    | evaluation mode, run 1 vs run 2 | {check.eval_vs_eval:.4g} |
    | training mode vs evaluation mode | {check.train_vs_eval:.4g} |

    {_train_txt}
    {"Evaluation mode gave identical logits both times." if check.eval_vs_eval == 0 else
     "Evaluation mode differed between runs, which it should not."}
    """)
    return (check,)


@app.cell
def _(anatomy, code_panel, mo):
    mo.accordion({"The code: dropout_check (glassformer/analysis/block_anatomy.py)": code_panel(anatomy.dropout_check)})
    return


@app.cell
def _(Question):
    questions = [
        Question("prenorm-where", "In a pre-norm block, what does the norm normalize?",
                 ["The input of each sub-layer; the stream itself is never normalized",
                  "The stream after each addition", "Only the final logits", "The attention weights"],
                 0, "Pre-norm computes x + f(Norm(x)): the norm is inside the branch, and the addition uses the "
                    "untouched x. Post-norm (2017) computes Norm(x + f(x)) instead."),
        Question("rmsnorm", "What does RMSNorm leave out compared with LayerNorm?",
                 ["Subtracting the mean (and the learned shift)", "Dividing by a measure of size",
                  "The learned per-coordinate scale", "Nothing: they are the same formula"],
                 0, "RMSNorm divides by the root mean square and multiplies by a learned scale; it never centres "
                    "the vector, so its output's mean is whatever it happens to be (the table above shows it)."),
        Question("mlp-bend", "Why does the MLP need an activation between its two matrices?",
                 ["Without it, two matrices in a row equal one matrix: the MLP would be linear",
                  "To make the vector shorter", "To normalize the vector", "To mix information between tokens"],
                 0, "W_down · (W_up · x) = (W_down W_up) · x. The bend (GELU, SiLU gate) is what lets the MLP "
                    "compute something no single matrix can. Mixing between tokens is attention's job."),
        Question("residual", "A sub-layer's output is added to the stream rather than replacing it. What does "
                             "that give training?",
                 ["A direct path for the gradient back through every layer",
                  "Fewer parameters", "Faster matrix multiplications", "Deterministic outputs"],
                 0, "The derivative of x + f(x) with respect to x is 1 + f'(x): even if f's derivative is small, the "
                    "gradient passes through the 1 unchanged."),
        Question("dropout-eval", "You run a trained model twice on the same text in evaluation mode. With dropout "
                                 "p = 0.1, what happens?",
                 ["Identical outputs: dropout is off in evaluation mode",
                  "Different outputs: 10% of the numbers are zeroed at random", "An error",
                  "Outputs 10% smaller"],
                 0, "Dropout only acts in training mode (model.train()). The table above measured it: the two "
                    "evaluation-mode runs differ by exactly 0."),
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
