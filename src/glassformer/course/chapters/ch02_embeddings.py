import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="2. Embeddings and the output head", css_file="course.css")


@app.cell
def _():
    import altair as alt
    import marimo as mo
    import torch

    from glassformer.toys import bigram
    from glassformer.analysis import embedding_space, param_count
    from glassformer.course import common
    from glassformer.course.widgets import Question, code_panel, line_chart, quiz, quiz_feedback, token_label
    from glassformer.data import load_text, train_val_split
    from glassformer.model import DecoderLM, preset
    from glassformer.model.embedding import Embed, Unembed
    from glassformer.model.linear import Linear
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    bigram_runs = {}  # trained bigram models of this session, by (model, steps, seed): text edits never retrain
    return (DecoderLM, Embed, Linear, Question, Unembed, alt, bigram, bigram_runs, code_panel, common, embedding_space,
            line_chart, load_text, mo, param_count, preset, quiz, quiz_feedback, this,
            token_label, torch, train_val_split)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    A neural network computes with numbers, and a token id is only a name: id 43 is not "more" than
    id 42 in any useful sense. So the very first thing a Transformer does is swap every id for a
    list of numbers, a vector, by reading one row of a big table, the **embedding table**. Each row
    is the token's **embedding**. Nobody writes these rows by hand: they start random and training
    moves them, and tokens that behave alike tend to end up with vectors that point alike (this
    chapter measures how far that holds).

    The very last thing the model does is the reverse trip: turn a vector back into one score per
    vocabulary entry (the logits of chapter 8). Between the two sit the attention and MLP blocks
    of the next chapters. This chapter is about the two ends, and about what a model made of
    *only* the two ends can do.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    text = common.text_box()
    mo.hstack([text, picker], widths=[3, 1], align="end")
    return picker, text


@app.cell
def _(common, mo, picker, text, token_label):
    loaded, load_problem = common.load_chosen(picker.value)
    prepared = common.prepare(loaded, text.value)
    tok = loaded.tokenizer
    table = loaded.model.embed.tok.weight.detach().float()           # (V, D): the embedding table
    V, D = table.shape
    labels = [token_label(tok.token_bytes(i)) for i in range(V)]      # how each token is shown
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return D, V, labels, loaded, prepared, table, tok


@app.cell
def _(D, V, loaded, mo, prepared, table, torch):
    # The lookup, and the same thing written as a matrix product: one-hot row times the table.
    _t = prepared.ids[0]
    _one_hot = torch.zeros(V)
    _one_hot[_t] = 1.0
    _diff = (_one_hot @ table - table[_t]).abs().max().item()
    _pos_kind = {"rope": "RoPE", "alibi": "ALiBi"}.get(loaded.model.config.position, loaded.model.config.position)
    _adds = (f" This model also adds a vector for each *position* ({_pos_kind} positions, chapter 3) to its "
             "token's row in the same step: the `if self.positions` lines below."
             if loaded.model.embed.positions is not None else
             f" This model's positions ({_pos_kind}) are not added here: chapter 3 shows where they act."
             if _pos_kind != "none" else "")
    mo.md(rf"""
    ## The embedding table is a lookup

    **{loaded.name}** has a vocabulary of $V = {V:,}$ tokens and vectors of $D = {D}$ numbers, so its
    table is a ${V:,} \times {D}$ matrix $E$. Embedding token $t$ means reading row $t$:

    $$x = E[t] = \text{{onehot}}(t)\, E$$

    The right-hand side is the same row written as a matrix product: a **one-hot** vector (all zeros,
    a single 1 at position $t$) times $E$ picks out row $t$. Nobody computes it that way (it would
    take {V * D:,} multiplications to read one row), but it shows why the table can be trained like
    any other weight matrix. Checked on your first token, id {_t}: the largest difference between `onehot @ E`
    and `E[{_t}]` is {_diff:g}.

    On your text the embedding step turns {len(prepared.ids)} ids into a
    $[1, {len(prepared.ids)}, {D}]$ tensor: one row of $E$ per token.{_adds} Here is the library's
    code, the line that does the lookup highlighted:
    """)
    return


@app.cell
def _(Embed, code_panel):
    code_panel(Embed, highlight="self.tok(ids)")
    return


@app.cell
def _(embedding_space, mo, prepared, tok):
    _texts = [tok.token_bytes(i).decode("utf-8", "replace") for i in prepared.ids]
    _vowels = embedding_space.token_classes(_texts)["vowels"]
    _options = {f"{p}: {r['label']}  (id {r['id']})": p for p, r in
                enumerate(r for r in prepared.strip if not r.get("unknown"))}
    _first = _vowels[0] if _vowels else 0
    token_pick = mo.ui.dropdown(options=_options, value=list(_options)[_first], label="token from your text")
    neighbours_k = mo.ui.slider(3, 16, step=1, value=8, label="neighbours shown", show_value=True)
    mo.vstack([mo.md(r"""
    ## One token's vector, and its neighbours

    Pick a token of your text. The strip shows its vector, one cell per dimension (hover for the
    number), with the vectors of its three nearest neighbours under it; the bar chart lists as many
    neighbours as the slider asks for. Two vectors are compared by
    **cosine similarity**, the cosine of the angle between them:

    $$\cos(a, b) = \frac{a \cdot b}{\lVert a \rVert\, \lVert b \rVert}$$

    1 means the same direction, 0 perpendicular, −1 opposite; the vectors' lengths do not matter.
    The **nearest neighbours** of a token are the rows of $E$ with the highest cosine to its row.
    """), mo.hstack([token_pick, neighbours_k], justify="start")])
    return neighbours_k, token_pick


@app.cell
def _(alt, embedding_space, labels, mo, neighbours_k, prepared, table, token_pick):
    chosen = prepared.ids[token_pick.value]
    _near = embedding_space.nearest(table, chosen, neighbours_k.value)
    _rows_ids = [chosen] + [t for t, _ in _near[:3]]
    _limit = float(table[_rows_ids].abs().max())
    _cells = [{"token": f"{n}: {labels[t]}" if n else f"{labels[t]} (yours)", "dim": d, "value": float(table[t, d]),
               "order": n} for n, t in enumerate(_rows_ids) for d in range(table.shape[1])]
    _strip = alt.Chart(alt.Data(values=_cells)).mark_rect().encode(
        x=alt.X("dim:O", title="dimension", axis=alt.Axis(values=list(range(0, table.shape[1], 16)), labelAngle=0)),
        y=alt.Y("token:N", sort=alt.SortField("order"), title=None, axis=alt.Axis(labelFont="monospace",
                                                                                  labelFontSize=13)),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="redblue", domain=[-_limit, _limit], reverse=True),
                        title="value"),
        tooltip=["token:N", "dim:Q", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=640, height=30 * len(_rows_ids),
                 title=f"the vector of '{labels[chosen]}' (top row) and of its 3 nearest neighbours",
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    _bars = alt.Chart(alt.Data(values=[{"token": labels[t], "key": f"{n:03d} {labels[t]}", "cosine": c, "id": t}
                                       for n, (t, c) in enumerate(_near)])).mark_bar(color="#2563eb").encode(
        x=alt.X("key:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 4)", labelAngle=0,
                                                             labelFont="monospace", labelFontSize=13)),
        y=alt.Y("cosine:Q", title="cosine similarity"),
        tooltip=["token:N", "id:Q", alt.Tooltip("cosine:Q", format=".4f")],
    ).properties(width=560, height=200, title=f"nearest neighbours of '{labels[chosen]}' in the table",
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.vstack([
        mo.ui.altair_chart(_strip, chart_selection=False, legend_selection=False),
        mo.md(f"Token `{labels[chosen]}` is id {chosen}; its vector has length "
              f"{float(table[chosen].norm()):.3f}. Its nearest neighbour is `{labels[_near[0][0]]}` with cosine "
              f"{_near[0][1]:.3f}; neighbour number {len(_near)} is `{labels[_near[-1][0]]}` at {_near[-1][1]:.3f}."),
        mo.ui.altair_chart(_bars, chart_selection=False, legend_selection=False)])
    return (chosen,)


@app.cell
def _(code_panel, embedding_space, mo):
    mo.accordion({"The code behind these charts: nearest and cosine_matrix (glassformer/analysis/embedding_space.py)":
                  mo.vstack([code_panel(embedding_space.nearest), code_panel(embedding_space.cosine_matrix)])})
    return


@app.cell
def _(V, embedding_space, loaded, table, tok):
    # For a big vocabulary the analyses below use the first rows only: in GPT-2's byte-level BPE
    # vocabulary these are the 256 bytes and the earliest (most frequent) merges.
    ROWS_SHOWN = 2000
    shown = list(range(min(V, ROWS_SHOWN)))
    shown_table = table[shown]                                          # (N, D)
    shown_texts = [tok.token_bytes(i).decode("utf-8", "replace") for i in shown]
    classes = embedding_space.token_classes(shown_texts)
    cos = embedding_space.cosine_matrix(shown_table)                    # (N, N)
    _lookup = {"lower-case vowels": "vowels", "lower-case consonants": "consonants"}
    QUESTIONS = [("lower-case vowels", "lower-case consonants"), ("upper-case", "lower-case"),
                 ("digits", "letters"), ("punctuation", "letters")]
    cluster_results = []
    for _a, _b in QUESTIONS:
        _ga, _gb = classes[_lookup.get(_a, _a)], classes[_lookup.get(_b, _b)]
        cluster_results.append((_a, _b, _ga, _gb, embedding_space.group_similarity(cos, _ga, _gb)))
    rows_note = ("" if len(shown) == V else
                 f" (the first {len(shown):,} of the {V:,} rows, to stay fast: in a byte-level BPE vocabulary such as "
                 "GPT-2's those are the single bytes and the earliest, most frequent merges)")
    model_name = loaded.name
    return classes, cluster_results, cos, model_name, rows_note, shown, shown_table, shown_texts


@app.cell
def _(cluster_results, labels, loaded, mo, model_name, rows_note):
    def verdict(r) -> str:
        if r is None:
            return "cannot be measured"
        closer = r.within_a > r.between
        often = r.nearest_same > 2 * r.nearest_chance or r.nearest_same == 1.0   # 100% counts even if chance > 50%
        return ("yes: " if closer and often else
                "weakly: " if closer else "no: ") + (
            f"{r.within_a:.2f} among themselves vs {r.between:.2f} to the others")

    _lines = []
    for _a, _b, _ga, _gb, _r in cluster_results:
        if _r is None:
            _who = ", ".join(f"`{labels[i]}`" for i in _ga[:8]) or "none"
            _lines.append(f"| {_a} vs {_b} | {len(_ga)} vs {len(_gb)} | — | — | — | — | cannot be measured: "
                          f"{_a} has {len(_ga)} member(s) here ({_who}), a group needs two |")
        else:
            _lines.append(f"| {_a} vs {_b} | {len(_ga)} vs {len(_gb)} | {_r.within_a:.3f} | {_r.within_b:.3f} | "
                          f"{_r.between:.3f} | {_r.nearest_same:.0%} (chance {_r.nearest_chance:.0%}) | "
                          f"{verdict(_r)} |")
    mo.md(f"""
    ## Do similar {'characters' if loaded.is_char_level else 'tokens'} cluster? Measured

    If training gave tokens that behave alike similar vectors, groups of tokens should show it. For
    each question below the page computes, over **{model_name}**'s table{rows_note}: the mean cosine
    between two different members of group A, the same inside group B, the mean cosine between a
    member of A and a member of B, and how often a member of A has its nearest neighbour (among A and
    B together) inside A, beside what random neighbours would give. "Yes" below means A's members
    are closer to each other than to B's and find their nearest neighbour in A more than twice as
    often as chance (or every time: when chance is above one half, twice chance is out of reach).

    | question | sizes (A vs B) | within A | within B | between | A's nearest neighbour in A | clusters? |
    |---|---|---|---|---|---|---|
    {chr(10).join("    " + line for line in _lines).lstrip()}
    """)
    return


@app.cell
def _(D, V, alt, chosen, classes, embedding_space, labels, mo, shown, shown_table):
    coords, explained = embedding_space.pca_2d(shown_table)
    _kind = {}
    for _name in ("whitespace", "punctuation", "digits", "upper-case", "lower-case", "vowels"):
        for _i in classes[_name]:
            _kind[_i] = "lower-case vowels" if _name == "vowels" else _name
    _points = [{"x": float(coords[n, 0]), "y": float(coords[n, 1]), "token": labels[t], "id": t,
                "kind": _kind.get(n, "other"), "yours": t == chosen} for n, t in enumerate(shown)]
    _base = alt.Chart(alt.Data(values=_points)).encode(
        x=alt.X("x:Q", title=f"direction 1 ({float(explained[0]):.1%} of the variance)"),
        y=alt.Y("y:Q", title=f"direction 2 ({float(explained[1]):.1%})"),
        color=alt.Color("kind:N", title=None, legend=alt.Legend(orient="top")),
        tooltip=["token:N", "id:Q", "kind:N", alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f")])
    if len(shown) <= 300:  # few enough to draw each token as its own text
        _marks = _base.mark_text(fontSize=15, font="monospace", fontWeight="bold", baseline="middle").encode(
            text="token:N")
    else:
        _marks = _base.mark_circle(size=18, opacity=0.6)
    _you = _base.transform_filter("datum.yours").mark_circle(size=700, fillOpacity=0, stroke="#111", strokeWidth=2)
    _chart = alt.layer(_marks, _you).properties(
        width=620, height=420,
        title=f"{'all' if len(shown) == V else 'the first'} {len(shown):,} rows as 2-D points (PCA of {D} dimensions); "
                                     f"circled: '{labels[chosen]}'",
        usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.vstack([mo.md(rf"""
    A picture of the whole table needs 2 numbers per token instead of {D}. **PCA** (principal component
    analysis) finds the two directions along which the rows differ most and places each token by its
    position along them. It is computed right now, with a singular value decomposition of the
    centred table. Two directions keep {float(explained.sum()):.1%} of the variance, so
    the picture is a flattened shadow: tokens that overlap here may be far apart in {D} dimensions
    (the cosines above are measured in all of them). Hover a point for its token.
    """), mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False)])
    return


@app.cell
def _(code_panel, embedding_space, mo):
    mo.accordion({"pca_2d, token_classes and group_similarity (glassformer/analysis/embedding_space.py)":
                  mo.vstack([code_panel(embedding_space.pca_2d, highlight="svd"),
                             code_panel(embedding_space.token_classes),
                             code_panel(embedding_space.group_similarity)])})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## The linear layer

    Almost every learned computation in a Transformer is a **linear layer**: multiply a vector by a
    weight matrix and add a **bias** vector (many models leave the bias out). With an input $x$ of width $n$, a matrix $W$ of shape
    $n \times m$ and a bias $b$ of width $m$, output number $j$ is a weighted sum of all inputs:

    $$y = xW + b, \qquad y_j = \sum_{i=1}^{n} x_i W_{ij} + b_j$$

    Column $j$ of $W$ holds the weights of output $j$: output $j$ is the dot product of $x$ with that
    column (plus $b_j$), large when $x$ points the same way as the column. Here is glassformer's
    `Linear`, the class every projection inside the blocks uses (queries, keys and values,
    attention's output, the MLP), and below a small one with random weights run on a
    random input. Change the seed: every number is recomputed by the layer itself.
    """)
    return


@app.cell
def _(Linear, code_panel):
    code_panel(Linear, highlight=("addmm", "flat @ self.weight"))
    return


@app.cell
def _(mo):
    linear_seed = mo.ui.number(start=0, stop=999, step=1, value=0, label="seed of the small layer")
    linear_seed
    return (linear_seed,)


@app.cell
def _(Linear, linear_seed, mo, torch):
    torch.manual_seed(int(linear_seed.value))
    _layer = Linear(4, 3)
    with torch.no_grad():  # one-decimal numbers, so the sum can be checked by hand
        _layer.weight.copy_(torch.randn(4, 3).round(decimals=1))
        _layer.bias.copy_(torch.randn(3).round(decimals=1))
        _x = torch.randn(1, 4).round(decimals=1)
        _y = _layer(_x)                                                   # (1, 3): the layer's own forward
    _w, _b = _layer.weight.detach(), _layer.bias.detach()
    _n = lambda v: f"{float(v) + 0.0:.1f}"  # noqa: E731  (+ 0.0 turns -0.0 into 0.0)
    _hot = lambda text: rf"\textcolor{{#c2410c}}{{{text}}}"  # noqa: E731
    _row = lambda vals: r"\begin{bmatrix}" + " & ".join(vals) + r"\end{bmatrix}"  # noqa: E731
    _W = r"\begin{bmatrix}" + r" \\ ".join(" & ".join(_hot(_n(_w[i, j])) if j == 0 else _n(_w[i, j])
                                                       for j in range(3)) for i in range(4)) + r"\end{bmatrix}"
    _terms = " + ".join(f"({_n(_x[0, i])})({_n(_w[i, 0])})" for i in range(4))
    _sum = sum(float(_x[0, i]) * float(_w[i, 0]) for i in range(4)) + float(_b[0])
    mo.md(rf"""
    $$\underbrace{{{_row([_n(v) for v in _x[0]])}}}_{{x\;(1 \times 4)}}
    \underbrace{{{_W}}}_{{W\;(4 \times 3)}} +
    \underbrace{{{_row([_hot(_n(_b[0])), _n(_b[1]), _n(_b[2])])}}}_{{b}} =
    \underbrace{{{_row([_hot(f"{_y[0, 0].item():.2f}"), f"{_y[0, 1].item():.2f}", f"{_y[0, 2].item():.2f}"])}}}_{{y\;(1 \times 3)}}$$

    Output 0 by hand, from column 0 of $W$ (orange): {_terms} + ({_n(_b[0])}) = {_sum:.2f}. The layer
    computed {_y[0, 0].item():.4f}.
    """)
    return


@app.cell
def _(D, V, loaded, mo, prepared, torch):
    _ids = torch.tensor([prepared.ids])
    with torch.no_grad():
        _logits, _trace = loaded.model.run_with_trace(_ids, names=["final_norm", "logits"])
    final_vector = _trace["final_norm"][0, -1].float()                 # (D,): the model's last vector
    _by_hand = final_vector @ loaded.model.unembed.weight.detach().float().T   # (V,)
    model_logits = _logits[0, -1].float()                                # (V,)
    full_probs = _logits[0].float().softmax(-1)                          # (T, V): after every position
    _diff = (_by_hand - model_logits).abs().max().item()
    tied = loaded.model.unembed.weight is loaded.model.embed.tok.weight
    _head_params = [n for n, _ in loaded.model.unembed.named_parameters()]   # what the head holds: weight, bias?
    _bias_note = (" The head has no bias: its only parameter is `unembed.weight`. GPT-2, Llama and Qwen build their "
                  "heads that way too, though not every model does (GPT-J's head adds a bias)."
                  if _head_params == ["weight"] else
                  " Its parameters: " + ", ".join(f"`unembed.{n}`" for n in _head_params) + ".")
    mo.md(rf"""
    ## Back to tokens: the unembedding

    After the last block and the final norm, the model holds one vector $h$ of width $D = {D}$ per
    position. The **unembedding** (the output head) is a linear layer from $D$ to $V = {V:,}$: one
    logit per vocabulary entry,

    $$z = h\, U^\top, \qquad z_t = h \cdot U[t]$$

    where $U$ is a ${V:,} \times {D}$ matrix with one row per token, the same shape as the embedding
    table.{_bias_note} Token $t$ scores high when $h$ points the same way as row $t$. Checked on the last
    position of your text: multiplying the recorded final vector by $U^\top$ gives the model's logits
    to within {_diff:.1e}.

    **Tied embeddings.** Many models use the *same* matrix at both ends, $U = E$: the vector that
    stands for a token coming in is also the direction that predicts it going out. That saves
    ${V:,} \times {D} = {V * D:,}$ parameters. Is **{loaded.name}** tied? Computed on the loaded model:

    ```python
    model.unembed.weight is model.embed.tok.weight   # -> {tied}
    ```

    {"So everything you saw above about the embedding table is also about the output head: to make a "
     "token the likeliest next one, the last vector has to point more towards that token's row than "
     "towards any other row (the rows' lengths count too)." if tied else "So this model learns two separate tables: one to read tokens, one to write them."}
    """)
    return final_vector, full_probs, model_logits, tied


@app.cell
def _(DecoderLM, Unembed, code_panel, mo):
    mo.accordion({"Unembed (glassformer/model/embedding.py) and where DecoderLM ties it":
                  mo.vstack([code_panel(Unembed.forward, highlight=("x @ self.weight.t()", "x @ self.transposed()"),
                                        note="Both lines compute x Eᵀ; the page runs without gradients, so the "
                                             "second one (a cached transposed copy) produced the logits above."),
                             code_panel(DecoderLM.__init__, highlight="self.unembed.weight = self.embed.tok.weight",
                                        note="Tying assigns one Parameter object to both places, so a training "
                                             "step that changes one changes the other.")])})
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## A model that is only the two ends: the bigram model

    Take the embedding table and put a linear layer straight after it, with nothing in between.
    That is a complete language model, the **bigram model**: it predicts the next token from the
    current token alone,

    $$p(\text{next} \mid \text{current} = t) = \mathrm{softmax}(E[t]\, W + b)$$

    It cannot see anything earlier than the current token, so after `q` it can learn that `u` is
    likely, but it gives the same prediction after every `e`, whatever word the `e` is in. Below it
    is trained live on TinyShakespeare (when the chosen model's vocabulary is small enough to train in
    seconds) with the same loop as the big model (random windows of text,
    cross-entropy loss, backpropagation, an optimizer step: AdamW here), then compared with the full
    Transformer. The gap between the two is what attention and the blocks buy.

    Losses are in nats per token: the average of $-\ln p(\text{correct next token})$. Lower is better;
    $e^{\text{loss}}$, the **perplexity**, is how many equally likely choices the model is as unsure as.
    """)
    return


@app.cell
def _(bigram, code_panel, mo):
    mo.accordion({"Bigram and train_bigram (glassformer/toys/bigram.py)":
                  mo.vstack([code_panel(bigram.Bigram), code_panel(bigram.train_bigram, highlight=(
                      "logits = model(x)", "loss = F.cross_entropy", "loss.backward()", "opt.step()"))])})
    return


@app.cell
def _(D, V, load_text, loaded, mo, tok, torch, train_val_split):
    # The corpus in this model's tokens. A BPE tokenizer reads a slice (its vocabulary is big, and
    # encoding the whole file with a pure-Python BPE would take long); the char model reads it all.
    BPE_CHARS = 300_000
    BIGRAM_MAX_VOCAB = 4096   # a bigram over a bigger vocabulary needs minutes, not seconds, to train here
    _text, _ = load_text()
    if loaded.is_char_level:
        _ids = tok.encode(_text, errors="skip")
        corpus_note = f"all {len(_text):,} characters of TinyShakespeare"
    else:
        _ids = tok.encode(_text[:BPE_CHARS])
        corpus_note = f"the first {BPE_CHARS:,} characters of TinyShakespeare ({len(_ids):,} tokens)"
    train_ids, val_ids = train_val_split(torch.tensor(_ids, dtype=torch.long))
    bigram_width = min(D, 128)
    can_train = V <= BIGRAM_MAX_VOCAB
    steps_slider = mo.ui.slider(50, 2000, step=50, value=200, label="training steps", show_value=True)
    retrain = mo.ui.button(value=0, on_click=lambda n: n + 1, label="train again (new seed)")
    _controls = mo.hstack([steps_slider, retrain], justify="start") if can_train else mo.callout(mo.md(
        f"**{loaded.name}** has {V:,} tokens. Its bigram model would compute {V:,} scores for every "
        f"training position and hold {2 * V * bigram_width:,} weights; one step of 1,024 positions takes about "
        f"6 × 1,024 × {V:,} × {bigram_width} = {6 * 1024 * V * bigram_width / 1e9:.0f} billion arithmetic "
        f"operations (forward and backward) in the output layer alone, {200 * 6 * 1024 * V * bigram_width / 1e12:.1f} "
        f"trillion for 200 steps. This page trains bigrams live only for vocabularies of up to "
        f"{BIGRAM_MAX_VOCAB:,} tokens, so it does not train one here. Pick the course model to see it trained live."),
        kind="info")
    _controls
    return bigram_width, can_train, corpus_note, retrain, steps_slider, train_ids, val_ids


@app.cell
def _(V, bigram, bigram_runs, bigram_width, can_train, line_chart, loaded, mo, retrain, steps_slider, train_ids):
    bigram_run = None
    if can_train:
        _key = (loaded.name, steps_slider.value, retrain.value)
        if _key not in bigram_runs:
            with mo.status.progress_bar(total=steps_slider.value, title="training the bigram model",
                                        subtitle=f"{steps_slider.value} steps of 16 windows × 64 tokens") as _bar:
                bigram_runs[_key] = bigram.train_bigram(train_ids, V, bigram_width, steps_slider.value,
                                                        batch_size=16, block_size=64, seed=retrain.value,
                                                        on_step=lambda step, loss: _bar.update())
        bigram_run = bigram_runs[_key]
    if bigram_run is None:
        _out = None
    else:
        _rows = [{"step": s, "loss": l} for s, l in bigram_run.losses]
        _params = sum(p.numel() for p in bigram_run.model.parameters())
        _out = mo.vstack([
            mo.md(f"Trained {bigram_run.steps} steps (seed {retrain.value}) in {bigram_run.seconds:.1f} s, "
                  f"measured on this machine's CPU: an embedding table of {V} × {bigram_width} and a linear layer "
                  f"of {bigram_width} × {V} plus {V} biases, {_params:,} parameters. Loss of the last batch: "
                  f"{bigram_run.losses[-1][1]:.3f}."),
            mo.ui.altair_chart(line_chart(_rows, "step", "loss", title="bigram training loss (each batch)",
                                          y_title="loss (nats per token)", height=180),
                               chart_selection=False, legend_selection=False)])
    _out
    return (bigram_run,)


@app.cell
def _(can_train, mo, prepared):
    predict_at = mo.ui.slider(0, max(1, len(prepared.ids) - 1), step=1, value=len(prepared.ids) - 1,
                              label="predict after the token at position", show_value=True)
    mo.vstack([mo.md("### Next token: bigram vs full model\n\nThe bigram model sees only the token at the chosen "
                     "position; the full model sees your text up to it. Move the slider along your text; try a "
                     "position in the middle of a word."), predict_at]) if can_train else None
    return (predict_at,)


@app.cell
def _(alt, bigram_run, full_probs, loaded, mo, predict_at, prepared, token_label, tok):
    if bigram_run is None:
        _out = None
    else:
        _pos = min(predict_at.value, len(prepared.ids) - 1)
        _here = prepared.ids[_pos]
        _full = full_probs[_pos]                                           # (V,)
        _big = bigram_run.model.next_token_probs(_here)                    # (V,)
        _label = lambda i: token_label(tok.token_bytes(i))  # noqa: E731
        _context = ("…" if _pos > 24 else "") + "".join(
            _label(i) for i in prepared.ids[max(0, _pos - 24):_pos + 1]).replace("`", "'")
        _shown = list(dict.fromkeys(_full.argsort(descending=True)[:8].tolist() +
                                    _big.argsort(descending=True)[:8].tolist()))
        _shown.sort(key=lambda i: -float(_full[i] + _big[i]))
        _names = {"bigram": f"bigram (sees '{_label(_here)}' only)",
                  "full": f"{loaded.name} (sees {_pos + 1} token{'s' if _pos else ''})"}
        _bars = [{"token": _label(i), "key": f"{n:03d} {_label(i)}", "model": _names[m], "p": float(p[i])}
                 for n, i in enumerate(_shown) for m, p in (("bigram", _big), ("full", _full))]
        _chart = alt.Chart(alt.Data(values=_bars)).mark_bar().encode(
            x=alt.X("key:N", sort=None, title=None, axis=alt.Axis(labelExpr="slice(datum.label, 4)", labelAngle=0,
                                                                 labelFont="monospace", labelFontSize=13)),
            xOffset=alt.XOffset("model:N", sort=[_names["bigram"], _names["full"]]),
            y=alt.Y("p:Q", title="probability"),
            color=alt.Color("model:N", title=None, sort=[_names["bigram"], _names["full"]],
                            scale=alt.Scale(range=["#f59e0b", "#2563eb"]), legend=alt.Legend(orient="top")),
            tooltip=["token:N", "model:N", alt.Tooltip("p:Q", format=".4f")],
        ).properties(width=620, height=220, title=f"next-token probabilities after position {_pos}",
                     usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
        _tb, _tf = int(_big.argmax()), int(_full.argmax())
        _actual = (f" In your text the next token is `{_label(prepared.ids[_pos + 1])}`: the bigram gave it "
                   f"{_big[prepared.ids[_pos + 1]].item():.1%}, the full model "
                   f"{_full[prepared.ids[_pos + 1]].item():.1%}." if _pos + 1 < len(prepared.ids) else "")
        _out = mo.vstack([
            mo.md(f"Text up to position {_pos}: `{_context}`. Bars: the tokens either model ranks in its top 8."),
            mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
            mo.md((f"Both models' favourite is `{_label(_tb)}`: the bigram gives it {_big[_tb].item():.1%}, the full "
                   f"model {_full[_tf].item():.1%}." if _tb == _tf else
                   f"The bigram's favourite is `{_label(_tb)}` ({_big[_tb].item():.1%}); the full model's is "
                   f"`{_label(_tf)}` ({_full[_tf].item():.1%}), to which the bigram gives {_big[_tf].item():.1%}.")
                  + _actual),
        ])
    _out
    return


@app.cell
def _(mo):
    eval_size = mo.ui.dropdown(options={"16 windows (fast)": 16, "64 windows": 64, "the whole split (slow)": 0},
                               value="16 windows (fast)", label="validation loss measured on")
    eval_size
    return (eval_size,)


@app.cell
def _(V, bigram, bigram_run, bigram_width, corpus_note, eval_size, loaded, mo, prepared, torch, train_ids, val_ids):
    import inspect as _inspect
    _block = min(loaded.model.config.n_ctx, 256)
    _windows = eval_size.value or None
    _full_losses = bigram.window_losses(loaded.model, val_ids, _block, _windows)    # (N, T): every target scored
    full_val = _full_losses.double().mean().item()
    _n_windows, _n = _full_losses.shape[0], _full_losses.numel()                     # windows, tokens scored
    _where = (f"the same {_n:,} tokens of the validation split (the last 10% of {corpus_note}; "
              + (f"{_n_windows} windows of {_block} spread across it)" if _windows else "the whole split)"))
    _unseen = ((" The bigram never trained on these tokens" if bigram_run is not None else "")
               + (", and neither did a model trained on TinyShakespeare's training split." if loaded.is_char_level
                  and bigram_run is not None else "." if bigram_run is not None else "")
               + ("" if loaded.is_char_level else
                  " Careful: a BPE model trained on TinyShakespeare's training split *has* seen them, since this "
                  "page encodes only the first slice of the text."))
    _ppl = lambda loss: torch.tensor(loss).exp().item()  # noqa: E731

    def _pm(gap) -> str:  # the gap's standard error, in words
        return (f"standard error {gap.stderr:.3f}, from the spread of the {gap.windows} windows' means"
                if gap.windows > 1 else "a single window, so no spread to judge by")

    if bigram_run is None:
        _out = mo.md(f"Full model's validation loss on {_where}: {full_val:.3f} nats per token "
                     f"(perplexity {_ppl(full_val):.1f}).{_unseen}")
    else:
        _table = bigram.counts(train_ids, V)
        best = bigram.count_entropy(_table)
        _counting = bigram.CountBigram(_table)
        _alpha = _inspect.signature(bigram.CountBigram).parameters["alpha"].default  # the smoothing it used
        _counted_losses = bigram.window_losses(_counting, val_ids, _block, _windows)
        _big_losses = bigram.window_losses(bigram_run.model, val_ids, _block, _windows)
        counted_val = _counted_losses.double().mean().item()
        big_val = _big_losses.double().mean().item()
        _yours = ""
        if len(prepared.ids) >= 2:
            _text_ids = torch.tensor(prepared.ids)
            _b = bigram.mean_loss(bigram_run.model, _text_ids, len(_text_ids) - 1, 1)
            _f = bigram.mean_loss(loaded.model, _text_ids, len(_text_ids) - 1, 1)
            _yours = (f"\n\nOn your own text ({len(prepared.ids) - 1} predictions): bigram {_b:.3f}, "
                      f"{loaded.name} {_f:.3f} nats per token.")
        full_gap = bigram.loss_gap(_full_losses, _big_losses)      # bigram minus full model, target by target
        train_gap = bigram.loss_gap(_counted_losses, _big_losses)  # trained bigram minus counting bigram
        _gap = full_gap.mean
        _params = sum(p.numel() for p in bigram_run.model.parameters())
        _card = loaded.card or {}
        _recorded = (f" ({loaded.name}'s card records {_card['steps']:,} training steps and a final validation loss "
                     f"of {_card['final_val_loss']:.3f}.)" if {"steps", "final_val_loss"} <= set(_card) else "")
        if full_gap.within_noise():
            _verdict = (f"On these {full_gap.tokens:,} tokens **{loaded.name}** and the trained bigram cannot be told "
                        f"apart: the full model's loss is {'lower' if _gap > 0 else 'higher'} by {abs(_gap):.3f} nats "
                        f"per token, within two standard errors of 0 ({_pm(full_gap)}). Scoring more windows (the menu "
                        "above) may separate them. Either way, on these tokens whatever it learned about the tokens "
                        f"before the current one does not show.{_recorded}")
        elif _gap > 0:
            _verdict = (f"The full model's loss is lower than the trained bigram's by {_gap:.3f} nats per token "
                        f"({_pm(full_gap)}): "
                        f"on average (a geometric mean) it gives the correct next token {_ppl(_gap):.1f}× the "
                        f"probability the bigram gives. Where the bigram is as unsure as a choice among "
                        f"{_ppl(big_val):.1f} equally likely tokens, the full model is down to {_ppl(full_val):.1f}. "
                        "That gap is what looking further back than one token buys: attention fetching earlier "
                        "tokens, the MLPs combining what it fetched.")
        else:
            _verdict = (f"Here **{loaded.name}** does *worse* than the bigram, by {-_gap:.3f} nats per token "
                        f"({_pm(full_gap)}, so more than noise). This page does not measure why. A model does this "
                        "when it has learned less than the bigram's table of next-token odds: a run stopped after few "
                        "steps, a model trained on very different text, or random weights."
                        f"{_recorded} Looking further back only helps a model that has learned what to look for.")
        _squeeze = (f" and its {bigram_width}-number vectors, fewer numbers than the {V:,} tokens, make similar "
                    "tokens share what they learn" if bigram_width < V else "")
        _bigram_vs_counts = (
            f"{bigram_run.steps} steps of training found about what counting finds: the difference is within two "
            f"standard errors of 0 ({_pm(train_gap)})" if train_gap.within_noise() else
            f"{bigram_run.steps} steps of training have not yet found what counting finds ({_pm(train_gap)})"
            if train_gap.mean > 0 else
            f"{bigram_run.steps} steps of training found a bigram that predicts these unseen tokens better than the "
            f"smoothed counts do ({_pm(train_gap)}). A likely reason, not tested here: counts of rare pairs are "
            f"noisy and the counting model trusts them almost fully (its smoothing adds only {_alpha:g}), while "
            f"a trained model fits them less closely{_squeeze}")
        _out = mo.md(rf"""
    ### What attention and the blocks buy, measured

    | model | what it sees | learned numbers | validation loss (nats/token) | perplexity |
    |---|---|---|---|---|
    | counting bigram | the current token | {V * V:,} counts | {counted_val:.3f} | {_ppl(counted_val):.2f} |
    | bigram (trained above) | the current token | {_params:,} parameters | {big_val:.3f} | {_ppl(big_val):.2f} |
    | {loaded.name} | up to {_block} tokens (windows of {_block}) | {loaded.model.num_params():,} parameters | {full_val:.3f} | {_ppl(full_val):.2f} |

    All measured now, on {_where}.{_unseen} Each difference below comes with its standard error: the
    three models are scored on the same tokens, so the page takes the difference target by target,
    averages it per window, and measures how much those window averages vary. A difference smaller
    than two standard errors could come from which stretches of text happen to be scored.

    The counting bigram is the bigram without training: count every
    pair of neighbouring tokens in the training split and predict
    $p(b \mid a) = \text{{count}}(a\,b) / \text{{count}}(a)$ (for the validation score, {_alpha:g} is
    added to every count first, so that a pair never seen in training gets a small probability instead
    of 0, whose log is $-\infty$). On the training text itself, unsmoothed, it scores
    {best:.3f}, the lowest loss any bigram model can reach there (the conditional entropy of the
    counts). On the validation tokens the trained bigram scores {big_val:.3f} and the counting one
    {counted_val:.3f}, a difference of {train_gap.mean:+.3f}: {_bigram_vs_counts}.

    {_verdict} However long it trains, the embedding table and the head alone cannot get below
    {best:.3f} on the text they learn from.{_yours}
    """)
    _out
    return


@app.cell
def _(code_panel, bigram, mo):
    mo.accordion({"How the losses are measured: window_losses, loss_gap, CountBigram and count_entropy "
                  "(glassformer/toys/bigram.py)":
                  mo.vstack([code_panel(bigram.window_losses), code_panel(bigram.loss_gap),
                             code_panel(bigram.CountBigram),
                             code_panel(bigram.count_entropy)])})
    return


@app.cell
def _(alt, loaded, mo, param_count, preset):
    _models = [(loaded.name, loaded.model.config), ("GPT-2 small", preset("gpt2")),
               ("Qwen3-0.6B", preset("qwen3-0.6b"))]
    _rows, _bars, _shares = [], [], []
    for _name, _cfg in _models:
        _parts = param_count.parameter_breakdown(_cfg)
        _total = sum(_parts.values())
        _emb = _parts["token embedding"] + _parts["unembedding"]
        _shares.append(_emb / _total)
        _rows.append(f"| {_name} | {_cfg.vocab_size:,} × {_cfg.d_model} | {_parts['token embedding']:,} | "
                     f"{'tied (0)' if _cfg.tie_embeddings else format(_parts['unembedding'], ',')} | {_total - _emb:,} | "
                     f"{_total:,} | {_emb / _total:.1%} |")
        _bars += [{"model": _name, "part": _p, "parameters": _v, "share": _v / _total}
                  for _p, _v in _parts.items() if _v]
    _chart = alt.Chart(alt.Data(values=_bars)).mark_bar().encode(
        y=alt.Y("model:N", sort=None, title=None), x=alt.X("share:Q", stack="normalize", title="share of parameters",
                                                           axis=alt.Axis(format="%")),
        color=alt.Color("part:N", title=None, legend=alt.Legend(orient="top")),
        tooltip=["model:N", "part:N", alt.Tooltip("parameters:Q", format=","), alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=600, height=110, title="where the parameters are",
                 usermeta={"embedOptions": {"renderer": "svg", "actions": False}})
    mo.vstack([mo.md(f"""
    ## How big is the table?

    The embedding table has $V \\times D$ **parameters** (learned numbers). Counted from each model's
    configuration (no weights downloaded; the function below is tested against built models):

    | model | table V × D | embedding | unembedding | everything else | total | embedding + head share |
    |---|---|---|---|---|---|---|
    {chr(10).join("    " + r for r in _rows).lstrip()}

    With {_models[0][1].vocab_size:,} tokens, the {_models[0][0]} model's embedding table and output head
    hold {_shares[0]:.1%} of its parameters; GPT-2's {_models[1][1].vocab_size:,}-token ones hold
    {_shares[1]:.1%} of GPT-2, and Qwen3's {_models[2][1].vocab_size:,}-token ones {_shares[2]:.1%} of
    Qwen3-0.6B (a tied head adds no parameters of its own). In a small model with a big
    vocabulary, a large part of what it learns is simply one vector per token.
    """), mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False)])
    return


@app.cell
def _(code_panel, mo, param_count):
    mo.accordion({"parameter_breakdown (glassformer/analysis/param_count.py)": code_panel(param_count.parameter_breakdown)})
    return


@app.cell
def _(Question):
    questions = [
        Question("lookup", "What does the embedding layer compute for token id 7?",
                 ["Row 7 of the embedding table", "The number 7 multiplied by a weight",
                  "A vector of seven ones", "The average of all rows up to 7"],
                 0, "Embedding is a table lookup: row t is token t's vector. It equals a one-hot vector times the "
                    "table, which is why the rows can be trained by gradient descent."),
        Question("cosine", "Two embeddings have cosine similarity 1. What do you know?",
                 ["They are equal", "They point in exactly the same direction (their lengths may differ)",
                  "They are perpendicular", "Their tokens are always next to each other in text"],
                 1, "Cosine divides the dot product by both lengths, so only the direction counts: a vector and "
                    "twice that vector have cosine 1."),
        Question("tied", "A model ties its embeddings. What is true?",
                 ["The output head reuses the embedding table, so a token's input vector is also its output "
                  "direction", "The model cannot be trained", "Each token gets two vectors",
                  "The vocabulary must be smaller than D"],
                 0, "Tied means U = E: logits are h · E[t]. One matrix, V × D parameters saved."),
        Question("bigram", "Why can a bigram model not reach a well-trained Transformer's loss, however long it "
                 "trains?",
                 ["Its learning rate is too small", "It sees only the current token, so it makes the same prediction "
                  "after every occurrence of that token", "It has no softmax",
                  "It is trained on different text"],
                 1, "Its best possible loss is the conditional entropy of next-token counts given the current "
                    "token; using earlier tokens (attention) is the only way below that."),
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
