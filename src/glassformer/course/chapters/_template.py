import marimo

__generated_with = "0.25.2"
# A new chapter: copy this file to chNN_name.py, list it in catalog.CHAPTERS (key, title, summary,
# file name), and write docs/curriculum.md's items for it. Identity comes from the catalog, by file name.
app = marimo.App(width="medium", app_title="Chapter template", css_file="course.css")


@app.cell
def _():
    import marimo as mo
    import torch

    from glassformer import sampling
    from glassformer.course import common
    from glassformer.course.widgets import Question, code_panel, prob_bars, quiz, quiz_feedback, token_label
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return Question, code_panel, common, mo, prob_bars, quiz, quiz_feedback, sampling, this, token_label, torch


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    # 1. The idea, in plain language, for a programmer who has never opened an ML textbook.
    mo.md(r"""
    The model ends with one score per vocabulary entry; **softmax** turns those scores into
    probabilities.
    """)
    return


@app.cell
def _(common, mo):
    # 2. The shared model picker and the learner's own text (both remembered across chapters).
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text, torch):
    # 3. Run the library on the learner's text; every problem becomes a visible notice, never a traceback.
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value)
    with torch.no_grad():
        logits = loaded.model(torch.tensor([prepared.ids]))[0, -1].float()   # (V,)
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return loaded, logits


@app.cell
def _(mo):
    # 4. The math, rendered.
    mo.md(r"""$$p_i = \frac{e^{z_i}}{\sum_j e^{z_j}}$$""")
    return


@app.cell
def _(code_panel, sampling):
    # 5. The library's real function: the one that computes the picture below (never a copy).
    code_panel(sampling.distribution)
    return


@app.cell
def _(mo):
    # 6. Something to change.
    temperature = mo.ui.slider(0.0, 2.0, step=0.05, value=1.0, label="temperature", show_value=True)
    temperature
    return (temperature,)


@app.cell
def _(loaded, logits, mo, prob_bars, sampling, temperature, token_label):
    # 7. The picture that function produced on the learner's text; every number in the prose is computed.
    _p = sampling.distribution(logits, temperature.value)
    _order = _p.argsort(descending=True)[:12].tolist()
    _labels = [token_label(loaded.tokenizer.token_bytes(i)) for i in _order]
    mo.vstack([mo.ui.altair_chart(prob_bars(_labels, [_p[i].item() for i in _order], title="next token"),
                                  chart_selection=False, legend_selection=False),
               mo.md(f"The most likely token has probability {_p[_order[0]].item():.1%}.")])
    return


@app.cell
def _(Question):
    # 8. Three to five questions; options are shuffled on the page, `answer` indexes them as written.
    questions = [
        Question("template-softmax", "What does softmax do to the order of the scores?",
                 ["Keeps it", "Reverses it", "Randomizes it"], 0,
                 "Exponentiating and dividing by a positive total never changes which score is larger."),
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
