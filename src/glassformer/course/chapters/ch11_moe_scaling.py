import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="11. Mixture of experts and scaling", css_file="course.css")


@app.cell
def _():
    import html
    import json
    import math
    import time

    import altair as alt
    import marimo as mo
    import numpy as np
    import torch

    from glassformer import machine, registry, timing
    from glassformer.analysis import experts as ex
    from glassformer.analysis import scaling as sc
    from glassformer.analysis.ablation import held_out_text
    from glassformer.course import common, live_training, store
    from glassformer.course.widgets import Question, code_panel, quiz, quiz_feedback, token_label
    from glassformer.course.widgets.tokens import PALETTE
    from glassformer.model import build_model
    from glassformer.model.moe import MoE
    this = common.chapter(__file__)  # key, title, neighbours: from the catalog, by file name
    SVG = {"embedOptions": {"renderer": "svg", "actions": False}}
    # One colour per expert: a light fill (the first choice) and a strong line (the second choice), same hue.
    EXPERT_FILL = PALETTE
    EXPERT_LINE = ["#d97706", "#2563eb", "#16a34a", "#dc2626", "#7c3aed", "#ea580c", "#0891b2", "#c026d3"]
    return (EXPERT_FILL, EXPERT_LINE, MoE, Question, SVG, alt, build_model, code_panel, common, ex, held_out_text,
            html, json, live_training, machine, math, mo, np, quiz, quiz_feedback, registry, sc, store, this, time,
            timing, token_label, torch)


@app.cell
def _(common, this):
    common.header(this.key)
    return


@app.cell
def _(mo):
    mo.md(r"""
    Chapter 6's block ends with a feed-forward network, the MLP: every token goes through the same few
    matrices. Making the model bigger makes every token pay for every new weight. A **mixture of
    experts** (MoE) breaks that link. The block holds several feed-forward networks, the **experts**,
    and a small **router** that looks at each token and picks a few of them to run. The model stores the
    weights of all its experts, but each token uses only those of the experts it was sent to: its
    **active parameters**. Shazeer et al. (2017) built such layers with thousands of experts; Switch
    Transformers (Fedus et al. 2021) send each token to a single expert; Mixtral (Jiang et al. 2024) has
    8 experts per layer and sends each token to 2.

    The second half of the page asks the question that drives all of this: how does the loss fall as a
    model gets more parameters, more training text and more compute? Large labs answer it with
    **scaling laws** fitted to hundreds of runs. This page fits them to runs trained on one CPU, and lets
    you train one more.
    """)
    return


@app.cell
def _(registry, sc):
    moe_loaded = registry.load_model("moe")
    dense_loaded = registry.load_model("moe-dense")
    nobal_loaded = registry.load_model("moe-no-balance")
    moe_net, dense_net, nobal_net = (m.model.eval() for m in (moe_loaded, dense_loaded, nobal_loaded))
    moe_cfg = moe_net.config
    model_counts = {name: sc.parameter_counts(net) for name, net in
                    (("dense", dense_net), ("moe", moe_net), ("nobal", nobal_net))}
    return dense_loaded, dense_net, model_counts, moe_cfg, moe_loaded, moe_net, nobal_loaded, nobal_net


@app.cell
def _(dense_net, mo, moe_cfg):
    from glassformer.model.moe import moe_params as _moe_params

    _D, _E, _K, _F = moe_cfg.d_model, moe_cfg.n_experts, moe_cfg.experts_per_token, moe_cfg.d_expert
    _bias = moe_cfg.mlp_bias
    _total, _active = _moe_params(_D, _F, _E, _K, bias=_bias)
    _one = 3 * _D * _F + _bias * (2 * _F + _D)                      # one SwiGLU expert: gate, up, down (+ biases)
    _Fd = dense_net.config.d_mlp
    _dense_mlp = 3 * _D * _Fd + _bias * (2 * _Fd + _D)
    _gates = (r"g_j = \frac{p_j}{\sum_{i \in \text{top}} p_i}" if moe_cfg.moe_renormalize else r"g_j = p_j")
    _renorm = ("divided by their sum, so the K gates add up to 1 (as in Mixtral)" if moe_cfg.moe_renormalize else
               "used as they are (as in Qwen3-MoE without renormalization)")
    def _n(v):  # a number inside LaTeX: {,} keeps the thousands comma from adding a space
        return f"{v:,}".replace(",", "{,}")

    _one_math = (rf"3 \cdot {_D} \cdot {_F} + (2 \cdot {_F} + {_D}) = {_n(_one)}" if _bias else
                 rf"3 \cdot {_D} \cdot {_F} = {_n(_one)}")
    _dense_math = (rf"3 \cdot {_D} \cdot {_Fd} + (2 \cdot {_Fd} + {_D}) = {_n(_dense_mlp)}" if _bias else
                   rf"3 \cdot {_D} \cdot {_Fd} = {_n(_dense_mlp)}")
    _extra = _active - _dense_mlp
    _why = (f"the router's {_D * _E:,} and the output bias of each chosen expert after the first, "
            f"{(_K - 1) * _D:,}" if _bias and _K > 1 else f"the router's {_D * _E:,}")
    mo.md(rf"""
    ## How a token is routed

    The mixture shipped with this chapter has {moe_cfg.n_layers} blocks of width $D = {_D}$; in each one the
    MLP is replaced by $E = {_E}$ experts and a router, and each token goes to $K = {_K}$ of them. For a
    token whose vector is $x$:

    $$p = \mathrm{{softmax}}(x\,W_{{\text{{router}}}}) \qquad (E \text{{ probabilities, one per expert}})$$

    $$\text{{top}} = \text{{the }} K \text{{ experts with the largest }} p_j, \qquad {_gates}$$

    $$\text{{moe}}(x) = \sum_{{j \in \text{{top}}}} g_j \cdot \text{{expert}}_j(x)$$

    The kept probabilities, the **gates**, are {_renorm}. The other {_E - _K} experts do not run at all
    for this token.

    Each expert is a SwiGLU (chapter 6) of width $F_e = {_F}$: three matrices of $D \times F_e$
    {"and their biases" if _bias else ""}, ${_one_math}$ weights. One layer stores
    $E \cdot {_n(_one)} + D \cdot E = {_n(_total)}$ weights (the $D \cdot E = {_n(_D * _E)}$ are the router's),
    and a token uses $K \cdot {_n(_one)} + D \cdot E = {_n(_active)}$ of them: its **active parameters** in this layer. Its
    **dense twin** has one SwiGLU of width ${_Fd} = K \cdot F_e$ in each block, ${_dense_math}$ weights:
    the same work per token but for {_extra:,} weights ({_why}), with {_total / _dense_mlp:.1f}× fewer
    weights stored in this part of the block (the attention and the character table are the same in both).
    """)
    return


@app.cell
def _(MoE, code_panel, ex, mo):
    mo.vstack([
        mo.md("The router, as the model runs it (`glassformer/model/moe.py`): its three results pass through "
              "the hook points `blocks.{i}.mlp.router_logits`, `.experts` and `.gates`, which is how this page "
              "reads them."),
        code_panel(MoE.route, highlight=("topk", "renormalize:", "hook_experts(")),
        mo.accordion({
            "Dispatch: each expert runs once, on the tokens sent to it (MoE.forward)":
                code_panel(MoE.forward, highlight=("argsort", "self.experts.run", "index_add_")),
            "What this page calls to read the routing of a text (glassformer/analysis/experts.py)":
                code_panel(ex.route, highlight="run_with_trace"),
        }),
    ])
    return


@app.cell
def _(common, mo):
    text = common.text_box()
    mo.vstack([mo.md("## The router on your text"), text])
    return (text,)


@app.cell
def _(common, ex, mo, moe_loaded, moe_net, nobal_net, text, torch):
    prepared = common.prepare(moe_loaded, text.value)
    text_ids = torch.tensor(prepared.ids)                                   # (N,)
    text_chars = [moe_loaded.tokenizer.decode([i]) for i in prepared.ids]
    text_routing = ex.route(moe_net, text_ids)                              # probs (L, N, E), experts (L, N, K)
    nobal_routing = ex.route(nobal_net, text_ids)
    text_load, nobal_text_load = text_routing.load(), nobal_routing.load()
    prepared.notice()
    return nobal_text_load, text_chars, text_load, text_routing


@app.cell
def _(EXPERT_FILL, EXPERT_LINE, html, token_label):
    def routing_html(chars, routing) -> str:
        """One row of tokens per layer: fill = the most probable chosen expert, thick underline = the second;
        the title (shown on hover) lists every expert's router probability."""
        L, N, E = routing.probs.shape
        rows = []
        for layer in range(L):
            spans = []
            for t, ch in enumerate(chars):
                probs = routing.probs[layer, t].tolist()
                chosen = routing.experts[layer, t].tolist()
                gates = routing.gates[layer, t].tolist()
                label = token_label(ch.encode("utf-8"))
                lines = [f"{label}  (position {t}, layer {layer})"]
                for e in sorted(range(E), key=lambda e: -probs[e]):
                    mark = f"  ← chosen, gate {gates[chosen.index(e)]:.2f}" if e in chosen else ""
                    lines.append(f"expert {e}: {probs[e]:.1%}{mark}")
                style = f"background:{EXPERT_FILL[chosen[0] % len(EXPERT_FILL)]};"
                if len(chosen) > 1:
                    style += f"border-bottom:4px solid {EXPERT_LINE[chosen[1] % len(EXPERT_LINE)]};"
                spans.append(f'<span title="{html.escape(chr(10).join(lines))}" style="{style}padding:1px 3px;'
                             f'border-radius:3px;white-space:pre;cursor:help">{html.escape(label)}</span>')
            rows.append('<div style="display:flex;flex-wrap:wrap;gap:2px;align-items:center;margin:4px 0;'
                        'font-family:ui-monospace,monospace;font-size:14px;line-height:1.9">'
                        f'<span style="width:64px;color:#475569;font-family:system-ui">layer {layer}</span>'
                        + "".join(spans) + "</div>")
        legend = "".join(f'<span style="background:{EXPERT_FILL[e % len(EXPERT_FILL)]};border-bottom:4px solid '
                         f'{EXPERT_LINE[e % len(EXPERT_LINE)]};padding:1px 6px;margin-right:6px;border-radius:3px">'
                         f'expert {e}</span>' for e in range(E))
        return (f'<div style="margin:6px 0 2px 0;font-size:13px">{legend}</div>'
                f'<div style="overflow-x:auto">{"".join(rows)}</div>')
    return (routing_html,)


@app.cell
def _(mo, moe_cfg, routing_html, text_chars, text_routing):
    _K = moe_cfg.experts_per_token
    _second = ("and the thick line under it the second" if _K == 2 else
               f"and the thick line under it the second of its {_K}" if _K > 2 else "")
    mo.vstack([
        mo.md(f"Each character of your text ({len(text_chars)} token{'s' if len(text_chars) != 1 else ''}) in each "
              f"of the {moe_cfg.n_layers} layers: "
              f"the fill is the colour of the expert the router ranked first for it, {_second}. Hover over a "
              f"character for the router's probability of every expert."),
        mo.Html(routing_html(text_chars, text_routing)),
    ])
    return


@app.cell
def _(mo, moe_cfg, moe_loaded):
    layer_pick = mo.ui.slider(0, moe_cfg.n_layers - 1, step=1, value=0, label="layer", show_value=True)
    _weight = moe_loaded.card["recipe"]["changes"]["balance_weight"]
    _E_over_K = moe_cfg.n_experts / moe_cfg.experts_per_token
    mo.vstack([mo.md(f"""
    ### Each expert's load

    The **load-balancing loss** of Switch Transformers, added to the training loss with weight {_weight:g}, pushes
    the router to share the tokens out: it is $E \\cdot \\sum_i f_i P_i$, with $f_i$ the share of routing
    slots expert $i$ received and $P_i$ its mean router probability, which is 1 when the experts share
    evenly and at most $E/K$ (here {_E_over_K:g}) when every token's first choice is the same expert with certainty
    (with $K = 1$, as in Switch, that is $E$). Without it a router can fall into
    **routing collapse**: a few experts get most tokens, learn fastest, and so get even more. The second
    chart is the same text through the same architecture trained without that loss. Pick a layer:
    """), layer_pick])
    return (layer_pick,)


@app.cell
def _(EXPERT_FILL, SVG, alt, layer_pick, mo, moe_cfg, moe_loaded, nobal_loaded, nobal_text_load, text_load):
    _l = int(layer_pick.value)
    _E, _K = moe_cfg.n_experts, moe_cfg.experts_per_token
    _even = _K / _E

    def _panel(load, card, title):
        _val = card["expert_load_validation"]["token_share"][_l]
        _rows = [{"expert": f"{e}", "share": load.token_share[_l][e], "validation": _val[e],
                  "colour": EXPERT_FILL[e % len(EXPERT_FILL)]} for e in range(_E)]
        _tip = ["expert:N", alt.Tooltip("share:Q", title="share of your text's tokens", format=".1%"),
                alt.Tooltip("validation:Q", title="share of the validation split's", format=".1%")]
        _x = alt.X("expert:N", sort=None, title="expert", axis=alt.Axis(labelAngle=0))
        _y = alt.Y("share:Q", title="share of the tokens", axis=alt.Axis(format="%"),
                   scale=alt.Scale(domain=[0, max(1.0, max(r["share"] for r in _rows))]))
        _bars = alt.Chart(alt.Data(values=_rows)).mark_bar(stroke="#475569", strokeWidth=0.5).encode(
            x=_x, y=_y, color=alt.Color("colour:N", scale=None), tooltip=_tip)
        _ticks = alt.Chart(alt.Data(values=_rows)).mark_tick(color="#0f172a", thickness=2, size=22).encode(
            x=_x, y="validation:Q", tooltip=_tip)
        _rule = alt.Chart(alt.Data(values=[{"even": _even}])).mark_rule(strokeDash=[4, 3], color="#64748b").encode(
            y="even:Q")
        return alt.layer(_bars, _ticks, _rule).properties(width=300, height=200, title=title)

    _chart = alt.hconcat(_panel(text_load, moe_loaded.card, f"layer {_l}: mixture of experts"),
                         _panel(nobal_text_load, nobal_loaded.card, f"layer {_l}: trained without balance loss"),
                         ).properties(usermeta=SVG)
    _be, _bs = text_load.busiest[_l]
    _ne, _ns = nobal_text_load.busiest[_l]
    _vb = moe_loaded.card["expert_load_validation"]["busiest_expert"][_l]
    _vn = nobal_loaded.card["expert_load_validation"]["busiest_expert"][_l]
    _per_layer = [b["token_share"] for b in nobal_loaded.card["expert_load_validation"]["busiest_expert"]]
    _worst = max(range(len(_per_layer)), key=_per_layer.__getitem__)
    _worst_share = _per_layer[_worst]
    mo.vstack([
        mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
        mo.md(f"Bars: each expert's share of your text's {text_load.tokens} "
              f"token{'s' if text_load.tokens != 1 else ''} in layer {_l}; black ticks: its "
              f"share of the validation split ({moe_loaded.card['expert_load_validation']['tokens']:,} "
              f"characters, measured when the model was shipped); dashed line: an even split, {_K} of {_E} = "
              f"{_even:.0%} of the tokens each (a token goes to {_K} experts, so the shares add up to {_K}).\n\n"
              f"Layer {_l} on your text: the mixture's busiest expert, expert {_be}, gets **{_bs:.0%}** of the tokens "
              f"(balance loss {text_load.balance[_l]:.2f}); trained without the balance loss, expert {_ne} gets "
              f"**{_ns:.0%}** (balance loss {nobal_text_load.balance[_l]:.2f}). Over the validation split: "
              f"{_vb['token_share']:.0%} and {_vn['token_share']:.0%}."
              + (f" The model trained without the balance loss is most uneven in layer {_worst} (its busiest expert "
                 f"takes {_worst_share:.0%} of the validation tokens): move the slider there."
                 if _worst != _l else "")),
    ])
    return


@app.cell
def _(code_panel, ex, layer_pick, mo, text_chars, text_routing, token_label):
    _l = int(layer_pick.value)
    _spec = ex.specialisation(text_routing, text_chars, _l)
    _head = ("| | tokens | " + " | ".join(_spec.classes) + " | most frequent |\n|:---|---:|" +
             "---:|" * len(_spec.classes) + ":---|")
    _marks = {(e, c) for e, c, _, _ in _spec.clear()}

    def _cell(e, i):
        v = _spec.share[e][i]
        if v != v:   # nan: no tokens
            return "–"
        arrow = (" ▲" if v > _spec.text_share[i] else " ▼") if (e, _spec.classes[i]) in _marks else ""
        return f"{v:.0%}{arrow}"

    _rows = [f"| expert {e} | {_spec.tokens[e]} | " + " | ".join(_cell(e, i) for i in range(len(_spec.classes))) +
             " | " + " ".join(f"`{token_label(ch.encode('utf-8'))}`×{n}" for ch, n in _spec.top_chars[e]) + " |"
             for e in range(len(_spec.tokens))]
    _rows.append(f"| your whole text | {_spec.n} | " + " | ".join(f"{v:.0%}" for v in _spec.text_share) + " | |")
    _clear = _spec.clear()
    if _clear:
        _said = (f"In layer {_l}, {len(_clear)} difference{'s are' if len(_clear) > 1 else ' is'} clear (▲ ▼): " +
                 "; ".join(f"expert {e}: {s:.0%} {name} against {p:.0%} in the text"
                           for e, name, s, p in _clear[:4]) +
                 (f"; and {len(_clear) - 4} more" if len(_clear) > 4 else "") + ".")
    else:
        _said = (f"No clear specialisation in layer {_l} on your text: no expert's share of any class differs "
                 f"from the text's by both {ex.LIFT:g}× and {ex.Z_CLEAR:g} times the spread a random subset of the "
                 f"same size would show."
                 + (f" With only {_spec.n} token{'s' if _spec.n != 1 else ''}, and about "
                    f"{sum(_spec.tokens) / len(_spec.tokens):.1f} per expert,"
                    " only a very large difference could show: the measurement below uses held-out "
                    "Shakespeare, where each expert sees thousands." if _spec.n < 500 else ""))
    mo.vstack([
        mo.md(f"""
        ### Do experts specialise?

        For each expert of layer {_l}: the share of vowels, consonants, spaces (line breaks included),
        punctuation (anything else) and upper-case letters among the tokens sent to it, against the
        shares in your whole text. If the router ignored what a token is, an expert's tokens would be a
        random subset of the text and its shares would differ from the text's only by chance. A
        difference is marked clear when the expert's share is at least {ex.LIFT:g}× the text's (or at most
        1/{ex.LIFT:g} of it) *and* at least {ex.Z_CLEAR:g} times the spread a random subset of that size
        would show.
        """),
        mo.md(_head + "\n" + "\n".join(_rows)),
        mo.md(_said),
        mo.accordion({"specialisation (glassformer/analysis/experts.py)":
                      code_panel(ex.specialisation, highlight=("sd = ", "z = torch.where"))}),
    ])
    return



@app.cell
def _(build_model, code_panel, ex, held_out_text, mo, moe_cfg, moe_loaded, moe_net, torch):
    _sample = held_out_text()[:16_384]
    _ids = torch.tensor(moe_loaded.tokenizer.encode(_sample))
    _chars = [moe_loaded.tokenizer.decode([i]) for i in _ids.tolist()]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        _untrained = build_model(moe_cfg).eval()        # the same architecture, random weights: the control
    _routed = {"trained": ex.route(moe_net, _ids), "random": ex.route(_untrained, _ids)}
    _L = range(moe_cfg.n_layers)
    _found = {k: [ex.specialisation(r, _chars, i).clear() for i in _L] for k, r in _routed.items()}
    _follow = {k: [ex.follows_character(r, _chars, i) for i in _L] for k, r in _routed.items()}

    def _strongest(found):
        if not found:
            return "–"
        e, name, share, p = found[0]
        return f"expert {e}: {share:.0%} {name} (text: {p:.0%})"

    _rows = "\n".join(f"| {i} | {len(_found['trained'][i])} | {_strongest(_found['trained'][i])} | "
                      f"{_follow['trained'][i]:.0%} | {len(_found['random'][i])} | {_follow['random'][i]:.0%} |"
                      for i in _L)
    _n_trained = sum(map(len, _found["trained"]))
    _n_random = sum(map(len, _found["random"]))
    if _n_trained == 0:
        _verdict = ("No clear specialisation by these classes in any layer of the trained mixture, even over "
                    f"{len(_chars):,} characters.")
    else:
        _most = max(_L, key=lambda i: len(_found["trained"][i]))
        _verdict = (f"The trained mixture shows {_n_trained} clear differences over its "
                    f"{moe_cfg.n_layers} layers, most in layer {_most} ({len(_found['trained'][_most])}). ")
        if _n_random == 0:
            _verdict += "The same architecture with random weights shows none: this sorting was learned."
        elif _n_random < _n_trained / 2:
            _verdict += (f"With random weights it shows {_n_random}: some sorting comes with any router that sees "
                         "different characters' vectors, but most of it was learned.")
        else:
            _verdict += (f"But with random weights it shows {_n_random}: a router sends different characters' vectors "
                         "to different experts even untrained, so sorting by character class alone does not show that "
                         "the experts learned a speciality.")
    _lo_t, _lo_r = min(_follow["trained"]), min(_follow["random"])
    _deep = max(_L, key=lambda i: -_follow["trained"][i])
    _context = (f" What training changed is visible in the last columns: with random weights a token's expert is "
                f"mostly set by its character ({_lo_r:.0%} or more of the tokens go where their character usually "
                f"goes, in every layer), while in the trained mixture's layer {_deep} only "
                f"{_follow['trained'][_deep]:.0%} do: there the router's choice depends on the context, not only on "
                f"the character."
                if _follow["trained"][_deep] < _lo_r - 0.1 else
                f" In every layer of both, {min(_lo_t, _lo_r):.0%} or more of the tokens go where their character "
                "usually goes: the routing follows the character more than the context.")
    mo.vstack([
        mo.md(f"""
        The same measure on held-out Shakespeare, {len(_chars):,} characters the models never trained on, for
        the trained mixture and, as a control, for the same architecture with random weights (seed 0). The
        "follows the character" columns give the share of tokens whose first-choice expert is the one their
        character most often gets in that layer (1 would mean the choice depends on the character alone).
        """),
        mo.md("| layer | trained: clear differences | the strongest | trained: follows the character | "
              "random weights: clear differences | random: follows the character |\n"
              "|---:|---:|:---|---:|---:|---:|\n" + _rows),
        mo.md(f"{_verdict}{_context} Mixtral's authors looked for experts specialised by subject (Jiang et al. 2024, "
              "section 5) and found no clear pattern; what they did see was syntax, such as indentation in code, and "
              "consecutive tokens often sent to the same expert."),
        mo.accordion({"follows_character (glassformer/analysis/experts.py)": code_panel(ex.follows_character)}),
    ])
    return


@app.cell
def _(held_out_text, moe_cfg, moe_loaded, moe_net, dense_net, nobal_net, timing, torch):
    _ids = torch.tensor(moe_loaded.tokenizer.encode(held_out_text()[:8 * moe_cfg.n_ctx])).view(8, moe_cfg.n_ctx)
    with torch.no_grad():   # the three models in turns, one thread (glassformer/timing.py)
        speed = timing.measure_in_turns({"dense": lambda: dense_net(_ids), "moe": lambda: moe_net(_ids),
                                         "nobal": lambda: nobal_net(_ids)}, repeats=9, budget=2.0, min_repeats=6)
    speed_tokens = _ids.numel()
    return speed, speed_tokens


@app.cell
def _(dense_loaded, dense_net, machine, mo, model_counts, moe_cfg, moe_loaded, moe_net, nobal_loaded, nobal_net, sc,
      speed, speed_tokens, timing):
    _cards = {"dense": dense_loaded.card, "moe": moe_loaded.card, "nobal": nobal_loaded.card}
    _nets = {"dense": dense_net, "moe": moe_net, "nobal": nobal_net}
    _keys = ("dense", "moe", "nobal")
    _E, _K, _F = moe_cfg.n_experts, moe_cfg.experts_per_token, moe_cfg.d_expert
    _budget = moe_loaded.card["recipe"]["time_budget_s"]
    _threads = moe_loaded.card["recipe"]["threads"]

    def _mean(values):
        return sum(values) / len(values)

    def _row(name, cells):
        return f"| {name} | " + " | ".join(cells) + " |"

    def _load(key, field):
        c = _cards[key]
        return "–" if "expert_load_validation" not in c else field(c)

    _table = "\n".join([
        "| | dense twin | mixture of experts | mixture, no balance loss |",
        "|:---|---:|---:|---:|",
        _row("feed-forward part of a block", [f"one SwiGLU of width {dense_net.config.d_mlp}",
                                              f"{_E} experts of width {_F}, {_K} per token",
                                              f"{_E} experts of width {_F}, {_K} per token"]),
        _row("total parameters", [f"{model_counts[k].total:,}" for k in _keys]),
        _row("active parameters per token", [f"{model_counts[k].active:,}" for k in _keys]),
        _row("forward FLOPs per token", [f"{sc.forward_flops_per_token(_nets[k]):,}" for k in _keys]),
        _row("validation loss (nats per character)", [f"{_cards[k]['final_val_loss']:.3f}" for k in _keys]),
        _row(f"training steps in {_budget:.0f} s", [f"{_cards[k]['steps']:,}" for k in _keys]),
        _row("training tokens/s (when shipped)", [f"{_cards[k]['tokens_per_s']:,}" for k in _keys]),
        _row("forward tokens/s on this machine, now",
             [f"**{speed_tokens / speed[k].median:,.0f}**" for k in _keys]),
        _row("busiest expert's share of the tokens (validation, busiest layer)",
             [_load(k, lambda c: f"{c['busiest_expert_token_share']:.0%}") for k in _keys]),
        _row("balance loss (validation, mean of the layers; 1 = even)",
             [_load(k, lambda c: f"{_mean(c['expert_load_validation']['balance_loss']):.2f}")
              for k in _keys]),
    ])
    _c = timing.Comparison("dense twin", "mixture", speed["dense"].seconds, speed["moe"].seconds)
    _low, _high = _c.interval
    _verdict = _c.says(faster="the mixture is faster", slower="the mixture is slower", unclear=timing.UNCLEAR)
    _why = (f" Nearly equal FLOPs do not make equal time: the mixture also sorts the tokens by expert, gathers them, "
            f"and runs its {_E} experts' three matrix products each on a slice of the tokens, where the twin runs three "
            f"large ones: work and overhead the FLOP count leaves out."
            if _c.verdict == "slower" else "")
    _dl, _ml, _nl = (_cards[k]["final_val_loss"] for k in _keys)
    _diff = _ml - _dl
    _loss = (f"With the same {_budget:.0f} s of training on {_threads} thread{'s' if _threads != 1 else ''}, the "
             f"mixture took "
             f"{_cards['moe']['steps']:,} steps and the dense twin {_cards['dense']['steps']:,}; the mixture's "
             f"validation loss is {_ml:.3f} nats per character against the twin's {_dl:.3f}, "
             f"{abs(_diff):.3f} {'lower' if _diff < 0 else 'higher'}"
             + (" (one training run each, so this page cannot tell how much of a difference this small is "
                "run-to-run chance)" if abs(_diff) < 0.05 else "") + ".")
    _even = _K / _E
    _bm, _bn = (_cards[k].get("busiest_expert_token_share") for k in ("moe", "nobal"))
    _nob = (f"Without the balance loss the busiest expert of its busiest layer takes {_bn:.0%} of the validation "
            f"tokens, against {_bm:.0%} with it and {_even:.0%} for an even split"
            + (": in that layer the router has collapsed onto a few experts" if _bn >= 2 * _even and _bn > _bm else
               ": more uneven than with it" if _bn > _bm else ": no more uneven than with it") +
            f"; its validation loss is {_nl:.3f} ({_nl - _ml:+.3f} against the balanced mixture"
            + (f"; one run each, {_cards['nobal']['steps']:,} steps against {_cards['moe']['steps']:,}: too small a "
               "difference to credit to the balance loss" if abs(_nl - _ml) < 0.05 else "") + ")."
            if _bm is not None and _bn is not None else "")
    mo.vstack([
        mo.md(f"""
        ## Dense twin against mixture

        Three models trained by `scripts/ship_moe_models.py` on TinyShakespeare with the same recipe and the
        same wall-time budget; only the feed-forward part differs (and the third is trained without the balance
        loss). Parameters and FLOPs are counted on the
        models now (`glassformer/analysis/scaling.py`); losses and
        training speeds come from their cards (the machine that shipped them: {moe_loaded.card['cpu_model']});
        the forward speed is measured now, on this machine.
        """),
        mo.md(_table),
        mo.md(f"{_loss}\n\n{_nob}\n\n"
              f"Forward speed on this machine ({machine.facts().model}, torch kernels {machine.facts().torch_isa}, one "
              f"thread, {speed_tokens:,} tokens per call, the three models timed in turns as every comparison in the "
              f"course is): the mixture takes "
              f"**{1 / _c.speedup:.2f}×** the dense twin's time per token ({1 / _high:.2f}–{1 / _low:.2f}×, "
              f"{_c.runs} runs in turns): {_verdict}.{_why}"),
    ])
    return



@app.cell
def _(json, sc):
    try:
        scaling_runs = sc.load_runs()["runs"]
    except FileNotFoundError:
        scaling_runs = []
    _card = sc.SCALING_DIR / "card.json"
    scaling_card = json.loads(_card.read_text()) if _card.exists() else {}
    return scaling_card, scaling_runs


@app.cell
def _(mo, sc, scaling_card, scaling_runs):
    _planned = len(sc.SIZES) * len(sc.BUDGETS)
    if scaling_runs:
        _sizes = sorted({(r["non_embedding_parameters"], r["size"]) for r in scaling_runs})
        _budgets = sorted({r["tokens"] for r in scaling_runs})
        _widths = {r["size"]: r["d_model"] for r in scaling_runs}
        _minutes = scaling_card.get("script_seconds_total", 0) / 60
        _cpus = ", ".join(sorted({r["cpu_model"] for r in scaling_runs if r.get("cpu_model")})) or "a CPU not recorded"
        _jobs = sorted({r.get("jobs_at_once", 1) for r in scaling_runs})
        _threads = sorted({r.get("threads", 1) for r in scaling_runs})
        _span = (f"{len(_sizes)} sizes, from {_sizes[0][1]} (width {_widths[_sizes[0][1]]}, {_sizes[0][0]:,} "
                 f"non-embedding parameters) to {_sizes[-1][1]} ({_sizes[-1][0]:,}), "
                 f"{_sizes[-1][0] / _sizes[0][0]:.0f}× apart" if len(_sizes) > 1 else
                 f"one size so far, {_sizes[0][1]} ({_sizes[0][0]:,} non-embedding parameters)")
        _runs = (f"The table shipped with the course holds {len(scaling_runs)} "
                 f"run{'s' if len(scaling_runs) > 1 else ''}"
                 + (f" (of the {_planned} the script plans: it is still being filled)" if len(scaling_runs) < _planned
                    else "") +
                 f": {_span}, and {len(_budgets)} token budget{'s' if len(_budgets) > 1 else ''} ("
                 + ", ".join(f"{t / 1e6:.2f}" for t in _budgets) + " million characters), every run trained from "
                 f"scratch. `scripts/ship_scaling_runs.py` trained them in {_minutes:.0f} minutes on {_cpus}, "
                 + (f"{_jobs[0]} runs at a time" if _jobs == [2] or (len(_jobs) == 1 and _jobs[0] > 2) else
                    "one run at a time" if _jobs == [1] else "several runs at a time")
                 + (", one thread each" if _threads == [1] else "") +
                 f". One recipe for all (the course model's architecture and optimizer: RoPE, RMSNorm, SwiGLU, Muon; "
                 f"batch {sc.BATCH} × "
                 f"{sc.CONTEXT} characters, cosine schedule to the end of each run's own budget): only the shape and "
                 f"the number of training tokens change. Each loss is the mean over the whole validation split, in "
                 f"nats per character.")
    else:
        _runs = ("No table of scaling runs is shipped yet (`scripts/ship_scaling_runs.py` makes it): the charts and "
                 "fits below need it.")
    mo.md(rf"""
    ## Scaling laws

    Kaplan et al. (2020) trained language models from 768 to 1.5 billion non-embedding parameters and found
    that the loss falls as a **power law** in the number of parameters $N$, in the training tokens $D$
    and in the compute $C \approx 6ND$: $L \propto N^{{-\alpha}}$, a straight line on
    log–log axes, over many orders of magnitude. Hoffmann et al. (2022) fitted a form with an irreducible floor and
    separate, additive terms for $N$ and $D$:

    $$L(N, D) = E + \frac{{A}}{{N^{{\alpha}}}} + \frac{{B}}{{D^{{\beta}}}}$$

    $E$ is the **irreducible loss**: what no size and no amount of this data removes (the text's own
    unpredictability, plus what the recipe can never learn). $A/N^\alpha$ is what a model too small
    still loses, $B/D^\beta$ what too few training tokens still lose. Following Kaplan et al., $N$
    counts the non-embedding parameters (every weight but the character table).

    {_runs}
    """)
    return


@app.cell
def _(sc, scaling_runs):
    def two_term(runs):
        return sc.fit_loss_vs_n_d([r["non_embedding_parameters"] for r in runs], [r["tokens"] for r in runs],
                                  [r["val_loss"] for r in runs])

    # The two-term law fitted to every run, and again leaving out the smallest budgets (while 3 budgets remain:
    # with fewer, B and β cannot be told apart from E).
    _budgets = sorted({r["tokens"] for r in scaling_runs})
    nd_fits = {}
    for _t in _budgets[:max(0, len(_budgets) - 2)]:
        _runs = [r for r in scaling_runs if r["tokens"] >= _t]
        if len(_runs) >= 7 and len({r["size"] for r in _runs}) >= 2:
            nd_fits[_t] = two_term(_runs)
    return (nd_fits,)


@app.cell
def _(mo, nd_fits, scaling_runs):
    _budgets = sorted({r["tokens"] for r in scaling_runs})
    _usable = [t for t in _budgets if sum(r["tokens"] == t for r in scaling_runs) >= 4]
    _options = {f"{t / 1e6:.2f}M training tokens": t for t in _usable} or {"(no budget has 4 runs yet)": 0}
    fit_budget = mo.ui.dropdown(_options, value=list(_options)[-1], label="fit L(N) to the runs of")
    _from = ({("every run" if i == 0 else f"runs of {t / 1e6:.2f}M tokens or more"): t for i, t in enumerate(nd_fits)}
             or {"(not enough runs yet)": 0})
    nd_from = mo.ui.dropdown(_from, value=list(_from)[0], label="fit L(N, D) to")
    mo.hstack([fit_budget, nd_from], justify="start", gap=2)
    return fit_budget, nd_from


@app.cell
def _(fit_budget, nd_fits, nd_from, sc, scaling_runs):
    law_n = None
    _one = [r for r in scaling_runs if r["tokens"] == fit_budget.value]
    if len(_one) >= 4:
        law_n = sc.fit_loss_vs_n([r["non_embedding_parameters"] for r in _one], [r["val_loss"] for r in _one])
    law_nd = nd_fits.get(nd_from.value)
    nd_runs = [r for r in scaling_runs if r["tokens"] >= nd_from.value] if law_nd is not None else []
    return law_n, law_nd, nd_runs


@app.cell
def _(code_panel, fit_budget, law_n, law_nd, mo, nd_fits, nd_from, nd_runs, np, sc, scaling_runs):
    def _pm(fit, name, digits=3):
        v, e = fit[name], fit.error(name)
        big = abs(v) >= 1e4 or (abs(v) < 1e-3 and v != 0)
        return (f"{v:.3g} ± {e:.2g}" if big else f"{v:.{digits}f} ± {e:.{digits}f}")

    _first = min(nd_fits) if nd_fits else 0
    _nd_label = "every run" if nd_from.value == _first else f"runs of {nd_from.value / 1e6:.2f}M tokens or more"
    _lines = ["| law | runs | E | A | α | B | β | rms residual |", "|:---|---:|---:|---:|---:|---:|---:|---:|"]
    if law_n is not None:
        _lines.append(f"| L(N), {fit_budget.value / 1e6:.2f}M tokens | {law_n.points} | {_pm(law_n, 'E')} | "
                      f"{_pm(law_n, 'A')} | {_pm(law_n, 'alpha')} | | | {law_n.rms:.4f} |")
    if law_nd is not None:
        _lines.append(f"| L(N, D), {_nd_label} | {law_nd.points} | {_pm(law_nd, 'E')} | {_pm(law_nd, 'A')} | "
                      f"{_pm(law_nd, 'alpha')} | {_pm(law_nd, 'B')} | {_pm(law_nd, 'beta')} | {law_nd.rms:.4f} |")
    _say = []
    for _name, _fit in (("L(N)", law_n), ("L(N, D)", law_nd)):
        if _fit is None:
            continue
        _a, _ae = _fit["alpha"], _fit.error("alpha")
        if _fit["E"] < 0 or not _fit.error("E") < abs(_fit["E"]):
            _say.append(f"{_name}: the fit finds no floor here (E = {_fit['E']:.2f}, its uncertainty "
                        f"{_fit.error('E'):.2f}): with these runs the constants trade off against each other (a "
                        "negative or unpinned E with a small α is nearly a straight line in log N), so neither E nor "
                        f"α is determined, and the runs sit {_fit.rms:.3f} nats from the law (root mean square).")
            continue
        _s = (f"{_name}: α = {_a:.2f} ± {_ae:.2f}, so doubling $N$ multiplies the part of the loss that size can "
              f"remove by $2^{{-\\alpha}}$ = {2 ** -_a:.2f}")
        if "beta" in _fit.names:
            _b = _fit["beta"]
            _s += f"; β = {_b:.2f} ± {_fit.error('beta'):.2f}, and doubling $D$ multiplies its part by {2 ** -_b:.2f}"
        _s += (f". The fitted floor is E = {_fit['E']:.2f} ± {_fit.error('E'):.2f} nats per character, and the runs "
               f"sit {_fit.rms:.3f} nats from the law (root mean square).")
        if not _ae < _a / 2:
            _s += " The runs pin α down poorly: its uncertainty is more than half its value."
        _say.append(_s)
    if law_nd is not None:
        _res = {}
        for r in nd_runs:   # residuals of the selected two-term fit, budget by budget
            _res.setdefault(r["tokens"], []).append(r["val_loss"] - law_nd.predict(r["non_embedding_parameters"],
                                                                                   r["tokens"]))
        _rms = {t: float(np.sqrt(np.mean(np.square(v)))) for t, v in _res.items()}
        _worst, _best = max(_rms, key=_rms.get), min(_rms, key=_rms.get)
        _say.append(f"Under this two-term fit the {_worst / 1e6:.2f}M-token runs sit furthest from the law (rms "
                    f"{_rms[_worst]:.3f} nats) and the {_best / 1e6:.2f}M-token runs closest ({_rms[_best]:.3f}).")
    if len(nd_fits) > 1:
        _rows = "\n".join(f"| {'every run' if t == _first else f'{t / 1e6:.2f}M tokens or more'} | {f.points} | "
                          f"{f['E']:.2f} ± {f.error('E'):.2f} | {f['alpha']:.2f} ± {f.error('alpha'):.2f} | "
                          f"{f['beta']:.2f} ± {f.error('beta'):.2f} | {f.rms:.4f} |" for t, f in nd_fits.items())
        _all, _last = nd_fits[_first], nd_fits[max(nd_fits)]
        _long = [r for r in scaling_runs if r["tokens"] >= max(nd_fits)]
        _like = float(np.sqrt(np.mean([(r["val_loss"] - _all.predict(r["non_embedding_parameters"], r["tokens"])) ** 2
                                       for r in _long])))
        _say.append("How much the two-term law depends on the runs it is given (pick one above; the prediction and "
                    "the compute-optimal split below use it):\n\n"
                    "| L(N, D) fitted to | runs | E | α | β | rms residual |\n"
                    "|:---|---:|---:|---:|---:|---:|\n" + _rows +
                    f"\n\nOn the runs of {max(nd_fits) / 1e6:.2f}M tokens or more, the every-run law misses by "
                    f"{_like:.3f} nats (rms) and the law fitted to those runs alone by {_last.rms:.3f}"
                    + (f": the shorter runs ({_first // (sc.BATCH * sc.CONTEXT):,} to "
                       f"{max(nd_fits) // (sc.BATCH * sc.CONTEXT) // 2:,} steps) pull the every-run fit away from "
                       "the longer ones." if _last.rms < _like / 1.3 else "."))
    if law_n is None and law_nd is None:
        _say.append("Not enough runs to fit yet.")
    mo.vstack([
        mo.md("""
        ### The fit, computed now

        Least squares on the losses: for every pair of exponents on a grid the constants $E, A, B$ follow
        exactly (the law is linear in them), then Levenberg–Marquardt steps refine all of them together.
        The ± is one standard error from the fit's covariance $s^2 (J^\\top J)^{-1}$ ($J$: how the fitted
        losses move with each constant; $s^2$: the squared residuals per spare run). The constants are
        strongly correlated (a larger $A$ with a larger $\\alpha$ can fit nearly as well), so each ± is wider
        than the uncertainty of a prediction made with all of them.
        """),
        mo.md("\n".join(_lines) if law_n is not None or law_nd is not None else ""),
        mo.md("\n\n".join(_say)),
        mo.accordion({"fit_law (glassformer/analysis/scaling.py)":
                      code_panel(sc.fit_law, highlight=("np.linalg.pinv(X)", "np.linalg.solve", "s2 * np.linalg"))}),
    ])
    return


@app.cell
def _(SVG, alt, fit_budget, law_n, law_nd, mo, np, sc, scaling_runs):
    if not scaling_runs:
        _out = mo.md("")
    else:
        _label = lambda t: f"{t / 1e6:.2f}M tokens"  # noqa: E731
        _budgets = sorted({r["tokens"] for r in scaling_runs})
        _order = [_label(t) for t in _budgets]
        _points = [{"N": r["non_embedding_parameters"], "loss": r["val_loss"], "D": _label(r["tokens"]),
                    "C": r["compute"], "size": r["size"], "tokens": r["tokens"]} for r in scaling_runs]
        _ns = np.geomspace(min(p["N"] for p in _points), max(p["N"] for p in _points), 40)
        _curves = ([{"N": float(n), "loss": float(law_nd.predict(n, t)), "D": _label(t)} for t in _budgets for n in _ns]
                   if law_nd is not None else [])
        _color = alt.Color("D:N", title="training tokens", sort=_order,
                           scale=alt.Scale(scheme="viridis", domain=_order), legend=alt.Legend(orient="right"))
        def _span(values, pad):   # a log axis over the data, not over whole decades
            return [min(values) / pad, max(values) * pad]

        _logx = alt.X("N:Q", scale=alt.Scale(type="log", domain=_span([p["N"] for p in _points], 1.3), nice=False),
                      title="non-embedding parameters N (log)", axis=alt.Axis(format="~s"))
        _logy = alt.Y("loss:Q", scale=alt.Scale(type="log", domain=_span([p["loss"] for p in _points], 1.05),
                                                nice=False), title="validation loss (log)")
        _tip = ["size:N", alt.Tooltip("N:Q", format=","), alt.Tooltip("tokens:Q", format=","),
                alt.Tooltip("loss:Q", format=".4f"), alt.Tooltip("C:Q", format=".2e", title="compute")]
        _runs_n = alt.Chart(alt.Data(values=_points)).mark_line(point=True, strokeWidth=1).encode(
            x=_logx, y=_logy, color=_color, tooltip=_tip)
        _layers = [_runs_n]
        if _curves:
            _layers.append(alt.Chart(alt.Data(values=_curves)).mark_line(
                strokeDash=[5, 4], strokeWidth=1.5, clip=True).encode(x=_logx, y=_logy, color=_color))
        if law_n is not None:
            _one = [{"N": float(n), "loss": float(law_n.predict(n))} for n in _ns]
            _layers.append(alt.Chart(alt.Data(values=_one)).mark_line(color="#111827", strokeWidth=1, clip=True).encode(
                x=_logx, y=_logy))
        _left = alt.layer(*_layers).properties(width=330, height=260, title="loss against parameters")
        _frontier = sc.compute_frontier(scaling_runs)
        _front = [{"C": r["compute"], "loss": r["val_loss"], "size": r["size"]} for r in _frontier]
        _logc = alt.X("C:Q", scale=alt.Scale(type="log", domain=_span([p["C"] for p in _points], 1.5), nice=False),
                      title="training compute C = 6ND (FLOPs, log)", axis=alt.Axis(format=".0e"))
        _size_order = [s for s in sc.SIZES if any(p["size"] == s for p in _points)]
        _by_size = alt.Chart(alt.Data(values=_points)).mark_line(point=True, strokeWidth=1).encode(
            x=_logc, y=_logy, tooltip=_tip,
            color=alt.Color("size:N", sort=_size_order, scale=alt.Scale(scheme="plasma", domain=_size_order),
                            title="size", legend=alt.Legend(orient="right")))
        _edge = alt.Chart(alt.Data(values=_front)).mark_line(color="#111827", strokeWidth=2.5, opacity=0.45).encode(
            x=_logc, y=_logy)
        _right = alt.layer(_edge, _by_size).properties(width=330, height=260, title="loss against compute")
        _chart = alt.hconcat(_left, _right).resolve_scale(color="independent").properties(usermeta=SVG)
        _out = mo.vstack([
            mo.ui.altair_chart(_chart, chart_selection=False, legend_selection=False),
            mo.md("Left: one line per token budget"
                  + ("; dashed, the two-term law at each budget" if law_nd is not None else "")
                  + (f"; thin black, L(N) fitted to the {fit_budget.value / 1e6:.2f}M-token runs alone"
                     if law_n is not None else "")
                  + ". Right: one line per size, its runs at growing budgets; the thick grey line joins the "
                  "**compute frontier**, the runs that no cheaper run beats. Hover over a point for its numbers."),
        ])
    _out
    return



@app.cell
def _(json, live_training, mo, sc, scaling_runs, store, time):
    scal_data_dir = store.db_path().parent
    scal_run_dir = scal_data_dir / "scaling" / "live"    # not in runs/: a scaling run is no model for the picker
    RUN_LIMIT = 60     # seconds of training at most (--time-limit); start-up and the final evaluation add ~15 s
    scal_message, set_scal_message = mo.state("")
    scal_shapes = sc.PAGE_SIZES | sc.SIZES
    scal_counts = {name: sc.shape_counts(*shape) for name, shape in scal_shapes.items()}
    _step = sc.BATCH * sc.CONTEXT
    _budgets = sorted(set(sc.BUDGETS[:-1]) | {_step * s for s in (180, 360, 720)})
    _shape_options = {f"{name}: N = {scal_counts[name].non_embedding:,}"
                      + (" (not in the table)" if name in sc.PAGE_SIZES else ""): name for name in scal_shapes}
    _budget_options = {f"{t / 1e6:.2f}M tokens ({t // _step:,} steps)": t for t in _budgets}

    def scal_expected(name: str, tokens: int) -> float | None:
        return sc.expected_seconds(scaling_runs, scal_counts[name].non_embedding, tokens) if scaling_runs else None

    _fits = [(s, t) for s in sc.PAGE_SIZES for t in _budgets
             if (scal_expected(s, t) or RUN_LIMIT) <= RUN_LIMIT * 0.5]
    _default = max(_fits, key=lambda st: st[1] * scal_counts[st[0]].non_embedding) if _fits else ("d20-L2", _budgets[0])
    scal_shape = mo.ui.dropdown(_shape_options, value=next(k for k, v in _shape_options.items() if v == _default[0]),
                                label="shape")
    scal_tokens = mo.ui.dropdown(_budget_options, value=next(k for k, v in _budget_options.items()
                                                             if v == _default[1]), label="training tokens")

    def _start(_):
        name, tokens = scal_shape.value, scal_tokens.value
        expected = scal_expected(name, tokens)
        if expected is not None and expected > RUN_LIMIT:
            set_scal_message(f"Not started: {name} on {tokens / 1e6:.2f}M tokens should take about {expected:.0f} s "
                             f"of training here, more than this page's {RUN_LIMIT} s. Choose a smaller shape or fewer "
                             "tokens.")
            return time.time()
        try:
            info = live_training.launch(scal_data_dir, scal_run_dir,
                                        sc.run_arguments(*scal_shapes[name], tokens) + ["--time-limit", str(RUN_LIMIT)])
        except live_training.Busy as exc:
            set_scal_message(f"Not started: {exc}.")
        else:
            (scal_run_dir / "request.json").write_text(json.dumps(
                {"size": name, "shape": list(scal_shapes[name]), "tokens": tokens,
                 "non_embedding_parameters": scal_counts[name].non_embedding, "steps": tokens // _step}))
            kept = f" The previous run was kept: `{info['kept']}`." if info.get("kept") else ""
            set_scal_message(f"Started at {time.strftime('%H:%M:%S')}: {name} on {tokens / 1e6:.2f}M tokens "
                             f"(process {info['pid']}).{kept}")
        return time.time()

    def _stop(_):
        set_scal_message("Stopped." if live_training.stop_run(scal_data_dir, scal_run_dir) else
                         "No scaling run of this chapter is going on.")
        return time.time()

    scal_start = mo.ui.button(label="▶ Train it", kind="success", on_click=_start)
    scal_stop = mo.ui.button(label="■ Stop", kind="danger", on_click=_stop)
    scal_poll = mo.ui.refresh(options=["2s"], default_interval="2s", label="update")
    return (RUN_LIMIT, scal_counts, scal_data_dir, scal_expected, scal_message, scal_poll, scal_run_dir, scal_shape,
            scal_shapes, scal_start, scal_stop, scal_tokens)


@app.cell
def _(RUN_LIMIT, law_nd, mo, nd_from, scal_counts, scal_expected, scal_poll, scal_shape, scal_start, scal_stop,
      scal_tokens, scaling_runs):
    _name, _tokens = scal_shape.value, scal_tokens.value
    _n = scal_counts[_name].non_embedding
    _expected = scal_expected(_name, _tokens)
    _same = next((r for r in scaling_runs if r["size"] == _name and r["tokens"] == _tokens), None)
    _parts = [f"{_name} has N = {_n:,} non-embedding parameters; {_tokens / 1e6:.2f}M training tokens make "
              f"C = 6ND = {6 * _n * _tokens:.2e} FLOPs."]
    if _expected is not None:
        _parts.append(f"At the speeds the table's runs measured, training should take about {_expected:.0f} s"
                      + (f": more than this page's {RUN_LIMIT} s, so it will not start." if _expected > RUN_LIMIT
                         else f" (longer on a busy machine; it stops at {RUN_LIMIT} s)."))
    if law_nd is not None:
        _parts.append(f"The two-term law predicts a validation loss of **{law_nd.predict(_n, _tokens):.3f} ± "
                      f"{law_nd.new_run_error(_n, _tokens):.3f}** (one standard error: the fit's own uncertainty and "
                      f"the scatter of a run around the law, {law_nd.scatter:.3f}, together)."
                      + (f" This budget is below every budget the chosen fit used ({nd_from.value / 1e6:.2f}M tokens "
                         "or more): the prediction is an extrapolation in D." if _tokens < nd_from.value else ""))
    if _same is not None:
        _parts.append(f"The table already holds this run (val loss {_same['val_loss']:.4f}): training it again, "
                      f"with the same seed, measures how exactly a run repeats (expect a near-exact match; it says "
                      f"nothing about how another seed would do).")
    mo.vstack([mo.md(f"""
    ### One more run: does the law predict it?

    Pick a shape and a number of training tokens; the button trains that model from scratch with the
    runs' exact recipe (`scaling.run_arguments`: the `glassformer train` flags of `scaling.run_config`)
    in a separate process (chapter 9's background runner: one thread, one run at a time on this server),
    for at most {RUN_LIMIT} s of training. When it ends, its whole-split validation loss appears beside
    what the law fitted above predicted for it. The shapes marked "not in the table" are sizes no run of
    the fit had.
    """), mo.hstack([scal_shape, scal_tokens, scal_start, scal_stop, scal_poll], justify="start", align="center"),
        mo.md(" ".join(_parts))])
    return


@app.cell
def _(live_training, scal_data_dir, scal_poll, scal_run_dir, scal_start, scal_stop):
    scal_poll.value, scal_start.value, scal_stop.value  # noqa: B018  (re-run on these)
    scal_fingerprint = live_training.fingerprint(scal_data_dir, [scal_run_dir])
    return (scal_fingerprint,)


@app.cell
def _(SVG, alt, json, law_nd, live_training, mo, scal_data_dir, scal_fingerprint, scal_message, scal_run_dir,
      scaling_runs):
    scal_fingerprint  # noqa: B018
    _holder = live_training.running(scal_data_dir)
    _ours = _holder is not None and _holder.get("folder") == str(scal_run_dir)
    _v = live_training.view(scal_run_dir, _ours)
    try:
        _req = json.loads((scal_run_dir / "request.json").read_text())
    except (OSError, ValueError):
        _req = None
    _parts = [mo.md({"none": "No run from this page yet.", "running": "Status: training…",
                     "finished": "Status: finished.", "stopped": "Status: stopped.",
                     "failed": f"Status: the run ended with an error: {_v.error}"}[_v.state] + " " + scal_message())]
    if _holder is not None and not _ours:
        _parts.append(mo.callout(mo.md(f"Another training run is going on this server ({_holder['folder']}): one "
                                       "at a time. Start yours once it has ended."), kind="info"))
    if _v.train and _req is not None:
        _last = _v.train[-1]
        _parts.append(mo.md(f"{_req['size']} on {_req['tokens'] / 1e6:.2f}M tokens: step {_last['step']:,} of "
                            f"{_req['steps']:,} after {_last['elapsed']:.0f} s, training loss "
                            f"{_last['train_loss']:.3f}."))
        _parts.append(mo.ui.altair_chart(alt.Chart(alt.Data(values=_v.train)).mark_line(point=True).encode(
            x=alt.X("step:Q", scale=alt.Scale(domain=[0, _req["steps"]])),
            y=alt.Y("train_loss:Q", title="training loss (nats per character)", scale=alt.Scale(zero=False)),
            tooltip=["step:Q", alt.Tooltip("train_loss:Q", format=".3f"), alt.Tooltip("elapsed:Q", format=".1f")],
        ).properties(width=460, height=180, title="your run", usermeta=SVG), chart_selection=False,
            legend_selection=False))
    if _v.state == "finished" and _req is not None:
        _measured, _steps = _v.summary["final_val_loss"], _v.summary["steps"]
        _n, _t = _req["non_embedding_parameters"], _req["tokens"]
        _say = (f"Measured: validation loss **{_measured:.3f}** after {_steps:,} steps "
                f"({_v.summary['wall_time_s']:.0f} s).")
        if _steps < _req["steps"]:
            _say += (f" It reached the page's time limit before its {_req['steps']:,} planned steps, so its "
                     "learning-rate schedule never finished decaying: it is not a run of the table's recipe, and the "
                     "law's prediction does not apply to it.")
        elif law_nd is not None:
            _p, _e = law_nd.predict(_n, _t), law_nd.new_run_error(_n, _t)
            _z = (_measured - _p) / _e
            _say += (f" The law predicted {_p:.3f} ± {_e:.3f}: the run is {abs(_measured - _p):.3f} nats "
                     f"{'below' if _measured < _p else 'above'} it, {abs(_z):.1f} standard errors, "
                     + ("within the prediction's uncertainty." if abs(_z) <= 2 else
                        "further than two standard errors: the law misses this run."))
        _same = next((r for r in scaling_runs if r["size"] == _req["size"] and r["tokens"] == _t), None)
        if _same is not None and _steps == _req["steps"]:
            _say += (f" The table's run of the same shape and budget measured {_same['val_loss']:.4f}, "
                     f"{_measured - _same['val_loss']:+.4f} from yours.")
        _parts.append(mo.md(_say))
    mo.vstack(_parts)
    return



@app.cell
def _(law_nd, mo, np, sc, scaling_runs):
    from glassformer.data import load_text as _load_text

    _chin = sc.CHINCHILLA_TOKENS_PER_PARAMETER
    if not scaling_runs:
        _out = mo.md("")
    else:
        _frontier = sc.compute_frontier(scaling_runs)
        _per = lambda x: f"{x:.1f}" if x < 10 else f"{x:,.0f}"  # noqa: E731
        _rows = "\n".join(f"| {r['compute']:.2e} | {r['size']} | {r['non_embedding_parameters']:,} | "
                          f"{r['tokens'] / 1e6:.2f}M | {_per(r['tokens'] / r['non_embedding_parameters'])} | "
                          f"{_per(r['tokens'] / r['parameters'])} | {r['val_loss']:.4f} |" for r in _frontier)
        _n_lo, _n_hi = (f(r["non_embedding_parameters"] for r in scaling_runs) for f in (min, max))
        _d_lo, _d_hi = (f(r["tokens"] for r in scaling_runs) for f in (min, max))
        _ratio = lambda r: r["tokens"] / r["non_embedding_parameters"]  # noqa: E731
        _small = [r for r in _frontier if r["non_embedding_parameters"] == _n_lo]
        _inside = [r for r in _frontier
                   if _n_lo < r["non_embedding_parameters"] < _n_hi and _d_lo < r["tokens"] < _d_hi]
        _top = _frontier[-1]
        _said = [f"{len(_frontier)} of the {len(scaling_runs)} runs {'are' if len(_frontier) > 1 else 'is'} on the "
                 f"frontier. From the cheapest to the most expensive, the model on it grows from "
                 f"{_frontier[0]['non_embedding_parameters']:,} to {_top['non_embedding_parameters']:,} non-embedding "
                 f"parameters, and its tokens per parameter go from {_ratio(_frontier[0]):,.0f} to "
                 f"{_ratio(_top):,.0f}."]
        if len(_small) > 1:
            _said.append(f"{len(_small)} frontier runs are the smallest size, {_small[0]['size']}: the "
                         "table has nothing smaller, so at those budgets the frontier shows where the grid of runs "
                         f"ends, not where the optimum is (their {_ratio(_small[0]):,.0f} to {_ratio(_small[-1]):,.0f} "
                         "tokens per parameter included).")
        if _inside:
            _lo, _hi = min(map(_ratio, _inside)), max(map(_ratio, _inside))
            _falling = len(_inside) > 1 and all(_ratio(b) < _ratio(a) for a, b in zip(_inside, _inside[1:]))
            _said.append("The frontier runs away from the table's edges (neither its smallest nor its largest size, "
                         "budget neither the smallest nor the largest): " +
                         ", ".join(f"{r['size']} on {r['tokens'] / 1e6:.2f}M tokens ({_ratio(r):,.0f} per parameter)"
                                   for r in _inside) +
                         (f". They train on {_lo:,.0f} to {_hi:,.0f} characters per non-embedding parameter"
                          if len(_inside) > 1 else "")
                         + (", falling as the compute grows, where Chinchilla found its ratio about constant." if _falling
                            else "."))
        if _top["non_embedding_parameters"] == _n_hi and _top["tokens"] == _d_hi:
            _said.append(f"The best run of all, {_top['size']} on {_top['tokens'] / 1e6:.2f}M tokens, is the largest "
                         "model on the largest budget, a corner of the table: it cannot say which of the two would "
                         "help more beyond it.")
        if law_nd is not None:
            try:
                _cs = np.array([min(r["compute"] for r in scaling_runs), max(r["compute"] for r in scaling_runs)])
                _train_chars = int(len(_load_text()[0]) * 0.9)   # the training split: train.py keeps the first 90%
                _n_opt, _d_opt = sc.compute_optimal(law_nd, _cs)
                _a = law_nd["beta"] / (law_nd["alpha"] + law_nd["beta"])
                _fit_ratio = _d_opt / _n_opt
                _said.append(
                    f"The fitted law (the L(N, D) chosen above) gives the optimum directly (set $dL/dN = 0$ with "
                    f"$D = C/6N$): $N_{{opt}} \\propto C^{{\\beta/(\\alpha+\\beta)}} = C^{{{_a:.2f}}}$ and "
                    f"$D_{{opt}} \\propto C^{{{1 - _a:.2f}}}$. At the table's smallest compute, {_cs[0]:.1e} FLOPs, it "
                    f"picks N = {_n_opt[0]:,.0f} and D = {_d_opt[0]:,.0f} ({_fit_ratio[0]:,.0f} tokens per parameter); "
                    f"at the largest, {_cs[1]:.1e}, N = {_n_opt[1]:,.0f} and D = {_d_opt[1]:,.0f} "
                    f"({_fit_ratio[1]:,.0f} per parameter)."
                    + (lambda out: f" {'Both lie' if out == 2 else 'One of them lies'} outside the table (N from "
                       f"{_n_lo:,} to {_n_hi:,}, D up to {_d_hi / 1e6:.2f}M tokens): "
                       + ("an extrapolation" if out == 1 else "extrapolations")
                       + (f"; {max(_d_opt) / 1e6:.1f}M tokens would be about {max(_d_opt) / _train_chars:.0f} "
                          "passes over this corpus." if max(_d_opt) > _d_hi else ".") if out else "")(
                        sum(not (_n_lo <= n <= _n_hi and d <= _d_hi) for n, d in zip(_n_opt, _d_opt)))
                    + (" With α this poorly determined (see its ± above), so is this split: the fit barely tells how "
                       "much size matters." if not law_nd.error("alpha") < law_nd["alpha"] / 2 else ""))
            except ValueError as exc:
                _said.append(f"The fitted law gives no compute-optimal split: {exc}.")
        _said.insert(0, f"Hoffmann et al. (2022, the Chinchilla paper) found that parameters and tokens should grow "
                        f"in about equal proportion, near {_chin} tokens per parameter, in runs from 70 million to 16 "
                        "billion parameters (all parameters counted) trained on fresh text. Their tokens are subwords "
                        "of several characters; here a token is one character, so the ratios below are characters "
                        "per parameter and cannot be set beside their 20. What can be compared is the trend. Here:")
        _out = mo.vstack([
            mo.md(r"""
            ## Compute-optimal: bigger model or more text?

            A compute budget $C \approx 6ND$ can buy a large model trained briefly or a small one trained
            long. The **compute-optimal** choice is the split with the lowest loss. Among the runs: for any
            budget, the best run it can pay for is on the **compute frontier**, the runs that no cheaper run
            beats. The last two columns give their **tokens per parameter** $D/N$, counting the parameters
            without and with the character table.
            """),
            mo.md("| compute (FLOPs) | run | N (non-embedding) | D | D / N | D / all parameters | val loss |\n"
                  "|---:|:---|---:|---:|---:|---:|---:|\n" + _rows),
            mo.md("\n\n".join(_said)),
        ])
    _out
    return


@app.cell
def _(math, mo, scaling_card, scaling_runs):
    if not scaling_runs:
        _out = mo.md("")
    else:
        from glassformer.data import load_text as _load_text

        _text, _ = _load_text()
        _train = int(len(_text) * 0.9)                          # train.train_val_split keeps the first 90%
        _longest = max(r["tokens"] for r in scaling_runs)
        _small = min(scaling_runs, key=lambda r: r["parameters"])
        _big = max(scaling_runs, key=lambda r: r["non_embedding_parameters"])
        _table_share = 1 - _small["non_embedding_parameters"] / _small["parameters"]
        _counting = (f" At this scale even what counts as a parameter matters: the character table is "
                     f"{_table_share:.0%} of the smallest model's {_small['parameters']:,} weights, so D/N depends on "
                     "whether it is counted." if _table_share >= 0.05 else "")
        _budgets = sorted({r["tokens"] for r in scaling_runs})
        _sizes = sorted({r["non_embedding_parameters"] for r in scaling_runs})
        _beyond = [t for t in _budgets if t > _train]
        # Batches are random windows drawn with replacement (data.random_batch): a character is seen about
        # D / train times; the share of a run's tokens that repeat one it already saw is 1 - (1 - e^-x) / x, x = D/train.
        _rep = {t: 1 - (1 - math.exp(-t / _train)) / (t / _train) for t in _budgets}
        _repeat = ("Batches are random windows of the training split, drawn with replacement, so every budget sees "
                   f"some characters more than once (about {_rep[_budgets[0]]:.0%} of the smallest budget's tokens "
                   f"repeat one it already saw, {_rep[_budgets[-1]]:.0%} of the largest's)"
                   + (f"; the {len(_beyond)} budget{'s' if len(_beyond) > 1 else ''} beyond one pass ("
                      + ", ".join(f"{t / 1e6:.2f}M" for t in _beyond) + " tokens) see each character "
                      + f"{_beyond[0] / _train:.1f}–{_beyond[-1] / _train:.1f} times on average" if _beyond else "")
                   + ". $B/D^\\beta$ here mixes new and repeated text, not an ever larger corpus.")
        _loss = {(r["non_embedding_parameters"], r["tokens"]): r["val_loss"] for r in scaling_runs}
        _pairs = [(_loss[(a, t)], _loss[(b, t)]) for t in _budgets for a, b in zip(_sizes, _sizes[1:])
                  if (a, t) in _loss and (b, t) in _loss]
        _worse = sum(b >= a for a, b in _pairs)
        if not _pairs:
            _monotone = "how the loss moves with size and budget (once the table holds two sizes at one budget)"
        elif _worse == 0:
            _monotone = (f"that at every budget each larger size reached a lower loss than the size below it "
                         f"({len(_pairs)} comparisons)")
        else:
            _monotone = (f"that a larger size reached a lower loss than the size below it in {len(_pairs) - _worse} of "
                         f"{len(_pairs)} comparisons at equal budget")
        _out = mo.md(f"""
        ### What a {len(_text.encode('utf-8')) / 1e6:.1f} MB character corpus can and cannot show

        TinyShakespeare is {len(_text):,} characters; the training split is its first 90%, {_train:,}. What
        these runs can show:
        {_monotone}, and how well a power law with a floor follows the losses (the rms residuals above).
        What they cannot:

        - *Fresh data.* The largest budget, {_longest / 1e6:.2f}M tokens, reads the training split
          {_longest / _train:.1f} times: {_longest / _train:.1f} **epochs**. Muennighoff et al. (2023) found that
          up to about 4 epochs of repeated data train nearly as well as new data, and that beyond that
          repetition is worth less and less. {_repeat}
        - *Tokens like the papers'.* One token is one character here, so the loss is in nats per character
          and a run of $D$ tokens has read $D$ characters; the papers' tokens are subwords of several
          characters each. The fitted constants belong to this corpus, this tokenizer and this recipe, and
          cannot be set beside the papers' numbers.
        - *Large models.* N runs from {_sizes[0]:,} to {_sizes[-1]:,} non-embedding parameters; Hoffmann et
          al.'s runs went from 70 million to over 16 billion. Nothing here says how the law continues far
          beyond {_big['size']}'s size.{_counting}
        - *Noise.* Each run was trained once, with one seed, so the scatter of the runs around the law
          mixes what the law misses with how much a run would change with another seed.
        """)
    _out
    return


@app.cell
def _(Question):
    questions = [
        Question("moe-active", "A layer has 8 experts of 66,000 weights each and a router of 1,000 weights; each "
                 "token goes to 2 experts. How many of the layer's weights does one token use?",
                 ["133,000", "529,000", "66,000", "1,000"], 0,
                 "2 × 66,000 for its two experts plus the router's 1,000: 133,000, a quarter of the 529,000 the layer "
                 "stores. That is the point of a mixture: many stored, few used."),
        Question("moe-balance", "Why is a load-balancing loss added when training a mixture of experts?",
                 ["Without it the router can send most tokens to a few experts, which then do most of the work "
                  "while the rest learn little",
                  "It makes every expert compute the same function",
                  "It lowers the number of FLOPs per token",
                  "It makes the router's choice random"], 0,
                 "An expert learns only from the tokens it gets. A router that favours a few experts makes them "
                 "better, which makes it favour them more: routing collapse. The loss is lowest when the shares "
                 "are even."),
        Question("scaling-floor", "In L(N) = E + A·N^(−α), what does E stand for?",
                 ["The loss that no model size can remove with this data and recipe",
                  "The loss of the smallest model",
                  "The loss before training",
                  "The slope of the line on log–log axes"], 0,
                 "As N grows, A·N^(−α) goes to 0 and the loss goes to E: the irreducible part. The slope on log–log "
                 "axes is −α, and only for L − E."),
        Question("scaling-chinchilla", "You get 100× more compute. Following Hoffmann et al. (2022), how should "
                 "you spend it?",
                 ["About 10× more parameters and 10× more training tokens",
                  "100× more parameters on the same tokens",
                  "100× more tokens with the same model",
                  "Train the same model for longer until the loss stops falling"], 0,
                 "C ≈ 6·N·D; they found N and D should grow in about equal proportion, so each by √100 = 10×, keeping "
                 "roughly 20 tokens per parameter."),
        Question("scaling-compute", "About how much training compute does a model of 1 million parameters need for "
                 "20 million tokens?",
                 ["1.2 × 10^14 FLOPs", "2 × 10^13 FLOPs", "1.2 × 10^8 FLOPs", "6 × 10^20 FLOPs"], 0,
                 "C ≈ 6·N·D = 6 × 10^6 × 2 × 10^7 = 1.2 × 10^14: 2 FLOPs per weight per token forward, 4 backward."),
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
