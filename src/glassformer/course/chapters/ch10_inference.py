import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="10. Inference engineering", css_file="course.css")


@app.cell
def _():
    import marimo as mo
    import torch

    from glassformer import generate as gen
    from glassformer import speculative, timing
    from glassformer.course import common
    from glassformer.course.widgets import Question, code_panel, line_chart, matrix_heatmap, quiz, quiz_feedback
    from glassformer.decode_paths import bytes_read_per_token
    from glassformer.memory import peak_tensor_bytes
    from glassformer.model import quantize, sliding_window, tiled_attention
    from glassformer.precision import cpu_capability
    from glassformer.threads import one_thread   # the course's small models: one thread is faster, far faster when busy
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    return (Question, bytes_read_per_token, code_panel, common, cpu_capability, gen, line_chart, matrix_heatmap, mo,
            one_thread, peak_tensor_bytes, quantize, quiz, quiz_feedback, sliding_window, speculative, this,
            tiled_attention, timing, torch)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(cpu_capability, mo):
    mo.md(f"""
    Training reads a whole text at once: every position is computed in parallel, in a few big matrix
    multiplications. Writing is different. A model produces one token per call, and the next call
    needs that token, so **decoding** is a loop of small steps. Each step still multiplies by every
    weight matrix of the model, but for one vector instead of thousands, so for a model of any real
    size the processor mostly waits for the weights to arrive from memory. Inference engineering is
    the art of making each step read less: remember what was already computed, never build what is
    not needed, read fewer bytes, or check several tokens with one read.

    Every time on this page is measured when it runs, on this machine's CPU
    (**{cpu_capability().summary}**); another machine gives other numbers. Every comparison is timed
    as in chapter 0: on one CPU thread, the two things several times in turns, with the number of
    runs and an interval beside each figure, and "faster" or "slower" only when the runs agree
    beyond chance.
    """)
    return


@app.cell
def _(common, mo):
    picker = common.model_picker()
    prompt_box = common.text_box("KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by ",
                                 label="Prompt (the model continues it)", key="prompt")
    mo.hstack([prompt_box, picker], widths=[3, 1], align="end")
    return picker, prompt_box


@app.cell
def _(common, mo, picker, prompt_box):
    loaded, load_problem = common.load_chosen(picker.value)
    model = loaded.model.eval()
    prepared = common.prepare(loaded, prompt_box.value, max_tokens=model.config.n_ctx // 2)
    prompt_ids = prepared.ids
    _notes = [n for n in [mo.callout(mo.md(load_problem), kind="danger") if load_problem else None,
                          prepared.notice()] if n is not None]
    mo.vstack(_notes) if _notes else None
    return loaded, model, prompt_ids


@app.cell
def _(mo):
    mo.md(r"""
    ## The KV cache

    At every step, attention needs the keys and values of *all* earlier positions (chapter 4). They
    do not change once computed: position 5's key is the same whether the text is 6 or 60 tokens
    long. So the loop stores them in a **KV cache**: the prompt is read once (the *prefill*), then
    each step feeds only the newest token and reads the rest of the keys and values from the cache
    (the *decode* steps). The cache costs memory, per token:

    $$\text{bytes per token} = 2 \times L \times H_{kv} \times D_h \times \text{bytes per number}$$

    (keys and values, for every layer and key/value head). Drag the slider to generate token by token
    and watch the cache fill; the numbers come from the library's own loop, `stream`, which reports
    the cache's length at every step. (The library allocates room for the prompt and every new token
    up front, then fills it one position per step.)
    """)
    return


@app.cell
def _(mo, model):
    grow = mo.ui.slider(1, min(64, model.config.n_ctx // 2), step=1, value=16, label="tokens generated",
                        show_value=True)
    grow
    return (grow,)


@app.cell
def _(gen, grow, loaded, mo, model, one_thread, prompt_ids):
    _per_position = model.new_cache(1, 1).nbytes(filled_only=False)   # one position, allocated for real
    _steps = []
    with one_thread():
        for _ in gen.stream(model, prompt_ids, grow.value, temperature=0, eos_id=loaded.tokenizer.eos_id,
                            on_step=_steps.append):
            pass
    def _shown(token_id):
        return repr(loaded.tokenizer.decode([token_id])).replace("|", "¦").replace("`", "'")

    _rows = [f"| {s.index + 1} | `{_shown(int(s.token[0]))}` | {s.cache_length} | "
             f"{s.cache_length * _per_position / 1024:,.1f} KiB |" for s in _steps[-8:]]
    _c = model.config
    mo.vstack([
        mo.md(f"One position of this model's cache: 2 × {_c.n_layers} layers × {_c.n_kv_heads} key/value heads × "
              f"{_c.head_dim} numbers × {model.new_cache(1, 1).k.element_size()} bytes = **{_per_position:,} bytes** "
              f"(read off an allocated cache: `KVCache.nbytes`). The prompt is {len(prompt_ids)} "
              f"token{'s' if len(prompt_ids) != 1 else ''}: the prefill filled {len(prompt_ids)} "
              f"position{'s' if len(prompt_ids) != 1 else ''}, and its last logits chose step 1's token. Each later "
              f"step feeds the token chosen before it, which adds one position. Last steps:"),
        mo.md("| step | chose | positions in the cache when it chose | bytes filled |\n|---|---|---|---|\n"
              + "\n".join(_rows)),
        mo.md(f"After {len(_steps)} steps the cache holds {_steps[-1].cache_length} positions, "
              f"{_steps[-1].cache_length * _per_position / 1024:,.1f} KiB. A full context of {_c.n_ctx} tokens "
              f"would take {_c.n_ctx * _per_position / 2**20:,.2f} MiB per sequence."),
    ])
    return


@app.cell
def _(mo):
    from glassformer.model import preset as _preset
    from glassformer.analysis.param_count import parameter_breakdown as _breakdown

    _gpt2_params = sum(_breakdown(_preset("gpt2")).values())   # counted from the config, nothing built
    mo.md(rf"""
    ### How much does it save? Measured

    Without a cache, step $t$ recomputes every earlier position: the work per step grows with the
    text, and the work of the whole generation grows at least with the square of its length. With
    the cache a step processes one new position (its attention still reads every cached key and
    value). Below, the same greedy generation is timed both ways (the library's `generate` with
    `use_cache` on and off); the last column checks that the tokens are the same, so only the time
    differs. The GPT-2 shape
    ({_gpt2_params / 1e6:.0f}M parameters, random weights: the speed does not depend on what the
    weights are) is built when you press its button, as it takes several seconds.
    """)
    return


@app.cell
def _(gen, timing, torch):
    def greedy_text(net, prompt: list[int], n: int, **kwargs) -> list[int]:
        return gen.generate(net, prompt, n, temperature=0, **kwargs).tolist()

    def cache_comparison(net, prompt: list[int], n: int, budget: float = 1.0) -> dict:
        """Greedy generation of n tokens without and with the cache, timed in turns (timing.compare);
        the texts of the last timed runs are compared too."""
        texts = {}

        def run(cached: bool) -> None:
            texts[cached] = greedy_text(net, prompt, n, use_cache=cached)

        with torch.inference_mode():
            timed = timing.compare(lambda: run(False), lambda: run(True), names=("without cache", "with cache"),
                                   budget=budget)
        return {"timed": timed, "n": n, "same": texts[False] == texts[True]}
    return cache_comparison, greedy_text


@app.cell
def _(mo):
    gpt2_button = mo.ui.run_button(
        label="Also measure the GPT-2 shape (slow: builds a 124M-parameter model, times it several times)")
    gpt2_button
    return (gpt2_button,)


@app.cell
def _(cache_comparison, gpt2_button, loaded, mo, model, prompt_ids, torch):
    _n = min(16, model.config.n_ctx - len(prompt_ids))
    _rows = [(f"{loaded.name} (this page's model)", len(prompt_ids), _n, cache_comparison(model, prompt_ids, _n))]
    if gpt2_button.value:
        from glassformer.model import build_model, preset

        with mo.status.spinner(title="Building a random GPT-2-shaped model and timing it…"):
            torch.manual_seed(0)
            _gpt2 = build_model(preset("gpt2")).eval()
            _rows.append(("GPT-2 shape, random weights", 32, 16,
                          cache_comparison(_gpt2, torch.randint(0, 50257, (32,)).tolist(), 16, budget=4.0)))
            del _gpt2
    _says = {"faster": "*faster*", "slower": "*slower*", "unclear": "no clear difference"}

    def _speeds(r):
        c = r["timed"]
        return f"{r['n'] / c.baseline_timing.median:,.1f} | {r['n'] / c.candidate_timing.median:,.1f}"

    _table = "\n".join(f"| {name} | {p} + {n} | {_speeds(r)} | {r['timed'].figure(1)} | {_says[r['timed'].verdict]} | "
                       f"{'yes' if r['same'] else 'NO'} |" for name, p, n, r in _rows)
    mo.md("| model | prompt + new tokens | tokens/s without cache | with cache | speed-up (interval, runs) | "
          "with cache is | same tokens |\n|---|---|---|---|---|---|---|\n" + _table +
          "\n\nTokens per second are from the median times. Without a cache each new token recomputes the keys and "
          "values of the whole prefix, so its cost grows with the prefix, while a cached step computes them for one "
          "position only: the longer the text, the wider the gap should be. Try a shorter or a longer prompt to see "
          "whether it is here.")
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Tiled attention: never build the T × T matrix

    Plain attention forms every score $q_i \cdot k_j$ at once: a $T \times T$ matrix per head, then its
    softmax, another. Memory grows with the *square* of the length. But each output row only needs
    a running summary while it walks over the keys in **tiles**: two numbers per query, the largest
    score so far $m$ and the sum $\ell = \sum_j e^{s_j - m}$, plus one vector of $D_h$ numbers, the
    weighted sum of values $a = \sum_j e^{s_j - m} v_j$. When a tile brings a larger maximum $m'$,
    the old sums were computed against the old $m$; multiplying them by $e^{m - m'}$ corrects them,
    exactly. At the end, $a / \ell$ *is* the softmax-weighted sum. This **online softmax** is the idea
    behind FlashAttention, which runs the tiles in a GPU's small, fast on-chip memory. Here it is
    written to be read: `tiled_attention` below, tested equal to the plain formula up to float
    rounding (the table below measures the difference).
    """)
    return


@app.cell
def _(code_panel, mo, tiled_attention):
    mo.accordion({"tiled_attention (glassformer/model/tiled_attention.py)":
                  code_panel(tiled_attention.tiled_attention),
                  "plain_attention: the reference it must equal": code_panel(tiled_attention.plain_attention)})
    return


@app.cell
def _(mo):
    lengths = mo.ui.multiselect(options=["256", "512", "1024", "2048", "4096"], value=["256", "1024"],
                                label="lengths T to measure (one head, Dh = 64)")
    tile_size = mo.ui.dropdown(options=["32", "64", "128", "256"], value="128", label="tile")
    mo.hstack([lengths, tile_size], justify="start")
    return lengths, tile_size


@app.cell
def _(lengths, mo, one_thread, peak_tensor_bytes, tile_size, tiled_attention, timing, torch):
    def measure_both(T: int, tile: int) -> dict:
        """Max |difference|, peak tensor memory, tiles visited and times of plain vs tiled attention
        on random q, k, v."""
        g = torch.Generator().manual_seed(T)
        q, k, v = torch.randn(3, 1, 1, T, 64, generator=g).unbind(0)
        with one_thread():
            plain, plain_peak = peak_tensor_bytes(tiled_attention.plain_attention, q, k, v)
            tiled, tiled_peak = peak_tensor_bytes(tiled_attention.tiled_attention, q, k, v, tile=tile)
            visits = []   # counted in a separate call: an observer keeping each step would change the peak
            tiled_attention.tiled_attention(q, k, v, tile=tile, on_tile=lambda step: visits.append(step.key_tile))
        # Timed apart from the memory count, which slows every operation down; in turns (timing.compare).
        timed = timing.compare(lambda: tiled_attention.plain_attention(q, k, v),
                               lambda: tiled_attention.tiled_attention(q, k, v, tile=tile),
                               names=("plain", "tiled"), repeats=9, budget=1.0)
        blocks = -(-T // tile) ** 2
        return {"T": T, "diff": (plain - tiled).abs().max().item(), "plain": plain_peak, "tiled": tiled_peak,
                "timed": timed, "visited": len(visits), "blocks": blocks}

    _rows = [measure_both(int(T), int(tile_size.value)) for T in sorted(lengths.value, key=int)]
    _says = {"faster": "*faster*", "slower": "*slower*", "unclear": "no clear difference"}
    _table = "\n".join(f"| {r['T']:,} | {r['diff']:.1e} | {r['plain'] / 2**20:,.2f} MiB | "
                       f"{r['tiled'] / 2**20:,.2f} MiB | "
                       f"{r['plain'] / r['tiled']:.1f}× | {r['timed'].baseline_timing.figure(digits=2)} | "
                       f"{r['timed'].candidate_timing.figure(digits=2)} | {r['timed'].figure()} | "
                       f"{_says[r['timed'].verdict]} |" for r in _rows)
    _whole = "".join(f"At T = {r['T']:,} one tile of {tile_size.value} covers the whole text, so the tiled path "
                      "forms the full matrix too and saves nothing. " for r in _rows if r["T"] <= int(tile_size.value))
    _by = {v: [f"{r['T']:,}" for r in _rows if r["timed"].verdict == v] for v in ("faster", "slower", "unclear")}
    _speed = ""
    if _by["slower"]:
        _speed += (f"The tiled version was slower at T = {', '.join(_by['slower'])}. A likely reason (a hypothesis: "
                   "this page does not measure it): it is a Python loop over tiles, written to be read, and every "
                   "small step pays Python's overhead, which smaller tiles multiply. ")
    if _by["faster"]:
        _r = next(r for r in _rows if r["timed"].verdict == "faster")
        _speed += (f"The tiled version was faster at T = {', '.join(_by['faster'])}, Python loop and all. What is "
                   f"counted here: at T = {_r['T']:,} it visited {_r['visited']} of the {_r['blocks']} query-key "
                   "blocks (those above the diagonal are skipped), while the plain path computes the whole matrix, "
                   "masked half included. A further likely reason (a hypothesis, not measured here): each tile is "
                   "small enough to stay in the CPU's caches, while the plain path passes its large matrices "
                   "through memory several times. ")
    if _by["unclear"]:
        _speed += (f"At T = {', '.join(_by['unclear'])} there was no clear difference on this machine right now. ")
    _growth = ""
    if len(_rows) >= 2:
        a, b = _rows[0], _rows[-1]
        _growth = (f"From T = {a['T']:,} to {b['T']:,} ({b['T'] / a['T']:.0f}× longer) the plain path's peak grew "
                   f"{b['plain'] / a['plain']:.1f}× and the tiled path's {b['tiled'] / a['tiled']:.1f}×. ")
    mo.md("Peak memory is measured, not computed from a formula: every tensor torch creates during the call is "
          "counted while it is alive (`glassformer/memory.py`).\n\n"
          "| T | max \\|plain − tiled\\| | plain peak | tiled peak | plain / tiled | time plain | time tiled | "
          "tiled speed-up (interval, runs) | tiled is |\n|---|---|---|---|---|---|---|---|---|\n" + _table + "\n\n"
          + _growth + _whole + _speed +
          "On a GPU, FlashAttention runs this loop as one fused kernel whose tiles stay in on-chip memory, "
          "instead of a T × T matrix going back and forth to main memory: there it is faster than the plain "
          "formula, not only smaller.")
    return


@app.cell
def _(mo):
    mo.md(r"""
    ### Tile by tile, on your text

    Below, the real queries, keys and values of layer 0, head 0 of the model on your prompt (its first
    16 positions at most), cut into tiles of 4. Drag the *visit* slider to step through the tiles in
    the order the loop visits them. Left: which (query tile, key tile) blocks have been visited. Right: each query row's
    running maximum $m$ and running sum $\ell$ after that visit. Tiles entirely above the diagonal are
    never visited: the causal mask would give them weight 0 anyway.
    """)
    return


@app.cell
def _(model, prompt_ids, tiled_attention, torch):
    _ids = torch.tensor([prompt_ids[:16]])
    with torch.no_grad():
        _, _trace = model.run_with_trace(_ids, ["blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v"])
    _q, _k, _v = (_trace[f"blocks.0.attn.{n}"][:, :1].float() for n in "qkv")  # head 0 (its kv head for GQA)
    tile_steps = []
    tile_out = tiled_attention.tiled_attention(_q, _k, _v, tile=4, on_tile=tile_steps.append)
    tile_diff = (tile_out - tiled_attention.plain_attention(_q, _k, _v)).abs().max().item()
    tile_T = _q.shape[2]
    return tile_T, tile_diff, tile_steps


@app.cell
def _(mo, tile_steps):
    visit = mo.ui.slider(1, len(tile_steps), step=1, value=1, label="visit", show_value=True)
    visit
    return (visit,)


@app.cell
def _(line_chart, matrix_heatmap, mo, np_float, tile_T, tile_diff, tile_steps, visit):
    _n_tiles = (tile_T + 3) // 4
    _grid = [[float("nan")] * _n_tiles for _ in range(_n_tiles)]
    for _i, _s in enumerate(tile_steps[:visit.value]):
        _grid[_s.query_tile[0] // 4][_s.key_tile[0] // 4] = 2.0 if _i == visit.value - 1 else 1.0
    _current = tile_steps[visit.value - 1]
    _labels = [f"{i * 4}-{min(i * 4 + 3, tile_T - 1)}" for i in range(_n_tiles)]
    _heat = matrix_heatmap(np_float(_grid), _labels, _labels, title="visited blocks (dark: this visit)",
                           row_title="query positions", col_title="key positions", value_title="visited",
                           scheme="oranges", cell=48, domain=(0, 2))
    _rows = []
    for _r in range(_current.running_max.shape[-1]):
        _pos = _current.query_tile[0] + _r
        _rows.append({"query position": _pos, "value": float(_current.running_max[0, 0, _r]), "kind": "running max m"})
        _rows.append({"query position": _pos, "value": float(_current.running_sum[0, 0, _r]), "kind": "running sum ℓ"})
    _line = line_chart(_rows, "query position", "value", "kind", width=300, height=200,
                       title=f"queries {_current.query_tile[0]}-{_current.query_tile[1] - 1} after keys "
                             f"{_current.key_tile[0]}-{_current.key_tile[1] - 1}")
    mo.vstack([mo.hstack([mo.ui.altair_chart(_heat, chart_selection=False, legend_selection=False),
                          mo.ui.altair_chart(_line, chart_selection=False, legend_selection=False)]),
               mo.md(f"{len(tile_steps)} of {_n_tiles * _n_tiles} blocks are visited. After the last visit, "
                     f"max |tiled − plain| on these real vectors = {tile_diff:.1e}.")])
    return


@app.cell
def _():
    import numpy as np

    def np_float(rows):
        return np.array(rows, dtype=float)
    return (np_float,)


@app.cell
def _(mo):
    mo.md(r"""
    ## Sliding-window attention

    A **sliding window** lets each position attend to the last $w$ positions only (the first Mistral
    7B does so in every layer, with $w$ = 4,096; Gemma 2 alternates windowed layers with full ones).
    The cache then never needs more than $w$ positions per layer, whatever the length of the text:
    older keys can be dropped or overwritten, and each step's attention work stops growing. Older text is not
    entirely lost: through $L$ layers, information can hop back up to $L(w-1)$ positions. The library
    applies the window to any of its models through their hook points (`sliding_window`), without
    changing the model's code. It only masks the scores: its cache still keeps every position, so it
    shows what a window does to the predictions, not the memory it would save. Below, a character
    model's measured loss on validation text as the window shrinks.
    """)
    return


@app.cell
def _(code_panel, mo, sliding_window):
    mo.accordion({"window_mask and sliding_window (glassformer/model/sliding_window.py)":
                  mo.vstack([code_panel(sliding_window.window_mask),
                             code_panel(sliding_window.sliding_window.__wrapped__)])})  # under its decorator
    return


@app.cell
def _(mo):
    window = mo.ui.slider(1, 16, step=1, value=4, label="window w (for the mask picture)", show_value=True)
    window
    return (window,)


@app.cell
def _(matrix_heatmap, mo, model, np_float, sliding_window, window):
    _mask = sliding_window.window_mask(0, 16, 16, window.value)
    _chart = matrix_heatmap(np_float(_mask.float().tolist()), [str(i) for i in range(16)], [str(i) for i in range(16)],
                            title=f"who may attend to whom: window {window.value}", row_title="query position",
                            col_title="key position", value_title="allowed", scheme="greens", cell=20, domain=(0, 1))
    _c = model.config
    _per = model.new_cache(1, 1).nbytes(filled_only=False)
    mo.hstack([mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
               mo.md(f"With window {window.value}, the cache of this model would need at most "
                     f"{sliding_window.cache_positions(_c.n_ctx, window.value)} positions "
                     f"({sliding_window.cache_positions(_c.n_ctx, window.value) * _per / 1024:,.1f} KiB) "
                     f"instead of {_c.n_ctx} ({_c.n_ctx * _per / 1024:,.1f} KiB) for a full context. "
                     f"Through its {_c.n_layers} layers, a token can still be influenced by one up to "
                     f"{min(_c.n_layers * (window.value - 1), _c.n_ctx - 1)} positions back"
                     + (" (its whole context)" if _c.n_layers * (window.value - 1) >= _c.n_ctx - 1 else "")
                     + ".")], align="center")
    return


@app.cell
def _(one_thread, sliding_window, torch):
    def window_losses(net, tokenizer, windows: list[int], n_windows: int = 16, length: int = 256) -> list[dict]:
        """Mean next-token loss on n_windows stretches of validation text, `length` tokens each,
        spread evenly over the whole validation split, per attention window."""
        from glassformer.data import load_text, spread_windows, train_val_split

        text, _ = load_text()
        val = train_val_split(torch.tensor(tokenizer.encode(text, errors="skip")))[1]
        length = min(length, net.config.n_ctx, len(val) // n_windows - 1)
        x, y = spread_windows(val, length, n_windows)                     # (n_windows, length) each
        rows = []
        with torch.no_grad(), one_thread():   # a small model: one thread is faster, far faster on a busy machine
            for w in windows:
                with sliding_window.sliding_window(net, w):
                    logits = net(x)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
                rows.append({"window": w, "loss": loss.item(), "length": length, "texts": x.shape[0]})
        return rows
    return (window_losses,)


@app.cell
def _(line_chart, loaded, mo, model, window_losses):
    if loaded.is_char_level:
        _longest = min(256, model.config.n_ctx)
        _windows = [w for w in (4, 8, 16, 32, 64, 128) if w < _longest] + [_longest]
        _rows = window_losses(model, loaded.tokenizer, _windows)
        _full, _small = _rows[-1], _rows[0]
        _whole = ", as long as each text, so full attention," if _full["window"] >= _full["length"] else ""
        _out = mo.vstack([
            mo.ui.altair_chart(line_chart(_rows, "window", "loss", title=f"validation loss vs attention window "
                                          f"({_full['texts']} texts of {_full['length']} characters)", width=480),
                               chart_selection=False, legend_selection=False),
            mo.md(f"On {_full['texts']} stretches of {_full['length']} characters spread evenly over the whole "
                  f"validation split: with a window of {_full['window']}{_whole} the loss is {_full['loss']:.3f} nats "
                  f"per character; with a window of {_small['window']} it is {_small['loss']:.3f}. This model was *trained* with "
                  "full attention, so a window is a change it never saw: models meant to use one are trained with it.")])
    else:
        _out = mo.md("The loss-vs-window measurement uses the character model and its validation text; pick "
                     "`course` in the model picker to see it.")
    _out
    return


@app.cell
def _(mo):
    from glassformer.registry import DRAFT_MODEL_DIR as _DRAFT_DIR, load_model as _load_model

    _spec_target, _spec_draft = _load_model("course").model, _load_model(str(_DRAFT_DIR)).model
    mo.md(rf"""
    ## Speculative decoding

    A decode step of a big model reads all its weights to produce *one* token; reading them for
    five positions costs about the same. **Speculative decoding** exploits that: a small, cheap
    *draft* model guesses $k$ tokens one by one, then the big *target* model checks all of them in
    a single call. Greedy: keep guesses while they equal the target's own choice; at the first
    mismatch take the target's token instead. The output is exactly the target's greedy output
    (in exact arithmetic; the page compares the two texts below), just produced in fewer target
    calls. With sampling, a guess $x$ is kept with probability $\min(1, p(x)/q(x))$ and a rejected one
    is replaced by a draw from what the target wanted more than the draft ($\max(0, p - q)$,
    renormalized): every token still has exactly the target's distribution (a test checks it
    statistically).

    Here the target is the course model ({_spec_target.num_params():,} weights) and the draft a
    {_spec_draft.config.n_layers}-layer, {_spec_draft.config.d_model}-wide character model
    ({_spec_draft.num_params():,} weights) shipped with glassformer (`scripts/ship_draft_model.py`).
    Both read the same {_spec_target.config.vocab_size}-character vocabulary, which speculative decoding
    requires (the target checks the draft's token ids), so this section always uses them, whatever the
    picker says.
    """)
    return


@app.cell
def _(code_panel, mo, speculative):
    mo.accordion({"speculative_generate and verify (glassformer/speculative.py)":
                  mo.vstack([code_panel(speculative.speculative_generate.__wrapped__),  # under @inference_mode
                             code_panel(speculative.verify)])})
    return


@app.cell
def _(mo):
    guesses = mo.ui.slider(1, 8, step=1, value=4, label="k: guesses per round", show_value=True)
    guesses
    return (guesses,)


@app.cell
def _(common, guesses, mo, one_thread, prompt_box, speculative, timing, torch):
    from glassformer.generate import generate
    from glassformer.registry import DRAFT_MODEL_DIR, load_model

    _target = load_model("course")
    _draft = load_model(str(DRAFT_MODEL_DIR))
    _n = 64
    # The same prompt as the KV-cache section when the course model is picked: its last n_ctx / 2 tokens.
    _prepared = common.prepare(_target, prompt_box.value, max_tokens=_target.model.config.n_ctx // 2,
                               why="as in the KV-cache section: room for the new tokens")
    _spec_prompt = _prepared.ids

    def _speculative():
        return speculative.speculative_generate(_target.model, _draft.model, _spec_prompt, _n, k=guesses.value)

    with torch.inference_mode(), one_thread():   # small models: one thread is faster, far faster on a busy machine
        spec = _speculative()
        _plain = generate(_target.model, _spec_prompt, _n, temperature=0).tolist()[len(_spec_prompt):]
        # All three in turns (timing.measure_in_turns): run i of each is from the same round.
        _times = timing.measure_in_turns({
            "plain": lambda: generate(_target.model, _spec_prompt, _n, temperature=0),
            "speculative": _speculative,
            "draft": lambda: generate(_draft.model, _spec_prompt, _n, temperature=0),   # the draft alone
        }, repeats=7, budget=1.2)
    _vs_plain = timing.Comparison("plain greedy", "speculative", _times["plain"].seconds, _times["speculative"].seconds)
    _draft_vs = timing.Comparison("target", "draft", _times["plain"].seconds, _times["draft"].seconds)
    _cost = 1 / _draft_vs.speedup                                  # draft time / target time (median over rounds)
    _share = _draft.model.num_params() / _target.model.num_params()
    _tok = _target.tokenizer
    _verdict = _vs_plain.says(faster="*faster*", slower="*slower*")

    def _show(ids):
        return _tok.decode(ids).replace("\n", "↵").replace("|", "¦").replace("`", "'")

    _rounds = "\n".join(f"| {i + 1} | `{_show(r.proposed)}` | {r.accepted} of {len(r.proposed)} | `{_show(r.added)}` |"
                        for i, r in enumerate(spec.rounds[:8]))
    _notice = _prepared.notice()
    mo.vstack(([_notice] if _notice else []) + [
        mo.md(f"**{_n} tokens after a {len(_spec_prompt)}-character prompt, k = {guesses.value}:** {len(spec.rounds)} "
              f"target calls instead of {_n}; the draft's guesses were accepted {spec.acceptance_rate:.0%} of the "
              f"time. Measured: speculative {_times['speculative'].figure()}, plain greedy "
              f"{_times['plain'].figure()}; speculative ran at {_vs_plain.figure()} plain greedy's speed: "
              f"{_verdict}. "
              f"Same text as plain greedy: **{'yes' if spec.tokens == _plain else 'NO'}**."),
        mo.md("The first rounds (guesses, how many the target kept, what the round added: the kept guesses plus "
              "the target's own next token):\n\n| round | draft guessed | kept | added |\n|---|---|---|---|\n"
              + _rounds),
        mo.md(f"Whether it pays depends on two measured things: how often the draft is right "
              f"({spec.acceptance_rate:.0%} of its guesses here), and how much cheaper its step is than the "
              f"target's: {_n} greedy tokens took the draft alone {_times['draft'].figure()}, {_cost:.0%} of the "
              f"target's time (median over the same rounds), with {_share:.0%} of its weights. "
              + ("Its time is a much larger share than its weights. A likely reason (a hypothesis, not measured "
                 "here): on models this small much of a step is fixed per-call cost (Python, starting each "
                 "operation), not reading weights, so a draft saves less than it would for a model whose step is "
                 "dominated by reading gigabytes of weights. " if _cost > 2 * _share else "")
              + "Try a larger or smaller k."),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## int8 weight-only quantization

    The course model ships its weights as 16-bit floats (fp16, 2 bytes each, to keep the package
    small) and turns them into 32-bit floats (fp32, 4 bytes) when it loads: it computes in fp32.
    **Quantization** stores each weight matrix as 8-bit integers $q \in [-127, 127]$ plus one scale
    per output channel (per row), $w \approx q \cdot s$ with $s = \max|w_{\text{row}}| / 127$: a
    quarter of fp32's bytes (half of fp16's) plus the scales, and a rounding error of at most $s/2$
    per weight. Only the weights change ("weight-only"); the arithmetic stays in floating point.
    Whether it is *faster* depends on the CPU having a kernel that multiplies by int8 weights
    directly; the library decides that from what the CPU reports, confirms it with a timing once
    per machine, and says so below. Its size and quality are measured here on the course model.
    """)
    return


@app.cell
def _(code_panel, mo, quantize):
    mo.accordion({"quantize_per_channel and Int8Linear (glassformer/model/quantize.py)":
                  mo.vstack([code_panel(quantize.quantize_per_channel), code_panel(quantize.Int8Linear),
                             code_panel(quantize.int8_matmul)]),
                  "quantize_model": code_panel(quantize.quantize_model)})
    return


@app.cell
def _(mo):
    int8_button = mo.ui.run_button(label="Measure validation loss on the whole split (takes several seconds)")
    int8_button
    return (int8_button,)


@app.cell
def _(bytes_read_per_token, greedy_text, int8_button, mo, one_thread, quantize, timing, torch):
    from glassformer.registry import COURSE_MODEL_DIR as _COURSE_DIR, load_model as _load
    from glassformer.train import evaluate as _evaluate

    _course = _load("course")
    _kernel = quantize.int8_kernel()          # this machine's decision, from its record (glassformer info)
    _int8 = quantize.quantize_model(_course.model, _kernel)

    from glassformer.data import load_text as _load_text, train_val_split as _split

    _val = _split(torch.tensor(_course.tokenizer.encode(_load_text()[0], errors="skip")))[1]

    def val_loss(net, whole: bool) -> float:
        with one_thread():   # a small model: one thread is faster, far faster on a busy machine
            return _evaluate(net, _val, None if whole else 2)

    _whole = int8_button.value
    _fp32_loss, _int8_loss = val_loss(_course.model, _whole), val_loss(_int8, _whole)
    from glassformer.model.decode_kernels import dynamic_int8_model as _dynamic   # the next section's path
    _dynamic_loss = val_loss(_dynamic(_course.model), _whole)
    _prompt = _course.tokenizer.encode("ROMEO:\n")
    _texts = {}

    def _greedy(name, net):
        _texts[name] = greedy_text(net, _prompt, 48)

    with torch.inference_mode():
        _speed = timing.compare(lambda: _greedy("fp32", _course.model), lambda: _greedy("int8", _int8),
                                names=("fp32", "int8"), budget=1.0)
    _a, _b = _texts["fp32"], _texts["int8"]
    _fp32_speed, _int8_speed = 48 / _speed.baseline_timing.median, 48 / _speed.candidate_timing.median
    _same_prefix = next((i for i, (x, y) in enumerate(zip(_a[len(_prompt):], _b[len(_prompt):])) if x != y), 48)
    with torch.no_grad(), one_thread():   # teacher-forced: on the same text, do both pick the same next character?
        _x = _val[:4096].view(16, 256)
        _top_same = (_course.model(_x).argmax(-1) == _int8(_x).argmax(-1)).float().mean().item()
    _fp32_bytes, _int8_bytes = quantize.model_bytes(_course.model), quantize.model_bytes(_int8)
    _file_bytes = (_COURSE_DIR / "model.safetensors").stat().st_size
    _act = str(_kernel.activations).removeprefix("torch.")
    _kernel_note = ((f"This machine's int8 kernel ({_kernel.name}, {_act} activations)" if _kernel.name == "int8pack"
                     else "This torch build has no int8 kernel here, so int8 layers rebuild their fp32 weights first; "
                          "that path")
                    + f" was measured at **{_kernel.figure}** the speed of an fp32 matrix-vector product of the same "
                    f"shape ({quantize.PROBE_SHAPE[0]:,} × {quantize.PROBE_SHAPE[1]:,}), once for this machine and "
                    "kept (`glassformer info` shows it). "
                    + ("int8 is a speed path here: the kernel multiplies int8 weights by bf16 activations, its fast "
                       "path, and the timing did not contradict that." if _kernel.fast else
                       "Here int8 saves memory but is not a speed path: "
                       + ("the kernel was measured clearly slower." if quantize.expected_fast(_kernel.name,
                                                                                            _kernel.activations)
                          else f"with {_act} activations this kernel does not take its fast path (that needs bf16 "
                               "activations, used where the CPU has bf16 instructions).")))
    _tiny = _speed.says(faster="*faster* than", slower="*slower* than",
                        unclear="not clearly faster or slower than")
    # Which int8 matrices of this model the kernel multiplies directly (quantize.packed: input width a
    # multiple of 16); the others rebuild their fp32 weights at every call.
    _layers = [m for m in _int8.modules() if isinstance(m, (quantize.Int8Linear, quantize.Int8Unembed))]
    _direct = sum(quantize.packed(_kernel, m.q) for m in _layers)
    _widths = sorted({m.q.shape[1] for m in _layers if not quantize.packed(_kernel, m.q)})
    _layer_note = ""
    if _kernel.fast and _speed.verdict != "faster":
        _layer_note = (f" What differs from the probe, counted: in this model the kernel multiplies {_direct} of its "
                       f"{len(_layers)} int8 matrices directly"
                       + (f"; the other {len(_layers) - _direct} (input width {', '.join(map(str, _widths))}, not a "
                          f"multiple of {quantize.PACK_MULTIPLE}) rebuild their fp32 weights at every call"
                          if _direct < len(_layers) else "")
                       + ", and its matrices are far smaller than the probe's (a further hypothesis, not measured "
                       "here: weights this small are served from the CPU's caches, where reading fewer bytes saves "
                       "little).")
    mo.vstack([
        mo.md(f"| course model | bytes of weights | read per token | validation loss "
              f"({'whole split' if _whole else f'2 batches of 32 × {_course.model.config.n_ctx} characters'}) "
              f"| tokens/s (greedy, 48; median) |\n|---|---|---|---|---|\n"
              f"| fp32 (in memory) | {_fp32_bytes / 1024:,.0f} KiB | "
              f"{bytes_read_per_token(_course.model) / 1024:,.0f} KiB | "
              f"{_fp32_loss:.4f} | {_fp32_speed:,.0f} |\n"
              f"| int8 | {_int8_bytes / 1024:,.0f} KiB | {bytes_read_per_token(_int8) / 1024:,.0f} KiB | "
              f"{_int8_loss:.4f} | {_int8_speed:,.0f} |"),
        mo.md(f"int8 keeps {_int8_bytes / _fp32_bytes:.0%} of the bytes of the fp32 weights in memory, and "
              f"{_int8_bytes / _file_bytes:.0%} of the shipped fp16 file ({_file_bytes / 1024:,.0f} KiB). It changes "
              f"the validation loss by {_int8_loss - _fp32_loss:+.4f} nats per character; on 4,096 validation "
              f"characters both pick the same most likely next character {_top_same:.1%} of the time; greedy from "
              f"`ROMEO:` gives the same first {_same_prefix} of 48 characters (after a first difference the two texts "
              "continue from different prefixes). " + _kernel_note
              + f" On this tiny model, int8 generation was {_tiny} fp32 on this machine right now: it ran at "
              f"{_speed.figure()} fp32's speed.{_layer_note} For GPT-2-sized "
              "models, where each step reads hundreds of megabytes of weights, `python bench/generate.py` measures "
              "each decode path this CPU offers against Hugging Face transformers."),
        mo.md(f"The same int8 weights with the activations rounded to int8 too (int8-dynamic, the next section) give a "
              f"validation loss of {_dynamic_loss:.4f} on the same text ({_dynamic_loss - _fp32_loss:+.4f} against "
              "fp32)."),
    ])
    return


@app.cell
def _(mo):
    mo.md(r"""
    ## Four decode paths, and the fastest on this CPU

    The same model can be run for generation four ways (`glassformer/decode_paths.py`); each step
    reads every weight once, so what differs is how many bytes each weight takes and which kernel
    streams them:

    - `fp32`, the reference arithmetic. Its matrices are multiplied by whichever of two kernels a timing on
      this machine found fastest, if either was clearly faster than torch's default `x @ W`: oneDNN's inner
      product, or **split-K**, which cuts the input into one slice per thread and the weight's rows alike,
      $x W = x_1 W_1 + x_2 W_2$ on two threads, computes the slices' products as one batched matmul
      (which can give each entry a thread of its own, streaming its own block of the weight) and adds
      them; a prompt's many rows are multiplied whole, by oneDNN, on the same memory. Each kernel reads a copy of the weights placed on 2 MB memory pages where Linux offers them
      (fewer address translations while streaming hundreds of megabytes). Split-K changes only the order
      of the additions, so results differ from `x @ W` by rounding.
    - `bf16`, half the bytes, offered only where the CPU computes bf16 natively.
    - `int8` weight-only (the section above), offered where torch's int8 kernel is fast: it needs bf16
      instructions.
    - `int8-dynamic`, **dynamic quantization**: the same int8 weights, and at every call each row of
      activations is rounded to 8 bits too, $x_i \approx m_i \cdot$ (integers), $m_i = \max_j |x_{ij}|$, so the product is all integers
      (fbgemm's kernel, which has AVX2 versions). This is the path for CPUs without bf16, which is most
      laptops. Activations are scaled for 7 of the 8 bits (they round to 0…128, not 0…255): without VNNI
      instructions fbgemm adds pairs of products in 16-bit integers, which full-range activations would overflow.

    Every path also skips the hook points for one-token steps (`FastDecoderLM`): where their kind allows, each
    layer's norms, projections and MLP are called as plain functions with their weights bound (`plain`), in the
    same order on the same kernels, so the same numbers, without the Python calls that make the model traceable
    (274 module calls per token for GPT-2 small; 3 on its fp32 path).
    `fastest_path` takes the fewest bytes per weight among the paths offered, and of the two int8 paths the
    one whose kernel measured faster. Each decision is measured once per machine and kept
    (`glassformer info` prints them).
    """)
    return


@app.cell
def _(code_panel, mo):
    from glassformer.model import decode_kernels as _kernels
    from glassformer.model import decode_step as _step
    from glassformer import decode_paths as _paths

    mo.accordion({"split_k, SplitKLinear, OneDnnLinear and DynamicInt8Linear (glassformer/model/decode_kernels.py)":
                  mo.vstack([code_panel(_kernels.split_k), code_panel(_kernels.SplitKLinear),
                             code_panel(_kernels.OneDnnLinear),
                             code_panel(_kernels.DynamicInt8Linear)]),
                  "fp32_kernel (glassformer/model/decode_kernels.py)": code_panel(_kernels.fp32_kernel),
                  "FastDecoderLM.forward and plain (glassformer/model/decode_step.py)":
                  mo.vstack([code_panel(_step.FastDecoderLM.forward), code_panel(_step.plain)]),
                  "fastest_path_name (glassformer/decode_paths.py)": code_panel(_paths.fastest_path_name)})
    return


@app.cell
def _(mo, torch):
    from glassformer import decode_paths as _dp
    from glassformer.model import decode_kernels as _dk

    _offered = _dp.available_paths()
    _fastest = _dp.fastest_path_name()
    _threads = torch.get_num_threads()
    _kernel_rows = "\n".join(f"| {name} | {_dk.figure(name)} | {'measured faster' if _dk.faster(name) else 'not measured faster'} |"
                             for name in _dk.KERNELS)
    _path_rows = "\n".join(f"| {name} | {'offered' if name in _offered else 'not offered'} | "
                           f"{_offered.get(name, '')} |" for name in _dp.PATHS)

    mo.vstack([
        mo.md(f"#### This machine's decisions\n\nStored once per machine ({_threads} threads). Each kernel against "
              f"fp32 `x @ W`, one token through the matrices of six GPT-2-small-sized layers and a 32,768-word unembedding, in turns:\n\n"
              f"| kernel | speed vs fp32 `x @ W` | decision |\n|---|---|---|\n{_kernel_rows}\n\n"
              f"| path | here | why |\n|---|---|---|\n{_path_rows}\n\n"
              f"`fastest_path` picks `{_fastest}` here."),
    ])
    return


@app.cell
def _(bytes_read_per_token, mo):
    from glassformer.decode_paths import recorded_benchmarks as _recorded
    from glassformer.registry import load_model as _load
    from glassformer.timing import MARGIN as _MARGIN

    _course_bytes = bytes_read_per_token(_load("course").model)

    def _verdict(r):
        word = {"faster": "faster", "slower": "slower"}.get(r["verdict"], "no clear difference")
        low, high = r["interval"]
        if r["verdict"] == "unclear" and low >= 1:
            word += f" beyond the {_MARGIN:.0%} margin, though the whole interval is at or above 1×"
        elif r["verdict"] == "unclear" and r.get("not_slower"):
            word += f"; not shown slower than {1 / (1 + _MARGIN):.3f}× (the whole interval at or above it)"
        how = ", the two engines alone" if r.get("timed") == "head to head" else ""
        return f"{r['speedup']:.2f}× ({low:.2f}–{high:.2f}×, {r['runs']} runs in turns{how}): {word}"

    _blocks = []
    for _run in _recorded():
        _cpu = f"{_run['cpu']} (flags {' '.join(_run['flags'])})" + (
            ", _emulated AVX2-only_ (" + ", ".join(f"{k}={v}" for k, v in _run["limits"].items()) + ")"
            if _run["emulated_avx2"] else "")
        _rows = "\n".join(f"| {name}{' (fastest_path)' if name == _run['fastest_path'] else ''} | "
                          f"{e['tok_s']:.1f} | {e['mb_per_token']:.0f} | "
                          f"{e['tok_s'] * e['mb_per_token'] * 2**20 / (_run['bandwidth_gb_s'] * 1e9):.0%} |"
                          for name, e in _run["engines"].items())
        _ratios = "\n".join(f"- {r['candidate']} against {r['baseline']}: {_verdict(r)}" for r in _run["ratios"])
        _blocks.append(mo.md(
            f"**{_cpu}**, {_run['threads']} threads, recorded {_run['date']} (torch {_run['torch']}): GPT-2-small "
            f"shape, random weights, prompt {_run['prompt_tokens']} + {_run['new_tokens']} greedy tokens, batch 1, "
            f"each engine in its own process, timed in turns.\n\n"
            f"| engine, path | tokens/s | MB read per token | of the bandwidth limit |\n|---|---|---|---|\n{_rows}\n\n"
            f"{_ratios}"))
    mo.vstack([mo.md(
        "#### Recorded on a bigger model\n\nThe course model reads "
        f"{_course_bytes / 1e6:.1f} MB of weights per token in fp32; these paths are made for models that read "
        "hundreds of megabytes, so they are compared on a GPT-2-small-shaped model (124M parameters) by "
        "`python bench/generate.py "
        "--record`, against Hugging Face transformers and CTranslate2 (an inference engine written in C++ for "
        "fast CPU Transformers). These figures are not measured now: each names the CPU and the day it was "
        "recorded; run the script for this machine's. The bandwidth limit is the read bandwidth that run measured "
        "(a 256 MB tensor on huge pages, summed, timed in the same rounds as the engines, since on a shared machine "
        "it moves from minute to minute with what others are doing); when others load the memory, every engine that "
        "reads these bytes slows, though not always by the same amount. The ratios marked \"the two engines "
        "alone\" time the two comparisons with CTranslate2 again with only those two engines running, in turns, "
        "so that each pair of runs is seconds apart.")]
        + (_blocks or [mo.md("(No recorded run ships with this copy of the package.)")]))
    return


@app.cell
def _(Question):
    questions = [
        Question("kv-cache", "What does a KV cache store?",
                 ["The keys and values of every earlier position, for every layer", "The logits of every earlier step",
                  "The model's weights in a faster format", "The generated text"],
                 0, "Keys and values of earlier positions never change, so each decode step computes them for the "
                    "new token only and reads the rest from the cache."),
        Question("memory-bound", "Why is decoding one token at a time limited by memory rather than arithmetic?",
                 ["Each step multiplies every weight by a single vector, so it does little work per byte read",
                  "Softmax is slow", "The tokenizer runs on the CPU", "The KV cache is compressed"],
                 0, "A matrix-vector product does two operations per weight it reads; the processor waits for the "
                    "bytes. That is why fewer bytes per weight (bf16, int8) or more tokens per read (speculative "
                    "decoding) help."),
        Question("online-softmax", "In tiled attention, what happens when a new tile contains a larger score than any seen so far?",
                 ["The running sums are multiplied by exp(old max − new max), which makes them exact again",
                  "The previous tiles are recomputed", "That tile is skipped", "The result becomes an approximation"],
                 0, "Every term kept so far was exp(score − old max); multiplying by exp(old max − new max) turns "
                    "each into exp(score − new max). Nothing is approximated."),
        Question("speculative", "With greedy speculative decoding, how does the output compare with the target model's own greedy output?",
                 ["Identical (in exact arithmetic)", "Usually the same, sometimes different",
                  "Closer to the draft model's output",
                  "Shorter"],
                 0, "A guess is kept only if it equals the target's own choice at that position, and the first "
                    "mismatch is replaced by the target's token: the text is the target's greedy text, in exact "
                    "arithmetic. In floating point, scoring k + 1 positions in one call can round differently from "
                    "scoring them one at a time, so a near-tie between two tokens could very rarely go the other "
                    "way; the page compares the two texts above."),
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
