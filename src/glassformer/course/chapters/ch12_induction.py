import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="12. What makes it work", css_file="course.css")


@app.cell
def _():
    import math
    import time

    import altair as alt
    import marimo as mo
    import numpy as np
    import torch

    from glassformer import registry
    from glassformer.analysis import emergence, heads
    from glassformer.analysis import induction as ind
    from glassformer.analysis.ablation import held_out_text
    from glassformer.course import common, live_training, store
    from glassformer.course.widgets import Question, code_panel, matrix_heatmap, quiz, quiz_feedback, token_label
    from glassformer.toys import induction as toy
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    SVG = {"embedOptions": {"renderer": "svg", "actions": False}}
    return (Question, SVG, alt, code_panel, common, emergence, heads, held_out_text, ind, live_training, math,
            matrix_heatmap, mo, np, quiz, quiz_feedback, registry, store, this, time, token_label, torch, toy)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    Chapter 7 pictured the **residual stream** as a bus running up through the model: every attention
    head and every MLP reads the vectors on it and adds its own result back. One consequence is easy to
    miss. A head in layer 1 does not only see the tokens; it sees whatever the heads of layer 0 wrote
    into each position. Two heads in different layers can therefore compute something together that
    neither could alone.

    This chapter follows the best-known example of such teamwork, the **induction head**. It
    implements one rule: *if the text so far contains … A B …, and the current token is A again,
    predict B.* A text that repeats a name, a phrase or a line of code becomes easier to predict the
    second time, with no weight of the model changing: **in-context learning**, learning from the
    context alone. Olsson et al. (2022, "In-context Learning and Induction Heads") argue that
    induction heads are behind much of the in-context learning of large models.

    Rather than draw such a head, the page finds one: in a small model trained for this course, by a
    score, by its picture, and by switching it off.
    """)
    return


@app.cell
def _(registry, toy):
    ind_loaded = registry.load_model("induction")
    ind_model = ind_loaded.model.eval()
    ind_card = ind_loaded.card
    ind_tok = ind_loaded.tokenizer
    ind_cfg = ind_model.config
    ind_history = toy.read_history()
    return ind_card, ind_cfg, ind_history, ind_model, ind_tok


@app.cell
def _(ind_card, ind_cfg, ind_model, mo, toy):
    _r = ind_card["recipe"]["train"]
    _c = ind_card["comparisons"]
    _rows = "\n    ".join(f"| {name.replace('N(0, 0.02)', 'N(0, 0.02²)')} | {v['best_induction_score']:.3f} | "
                           f"{v['loss_first_copy']:.2f} | {v['loss_repeat']:.2f} |" for name, v in _c.items())
    _wide = toy.score_spread(toy.fresh_model(ind_cfg, toy.Recipe()), toy.probe())
    _narrow = toy.score_spread(toy.fresh_model(ind_cfg, toy.Recipe(qkv_std=0.02)), toy.probe())
    mo.md(f"""
    ## A model trained here: two layers, attention only

    The model has {ind_cfg.n_layers} layers of {ind_cfg.n_heads} attention heads each, width
    $D = {ind_cfg.d_model}$, and *no MLP* at all (its config says `mlp="none"`): whatever it computes,
    attention computes. That is {ind_model.num_params():,} parameters. Its vocabulary is
    {ind_cfg.vocab_size} symbols (`{toy.VOCAB[:12]}…{toy.VOCAB[-4:]}`) that stand for token ids, and it
    reads {ind_cfg.n_ctx} tokens at a time.

    It was trained by `scripts/ship_induction.py` (seed {_r['seed']}, {_r['steps']:,} steps of
    {_r['batch_size']} sequences, {ind_card['train_seconds_measured']:.0f} s on one CPU core of the machine
    that built the package) on sequences of random tokens in which one random segment of
    {_r['min_segment']}–{ind_cfg.n_ctx // 2} tokens appears twice. The first occurrence of the segment cannot
    be predicted: its tokens are random. The second can, from its second token on, by anyone who
    remembers the first. Nothing else in the data can be learned.

    Two choices in the recipe matter. Its positions are ALiBi's (chapter 3): each head's scores get a
    penalty that grows with the distance back, steep for head 0 and nearly flat for head 3, so some
    heads lean towards the last few tokens from the very start. And its q, k, v weights start wider
    than the library's default, $\mathcal{{N}}(0, 1/D)$ instead of $\mathcal{{N}}(0, 0.02^2)$, so the
    attention patterns are not flat at the start: measured now, before any training, on 16 repeated
    random sequences,
    the scores $q \cdot k / \sqrt{{D_h}}$ of layer 0 spread by {_wide:.2f} (standard deviation) with this
    start and by {_narrow:.3f} with the default. The script measured what each choice is worth, with
    runs of {_c['as shipped']['steps']:,} steps scored on 64 repeated random sequences:

    | {_c['as shipped']['steps']:,}-step run | best induction score | loss, first copy | loss, repeat |
    |:---|---:|---:|---:|
    {_rows}
    """)
    return


@app.cell
def _(ind_cfg, mo):
    seq_len = mo.ui.slider(4, ind_cfg.n_ctx // 2, step=1, value=20, label="tokens before the repeat (n)",
                           show_value=True)
    seq_seed = mo.ui.number(start=0, stop=99_999, step=1, value=7, label="seed")
    mo.vstack([mo.md("""
    ## A repeated random sequence

    Pick a length $n$ and a seed: the page draws $n$ random tokens and writes them twice.
    """), mo.hstack([seq_len, seq_seed], justify="start", gap=2)])
    return seq_len, seq_seed


@app.cell
def _(ind, ind_cfg, ind_model, ind_tok, mo, seq_len, seq_seed):
    period = int(seq_len.value)
    seq_ids = ind.repeated_random(ind_cfg.vocab_size, period, int(seq_seed.value or 0))   # (1, 2n)
    seq_text = ind_tok.decode(seq_ids[0].tolist())
    seq_scores = ind.head_scores(ind_model, seq_ids, period)
    seq_losses = ind.per_position_loss(ind_model, seq_ids)                                 # (1, 2n - 1)
    best_head = seq_scores.best("induction")
    mo.md(f"`{seq_text[:period]}` · `{seq_text[period:]}`  \n"
          f"({2 * period} tokens: the first {period}, then the same {period} again.)")
    return best_head, period, seq_ids, seq_losses, seq_scores, seq_text


@app.cell
def _(mo):
    mo.md(r"""
    ## How to recognise an induction head: two scores

    Number the positions $0 \ldots 2n-1$. Position $t$ in the second copy ($t \ge n$) holds the same
    token as position $t - n$, and the token that followed that earlier occurrence sits at
    $t - n + 1$. An induction head, at query $t$, puts its weight on key $t - n + 1$ and copies that
    token. Its **induction score** is the average weight it puts there (Olsson et al. 2022):

    $$\text{induction}(h) = \frac{1}{n} \sum_{t=n}^{2n-1} A_h[t,\ t-n+1]$$

    where $A_h$ is head $h$'s attention pattern (rows: queries, columns: keys, each row sums to 1). A
    head with no preference spreads its weight evenly over the $t+1$ keys it may see, $1/(t+1)$ each,
    so its score would be the average of $1/(t+1)$ over the same queries.
    The **previous-token score** is the average weight on the token just before the query,
    $\frac{1}{2n-1}\sum_{t=1}^{2n-1} A_h[t,\ t-1]$.
    """)
    return


@app.cell
def _(code_panel, ind, mo):
    mo.accordion({
        "The code that computes them (glassformer/analysis/induction.py)": mo.vstack([
            code_panel(ind.induction_score, highlight="t - period + 1"),
            code_panel(ind.previous_token_score, highlight="t - 1]"),
            code_panel(ind.head_scores, highlight=("run_with_trace", "ablation_hooks")),
        ]),
    })
    return


@app.cell
def _(best_head, ind_cfg, mo):
    pick_layer = mo.ui.dropdown({str(i): i for i in range(ind_cfg.n_layers)}, value=str(best_head[0]), label="layer")
    pick_head = mo.ui.dropdown({str(h): h for h in range(ind_cfg.n_heads)}, value=str(best_head[1]), label="head")
    mo.vstack([mo.md(f"""
    ### The stripe

    Below: one head's pattern on your sequence, starting on the head with the highest induction score
    (layer {best_head[0]}, head {best_head[1]}). Hover a cell for its weight. The frame marks the cells
    an induction head should fill: from each token of the second copy to the token that followed it in
    the first copy, a stripe parallel to the diagonal, $n-1$ columns to its left.
    """), mo.hstack([pick_layer, pick_head], justify="start")])
    return pick_head, pick_layer


@app.cell
def _(alt, ind, matrix_heatmap, mo, np, period, pick_head, pick_layer, seq_scores, seq_text):
    _L, _h = pick_layer.value, pick_head.value
    _p = seq_scores.patterns[_L, 0, _h].numpy().copy()                         # (2n, 2n)
    _p[np.triu_indices_from(_p, k=1)] = np.nan                                 # future keys: masked, not drawn
    _labels = list(seq_text)
    _cell = max(8, min(18, 560 // len(_labels)))
    _heat = matrix_heatmap(_p, _labels, _labels, title=f"layer {_L}, head {_h}: attention weights", scheme="purples",
                           domain=(0, 1), row_title="query (attending from)", col_title="key (attending to)",
                           value_title="weight", cell=_cell)
    _stripe = [{"r": f"{t:04d} {_labels[t]}", "c": f"{t - period + 1:04d} {_labels[t - period + 1]}"}
               for t in range(period, 2 * period)]
    _frame = alt.Chart(alt.Data(values=_stripe)).mark_rect(fill=None, stroke="#f59e0b", strokeWidth=1.5).encode(
        x=alt.X("c:N", sort=None), y=alt.Y("r:N", sort=None))
    _chart = alt.layer(_heat, _frame)
    _score = seq_scores.induction[_L, _h].item()
    _uniform = ind.uniform_induction(2 * period, period)
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"Layer {_L}, head {_h}: induction score **{_score:.3f}** on this sequence (a head with no "
                     f"preference would score {_uniform:.3f}), previous-token score "
                     f"{seq_scores.previous[_L, _h].item():.3f}.")])
    return


@app.cell
def _(best_head, ind, ind_card, matrix_heatmap, mo, period, seq_scores):
    def score_grid(table, title, scheme="purples"):
        return matrix_heatmap(table.numpy(), [str(i) for i in range(table.shape[0])],
                              [str(h) for h in range(table.shape[1])], title=title, row_title="layer",
                              col_title="head", value_title="score", scheme=scheme, domain=(0, 1), cell=44)

    _uniform = ind.uniform_induction(2 * period, period)
    _prev = seq_scores.best("previous", layer=0)
    _card_best = ind_card["measured"]["best_head"]
    mo.vstack([
        mo.md("### Every head's scores on this sequence"),
        mo.hstack([mo.ui.altair_chart(score_grid(seq_scores.induction, "induction score"), chart_selection=False,
                                      legend_selection=False),
                   mo.ui.altair_chart(score_grid(seq_scores.previous, "previous-token score", "oranges"),
                                      chart_selection=False, legend_selection=False)], justify="start", gap=2),
        mo.md(f"The highest induction score is layer {best_head[0]}, head {best_head[1]}'s: "
              f"{seq_scores.induction[best_head].item():.3f}, "
              f"{seq_scores.induction[best_head].item() / _uniform:.0f}× the {_uniform:.3f} of a head with no "
              f"preference. In layer 0 the head that looks most at the previous token is head {_prev[1]} "
              f"({seq_scores.previous[_prev].item():.3f}). On 64 random sequences of 32 tokens, each written twice, "
              f"the training script measured layer {_card_best['layer']}, head {_card_best['head']} as the best, with "
              f"{_card_best['induction_score']:.3f}."),
    ])
    return (score_grid,)


@app.cell
def _(alt, SVG, ind, ind_cfg, math, mo, period, seq_losses, seq_text):
    def loss_rows(losses, text, n, label):
        """One row per predicted token: position t+1, its loss, which copy it is in."""
        return [{"position": t + 1, "token": text[t + 1], "loss": float(v), "model": label,
                 "copy": "first copy" if t + 1 < n else ("first token of the repeat" if t + 1 == n else "repeat")}
                for t, v in enumerate(losses.tolist())]

    def loss_chart(rows, title, color="copy"):
        domain = (["first copy", "first token of the repeat", "repeat"] if color == "copy" else
                  sorted({r[color] for r in rows}))
        colors = (["#94a3b8", "#f59e0b", "#7c3aed"] if color == "copy" else ["#7c3aed", "#dc2626", "#0ea5e9"])
        return alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
            x=alt.X("position:Q", title="position of the predicted token"),
            y=alt.Y("loss:Q", title="loss (nats)"),
            color=alt.Color(f"{color}:N", title=None, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=domain, range=colors[:len(domain)])),
            detail="model:N",
            tooltip=["position:Q", "token:N", "copy:N", "model:N", alt.Tooltip("loss:Q", format=".3f")],
        ).properties(width=620, height=200, title=title, usermeta=SVG)

    _first, _repeat = ind.halves(seq_losses, period)
    _rows = loss_rows(seq_losses[0], seq_text, period, "every head on")
    mo.vstack([
        mo.md(r"""
        ### The loss at every position

        Each point is $-\ln p(\text{the token that really comes next})$. Guessing uniformly among the
        vocabulary costs $\ln V$. The first token of the repeat is marked apart: nothing before it says
        the sequence is about to start over.
        """),
        mo.ui.altair_chart(loss_chart(_rows, "loss per position on your sequence"), chart_selection=False,
                           legend_selection=False),
        mo.md(f"Mean loss on the first copy: **{_first:.2f}** nats (a uniform guess costs ln {ind_cfg.vocab_size} = "
              f"{math.log(ind_cfg.vocab_size):.2f}"
              + ("; the trained model does a little worse than that on random tokens: anything but an even "
                 "spread costs extra there, and it leans towards tokens it has already read, which in its "
                 "training often came back" if _first > math.log(ind_cfg.vocab_size) else "") +
              f"); on the repeat: **{_repeat:.2f}**. The difference, "
              f"{_repeat - _first:+.2f} nats, is this sequence's **in-context-learning score**: loss late in the "
              f"context minus loss early (Olsson et al. measure it on real text as the loss at token 500 minus "
              f"the loss at token 50). Negative means the model predicts better once it has read the pattern."),
    ])
    return loss_chart, loss_rows


@app.cell
def _(alt, SVG, toy):
    def history_charts(history, title):
        """The two halves' losses and every head's induction score, row by row of a training history."""
        losses = [{"step": r["step"], "loss": r[k], "half": name} for r in history
                  for k, name in (("loss_first", "first copy"), ("loss_repeat", "repeat"))]
        change = toy.phase_change(history) if history else None
        top = change["head"] if change else None
        scores = [{"step": r["step"], "score": v, "head": f"L{i}H{h}", "width": 3 if (i, h) == top else 1}
                  for r in history for i, row in enumerate(r["induction"]) for h, v in enumerate(row)]
        shape = (len(history[0]["induction"]), len(history[0]["induction"][0])) if history else (0, 0)
        names = [f"L{i}H{h}" for i in range(shape[0]) for h in range(shape[1])]
        # earlier layers in greys, the last layer (where induction heads live) in distinct colours
        palette = (["#cbd5e1", "#94a3b8", "#64748b", "#334155"] * 4)[:shape[1] * (shape[0] - 1)] + \
            ["#2563eb", "#16a34a", "#dc2626", "#7c3aed", "#ea580c", "#0891b2", "#db2777", "#65a30d"][:shape[1]]
        base = alt.Chart(alt.Data(values=losses)).mark_line(point=True).encode(
            x=alt.X("step:Q"), y=alt.Y("loss:Q", title="loss on the probe (nats)"),
            color=alt.Color("half:N", title=None, scale=alt.Scale(domain=["first copy", "repeat"],
                                                                  range=["#94a3b8", "#7c3aed"]),
                            legend=alt.Legend(orient="top")),
            tooltip=["step:Q", "half:N", alt.Tooltip("loss:Q", format=".3f")],
        ).properties(width=300, height=200, title=f"{title}: losses")
        heads = alt.Chart(alt.Data(values=scores)).mark_line().encode(
            x=alt.X("step:Q"), y=alt.Y("score:Q", title="induction score", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("head:N", title=None, legend=alt.Legend(orient="top", columns=4),
                            scale=alt.Scale(domain=names, range=palette[:len(names)])),
            strokeWidth=alt.StrokeWidth("width:Q", scale=None, legend=None),
            tooltip=["step:Q", "head:N", alt.Tooltip("score:Q", format=".3f")],
        ).properties(width=300, height=200, title=f"{title}: every head")
        return alt.hconcat(base, heads).resolve_scale(color="independent").properties(usermeta=SVG)
    return (history_charts,)


@app.cell
def _(history_charts, ind_card, ind_history, mo, toy):
    _ch = toy.phase_change(ind_history)
    _p = ind_card["history"]["probe"]
    _h = _ch["head"]
    _b = _ch["before"]
    _end = ind_history[-1]
    _gap = lambda r: r["loss_first"] - r["loss_repeat"]  # noqa: E731
    _calm = next((r for r in ind_history if _gap(r) >= 0.25), ind_history[-1])
    _calm = ind_history[max(0, ind_history.index(_calm) - 1)]                 # the last row before the gap opens
    _calm_gap = max(_gap(r) for r in ind_history[:ind_history.index(_calm) + 1])
    _storm = next((r for r in ind_history if _gap(r) >= 3.0), None)
    mo.vstack([
        mo.md(f"""
        ## The phase change

        Every {ind_card['recipe']['train']['eval_every']} steps the training script measured the model on a
        fixed probe ({_p['batch']} random sequences of {_p['period']} tokens, each written twice) and saved
        the numbers with the model. Here they are.
        """),
        mo.ui.altair_chart(history_charts(ind_history, "shipped model"), chart_selection=False,
                           legend_selection=False),
        mo.md(f"Until step {_calm['step']} the repeat is barely easier than the first copy (its loss at most "
              f"{_calm_gap:.2f} nats lower)"
              + (f"; {_storm['step'] - _calm['step']} steps later, at step {_storm['step']}, it is "
                 f"{_storm['loss_first'] - _storm['loss_repeat']:.2f} nats lower" if _storm else "") +
              f". The repeat's loss first fell a full nat below the first copy's at step **{_ch['loss_step']}**; "
              f"layer {_h[0]}, head {_h[1]} "
              f"(the thick line), the head with the highest score at the end, first reached an induction "
              f"score of 0.5 at step **{_ch['score_step']}**"
              + (f" (at step {_b['step']} it was {_b['induction'][_h[0]][_h[1]]:.2f})" if _b else "") +
              f". At the end: repeat {_end['loss_repeat']:.2f} nats, first copy {_end['loss_first']:.2f}, that "
              f"head's score {_end['induction'][_h[0]][_h[1]]:.2f}. Olsson et al. saw the same sudden change in "
              f"models trained on real text, in every model with at least two layers, and at the same moment the "
              f"in-context-learning score improved."),
    ])
    return


@app.cell
def _(live_training, mo, store, time):
    ind_data_dir = store.db_path().parent
    ind_run_dir = ind_data_dir / "induction" / "live"   # not in runs/: this toy must not join the model picker
    RUN_SECONDS = 75
    run_message, set_run_message = mo.state("")
    run_seed = mo.ui.number(start=0, stop=99_999, step=1, value=1, label="seed")

    def _start(_):
        try:
            info = live_training.launch(ind_data_dir, ind_run_dir, ["--seed", str(int(run_seed.value or 0)),
                                                                    "--time-limit", str(RUN_SECONDS)],
                                        entry="induction")
        except live_training.Busy as exc:
            set_run_message(f"Not started: {exc}.")
        else:
            kept = f" The previous run was kept: `{info['kept']}`." if info.get("kept") else ""
            set_run_message(f"Started at {time.strftime('%H:%M:%S')} with seed {int(run_seed.value or 0)} "
                            f"(process {info['pid']}).{kept}")
        return time.time()

    def _stop(_):
        set_run_message("Stopped: the rows measured so far are kept."
                        if live_training.stop_run(ind_data_dir, ind_run_dir) else
                        "No retraining run of this chapter is going on.")
        return time.time()

    run_start = mo.ui.button(label="▶ Train a new model", kind="success", on_click=_start)
    run_stop = mo.ui.button(label="■ Stop", kind="danger", on_click=_stop)
    run_poll = mo.ui.refresh(options=["2s"], default_interval="2s", label="update")
    return RUN_SECONDS, ind_data_dir, ind_run_dir, run_message, run_poll, run_seed, run_start, run_stop


@app.cell
def _(RUN_SECONDS, ind_card, mo, run_poll, run_seed, run_start, run_stop):
    mo.vstack([mo.md(f"""
    ### Watch it happen again

    The button trains a fresh model with the same recipe and the seed you choose, in a separate process
    (chapter 9's background runner: one thread, one run at a time on this server), for at most
    {RUN_SECONDS} seconds. It measures the probe every {ind_card['recipe']['train']['eval_every']} steps and
    this page redraws every 2 seconds. A different seed means different random weights and different
    training sequences: does the phase change come at the same step? Is it the same head?
    """), mo.hstack([run_seed, run_start, run_stop, run_poll], justify="start", align="center")])
    return


@app.cell
def _(ind_data_dir, ind_run_dir, live_training, run_poll, run_start, run_stop):
    run_poll.value, run_start.value, run_stop.value  # noqa: B018  (re-run on these)
    run_fingerprint = live_training.fingerprint(ind_data_dir, [ind_run_dir])
    return (run_fingerprint,)


@app.cell
def _(history_charts, ind_card, ind_data_dir, ind_history, ind_run_dir, live_training, mo, run_fingerprint,
      run_message, toy):
    run_fingerprint  # noqa: B018
    _holder = live_training.running(ind_data_dir)
    _ours = _holder is not None and _holder.get("folder") == str(ind_run_dir)
    _state, _rows, _final = toy.read_run(ind_run_dir)
    _recipe_steps = ind_card["recipe"]["train"]["steps"]
    if _state == "running" and not _ours:
        _state = "failed"  # no exit status and no process: it died without a word
    _parts = [mo.md({"none": "No retraining run yet.", "running": "Status: training…",
                     "finished": "Status: finished.", "stopped": "Status: stopped.",
                     "failed": "Status: the run ended with an error (see train.log in the run folder)."}[_state]
                    + " " + run_message())]
    if _holder is not None and not _ours:
        _parts.append(mo.callout(mo.md(f"Another training run is going on this server ({_holder['folder']}): one "
                                       "at a time. Start yours once it has ended."), kind="info"))
    if _rows:
        _last = _rows[-1]
        _parts.append(mo.md(f"Step {_last['step']:,} after {_last['elapsed']:.0f} s: repeat {_last['loss_repeat']:.2f} "
                            f"nats, first copy {_last['loss_first']:.2f}."))
        _parts.append(mo.ui.altair_chart(history_charts(_rows, "your run"), chart_selection=False,
                                         legend_selection=False))
        if _state in ("finished", "stopped"):
            _mine, _shipped = toy.phase_change(_rows), toy.phase_change(ind_history)
            _say = lambda c: (f"step {c['score_step']} (layer {c['head'][0]}, head {c['head'][1]})"  # noqa: E731
                              if c["score_step"] is not None else "no head reached 0.5")
            _parts.append(mo.md(f"A head's induction score first reached 0.5 at: your run, {_say(_mine)}; the shipped "
                                f"model, {_say(_shipped)}. "
                                + {"done": "", "time limit": f"(Your run reached its time limit at step "
                                                             f"{_final.get('step'):,} of {_recipe_steps:,}.)",
                                   "stopped": f"(You stopped it at step {_final.get('step'):,}.)"}.get(
                                       _final.get("final"), "")))
    mo.vstack(_parts)
    return


@app.cell
def _(ind_cfg, mo):
    mo.md(r"""
    ## Switch heads off

    A score says where a head looks, not what the model needs. Tick heads to switch them off (their
    output $z_h$ set to 0 through the hook `blocks.{i}.attn.z`, as in chapter 5) and watch the loss on
    your sequence.
    """)
    return


@app.cell
def _(ind_cfg, mo, seq_scores):
    head_off = mo.ui.array([mo.ui.checkbox(label=f"L{i}H{h}", value=False)
                            for i in range(ind_cfg.n_layers) for h in range(ind_cfg.n_heads)], label="heads off")
    _strong = [(i, h) for i in range(ind_cfg.n_layers) for h in range(ind_cfg.n_heads)
               if seq_scores.induction[i, h] >= 0.3]
    _hint = ", ".join(f"L{i}H{h} ({seq_scores.induction[i, h].item():.2f})" for i, h in _strong) or "none"
    mo.vstack([mo.md(f"Heads to switch off. Heads with an induction score of 0.3 or more on your sequence: {_hint}."),
               *[mo.hstack([mo.md(f"layer {i}:"), *[head_off[i * ind_cfg.n_heads + h] for h in range(ind_cfg.n_heads)]],
                           justify="start", gap=1) for i in range(ind_cfg.n_layers)]], gap=0.25)
    return (head_off,)


@app.cell
def _(code_panel, head_off, ind, ind_cfg, ind_model, loss_chart, loss_rows, mo, period, score_grid, seq_ids,
      seq_losses, seq_scores, seq_text):
    off = [(i // ind_cfg.n_heads, i % ind_cfg.n_heads) for i, on in enumerate(head_off.value) if on]
    if not off:
        _out = mo.md("All heads are on. Tick one above.")
    else:
        _cut = ind.ablate(ind_model, seq_ids, period, off, before=seq_scores)
        _after = ind.per_position_loss(ind_model, seq_ids, off)
        _rows = (loss_rows(seq_losses[0], seq_text, period, "every head on") +
                 loss_rows(_after[0], seq_text, period, "ticked heads off"))
        _names = ", ".join(f"L{l}H{h}" for l, h in off)
        _out = mo.vstack([
            mo.md(f"Without {_names}: loss on the repeat **{_cut.loss_before[1]:.2f} → {_cut.loss_after[1]:.2f}** "
                  f"nats ({_cut.repeat_loss_rise:+.2f}); on the first copy {_cut.loss_before[0]:.2f} → "
                  f"{_cut.loss_after[0]:.2f}; "
                  f"in-context-learning score {_cut.icl_before:+.2f} → {_cut.icl_after:+.2f}."),
            mo.ui.altair_chart(loss_chart(_rows, f"loss per position, with and without {_names}", color="model"),
                               chart_selection=False, legend_selection=False),
            mo.ui.altair_chart(score_grid(_cut.after.induction, f"induction scores without {_names}"),
                               chart_selection=False, legend_selection=False),
        ])
    mo.vstack([_out, mo.accordion({"ablate (glassformer/analysis/induction.py)":
                                   code_panel(ind.ablate, highlight="heads_off")})])
    return


@app.cell
def _(ind, ind_model, period, seq_ids, seq_scores):
    comp = ind.composition_test(ind_model, seq_ids, period, seq_scores)
    return (comp,)


@app.cell
def _(comp, heads, ind_card, ind_cfg, ind_model, mo, period, seq_scores):
    def composition_svg(c, n_heads):
        """Two rows of heads; an arrow from the previous-token head up to the induction head."""
        w, gap = 92, 14
        x = lambda h: 20 + h * (w + gap)  # noqa: E731
        parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="720" height="200" font-family="sans-serif" '
                 'font-size="13">',
                 '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
                 '<path d="M0,0 L10,4 L0,8 z" fill="#7c3aed"/></marker></defs>']
        for layer, y in ((1, 20), (0, 140)):
            for h in range(n_heads):
                role = ("induction" if (layer, h) == c.induction_head else
                        "previous token" if (layer, h) == c.previous_head else
                        "control" if (layer, h) == c.control_head else "")
                fill = {"induction": "#ede9fe", "previous token": "#ffedd5", "control": "#e2e8f0"}.get(role, "#ffffff")
                parts.append(f'<rect x="{x(h)}" y="{y}" width="{w}" height="44" rx="6" fill="{fill}" '
                             f'stroke="#64748b"/>')
                parts.append(f'<text x="{x(h) + w / 2}" y="{y + 18}" text-anchor="middle">L{layer}H{h}</text>')
                if role:
                    parts.append(f'<text x="{x(h) + w / 2}" y="{y + 35}" text-anchor="middle" font-size="11" '
                                 f'fill="#475569">{role}</text>')
        p, i = c.previous_head[1], c.induction_head[1]
        parts.append(f'<line x1="{x(p) + w / 2}" y1="140" x2="{x(i) + w / 2}" y2="68" stroke="#7c3aed" '
                     'stroke-width="2.5" marker-end="url(#arrow)"/>')
        for n, line in enumerate(["layer 0's previous-token head writes", '"the token before me" into every position;',
                                  "the induction head's keys in layer 1", "are computed from it"]):
            parts.append(f'<text x="{x(n_heads) + 10}" y="{84 + 17 * n}" font-size="12" fill="#7c3aed">{line}</text>')
        parts.append("</svg>")
        return "".join(parts)

    _m = ind_card["measured"]["composition"]
    _prof = heads.pattern_profile(seq_scores.patterns[comp.previous_head[0]])   # {measure: (H,)}
    _p, _i = comp.previous_head, comp.induction_head
    _collapse = comp.score_without_previous < comp.score / 2
    _rel = (comp.score_without_control - comp.score) / comp.score
    _said = ("Nothing in layer 1 was touched, yet its induction score collapses when the previous-token head is off"
             if _collapse else
             f"On this sequence its induction score does not collapse when L{_p[0]}H{_p[1]} is off. With only "
             f"{period} tokens per copy, a head that spreads its weight over the few tokens before it gives the "
             f"previous one a large share too, so the highest previous-token score need not belong to the head "
             f"the induction head reads: switch layer-0 heads off one at a time above and watch "
             f"L{_i[0]}H{_i[1]}'s score")
    _said += (". Without the control head it " + ("barely moves" if abs(_rel) < 0.1 else
                                                 f"{'falls' if _rel < 0 else 'rises'} by {abs(_rel):.0%}") + ".")
    _blurry = (f"""
        The previous-token head here is a blurry one: on your sequence
        L{_p[0]}H{_p[1]} gives the token just before only
        {_prof['previous'][_p[1]].item():.0%} of its weight and reaches
        {_prof['distance'][_p[1]].item():.1f} tokens back on average (`heads.pattern_profile`,
        chapter 5): ALiBi lowers this head's score by
        {ind_model.alibi_slopes[_p[1]].item():g} per token of distance, which keeps its
        weight on the last few tokens without singling out one. That is enough: "the tokens just before me"
        narrows down the earlier occurrence well enough for the induction head to find it.
        """ if _collapse else "")
    mo.vstack([
        mo.md(f"""
        ## The two heads work as a pair: the composition test

        To attend from an A to the token *after* the earlier A, the induction head needs keys that say
        "the token before me was A". A token's own vector does not know its neighbour; only a head of an
        earlier layer can move that fact into the position, a **previous-token head**. The induction
        head's keys are then computed from what that head wrote into the residual stream: one head's
        output feeds another's keys, which Elhage et al. (2021) call **K-composition**.

        The test: switch off the layer-0 head with the highest previous-token score and measure the
        layer-1 induction head's score again. As a control, switch off another layer-0 head instead (the one
        that looks least at the previous token).
        """),
        mo.Html(composition_svg(comp, ind_cfg.n_heads)),
        mo.md(f"""
        | on your sequence | L{comp.induction_head[0]}H{comp.induction_head[1]}'s induction score | loss on the repeat |
        |:---|---:|---:|
        | every head on | {comp.score:.3f} | {comp.repeat_loss:.2f} |
        | without L{comp.previous_head[0]}H{comp.previous_head[1]} (previous token) | {comp.score_without_previous:.3f} | {comp.repeat_loss_without_previous:.2f} |
        | without L{comp.control_head[0]}H{comp.control_head[1]} (control) | {comp.score_without_control:.3f} | {comp.repeat_loss_without_control:.2f} |

        {_said} The training script ran the same test on 64 sequences: {_m['score']:.3f} →
        {_m['score_without_previous']:.3f} without the previous-token head, {_m['score_without_control']:.3f}
        without the control.
        {_blurry}"""),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## On a model trained on text

    The same scores work on any model: write a text twice and look for heads that attend from each token
    of the second copy to the token that followed it in the first copy. Below, the chosen model reads three
    repeated texts: yours, a passage of held-out Shakespeare, and random tokens of its vocabulary
    (the last one can only be predicted by copying).
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, held_out_text, ind, mo, picker, text, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    lm = loaded.model.eval()
    half = min(lm.config.n_ctx // 2, 128)
    prepared = common.prepare(loaded, text.value, max_tokens=half, why="two copies of it must fit in the context")
    _mine, _n = ind.repeat_text(prepared.ids, 2 * half) if len(prepared.ids) >= 2 else ind.repeat_text(
        prepared.ids * 2, 2 * half)
    _shake = loaded.tokenizer.encode(held_out_text()[:4 * half], errors="skip") if loaded.is_char_level else \
        loaded.tokenizer.encode(held_out_text()[:4 * half])
    _shake_ids, _m = ind.repeat_text(_shake[:half], 2 * half)
    probes = {"your text": (torch.tensor([_mine]), _n),
              "held-out Shakespeare": (torch.tensor([_shake_ids]), _m),
              "random tokens": (ind.repeated_random(lm.config.vocab_size, half, seed=0, batch=4), half)}
    probe_results = {}
    for _name, (_ids, _period) in probes.items():
        _scores = ind.head_scores(lm, _ids, _period)
        probe_results[_name] = (_scores, ind.halves(ind.per_position_loss(lm, _ids), _period), _period)
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return lm, loaded, probe_results


@app.cell
def _(ind, ind_card, lm, loaded, matrix_heatmap, mo, probe_results):
    _rows = []
    for _name, (_s, (_first, _repeat), _n) in probe_results.items():
        _b = _s.best("induction")
        _u = ind.uniform_induction(2 * _n, _n)
        _rows.append(f"| {_name} | {_n} | L{_b[0]}H{_b[1]} | {_s.induction[_b].item():.3f} | {_u:.3f} | "
                     f"{_first:.2f} | {_repeat:.2f} | {_repeat - _first:+.2f} |")
    _yours, (_f, _r), _ = probe_results["your text"]
    _rnd, (_rf, _rr), _rn = probe_results["random tokens"]
    _best_r = _rnd.best("induction")
    _ratio = _rnd.induction[_best_r].item() / ind.uniform_induction(2 * _rn, _rn)
    _easier, _stands = _rr < _rf - 0.5, _ratio > 5
    _toy_step = ind_card["history"]["first_step_best_head_reached_0.5"]
    _verdict = (f"On random tokens the best head of **{loaded.name}**, L{_best_r[0]}H{_best_r[1]}, puts "
                f"{_rnd.induction[_best_r].item():.1%} of its weight where an induction head would, {_ratio:.1f}× "
                f"what spreading evenly would give, and the repeat's loss is {_rr:.2f} nats against {_rf:.2f} for the "
                f"first copy. " +
                ("This model has a head that copies: the repeat got easier." if _easier and _stands else
                 "The repeat got easier, but no single head stands out as an induction head by this score."
                 if _easier else
                 "A head attends where an induction head would, yet the repeat is not much easier than the first "
                 "copy." if _stands else
                 "This model does not copy: the repeat is no easier than the first copy, and no head stands out "
                 "as an induction head. Nothing guarantees one: its training did not produce it, while the toy "
                 f"above, which had nothing but repeats to learn from, had a head scoring 0.5 after {_toy_step:,} "
                 "steps."
                 if _rr >= _rf - 0.1 else
                 "The repeat got a little easier, but no head stands out as an induction head."))
    mo.vstack([
        mo.md("| repeated text | tokens per copy | best head | its induction score | no preference | loss, first copy "
              "| loss, repeat | in-context score |\n|:---|---:|:---|---:|---:|---:|---:|---:|\n" + "\n".join(_rows)),
        mo.md(_verdict),
        mo.ui.altair_chart(matrix_heatmap(_yours.induction.numpy(), [str(i) for i in range(lm.config.n_layers)],
                                          [str(h) for h in range(lm.config.n_heads)],
                                          title=f"{loaded.name}: induction scores on your text, repeated",
                                          row_title="layer", col_title="head", value_title="score",
                                          scheme="purples", domain=(0, 1),
                                          cell=max(14, min(44, 480 // lm.config.n_heads))),
                           chart_selection=False, legend_selection=False),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Emergent abilities: an open question

    Wei et al. (2022, "Emergent Abilities of Large Language Models") collected tasks on which language
    models score near chance up to some scale of training compute and well above it beyond: abilities
    that seem to appear suddenly. They call such an ability an **emergent ability**. Schaeffer et al.
    (2023, "Are Emergent Abilities of Large Language Models a Mirage?") argued that many of these jumps come from how
    the tasks are scored. Exact match of a $k$-token answer needs every token right: if each is right
    with probability $p$, independently, the score is $p^k$, which stays near 0 while $p$ grows and then
    climbs steeply as $p$ nears 1. Scored with continuous measures instead, they found, the same models
    improve smoothly and predictably.

    The question is still argued over. What this page can do is measure both kinds of metric on the
    same models: character models of TinyShakespeare trained here, from a few thousand parameters to
    the course model, placed by their **training compute** (about 6 × parameters × training tokens).
    The task: given the text before a long word and the word's first 3 letters, continue it. Per
    character: the loss and whether the top choice is right; for the whole continuation: whether the
    first $k$ characters are *all* right (exactly what greedy decoding would write).
    """)
    return


@app.cell
def _(code_panel, emergence, held_out_text, mo):
    rungs = emergence.ladder()
    continuations = emergence.word_continuations(held_out_text(), **emergence.CONTINUATIONS)
    rung_scores = emergence.ladder_scores()   # continuation_scores of each model on these continuations
    k_slider = mo.ui.slider(1, continuations.k, step=1, value=continuations.k,
                            label="characters that must all be right (k)",
                            show_value=True)
    _ex = continuations.texts[0]
    mo.vstack([mo.md(f"{len(continuations.texts):,} continuations from the held-out tenth of TinyShakespeare; the "
                     f"first: …`{_ex[0][-24:].replace(chr(10), '↵')}` → `{_ex[1]}` (↵ is a new line)."),
               mo.accordion({"continuation_scores (glassformer/analysis/emergence.py)":
                             code_panel(emergence.continuation_scores, highlight=("argmax", "all(1)"))}),
               k_slider])
    return k_slider, rung_scores, rungs


@app.cell
def _(SVG, alt, ind_card, k_slider, mo, rung_scores, rungs):
    _k = int(k_slider.value)
    _ladder = ind_card["ladder"]
    _rows = [{"model": r.name, "compute": r.compute, "parameters": r.parameters,
              "loss": rung_scores[r.name]["loss"], "accuracy": rung_scores[r.name]["accuracy"],
              "exact": rung_scores[r.name]["exact"][_k - 1],
              "power": rung_scores[r.name]["accuracy"] ** _k} for r in rungs]
    _x = alt.X("compute:Q", scale=alt.Scale(type="log"), title="training compute (FLOPs, log scale)",
               axis=alt.Axis(format=".0e"))
    _tip = ["model:N", alt.Tooltip("parameters:Q", format=","), alt.Tooltip("compute:Q", format=".2e"),
            alt.Tooltip("loss:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f"),
            alt.Tooltip("exact:Q", format=".3f")]
    _loss = alt.Chart(alt.Data(values=_rows)).mark_line(point=True, color="#0ea5e9").encode(
        x=_x, y=alt.Y("loss:Q", title="per-character loss (nats)", scale=alt.Scale(zero=False)), tooltip=_tip,
    ).properties(width=300, height=220, title="per-character loss")
    _exact = alt.Chart(alt.Data(values=_rows)).mark_line(point=True, color="#dc2626").encode(
        x=_x, y=alt.Y("exact:Q", title=f"exact match of {_k} characters", scale=alt.Scale(domain=[0, 1])),
        tooltip=_tip).properties(width=300, height=220, title=f"all {_k} characters right")
    _table = "\n".join(f"| {r['model']} | {r['parameters']:,} | {r['compute']:.1e} | {r['loss']:.3f} | "
                       f"{r['accuracy']:.1%} | {r['exact']:.1%} | {r['power']:.1%} |" for r in _rows)
    _small, _big = _rows[0], _rows[-1]
    _steady = all(b["loss"] < a["loss"] for a, b in zip(_rows, _rows[1:]))
    _flat = next((i for i, r in enumerate(_rows) if r["exact"] >= 0.01), len(_rows))   # models below 1%
    _kmax = len(rung_scores[rungs[0].name]["exact"])
    _below = [sum(rung_scores[r.name]["exact"][j] < 0.01 for r in rungs) for j in range(_kmax)]  # per k
    _fell = _small["loss"] - _rows[_flat - 1]["loss"] if _flat > 0 else 0.0
    if _flat == 0:
        _shape = f"Even the smallest model gets {_small['exact']:.1%} of them all right at this $k$."
    elif _flat == len(_rows):
        _shape = f"No model gets even 1% of them all right at this $k$."
    else:
        _shape = (f"Exact match stays below 1% for the first {_flat} model{'s' if _flat > 1 else ''}, over which the "
                  f"loss already falls {_fell:.2f} of the {_small['loss'] - _big['loss']:.2f} nats it falls in all, "
                  f"and then climbs to {_big['exact']:.1%} for the {_big['model']}.")
    _first_acc = rung_scores[_big["model"]]["exact"][0]                     # the first character's accuracy
    if _big["exact"] > _big["power"]:
        _why = "higher: a word's letters are not independent, once the first ones are right the rest are easier"
    elif _first_acc < _big["accuracy"]:
        _why = (f"lower: the first character after the given letters is harder than the average one (right "
                f"{_first_acc:.1%} of the time, against {_big['accuracy']:.1%} over all {_kmax} positions)")
    else:
        _why = "lower"
    mo.vstack([
        mo.ui.altair_chart(alt.hconcat(_loss, _exact).properties(usermeta=SVG), chart_selection=False,
                           legend_selection=False),
        mo.md("| model | parameters | compute | loss per character | characters right | all "
              f"{_k} right | (characters right)^{_k} |\n|:---|---:|---:|---:|---:|---:|---:|\n" + _table),
        mo.md(f"From the model with the least training compute to the one with the most, the per-character loss "
              f"falls from {_small['loss']:.2f} "
              f"to {_big['loss']:.2f} nats, "
              + ("lower at every step up the ladder" if _steady else "though not at every step up the ladder") +
              f", and the share of characters right goes from {_small['accuracy']:.0%} to {_big['accuracy']:.0%}. "
              f"{_shape} The last column is what $p^k$ would give if every character were right with the same "
              f"probability $p$ (the share of characters right), independently of the others. For the "
              f"{_big['model']} the measured exact match is {_big['exact']:.1%} against {_big['power']:.1%}, "
              f"{_why}. Move $k$: at $k = 1$ the exact match is only the first character's accuracy. "
              f"Models (of {len(_rows)}) that get less than 1% "
              f"exactly right: " + ", ".join(f"{_n} for $k = {_j}$" for _j, _n in enumerate(_below, 1))
              + ("; the larger $k$, the longer the curve stays flat" if all(a <= b for a, b in zip(_below, _below[1:]))
                 else "") + ". The compute axis "
              f"mixes recipes: the {len(_ladder['models']) - 2} models named by width and layers (d16-L1 is width "
              f"16, one layer) share one ({_ladder['recipe']['steps']:,} steps each, only the size changes), the "
              f"draft and course models trained longer on recipes of their own."),
    ])
    return


@app.cell
def _(Question):
    questions = [
        Question("induction-rule", "A text contains '… Lady Capulet …' and the current token is 'Lady' again. "
                 "What does an induction head attend to, and which next token does it push up?",
                 ["The earlier 'Capulet' (the token after the earlier 'Lady'); it raises 'Capulet'",
                  "The earlier 'Lady'; it raises 'Lady'",
                  "The token just before the current one; it raises that token",
                  "The first token of the text; it raises nothing"], 0,
                 "It attends from the current token to the token that followed its earlier occurrence and copies "
                 "it into the prediction: A B … A → B."),
        Question("two-layers", "Why does an induction head need a head in an earlier layer?",
                 ["A single layer has too few parameters",
                  "Its keys must say which token came just before each position, and only an earlier head can "
                  "write that into the position",
                  "Softmax cannot put much weight on one position in the first layer",
                  "The MLP of the first layer has to run first"], 1,
                 "A token's own vector carries only what the input gave it: its token (and, in models with "
                 "position vectors, its position). 'The token before me was A' has to be moved in by a "
                 "previous-token head; switching that head off removes the induction score."),
        Question("icl-score", "A model's loss on the second copy of a repeated text is 0.4 nats and on the first "
                 "copy 4.1. Its in-context-learning score (late minus early) is…",
                 ["−3.7: it predicts much better after reading the pattern",
                  "+3.7: it predicts worse later in the context",
                  "0.1: the ratio of the two", "It cannot be computed without changing the weights"], 0,
                 "Late minus early: 0.4 − 4.1 = −3.7. Negative means the context helped. No weight changes: "
                 "that is the point of in-context learning."),
        Question("exact-match", "Each character is right with probability 0.5, independently. About how often "
                 "are all of 5 characters right?",
                 ["3%", "50%", "10%", "0.5%"], 0,
                 "0.5^5 = 1/32 ≈ 3%. At 0.9 per character it would be 59%: a smooth rise per character becomes "
                 "a steep one for the whole answer, the heart of Schaeffer et al.'s argument."),
        Question("ablation-control", "Switching off a layer-0 head drops a layer-1 head's induction score from 0.87 "
                 "to 0.01; switching off another layer-0 head leaves it at 0.84. What does the second "
                 "measurement add?",
                 ["It shows that the drop is not just what switching off any layer-0 head does",
                  "It proves the second head is useless",
                  "It measures the same thing again, for accuracy",
                  "It shows that layer 1 has no induction head"], 0,
                 "A control: the collapse follows the previous-token head specifically, not the loss of any "
                 "head of the earlier layer."),
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
