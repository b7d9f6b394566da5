import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="7. Stacking, decoders, encoders", css_file="course.css")


@app.cell
def _():
    import altair as alt
    import marimo as mo
    import torch

    from glassformer.analysis import logit_lens as lens_lib
    from glassformer.toys import reverser
    from glassformer.course import common
    from glassformer.course.widgets import (Question, code_panel, line_chart, matrix_heatmap, quiz, quiz_feedback,
                                            token_label)
    from glassformer.model import block as block_lib
    from glassformer.model import cross_attention as xattn
    from glassformer.model import seq2seq
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Question, alt, block_lib, code_panel, common, lens_lib, line_chart, matrix_heatmap, mo, quiz,
            quiz_feedback, reverser, seq2seq, this, token_label, torch, xattn)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    from glassformer.model import preset as _preset
    mo.md(rf"""
    A Transformer is the same block written out again and again: the course model has
    {_preset("course").n_layers} blocks, GPT-2 small has {_preset("gpt2").n_layers}, and Qwen3-0.6B has {_preset("qwen3-0.6b").n_layers}. The
    blocks do not pass a new object from one to the next. There is one vector per token, the
    **residual stream**, and in a pre-norm model (all three of those) every block *reads* it and *adds*
    its result to it. Think of a shared bus that every component reads from and writes to: nothing on
    it is ever replaced, only added to.

    That design has a useful consequence. The last step of the model (a norm, then the unembedding
    that scores every vocabulary entry) only needs a vector of the right width, and the stream has
    that width after *every* block. So we can ask the model "what would you predict if you stopped
    here?" at every depth. That probe is the **logit lens**.

    The second half of the chapter looks at the other ways to wire blocks together: an **encoder**
    whose tokens see each other in both directions, and an **encoder–decoder** whose decoder reads the
    encoder's output through **cross-attention**. You will run one, trained to reverse strings.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, lens_lib, mo, picker, text, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value, max_tokens=256)  # the lens keeps (L+1) x T x top-3
    ids = torch.tensor(prepared.ids)                                             # (T,)
    stream, model_logits = lens_lib.residual_stream(loaded.model, ids)           # (L+1, T, D), (T, V)
    lens = lens_lib.logit_lens(loaded.model, ids, k=3)
    n_layers = loaded.model.config.n_layers
    depth_names = ["embeddings"] + [f"after block {i}" for i in range(n_layers)]
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return depth_names, ids, lens, loaded, model_logits, n_layers, prepared, stream


@app.cell
def _(mo):
    mo.md(r"""
    ## The residual stream is a bus

    Write $x_\ell$ for the stream (one $D$-wide vector per position) entering block $\ell$. A pre-norm
    block adds two updates to it, each computed from a normalized copy:

    $$x_{\ell+\frac12} = x_\ell + \mathrm{Attn}_\ell(\mathrm{norm}(x_\ell)), \qquad
      x_{\ell+1} = x_{\ell+\frac12} + \mathrm{MLP}_\ell(\mathrm{norm}(x_{\ell+\frac12}))$$

    Unrolled over $L$ blocks, the final stream is the embedding plus every update ever made:

    $$x_L = x_0 + \sum_{\ell=0}^{L-1} \big(\mathrm{Attn}_\ell + \mathrm{MLP}_\ell\big)$$

    Each term of the sum is the output that sub-layer added to the stream.

    The library's block (highlighted: the two additions) and the function that reads the stream at
    every depth through the model's hook points `blocks.0.resid_pre` and `blocks.{i}.resid_post`:
    """)
    return


@app.cell
def _(block_lib, code_panel, lens_lib, mo):
    mo.accordion({
        "Block.forward (glassformer/model/block.py): the two additions":
            code_panel(block_lib.Block.forward, highlight=("mid = self.hook_resid_mid(x +",
                                                           "return self.hook_resid_post(mid +")),
        "residual_stream and stream_norms (glassformer/analysis/logit_lens.py)":
            mo.vstack([code_panel(lens_lib.residual_stream), code_panel(lens_lib.stream_norms)]),
    })
    return


@app.cell
def _(ids, mo):
    _T = len(ids)
    focus = mo.ui.slider(0, _T - 1, step=1, value=_T - 1, label="focus position", show_value=True)
    window = mo.ui.slider(4, min(24, max(4, _T)), step=1, value=min(12, max(4, _T)),
                          label="positions shown", show_value=True)
    mo.vstack([mo.md("Both tables below show a window of your text ending at the *focus position*; "
                     "slide it to walk along the text."), mo.hstack([focus, window], justify="start")])
    return focus, window


@app.cell
def _(focus, ids, loaded, token_label, window):
    def window_positions() -> list[int]:
        end = focus.value + 1
        return list(range(max(0, end - window.value), end))

    def position_label(t: int) -> str:
        return f"{token_label(loaded.tokenizer.token_bytes(int(ids[t])))}"
    return position_label, window_positions


@app.cell
def _(depth_names, lens_lib, loaded, matrix_heatmap, mo, position_label, stream, window_positions):
    _norms = lens_lib.stream_norms(stream)                                        # (L+1, T)
    _cols = window_positions()
    _chart = matrix_heatmap(_norms[:, _cols].numpy(), depth_names, [position_label(t) for t in _cols],
                            title="length ||x|| of the residual stream at each depth (rows) and position (columns)",
                            row_title="depth", col_title="position", value_title="norm", scheme="oranges", cell=34)
    _mean = _norms.mean(1)                                                        # (L+1,)
    _ratio = (_mean[-1] / _mean[0]).item()
    _grows = all(b > a for a, b in zip(_mean.tolist(), _mean[1:].tolist()))
    _steps = ", ".join(f"{v:.1f}" for v in _mean.tolist())
    _why = ("Each block writes its update on top of what is already there, and nothing rescales the stream "
            "until the final norm, just before the unembedding reads it." if loaded.model.config.pre_norm else
            "This model is post-norm (the 2017 arrangement): each block normalizes the stream after each of its "
            "additions, so the stream is rescaled inside every block, not only by the final norm.")
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"Averaged over all {_norms.shape[1]} positions of your text, the stream's length at each "
                     f"depth is {_steps}: it ends {_ratio:.1f}× as long as the embeddings it started from"
                     f"{', growing after every block' if _grows else ''}. {_why} Hover a cell for the exact value.")])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## The logit lens: stopping early

    The model's last step turns the final stream into scores, $z = W_U\,\mathrm{norm}(x_L)$, and softmax
    into probabilities. The logit lens applies the *same* norm and the *same* unembedding $W_U$ to
    the stream at any depth $\ell$:

    $$p_\ell = \mathrm{softmax}\big(W_U\,\mathrm{norm}(x_\ell)\big)$$

    At $\ell = L$ this is exactly the model's output; the page checks it below. At earlier depths it
    is a probe, not the model's real belief: in training, the final norm and $W_U$ only ever read the
    last block's output, so an early reading can be blurry or even misleading. Read it as a rough
    picture of *when* the answer forms.
    """)
    return


@app.cell
def _(code_panel, lens_lib, mo):
    mo.accordion({
        "logit_lens and lens_logits (glassformer/analysis/logit_lens.py)":
            mo.vstack([code_panel(lens_lib.lens_logits, highlight="model.unembed(model.final_norm("),
                       code_panel(lens_lib.logit_lens, highlight=("lens = lens_logits", "first_top ="))]),
    })
    return


@app.cell
def _(alt, depth_names, ids, lens, loaded, mo, position_label, token_label, window_positions):
    def lens_table():
        """The lens as a depth x position grid: cell = top token, colour = its probability, red frame =
        it is already the model's final answer. Hover: the top 3 with probabilities."""
        tok = loaded.tokenizer
        rows = []
        for d, name in enumerate(depth_names):
            for t in window_positions():
                top = [(token_label(tok.token_bytes(int(i))), p) for i, p in
                       zip(lens.top_ids[d, t].tolist(), lens.top_probs[d, t].tolist())]
                nxt = token_label(tok.token_bytes(int(ids[t + 1]))) if t + 1 < len(ids) else "(end of your text)"
                rows.append({"depth": f"{d:02d} {name}", "pos": f"{t:04d} {position_label(t)}",
                             "token": top[0][0], "p": top[0][1],
                             "top3": "  ·  ".join(f"{s} {p:.3f}" for s, p in top),
                             "where": f"after '{position_label(t)}' (position {t})", "next": nxt,
                             "final": bool(lens.top_ids[d, t, 0] == lens.final_ids[t])})
        data = alt.Data(values=rows)
        x = alt.X("pos:N", sort=None, title="position (the token the prediction follows)",
                  axis=alt.Axis(labelExpr="slice(datum.label, 5)", labelAngle=0, labelFont="monospace"))
        y = alt.Y("depth:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 3)"))
        tip = [alt.Tooltip("where:N", title="reading"), alt.Tooltip("depth:N", title="depth"),
               alt.Tooltip("top3:N", title="top 3"), alt.Tooltip("next:N", title="next in your text")]
        cells = alt.Chart(data).mark_rect().encode(
            x=x, y=y, tooltip=tip,
            color=alt.Color("p:Q", title="top-1 probability", scale=alt.Scale(scheme="blues", domain=[0, 1])))
        frames = alt.Chart(data).transform_filter("datum.final").mark_rect(
            fillOpacity=0, stroke="#dc2626", strokeWidth=2).encode(x=x, y=y, tooltip=tip)
        words = alt.Chart(data).mark_text(font="monospace", fontSize=13).encode(
            x=x, y=y, text="token:N", tooltip=tip,
            color=alt.condition("datum.p > 0.55", alt.value("white"), alt.value("#111827")))
        return alt.layer(cells, frames, words).properties(
            width=min(640, 44 * len(window_positions())), height=32 * len(depth_names),
            title="logit lens: the top token at each depth (red frame = already the model's final answer)",
            usermeta={"embedOptions": {"renderer": "svg", "actions": False}})

    mo.ui.altair_chart(lens_table(), chart_selection=False, legend_selection=False)
    return


@app.cell
def _(alt, depth_names, focus, ids, lens, line_chart, loaded, mo, n_layers, position_label, token_label):
    import html as _html
    _t = focus.value
    _answer = token_label(loaded.tokenizer.token_bytes(int(lens.final_ids[_t])))
    _first, _settled = int(lens.first_top[_t]), int(lens.settled[_t])
    _T = lens.first_top.shape[0]
    _counts = [int((lens.first_top == d).sum()) for d in range(n_layers + 1)]
    _share = [(lens.top_ids[d, :, 0] == lens.final_ids).float().mean().item() for d in range(n_layers + 1)]
    _chart = line_chart([{"depth": d, "share": s, "series": "top token = final answer"} for d, s in enumerate(_share)]
                        + [{"depth": d, "share": lens.final_probs[d].mean().item(),
                            "series": "mean probability of the final answer"} for d in range(n_layers + 1)],
                        "depth", "share", "series", title=f"over all {_T} positions of your text (depth 0 = embeddings)",
                        y_title="fraction / probability", height=200).encode(
        x=alt.X("depth:Q", title="depth", axis=alt.Axis(tickMinStep=1, format="d")))
    _own = (lens.top_ids[0, :, 0] == ids).sum().item()
    _tied = loaded.model.unembed.weight is loaded.model.embed.tok.weight
    _self_note = (f"At depth 0 the lens's top token is the position's *own* token at {_own} of {_T} positions"
                  + (": this model's unembedding is its embedding table (tied weights), so a vector no block has "
                     "touched yet still points along its own token's row. The blocks move each vector from 'what "
                     "I am' towards 'what comes next'." if _tied and _own > _T / 2 else "."))
    _when = (f"depth {_first} (**{depth_names[_first]}**)" +
             ("" if _settled == _first else f", loses the top spot again, and stays on top only from depth {_settled}"))
    mo.vstack([
        mo.md(f"At the focus position (after <code>{_html.escape(position_label(_t))}</code>, position {_t}) the "
              f"model's final answer is <code>{_html.escape(_answer)}</code>, with probability "
              f"{lens.final_probs[-1, _t].item():.1%}. It first becomes the lens's top token at {_when}.\n\n"
              f"Across your whole text, the depth at which the answer first reaches the top: " +
              "; ".join(f"depth {d} at {c} of {_T} positions" for d, c in enumerate(_counts) if c) +
              f". Check of the claim above: the lens at the last depth differs from the model's real logits by at "
              f"most {lens.max_diff:.2g}.\n\n{_self_note}"),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False)])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Three ways to wire attention

    Everything so far was a **decoder-only** model (GPT-2, Llama, Qwen3, the course model): one
    sequence, and a causal mask so each position sees only itself and earlier positions. That is what
    lets it generate text one token at a time. Two other designs reuse the same parts with other masks,
    and one adds a sub-layer:

    - An **encoder** (BERT is one) lets every position see every position, before and after it:
      **bidirectional** attention, no mask. Good for understanding a whole text at once; it cannot
      generate, because during generation the future does not exist yet.
    - An **encoder–decoder** (the original 2017 Transformer, T5) has both: an encoder reads the input,
      a decoder writes the output causally, and each decoder block adds a third sub-layer,
      **cross-attention**, whose queries come from the decoder and whose keys and values come from the
      encoder's output.

    $$\mathrm{CrossAttn}(X, M) = \mathrm{softmax}\!\left(\frac{(X W_Q)(M W_K)^\top}{\sqrt{d_h}}\right) M W_V
      \qquad X:\ \text{decoder stream } (T \times D),\quad M:\ \text{encoder output } (S \times D)$$

    That is one head; as in chapter 5, the heads' outputs are concatenated and projected back to $D$.
    The masks below are computed by `encoder_decoder_masks` for the string you type in the box below
    (source) and its reversal after the start token `<s>` (target). Dark = may attend.
    """)
    return


@app.cell
def _(mo):
    word_box = mo.ui.text(value="attention", label="A string to reverse (a–z, 3 to 10 letters)", full_width=False)
    word_box
    return (word_box,)


@app.cell
def _(mo, reverser, word_box):
    import html as _html
    word = word_box.value
    _why = reverser.problem(word)
    if _why:
        _shown = _html.escape(word[:30].encode("unicode_escape").decode("ascii")) + ("…" if len(word) > 30 else "")
        word_notice = mo.callout(mo.md(f"<code>{_shown}</code> cannot go into this model: "
                                       f"{_html.escape(_why)}. Showing “attention” instead."), kind="warn")
        word = "attention"
    else:
        word_notice = None
    word_notice
    return (word,)


@app.cell
def _(matrix_heatmap, mo, seq2seq, word):
    _src = list(word)
    _tgt = ["<s>"] + list(word[::-1])
    _masks = seq2seq.encoder_decoder_masks(len(_src), len(_tgt))
    _small = dict(scheme="greys", domain=(0, 1), cell=16, value_title="may attend")
    _charts = [
        ("decoder-only (source then target, one sequence)",
         matrix_heatmap(_masks["decoder-only"].float().numpy(), _src + _tgt, _src + _tgt, row_title="query",
                        col_title="key", title="decoder-only: causal", **_small)),
        ("encoder (bidirectional)",
         matrix_heatmap(_masks["encoder"].float().numpy(), _src, _src, row_title="query", col_title="key",
                        title="encoder: no mask", **_small)),
        ("encoder–decoder: the decoder's self-attention",
         matrix_heatmap(_masks["enc-dec self"].float().numpy(), _tgt, _tgt, row_title="query", col_title="key",
                        title="decoder self-attention: causal", **_small)),
        ("encoder–decoder: cross-attention",
         matrix_heatmap(_masks["enc-dec cross"].float().numpy(), _tgt, _src, row_title="query (decoder)",
                        col_title="key (encoder)", title="cross-attention: all of the source", **_small)),
    ]
    _allowed = {k: int(v.sum()) for k, v in _masks.items()}
    mo.vstack([
        mo.hstack([mo.ui.altair_chart(_charts[0][1], chart_selection=False, legend_selection=False),
                   mo.vstack([mo.ui.altair_chart(c, chart_selection=False, legend_selection=False)
                              for _, c in _charts[1:]])], justify="start", gap=2, wrap=True),
        mo.md(f"Allowed query–key pairs: decoder-only {_allowed['decoder-only']} of "
              f"{_masks['decoder-only'].numel()}; encoder {_allowed['encoder']} of {_masks['encoder'].numel()} "
              f"(all); the decoder's self-attention {_allowed['enc-dec self']} of {_masks['enc-dec self'].numel()}; "
              f"cross-attention {_allowed['enc-dec cross']} of {_masks['enc-dec cross'].numel()} (all: the whole "
              f"source is known before the first output token is written)."),
    ])
    return


@app.cell
def _(code_panel, mo, seq2seq, xattn):
    mo.accordion({
        "encoder_decoder_masks (glassformer/model/seq2seq.py)": code_panel(seq2seq.encoder_decoder_masks),
        "CrossAttention.forward (glassformer/model/cross_attention.py): Q from x, K and V from memory":
            code_panel(xattn.CrossAttention.forward, highlight=("q = self.hook_q(", "k, v = self.kv(memory)")),
        "BidirectionalAttention: an encoder's self-attention is cross-attention with itself":
            code_panel(xattn.BidirectionalAttention),
        "DecoderBlock.forward (glassformer/model/seq2seq.py): three sub-layers":
            code_panel(seq2seq.DecoderBlock.forward, highlight="self.cross_attn("),
    })
    return


@app.cell
def _(mo, reverser):
    rev_model, rev_card = reverser.load_reverser()
    _c = rev_model.config
    mo.md(f"""
    ## An encoder–decoder that reverses strings

    A small encoder–decoder built from the library's own pieces: {_c.n_enc_layers} encoder blocks (the
    library's `Block` with bidirectional attention), {_c.n_dec_layers} decoder blocks (causal self-attention,
    cross-attention, MLP), width {_c.d_model}, {_c.n_heads} heads, {sum(p.numel() for p in rev_model.parameters()):,}
    parameters. `scripts/ship_reverser.py` trained it for {rev_card['recipe']['steps']} steps (seed
    {rev_card['recipe']['seed']}) on random strings of {reverser.MIN_LEN} to {reverser.MAX_LEN} lowercase letters,
    with **teacher forcing**: the decoder is fed the true reversed prefix and scored on each next character.
    One string in ten is **held out**, never shown in training, and every accuracy below is measured on those.

    Reversal makes cross-attention visible: to write output character $t$ of an $n$-letter string
    the decoder must read input character $n-1-t$, so a head doing that job draws an anti-diagonal.
    Decoding is **greedy**: start from `<s>`, append the most likely character, stop at end-of-string.
    """)
    return rev_card, rev_model


@app.cell
def _(mo):
    cut_cross = mo.ui.checkbox(value=False,
                               label="switch cross-attention off (zero every head's output through a hook)")
    cut_cross
    return (cut_cross,)


@app.cell
def _(cut_cross, matrix_heatmap, mo, reverser, rev_model, word):
    _out, _maps = reverser.cross_attention_maps(rev_model, word)                 # (L, H, T, S)
    _cut_out = reverser.reverse(rev_model, word, cross_attention=False) if cut_cross.value else None
    _rows = [f"writes {c}" for c in _out] + ["writes end"]
    _mirror = reverser.mirror_weight(_maps)                                       # (L, H)
    _grid = []
    for _l in range(_maps.shape[0]):
        _grid.append(mo.hstack([mo.ui.altair_chart(matrix_heatmap(
            _maps[_l, _h].numpy(), _rows, list(word), row_title="decoder step", col_title="input character",
            value_title="weight", scheme="purples", domain=(0, 1), cell=22,
            title=f"decoder layer {_l}, head {_h}: mirror weight {_mirror[_l, _h].item():.2f}"),
            chart_selection=False, legend_selection=False) for _h in range(_maps.shape[1])], justify="start", gap=1))
    _ok = _out == word[::-1]
    _best = divmod(int(_mirror.argmax()), _mirror.shape[1])
    _result = (f"Input `{word}` → output **`{_out}`** " +
               ("(correct)" if _ok else f"(wrong: the reversal is `{word[::-1]}`)"))
    _cut = (f"\n\nWith cross-attention switched off (every head's output zeroed, so the sub-layer adds only its "
            f"output projection's bias, the same for any input) the decoder cannot see the input at all and writes "
            f"`{_cut_out or '(nothing)'}`" +
            (": the right answer, but by luck, since that output no longer depends on your string."
             if _cut_out == word[::-1] else ": everything it knew about your string came through cross-attention.")
            if _cut_out is not None else "")
    mo.vstack([
        mo.md(_result + _cut),
        mo.md(f"{'In the normal run, with cross-attention on: c' if cut_cross.value else 'C'}ross-attention while "
              f"writing `{_out}` (rows: decoder steps, columns: your input; hover for the exact weight). "
              f"The **mirror weight** is the average weight a head puts on input position $n-1-t$ while "
              f"writing output $t$ (1.00 = a perfect anti-diagonal): here it is highest for layer {_best[0]}, "
              f"head {_best[1]}, at {_mirror.max().item():.2f}."),
        *_grid])
    return


@app.cell
def _(mo):
    n_eval = mo.ui.slider(100, 1000, step=100, value=300, label="held-out strings", show_value=True)
    eval_seed = mo.ui.number(start=0, stop=10_000, step=1, value=0, label="seed")
    mo.hstack([n_eval, eval_seed], justify="start")
    return eval_seed, n_eval


@app.cell
def _(eval_seed, mo, n_eval, rev_card, reverser, rev_model):
    _words = reverser.random_words(n_eval.value, int(eval_seed.value))
    _acc, _misses = reverser.accuracy(rev_model, _words)
    _right = len(_words) - len(_misses)
    _miss_text = ("Misses: " + ", ".join(f"`{w}` → `{o}`" for w, o in _misses[:8]) +
                  (f" and {len(_misses) - 8} more" if len(_misses) > 8 else "")) if _misses else "No misses."
    mo.md(f"Measured now: **{_right} of {len(_words)}** fresh held-out strings (seed {eval_seed.value}, lengths "
          f"{reverser.MIN_LEN}–{reverser.MAX_LEN}) reversed exactly, {_acc:.1%}. {_miss_text} "
          f"(The training script measured {rev_card['held_out_eval']['exact_match']:.1%} on "
          f"{rev_card['held_out_eval']['strings']} held-out strings drawn with seed "
          f"{rev_card['held_out_eval']['seed']}.)")
    return


@app.cell
def _(code_panel, mo, reverser, seq2seq):
    mo.accordion({
        "EncoderDecoder.greedy (glassformer/model/seq2seq.py)":
            code_panel(seq2seq.EncoderDecoder.greedy.__wrapped__),   # under its @torch.no_grad()
        "accuracy and cross_attention_maps (glassformer/toys/reverser.py)":
            mo.vstack([code_panel(reverser.accuracy.__wrapped__), code_panel(reverser.cross_attention_maps)]),
        "train_reverser: how the shipped model was trained": code_panel(reverser.train_reverser),
    })
    return


@app.cell
def _(Question):
    questions = [
        Question("residual", "What does a pre-norm block do with the residual stream?",
                 ["Replaces it with its own output", "Adds its attention and MLP outputs to it",
                  "Multiplies it by a learned matrix", "Normalizes it and passes only the norm on"],
                 1, "Each sub-layer reads a normalized copy and its output is added: x + attn(norm(x)), then + mlp(...). "
                    "The stream is only ever added to, so every block's contribution stays readable."),
        Question("lens", "The logit lens at the last depth, compared with the model's own output, is…",
                 ["Exactly the same", "A rough approximation", "Unrelated", "Always less confident"],
                 0, "The model's last step is the final norm and the unembedding applied to the last stream; "
                    "the lens applies exactly that, so at the last depth it is the model's output."),
        Question("encoder", "Why can't a bidirectional encoder generate text token by token the way GPT does?",
                 ["It has no MLP", "It was trained with every position seeing later positions, which do not "
                  "exist yet while generating", "It has too few layers", "Its vocabulary is smaller"],
                 1, "Without a causal mask each position's vector depends on the tokens after it; when writing "
                    "left to right those tokens are not there, so the model would run on inputs unlike its training."),
        Question("cross", "In cross-attention, where do the queries, keys and values come from?",
                 ["All three from the encoder", "Queries from the encoder, keys and values from the decoder",
                  "Queries from the decoder, keys and values from the encoder's output", "All three from the decoder"],
                 2, "The decoder asks (queries) and the encoder's output answers (keys to match against, values to "
                    "copy): that is how the output being written reads the input."),
        Question("reverse", "For reversing a 6-letter string, which input position should output position 0 attend to?",
                 ["0", "3", "5", "All equally"],
                 2, "Output character t is input character n−1−t; with n = 6 and t = 0 that is position 5, which is "
                    "why the trained model's cross-attention draws an anti-diagonal."),
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
