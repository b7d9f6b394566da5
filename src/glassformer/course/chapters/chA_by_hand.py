import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="A. Worked example by hand", css_file="course.css")


@app.cell
def _():
    import html
    import math

    import altair as alt
    import marimo as mo
    import torch

    from glassformer import sampling
    from glassformer.toys import worked_example as we
    from glassformer.course import common
    from glassformer.course.widgets import Question, code_panel, quiz, quiz_feedback
    from glassformer.course.widgets.number_table import number_table
    from glassformer.model.attention import Attention
    from glassformer.model.block import Block
    from glassformer.model.config import preset
    from glassformer.model.decoder import DecoderLM
    from glassformer.model.embedding import Embed, Unembed
    from glassformer.model.mlp import SwiGLU
    from glassformer.model.norm import RMSNorm
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Attention, Block, DecoderLM, Embed, Question, RMSNorm, SwiGLU, Unembed, alt, code_panel, common, html, math,
            mo, number_table, preset, quiz, quiz_feedback, sampling, this, torch, we)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo, we):
    mo.md(f"""
    Every other chapter runs a model far too big to follow by hand. This appendix shrinks one until
    you can: {len(we.VOCAB)} words, {we.CONFIG.d_model} numbers per word, {we.CONFIG.n_ctx} words
    of context, {we.CONFIG.n_heads} attention heads of {we.CONFIG.head_dim} numbers each, and one
    block. Its weights are small numbers written by hand, so that each step below is a few additions
    and multiplications you can do with pencil and paper. Keep a calculator for $e^x$ and square roots.

    Nothing below is a simulation. The toy is an ordinary glassformer model: the same `DecoderLM`
    class, built from a `ModelConfig` of the course family by `build_model`, with the hand-written tables
    copied into its weights. The numbers printed below come from that model's forward pass, recorded
    by `run_with_trace` at the same hook points every chapter reads; the few in-between values it does
    not record (each word's root mean square, q·k before scaling, the MLP's SiLU and up projection,
    the final probabilities) are computed from the recorded tensors. (This appendix always runs the toy, whatever model the other chapters
    are set to.)

    Each step shows the formula, the tables that went in and the table that came out, and one
    highlighted entry with a "check my answer" box: work that number out yourself and type it in.
    The page tells you whether you got it, and if not, shows the working so you can find the slip.
    """)
    return


@app.cell
def _(no_positions, we):
    # The toy: build_model(CONFIG), then the hand tables copied into its weights (the checkbox under
    # "Your sentence" swaps the position table for zeros).
    model = we.build({"positions": [[0] * 6] * 3} if no_positions.value else None)
    return (model,)


@app.cell
def _(mo, model, preset, we):
    _c = we.CONFIG
    _rows = [("family", f"`{_c.family}`", "glassformer's own family: every piece is a choice"),
             ("vocab_size", _c.vocab_size, " ".join(f"`{w}`" for w in we.VOCAB)),
             ("d_model", _c.d_model, "numbers per word (D)"),
             ("n_heads × head_dim", f"{_c.n_heads} × {_c.head_dim}", "two heads of three numbers (Dh)"),
             ("n_layers", _c.n_layers, "one block"),
             ("n_ctx", _c.n_ctx, "at most three words"),
             ("position", f"`{_c.position}`", "a hand-written vector per position, added to the word's vector"),
             ("norm", f"`{_c.norm}`", f"divide by the root mean square (ε = {_c.norm_eps:g}); scale 1"),
             ("mlp", f"`{_c.mlp}`", f"{_c.d_mlp} hidden units, silu(gate) × up"),
             ("biases", "none", "attn_bias, attn_out_bias, mlp_bias all False: fewer numbers"),
             ("tie_embeddings", _c.tie_embeddings, "the output head is the embedding table")]
    _course = preset("course")
    _fields = ["position", "norm", "mlp", "attn_bias", "attn_out_bias", "mlp_bias", "tie_embeddings"]
    _same = [f"`{f}`" for f in _fields if getattr(_course, f) == getattr(_c, f)]
    _other = [f"`{f}` = `{getattr(_course, f)}`" for f in _fields if getattr(_course, f) != getattr(_c, f)]
    mo.md("## The toy\n\n| setting | value | meaning |\n|:---|:---|:---|\n" +
          "\n".join(f"| `{a}` | {b} | {c} |" for a, b, c in _rows) +
          f"\n\n{model.num_params():,} weights in all, read back out of the model below. "
          "Why these choices: learned positions are a plain table of numbers (RoPE's sines and cosines "
          "would make every query and key a trigonometry exercise), RMSNorm skips LayerNorm's mean "
          "subtraction and bias, SwiGLU needs only $e^x$ (exact GELU needs the error function), and without "
          "biases there are fewer numbers to add. The course model (a config of the same family) shares "
          f"{', '.join(_same) or 'none of these'} with the toy; it has {', '.join(_other) or 'nothing else'}.")
    return


@app.cell
def _(mo, model, number_table, we):
    def weight_table(name):
        """One of the toy's weight matrices as the model holds it (read back from its parameters, not
        from the hand tables), every number as written."""
        D, Dh, F = we.DIMENSIONS, [f"h{h}·{i}" for h in range(2) for i in range(3)], ["u0", "u1", "u2"]
        attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
        qkv = attn.qkv.weight                                  # (D, 3 H Dh): queries | keys | values
        param, rows, cols, title = {
            "E": (model.embed.tok.weight, we.VOCAB, D, "embedding E (V × D)"),
            "P": (model.embed.positions.weight, ["pos 0", "pos 1", "pos 2"], D, "positions P (T × D)"),
            "W_Q": (qkv[:, 0:6], D, Dh, "W_Q (D × H·Dh)"), "W_K": (qkv[:, 6:12], D, Dh, "W_K"),
            "W_V": (qkv[:, 12:18], D, Dh, "W_V"), "W_O": (attn.out.weight, Dh, D, "W_O (H·Dh × D)"),
            "W_gate": (mlp.gate.weight, D, F, "W_gate (D × F)"), "W_up": (mlp.up.weight, D, F, "W_up (D × F)"),
            "W_down": (mlp.down.weight, F, D, "W_down (F × D)")}[name]
        return number_table(param.detach().tolist(), rows, cols, title=title, digits=None)

    def weights_row(*names):
        return mo.hstack([weight_table(n) for n in names], justify="start", align="start", gap=1.5, wrap=True)

    def _weights_view():
        return mo.vstack([
            mo.md("Word rows (the embedding table, also the output head) and position rows:"),
            weights_row("E", "P"),
            mo.md("Attention: one fused matrix `attn.qkv.weight` (6 × 18), shown in its three parts. Columns "
                  "`h0·0…h0·2` belong to head 0, `h1·0…h1·2` to head 1. Rows are the input dimensions: "
                  "row *i* says how much input dimension *i* adds to each output."),
            weights_row("W_Q", "W_K", "W_V"),
            weights_row("W_O", "W_gate", "W_up", "W_down"),
        ])

    mo.vstack([mo.md(f"""
    ### The weights

    In a trained model, what a vector means is usually spread over many dimensions at once, and a single
    dimension seldom has a meaning you could name. These were written with one meaning per dimension,
    which makes the tables readable: dimension 0 says "is a determiner", 1 "is a noun", 2 "is a verb",
    3 "ends a sentence", 4 "cat-like (+1) or dog-like (−1)" (“sat” counts as cat-like, “ran” as
    dog-like), 5 "how early in the sentence". Head 0 looks for the noun: every word's first query entry
    asks "noun here?" and only a noun's key answers it; its second entry matches cat-like with cat-like
    (and dog-like with dog-like), so a verb's key can add a smaller share. Head 1's keys grow with
    "early", so it looks back to the start. The MLP's unit 0 fires on a determiner and writes "noun
    next", unit 1 turns a noun into "verb next", unit 2 a verb into "end next". Many weights are 0
    (greyed): that is what keeps the sums short.
    """), _weights_view()])
    return weight_table, weights_row


@app.cell
def _(code_panel, mo, we):
    mo.accordion({"The code that builds the toy: build (glassformer/toys/worked_example.py)":
                  code_panel(we.build, highlight=("build_model", "copy_"))})
    return


@app.cell
def _(common, mo, we):
    words_box = common.text_box(we.DEFAULT_SENTENCE, label=f"Your sentence: up to {we.CONFIG.n_ctx} of the words "
                                + ", ".join(f"`{w}`" for w in we.VOCAB), rows=1, key="toy_sentence")
    no_positions = mo.ui.checkbox(label="switch the positions off (P = all zeros): what does head 1 do then?")
    mo.vstack([mo.md("## Your sentence"), words_box, no_positions])
    return no_positions, words_box


@app.cell
def _(math, mo, model, sampling, torch, we, words_box):
    prepared = we.prepare(words_box.value)
    words = prepared.words
    T, t = len(words), len(words) - 1
    logits, trace = we.run(model, prepared.ids)                 # (1, T, V) and every hook point
    raw_scores = we.unscaled_scores(trace)                      # (1, H, T, S)
    mlp_parts = we.swiglu_parts(model, trace)                   # gate, silu, up: (1, T, F) each
    probs = sampling.distribution(logits[0], 1.0)               # (T, V)
    hand = we.checks(model, trace, words)
    tables = {**{name: trace[name][0] for name in trace}, "scores_unscaled": raw_scores[0], "probs": probs}
    with torch.no_grad():
        rms_in = we.root_mean_square(trace["blocks.0.resid_pre"][0], model.config.norm_eps)    # (T,)
        rms_mid = we.root_mean_square(trace["blocks.0.resid_mid"][0], model.config.norm_eps)   # (T,)
        rms_post = we.root_mean_square(trace["blocks.0.resid_post"][0], model.config.norm_eps)  # (T,)
    _note = prepared.notices and mo.callout(mo.md("\n\n".join(prepared.notices)), kind="warn")
    mo.vstack([_note or mo.md(""),
               mo.md(f"The toy reads **{' '.join(words)}** ({T} word{'s' if T > 1 else ''}, ids "
                     f"{prepared.ids}). We follow every word through the block, and check the last one, "
                     f"“{words[t]}”, most closely: its row is the one that predicts the next word. "
                     f"(√{we.CONFIG.head_dim} = {math.sqrt(we.CONFIG.head_dim):.4f} will come up.)")])
    return T, hand, logits, mlp_parts, prepared, probs, raw_scores, rms_in, rms_mid, rms_post, t, tables, trace, words


@app.cell
def _(mo, we, words):
    # One answer box per step (we.STEPS, the order of we.checks), each its own variable, so typing in
    # one re-runs only its own step. Made afresh when the sentence changes: the asked numbers change.
    _made_for = words  # noqa: F841  (the dependency that resets the boxes)
    (box_embed, box_norm, box_qkv, box_scores, box_scale, box_mask, box_softmax, box_z, box_out, box_resid,
     box_mlp, box_mlp_out, box_logit, box_probs) = [mo.ui.text(placeholder="your number", debounce=True)
                                                    for _ in we.STEPS]
    return (box_embed, box_logit, box_mask, box_mlp, box_mlp_out, box_norm, box_out, box_probs, box_qkv, box_resid,
            box_scale, box_scores, box_softmax, box_z)


@app.cell
def _(hand, html, mo, number_table, tables, we, words):
    def show_check(key, box):
        """The highlighted entry's question, the learner's box, and the verdict (with the working when wrong)."""
        c = hand[key]
        verdict = we.check(box.value, c.working)
        kind = {"right": "success", "slip": "warn", "wrong": "danger"}.get(verdict.kind, "neutral")
        working = mo.Html('<pre style="font-size: 0.85rem; line-height: 1.45; background: #f8fafc; '
                          'padding: 8px 12px; border-radius: 6px; white-space: pre-wrap">'
                          + html.escape("\n".join(c.working.lines)) + "</pre>")
        parts = [mo.hstack([mo.md(f"*Check my answer* — the highlighted entry ({c.asks}):"), box],
                           justify="start", align="center", gap=1),
                 mo.md(f"<small>{verdict.message}</small>") if verdict.kind == "empty" else
                 mo.callout(mo.md(verdict.message), kind=kind)]
        if verdict.kind in ("slip", "wrong"):
            parts.append(mo.vstack([mo.md("Here is the working, from this step's printed inputs. "
                                          "Find the first line where yours differs:"), working]))
        else:
            parts.append(mo.accordion({"Show the working (a spoiler)": working}))
        return mo.vstack(parts, gap=0.5)

    def table(name, cols, title, rows=None, head=None, key=None, digits=3):
        """A recorded tensor as a table; `head` picks one head; the check `key` highlights its entry."""
        values = tables[name] if head is None else tables[name][head]
        spot = None
        if key is not None and hand[key].hook == name:
            index = hand[key].index
            if head is None or index[0] == head:
                spot = index[-2:]
        return number_table(values.tolist(), rows or words, cols, title=title, highlight=spot, digits=digits)

    def side_by_side(*items):
        return mo.hstack(list(items), justify="start", gap=1.5, wrap=True, align="start")

    tolerance_note = mo.md(f"*Work each step from the numbers printed in its tables (3 decimals are plenty). An "
                           f"answer counts as right within ±{we.tolerance(0.0):g}, or ±0.5% for numbers above "
                           f"{we.tolerance(0.0) / 0.005:g}. Write −∞ as `-inf`.*")
    return show_check, side_by_side, table, tolerance_note


@app.cell
def _(mo, tolerance_note):
    mo.vstack([mo.md("## The forward pass, step by step"), tolerance_note])
    return


@app.cell
def _(Embed, box_embed, code_panel, mo, show_check, side_by_side, table, we):
    mo.vstack([
        mo.md(r"""
    ### 1. Embedding, 2. position

    Each word id picks its row of the embedding table $E$; each position $t$ picks its row of the
    position table $P$; the two are added. This sum is the *residual stream*: every later step reads
    it and adds its result back into it.

    $$x_t = E_{\text{id}_t} + P_t$$
    """),
        side_by_side(table("embed.tok", we.DIMENSIONS, "word rows E[id]"),
                     table("embed.pos", we.DIMENSIONS, "+ position rows P[t]"),
                     table("blocks.0.resid_pre", we.DIMENSIONS, "= x (the residual stream)", key="embed")),
        show_check("embed", box_embed),
        mo.accordion({"The code that ran: Embed.forward (glassformer/model/embedding.py)":
                      code_panel(Embed.forward, highlight=("self.tok(ids)", "x = x +"))}),
    ])
    return


@app.cell
def _(RMSNorm, box_norm, code_panel, mo, number_table, rms_in, show_check, side_by_side, table, we, words):
    mo.vstack([
        mo.md(r"""
    ### 3. Norm

    Before attention, each word's vector is rescaled to a steady size: *RMSNorm* divides it by its
    root mean square (square the six numbers, average them, take the square root). The tiny $\varepsilon$
    only guards against dividing by zero; here it changes no result by as much as 0.0001. The learned
    scale $g$ is all 1s.

    $$\text{rms}(x) = \sqrt{\tfrac{1}{6}\textstyle\sum_i x_i^2 + \varepsilon}, \qquad \hat x_i = \frac{x_i}{\text{rms}(x)}\, g_i$$
    """),
        side_by_side(table("blocks.0.resid_pre", we.DIMENSIONS, "x"),
                     number_table([[v] for v in rms_in.tolist()], words, ["rms"], title="rms(x)", digits=4),
                     table("blocks.0.attn_in", we.DIMENSIONS, "x̂ = x / rms (attention's input)", key="norm")),
        show_check("norm", box_norm),
        mo.accordion({"The code that ran: RMSNorm.forward (glassformer/model/norm.py)":
                      code_panel(RMSNorm.forward, highlight="rsqrt")}),
    ])
    return


@app.cell
def _(Attention, box_qkv, code_panel, mo, show_check, side_by_side, table, we, weights_row):
    _cols = ["0", "1", "2"]
    mo.vstack([
        mo.md(r"""
    ### 4. Queries, keys, values

    Three matrix products of the normalized vectors: a *query* (what this word is looking for),
    a *key* (what it offers to be found by) and a *value* (what it passes on when found).
    Each is 6 numbers, split into two heads of 3. A query entry is one column of $W_Q$ dotted with
    the word's normalized row: multiply the six pairs and add.

    $$q_t = \hat x_t W_Q,\quad k_t = \hat x_t W_K,\quad v_t = \hat x_t W_V \qquad (\text{then split: head } h \text{ gets entries } 3h \ldots 3h{+}2)$$
    """),
        side_by_side(table("blocks.0.attn_in", we.DIMENSIONS, "x̂ (from step 3)")),
        weights_row("W_Q", "W_K", "W_V"),
        side_by_side(table("blocks.0.attn.q", _cols, "head 0: queries q", head=0, key="qkv"),
                     table("blocks.0.attn.k", _cols, "keys k", head=0),
                     table("blocks.0.attn.v", _cols, "values v", head=0)),
        side_by_side(table("blocks.0.attn.q", _cols, "head 1: queries q", head=1),
                     table("blocks.0.attn.k", _cols, "keys k", head=1),
                     table("blocks.0.attn.v", _cols, "values v", head=1)),
        show_check("qkv", box_qkv),
        mo.accordion({"The code that ran: Attention.forward, the projection and the split "
                      "(glassformer/model/attention.py)":
                      code_panel(Attention.forward, highlight=("self.qkv(x)", "split", ".view("))}),
    ])
    return


@app.cell
def _(box_scores, mo, show_check, side_by_side, table, words):
    mo.vstack([
        mo.md(r"""
    ### 5. Scores

    How well does word $t$'s query match word $s$'s key? Their dot product: one number per
    (query, key) pair and head. Rows are queries, columns keys.

    $$\text{score}_{ts} = q_t \cdot k_s = \sum_{i=0}^{2} q_{t,i}\, k_{s,i}$$
    """),
        side_by_side(table("scores_unscaled", words, "head 0: q·k", head=0, key="scores"),
                     table("scores_unscaled", words, "head 1: q·k", head=1)),
        show_check("scores", box_scores),
    ])
    return


@app.cell
def _(box_scale, math, mo, show_check, side_by_side, table, we, words):
    mo.vstack([
        mo.md(rf"""
    ### 6. Scale

    Divide every score by $\sqrt{{d_h}}$, the square root of one head's width: $\sqrt{{{we.CONFIG.head_dim}}}
    = {math.sqrt(we.CONFIG.head_dim):.4f}$. Dot products of longer vectors spread wider (for random
    vectors with independent entries of variance 1, the variance of their dot product equals the
    length), and the wider the scores spread, the more of a softmax's weight tends to go to the largest one.
    Dividing by $\sqrt{{d_h}}$ brings the spread back to that of a single product, whatever the width.
    Chapter 4 measures both halves: the variance on random vectors of many widths, and what taking the
    division away does to the weights of a trained model's heads.

    $$\frac{{q_t \cdot k_s}}{{\sqrt{{d_h}}}}$$
    """),
        side_by_side(table("blocks.0.attn.scores", words, "head 0: scores / √3", head=0, key="scale"),
                     table("blocks.0.attn.scores", words, "head 1: scores / √3", head=1)),
        show_check("scale", box_scale),
    ])
    return


@app.cell
def _(box_mask, mo, show_check, side_by_side, table, words):
    mo.vstack([
        mo.md(r"""
    ### 7. Mask

    A word may only look at itself and the words before it (when the model predicts word $t+1$ it must
    not peek at it). The *causal mask* replaces every score above the diagonal (key after query) by
    $-\infty$, so that the next step turns it into a weight of exactly 0.

    $$\text{masked}_{ts} = \begin{cases}\text{score}_{ts} & s \le t\\ -\infty & s > t\end{cases}$$
    """),
        side_by_side(table("blocks.0.attn.masked_scores", words, "head 0: masked", head=0, key="mask"),
                     table("blocks.0.attn.masked_scores", words, "head 1: masked", head=1)),
        show_check("mask", box_mask),
    ])
    return


@app.cell
def _(box_softmax, mo, show_check, side_by_side, table, words):
    mo.vstack([
        mo.md(r"""
    ### 8. Softmax

    Each row of scores becomes weights between 0 and 1 that add up to 1: exponentiate, then divide by
    the row's total. $e^{-\infty} = 0$, so masked keys get no weight.

    $$a_{ts} = \frac{e^{\text{masked}_{ts}}}{\sum_{s'} e^{\text{masked}_{ts'}}}$$
    """),
        side_by_side(table("blocks.0.attn.pattern", words, "head 0: weights a", head=0, key="softmax"),
                     table("blocks.0.attn.pattern", words, "head 1: weights a", head=1)),
        show_check("softmax", box_softmax),
    ])
    return


@app.cell
def _(Attention, box_z, code_panel, mo, show_check, side_by_side, table, we, weights_row):
    _cols = ["0", "1", "2"]
    mo.vstack([
        mo.md(r"""
    ### 9. Weighted sum of values

    Each word's head output is the average of the values it attends to, weighted by step 8's weights.
    Steps 5 to 9 are the only place in the model where words meet (every other step works on each
    row by itself), and this is where the other words' values arrive in this word's row.

    $$z_t = \sum_{s \le t} a_{ts}\, v_s$$
    """),
        side_by_side(table("blocks.0.attn.v", _cols, "head 0: values v", head=0),
                     table("blocks.0.attn.z", _cols, "head 0: z = a v", head=0, key="z"),
                     table("blocks.0.attn.v", _cols, "head 1: values v", head=1),
                     table("blocks.0.attn.z", _cols, "head 1: z = a v", head=1)),
        show_check("z", box_z),
        mo.accordion({"The code that ran: steps 5 to 9 are Attention.eager (glassformer/model/attention.py)":
                      code_panel(Attention.eager,
                                 highlight=("scores = q @", "masked_fill", "softmax", "pattern @ v"))}),
    ])
    return


@app.cell
def _(box_out, mo, number_table, show_check, side_by_side, table, torch, trace, we, weight_table, words):
    _z = trace["blocks.0.attn.z"][0]                                      # (H, T, Dh)
    _zcat = torch.cat([_z[0], _z[1]], dim=-1)                             # (T, H Dh): the heads side by side
    mo.vstack([
        mo.md(r"""
    ### 10. Output projection

    The two heads' outputs are placed side by side (3 + 3 = 6 numbers) and multiplied by $W_O$, which
    mixes them back into the six model dimensions.

    $$o_t = [\,z^{(0)}_t \;\; z^{(1)}_t\,]\; W_O$$
    """),
        side_by_side(number_table(_zcat.tolist(), words, ["h0·0", "h0·1", "h0·2", "h1·0", "h1·1", "h1·2"],
                                  title="[z head 0, z head 1]"),
                     weight_table("W_O"),
                     table("blocks.0.attn_out", we.DIMENSIONS, "o = [z0 z1] W_O", key="out")),
        show_check("out", box_out),
    ])
    return


@app.cell
def _(Block, box_resid, code_panel, mo, show_check, side_by_side, table, we):
    mo.vstack([
        mo.md(r"""
    ### 11. Residual

    Attention's output is *added* to the stream, not put in its place: the word's own vector survives,
    and attention contributes what it found.

    $$x'_t = x_t + o_t$$
    """),
        side_by_side(table("blocks.0.resid_pre", we.DIMENSIONS, "x"),
                     table("blocks.0.attn_out", we.DIMENSIONS, "+ o"),
                     table("blocks.0.resid_mid", we.DIMENSIONS, "= x′", key="resid")),
        show_check("resid", box_resid),
        mo.accordion({"The code that ran: Block.forward (glassformer/model/block.py)":
                      code_panel(Block.forward, highlight=("mid = self.hook_resid_mid(x +",
                                                           "return self.hook_resid_post(mid +"))}),
    ])
    return


@app.cell
def _(SwiGLU, box_mlp, box_mlp_out, code_panel, mlp_parts, mo, number_table, rms_mid, show_check, side_by_side,
      table, we, weights_row, words):
    _units = ["u0", "u1", "u2"]
    mo.vstack([
        mo.md(r"""
    ### 12. MLP

    Now each word is processed on its own (no mixing between words). Normalize the stream again, then
    two products with the 6 × 3 matrices $W_{\text{gate}}$ and $W_{\text{up}}$. The gate goes through
    *SiLU*, $\text{silu}(g) = g / (1 + e^{-g})$, which keeps large positive numbers almost as they
    are, shrinks small ones and squashes negative ones toward 0, and multiplies the up value.
    $W_{\text{down}}$ takes the 3 hidden numbers back to 6, and the result is added to the stream.

    $$h = \text{silu}(\hat x' W_{\text{gate}}) \odot (\hat x' W_{\text{up}}), \qquad x''_t = x'_t + h_t W_{\text{down}}$$
    """),
        side_by_side(table("blocks.0.resid_mid", we.DIMENSIONS, "x′"),
                     number_table([[v] for v in rms_mid.tolist()], words, ["rms"], title="rms(x′)", digits=4),
                     table("blocks.0.mlp_in", we.DIMENSIONS, "x̂′ = x′ / rms")),
        weights_row("W_gate", "W_up", "W_down"),
        side_by_side(number_table(mlp_parts["gate"][0].tolist(), words, _units, title="gate = x̂′ W_gate"),
                     number_table(mlp_parts["silu"][0].tolist(), words, _units, title="silu(gate)"),
                     number_table(mlp_parts["up"][0].tolist(), words, _units, title="up = x̂′ W_up"),
                     table("blocks.0.mlp.post", _units, "h = silu(gate) × up", key="mlp")),
        show_check("mlp", box_mlp),
        side_by_side(table("blocks.0.mlp_out", we.DIMENSIONS, "h W_down"),
                     table("blocks.0.resid_post", we.DIMENSIONS, "x″ = x′ + h W_down", key="mlp_out")),
        show_check("mlp_out", box_mlp_out),
        mo.accordion({"The code that ran: SwiGLU.forward (glassformer/model/mlp.py)":
                      code_panel(SwiGLU.forward, highlight=("silu", "self.down"))}),
    ])
    return


@app.cell
def _(DecoderLM, Unembed, box_logit, code_panel, mo, number_table, rms_post, show_check, side_by_side, table, we,
      weights_row, words):
    mo.vstack([
        mo.md(r"""
    ### 13. Logits

    A last norm, then one score per vocabulary word: the dot product of the final vector with that
    word's row of the embedding table (the output head *is* the embedding table here: tied weights).
    A word scores high when the final vector points the way its embedding does.

    $$\text{logit}_{t,w} = \widehat{x''_t} \cdot E_w$$
    """),
        side_by_side(number_table([[v] for v in rms_post.tolist()], words, ["rms"], title="rms(x″)", digits=4),
                     table("final_norm", we.DIMENSIONS, "final norm x̂″"), weights_row("E")),
        side_by_side(table("logits", we.VOCAB, "logits: row t scores every word as the word after t", key="logit")),
        show_check("logit", box_logit),
        mo.accordion({"The code that ran: DecoderLM.forward's last lines and Unembed.forward":
                      mo.vstack([code_panel(DecoderLM.forward, highlight=("final_norm", "unembed")),
                                 code_panel(Unembed.forward, highlight="@ self.")])}),
    ])
    return


@app.cell
def _(alt, box_probs, code_panel, hand, mo, preset, probs, sampling, show_check, side_by_side, t, table, we, words):
    _gpt2, _qwen = preset("gpt2"), preset("qwen3-0.6b")
    _p = probs[t].tolist()
    _order = sorted(range(len(we.VOCAB)), key=lambda i: -_p[i])
    _best = _order[0]
    _rows = [{"word": we.VOCAB[i], "p": _p[i], "top": i == _best} for i in _order]
    _chart = (alt.Chart(alt.Data(values=_rows)).mark_bar()
              .encode(x=alt.X("word:N", sort=None, title=None, axis=alt.Axis(labelAngle=0, labelFontSize=14)),
                      y=alt.Y("p:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
                      color=alt.condition("datum.top", alt.value("#dc2626"), alt.value("#2563eb")),
                      tooltip=[alt.Tooltip("word:N"), alt.Tooltip("p:Q", title="probability", format=".4f")])
              .properties(title=f"after “{' '.join(words)}”: the next word", width=360, height=170,
                          usermeta={"embedOptions": {"renderer": "svg", "actions": False}}))
    mo.vstack([
        mo.md(r"""
    ### 14. Probabilities

    Softmax once more, over the six logits of each row: the model's prediction for the next word.

    $$p_{t,w} = \frac{e^{\text{logit}_{t,w}}}{\sum_{w'} e^{\text{logit}_{t,w'}}}$$
    """),
        side_by_side(table("probs", we.VOCAB, "probabilities of the next word", key="probs")),
        show_check("probs", box_probs),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
        mo.md((f"After “{' '.join(words)}” the toy's favourite next words are “{we.VOCAB[_best]}” and "
               f"“{we.VOCAB[_order[1]]}”, tied at {_p[_best]:.1%} each. "
               if abs(_p[_best] - _p[_order[1]]) < 1e-9 else
               f"After “{' '.join(words)}” the toy's favourite next word is “{we.VOCAB[_best]}”, "
               f"with probability {_p[_best]:.1%}; the runner-up, “{we.VOCAB[_order[1]]}”, has "
               f"{_p[_order[1]]:.1%}. ")
              + f"That is the whole forward pass: {len(hand)} checkable numbers, each a few "
              f"lines of arithmetic. GPT-2 small runs the same kind of pass (norm `{_gpt2.norm}`, MLP "
              f"`{_gpt2.mlp}`) with {_gpt2.d_model} numbers per word and {_gpt2.n_layers} blocks, "
              f"Qwen3-0.6B with {_qwen.d_model} and {_qwen.n_layers}."),
        mo.accordion({"The code that ran: sampling.distribution (glassformer/sampling.py)":
                      code_panel(sampling.distribution)}),
    ])
    return


@app.cell
def _(mo, probs, we, words):
    _first = probs[0].tolist()
    _cat, _dog = _first[we.VOCAB.index("cat")], _first[we.VOCAB.index("dog")]
    _tie = (" They tie: find the step where the tie could have been broken, and why nothing breaks it."
            if abs(_cat - _dog) < 1e-9 else " Try a sentence that starts with “the”: then they tie. Why?")
    mo.md(f"""
    ## Try

    - Type “the dog ran” instead: which numbers change, and which stay the same? (The row of a first
      word “the” never changes: at position 0 it sees nothing else.)
    - After your first word, “{words[0]}”, the toy gives “cat” {_cat:.1%} and “dog” {_dog:.1%}.{_tie}
    - Type something the toy does not know (an emoji, “the bird sang”): the page says which words it
      skipped.
    - Tick “switch the positions off” and watch head 1's scores (step 6): with nothing to tell the
      positions apart, every key gets the same score, and head 1 averages the words evenly.
    - Open this page with `glassformer edit A` and build the toy with tables of your own: the cell
      that makes `model` passes replacement tables to `we.build` (any of `we.WEIGHTS`' names). Every
      table, every check and its working follow the weights you give it.
    """)
    return


@app.cell
def _(Question, torch, we):
    _gap32 = we.softmax_zero_gap(torch.float32)       # how far below the row's largest score float32 gives 0
    questions = [
        Question("by-hand-mask", "Why does the mask write −∞ into a future key's score instead of 0?",
                 ["After softmax, e^−∞ = 0 gives that key no weight; a score of 0 would still get e^0 = 1 share",
                  "0 would make the division by √3 fail", "−∞ makes the scores add up to 1",
                  "It does not matter: both give the same weights"],
                 0, "Softmax exponentiates: a masked score of 0 would become e^0 = 1 and the future word would still "
                    "take part. In exact arithmetic only −∞ becomes exactly 0 (e^x is above 0 for every finite x). "
                    "Floating point rounds sooner: measured with torch.softmax in float32, a score about "
                    f"{_gap32:.0f} below its row's largest already gets a weight of exactly 0, which is why "
                    "Hugging Face's models can mask with the most negative float instead of −∞."),
        Question("by-hand-scale", "The toy divides the scores by √3. Where does the 3 come from?",
                 ["The number of words", "One head's width (head_dim)", "The model width divided by 2",
                  "The number of MLP units"],
                 1, "The division is by √d_h, the length of the vectors in one dot product: each head's query "
                    "and key "
                    "have 3 numbers. (The MLP also has 3 units here, but that is a coincidence.)"),
        Question("by-hand-norm", "You double every number of a word's vector x before the first norm. What happens "
                                 "to the normalized row x̂?",
                 ["It doubles too", "It halves", "It stays the same (up to the tiny ε)", "It becomes all ones"],
                 2, "RMSNorm divides by the root mean square, which doubles as well: the ratio x / rms(x) is "
                    "unchanged. "
                    "That is the point of a norm: later steps see a steady scale."),
        Question("by-hand-mixing", "Which part of the block lets a word's numbers depend on the other words?",
                 ["The embedding", "The norms", "Attention (scores, softmax, weighted sum)", "The MLP"],
                 2, "Embedding, norms and MLP act on each row separately. In attention, row t's scores use the "
                    "other words' keys, and its weighted sum brings in their values (rows s ≤ t only)."),
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
