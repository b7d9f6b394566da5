import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="5. Multi-head attention", css_file="course.css")


@app.cell
def _():
    import time

    import altair as alt
    import marimo as mo
    import torch

    from glassformer.analysis import ablation, heads, kv_memory
    from glassformer.course import common
    from glassformer.course.widgets import Question, code_panel, matrix_heatmap, quiz, quiz_feedback, token_label
    from glassformer.model.attention import Attention, KVCache
    from glassformer.model.config import preset
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Attention, KVCache, Question, ablation, alt, code_panel, common, heads, kv_memory, matrix_heatmap, mo,
            preset, quiz, quiz_feedback, this, time, token_label, torch)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    One attention pattern gives every position one way of choosing which earlier tokens to read. But a
    word needs several things at once: the character just before it, the start of the current word, the
    speaker's name three lines up. **Multi-head attention** runs several attentions side by side, each
    with its own small query, key and value projections, so each can learn its own way of looking back.
    Each of these parallel attentions is a **head**.

    It usually costs about the same as one attention over the full width: the query, key and value
    projections each still make $D$ numbers per token (the model's width), cut into $H$ slices of
    $D_h = D / H$ numbers, one per head. Each head attends with its own slice of queries, keys and
    values (each slice still computed from the whole $D$-wide input vector); the $H$ results are put
    back side by side (**concatenation**) and one more matrix, the **output projection** $W^O$, mixes
    them into the residual stream. (Some models differ: heads that together are wider or narrower than
    $D$, or fewer key/value slices than heads, as at the end of this chapter. The next section says so
    when the chosen model does.)
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text, token_label, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value)
    model = loaded.model.eval()
    config = model.config
    ids = torch.tensor([prepared.ids])                                   # (1, T)
    labels = [token_label(loaded.tokenizer.token_bytes(i)) for i in prepared.ids]
    with torch.no_grad():
        logits, trace = model.run_with_trace(ids, ["blocks.*.attn_in", "blocks.*.attn.q", "blocks.*.attn.k",
                                                   "blocks.*.attn.v", "blocks.*.attn.pattern", "blocks.*.attn.z",
                                                   "blocks.*.attn_out"])
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return config, ids, labels, loaded, logits, model, prepared, trace


@app.cell
def _(config, mo):
    _wide = ("" if config.n_heads * config.head_dim == config.d_model else
             f" (here the heads together are not $D$ wide: $H \\cdot D_h = {config.n_heads * config.head_dim}"
             f" \\neq D$, so the projections map $D$ to $H \\cdot D_h$ numbers and $W^O$ maps them back)")
    _x = ("the layer's normalized input" if config.pre_norm else
          "the layer's input (this model normalizes after attention)")
    _bo = " + b^O" if config.attn_out_bias else ""
    _bo_note = " and $b^O$ the output projection's bias" if config.attn_out_bias else ""
    _extra = [s for s in ["$W^Q_h, W^K_h, W^V_h$ also add a bias" if config.attn_bias else "",
                          "q and k are rotated by position (RoPE)" if config.position == "rope" else "",
                          "ALiBi adds a distance penalty to the scores" if config.position == "alibi" else "",
                          "each head's q and k are normalized first" if config.qk_norm else "",
                          (f"the {config.n_heads} query heads share {config.n_kv_heads} key/value heads (GQA: "
                           "$K_h$, $V_h$ are those of head $h$'s group)") if config.n_kv_heads != config.n_heads
                          else ""] if s]
    _extra = (" Beyond these formulas, in this model " + "; ".join(_extra) + ".") if _extra else ""
    mo.md(rf"""
    ## Split, attend, concatenate, project

    For head $h$ of a layer, with $X$ {_x}, one row per token:

    $$Q_h = X W^Q_h,\quad K_h = X W^K_h,\quad V_h = X W^V_h,\qquad
    \text{{head}}_h = \operatorname{{softmax}}\!\left(\frac{{Q_h K_h^\top}}{{\sqrt{{D_h}}}} + M\right) V_h$$

    $$\operatorname{{MultiHead}}(X) = \operatorname{{concat}}(\text{{head}}_0, \dots, \text{{head}}_{{H-1}})\, W^O{_bo}$$

    where $M$ is the causal mask (0 on allowed positions, $-\infty$ on future ones){_bo_note}. In the chosen model
    $D = {config.d_model}$, $H = {config.n_heads}$ heads of $D_h = {config.head_dim}$ numbers each, in
    each of its {config.n_layers} layers{_wide}.{_extra} The library computes the three projections of all heads with a
    single matrix multiply and then *views* the result as heads: no data is copied to split it. Below,
    every shape is read from the hook points of one run on your text.
    """)
    return


@app.cell
def _(config, mo):
    layer = mo.ui.dropdown({str(i): i for i in range(config.n_layers)}, value="0", label="layer")
    head = mo.ui.dropdown({str(h): h for h in range(config.n_heads)}, value="0", label="head")
    mo.hstack([layer, head], justify="start")
    return head, layer


@app.cell
def _(config, heads, ids, layer, mo, model, torch, trace):
    L = layer.value
    _attn = model.blocks[L].attn
    _z = trace[f"blocks.{L}.attn.z"]                                      # (B, H, T, Dh)
    _B, _H, _T, _Dh = _z.shape
    _concat = _z.transpose(1, 2).reshape(_B, _T, _H * _Dh)               # as Attention.forward does
    with torch.no_grad():
        _projected = _attn.out(_concat)                                   # (B, T, D)
        _writes = heads.head_writes(_attn, _z)                            # (B, H, T, D)
        _summed = _writes.sum(1) + (_attn.out.bias if _attn.out.bias is not None else 0)
    _out = trace[f"blocks.{L}.attn_out"]
    _diff_concat = (_projected - _out).abs().max().item()
    _diff_sum = (_summed - _out).abs().max().item()
    _shape = lambda name: "[" + ", ".join(str(s) for s in trace[f"blocks.{L}.{name}"].shape) + "]"  # noqa: E731
    _Hkv = config.n_kv_heads
    _rows = [
        ("`attn_in`", _shape("attn_in"), ("the normalized residual stream" if config.pre_norm else
                                           "the residual stream (post-norm: normalized after attention)")
         + ": one D-vector per token"),
        ("(inside forward) `qkv`", f"[{_B}, {_T}, {(config.n_heads + 2 * _Hkv) * _Dh}]",
         f"one matrix multiply makes every head's q, k and v: ({config.n_heads} + 2·{_Hkv}) × {_Dh}"),
        ("`attn.q`", _shape("attn.q"), "split: viewed as H heads of Dh, heads moved before positions"),
        ("`attn.k`", _shape("attn.k"), "keys, one set per key/value head"),
        ("`attn.v`", _shape("attn.v"), "values, one set per key/value head"),
        ("`attn.pattern`", _shape("attn.pattern"), "one T×T attention pattern per head"),
        ("`attn.z`", _shape("attn.z"), "each head's output: its pattern-weighted sum of values"),
        ("(inside forward) concat", f"[{_B}, {_T}, {_H * _Dh}]", "heads side by side again: H·Dh numbers per token"),
        ("`attn_out`", _shape("attn_out"), "after the output projection W_O: back to D, ready to add to the stream"),
    ]
    mo.vstack([
        mo.md(f"### Shapes in layer {L} (B = batch, T = {_T} tokens of your text)\n\n"
              "| hook point | shape | what it is |\n|:---|:---|:---|\n" +
              "\n".join(f"| {a} | {b} | {c} |" for a, b, c in _rows)),
        mo.md(f"Recomputing the last two steps from the recorded `attn.z` — concatenate, then `attn.out` — gives "
              + (f"`attn_out` exactly (all {_out.numel():,} numbers equal). " if _diff_concat == 0 else
                 f"`attn_out` to within {_diff_concat:.1e} (largest difference over all {_out.numel():,} numbers). ") +
              f"Cutting $W^O$ into {_H} blocks of {_Dh} rows shows what the concatenation really does: the output "
              f"is the *sum of the heads' writes*, each head projecting its own {_Dh} numbers into the "
              f"{config.d_model}-wide stream; summed{' (plus the bias)' if _attn.out.bias is not None else ''} "
              f"they match `attn_out` to {_diff_sum:.1e}."),
    ])
    return (L,)


@app.cell
def _(Attention, code_panel, heads, mo):
    mo.accordion({
        "The code that ran: Attention.forward (glassformer/model/attention.py)":
            code_panel(Attention.forward, highlight=("split(", ".view(B, T", "transpose(1, 2)", "reshape(B, T, H * Dh)",
                                                     "self.out(z)")),
        "head_writes: one head's share of the output projection (glassformer/analysis/heads.py)": code_panel(heads.head_writes),
    })
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## One head's pattern on your text

    Pick a layer and a head above. Each row of the heatmap is a query token and shows how its weight (a
    row sums to 1) is spread over the tokens it may see; hover a cell for the exact weight. The numbers
    under it summarise the head over *every* position of your text but the first (which can only look
    at itself): average weight on the previous token, on itself and on the first token, how far back it
    reaches on average, and how spread its rows are on average (entropy, in bits: 0 = all weight on one
    token).
    """)
    return


@app.cell
def _(mo, prepared):
    window = mo.ui.slider(8, max(8, min(64, len(prepared.ids))), step=1, value=max(8, min(32, len(prepared.ids))),
                          label="positions shown (the last ones of your text)", show_value=True)
    window
    return (window,)


@app.cell
def _(L, head, heads, labels, matrix_heatmap, mo, trace, window):
    _pattern = trace[f"blocks.{L}.attn.pattern"]                          # (1, H, T, T)
    _T = _pattern.shape[-1]
    shown = min(window.value, _T)
    _h = head.value
    _p = _pattern[0, _h, -shown:, -shown:].numpy()
    _lab = labels[-shown:]
    _chart = matrix_heatmap(_p, _lab, _lab, title=f"layer {L}, head {_h}: attention weights", scheme="purples",
                            domain=(0, 1), row_title="query (attending from)", col_title="key (attending to)",
                            value_title="weight", cell=16)
    if _T >= 2:
        profile = heads.pattern_profile(_pattern)
        _f = {k: v[_h].item() for k, v in profile.items()}
        _summary = mo.md(
            f"**Layer {L}, head {_h}**, averaged over positions 1…{_T - 1} of your text: {_f['previous']:.0%} of "
            f"the weight on the previous token, {_f['self']:.0%} on itself, {_f['first']:.0%} on the first token; "
            f"it reaches {_f['distance']:.1f} tokens back; row entropy {_f['entropy']:.2f} bits. "
            f"Rule-of-thumb label: *{heads.describe(profile, _h)}*."
            + ("" if shown == _T else f" (The heatmap shows the last {shown} of {_T} positions; earlier keys are "
                                      "cut off on the left, so a row's visible weights can sum to less than 1.)"))
    else:
        profile = None
        _summary = mo.md("Your text is a single token: every head can only look at it. Type more to see patterns.")
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False), _summary])
    return (shown,)


@app.cell
def _(mo):
    mo.md(r"""
    ## All heads at a glance

    The same layer, every head side by side (small multiples): the differences between heads are the
    point of having several. Change the layer above; hover any cell for its exact weight.
    """)
    return


@app.cell
def _(L, alt, heads, labels, mo, shown, trace):
    def heads_grid(pattern, labels, shown, layer):
        """One small heatmap per head of `pattern` (H, T, T), last `shown` positions, in a grid."""
        H, T = pattern.shape[0], pattern.shape[-1]
        profile = heads.pattern_profile(pattern[None]) if T >= 2 else None
        weights = pattern.tolist()                                        # H nested lists of T x T
        rows, names = [], []
        for h in range(H):
            name = f"head {h}" + (f": {heads.describe(profile, h)}" if profile is not None else "")
            names.append(name)
            for qi in range(T - shown, T):
                for ki in range(T - shown, qi + 1):
                    rows.append({"head": name, "q": qi, "k": ki, "query": f"{qi}: {labels[qi]}",
                                 "key": f"{ki}: {labels[ki]}", "w": weights[h][qi][ki]})
        size = max(120, min(200, 6 * shown))
        base = alt.Chart(alt.InlineData(values=rows)).mark_rect().encode(
            x=alt.X("k:O", axis=None), y=alt.Y("q:O", axis=None),
            color=alt.Color("w:Q", title="weight", scale=alt.Scale(scheme="purples", domain=[0, 1])),
            tooltip=[alt.Tooltip("head:N"), alt.Tooltip("query:N", title="query"), alt.Tooltip("key:N", title="key"),
                     alt.Tooltip("w:Q", title="weight", format=".4f")],
        ).properties(width=size, height=size)
        return base.facet(facet=alt.Facet("head:N", title=f"layer {layer}: every head, last {shown} positions",
                                          sort=names),
                          columns=4).properties(usermeta={"embedOptions": {"renderer": "svg", "actions": False}})

    mo.ui.altair_chart(heads_grid(trace[f"blocks.{L}.attn.pattern"][0], labels, shown, L),
                       chart_selection=False, legend_selection=False)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## What each head does, measured: switch it off

    A pattern shows where a head *looks*, not whether the model *needs* it. To measure that, switch the
    head off and see how much worse the model predicts. Everything a head contributes passes through its
    output $z_h$ (hook point `blocks.{i}.attn.z`), so setting $z_h = 0$ removes exactly that head's write
    $z_h W^O_h$ and nothing else. This is **head ablation**. The measure is the next-token *loss*, the
    average of $-\ln p(\text{true next token})$ over the positions (lower is better), and the table shows
    how much it rises:

    $$\Delta_{\ell,h} = \text{loss}(\text{model without head } h \text{ of layer } \ell) - \text{loss}(\text{model})$$

    It is measured twice: on your text (short, so noisy), and on a fixed sample of the held-out part of
    TinyShakespeare that the course model never trained on. The library switches heads off through the
    model's hooks; the weights are never touched.
    """)
    return


@app.cell
def _(ablation, code_panel, mo):
    mo.accordion({
        "zero_heads, ablation_hooks and loss_without (glassformer/analysis/ablation.py)":
            mo.vstack([code_panel(ablation.zero_heads, highlight="= 0.0"), code_panel(ablation.ablation_hooks),
                       code_panel(ablation.loss_without, highlight="model.hooks")]),
        "ablation_table: every head, one at a time, in one batch (glassformer/analysis/ablation.py)":
            mo.vstack([code_panel(ablation.ablation_table, highlight="ids.repeat"), code_panel(ablation.zero_in_copies)]),
    })
    return


@app.cell
def _(mo, model):
    # A large model (GPT-2, Qwen3) runs every head's ablation on a smaller default sample.
    big_model = model.num_params() > 10_000_000
    val_windows = mo.ui.slider(2, 32, step=2, value=2 if big_model else 4, label="validation sample: windows",
                               show_value=True)
    val_windows
    return big_model, val_windows


@app.cell
def _(ablation, big_model, config, ids, loaded, mo, model, time, val_windows):
    val_length = min(64 if big_model else 128, config.n_ctx)
    val_ids = ablation.validation_sample(loaded.tokenizer, windows=val_windows.value, length=val_length)
    _t0 = time.perf_counter()
    val_base, val_table = ablation.cached_ablation_table(model, tuple(map(tuple, val_ids.tolist())))
    if ids.shape[1] >= 2:
        text_base, text_table = ablation.cached_ablation_table(model, tuple(map(tuple, ids.tolist())))
    else:
        text_base, text_table = None, None
    ablation_seconds = time.perf_counter() - _t0
    mo.md(f"Validation sample: {val_windows.value} windows of {val_length} tokens from the held-out 10% "
          f"({val_windows.value * (val_length - 1):,} predictions). Each table is {config.n_layers * config.n_heads + 1} "
          f"runs of the model (all heads on, then each of the {config.n_layers * config.n_heads} heads off alone), "
          f"done as copies of the input stacked into batches (as few as the memory budget allows); both took "
          f"{ablation_seconds:.2f} s on this machine's CPU "
          "(next to nothing when they were already cached).")
    return text_base, text_table, val_base, val_ids, val_table


@app.cell
def _(alt, config, heads, ids, matrix_heatmap, mo, text_base, text_table, trace, val_base, val_table):
    def delta_map(table, title):
        _m = max(1e-6, table.abs().max().item())
        chart = matrix_heatmap(table.numpy(), [str(i) for i in range(config.n_layers)],
                               [str(h) for h in range(config.n_heads)], title=title, row_title="layer",
                               col_title="head", value_title="loss change", cell=34)
        # diverging colours centred on 0: red = the loss rose without the head, blue = it fell
        return chart.encode(color=alt.Color("v:Q", title="loss change",
                                            scale=alt.Scale(scheme="redblue", domain=[-_m, _m], reverse=True)))

    def extremes(table):
        flat = table.flatten()
        hi, lo = int(flat.argmax()), int(flat.argmin())
        H = config.n_heads
        return (hi // H, hi % H, flat[hi].item()), (lo // H, lo % H, flat[lo].item())

    (_hl, _hh, _hv), (_ll, _lh, _lv) = extremes(val_table)
    _charts = [delta_map(val_table, f"validation sample (loss {val_base:.3f})")]
    _text_note = "Your text is one token long: there is nothing to predict, so only the validation table is shown."
    if text_table is not None:
        _charts.insert(0, delta_map(text_table, f"your text (loss {text_base:.3f})"))
        (_th, _tl, _tv), _ = extremes(text_table)
        _same = "the same head as" if (_th, _tl) == (_hl, _hh) else "a different head from the one"
        _text_note = (f"On your text the most needed head is layer {_th}, head {_tl} ({_tv:+.3f}): {_same} "
                      "on the validation sample. Short texts give noisy answers; the validation sample is "
                      "the steadier measure.")
    _hurting = int((val_table > 0.01).sum())
    if ids.shape[1] >= 2:  # what the most needed head looks at, on your text
        _prof = heads.pattern_profile(trace[f"blocks.{_hl}.attn.pattern"])
        _looks = (f" On your text that head puts {_prof['previous'][_hh].item():.0%} of its weight on the previous "
                  f"token and reaches {_prof['distance'][_hh].item():.1f} tokens back on average (pick layer {_hl}, "
                  f"head {_hh} above to see its pattern).")
    else:
        _looks = ""
    mo.vstack([
        mo.hstack([mo.ui.altair_chart(c, chart_selection=False, legend_selection=False) for c in _charts],
                  justify="start", gap=2),
        mo.md(f"Red = the loss rose without the head (the model needed it), blue = it fell. On the validation "
              f"sample the most needed head is **layer {_hl}, head {_hh}**: without it the loss "
              f"{'rises' if _hv > 0 else 'changes'} by {_hv:+.3f}, from {val_base:.3f} to {val_base + _hv:.3f} "
              f"({_hv / val_base:+.1%}).{_looks} The least needed "
              f"is layer {_ll}, head {_lh} ({_lv:+.3f}). {_hurting} of the {val_table.numel()} heads cost more "
              f"than 0.01 when switched off alone. {_text_note}"),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Switch any heads off yourself

    Tick heads to switch them off together and watch a prediction change: grey bars are the full
    model, blue bars the model without the ticked heads. The slider picks which prediction: the token
    after the last one of your text, or after any earlier position. Heads can stand in for each other,
    so switching off two can cost more, or less, than the sum of their two entries in the table.
    """)
    return


@app.cell
def _(config, ids, mo):
    head_boxes = mo.ui.array([mo.ui.checkbox(label=f"{h}") for _ in range(config.n_layers)
                              for h in range(config.n_heads)], label="heads switched off")
    predict_at = mo.ui.slider(0, ids.shape[1] - 1, step=1, value=ids.shape[1] - 1,
                              label="predict the token after position", show_value=True)
    mo.vstack([mo.md("Heads to switch off, by layer:"),
               *[mo.hstack([mo.md(f"layer {i}:"), *[head_boxes[i * config.n_heads + h] for h in range(config.n_heads)]],
                           justify="start", gap=1) for i in range(config.n_layers)],
               predict_at], gap=0.25)
    return head_boxes, predict_at


@app.cell
def _(ablation, alt, config, head_boxes, ids, labels, logits, mo, model, predict_at, text_base, token_label,
      loaded, val_base, val_ids):
    off = [(i // config.n_heads, i % config.n_heads) for i, on in enumerate(head_boxes.value) if on]
    _after_logits = ablation.logits_without(model, ids, off)            # (1, T, V)
    _t = int(predict_at.value)
    _before = logits[0, _t].float().softmax(-1)
    _after = _after_logits[0, _t].softmax(-1)
    _order = list(dict.fromkeys(_before.argsort(descending=True)[:8].tolist() +
                                _after.argsort(descending=True)[:8].tolist()))[:12]
    _order.sort(key=lambda i: -max(_before[i].item(), _after[i].item()))
    _lab = lambda i: token_label(loaded.tokenizer.token_bytes(i))  # noqa: E731
    _context = "".join(labels[max(0, _t - 11):_t + 1])
    _which = (", all heads on" if not off else
              f" without {len(off)} head{'s' if len(off) > 1 else ''}: " + ", ".join(f"L{l}H{h}" for l, h in off))
    _bars = [{"key": f"{n:02d} {_lab(i)}", "token": _lab(i), "model": m, "p": float(p[i])}
             for n, i in enumerate(_order) for m, p in (("all heads", _before), ("ticked heads off", _after))]
    _chart = alt.Chart(alt.Data(values=_bars)).mark_bar().encode(
        x=alt.X("key:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 3)", labelAngle=0,
                                                             labelFontSize=13, labelFont="monospace")),
        xOffset=alt.XOffset("model:N", sort=["all heads", "ticked heads off"]),
        y=alt.Y("p:Q", title="probability"),
        color=alt.Color("model:N", scale=alt.Scale(domain=["all heads", "ticked heads off"],
                                                   range=["#cbd5e1", "#2563eb"]),
                        legend=alt.Legend(title=None, orient="top")),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("model:N"), alt.Tooltip("p:Q", title="probability", format=".4f")],
    ).properties(title=f"next token after position {_t} (…{_context}){_which}", width=560, height=200,
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    _top_b, _top_a = int(_before.argmax()), int(_after.argmax())
    _lines = [f"Top prediction after position {_t}: `{_lab(_top_b)}` ({_before[_top_b].item():.1%}) with every head"]
    if off:
        _lines[0] += (f", `{_lab(_top_a)}` ({_after[_top_a].item():.1%}) without the ticked heads"
                      + (" — it changed." if _top_a != _top_b else "."))
        if text_base is not None:
            _true_b = ablation.next_token_probs(logits, ids)[0]          # (T-1,)
            _true_a = ablation.next_token_probs(_after_logits, ids)[0]
            _worst = int((_true_b - _true_a).argmax())
            _lines.append(f"Loss on your text: {text_base:.3f} → {ablation.next_token_loss(_after_logits, ids):.3f}. "
                          + (f"The biggest drop on your text is at position {_worst}: the probability of the "
                             f"token that really comes next, `{labels[_worst + 1]}`, fell from "
                             f"{_true_b[_worst].item():.1%} to {_true_a[_worst].item():.1%} (move the slider to "
                             f"{_worst} to see it)." if _true_b[_worst] > _true_a[_worst] else
                             "No true next token of your text lost probability."))
        _val_after = ablation.loss_without(model, val_ids, off)
        _lines.append(f"Loss on the validation sample: {val_base:.3f} → {_val_after:.3f} ({_val_after - val_base:+.3f}).")
    else:
        _lines[0] += ". Tick a head above to switch it off."
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False), mo.md(" ".join(_lines))])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Fewer key/value heads: MHA, GQA, MQA

    When a model writes text it keeps, for every token so far, each layer's keys and values in a
    **KV cache**, so each new token computes only its own (chapter 10 is about this). Per token the cache
    holds

    $$\text{bytes per token} = 2 \times L \times H_{kv} \times D_h \times \text{bytes per number}$$

    (2 for keys and values, $L$ layers, $H_{kv}$ key/value heads). With plain multi-head attention
    (MHA) $H_{kv} = H$. **Grouped-query attention** (GQA) lets a group of query heads share one key/value
    head; **multi-query attention** (MQA) shares a single one among all. Each head keeps its own
    queries and therefore its own pattern, but the cache shrinks by $H / H_{kv}$, and so does
    the memory each new token of a long conversation costs.

    The table is not that formula: each number is the size of the library's own `KVCache`, built for
    that shape in fp32 (4 bytes per number). Per-token sizes come from a real one-position cache; a full
    context of the larger shapes would take gigabytes, so that cache is built on PyTorch's `meta`
    device, which records shapes but allocates nothing, and reports the same byte count.
    """)
    return


@app.cell
def _(code_panel, kv_memory, KVCache, mo):
    mo.accordion({"kv_bytes (glassformer/analysis/kv_memory.py) and KVCache.nbytes (glassformer/model/attention.py)":
                  mo.vstack([code_panel(kv_memory.kv_bytes, highlight="KVCache("),
                             code_panel(KVCache.nbytes)])})
    return


@app.cell
def _(config, kv_memory, preset):
    kv_shapes = {"this model": config, "GPT-2 (124M)": preset("gpt2"), "Qwen3-0.6B": preset("qwen3-0.6b")}
    kv_rows = kv_memory.kv_table(kv_shapes)
    return kv_rows, kv_shapes


@app.cell
def _(ids, kv_memory, kv_rows, kv_shapes, mo, model, torch):
    _hb = kv_memory.human_bytes
    _table = "\n".join(
        f"| {r.shape} | {kv_shapes[r.shape].n_layers} | {kv_shapes[r.shape].n_heads} | {r.n_kv_heads} | "
        f"{kv_shapes[r.shape].head_dim} | {r.kind} | {r.per_token:,} B | {r.n_ctx:,} | {_hb(r.full_context)} |"
        for r in kv_rows)
    # The model's own cache, filled by a real run over your text.
    _cache = model.new_cache(batch=1, max_len=ids.shape[1])
    with torch.no_grad():
        model(ids, cache=_cache)
    _mine = next(r for r in kv_rows if r.shape == "this model" and "as built" in r.kind)
    _dtype_bytes = _cache.k.element_size()
    _qwen = [r for r in kv_rows if r.shape == "Qwen3-0.6B"]
    _q_mha = next(r for r in _qwen if r.n_kv_heads == kv_shapes["Qwen3-0.6B"].n_heads)
    _q_own = next(r for r in _qwen if "as built" in r.kind)
    _qcfg = kv_shapes["Qwen3-0.6B"]
    mo.vstack([
        mo.md("| shape | layers L | query heads H | KV heads | D_h | attention | KV bytes per token (fp32) | "
              "context | full context (fp32) |\n|:---|---:|---:|---:|---:|:---|---:|---:|---:|\n" + _table),
        mo.md(f"Measured on a real run: filling this model's cache with your {ids.shape[1]} tokens "
              f"(stored as {_dtype_bytes}-byte numbers) took {_cache.nbytes():,} bytes, "
              f"{_cache.nbytes() // ids.shape[1]:,} per token"
              + (f" — the table's {_mine.per_token:,} per token." if _dtype_bytes == 4 else ".") +
              f" Qwen3-0.6B is built with GQA: a full {_q_own.n_ctx:,}-token context takes "
              f"{_hb(_q_own.full_context)} in fp32 instead of the {_hb(_q_mha.full_context)} that MHA "
              f"would need ({_q_mha.full_context / _q_own.full_context:.0f}× smaller; bf16 would halve both)."
              + (f" Which full context: {_q_own.n_ctx:,} tokens is the context length on Qwen3-0.6B's model "
                 f"card. Its config.json accepts positions up to {_qcfg.n_ctx:,} (`max_position_embeddings`, "
                 f"which the library's preset keeps as `n_ctx`); filling all of those would take "
                 f"{_hb(kv_memory.kv_bytes(_qcfg, _qcfg.n_ctx, device='meta'))}. The table uses the documented "
                 "length, the one the model is offered for." if _qcfg.n_ctx != _q_own.n_ctx else "")),
    ])
    return


@app.cell
def _(kv_shapes, mo):
    kv_shape = mo.ui.dropdown(list(kv_shapes), value="Qwen3-0.6B", label="shape")
    kv_shape
    return (kv_shape,)


@app.cell
def _(kv_memory, kv_shape, kv_shapes, mo):
    _cfg = kv_shapes[kv_shape.value]
    _choices = kv_memory.kv_head_choices(_cfg.n_heads)
    kv_heads = mo.ui.slider(steps=_choices, value=_cfg.n_kv_heads, label="key/value heads H_kv", show_value=True)
    kv_heads
    return (kv_heads,)


@app.cell
def _(alt, kv_heads, kv_memory, kv_shape, kv_shapes, mo, torch):
    _cfg = kv_shapes[kv_shape.value]
    _ctx = kv_memory.documented_context(_cfg)                             # the documented context length
    _hkv = int(kv_heads.value)
    _per = kv_memory.kv_bytes(_cfg, 1, n_kv_heads=_hkv)
    _full = kv_memory.kv_bytes(_cfg, _ctx, n_kv_heads=_hkv, device="meta")
    _mha = kv_memory.kv_bytes(_cfg, _ctx, n_kv_heads=_cfg.n_heads, device="meta")
    _bars = [{"kv heads": str(k), "GiB": kv_memory.kv_bytes(_cfg, _ctx, n_kv_heads=k, device="meta") / 2**30,
              "kind": kv_memory.attention_kind(_cfg.n_heads, k).split(" ")[0],
              "chosen": "chosen" if k == _hkv else "other"}
             for k in kv_memory.kv_head_choices(_cfg.n_heads)]
    _chart = alt.Chart(alt.Data(values=_bars)).mark_bar().encode(
        x=alt.X("kv heads:N", sort=None, title="key/value heads", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("GiB:Q", title="full context, GiB (fp32)"),
        color=alt.Color("chosen:N", scale=alt.Scale(domain=["chosen", "other"], range=["#dc2626", "#94a3b8"]),
                        legend=None),
        tooltip=[alt.Tooltip("kv heads:N"), alt.Tooltip("kind:N"), alt.Tooltip("GiB:Q", format=".4f")],
    ).properties(title=f"{kv_shape.value}: KV cache for {_ctx:,} tokens", width=420, height=180,
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.vstack([
        mo.md(f"**{kv_shape.value}** with {_hkv} key/value head{'s' if _hkv > 1 else ''} for {_cfg.n_heads} query "
              f"heads — {kv_memory.attention_kind(_cfg.n_heads, _hkv)}: {_per:,} bytes per token "
              f"(= 2 × {_cfg.n_layers} × {_hkv} × {_cfg.head_dim} × {torch.float32.itemsize}), "
              f"{kv_memory.human_bytes(_full)} for a full {_ctx:,}-token context, " +
              ("the same as MHA." if _full == _mha else f"{_mha / _full:.0f}× smaller than MHA.")),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
    ])
    return


@app.cell
def _(Question):
    questions = [
        Question("split", "A layer has D = 128 and 4 heads. How many numbers does each head's query vector have?",
                 ["32", "128", "512", "4"], 0,
                 "The width is cut into H slices: D_h = D / H = 128 / 4 = 32. The four heads together cost about "
                 "what one 128-wide attention would."),
        Question("concat", "What does the output projection W_O do with the heads' outputs?",
                 ["Picks the best head and discards the others",
                  "Mixes the concatenated head outputs back into a D-wide vector: a sum of one projection per head",
                  "Averages the attention patterns of the heads", "Normalizes each head to unit length"], 1,
                 "concat(z_0..z_{H-1}) W_O is the same as the sum over heads of z_h times its own block of W_O's "
                 "rows; the page checks that sum against attn_out."),
        Question("ablate", "In some model, switching head A off raises the validation loss by 0.3; switching head B "
                 "off raises it by 0.004. What can you conclude?",
                 ["Head B has an attention pattern of all zeros",
                  "The model relies far more on head A for its predictions on this kind of text",
                  "Head A should be removed to make the model better",
                  "Head B is broken and its weights are random"], 1,
                 "Ablation measures how much the predictions depend on a head. A head with a tiny effect still "
                 "has a pattern; other heads or the MLPs may cover for it."),
        Question("gqa", "Qwen3-0.6B has 16 query heads and 8 key/value heads. Compared with plain MHA, its KV cache is…",
                 ["the same size", "half the size", "16 times smaller", "twice the size"], 1,
                 "The cache stores keys and values only: 8 instead of 16 KV heads halves it. Each of the 16 query "
                 "heads still has its own queries, so there are still 16 attention patterns; the two heads of a "
                 "group now score the same keys, so their patterns are not the ones 16 separate key heads would "
                 "give."),
        Question("mqa", "What does multi-query attention (MQA) share?",
                 ["One set of queries for all heads", "One key/value head for all query heads",
                  "One attention pattern for all layers", "One output projection for all layers"], 1,
                 "MQA is the extreme of GQA: H_kv = 1. Each query head still has its own queries and pattern."),
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
