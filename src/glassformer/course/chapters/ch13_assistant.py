import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="13. From language model to assistant", css_file="course.css")


@app.cell
def _():
    import html
    import json
    import time

    import altair as alt
    import marimo as mo

    from glassformer import chat, instructions, registry
    from glassformer import dpo as dpo_lib
    from glassformer import finetune as ft
    from glassformer import generate as gen
    from glassformer import lora
    from glassformer.course import common, live_training, store
    from glassformer.course.widgets import Question, code_panel, quiz, quiz_feedback
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    SVG = {"embedOptions": {"renderer": "svg", "actions": False}}
    return (Question, SVG, alt, chat, code_panel, common, dpo_lib, ft, gen, html, instructions, json, live_training,
            lora, mo, quiz, quiz_feedback, registry, store, this, time)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    Every model in this course so far does one thing: given a text, it predicts what comes next. Ask
    the course model a question and it does not answer; it continues, as if your question were the
    first line of a play. That is what **pre-training** makes: a model of text. An assistant is the
    same network after a second, much shorter training, called **fine-tuning**: the same weights keep
    learning, now from conversations in a fixed format, each one a request followed by the reply the
    model should have written. Fine-tuning on requests and replies is **instruction tuning**; a third
    step often follows that teaches the model which of two replies people prefer.

    This page runs all of it on the course model, small enough that you can watch and measure every
    step: the format, a fine-tuned model answering beside the base model, how much each choice
    matters, a fine-tuning run of your own, and a preference step.
    """)
    return


@app.cell
def _(chat, ft, json, registry):
    base = registry.load_model("course")
    assistants = {name: registry.load_model(f"assistant/{name}") for name in ("sft", "sft-all-tokens", "dpo")}
    card = json.loads((registry.ASSISTANT_DIR / "card.json").read_text())
    fmt = chat.PlainFormat()
    held_out = ft.read_examples(ft.INSTRUCTIONS_DIR / "test.jsonl")
    tokenizer = base.tokenizer
    return assistants, base, card, fmt, held_out, tokenizer


@app.cell
def _(card, fmt, held_out, instructions, mo):
    from glassformer.data import load_text as _load_text

    _corpus, _ = _load_text(None)
    _train_text = _corpus[:int(len(_corpus) * 0.9)]
    _seen = [line for line in (instructions.line_of(ex.messages[0]["content"]) for ex in held_out)
             if line is not None and line in _train_text]
    _tasks = "\n".join(f"| `{prefix.strip()} …` | {what} |" for prefix, (_, what) in instructions.TASKS.items())
    mo.md(f"""
    ## The format

    The teaching material is a small instruction set made from TinyShakespeare for this course, with
    three tasks a model of this size can learn, at least in part, each with exactly one right answer:

    | the request starts with | the reply must be |
    |:---|:---|
    {_tasks}

    The lines come from plays the course model read in pre-training
    (900 training requests), and the {card['held_out_examples']} **held-out** requests from the last tenth
    of the text, the part pre-training kept for validation and never trained on ({len(_seen)} of them are short
    lines that also occur word for word earlier in the plays{', such as “' + _seen[0] + '”' if _seen else ''}).
    A conversation becomes one
    string in a **chat format**: each message starts with `&` and its role, the reply starts after
    `&bot: ` and ends with `$`. Both marks are characters the course model already knows, and rare ones:
    in the {len(_corpus):,} characters of TinyShakespeare `{fmt.MARK}` occurs {_corpus.count(fmt.MARK)} times and
    `{fmt.END}` {_corpus.count(fmt.END)} time{'s' if _corpus.count(fmt.END) != 1 else ''}. The format needs no
    new tokens: only new habits.
    """)
    return


@app.cell
def _(ft, held_out, html, mo, tokenizer):
    example = held_out[0]
    _ids, _reply = ft.encode_example(ft.chat_format(tokenizer), tokenizer, example.messages, "response")

    def _strip(learn: list[bool]) -> str:
        cells = []
        for i, t in zip(_ids, learn):
            ch = tokenizer.decode([i])
            label = {"\n": "↵", " ": "␣"}.get(ch, ch)
            style = "background:#bbf7d0;font-weight:600" if t else "background:#f1f5f9;color:#64748b"
            cells.append(f'<span style="{style};font-family:monospace;padding:1px 2px;margin:1px;'
                         f'display:inline-block">{html.escape(label)}</span>')
        return "".join(cells)

    _all = [True] * len(_ids)
    mo.vstack([
        mo.md(f"One held-out conversation, {len(_ids)} characters, each one token. In green, the tokens the "
              f"model is graded on predicting (the loss is taken on them)."),
        mo.md(f"*Loss on the reply only* (the default): {sum(_reply)} of {len(_ids)} tokens.<br>"
              f"{_strip(_reply)}"),
        mo.md(f"*Loss on every token*, as in pre-training: {len(_ids) - 1} of {len(_ids)} (every token but the "
              f"first, which nothing comes before).<br>{_strip([False] + _all[1:])}"),
    ])
    return (example,)


@app.cell
def _(code_panel, ft, mo):
    mo.vstack([mo.md(r"""
    Fine-tuning is the training loop of chapter 9 with two changes. The batches are whole
    conversations, padded to the longest one in the batch. And every target that should carry no loss
    is set to −100, a value PyTorch's cross-entropy skips (its `ignore_index`): the padding always,
    and by default the request too. The model is graded only on what it should *write*. Trained on
    every token instead, it would also spend effort learning to predict requests, which it will never
    have to write; which of the two does better here is measured below.
    """), mo.accordion({"encode_example and make_batch (glassformer/finetune.py)": mo.vstack([
        code_panel(ft.encode_example, highlight="learn +="),
        code_panel(ft.make_batch, highlight="IGNORE")])})])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Ask the base model and the assistants

    Write a request in one of the three forms, or anything else. The same text goes to four models:
    the base course model, and three fine-tuned from it for the same 600 steps: on the reply tokens
    (**SFT**, supervised fine-tuning), on every token, and the first one after 150 more steps of a
    preference step (DPO, last section). Each writes up to 48 characters with the sampling settings below, which start
    from the ones you last chose in chapter 8 (temperature 0 is greedy decoding).
    """)
    return


@app.cell
def _(common, mo, tokenizer):
    request = common.text_box(default="Last word: Now is the winter of our discontent", label="Your request",
                              rows=2, key="request")
    MAX_REQUEST = 120   # characters of a request this page keeps (its start: the task prefix is there)
    sliders = common.sampling_sliders(tokenizer.vocab_size)
    answer_seed = mo.ui.number(start=0, stop=99_999, step=1, value=0, label="seed")
    mo.vstack([request, mo.hstack([*sliders.values(), answer_seed], wrap=True)])
    return MAX_REQUEST, answer_seed, request, sliders


@app.cell
def _(MAX_REQUEST, answer_seed, assistants, base, card, common, fmt, gen, html, instructions, mo, request,
      sliders, tokenizer):
    _settings = {k: s.value for k, s in sliders.items()}
    _raw = request.value.replace(fmt.END, "")
    _prepared = common.prepare(base, _raw[:MAX_REQUEST], fallback="Last word: To be")
    if len(_raw) > MAX_REQUEST:
        _prepared.notices.append(f"Your request is {len(_raw):,} characters long; this page keeps its first "
                                 f"{MAX_REQUEST} (with the format and a 48-character reply they fit the model's "
                                 f"{base.model.config.n_ctx}-character context).")
    _text = tokenizer.decode(_prepared.ids)
    _dropped = mo.callout(mo.md(f"`{fmt.END}` ends a reply in this format, so it was left out of the request."),
                          kind="warn") if fmt.END in request.value else None
    _notes = [n for n in [_prepared.notice(), _dropped] if n is not None]
    _given = fmt.prompt([{"role": "user", "content": _text}])
    _prompt = tokenizer.encode(_given)
    _end = tokenizer.encode(fmt.END)[0]
    _kwargs = dict(temperature=_settings["temperature"], top_k=int(_settings["top_k"]) or None,
                   top_p=_settings["top_p"], min_p=_settings["min_p"] or None, seed=int(answer_seed.value or 0))
    _expected = instructions.answer(_text)
    _sampled = _settings["temperature"] > 0
    _answers = {}
    for _name, _loaded in [("base (course)", base), *[(f"assistant/{n}", m) for n, m in assistants.items()]]:
        _replies = []
        for _how in ([{"temperature": 0.0}, _kwargs] if _sampled else [_kwargs]):
            _options = _kwargs | _how
            _new = gen.generate(_loaded.model.eval(), _prompt, 48, eos_id=_end, **_options)
            _replies.append(fmt.reply(tokenizer.decode(_new[len(_prompt):].tolist())))
        _answers[_name] = _replies

    def _show(s: str) -> str:
        return html.escape(s).replace("\n", "↵").replace(" ", "␣") or "(nothing)"

    def _cell(reply: str, ended: bool) -> str:
        mark = "" if _expected is None else " ✓ right" if ended and reply == _expected else " ✗ wrong"
        return f"<code>{_show(reply)}</code>{'' if ended else ' (no `$`)'}{mark}"

    _heads = ["greedy reply", "reply with your sampling settings"] if _sampled else ["greedy reply (temperature 0)"]
    _rows = "\n".join(f"| {n} | " + " | ".join(_cell(*r) for r in rs) + " |" for n, rs in _answers.items())
    _table = ("| model | " + " | ".join(_heads) + " |\n|:---|" + ":---|" * len(_heads) + "\n" + _rows)
    _base_ended = _answers["base (course)"][0][1]
    _sft_ended = _answers["assistant/sft"][0][1]
    _task = instructions.task_of(_text)
    _by_task = card["runs"]["sft"]["after_fp16"]["by_task"]
    _sft_right = _sft_ended and _answers["assistant/sft"][0][0] == _expected
    _rates = ", ".join(f"{v['exact_match']:.0%} of `{k}`" for k, v in sorted(_by_task.items(),
                                                                          key=lambda kv: -kv[1]["exact_match"]))
    _score = (f"The SFT model's greedy reply gets this one right. " if _sft_right else
              f"On the 300 held-out requests the SFT model's greedy reply is right for {_rates} requests"
              + (f": one wrong answer to a `{_task}` request is no surprise. "
                 if _by_task.get(_task, {}).get("exact_match", 1) < 1 else
                 f", so this miss is a rare one. "))
    _say = (f"The request is a `{_task}` task; the right answer is `{_expected}`. " + _score
            if _expected is not None else
            "This request is none of the three tasks (or has no word in it), so there is no right answer to check: "
            "see what the assistants make of something they were never taught. ")
    _greedy = ("Exact match, below, scores the greedy reply: the single most likely character at every step. "
               if _sampled else "")
    mo.vstack([*_notes,
               mo.md(f"What each model is given (↵ is a new line): <code>{_show(_given)}</code>"),
               mo.md(_table + "\n\n(␣ is a space; \"no `$`\": the reply never wrote the end mark within 48 "
                     "characters)"),
               mo.md(_say + _greedy + "The base model has never seen the format: greedily, it continues the text as "
                     "it would any text" + (", and this time it happened to write `$`. " if _base_ended else
                                            " and never writes the end mark. ")
                     + ("The fine-tuned model stops where the format says." if _sft_ended else
                        "This time the fine-tuned model did not stop within 48 characters"
                        + (" either." if not _base_ended else ".")))])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Measured on held-out requests

    One answer can be luck. The score that counts is **exact match** on the held-out requests: the
    greedy reply, cut at `$`, must be exactly the right answer, character for character; and **format
    compliance**: the share of replies that write `$` at all, within 8 characters after the right answer's
    length (a reply is given no more room than that). Below, the models answer the first
    held-out requests now, on this machine (the slider sets how many; all 300 take a few seconds per
    model).
    """)
    return


@app.cell
def _(held_out, mo):
    n_scored = mo.ui.slider(30, len(held_out), step=30, value=30, label="held-out requests scored now", show_value=True)
    n_scored
    return (n_scored,)


@app.cell
def _(assistants, base, fmt, ft, held_out, n_scored, time):
    _sample = held_out[:int(n_scored.value)]
    scored, score_seconds = {}, {}
    for _name, _loaded in [("base (course)", base), ("assistant/sft", assistants["sft"]),
                           ("assistant/sft-all-tokens", assistants["sft-all-tokens"])]:
        _start = time.perf_counter()
        scored[_name] = ft.evaluate(_loaded.model, _loaded.tokenizer, _sample, fmt, per_example=True)
        score_seconds[_name] = time.perf_counter() - _start
    return score_seconds, scored


@app.cell
def _(card, mo, n_scored, score_seconds, scored):
    _tasks = sorted(scored["assistant/sft"]["by_task"])
    _header = "| model | exact match | format followed | " + " | ".join(f"{t}" for t in _tasks) + " | seconds |"
    _rows = [f"| {n} | {r['exact_match']:.0%} | {r['format_ok']:.0%} | "
             + " | ".join(f"{r['by_task'][t]['exact_match']:.0%} ({r['by_task'][t]['n']})" for t in _tasks)
             + f" | {score_seconds[n]:.1f} |" for n, r in scored.items()]
    _b, _s = scored["base (course)"], scored["assistant/sft"]
    _cb, _cs = card["base"], card["runs"]["sft"]["after_fp16"]
    mo.vstack([
        mo.md(_header + "\n|:---|---:|---:|" + "---:|" * len(_tasks) + "---:|\n" + "\n".join(_rows)
              + "\n\n(per task: exact match, and in brackets how many of the scored requests are of that task)"),
        mo.md(f"On these {int(n_scored.value)} requests the fine-tuned model gets **{_s['exact_match']:.0%}** exactly "
              f"right and the base model **{_b['exact_match']:.0%}**: "
              f"{100 * (_s['exact_match'] - _b['exact_match']):+.0f} "
              f"points. Over all {_cb['n']} held-out requests, measured when the models were made "
              f"(scripts/ship_assistant.py, card.json): {_cs['exact_match']:.1%} against {_cb['exact_match']:.1%}. "
              f"The base model follows the format in {_b['format_ok']:.0%} of its replies here: it was never taught "
              "to stop, so it runs on past the answer's length. What the fine-tuned model learned in 600 steps of 16 "
              "conversations is a behaviour: read the request, write the one answer it asks for, stop."),
    ])
    return


@app.cell
def _(card, fmt, ft, mo, n_scored, scored, tokenizer):
    _a = scored["assistant/sft"]["per_example"]
    _b = scored["assistant/sft-all-tokens"]["per_example"]
    _only_reply = sum(x and not y for x, y in zip(_a, _b))
    _only_all = sum(y and not x for x, y in zip(_a, _b))
    _ra, _rb = card["runs"]["sft"], card["runs"]["sft-all-tokens"]
    _train = ft.read_examples(ft.INSTRUCTIONS_DIR / "train.jsonl")
    _learn = [ft.encode_example(fmt, tokenizer, ex.messages, "response")[1][1:] for ex in _train]
    _targets, _reply_targets = sum(map(len, _learn)), sum(map(sum, _learn))
    _card_diff = _ra["after_fp16"]["exact_match"] - _rb["after_fp16"]["exact_match"]
    if _only_reply + _only_all == 0:
        _live = "On the requests scored above the two models are right on exactly the same ones."
    else:
        _live = (f"On the {int(n_scored.value)} requests scored above, {_only_reply} are right only with reply-only "
                 f"loss and {_only_all} only with loss on every token; the others agree. "
                 + ("With so few that differ, this sample alone cannot separate the two: the card's 300 are the "
                    "better measure." if _only_reply + _only_all < 8 else
                    "On this sample the two are level." if _only_reply == _only_all else
                    ("These are the card's own requests, scored again now: the same result." if int(n_scored.value) ==
                     card["held_out_examples"] else "The sample agrees with the card.")
                    if (_only_reply > _only_all) == (_card_diff > 0) else
                    "This sample goes the other way from the card: move the slider to score more requests."))
    mo.md(f"""
    ## Which tokens carry the loss

    Same model, same data, same 600 steps, same seed; only the tokens graded differ. Over all 300 held-out
    requests (card.json): reply only **{_ra['after_fp16']['exact_match']:.1%}**, every token
    **{_rb['after_fp16']['exact_match']:.1%}** ({100 * _card_diff:+.1f} points for reply-only). {_live}

    Why might the reply-only loss do better at equal steps? Of the {_targets:,} targets in the 900
    training conversations only {_reply_targets:,} ({_reply_targets / _targets:.1%}) are reply characters, so with
    loss on every token most of each step's loss, and of its gradient, is about predicting Shakespeare lines the
    model will only ever be *given*. That is a hypothesis this page does not test further; the measured
    difference is above.
    """)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## LoRA: train a few weights, keep the rest

    Full fine-tuning updates every weight, which for a large model means memory for every weight's
    gradient and optimizer state, and a full copy of the model per fine-tuned variant. **LoRA**
    (low-rank adaptation, Hu et al. 2021) freezes the pretrained weights and adds beside each chosen
    linear layer $W$ (shape $d_\text{in} \times d_\text{out}$) a detour through two small matrices,
    $A$ ($d_\text{in} \times r$, random at the start) and $B$ ($r \times d_\text{out}$, zero at the start,
    so training starts exactly from the base model):

    $$y = xW + \tfrac{\alpha}{r}\, x A B$$

    Only $A$ and $B$ train: $r\,(d_\text{in} + d_\text{out})$ numbers per layer instead of
    $d_\text{in} d_\text{out}$. The **rank** $r$ limits the *kinds* of change the layer can make (the
    change $AB$ has rank at most $r$), not how large it is. After training,
    $\tfrac{\alpha}{r}AB$ is added into $W$ once ("merged") and the model is exactly as fast as before.
    """)
    return


@app.cell
def _(card, code_panel, lora, mo):
    ranks = card["lora_ranks"]
    rank = mo.ui.slider(steps=ranks, value=8 if 8 in ranks else ranks[0], label="LoRA rank r", show_value=True)
    mo.vstack([rank, mo.accordion({"LoRALinear (glassformer/lora.py)": code_panel(lora.LoRALinear,
                                                                                highlight="self.a @ self.b")})])
    return rank, ranks


@app.cell
def _(SVG, alt, base, card, lora, mo, rank, ranks):
    import copy as _copy

    _r = int(rank.value)
    _m = _copy.deepcopy(base.model)
    _live = lora.add_lora(_m, _r)          # adapters on every target layer, in place; returns what now trains
    _layers = [(n, mod) for n, mod in _m.named_modules() if isinstance(mod, lora.LoRALinear)]
    _n0, _l0 = _layers[0]
    _d_in, _d_out = _l0.base.weight.shape
    _total = card["runs"]["sft"]["trainable_parameters"]
    _rows = [{"run": f"LoRA r={r}", "rank": r, "trainable": card["runs"][f"lora-r{r}"]["trainable_parameters"],
              "exact": card["runs"][f"lora-r{r}"]["after"]["exact_match"],
              "seconds": card["runs"][f"lora-r{r}"]["wall_time_s"]} for r in ranks]
    _full = {"run": "every weight", "rank": None, "trainable": _total,
             "exact": card["runs"]["sft"]["after"]["exact_match"], "seconds": card["runs"]["sft"]["wall_time_s"]}
    _table = "\n".join(f"| {'**' if x['rank'] == _r else ''}{x['run']}{'**' if x['rank'] == _r else ''} | "
                       f"{x['trainable']:,} | {x['trainable'] / _total:.2%} | {x['exact']:.1%} | {x['seconds']:.0f} |"
                       for x in [*_rows, _full])
    _x = alt.X("trainable:Q", scale=alt.Scale(type="log"), title="trainable parameters (log scale)")
    _points = alt.Chart(alt.Data(values=[*_rows, _full])).mark_point(filled=True, size=70).encode(
        x=_x, y=alt.Y("exact:Q", title="held-out exact match", scale=alt.Scale(domain=[0, 1]),
                      axis=alt.Axis(format="%")),
        color=alt.condition(f"datum.rank == {_r}", alt.value("#dc2626"), alt.value("#0ea5e9")),
        tooltip=["run:N", alt.Tooltip("trainable:Q", format=","), alt.Tooltip("exact:Q", format=".1%")])
    _line = alt.Chart(alt.Data(values=_rows)).mark_line(color="#0ea5e9").encode(x=_x, y="exact:Q")
    _label = alt.Chart(alt.Data(values=[_full])).mark_text(align="right", dx=-8, fontSize=11).encode(
        x=_x, y="exact:Q", text="run:N")
    _best = max(_rows, key=lambda x: x["exact"])
    _fastest, _slowest = min(x["seconds"] for x in _rows), max(x["seconds"] for x in _rows)
    _late = {n: r["best_step"] for n, r in card["runs"].items() if r["best_step"] != r["steps"]}
    _best_steps = ("the last step's, for every run" if not _late else
                   "the last step's, except " + ", ".join(f"{n} (step {s})" for n, s in _late.items()))
    _cpu_lines = card["cpu"].splitlines()
    _cpu = _cpu_lines[0].removeprefix("CPU: ") + (f" ({_cpu_lines[1].strip()})" if len(_cpu_lines) > 1 else "")
    mo.vstack([
        mo.md(f"At rank {_r}, each of the {len(_layers)} adapted layers gets $r(d_\\text{{in}} + d_\\text{{out}})$ "
              f"numbers, e.g. `{_n0}` ({_d_in} × {_d_out}): {_r} × ({_d_in} + {_d_out}) = "
              f"{_r * (_d_in + _d_out):,}. Counted on the model just now: **{_live:,}** trainable parameters, "
              f"{_live / _total:.2%} of the {_total:,} that full fine-tuning trains."
              + ("" if _live == card["runs"][f"lora-r{_r}"]["trainable_parameters"] else
                 " (The shipped run counted a different number: the card is out of date.)")),
        mo.ui.altair_chart((_line + _points + _label).properties(width=460, height=220, usermeta=SVG,
                                                        title="held-out exact match after 600 steps of training"),
                           chart_selection=False, legend_selection=False),
        mo.md("| run | trainable parameters | share | exact match (300) | seconds |\n|:---|---:|---:|---:|---:|\n"
              + _table),
        mo.md(f"Every run: 600 steps, the same recipe and learning rate, seed 0, one thread on {_cpu}. The model "
              f"each run saved is the one with the lowest reply loss on the first 128 held-out requests, checked "
              f"every 100 steps: {_best_steps}. "
              f"The best LoRA run here is rank {_best['rank']} at {_best['exact']:.1%}, against "
              f"{_full['exact']:.1%} for training every weight. The LoRA runs took {_fastest:.0f}–{_slowest:.0f} s "
              f"against {_full['seconds']:.0f} s (one run each, so differences of a few seconds are noise): on a "
              "model this small LoRA saves no time. Every step still runs the whole model forward, and backward "
              "through every layer to reach the adapters; it skips only the frozen weights' own gradients, and "
              "here the adapters' extra work cancels that out. What LoRA saves is the memory for those gradients "
              "and their optimizer state, and, when the adapters are stored on their own, a full copy of the "
              "model per variant (glassformer merges them into the weights, so the model runs as fast as "
              "before); that matters when the model has billions of weights. The same "
              "learning rate for all runs is a simplification: LoRA is often trained with a higher one, not tried "
              "here."),
    ])
    return


@app.cell
def _(live_training, mo, store, time):
    ft_data_dir = store.db_path().parent
    ft_run_dir = ft_data_dir / "runs" / "assistant-live"    # in runs/: it joins the model picker
    FT_SECONDS = 60
    ft_message, set_ft_message = mo.state("")
    ft_seed = mo.ui.number(start=0, stop=99_999, step=1, value=1, label="seed")
    ft_lora = mo.ui.dropdown(options=["every weight", "LoRA r=8"], value="every weight", label="train")

    def _start(_):
        _args = ["--from", "course", "--data", "instructions", "--time-budget", str(FT_SECONDS),
                 "--time-limit", str(FT_SECONDS + 20), "--eval-limit", "60", "--eval-interval", "50",
                 "--seed", str(int(ft_seed.value or 0)), *(["--lora", "8"] if ft_lora.value.startswith("LoRA") else [])]
        try:
            info = live_training.launch(ft_data_dir, ft_run_dir, _args, entry="finetune")
        except live_training.Busy as exc:
            set_ft_message(f"Not started: {exc}.")
        else:
            kept = f" The previous run was kept: `{info['kept']}`." if info.get("kept") else ""
            set_ft_message(f"Started at {time.strftime('%H:%M:%S')} ({ft_lora.value}, seed {int(ft_seed.value or 0)}, "
                           f"process {info['pid']}).{kept}")
        return time.time()

    def _stop(_):
        set_ft_message(f"Stopped: the checkpoint is kept; continue it in a terminal with `glassformer finetune "
                       f"--resume --out {ft_run_dir}` and the same options."
                       if live_training.stop_run(ft_data_dir, ft_run_dir) else
                       "No fine-tuning run of this chapter is going on.")
        return time.time()

    ft_start = mo.ui.button(label="▶ Fine-tune the course model", kind="success", on_click=_start)
    ft_stop = mo.ui.button(label="■ Stop", kind="danger", on_click=_stop)
    ft_poll = mo.ui.refresh(options=["2s"], default_interval="2s", label="update")
    return FT_SECONDS, ft_data_dir, ft_lora, ft_message, ft_poll, ft_run_dir, ft_seed, ft_start, ft_stop


@app.cell
def _(FT_SECONDS, ft_lora, ft_poll, ft_seed, ft_start, ft_stop, mo):
    mo.vstack([mo.md(f"""
    ## Fine-tune it yourself

    The button runs `glassformer finetune` on the course model in a separate process (chapter 9's
    background runner: one thread, one run at a time on this server): the shipped instruction set,
    {FT_SECONDS} seconds of training (the step count is fitted to this machine's speed after 60
    steps, and again at each evaluation), the reply loss on held-out requests every 50 steps, and exact
    match on 60 held-out requests before and after. The same run in a terminal:

        OMP_NUM_THREADS=1 glassformer finetune --from course --data instructions --time-budget {FT_SECONDS} \\
            --eval-limit 60 --eval-interval 50 --seed 1 --out runs/my-assistant
    """), mo.hstack([ft_lora, ft_seed, ft_start, ft_stop, ft_poll], justify="start", align="center")])
    return


@app.cell
def _(ft_data_dir, ft_run_dir, live_training, ft_poll, ft_start, ft_stop):
    ft_poll.value, ft_start.value, ft_stop.value  # noqa: B018  (re-run on these)
    ft_fingerprint = live_training.fingerprint(ft_data_dir, [ft_run_dir])
    return (ft_fingerprint,)


@app.cell
def _(SVG, alt, ft_data_dir, ft_fingerprint, ft_message, ft_run_dir, json, live_training, mo):
    ft_fingerprint  # noqa: B018
    from glassformer.train import read_metrics as _read

    _holder = live_training.running(ft_data_dir)
    _ours = _holder is not None and _holder.get("folder") == str(ft_run_dir)
    _rows = _read(ft_run_dir / "metrics.jsonl") if (ft_run_dir / "metrics.jsonl").exists() else []
    _card = json.loads((ft_run_dir / "card.json").read_text()) if (ft_run_dir / "card.json").exists() else None
    try:
        _exit = json.loads((ft_run_dir / "exit.json").read_text()).get("exit_code")
    except (OSError, ValueError):
        _exit = None
    if _ours:
        _state = "Status: fine-tuning…"
    elif _card is not None and _exit == 0 and "after" in _card:
        _state = "Status: finished."
    elif _exit == 130:
        _state = "Status: stopped."
    elif not _rows and _exit is None:
        _state = "No fine-tuning run yet."
    else:
        _log = ft_run_dir / "train.log"
        _last = _log.read_text(errors="replace").strip().splitlines()[-1:] if _log.exists() else []
        _state = "Status: the run ended with an error: " + (_last[0] if _last else f"exit code {_exit}")
    _parts = [mo.md(_state + " " + ft_message())]
    if _holder is not None and not _ours:
        _parts.append(mo.callout(mo.md(f"Another training run is going on this server ({_holder['folder']}): one "
                                       "at a time. Start yours once it has ended."), kind="info"))
    _train = [{"step": r["step"], "loss": r["train_loss"], "kind": "training batch"}
              for r in _rows if "train_loss" in r]
    _val = [{"step": r["step"], "loss": r["val_loss"], "kind": "held-out replies"} for r in _rows if "val_loss" in r]
    _before = next((r for r in _rows if "before" in r), None)
    if _train:
        _parts.append(mo.md(f"Step {_train[-1]['step']:,}: reply loss {_train[-1]['loss']:.3f} on the last batch"
                            + (f", {_val[-1]['loss']:.3f} on held-out replies." if _val else ".")))
        _parts.append(mo.ui.altair_chart(alt.Chart(alt.Data(values=_train + _val)).mark_line(point=True).encode(
            x=alt.X("step:Q"), y=alt.Y("loss:Q", title="reply loss (nats per character)"), color="kind:N").properties(
            width=460, height=200, usermeta=SVG), chart_selection=False, legend_selection=False))
    if _card is not None and "after" in _card:
        _b, _a = _card.get("before", {}), _card["after"]
        _parts.append(mo.md(
            f"Held-out exact match on {_a['n']} requests: **{_b.get('exact_match', float('nan')):.0%} before → "
            f"{_a['exact_match']:.0%} after** {_card['steps']:,} steps in {_card['wall_time_s']:.0f} s "
            f"({_card['trainable_parameters']:,} trainable parameters). Format followed: "
            f"{_b.get('format_ok', float('nan')):.0%} → {_a['format_ok']:.0%}. Your model is in the model "
            f"picker as `{ft_run_dir.name}`."))
        _parts.append(mo.md("| request | right answer | your model's reply |\n|:---|:---|:---|\n" + "\n".join(
            f"| {s['prompt']} | {s['expected']} | {s['reply'] or '(nothing)'}{'' if s['ended'] else ' (no $)'} |"
            for s in _card.get("samples", []))))
    mo.vstack(_parts)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Preferences: RLHF and DPO

    Fine-tuning shows the model *the* right reply. Often there is no single right reply, only better
    and worse ones, and it is easier for people to say which of two replies they prefer than to write
    the perfect one. **RLHF** (reinforcement learning from human feedback), as InstructGPT used it
    (Ouyang et al. 2022), turns such judgements into training in two steps: a **reward model** learns
    to score a reply the way the people ranked them, then the language model is trained with
    reinforcement learning (**PPO**, Schulman et al. 2017) to write replies the reward model scores
    high, with a penalty for drifting far from the fine-tuned model it started from. That needs a
    separately trained reward model (and, for PPO, a value model and a frozen copy of the starting
    model), replies sampled during training, and care to keep it stable.

    **DPO** (direct preference optimization, Rafailov et al. 2023) optimises the same objective with neither
    the reward model nor the sampling. It keeps a frozen copy of the starting model, the **reference**,
    and for each pair (a preferred reply $y_w$, a rejected one $y_l$) to the same request $x$ computes
    an **implicit reward**, how much more likely the trained model finds a reply than the reference:

    $$r(y) = \beta \left(\log \pi(y \mid x) - \log \pi_\text{ref}(y \mid x)\right), \qquad
      \mathcal{L} = -\log \sigma\big(r(y_w) - r(y_l)\big)$$

    The loss falls as the preferred reply's reward rises above the rejected one's; the larger
    $\beta$, the closer to the reference the model is held. It is a classification loss on pairs,
    trained like any other.

    Here the preference can be checked: for a "Last word:" request the preferred reply is the line's
    last word and the rejected one another word of the same line (300 training pairs, 100 held out).
    The shipped `assistant/dpo` is `assistant/sft` after this step.
    """)
    return


@app.cell
def _(SVG, alt, card, code_panel, dpo_lib, mo):
    _d = card["dpo"]
    _series = (("margin", "reward margin", "reward margin"), ("accuracy", "preference accuracy", "preference accuracy"),
               ("kl", "KL to the reference", "KL to the reference"),
               ("chosen_reward", "implicit rewards", "preferred reply"), ("rejected_reward", "implicit rewards",
                                                                          "rejected reply"))
    _rows = [{"step": r["step"], "value": r[f"held_out_{k}"], "panel": panel, "series": name}
             for r in _d["history"] for k, panel, name in _series]
    _chart = alt.Chart(alt.Data(values=_rows)).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title=None),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom"))).properties(
        width=150, height=150)
    _panels = list(dict.fromkeys(p for _, p, _ in _series))
    _chart = _chart.facet(column=alt.Column("panel:N", title=None, sort=_panels)).resolve_scale(y="independent")
    _first, _last = _d["history"][0], _d["history"][-1]
    _lb, _la = _d["last_word_before"], _d["last_word_after"]
    _c, _r = _last["held_out_chosen_reward"], _last["held_out_rejected_reward"]
    _beta = _d["recipe"]["beta"]
    if _c < 0 and _r < 0:
        _sides = (f"both replies became *less* likely than under the reference, the rejected one far more (the chosen "
                  f"reply's log-probability fell by {-_c / _beta:.2f} nats on average, the rejected one's by "
                  f"{-_r / _beta:.2f}): the loss asks only for the gap between them.")
    elif _c >= 0 > _r:
        _sides = "the chosen reply became more likely and the rejected one less."
    else:
        _sides = "both became more likely, the chosen one more."
    _after, _sft_all = _d["all_tasks_after"]["exact_match"], card["runs"]["sft"]["after_fp16"]["exact_match"]
    _sft_tasks = card["runs"]["sft"]["after_fp16"]["by_task"]
    if _la["exact_match"] < _lb["exact_match"]:
        _other = [f"{k.replace('_', ' ')} ({_sft_tasks[k]['exact_match']:.0%} → {v['exact_match']:.0%})"
                  for k, v in _d["all_tasks_after"]["by_task"].items()
                  if k != "last_word" and v["exact_match"] <= _sft_tasks[k]["exact_match"] - 0.05]   # 5+ of 100
        _verdict = (f"So on the pairs' own measure the step worked, and on the user's it did the opposite: the "
                    f"assistant got *worse* at the very task the pairs were about"
                    + (f", and at {' and '.join(_other)} too, which no pair mentioned. " if _other else ". ")
                    + "Pal et al. (2024) describe this failure of DPO: its loss can fall while the preferred reply's "
                    "probability falls too, especially when the two replies differ in only a few tokens, as here "
                    "(one word). A greedy reply is decided by the replies' own probabilities, not by the gap between "
                    "two of them. Their fix (DPO-Positive) adds a penalty whenever the preferred reply becomes less "
                    "likely than under the reference; it is not run here. The lesson carries over: a preference step "
                    "is judged by what users get, measured on held-out requests, not by its own loss.")
    else:
        _verdict = ("Here the step also helped what a user sees." if _la["exact_match"] > _lb["exact_match"] else
                    "What a user sees did not change on this task.")
    mo.vstack([
        mo.ui.altair_chart(_chart.properties(usermeta=SVG), chart_selection=False, legend_selection=False),
        mo.md(f"On the {_d['pairs']['held_out']} held-out pairs, over {_d['recipe']['steps']} steps (β = "
              f"{_beta}, learning rate {_d['recipe']['lr']:g}, {_d['seconds']:.0f} s): the **reward "
              f"margin** (preferred minus rejected) went from {_first['held_out_margin']:.3f} to "
              f"{_last['held_out_margin']:.3f}; **preference accuracy** (pairs where the preferred reply gets the "
              f"higher reward) from {_first['held_out_accuracy']:.0%} to {_last['held_out_accuracy']:.0%}; the KL "
              f"divergence from the reference, per reply character, from {_first['held_out_kl']:.4f} to "
              f"{_last['held_out_kl']:.4f} nats. At step 0 the trained model *is* the reference, so every reward is 0 "
              f"and no pair is strictly preferred. Each side on its own: {_sides}"),
        mo.md(f"What a user would see, greedy exact match on the {_lb['n']} held-out \"Last word:\" requests: "
              f"**{_lb['exact_match']:.0%} before the preference step, {_la['exact_match']:.0%} after**; on all "
              f"{_d['all_tasks_after']['n']} held-out requests, {_after:.1%} after against {_sft_all:.1%} for the SFT "
              f"model. {_verdict}"),
        mo.accordion({"dpo_terms (glassformer/dpo.py)": code_panel(dpo_lib.dpo_terms,
                                                                   highlight=("beta", "logsigmoid"))}),
    ])
    return


@app.cell
def _(card, mo):
    mo.md(rf"""
    ## What engineers actually do

    Pre-training a model of the size people use every day takes very large amounts of compute and data,
    and few organisations do it. Most engineering work starts from a model someone else pre-trained
    and adapts it: by writing better prompts, by giving it documents to read at answer time, or by
    fine-tuning it, often with LoRA, or with QLoRA (Dettmers et al. 2023), which fine-tunes LoRA
    adapters on top of a base model stored in 4 bits. The steps on this page are the published
    recipe of the 2022–2023 papers cited here: supervised fine-tuning on demonstrations, then a
    preference step. InstructGPT (Ouyang et al. 2022) used a reward model and PPO; Llama 2-Chat
    (Touvron et al. 2023) used supervised fine-tuning then RLHF with rejection sampling and PPO; Zephyr
    (Tunstall et al. 2023) used distilled supervised fine-tuning and DPO on AI-ranked preferences.
    Which recipe today's assistants use is rarely published in full, and the methods keep changing;
    read the papers' dates.

    Two things carry over from this small model to large ones. Each model family has its own chat
    format, stored with its tokenizer as a *chat template*; fine-tuning a pretrained model must use
    that template (`glassformer finetune` does, when the model's tokenizer files carry one), or the
    model meets a format it was never trained on, as the base model did above. And fine-tuning mostly
    teaches *behaviour*: Zhou et al. (2023, "LIMA: Less Is More for Alignment") argued that a model's
    knowledge comes almost entirely from pre-training and that alignment teaches it which format to
    answer in. On this page, the course model learned a format it had never seen in
    {card['runs']['sft']['steps']} steps ({card['runs']['sft']['wall_time_s']:.0f} s on one core), on
    lines it could already read.
    """)
    return


@app.cell
def _(Question):
    questions = [
        Question("base-continues", "The base course model gets '&user: Last word: To be or not to be\\n&bot: '. What "
                 "does it do?",
                 ["It continues the text as it would any text: it was never trained on the format",
                  "It answers 'be', since it has read the line", "It refuses: the request is not Shakespeare",
                  "It writes '$' at once"], 0,
                 "Pre-training only taught it to continue text. Answering in a format is what fine-tuning taught "
                 "the assistants."),
        Question("reply-loss", "With the default 'loss on the reply only', which targets does the loss skip?",
                 ["The request and the format's marks before the reply, and the padding",
                  "The reply's characters", "Every second token", "Nothing: all tokens carry loss"], 0,
                 "Their targets are set to −100, which cross-entropy ignores; only the reply (ending with $) is "
                 "graded."),
        Question("lora-count", "A linear layer of 128 inputs and 384 outputs gets a LoRA adapter of rank 8. How many "
                 "numbers does training learn for that layer?",
                 ["8 × (128 + 384) = 4,096", "128 × 384 = 49,152", "8 × 128 × 384 = 393,216",
                  "8 + 128 + 384 = 520"], 0,
                 "A is 128 × 8 and B is 8 × 384: r(d_in + d_out). The 49,152 weights of W stay frozen while it "
                 "trains (merging AB into W afterwards changes them all, by a learned rank-8 amount)."),
        Question("dpo-needs", "What does DPO need that plain supervised fine-tuning does not?",
                 ["Pairs of replies, one preferred, and a frozen reference model",
                  "A reward model and sampling during training", "A larger vocabulary",
                  "Labels for every token of the request"], 0,
                 "RLHF with PPO needs the reward model and sampling; DPO needs only the pairs and the reference "
                 "it measures its implicit reward against."),
        Question("kl", "During DPO, the KL divergence from the reference rises from 0. What does that measure?",
                 ["How far the trained model's predictions have moved from the starting model's",
                  "How often the preferred reply wins", "The reward model's error",
                  "The learning rate"], 0,
                 "At step 0 the two models are the same (KL 0). β trades reward margin against this drift."),
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
