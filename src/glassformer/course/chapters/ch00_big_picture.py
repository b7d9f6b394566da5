import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="0. The big picture", css_file="course.css")


@app.cell
def _():
    import marimo as mo
    import torch

    from glassformer import sampling, timing
    from glassformer.course import catalog, common
    from glassformer.course.widgets import (Question, TokenStrip, attention_heatmap, code_panel, matrix_heatmap,
                                            prob_bars, quiz, quiz_feedback, token_label)
    from glassformer.model.block import Block
    from glassformer.model.decoder import DecoderLM
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Block, DecoderLM, Question, TokenStrip, attention_heatmap, catalog, code_panel, common, matrix_heatmap,
            mo, prob_bars, quiz, quiz_feedback, sampling, timing, token_label, torch, this)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    A language model does one thing: given some text, it says how likely each possible next
    piece of text is. Everything a chatbot does is that, repeated: predict, pick, append, predict again.

    Text is a **sequence**: order matters ("dog bites man" is not "man bites dog"). Older sequence
    models, *recurrent networks* (RNNs), read a sequence like a person reading aloud: one element at a
    time, squeezing everything seen so far into a single memory vector that is updated at each step.
    Step 100 cannot start before step 99 is done, and whatever step 100 needs from step 1 must have
    survived 99 rewrites of that one vector.

    A **Transformer** reads the whole sequence at once. When it reads a text (in training, or the
    prompt you give it) every position is processed in parallel, and any position can look directly at
    any earlier one. That is why Transformers train fast on hardware that does many multiplications at
    once, and why the first word of a text is as easy to reach as the previous one, as long as both are
    inside the model's **context window** (its longest input; the table below says how long it is for
    the model you picked). Writing new text is still one token per call: each new token needs the
    one before it (chapter 8).

    Below is a real Transformer (by default the course model: a small GPT trained on Shakespeare, one token per
    character) running on **your** text. Change it and everything re-runs.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, sampling, text, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value)
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = torch.tensor([prepared.ids])                                   # (1, T)
    with torch.no_grad():
        logits, trace = model.run_with_trace(ids)                        # every hook point
    probs = sampling.distribution(logits[0, -1].float())                 # (V,): softmax, no filters
    top = int(sampling.greedy(logits[0, -1]))                            # the most likely next token
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return ids, loaded, logits, model, prepared, probs, tokenizer, top, trace


@app.cell
def _(mo):
    mo.md(r"""
    ## The pipeline, stage by stage

    Click a stage. Each one is a real tensor recorded while the model ran on your text; its **shape**
    is listed with the names used throughout the course: **B** batch (here 1 text), **T** positions
    (tokens), **D** the width of each token's vector, **V** the vocabulary size.
    """)
    return


@app.cell
def _(mo):
    stage = mo.ui.radio(options=["1 · text", "2 · tokens", "3 · vectors", "4 · blocks", "5 · logits",
                                 "6 · probabilities", "7 · next token"], value="2 · tokens", inline=True)
    stage
    return (stage,)


@app.cell
def _(ids, logits, mo, model, prepared, probs, token_label, tokenizer, top, trace):
    cfg = model.config
    T = ids.shape[1]
    _top = top
    shapes = [
        ("text", "your string", f"{len(prepared.text)} characters", "—"),
        ("tokens", "ids", f"[B={1}, T={T}]", "input to model(ids)"),
        ("vectors", "embed.tok + embed.pos" if "embed.pos" in trace else "embed.tok (positions: RoPE, inside attention)",
         f"[1, {T}, D={cfg.d_model}]", "embed.tok, embed.pos" if "embed.pos" in trace else "embed.tok"),
        ("blocks", f"{cfg.n_layers} × Transformer block", f"[1, {T}, {cfg.d_model}] → [1, {T}, {cfg.d_model}]",
         "blocks.{i}.resid_post"),
        ("logits", "final_norm → unembed", f"[1, {T}, V={cfg.vocab_size}]", "logits"),
        ("probabilities", "sampling.distribution: softmax of the last row", f"[V={cfg.vocab_size}]", "—"),
        ("next token", "sampling.greedy: the argmax (or a sample)", "one id", "—"),
    ]
    _count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    _tied = cfg.tie_embeddings
    _params = ["—", "—",
               f"{_count(model.embed):,}",
               f"{sum(_count(b) for b in model.blocks):,}",
               f"{_count(model.final_norm) + (0 if _tied else model.unembed.weight.numel()):,}"
               + (" (unembedding shares the embedding table)" if _tied else ""),
               "0", "0"]
    _rows = "\n".join(f"| {i + 1}. {a} | {b} | `{c}` | {d if d == '—' else '`' + d + '`'} | {n} |"
                       for i, ((a, b, c, d), n) in enumerate(zip(shapes, _params)))
    mo.md(f"| stage | what | shape | hook name | learned parameters |\n|---|---|---|---|---|\n{_rows}\n\n"
          f"The model ran on **{T} tokens** (its context window: {cfg.n_ctx} tokens; "
          f"{model.num_params():,} parameters in all) and its best guess for what follows is "
          f"**`{token_label(tokenizer.token_bytes(_top))}`** ({probs[_top].item():.1%}). "
          f"Logits tensor: `{tuple(logits.shape)}`.")
    return cfg, T


@app.cell
def _(DecoderLM, T, TokenStrip, attention_heatmap, cfg, code_panel, ids, matrix_heatmap, mo, prepared, prob_bars, probs,
      sampling, stage, token_label, tokenizer, top, trace):
    _labels = [token_label(tokenizer.token_bytes(i)) for i in ids[0].tolist()]
    _key = stage.value.split(" · ")[1]
    if _key == "text":
        _out = mo.md(f"Your text, as the program receives it: a Python `str` of {len(prepared.text)} characters. "
                     f"A computer cannot multiply letters, so the first job is to turn it into numbers.")
    elif _key == "tokens":
        _out = mo.vstack([
            mo.md(f"The tokenizer splits the text into **{T} tokens** and replaces each by its id in a fixed "
                  f"vocabulary of {tokenizer.vocab_size}. Hover a token for its id and bytes."),
            mo.ui.anywidget(TokenStrip(tokens=prepared.strip)),
            mo.md(f"`ids = {ids[0].tolist()[:40]}{' …' if T > 40 else ''}`  — shape `[1, {T}]`")])
    elif _key == "vectors":
        _x = (trace["embed.tok"] + trace.get("embed.pos", 0))[0, :, :48].numpy()
        _out = mo.vstack([
            mo.md(f"Each id selects one row of a learned table: a vector of **D = {cfg.d_model}** numbers "
                  f"(first 48 shown). " + ("A vector for its position is added to it. " if "embed.pos" in trace else
                  "Where it stands is told later, inside attention, by rotating queries and keys (RoPE, chapter 3). ")
                  + "From here on, a token *is* its vector."),
            matrix_heatmap(_x, _labels, [str(d) for d in range(_x.shape[1])], row_title="token", col_title="dimension",
                           scheme="redblue", cell=14, title=f"embeddings: [1, {T}, {cfg.d_model}] (48 dims shown)")])
    elif _key == "blocks":
        import numpy as _np
        _norms = _np.stack([(trace["embed.tok"] + trace.get("embed.pos", 0))[0].norm(dim=-1).numpy()] +
                           [trace[f"blocks.{i}.resid_post"][0].norm(dim=-1).numpy() for i in range(cfg.n_layers)])
        _pat = trace[f"blocks.{cfg.n_layers - 1}.attn.pattern"][0].mean(0).numpy()
        _out = mo.vstack([
            mo.md(f"The vectors pass through **{cfg.n_layers} blocks**. In each, *attention* lets every position "
                  f"read from earlier positions, then a small *feed-forward network* transforms each position. "
                  f"Shape in = shape out = `[1, {T}, {cfg.d_model}]`: each block adds to the vectors. Left: the size "
                  f"(length) of each token's vector after each block. Right: who reads from whom in the last block."),
            mo.hstack([matrix_heatmap(_norms, ["embed"] + [f"block {i}" for i in range(cfg.n_layers)], _labels,
                                      row_title="after", col_title="token", value_title="|x|", scheme="greens",
                                      cell=16, title="vector length per token and layer"),
                       attention_heatmap(_pat[-24:, -24:], _labels[-24:],
                                         title=f"block {cfg.n_layers - 1}, heads averaged (last 24)")], wrap=True)])
    elif _key == "logits":
        _last = trace["logits"][0, -1]
        _order = _last.argsort(descending=True)[:12].tolist()
        _rows = "\n".join(f"| `{token_label(tokenizer.token_bytes(i))}` | {i} | {_last[i].item():+.3f} |" for i in _order)
        _out = mo.md(f"A final norm, then one matrix multiply gives **one score per vocabulary entry at every "
                     f"position**: `[1, {T}, {cfg.vocab_size}]`. Only the last position's row predicts the "
                     f"*next* token; its highest scores:\n\n| token | id | logit |\n|---|---|---|\n{_rows}")
    elif _key == "probabilities":
        _order = probs.argsort(descending=True)[:16].tolist()
        _out = mo.vstack([mo.md("`sampling.distribution` turns the last row of scores into probabilities that add "
                                "up to 1: with no temperature or filters set, that is a softmax."),
                          prob_bars([token_label(tokenizer.token_bytes(i)) for i in _order],
                                    [probs[i].item() for i in _order], chosen=0, title="P(next token)")])
    else:
        _out = mo.md(f"Pick a token (here the most likely, `sampling.greedy`: "
                     f"**`{token_label(tokenizer.token_bytes(top))}`**), append it to the text, and run everything "
                     f"again. That loop is text generation (chapter 8).\n\n"
                     f"```text\n{tokenizer.decode(ids[0].tolist()[-60:])}[{tokenizer.decode([top])}]\n```")

    # The code that made this stage's tensor, its lines highlighted.
    _code = {"text": (type(tokenizer).encode, "def encode"),
             "tokens": (DecoderLM.forward, "check_ids(ids"),
             "vectors": (DecoderLM.forward, "self.embed(ids"),
             "blocks": (DecoderLM.forward, ("for i, block", "x = block(")),
             "logits": (DecoderLM.forward, ("self.final_norm(x)", "self.unembed(x)")),
             "probabilities": (sampling.distribution, "softmax"),
             "next token": (sampling.greedy, "argmax")}[_key]
    mo.vstack([_out, mo.md("The code that made it, its lines highlighted:"),
               code_panel(_code[0], highlight=_code[1])])
    return


@app.cell
def _(Block, DecoderLM, code_panel, mo):
    mo.accordion({"The code that ran: DecoderLM.forward (glassformer/model/decoder.py)": code_panel(DecoderLM.forward),
                  "One block: Block.forward (glassformer/model/block.py)": code_panel(Block.forward)})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## All at once vs one step at a time, measured

    The Transformer processes all positions of your text in **one** call. An RNN has to make one call
    per position, each waiting for the previous one. We imitate the one-at-a-time way with the *same*
    Transformer (not an RNN): feeding it one position per call, keeping the keys and values it computed
    in a cache, so the numbers are the same. Both are timed right now, on this machine, at a few
    lengths (up to 64 tokens of your text), the way every speed comparison in the course is timed:
    on one CPU thread, each a few times *in turns* (so a busy moment on the machine slows both
    alike), and a row says "faster" or "slower" only when the runs agree beyond chance; otherwise it
    says there is no clear difference.
    """)
    return


@app.cell
def _(code_panel, ids, mo, model, timing, torch):
    def one_at_a_time_logits(x):
        cache = model.new_cache(1, x.shape[1])
        return torch.cat([model(x[:, t:t + 1], cache=cache) for t in range(x.shape[1])], dim=1)

    _T = ids.shape[1]
    _rows = []
    with torch.no_grad():
        for _n in sorted({min(8, _T), min(32, _T), min(64, _T)}):
            _x = ids[:, -_n:]
            _c = timing.compare(lambda: one_at_a_time_logits(_x), lambda: model(_x),
                                names=("one at a time", "all at once"), repeats=9, budget=1.0)
            _diff = (model(_x) - one_at_a_time_logits(_x)).abs().max().item()
            _rows.append((_n, _c, _diff))
    _says = {"faster": "*faster*", "slower": "*slower*", "unclear": "no clear difference"}
    _table = "\n".join(f"| {n} | {c.candidate_timing.figure()} | {c.baseline_timing.figure()} | {c.figure()} | "
                        f"{_says[c.verdict]} | {d:.1e} |" for n, c, d in _rows)
    _change = ""
    if len(_rows) > 1:
        (_n0, _c0, _), (_n1, _c1, _) = _rows[0], _rows[-1]
        _trend = {"grows": "grows with the length", "shrinks": "shrinks with the length",
                  "unclear": "shows no clear trend between these lengths on this machine right now"}[
            timing.trend(_c0, _c1)]
        _change = (f" The advantage of one call {_trend}: {_c0.speedup:.1f}× at {_n0} tokens, {_c1.speedup:.1f}× at "
                   f"{_n1} (a trend is claimed only when the two intervals do not overlap).")
    mo.vstack([
        mo.md(f"| tokens | all at once (1 call) | one at a time | all at once: speed-up (interval, runs) | verdict "
              f"| max \\|Δ logit\\| |\n|---|---|---|---|---|---|\n{_table}\n\n"
              f"Each time is the median of its runs, with the interval that holds the typical time at 95% "
              f"confidence. The same logits "
              f"either way (the largest difference is float rounding).{_change} Measured on this machine's CPU, "
              f"so your numbers will differ, and a busy machine gives wider ranges."),
        mo.accordion({"How every speed comparison in the course is timed: compare (glassformer/timing.py)":
                      mo.vstack([code_panel(timing.compare), code_panel(timing.Comparison.verdict.fget)])}),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Three ways to see the same machine

    1. **A sequence model.** Text in, a probability for every possible next token out. Chapters 1, 8, 9.
    2. **A stack of matrix multiplications.** Most of the work is multiplying vectors by learned
       matrices (the embedding lookup is one too: picking a row is multiplying a one-hot vector by the
       table). Around them: additions, functions applied element by element (GELU, SiLU), norms and
       softmaxes that look at a whole vector, and, inside attention, two products of activations with
       activations ($QK^\top$ and the weights times $V$). Chapters 2, 4, 6.
    """)
    return


@app.cell
def _(catalog, mo):
    def chapters(*keys: str) -> str:
        """Links to the built chapters among `keys`; the others named as coming."""
        built = [f"[{k}]({catalog.chapter(k).path})" for k in keys if catalog.chapter(k).built]
        coming = [k for k in keys if not catalog.chapter(k).built]
        return (f"Chapter{'s' if len(built) > 1 else ''} {', '.join(built)}" if built else "") + (
            f"{'; c' if built else 'C'}oming: chapter {', '.join(coming)}" if coming else "") + "."

    mo.md(f"""
    3. **Information routing.** Attention decides, for every position, which earlier positions to copy
       information from; the residual stream carries it upward through the blocks. {chapters("4", "5", "7", "12")}
    """)
    return


@app.cell
def _(cfg, ids, mo, model, probs, token_label, tokenizer, trace):
    # The three views of the run above, side by side; every number comes from that run.
    import html as _html

    _labels = [token_label(tokenizer.token_bytes(i)) for i in ids[0].tolist()]
    _top = probs.argsort(descending=True)[:3].tolist()
    _view1 = "<br>".join(f"<code>{_html.escape(token_label(tokenizer.token_bytes(i)))}</code> {probs[i].item():.1%}"
                         for i in _top)
    _count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    _stages = [("embed", _count(model.embed))] + [(f"block {i}", _count(b)) for i, b in enumerate(model.blocks)]
    _biggest = max(n for _, n in _stages)
    _view2 = "".join(f'<div style="display:flex;gap:6px;align-items:center"><span style="width:56px">{name}</span>'
                     f'<span style="background:#93c5fd;height:10px;width:{max(2, int(90 * n / _biggest))}px"></span>'
                     f'<small>{n:,}</small></div>' for name, n in _stages)
    _pattern = trace[f"blocks.{cfg.n_layers - 1}.attn.pattern"][0].mean(0)[-1]   # last token's weights, (T,)
    _reads = _pattern.argsort(descending=True)[:3].tolist()
    _view3 = "<br>".join(f"← <code>{_html.escape(_labels[j])}</code> (position {j}) {_pattern[j].item():.0%}"
                         for j in _reads)
    _box = 'style="flex:1;border:1px solid #e5e7eb;border-radius:8px;padding:10px;font-size:0.85rem"'
    mo.Html(f'<div style="display:flex;gap:10px">'
            f'<div {_box}><b>1 · sequence model</b><br><small>your text in, the next token\'s odds out</small><br>{_view1}</div>'
            f'<div {_box}><b>2 · stack of matrix multiplications</b><br><small>learned numbers per stage</small>{_view2}</div>'
            f'<div {_box}><b>3 · information routing</b><br><small>where the last token reads from in the last block '
            f'(heads averaged)</small><br>{_view3}</div></div>')
    return


@app.cell
def _(Question):
    questions = [
        Question("parallel", "Why do Transformers train faster than RNNs on the same hardware?",
                 ["They have fewer parameters", "They process all positions of a sequence at once instead of one "
                  "after the other", "They skip the tokenizer", "They only look at the last token"],
                 1, "An RNN's step t needs the result of step t-1; a Transformer computes every position in one pass "
                    "of big matrix multiplications, which parallel hardware loves. The table above times the same "
                    "contrast on your text: one call for all positions against one call per position."),
        Question("output", "What does the model output for a text of T tokens?",
                 ["One token", "A score for every vocabulary entry at every one of the T positions",
                  "A single probability", "The T input vectors, unchanged"],
                 1, "The logits tensor is [B, T, V]; the last position's row is the prediction for the next token."),
        Question("next", "How does the model write a whole sentence?",
                 ["It outputs the sentence in one pass", "It predicts one token, appends it, and runs again",
                  "It looks the sentence up in its training data", "The tokenizer writes it"],
                 1, "Generation is a loop of single next-token predictions (chapter 8)."),
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
