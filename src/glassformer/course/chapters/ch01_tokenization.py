import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="1. Tokenization", css_file="course.css")


@app.cell
def _():
    import time

    import marimo as mo
    import regex
    import torch

    from glassformer import timing
    from glassformer.course import common
    from glassformer.course.widgets import Question, TokenStrip, code_panel, line_chart, quiz, quiz_feedback, token_rows
    from glassformer.data import load_text
    from glassformer.tokenizers.bpe import BPETokenizer, merge_pair
    from glassformer.tokenizers.char import CharTokenizer
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (BPETokenizer, CharTokenizer, Question, TokenStrip, code_panel, common, line_chart, load_text, merge_pair,
            mo, quiz, quiz_feedback, regex, time, timing, token_rows, torch, this)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    A model can only do arithmetic, so text must become numbers first. A **tokenizer** cuts text into
    pieces (*tokens*) from a fixed list (the *vocabulary*) and replaces each piece by its position in
    that list (its *id*). Three ways to cut:

    - **Characters**: a tiny vocabulary, nothing is ever unknown (within the alphabet), but texts
      become long: one token per letter.
    - **Words**: short sequences, but the vocabulary explodes (every name, typo and plural is a new
      word) and any word not seen in training is simply unknown.
    - **Subwords**: frequent words are one token, rare words are spelled with a few pieces. Most
      modern language models cut this way. The variants differ: byte-level **byte-pair encoding
      (BPE)** (GPT-2, Llama 3, Qwen: the one built here), SentencePiece BPE with a fallback to bytes
      (Llama 2), WordPiece (BERT) and Unigram (T5).

    Here is what each choice costs on the course's corpus, TinyShakespeare, counted right now:
    """)
    return


@app.cell
def _(CharTokenizer, load_text, mo, regex):
    from glassformer.data import CorpusError

    try:
        corpus, _ = load_text()
        corpus_name = "TinyShakespeare"
        _missing = None
    except CorpusError as _exc:  # offline, nothing cached: learn from glassformer's own source instead
        import pathlib as _pl

        import glassformer as _gf
        corpus = "\n".join(p.read_text() for p in sorted(_pl.Path(_gf.__file__).parent.rglob("*.py")))
        corpus_name = "glassformer's own source code"
        _missing = mo.callout(mo.md(f"TinyShakespeare is not available ({_exc}) This chapter uses "
                                    f"{corpus_name} ({len(corpus):,} characters) as its corpus instead."), kind="warn")
    _words = regex.findall(r"\p{L}+|\p{N}+|[^\s\p{L}\p{N}]", corpus)
    _char = CharTokenizer.train(corpus)
    _half = set(regex.findall(r"\p{L}+", corpus[: len(corpus) // 2]))
    _second = regex.findall(r"\p{L}+", corpus[len(corpus) // 2:])
    _unseen = sum(w not in _half for w in _second) / len(_second)
    _unseen_distinct = len(set(_second) - _half) / len(set(_second))
    _table = mo.md(f"""
    | cut by | vocabulary size | tokens for the whole corpus ({corpus_name}) |
    |---|---|---|
    | characters | {_char.vocab_size} | {len(corpus):,} |
    | words (and punctuation) | {len(set(_words)):,} | {len(_words):,} |

    And the weakness of words: a word vocabulary built from the *first half* of the corpus meets an
    unknown word at **{_unseen:.1%}** of the word occurrences in the second half; counted once each,
    **{_unseen_distinct:.1%}** of the second half's distinct words are new.
    """)
    mo.vstack([_missing, _table]) if _missing else _table
    return (corpus,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Byte-pair encoding, trained live

    Byte-level BPE starts from the 256 possible **bytes**. UTF-8 writes every Unicode code point as
    1 to 4 bytes, and what looks like one character can be several code points (a thumbs-up with a
    skin tone is two code points, 8 bytes; a family emoji joins several people into one picture), so
    no text is ever unknown. Then it learns **merges**:

    1. count every pair of neighbouring tokens in the training text;
    2. the most frequent pair becomes a new token, with the next free id;
    3. replace that pair everywhere, and repeat until the vocabulary is as large as wanted.

    Before counting, the text is pre-split by a regular expression into words-with-their-leading-space,
    numbers and punctuation, so merges never glue a word to the punctuation after it.

    Choose the vocabulary size and how much of the corpus to learn from; training runs when you release
    the slider. (A small example by hand comes first.)
    """)
    return


@app.cell
def _(BPETokenizer, mo):
    # BPE by hand on a string small enough to follow, trained by the same function as below; on_merge
    # reports every pair's count just before each merge.
    _text = "aaabdaaabac"
    _steps = []
    _tok = BPETokenizer.train(_text, 259, pattern=None, on_merge=lambda m, counts: _steps.append((m, counts)))
    _names = {97: "a", 98: "b", 99: "c", 100: "d", 256: "Z", 257: "Y", 258: "X"}
    _show = lambda ids: " ".join(_names.get(i, str(i)) for i in ids)  # noqa: E731
    _lines = []
    for _k, (_m, _counts) in enumerate(_steps):
        _seq = BPETokenizer(_tok.merges[:_k], None).encode(_text)
        _pairs = ", ".join(f"{_show(p)}: {c}" for p, c in sorted(_counts.items(), key=lambda kv: -kv[1]))
        _lines.append(f"| {_k + 1} | `{_show(_seq)}` | {_pairs} | `{_show(_m.pair)}` → **{_names[_m.new_id]}** "
                      f"(id {_m.new_id}) |")
    _final = BPETokenizer(_tok.merges, None).encode(_text)
    mo.md(f"""**By hand first.** Train on `{_text}` (no pre-split), naming each new token with a capital letter:

| step | tokens before | pair counts | merged (ties: the earlier token in GPT-2's byte order wins; here, the smaller id) |
|---|---|---|---|
""" + "\n".join(_lines) + f"""

After {len(_steps)} merges the 11 bytes are {len(_final)} tokens: `{_show(_final)}`, ids `{_final}`.
Decoding joins each token's bytes: `{_tok.decode(_final)!r}`, the text we started from.""")
    return


@app.cell
def _(mo):
    vocab_size = mo.ui.slider(260, 1024, step=4, value=512, label="vocabulary size", show_value=True, debounce=True)
    train_chars = mo.ui.slider(50_000, 1_100_000, step=50_000, value=300_000, label="characters to learn from",
                               show_value=True, debounce=True)
    mo.hstack([vocab_size, train_chars], justify="start")
    return train_chars, vocab_size


@app.cell
def _(BPETokenizer, corpus, mo, time, train_chars, vocab_size):
    _start = time.perf_counter()
    bpe = BPETokenizer.train(corpus[: train_chars.value], vocab_size.value, special_tokens=["<|endoftext|>"])
    _seconds = time.perf_counter() - _start
    _n = len(bpe.encode(corpus))
    mo.md(f"Trained **{len(bpe.merges)} merges** on {train_chars.value:,} characters in **{_seconds:.2f} s** "
          f"(vocabulary: 256 bytes + {len(bpe.merges)} merges + 1 special token = {bpe.vocab_size}).\n\n"
          f"The cost table's third row, subwords:\n\n| cut by | vocabulary size | tokens for the whole corpus |\n"
          f"|---|---|---|\n| subwords (this BPE) | {bpe.vocab_size:,} | {_n:,} ({len(corpus) / _n:.2f} characters "
          f"per token) |")
    return (bpe,)


@app.cell
def _(bpe, corpus, mo, regex):
    def _rows(merges):
        return "\n".join(f"| {m.new_id} | `{bpe.vocab[m.pair[0]]!r}` + `{bpe.vocab[m.pair[1]]!r}` | `{m.token!r}` | "
                         f"{m.count:,} |" for m in merges)

    _first, _last = _rows(bpe.merges[:12]), _rows(bpe.merges[-6:])
    _tail = [m.token.decode("utf-8", errors="replace") for m in bpe.merges[-6:]]
    _vocabulary = set(regex.findall(r"\p{L}+", corpus))  # the corpus's whole words
    _words = [t for t in _tail if t.startswith(" ") and t.strip() in _vocabulary]
    mo.md(f"""The first merges are the commonest pairs of English (and of Shakespeare). Later merges build longer
pieces: of the last six, {len(_words)} {'is a whole word' if len(_words) == 1 else 'are whole words'} with the
space in front ({', '.join(repr(w) for w in _words) or 'none'}); the others are pieces without a leading space:
fragments, endings, contractions, or words that start a line.

| id | pair merged | new token | count when merged |
|---|---|---|---|
{_first}
| … | | | |
{_last}
""")
    return


@app.cell
def _(common, mo):
    text = common.text_box(label="Your text (try a name, an emoji, some Chinese)")
    text
    return (text,)


@app.cell
def _(bpe, mo):
    step = mo.ui.slider(0, len(bpe.merges), step=1, value=min(40, len(bpe.merges)), label="merges applied",
                        show_value=True, full_width=True)
    mo.md(f"### Step through the merges\n\nDrag to apply the first *k* merges learned above (from the corpus) "
          f"to your text: at 0 every byte is its own token; each step applies one more merge. A piece that "
          f"holds only part of a character's bytes is shown by its byte values.\n\n{step}")
    return (step,)


@app.cell
def _(BPETokenizer, TokenStrip, bpe, mo, step, text, token_rows):
    _partial = BPETokenizer(bpe.merges[: step.value], bpe.pattern)
    _sample = text.value or "To be"
    try:
        _ids = _partial.encode(_sample)
        _problem = None
    except ValueError as _exc:
        _ids, _problem = [], str(_exc)
    _m = bpe.merges[step.value - 1] if step.value else None
    _what = (f"Merge {step.value}: `{bpe.vocab[_m.pair[0]]!r}` + `{bpe.vocab[_m.pair[1]]!r}` → token {_m.new_id} "
             f"`{_m.token!r}` (seen {_m.count:,} times when it was merged)." if _m else "No merges yet: raw UTF-8 bytes.")
    mo.vstack([mo.md(_what), mo.ui.anywidget(TokenStrip(tokens=token_rows(_partial, _ids)[:400])),
               mo.md(f"**{len(_ids)} tokens** for {len(_sample)} characters ({len(_sample.encode('utf-8', 'replace'))} bytes). "
                     "Hover a token for its id and bytes." if not _problem else f"⚠️ {_problem}")])
    return


@app.cell
def _(BPETokenizer, code_panel, merge_pair, mo):
    mo.accordion({
        "How training keeps pair counts up to date: BPETokenizer.train (glassformer/tokenizers/bpe.py)":
            code_panel(BPETokenizer.train),
        "Encoding one chunk: earliest-learned merge first": code_panel(BPETokenizer.encode_chunk),
        "merge_pair": code_panel(merge_pair),
    })
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Three tokenizers, one text

    The same text through the course model's character tokenizer, the BPE you just trained, and a
    pretrained tokenizer (GPT-2's 50,257-token vocabulary, when it has been downloaded).
    Characters the course model has never seen cannot be encoded at all: they are greyed out.
    """)
    return


@app.cell
def _(BPETokenizer, TokenStrip, bpe, common, mo, text, token_rows):
    from glassformer.registry import load_model

    _sample = text.value or "To be"
    _course = load_model("course")
    _char = common.prepare(_course, _sample, max_tokens=10_000)
    _rows = [("characters (course model)", len(_char.ids), _char.strip)]
    try:
        _bpe_ids = bpe.encode(_sample)
        _rows.append((f"your BPE ({bpe.vocab_size} tokens)", len(_bpe_ids), token_rows(bpe, _bpe_ids)))
    except ValueError as _exc:
        _rows.append(("your BPE", 0, []))
    _pretrained_note = ""
    try:
        from glassformer.registry import hub_tokenizer
        _gpt2 = hub_tokenizer("gpt2")
        _ids = _gpt2.encode(_sample)
        _rows.append((f"GPT-2 ({_gpt2.vocab_size:,} tokens)", len(_ids), token_rows(_gpt2, _ids)))
    except Exception as _exc:
        _pretrained_note = f"*GPT-2's tokenizer: unavailable here ({_exc}). It appears once downloaded.*"
    _parts = []
    for _name, _n, _strip in _rows:
        _parts += [mo.md(f"**{_name}: {_n} tokens**"), mo.ui.anywidget(TokenStrip(tokens=_strip[:300]))]
    if _pretrained_note:
        _parts.append(mo.md(_pretrained_note))
    _notice = _char.notice()
    mo.vstack(_parts + ([_notice] if _notice else []))
    return


@app.cell
def _(bpe, mo, regex, text):
    # Where the pre-split cuts, the round trip, and the quirks that follow from them, all measured on your BPE.
    _sample = text.value or "To be"
    _chunks = regex.findall(bpe.pattern, _sample) if bpe.pattern else [_sample]
    _back = bpe.decode(bpe.encode(_sample))
    _cases = [("the", " the"), ("2024", "1234567"), ("hello", "Hallo"), ("the king", "le roi"),
              ("king", "王")]
    _cost = lambda s: len(bpe.encode(s))  # noqa: E731
    _rows = "\n".join(f"| `{a!r}` → {_cost(a)} | `{b!r}` → {_cost(b)} |" for a, b in _cases)
    mo.md(f"""### What encoding does with your text

**Pre-split** into {len(_chunks)} chunks (merges never cross these borders):
{" · ".join(f"`{c!r}`" for c in _chunks[:40])}{" …" if len(_chunks) > 40 else ""}

**Round trip**: `decode(encode(text)) == text` is **{_back == _sample}**: byte-level BPE loses nothing.

**Quirks** (tokens per string, your BPE): a word with and without its leading space are different tokens;
digits split into pieces; languages the corpus rarely saw cost more tokens per character.

| string | string |
|---|---|
{_rows}
""")
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Special tokens

    Some ids mean something to the *program*, not the text: `<|endoftext|>` marks where one document
    ends and the next begins; chat models add tokens for "the user speaks" and "the assistant speaks".
    They must never be produced by typing their spelling, or a user could forge them: our `encode`
    treats the string `<|endoftext|>` as ordinary text unless the caller explicitly allows it.
    """)
    return


@app.cell
def _(bpe, mo):
    _s = "The end.<|endoftext|>A new story"
    mo.md(f"""
    | call | ids (last few) |
    |---|---|
    | `bpe.encode(s)` | `{bpe.encode(_s)[-8:]}` |
    | `bpe.encode(s, allowed_special="all")` | `{bpe.encode(_s, allowed_special="all")[-8:]}` (id {bpe.eos_id} is `<|endoftext|>`) |
    """)
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Why sequence length is expensive

    Attention compares every position with every earlier one: a text of $T$ tokens makes a
    $T \times T$ table per head and layer, and that part of the work grows with the *square* of the
    length. The rest (the projections and the MLP) grows in proportion to $T$. Which part dominates
    depends on the length and the model's width; the chart measures the course model (each point
    the median of several runs on one CPU thread), and the caption counts the multiply-adds and
    compares them with what was measured. Fewer, bigger tokens make the same text cheaper either way.
    """)
    return


@app.cell
def _(line_chart, mo, timing, torch):
    from glassformer.registry import load_model as _load

    _model = _load("course").model
    _lengths = (16, 32, 64, 96, 128)
    _gen = torch.Generator().manual_seed(0)
    _batches = {T: torch.randint(0, _model.config.vocab_size, (8, T), generator=_gen) for T in _lengths}
    with torch.no_grad():   # every length once per round, in turns: a busy moment falls on all of them
        _times = timing.measure_in_turns({T: (lambda T=T: _model(_batches[T])) for T in _lengths},
                                         repeats=9, budget=1.0)
    # Run i of each length is from the same round: paired, they give the growth and its interval.
    _growth = timing.Comparison("128 tokens", "16 tokens", _times[128].seconds, _times[16].seconds)
    _rows = [{"tokens": T, "ms per forward (batch 8)": t.median * 1e3} for T, t in _times.items()]
    # Multiply-adds per token per layer: the matrices (q, k, v, output, MLP) vs the T x T part
    # (q.k for each position, then the weighted sum of values; the masked half is computed too).
    _cfg = _model.config
    _matrices = sum(p.numel() for n, p in _model.blocks[0].named_parameters() if p.dim() == 2)
    _square = lambda T: 2 * T * _cfg.n_heads * _cfg.head_dim  # noqa: E731
    _share = lambda T: _square(T) / (_matrices + _square(T))  # noqa: E731
    _even = _matrices / (2 * _cfg.n_heads * _cfg.head_dim)
    _predicted = 128 * (_matrices + _square(128)) / (16 * (_matrices + _square(16)))   # work at 128 / work at 16
    _low, _high = _growth.interval
    if _growth.coverage < timing.CONFIDENCE:
        _fit = "too few runs finished in the time allowed to compare it with the count"
    elif _high < _predicted / 1.1:
        _fit = ("less than the count predicts, so at these sizes the time is not all multiply-adds: part of it "
                "does not grow with the length (a hypothesis, not measured here: fixed costs per call, such as "
                "Python and starting each operation)")
    elif _low > _predicted * 1.1:
        _fit = ("more than the count predicts (a hypothesis, not measured here: longer inputs fit less well in "
                "the CPU's caches)")
    else:
        _fit = "about what the count predicts"
    _each = "; ".join(f"{T}: {t.figure()}" for T, t in _times.items())
    mo.vstack([mo.ui.altair_chart(line_chart(_rows, "tokens", "ms per forward (batch 8)",
                                             title="forward time vs sequence length (median of runs)"),
                                  chart_selection=False),
               mo.md(f"In this model (D = {_cfg.d_model}) each layer's matrices cost {_matrices:,} multiply-adds per "
                     f"token, while the $T \\times T$ part costs about $2 T D$ = {_share(128):.0%} of the total at 128 "
                     f"tokens and {_share(16):.0%} at 16. So the count predicts that 8 times the tokens take "
                     f"{_predicted:.1f} times the work, close to proportional: the square only takes over past "
                     f"~{_even:,.0f} tokens, beyond this model's context of {_cfg.n_ctx}. Measured here, the time grew "
                     f"**{_growth.speedup:.1f}×** from 16 to 128 tokens ({_low:.1f}–{_high:.1f}×, {_growth.runs} runs "
                     f"in turns): {_fit}. In general the square dominates only past roughly 6 × D tokens (the "
                     f"matrices grow with D², the square with D): tens of thousands of tokens for big models "
                     f"(chapter 10).\n\n<small>Each point: median time, with the interval that holds it at 95% "
                     f"confidence, all lengths timed in turns on one CPU thread ({_each}).</small>")])
    return


@app.cell
def _(Question):
    questions = [
        Question("bytes", "Why does a byte-level BPE tokenizer never meet an unknown character?",
                 ["Its vocabulary lists every Unicode character", "It starts from the 256 bytes, and UTF-8 writes any "
                  "character as bytes", "It replaces unknown characters with spaces", "It asks the model"],
                 1, "Every text is a sequence of bytes; merges only add bigger pieces on top."),
        Question("merge", "What does one step of BPE training do?",
                 ["Splits the longest token in two", "Merges the most frequent pair of neighbouring tokens into a "
                  "new token", "Removes the rarest token", "Sorts the vocabulary"],
                 1, "Count pairs, merge the top one everywhere, give it the next id, repeat."),
        Question("tradeoff", "Compared with characters, what does a larger subword vocabulary give?",
                 ["Longer sequences", "Shorter sequences for the same text, at the price of a bigger embedding table",
                  "More unknown words", "No change in length"],
                 1, "Bigger tokens mean fewer of them; every vocabulary entry needs its own row of weights."),
        Question("special", "Why should typing '<|endoftext|>' not produce the special end-of-text id by default?",
                 ["It is too long", "Users could forge control tokens the program relies on",
                  "The id does not exist", "It would crash the model"],
                 1, "Special tokens carry meaning for the program; only the program should insert them."),
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
