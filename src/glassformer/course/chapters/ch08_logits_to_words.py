import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="8. From logits to words", css_file="course.css")


@app.cell
def _():
    import marimo as mo
    import torch

    from glassformer import generate as gen
    from glassformer import sampling
    from glassformer.course import common
    from glassformer.course.widgets import (Question, TokenStrip, code_panel, prob_bars, quiz, quiz_feedback,
                                            token_label)
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Question, TokenStrip, code_panel, common, gen, mo, prob_bars, quiz, quiz_feedback, sampling,
            token_label, torch, this)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    At the end of every forward pass the model hands back one number per entry of its vocabulary:
    a **logit**, a raw score for "this could come next". It does *not* pick a token. Turning those
    scores into one chosen token is a few lines of ordinary code that run outside the network: greedy
    decoding is deterministic, sampling is random but repeatable from a seed. That code decides whether
    the model sounds careful, creative or broken. This chapter is that code.

    Type a prompt below: every chart is the chosen model's real prediction for the token that
    follows your text.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    # A prompt that stops mid-line, so the next character is genuinely uncertain.
    prompt_box = common.text_box("KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by ",
                                 label="Prompt (the model continues it)", key="prompt")
    mo.hstack([prompt_box, picker], widths=[3, 1], align="end")
    return picker, prompt_box


@app.cell
def _(common, mo, picker, prompt_box, torch):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, prompt_box.value)
    with torch.no_grad():
        last_logits = loaded.model(torch.tensor([prepared.ids]))[0, -1].float()   # (V,)
    tokenizer = loaded.tokenizer
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return last_logits, loaded, prepared, tokenizer


@app.cell
def _(mo):
    mo.md(r"""
    ## Scores to probabilities: softmax

    Logits can be any real numbers. **Softmax** turns them into probabilities, positive and adding
    up to 1, while keeping their order: exponentiate each score, then divide by the total.

    $$p_i = \frac{e^{z_i}}{\sum_j e^{z_j}}$$

    A logit larger by 1 means a probability $e \approx 2.7$ times larger. Before sampling, four
    optional knobs reshape this distribution. glassformer applies them in this order, as Hugging Face
    `transformers` does (it is a convention, not a law: llama.cpp applies the temperature last, and
    below you can see that the order changes which tokens survive):

    1. **Temperature** $T$ divides every logit: $p_i \propto e^{z_i / T}$. Below 1 it sharpens the
       distribution (the favourite gets even likelier), above 1 it flattens it, and as $T \to 0$ it
       becomes *greedy*: always the single most likely token.
    2. **Top-k** keeps only the $k$ highest-scoring tokens (all tokens tied with the $k$-th are kept,
       so on ties a few more than $k$ survive).
    3. **Top-p** (nucleus) keeps the fewest top tokens whose probabilities add up to at least $p$:
       a short list when the model is sure, a long one when it is not.
    4. **Min-p** keeps tokens at least $\text{min\_p} \times p_{\max}$ likely: a cut relative to the favourite.

    Removed tokens get a logit of $-\infty$, so after softmax their probability is exactly 0 and the
    survivors are renormalized.
    """)
    return


@app.cell
def _(mo, sampling, torch):
    # A case small enough to check by hand, computed by the same library functions as the chart below.
    _z = torch.tensor([2.0, 1.0, 0.0])
    _rows = [("softmax, T = 1", sampling.distribution(_z, 1.0)),
             ("T = 0.5 (logits doubled)", sampling.distribution(_z, 0.5)),
             ("T = 1, then top-p = 0.8", sampling.distribution(_z, 1.0, top_p=0.8)),
             ("T = 1, then min-p = 0.3", sampling.distribution(_z, 1.0, min_p=0.3)),
             ("T = 0 (greedy)", sampling.distribution(_z, 0.0))]
    _fmt = lambda p: " | ".join(f"{v:.3f}" for v in p.tolist())  # noqa: E731
    mo.md("**By hand first.** Three tokens with logits $[2, 1, 0]$: $e^2, e^1, e^0 = 7.389, 2.718, 1$, "
          "total 11.107, so the probabilities are 7.389/11.107 and so on. Check each row:\n\n"
          "| knobs | token 0 | token 1 | token 2 |\n|---|---|---|---|\n" +
          "\n".join(f"| {name} | {_fmt(p)} |" for name, p in _rows) +
          "\n\nTop-p 0.8: token 0 alone (0.665) falls short of 0.8, so token 1 joins (0.665 + 0.245 = 0.910 ≥ 0.8) and "
          "token 2 is dropped; the two are renormalized. "
          "min-p 0.3 keeps tokens at least 0.3 × 0.665 = 0.200 likely.")
    return


@app.cell
def _(mo):
    mo.md(r"""
    Now on your prompt. Move the sliders: the outlines are the model's raw probabilities, the bars
    what is left to sample from. Temperature 0 is greedy decoding.
    """)
    return


@app.cell
def _(common, mo, tokenizer):
    # Saved settings: chapter 13's assistants answer with the values last chosen here.
    temperature, top_k, top_p, min_p = common.sampling_sliders(tokenizer.vocab_size).values()
    mo.hstack([temperature, top_k, top_p, min_p], wrap=True)
    return min_p, temperature, top_k, top_p


@app.cell
def _(last_logits, min_p, mo, prob_bars, sampling, temperature, token_label, tokenizer, top_k, top_p, torch):
    def settings():
        return dict(temperature=temperature.value, top_k=top_k.value or None, top_p=top_p.value,
                    min_p=min_p.value)

    _raw = last_logits.softmax(-1)
    _filtered = sampling.distribution(last_logits, **settings())
    _order = _raw.argsort(descending=True)[:24].tolist()
    _labels = [token_label(tokenizer.token_bytes(i)) for i in _order]
    _kept_total = int((_filtered > 0).sum())
    _chart = prob_bars(_labels, [_filtered[i].item() for i in _order], kept=[_filtered[i].item() > 0 for i in _order],
                       before=[_raw[i].item() for i in _order],
                       title=f"next token: {_kept_total} of {tokenizer.vocab_size} tokens can still be sampled")
    _top = _order[0]
    _s = settings()
    if _s["temperature"] > 0 and _s["temperature"] != 1 and (_s["top_p"] < 1 or _s["min_p"] > 0):
        _last = int(sampling.filter_logits(last_logits, **_s, temperature_last=True).isfinite().sum())
        _order_note = (f" With the temperature applied *last* instead (llama.cpp's order), {_last} tokens would "
                       f"survive{' — the same set size' if _last == _kept_total else ''}.")
    else:
        _order_note = (" (Set a temperature other than 1 and a top-p or min-p to see the order matter; top-k keeps "
                       "the same tokens either way, since dividing by T never reorders the scores.)")
    mo.vstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"Most likely next token: `{token_label(tokenizer.token_bytes(_top))}` — "
                     f"{_raw[_top].item():.1%} before the knobs, {_filtered[_top].item():.1%} after. "
                     f"Entropy: {sampling.entropy(_raw).item():.2f} bits before, "
                     f"{sampling.entropy(_filtered).item():.2f} bits after (0 = certain; "
                     f"{torch.tensor(float(_kept_total)).log2().item():.2f} would be {_kept_total} equally likely "
                     f"tokens).{_order_note}")])
    return (settings,)


@app.cell
def _(code_panel, mo, sampling):
    mo.accordion({
        "The code behind this chart: distribution and filter_logits (glassformer/sampling.py)":
            mo.vstack([code_panel(sampling.distribution), code_panel(sampling.filter_logits)]),
        "top_p_filter": code_panel(sampling.top_p_filter),
        "min_p_filter and top_k_filter": mo.vstack([code_panel(sampling.min_p_filter),
                                                    code_panel(sampling.top_k_filter)]),
    })
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## One token at a time

    Generation is a loop: run the model on the text so far, pick the next token from the filtered
    distribution, append it, repeat. Sampling uses a random number generator; give it a **seed** and
    every run makes the same choices (on the same hardware and software: another CPU or torch version
    can round a logit differently and, rarely, tip a draw). Drag **step** to walk through the choices
    one by one: the chart shows what the model was choosing from at that step, the red bar is what was
    drawn. The picture comes from the library's own loop, `stream`, through its `on_step` observer.

    **When does it stop?** After `max_new_tokens`, or, when the caller passes the model's
    end-of-sequence ids (this page does), as soon as every sequence has produced one (a model can
    have several: Qwen3 stops at either of two). The character model has no such token, so it always
    writes exactly as many characters as asked. A text longer than the context is refused, unless
    the caller asks for `truncate=True`: then the window slides, restarting from the most recent
    half of the context.
    """)
    return


@app.cell
def _(mo):
    seed = mo.ui.number(start=0, stop=10_000, step=1, value=0, label="seed")
    steps = mo.ui.slider(1, 80, step=1, value=12, label="step", show_value=True)
    mo.hstack([seed, steps], justify="start")
    return seed, steps


@app.cell
def _(TokenStrip, gen, loaded, mo, prepared, prob_bars, seed, settings, steps, token_label, tokenizer):
    def sample_steps(n: int):
        """Run the library's own generation loop (generate.stream), recording what each step saw and chose."""
        ids = list(prepared.ids)[-(loaded.model.config.n_ctx - n):]
        records = []
        for _ in gen.stream(loaded.model, ids, n, seed=int(seed.value), eos_id=tokenizer.eos_id, **settings(),
                            on_step=lambda step: records.append((int(step.token[0]), step.probs[0]))):
            pass
        return records

    _records = sample_steps(steps.value)
    _token, _probs = _records[-1]
    _order = _probs.argsort(descending=True)[:16].tolist()
    if _token not in _order:
        _order[-1] = _token
    _strip = TokenStrip(tokens=[{**r, "color": 6} for r in prepared.strip[-40:]] +
                        [{"label": token_label(tokenizer.token_bytes(t)), "id": t, "color": 0,
                          "hex": tokenizer.token_bytes(t).hex(" ")} for t, _ in _records], selected=-1)
    _strip.selected = len(_strip.tokens) - 1
    _chart = prob_bars([token_label(tokenizer.token_bytes(i)) for i in _order], [_probs[i].item() for i in _order],
                       chosen=_order.index(_token),
                       title=f"step {steps.value}: drew '{token_label(tokenizer.token_bytes(_token))}' "
                             f"(probability {_probs[_token].item():.1%})")
    mo.vstack([mo.md("Blue-green: your prompt (its end). Then the sampled tokens; the outlined one is the current step."),
               mo.ui.anywidget(_strip), mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False)])
    return


@app.cell
def _(code_panel, gen, mo):
    mo.accordion({"The real generation loop: stream (glassformer/generate.py)": code_panel(gen.stream)})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Greedy, sampling, beam search

    **Greedy** decoding always takes the top token: deterministic, and prone to loops, because once a
    phrase is likely it stays likely. **Sampling** draws from the (filtered) distribution: varied, and
    occasionally wrong. **Beam search** keeps the $b$ best partial continuations at every step and
    returns the best one at the end. Here they are ranked by their log-probability divided by their
    length, $\frac{1}{n}\sum_t \log p(x_t \mid x_{<t})$ (`length_penalty=1`; 0 would rank by the plain
    sum, which favours short, ended texts). It usually finds more probable text than greedy, though not
    always: the prefix greedy follows can be pruned early. That is what translation wants and often not
    what storytelling wants. The score on each card is that mean log-probability per token (closer to
    0 = more likely), measured on the text shown.
    """)
    return


@app.cell
def _(mo):
    beams = mo.ui.slider(2, 8, step=1, value=4, label="beams", show_value=True)
    length = mo.ui.slider(10, 80, step=10, value=40, label="tokens to generate", show_value=True)
    mo.hstack([beams, length], justify="start")
    return beams, length


@app.cell
def _(beams, gen, length, loaded, mo, prepared, tokenizer, torch):
    def mean_logprob(prompt: list[int], new: list[int]) -> float:
        return sum(gen.token_logprobs(loaded.model, prompt, new)) / len(new) if new else 0.0

    def decoding_card(title: str, prompt: list[int], new: list[int]) -> mo.Html:
        text = tokenizer.decode(new).replace("`", "'")
        return mo.md(f"**{title}** &nbsp; mean log-prob {mean_logprob(prompt, new):.3f}\n\n```text\n{text}\n```")

    # Greedy and beam search do not depend on the sampling knobs, so moving those sliders leaves
    # this cell alone (only the sampling column below re-runs).
    comparison_prompt = prepared.ids[-(loaded.model.config.n_ctx - length.value):]
    _greedy = gen.generate(loaded.model, comparison_prompt, length.value, temperature=0,
                           eos_id=tokenizer.eos_id)[len(comparison_prompt):]
    _beam = gen.beam_search(loaded.model, comparison_prompt, length.value, num_beams=beams.value,
                            eos_id=tokenizer.eos_id, length_penalty=1.0)[0].tokens
    deterministic_cards = [decoding_card("greedy", comparison_prompt, _greedy.tolist()),
                           decoding_card(f"beam search ({beams.value} beams)", comparison_prompt, _beam)]
    _g, _b = mean_logprob(comparison_prompt, _greedy.tolist()), mean_logprob(comparison_prompt, _beam)
    beam_verdict = mo.md(f"On your prompt, beam search's text scores {_b:.3f} per token and greedy's {_g:.3f}: "
                         + ("beam search returned the same text as greedy." if _beam == _greedy.tolist() else
                            "beam search found the more probable text." if _b > _g + 1e-9 else
                            "greedy's text scores as well or better: the beam dropped greedy's path along the way, "
                            "or stopped early."))
    return beam_verdict, comparison_prompt, decoding_card, deterministic_cards


@app.cell
def _(beam_verdict, comparison_prompt, decoding_card, deterministic_cards, gen, length, loaded, mo, seed, settings):
    _sampled = gen.generate(loaded.model, comparison_prompt, length.value, seed=int(seed.value), eos_id=tokenizer.eos_id,
                            **settings())
    _card = decoding_card(f"sampling (seed {seed.value})", comparison_prompt, _sampled[len(comparison_prompt):].tolist())
    mo.vstack([mo.hstack([deterministic_cards[0], _card, deterministic_cards[1]], widths="equal", gap=1), beam_verdict])
    return


@app.cell
def _(gen, loaded, mo, prepared, tokenizer):
    # The search itself, step by step: the library's beam_search reports every candidate's fate.
    _fates = []
    _prompt = prepared.ids[-(loaded.model.config.n_ctx - 6):]
    gen.beam_search(loaded.model, _prompt, 6, num_beams=3, eos_id=tokenizer.eos_id,
                    on_step=lambda step, cands: _fates.append(cands))
    _show = lambda b: "`" + tokenizer.decode(b.tokens).replace("\n", "↵").replace("`", "'") + f"` {b.score:.2f}"  # noqa: E731
    _rows = "\n".join(
        f"| {i + 1} | {', '.join(_show(b) for b, f in c if f == 'kept')} | "
        f"{', '.join(_show(b) for b, f in c if f != 'kept') or '—'} |" for i, c in enumerate(_fates))
    mo.md("### Inside beam search: 3 beams, 6 steps on your prompt\n\nAt each step the 6 likeliest extensions of all "
          "live prefixes together are considered (mean log-probability shown); the 3 best that do not end live on. "
          "An ending candidate ranked above them is set aside as finished; the rest are pruned.\n\n"
          "| step | kept | pruned or finished |\n|---|---|---|\n" + _rows)
    return


@app.cell
def _(code_panel, gen, mo):
    mo.accordion({"beam_search (glassformer/generate.py)": code_panel(gen.beam_search),
                  "token_logprobs: the score on each card (glassformer/generate.py)": code_panel(gen.token_logprobs)})
    return


@app.cell
def _(Question):
    questions = [
        Question("temperature", "What does a temperature below 1 do to the distribution?",
                 ["Flattens it: unlikely tokens become likelier", "Sharpens it: the likely tokens become likelier still",
                  "Removes all but the top token", "Nothing: it only changes the speed"],
                 1, "Dividing logits by T < 1 stretches the gaps between them, and softmax turns bigger gaps into "
                    "a more peaked distribution. T → 0 is greedy decoding."),
        Question("top_p", "With probabilities [0.5, 0.25, 0.125, 0.125] and top-p = 0.7, which tokens remain?",
                 ["Only the first", "The first two", "The first three", "All four"],
                 1, "0.5 alone is below 0.7; 0.5 + 0.25 = 0.75 reaches it, so the nucleus is the first two tokens."),
        Question("seed", "You sample twice with the same prompt, settings and seed. What happens?",
                 ["Different text each time", "Exactly the same text", "An error: seeds only work on a GPU",
                  "The same first token, then different"],
                 1, "All the randomness comes from the seeded generator, so the same seed replays the same draws "
                    "(on the same hardware and software)."),
        Question("beam", "Why can beam search beat greedy decoding on total probability?",
                 ["It uses a bigger model", "It keeps several candidates, so a slightly worse first token that leads "
                  "to much likelier text can survive", "It samples at a higher temperature",
                  "It never repeats a token"],
                 1, "Greedy commits to the best token at every step; a beam keeps the b best prefixes, so it can "
                    "recover from a locally optimal but globally poor choice."),
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
