import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="9. Training", css_file="course.css")


@app.cell
def _():
    import math
    import time
    from pathlib import Path

    import altair as alt
    import marimo as mo
    import torch

    from glassformer import data as gdata
    from glassformer import precision, registry, train
    from glassformer.course import live_training
    from glassformer.analysis import training_lab
    from glassformer.course import common, store
    from glassformer.course.widgets import Question, code_panel, quiz, quiz_feedback, token_label
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    SVG = {"embedOptions": {"renderer": "svg", "actions": False}}
    return (Path, Question, SVG, alt, code_panel, common, gdata, live_training, math, mo, precision, quiz,
            quiz_feedback, registry, store, this, time, token_label, torch, train, training_lab)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    A freshly built model has random weights: it gives every next token roughly the same
    probability. **Training** is the loop that fixes this. Show the model some real text, measure how
    surprised it was by each token that really came next, nudge every weight a little in the
    direction that makes it less surprised, and repeat a few thousand times. Nothing else: no rules
    of grammar, no dictionary. Everything the course model "knows" came out of this loop.

    This chapter takes the loop apart on your text, then runs it for real: you start a training run
    from this page, watch its loss fall and its samples turn from noise into something like
    Shakespeare, and break it on purpose in several different ways.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text, token_label, training_lab):
    loaded, load_problem = common.load_chosen(picker.value)
    _fallback = "To be"
    prepared = common.prepare(loaded, text.value, fallback=_fallback)
    _short = None
    if len(prepared.ids) < 2:  # one token has no "next" token to predict
        _short = (f"Your text is a single token, which has no next token to predict; this uses “{_fallback}” "
                  "instead.")
        prepared = common.prepare(loaded, _fallback)
    # Whose text the page works on: the learner's, or the fallback (empty box, nothing known, one token).
    _yours = _short is None and (prepared.text != _fallback or text.value == _fallback)
    text_name = "your text" if _yours else f"the text “{_fallback}” (yours could not be used: see the note above)"
    ids = prepared.ids
    token_loss, token_p = training_lab.per_position_loss(loaded.model, ids)   # (T-1,), (T-1,)
    labels = [token_label(loaded.tokenizer.token_bytes(i)) for i in ids]
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice(), mo.callout(mo.md(_short), kind="warn") if _short else None]
              if n is not None]
    mo.vstack(_notes) if _notes else None
    return ids, labels, loaded, text_name, token_loss, token_p


@app.cell
def _(ids, labels, mo, text_name):
    _T = len(ids)
    _rows = []
    for _t in range(1, _T):
        _ctx = "".join(labels[max(0, _t - 24):_t])
        _rows.append({"example": _t, "context (what the model sees)": ("…" if _t > 24 else "") + _ctx,
                      "target (what it must predict)": labels[_t]})
    mo.vstack([mo.md(f"""
    ## One text, many examples: next-token prediction

    The task is always the same, **next-token prediction**: given the tokens so far, give a
    probability to every token that could come next. One stretch of text is therefore not one
    training example but many. {text_name[0].upper() + text_name[1:]} is {_T} tokens long, so it holds {_T - 1}
    examples:
    after the first token predict the second, after the first two predict the third, and so on. The
    first token is never a target (there is nothing before it to predict it from), and after the last
    one there is nothing left to predict.
    """),
        mo.ui.table(_rows, selection=None, pagination=True, page_size=8, show_download=False,
                    show_data_types=False, show_search=False, show_column_summaries=False,
                    label=f"the {_T - 1} (context → target) pairs in {text_name.split(' (')[0]}"),
    ])
    return


@app.cell
def _(code_panel, gdata, mo):
    mo.vstack([mo.md(r"""
    The model does not read these {T−1} examples one at a time. Thanks to the causal mask (chapter 4),
    position $t$ only ever sees positions $0 \ldots t$, so one forward pass over the text scores every
    prediction at once. The targets are simply the inputs shifted by one, which is exactly how the
    training loop builds its batches:
    """.replace("{T−1}", "T − 1")),
        code_panel(gdata.random_batch, highlight=("x = torch.stack", "y = torch.stack")),
        mo.md(r"""
    At every position the context is the *real* text, never what the model guessed a step
    earlier. That is **teacher forcing**: during training the model is always corrected before it
    can go astray, which is what lets all positions be trained in parallel. (When it generates text,
    chapter 8, there is no teacher: each token it picks becomes part of the next context.)
    """)])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## How wrong was it? Cross-entropy

    For each example the model gave some probability $p$ to the token that really came next. The
    loss of that example is

    $$\text{loss} = -\ln p_{\text{correct}}$$

    and the training loss is the mean of this over all examples. This is the **cross-entropy**. It
    only looks at the probability of the right answer: 0 when the model was certain and right,
    growing without limit as that probability goes to 0. Drag the slider:
    """)
    return


@app.cell
def _(loaded, mo):
    p_correct = mo.ui.slider(0.001, 1.0, step=0.001, value=0.25, label="P(correct token)", show_value=True,
                             full_width=False)
    p_correct
    return (p_correct,)


@app.cell
def _(SVG, alt, loaded, math, mo, p_correct):
    _p = p_correct.value
    _V = loaded.tokenizer.vocab_size
    _lo = min(0.001, 1 / _V)  # the slider's minimum, or the uniform guess of a large vocabulary
    _grid = sorted({*(i / 400 for i in range(1, 401)), *(_lo * 1.5 ** k for k in range(40) if _lo * 1.5 ** k < 1 / 400)})
    _top = math.ceil(-math.log(_lo) + 0.5)  # tall enough for both dots
    _curve = alt.Chart(alt.Data(values=[{"p": q, "loss": -math.log(q)} for q in _grid])).mark_line(
        color="#2563eb").encode(x=alt.X("p:Q", title="P(correct token)"),
                                y=alt.Y("loss:Q", title="loss = −ln p", scale=alt.Scale(domain=[0, _top], clamp=True)),
                                tooltip=[alt.Tooltip("p:Q", format=".3f"), alt.Tooltip("loss:Q", format=".3f")])
    _dot = alt.Chart(alt.Data(values=[{"p": _p, "loss": -math.log(_p), "what": "your slider"},
                                      {"p": 1 / _V, "loss": math.log(_V), "what": f"uniform guess (1/{_V})"}])
                     ).mark_point(filled=True, size=120).encode(
        x="p:Q", y="loss:Q", color=alt.Color("what:N", title=None, legend=alt.Legend(orient="top"),
                                             scale=alt.Scale(domain=["your slider", f"uniform guess (1/{_V})"],
                                                             range=["#dc2626", "#64748b"])),
        tooltip=["what:N", alt.Tooltip("p:Q", format=".4f"), alt.Tooltip("loss:Q", format=".3f")])
    mo.vstack([
        mo.ui.altair_chart(alt.layer(_curve, _dot).properties(width=560, height=220, title="cross-entropy of one example",
                                                              usermeta=SVG),
                           chart_selection=False, legend_selection=False),
        mo.md(f"At P(correct) = **{_p:.3f}** the loss is −ln {_p:.3f} = **{-math.log(_p):.3f}**. Halving the "
              f"probability always adds ln 2 = {math.log(2):.3f}, wherever you start. A model that knows nothing "
              f"spreads its probability evenly over its {_V:,} tokens and scores ln {_V:,} = "
              f"**{math.log(_V):.3f}** at every position: the loss a freshly initialized model starts near."),
    ])
    return


@app.cell
def _(SVG, alt, code_panel, labels, loaded, mo, text_name, token_loss, token_p, torch, train):
    _rows = []
    for _t in range(len(token_loss)):
        _rows.append({"key": f"{_t:04d} {labels[_t + 1]}", "target": labels[_t + 1],
                      "context": ("…" if _t > 11 else "") + "".join(labels[max(0, _t - 11):_t + 1]),
                      "p": round(token_p[_t].item(), 4), "loss": round(token_loss[_t].item(), 4)})
    _chart = alt.Chart(alt.Data(values=_rows)).mark_bar().encode(
        x=alt.X("key:N", sort=None, title="target token (position by position)",
                axis=alt.Axis(labelExpr="slice(datum.label, 5)", labelAngle=0, labelFont="monospace",
                              labelOverlap=True)),
        y=alt.Y("loss:Q", title="loss = −ln p"),
        color=alt.Color("loss:Q", scale=alt.Scale(scheme="reds"), legend=None),
        tooltip=[alt.Tooltip("context:N", title="context (end)"), alt.Tooltip("target:N"),
                 alt.Tooltip("p:Q", title="P(target)", format=".4f"), alt.Tooltip("loss:Q", format=".4f")],
    ).properties(width=640, height=200, title=f"{loaded.name}: loss at each position of {text_name.split(' (')[0]}",
                 usermeta=SVG)
    _worst = max(range(len(_rows)), key=lambda i: _rows[i]["loss"])
    _best = min(range(len(_rows)), key=lambda i: _rows[i]["loss"])
    _mean = token_loss.mean().item()

    def _tail(row):  # the last 12 characters of the context, "…" when there was more before them
        ctx = row["context"]
        return ctx if len(ctx) <= 12 else "…" + ctx[-12:]

    mo.vstack([
        mo.md(f"Now the real model on {text_name.split(' (')[0]}. Each bar is one example: the loss at that position. "
              "Hover a bar for its context and the probability the model gave the right token."),
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
        mo.md(f"Mean over the {len(_rows)} examples: **{_mean:.3f}** (a uniform guess would score "
              f"{torch.log(torch.tensor(float(loaded.tokenizer.vocab_size))).item():.3f}). Easiest: "
              f"`{_rows[_best]['target']}` after “{_tail(_rows[_best])}” (p = {_rows[_best]['p']:.3f}, "
              f"loss {_rows[_best]['loss']:.3f}); hardest: `{_rows[_worst]['target']}` after "
              f"“{_tail(_rows[_worst])}” (p = {_rows[_worst]['p']:.4f}, loss {_rows[_worst]['loss']:.3f})."),
        code_panel(train.loss_fn, note="The training loss is this mean. The per-position losses behind the chart "
                   "come from the same `F.cross_entropy` call with `reduction=\"none\"` (next panel)."),
    ])
    return


@app.cell
def _(code_panel, mo, train, training_lab):
    _live_opt, _course_opt = train.TRAIN_PRESETS["live"].optimizer, train.TRAIN_PRESETS["course"].optimizer
    _which = (f"(The live run below uses `{_live_opt}`. The shipped course model was trained with "
              f"`{_course_opt}`: Muon, another optimizer, for its blocks' weight matrices and AdamW for the "
              f"rest; see `glassformer/optim.py`.)" if (_live_opt, _course_opt) == ("adamw", "muon") else "")
    mo.vstack([
        code_panel(training_lab.per_position_loss, highlight="F.cross_entropy"),
        mo.md(r"""
    ## Nudging the weights: backpropagation and AdamW

    The loss is one number computed from the text and from every weight in the model. Calculus
    tells us, for each weight, how much the loss would change if that weight moved a tiny bit: its
    gradient. **Backpropagation** computes all of these at once by walking the computation backwards
    from the loss, applying the chain rule at every operation. PyTorch records the forward pass and
    does this for us: `loss.backward()`.

    The optimizer then moves every weight a small step downhill, against its gradient. How big the
    steps are is set by the **learning rate**. **AdamW** is the most widely used optimizer for
    Transformers: for each weight it keeps a running average of its gradient (momentum) and of the
    gradient's square, and steps by the learning rate times the first divided by the square root of
    the second. That ratio is at most about 1 whatever the gradient's scale: a weight whose gradient
    keeps pointing the same way moves by about the learning rate per step, one whose gradient keeps
    flipping sign moves much less. It also shrinks weights slightly toward zero at every step
    (weight decay; here only the weight matrices and the token embeddings, not biases, norms' gains
    or position tables). Before the step, *gradient clipping* (`clip_grad_norm_`) scales the whole
    gradient down if its overall length exceeds `grad_clip`, so one unlucky batch cannot throw the
    weights far. One training step in the library:
    """),
        mo.md(_which) if _which else None,
        code_panel(train.train_step, highlight=("loss = loss_fn", "loss.backward()", "clip_grad_norm_",
                                                "run.optimizer.step()", "lr = lr_at")),
    ])
    return


@app.cell
def _(mo, train):
    live_cfg = train.TRAIN_PRESETS["live"]
    warmup_slider = mo.ui.slider(0, 400, step=10, value=100, label="warmup steps", show_value=True)
    steps_slider = mo.ui.slider(200, 3000, step=100, value=1000, label="total steps", show_value=True)
    mo.vstack([mo.md(r"""
    ## The learning-rate schedule: warmup, then cosine decay

    The learning rate is not constant. At the start the weights are random and the optimizer's running
    averages rest on only a few gradients, so big steps can throw the model somewhere it is slow to
    recover from: a **warmup** phase raises it linearly from almost 0 to its peak. Then it follows a **cosine decay** down to a
    small floor: large steps while there is a lot to learn, small careful ones at the end.

    $$\text{lr}(s) = \begin{cases} \text{lr}_{\max}\,\dfrac{s+1}{W} & s < W \\[2mm]
    \text{lr}_{\min} + \tfrac12\left(1+\cos\left(\pi\,\dfrac{s-W}{S-W}\right)\right)(\text{lr}_{\max}-\text{lr}_{\min}) & s \ge W
    \end{cases}$$

    with $W$ warmup steps and $S$ steps in all, numbered $0 \ldots S-1$. The chart is drawn by the
    library's own function, the one every training step calls:
    """), mo.hstack([warmup_slider, steps_slider], justify="start")])
    return live_cfg, steps_slider, warmup_slider


@app.cell
def _(code_panel, live_cfg, mo, steps_slider, train, warmup_slider):
    import dataclasses as _dc

    _cfg = _dc.replace(live_cfg, warmup_steps=min(warmup_slider.value, steps_slider.value - 1),
                       max_steps=steps_slider.value)
    _rows = [{"step": s, "learning rate": train.lr_at(s, _cfg)} for s in range(0, _cfg.max_steps + 1,
                                                                              max(1, _cfg.max_steps // 300))]
    from glassformer.course.widgets import line_chart as _line

    _mid = _cfg.warmup_steps + (_cfg.max_steps - _cfg.warmup_steps) // 2
    mo.vstack([
        mo.ui.altair_chart(_line(_rows, "step", "learning rate", title="train.lr_at over a run", height=200),
                           chart_selection=False, legend_selection=False),
        mo.md((f"Step 0: {train.lr_at(0, _cfg):.2e}; first step after warmup (step {_cfg.warmup_steps}): "
               if _cfg.warmup_steps else "No warmup: step 0 already uses the peak, ") +
              f"{train.lr_at(_cfg.warmup_steps, _cfg):.2e} (`lr`); " +
              (f"halfway through the decay (step {_mid}): {train.lr_at(_mid, _cfg):.2e}; "
               if _cfg.max_steps - _cfg.warmup_steps >= 4 else "warmup fills almost the whole run, no room to decay; ") +
              f"last step (step {_cfg.max_steps - 1}): "
              f"{train.lr_at(_cfg.max_steps - 1, _cfg):.2e}. The curve ends at the floor, `min_lr` = "
              f"{_cfg.min_lr:.2e}, at step {_cfg.max_steps}, once training is over. Peak and floor are the "
              f"live recipe's, trained below."),
        code_panel(train.lr_at),
    ])
    return


@app.cell
def _(Path, live_training, mo, registry, store, time):
    data_dir = store.db_path().parent
    runs_dir = registry.learner_runs_dir()
    live_dir = runs_dir / "live"
    experiments_dir = data_dir / "experiments"
    message, set_message = mo.state("")

    def _start(resume: bool):
        try:
            info = live_training.launch(data_dir, live_dir, live_training.LIVE_ARGS, resume=resume)
        except live_training.Busy as exc:
            set_message(f"Not started: {exc}.")
        else:
            registry.load_model.cache_clear()  # the picker must load the new weights of runs/live, not cached ones
            kept = (f" Your previous run was kept, not deleted: `{info['kept']}`." if info.get("kept") else "")
            set_message(f"{'Resumed' if resume else 'Started'} at {time.strftime('%H:%M:%S')}: "
                        f"`glassformer train {' '.join(info['args'])}` (process {info['pid']}).{kept}")
        return time.time()

    def _stop(_):
        holder = live_training.running(data_dir)
        if holder is None:
            set_message("No run is going on.")
        else:
            done = live_training.stop(data_dir)
            saved = (Path(holder["folder"]) / "checkpoint.safetensors").exists()
            set_message(f"Stopped {Path(holder['folder']).name} (process {holder['pid']})" +
                        ((": it saved a checkpoint at a step boundary." if saved else ": it ended before its "
                          "first checkpoint.") if done else ": still ending…"))
        return time.time()

    start_button = mo.ui.button(label="▶ Start a new run", kind="success", on_click=lambda _: _start(False))
    stop_button = mo.ui.button(label="■ Stop", kind="danger", on_click=_stop)
    resume_button = mo.ui.button(label="⟳ Resume the stopped run", on_click=lambda _: _start(True))
    poll = mo.ui.refresh(options=["2s"], default_interval="2s", label="update")
    return (data_dir, experiments_dir, live_dir, message, poll, resume_button, start_button,
            stop_button)


@app.cell
def _(mo):
    runs_changed, set_runs_changed = mo.state(None)
    return runs_changed, set_runs_changed


@app.cell
def _(data_dir, experiments_dir, live_dir, live_training, poll, runs_changed, set_runs_changed):
    # Every 2 s: has any run started, ended or written a metric? Only then do the charts below redraw.
    poll.value  # noqa: B018
    _now = live_training.fingerprint(data_dir, [live_dir, *(experiments_dir / n.replace(" ", "-")
                                                            for n in live_training.EXPERIMENTS)])
    if _now != runs_changed():
        set_runs_changed(_now)
    return


@app.cell
def _(live_training, mo, poll, resume_button, start_button, stop_button, train):
    _cfg = train.TRAIN_PRESETS["live"]
    mo.vstack([mo.md(f"""
    ## Train a model, live

    The buttons start a real `glassformer train` run of the `live` recipe in a separate process:
    a {_cfg.model.n_layers}-layer character model (d = {_cfg.model.d_model}, context {_cfg.model.n_ctx}),
    batches of {_cfg.batch_size} windows, AdamW with peak lr {_cfg.lr:g} after {_cfg.warmup_steps} warmup
    steps, its cosine schedule fitted to {_cfg.time_budget:.0f} seconds of this machine's time. Every
    {_cfg.eval_interval} steps it measures the **validation loss** on a fixed sample of text it never
    trains on (windows from the last 10% of TinyShakespeare) and writes a sample of text; this page
    reads its `metrics.jsonl` every 2 seconds.
    The run uses one thread, so this page and everyone else's stay responsive, and only one run goes
    at a time on this server. Stop sends it Ctrl-C (SIGINT): it stops at a step boundary (a step in
    progress is finished, or undone if it was still computing), saves a **checkpoint**, and can be
    resumed from that step.
    """), mo.hstack([start_button, stop_button, resume_button, poll], justify="start", align="center")])
    return


@app.cell
def _(SVG, alt, data_dir, live_dir, live_training, message, mo, resume_button, runs_changed, start_button,
      stop_button):
    runs_changed(), start_button.value, stop_button.value, resume_button.value  # noqa: B018  (re-run on these)
    _holder = live_training.running(data_dir)
    _busy_other = _holder is not None and _holder.get("folder") != str(live_dir)
    live = live_training.view(live_dir, _holder is not None and not _busy_other)

    def loss_chart(view, title):
        rows = ([{"step": r["step"], "loss": r["train_loss"], "curve": "train (batch)"} for r in view.train] +
                [{"step": r["step"], "loss": r["val_loss"], "curve": "validation"} for r in view.evals])
        return alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
            x=alt.X("step:Q", axis=alt.Axis(format="d", tickMinStep=10)), y=alt.Y("loss:Q", title="loss (nats per token)", scale=alt.Scale(zero=False)),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=["train (batch)", "validation"], range=["#93c5fd", "#dc2626"])),
            tooltip=["curve:N", "step:Q", alt.Tooltip("loss:Q", format=".4f")],
        ).properties(width=600, height=240, title=title, usermeta=SVG)

    _state = {"none": "No run yet: press Start.", "running": "Status: running.", "finished": "Status: finished.",
              "stopped": ("Status: stopped, with a checkpoint; Resume continues it."
                          if (live_dir / "checkpoint.safetensors").exists() else
                          "Status: stopped before its first checkpoint; nothing to resume, start a new run."),
              "failed": "Status: failed."}[live.state]
    _parts = [mo.md(f"{_state} {message()}")]
    if _busy_other:
        _parts.append(mo.callout(mo.md(f"Another run is going on this server ({_holder['folder']}): "
                                       "one at a time."), kind="info"))
    if live.train or live.evals:
        _last = live.train[-1] if live.train else {}
        _first_val, _last_val = (live.evals[0]["val_loss"], live.evals[-1]["val_loss"]) if live.evals else (None, None)
        _parts.append(mo.ui.altair_chart(loss_chart(live, "live run: loss as it trains"),
                                         chart_selection=False, legend_selection=False))
        _facts = [f"step {_last.get('step', 0)}", f"train loss {_last.get('train_loss', float('nan')):.3f}",
                  f"{_last.get('tokens_per_s', 0):,} tokens/s on this machine's CPU",
                  f"{_last.get('elapsed', 0):.0f} s"]
        if _first_val is not None:
            _facts.append(f"validation loss {_first_val:.3f} at step {live.evals[0]['step']} → {_last_val:.3f} "
                          f"at step {live.evals[-1]['step']}")
        _parts.append(mo.md(" · ".join(_facts)))
        if live.evals:
            _shown = live.evals if len(live.evals) <= 5 else [live.evals[0], *live.evals[-4:]]
            _parts.append(mo.ui.table(
                [{"step": r["step"], "val loss": f"{r['val_loss']:.3f}",
                  "sample (↵ = newline)": r["sample"][:110].replace("\n", " ↵ ")} for r in _shown],
                selection=None, pagination=False, show_download=False, show_data_types=False, show_search=False,
                show_column_summaries=False, wrapped_columns=["sample (↵ = newline)"],
                label="what the model writes at each evaluation (temperature 0.8, top-k 40, after a newline): "
                      "the first one and the latest ones"))
    if live.state == "finished":
        _parts.append(mo.callout(mo.md(
            f"Done after {live.summary['steps']} steps in {live.summary['wall_time_s']:.0f} s. "
            + (f"The model kept is the one from the evaluation with the lowest validation loss (step "
               f"{live.summary['best_step']}" + (", the last one" if live.summary["best_step"] == live.summary["steps"]
                                                 else "") + "). " if "best_step" in live.summary else "") +
            f"Its validation loss on the whole validation split: **{live.summary['final_val_loss']:.3f}** "
            f"(training loss {live.summary['final_train_loss']:.3f}, on sampled windows). It is saved in `{live_dir}` "
            f"and is now in the model picker of every chapter you open or reload, so you can trace, sample and "
            f"dissect your own model."),
            kind="success"))
    if live.state == "failed":
        _parts.append(mo.callout(mo.md(f"The run failed: `{live.error}`"), kind="danger"))
    mo.vstack(_parts)
    return live, loss_chart


@app.cell
def _(live_training, mo, train):
    _base = live_training.EXPERIMENT_BASE
    _steps, _limit = _base[_base.index("--max-steps") + 1], _base[_base.index("--time-limit") + 1]
    # Each experiment's own flags, on top of the reference's: one flag and its value = one setting changed.
    _one = all(len(_a) == 2 for _n, (_w, _a) in live_training.EXPERIMENTS.items() if _n != "reference")
    _clipped = (train.TRAIN_PRESETS["live"].grad_clip > 0 and "--grad-clip" not in _base   # every run clips
                and not any("--grad-clip" in _a for _w, _a in live_training.EXPERIMENTS.values()))
    mo.md(rf"""
    ## Break it on purpose

    Most training problems show up in the loss curve long before anything else. Each button below
    starts a short run ({_steps} steps, or {_limit} seconds of training if that comes first) of the same
    model {"with one setting changed" if _one else "with a few settings changed"} (each run's flags are
    listed under the buttons), next to a *reference* run with the healthy recipe. Run the
    reference and one or two others and compare the curves (they stay here: runs are kept in your data
    folder).

    - *Learning rate too high*: each step overshoots the valley it is trying to go down, so the loss
      climbs instead of falling. Far too high, the weights and activations grow until the arithmetic
      overflows and the loss becomes `nan` ("not a number"); every step after that would only spread
      the `nan`, so train.py checks every step's loss (and every evaluation) and stops the run with a
      message that names the learning rate.{" Gradient clipping stays on in these runs, as in the "
      "reference, and cannot prevent it: it shortens the gradient, but AdamW's step is about the learning "
      "rate in size whatever the gradient's length." if _clipped else ""}
    - *Learning rate too low*: nothing is broken, the loss just creeps down: compute is wasted.
    - *No warmup*: the first updates come from an optimizer whose running averages hold only a
      handful of gradients, at full size; they can push a random model somewhere it is slow to leave.
    - *Overfitting*: with very little text the model can memorize it. The training loss keeps falling,
      the validation loss turns and rises: it is learning that text, not the language.
    """)
    return


@app.cell
def _(code_panel, experiments_dir, live_training, mo, time, train):
    exp_message, set_exp_message = mo.state("")

    def _launch(name):
        try:
            info = live_training.launch(experiments_dir.parent, experiments_dir / name.replace(" ", "-"),
                                        live_training.experiment_args(name))
        except live_training.Busy as exc:
            set_exp_message(f"Not started: {exc}.")
        else:
            set_exp_message(f"Started “{name}” at {time.strftime('%H:%M:%S')}: "
                        f"`glassformer train {' '.join(info['args'])}`")
        return time.time()

    experiment_buttons = mo.ui.dictionary({
        name: mo.ui.button(label=name, kind="neutral", tooltip=what, on_click=lambda _, n=name: _launch(n))
        for name, (what, _args) in live_training.EXPERIMENTS.items()})
    mo.vstack([mo.hstack(list(experiment_buttons.values()), justify="start"),
               mo.md(" · ".join(f"*{n}*: {w}" + (f" (`{' '.join(_a)}`)" if _a else "")
                                for n, (w, _a) in live_training.EXPERIMENTS.items())),
               code_panel(train.agree_to_stop, highlight=("math.isfinite", "raise FloatingPointError"),
                          note="The check that stops a diverged run, after every step:")])
    return exp_message, experiment_buttons


@app.cell
def _(SVG, alt, data_dir, exp_message, experiment_buttons, experiments_dir, live_training, loss_chart, mo,
      runs_changed):
    runs_changed(), experiment_buttons.value  # noqa: B018  (re-run on these)

    _oargs = live_training.EXPERIMENTS["overfitting"][1]
    _train_chars = int(_oargs[_oargs.index("--train-tokens") + 1])

    def _verdicts(vs):
        ref = vs.get("reference")
        ref_val = ref.evals[-1]["val_loss"] if ref and ref.evals else None
        out = []
        for name, v in vs.items():
            last = v.evals[-1] if v.evals else None
            where = f"{v.state}" + (f", step {last['step']}" if last else "")
            if name in ("lr too high", "lr far too high"):
                peak = max([r["train_loss"] for r in v.train] or [float("nan")])
                first = v.train[0]["train_loss"] if v.train else float("nan")
                if not v.train:
                    text = "no training loss logged yet"
                elif peak > first:
                    text = (f"the training loss went from {first:.2f} (step {v.train[0]['step']}) up to {peak:,.1f}"
                            + ": the steps overshoot" + ("; a loss that high means the weights have grown until the "
                                                        "logits are huge and the model is confidently wrong"
                                                        if peak > 2 * first else ""))
                else:
                    text = f"the training loss went from {first:.2f} (step {v.train[0]['step']}) to {v.train[-1]['train_loss']:.2f}"
                if v.error:
                    text += (f". Then the numbers overflowed and train.py stopped the run instead of training on "
                             f"garbage: *{v.error}*")
                elif last:
                    text += f"; validation loss {last['val_loss']:.3f} at the end"
            elif name == "lr too low":
                text = (f"validation loss {v.evals[0]['val_loss']:.3f} (step {v.evals[0]['step']}) → "
                        f"{last['val_loss']:.3f} (step {last['step']}): the steps are small, so it moves slowly"
                        if last else "no evaluation yet")
            elif name == "no warmup":
                same = next((r for r in (ref.evals if ref else []) if last and r["step"] == last["step"]), None)
                if last and same:
                    gap = last["val_loss"] - same["val_loss"]
                    text = (f"validation loss {last['val_loss']:.3f} at step {last['step']}, the reference "
                            f"{same['val_loss']:.3f} at the same step: " +
                            (f"{gap:.2f} worse; the rough start cost more than the later steps could win back"
                             if gap > 0.05 else f"{-gap:.2f} better: this time the rough start did no lasting harm"
                             if gap < -0.05 else "within 0.05, so here warmup made little difference"))
                else:
                    text = (f"validation loss {last['val_loss']:.3f} at step {last['step']}; run the reference "
                            "to compare" if last else "no evaluation yet")
            elif name == "overfitting":
                if last and v.train:
                    best = min(v.evals, key=lambda r: r["val_loss"])
                    text = (f"train loss {v.train[-1]['train_loss']:.3f}, validation {last['val_loss']:.3f} "
                            f"(gap {last['val_loss'] - v.train[-1]['train_loss']:.2f}); " +
                            (f"validation was lowest at step {best['step']} ({best['val_loss']:.3f}) and rose "
                             f"after: it is memorizing its {_train_chars:,} characters, not learning English"
                             if best is not last else "validation has not started to rise yet"))
                else:
                    text = "no evaluation yet"
            else:
                text = f"validation loss {last['val_loss']:.3f}" if last else "no evaluation yet"
            if name not in ("reference", "no warmup") and ref_val is not None and last:
                text += f" (reference: {ref_val:.3f})"
            out.append(f"**{name}** ({where}): {text}")
        return out

    _holder = live_training.running(data_dir)
    views = {}
    for _name in live_training.EXPERIMENTS:
        _folder = experiments_dir / _name.replace(" ", "-")
        _v = live_training.view(_folder, _holder is not None and _holder.get("folder") == str(_folder))
        if _v.state != "none":
            views[_name] = _v
    _parts = [mo.md(exp_message())] if exp_message() else []
    if _holder is not None and not str(_holder.get("folder", "")).startswith(str(experiments_dir)):
        _parts.append(mo.callout(mo.md("The live run above is going: one run at a time on this server."), kind="info"))
    if views:
        _rows = [{"step": r["step"], "training loss": r["train_loss"], "run": n} for n, v in views.items()
                 for r in v.train]
        _names = list(live_training.EXPERIMENTS)
        _palette = ["#111827", "#dc2626", "#db2777", "#2563eb", "#16a34a", "#7c3aed"]
        _top = 6.0  # a diverged run's loss reaches millions: draw it off the top, its value stays in the tooltip
        _chart = alt.Chart(alt.Data(values=_rows)).mark_line(point=True).encode(
            x="step:Q", y=alt.Y("training loss:Q", scale=alt.Scale(domain=[0, _top], clamp=True)),
            color=alt.Color("run:N", title=None, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=_names, range=_palette)),
            tooltip=["run:N", "step:Q", alt.Tooltip("training loss:Q", format=".4f")],
        ).properties(width=600, height=260, title=f"training loss of each experiment (above {_top:g}: drawn at the top edge)", usermeta=SVG)
        _parts.append(mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False))
        _parts.append(mo.md("\n".join(f"- {line}" for line in _verdicts(views))))
        if "overfitting" in views and views["overfitting"].evals:
            _parts.append(mo.ui.altair_chart(loss_chart(views["overfitting"], "overfitting: train vs validation"),
                                             chart_selection=False, legend_selection=False))
    else:
        _parts.append(mo.md("*No experiment has run yet on this server.*"))
    mo.vstack(_parts)

    return


@app.cell
def _(mo, precision, train):
    _cap = precision.cpu_capability()
    mo.md(f"""
    ## Bigger batches, fewer bits, safe stops

    The **batch size** is how many windows one step learns from.

    ### Batch size and gradient accumulation

    Each step averages the gradient over a batch of windows: bigger batches give a
    less noisy direction, at the cost of memory. When a batch does not fit, **gradient accumulation**
    runs it as several micro-batches, adding up their gradients (each loss divided by the number of
    micro-batches) and stepping the optimizer once. On the same windows the result is the same step as
    the big batch, up to floating-point rounding (measured below), provided nothing random differs
    between the two: with dropout on, the micro-batches draw other random masks.

    ### Mixed precision

    **Mixed precision** means matrix multiplies can run in bf16 (bfloat16): 16-bit numbers with
    float32's range but only 8 significant bits instead of 24 (7 stored, plus an implicit leading 1),
    so about 2 to 3 decimal digits. That halves the memory traffic and, on hardware built for it,
    makes matrix multiplies much faster. Where it is not, bf16 has to be emulated and is usually
    slower, sometimes far slower. So glassformer does not assume, and does not trust a single timing
    either: `dtype="auto"` picks bf16 only where the CPU reports bf16 instructions that torch may use,
    and a timing of bf16 against fp32 matrix products, taken in turns and repeated, does not show bf16
    clearly slower (the rule is the highlighted line below). The decision is stored for this machine,
    so every later run, on a quiet or a busy moment, makes the same one. This machine: vector
    instructions `{_cap.vector_isa}`, bf16 instructions `{'yes' if _cap.native_bf16 else 'no'}`; the
    stored timing: {_cap.summary}. So `auto` picks `{precision.resolve_dtype("auto")}` here
    ({_cap.reason}). Losses, evaluations and the weights themselves stay in fp32.
    """)
    return


@app.cell
def _(code_panel, precision):
    code_panel(precision.Capability, highlight="return \"bf16\" if")
    return


@app.cell
def _(mo, train, training_lab):
    measure = mo.ui.run_button(label="Measure both on a tiny model", kind="success")
    _B, _k, _n = training_lab.accumulation_gap.__wrapped__.__defaults__   # the arguments the button uses
    (_steps,) = training_lab.resume_gap.__wrapped__.__defaults__
    from glassformer.model import build_model as _build

    _params = _build(training_lab.tiny_config().model).num_params()
    mo.vstack([mo.md(f"""
    ### Checkpoint and resume

    A long run must survive a crash or a Stop. The checkpoint holds the weights, the optimizer's
    state (its running averages and step counts), the step number and the state of both random
    number generators (the one that picks batches, the one for dropout). A run writes one every
    `checkpoint_interval` steps ({train.TRAIN_PRESETS["live"].checkpoint_interval} in the live recipe), so a crash
    loses at most the steps since the last one, and Stop writes one on the spot. Resumed with the same
    settings on the same machine (same precision, same number of threads, since adding numbers in
    another order rounds differently), the run continues *bit for bit*, as if it had never stopped.
    A run with a time budget, like the live one, is the exception: it sets its number of steps, and so
    its learning-rate schedule, from the speed it measures as it goes, which varies from one session
    to the next, so after a resume its later learning rates, and so its weights, can differ a little.

    Both claims can be checked in a couple of seconds on a model of about {_params / 1000:.0f} thousand parameters: the
    gradient accumulation check runs `train_step` itself {_n} times with one batch of {_B} and {_n}
    times with {_k} micro-batches of {_B // _k}; the resume check runs `train` itself {_steps} steps
    straight, and {_steps // 2} steps, a stop, a resume and {_steps - _steps // 2} more.
    """), measure])
    return (measure,)


@app.cell
def _(code_panel, measure, mo, training_lab):
    if not measure.value:
        _out = mo.md("*Press the button to measure.*")
    else:
        with mo.status.spinner("training two tiny models twice…"):
            _acc = training_lab.accumulation_gap()
            _res = training_lab.resume_gap()
        _la, _lb = _acc["losses"]
        _B, _k, _n = training_lab.accumulation_gap.__wrapped__.__defaults__   # the arguments called above
        _gap = _acc["max_abs_diff"]
        _out = mo.md(f"""
    | check | largest difference in any weight |
    |---|---|
    | batch of {_B} vs {_k} micro-batches of {_B // _k}, {_n} steps ({_acc['n_params']:,} weights) | **{_gap:.1e}** (losses {', '.join(f'{x:.6f}' for x in _la)} vs {', '.join(f'{x:.6f}' for x in _lb)}) |
    | {_res['steps']} steps straight vs stopped at {_res['stopped_at']} and resumed | **{_res['max_abs_diff']:.1e}** ({'identical loss at every step' if _res['losses_equal'] else 'the logged losses differ'}) |

    """ + ("Accumulation differs only in the last digits, because floating-point addition in a different order "
           "rounds differently" if 0 < _gap < 1e-5 else "Accumulation gives exactly the same weights here"
           if _gap == 0 else "Accumulation differs by more than rounding would explain: a bug") +
           f"; resuming is {'exact: 0 difference' if _res['max_abs_diff'] == 0 and _res['losses_equal'] else 'not exact: a bug'}.")
    mo.vstack([_out, code_panel(training_lab.accumulation_gap.__wrapped__,
                                title="glassformer.analysis.training_lab.accumulation_gap",
                                highlight=("for accum in", "train_step(run, state)")),
               code_panel(training_lab.resume_gap.__wrapped__, title="glassformer.analysis.training_lab.resume_gap",
                          highlight=("raise KeyboardInterrupt", "resume=True"))])
    return


@app.cell
def _(Question):
    questions = [
        Question("ch9-examples", "A training window holds 129 characters. How many next-token examples does one "
                 "forward pass over it train on?",
                 ["128", "129", "1", "129 × 128 / 2"], 0,
                 "Every position except the last has a next token to predict: inputs are the first 128, targets the "
                 "last 128 (the window shifted by one), all scored in one pass thanks to the causal mask."),
        Question("ch9-loss", "The model gave the correct next token probability 0.5, then after training 0.25 "
                 "on the same example. What happened to that example's loss?",
                 ["It rose by ln 2 ≈ 0.693", "It halved", "It fell by 0.25", "It doubled to exactly 1.0"], 0,
                 "Loss is −ln p: −ln 0.25 − (−ln 0.5) = ln 2. Halving the probability always adds ln 2."),
        Question("ch9-teacher", "What is teacher forcing?",
                 ["Feeding the real previous tokens as context during training, never the model's own guesses",
                  "Copying a bigger model's outputs as targets",
                  "Forcing the learning rate to follow a schedule",
                  "Sampling with temperature 0 during training"], 0,
                 "The context at every position is the real text, so all positions train in parallel; only "
                 "generation feeds the model its own output."),
        Question("ch9-overfit", "Training loss keeps falling but validation loss has been rising for a while. "
                 "What is the most likely diagnosis?",
                 ["Overfitting: the model memorizes its training text",
                  "The learning rate is too low",
                  "A bug in the validation data loader",
                  "Warmup is too long"], 0,
                 "Validation text is never trained on. When the two curves split apart, what the model learns no "
                 "longer carries over to new text: typical with too little data for the model's size."),
        Question("ch9-accum", "You cannot fit a batch of 64 in memory. What gives the same optimizer step?",
                 ["4 micro-batches of 16, each loss divided by 4, gradients added, one optimizer step",
                  "4 optimizer steps of 16 each",
                  "One batch of 16 with a 4× learning rate",
                  "A batch of 16 in bf16"], 0,
                 "Gradients add up across backward calls; dividing each micro-batch's mean loss by 4 makes their "
                 "sum the mean over all 64, so the one step equals the big batch's (up to rounding, measured above)."),
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
