"""What every chapter notebook does the same way: the header with navigation, the model
picker, the learner's text box, and turning any text into ids the model can take."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import marimo as mo

from glassformer.course import catalog, store
from glassformer.course.widgets.tokens import PALETTE, token_label

log = logging.getLogger("glassformer.course")

DEFAULT_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"


def chapter(notebook_file: str) -> catalog.Chapter:
    """The catalog entry of the chapter whose notebook is `notebook_file` (its `__file__`)."""
    return catalog.for_file(notebook_file)


def header(key: str) -> mo.Html:
    """Title, breadcrumb and previous/next links; also records the visit."""
    store.mark_visited(key)
    ch = catalog.chapter(key)
    prev, nxt = catalog.neighbours(key)
    links = ['<a href="/">⌂ All chapters</a>']
    if prev:
        links.append(f'<a href="{prev.path}">← {prev.key}. {prev.title}</a>')
    if nxt:
        links.append(f'<a href="{nxt.path}">{nxt.key}. {nxt.title} →</a>')
    nav = " &nbsp;·&nbsp; ".join(links)
    kind = "Appendix" if ch.key.isalpha() and len(ch.key) == 1 else "Chapter"
    return mo.md(f'<nav class="gf-nav">{nav}</nav>\n\n# {kind} {ch.key} — {ch.title}\n\n*{ch.summary}*')


def footer(key: str) -> mo.Html:
    prev, nxt = catalog.neighbours(key)
    parts = ['<a href="/">⌂ All chapters</a>']
    if nxt:
        parts.append(f'Next: <a href="{nxt.path}">{nxt.key}. {nxt.title} →</a>')
    return mo.md(" &nbsp;·&nbsp; ".join(parts))


def model_picker() -> mo.ui.dropdown:
    """The model used by every chapter; the choice is saved and shared across chapters."""
    from glassformer.registry import available_models

    entries = available_models()
    options = {("" if e.available else "(unavailable) ") + e.name: e.name for e in entries}
    saved = store.get_setting("model", "course")
    current = next((label for label, name in options.items() if name == saved and not label.startswith("(")),
                   next(iter(options)))
    return mo.ui.dropdown(options=options, value=current, label="Model",
                          on_change=lambda name: store.set_setting("model", name))


def model_status(entries=None) -> mo.Html:
    from glassformer.registry import available_models

    rows = [f"| `{e.name}` | {e.description} | {'yes' if e.available else 'no: ' + e.reason} |"
            for e in (entries or available_models())]
    return mo.md("| model | what | available |\n|---|---|---|\n" + "\n".join(rows))


def saved_model_notice(name: str) -> str | None:
    """Say so when the picker shows another model than the one the learner chose last time
    (the saved choice is unavailable now: offline, a deleted run folder...)."""
    from glassformer.registry import available_models

    saved = store.get_setting("model", "course")
    if saved == name:
        return None
    entry = next((e for e in available_models() if e.name == saved), None)
    if entry is not None and entry.available:
        return None  # the saved model is there: `name` was chosen on purpose
    why = entry.reason if entry is not None else "it is no longer listed"
    return f"Your chosen model **{saved}** is not available now ({why}). Showing **{name}** instead."


def load_chosen(name: str):
    """(LoadedModel, problem message or None); falls back to the course model if name fails."""
    from glassformer.registry import load_model

    notice = saved_model_notice(name)
    try:
        return load_model(name), notice
    except Exception as exc:  # any failure is shown to the learner as a message, never a traceback
        log.warning("could not load model %r (%s); using the course model", name, exc)
        fallback = load_model("course")
        return fallback, f"Could not load **{name}** ({type(exc).__name__}: {exc}). Showing the course model instead."


# The longest text a box keeps: far more than any model here takes in at once (the course model reads
# 256 characters, GPT-2 1,024 tokens), small enough that no chapter's per-character work is slow. The
# browser refuses to type or paste past it, the store refuses to save more, and `prepare` cuts any
# longer text before it looks at a single character.
MAX_TEXT_CHARS = 20_000


def capped(text: str) -> tuple[str, str | None]:
    """(text cut to MAX_TEXT_CHARS, a notice saying so or None)."""
    if len(text) <= MAX_TEXT_CHARS:
        return text, None
    return text[:MAX_TEXT_CHARS], (f"The text is {len(text):,} characters long; the course keeps the first "
                                   f"{MAX_TEXT_CHARS:,} (no model here reads more than a few thousand at once).")


def text_box(default: str = DEFAULT_TEXT, label: str = "Your text", rows: int = 3,
             key: str = "text") -> mo.ui.text_area:
    """The learner's own text, remembered across restarts (and across chapters that share `key`),
    at most MAX_TEXT_CHARS long."""
    saved, _ = capped(store.get_setting(key, default))
    return mo.ui.text_area(value=saved, label=f"{label} (up to {MAX_TEXT_CHARS:,} characters)", rows=rows,
                           full_width=True, max_length=MAX_TEXT_CHARS,
                           on_change=lambda t: store.set_setting(key, capped(t)[0]))


# Chapter 8's sampling settings: (lowest, highest, step, default) of each slider. The values are saved,
# so chapter 13's side-by-side answers start from what the learner last chose in chapter 8.
SAMPLING = {"temperature": (0.0, 2.0, 0.05, 1.0), "top_k": (0, 100, 1, 0), "top_p": (0.05, 1.0, 0.05, 1.0),
            "min_p": (0.0, 0.5, 0.01, 0.0)}
SAMPLING_LABELS = {"temperature": "temperature (0 = greedy)", "top_k": "top-k (0 = off)", "top_p": "top-p (1 = off)",
                   "min_p": "min-p (0 = off)"}


def saved_sampling(vocab_size: int | None = None) -> dict[str, float]:
    """The saved sampling settings, each within its slider's range (a bad or missing value: the default)."""
    saved = store.get_setting("sampling", {})
    values = {}
    for name, (low, high, _, default) in SAMPLING.items():
        high = min(high, vocab_size) if name == "top_k" and vocab_size else high
        value = saved.get(name) if isinstance(saved, dict) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        values[name] = value if ok else default
    return values


def sampling_sliders(vocab_size: int) -> dict[str, mo.ui.slider]:
    """Temperature, top-k, top-p and min-p sliders that start from, and save to, the shared settings."""
    start = saved_sampling(vocab_size)

    def keep(name: str):
        return lambda value: store.set_setting("sampling", {**saved_sampling(vocab_size), name: value})

    return {name: mo.ui.slider(low, min(high, vocab_size) if name == "top_k" else high, step=step,
                               value=start[name], label=SAMPLING_LABELS[name], show_value=True, on_change=keep(name))
            for name, (low, high, step, _) in SAMPLING.items()}


@dataclass
class Prepared:
    ids: list[int]                 # what the model will see
    strip: list[dict]              # token-strip rows, unknown characters included (greyed)
    notices: list[str] = field(default_factory=list)
    text: str = ""                 # the text the ids came from (the fallback when the box was empty)

    def notice(self) -> mo.Html | None:
        return mo.callout(mo.md("\n\n".join(self.notices)), kind="warn") if self.notices else None


def _with_notices(prepared: Prepared, notices: list[str]) -> Prepared:
    """The fallback's Prepared with the notices that led to it in front (they say why the fallback is used)."""
    prepared.notices = notices + [n for n in prepared.notices if n not in notices]
    return prepared


def prepare(loaded, text: str, max_tokens: int | None = None, fallback: str = "To be", *,
            why: str | None = None) -> Prepared:
    """Any text -> ids for the model, never an exception: empty text, characters the model
    has never seen, and text longer than the context each give a visible notice instead.

    max_tokens: a page's own, smaller limit; `why` says in a few words why the page imposes it
    (it completes "only its last N are used (...)")."""
    tok = loaded.tokenizer
    text, cut = capped(text)  # before any per-character work: a 10 MB paste must not cost seconds
    notices: list[str] = [cut] if cut else []
    if not text:
        notices.append(f"The text box is empty, so this uses “{fallback}”.")
        text = fallback
    context = loaded.model.config.n_ctx
    limit = min(max_tokens, context) if max_tokens else context
    strip: list[dict] = []
    if loaded.is_char_level:
        unknown = set(tok.unknown(text))
        if unknown:
            shown = " ".join(f"`{token_label(c.encode('utf-8'))}`" for c in sorted(unknown)[:12])
            notices.append(f"The model only knows the {tok.vocab_size} characters of its training text. "
                           f"These are not among them and are skipped: {shown}. (A byte-level BPE tokenizer "
                           f"never has this problem: see chapter 1.)")
        ids = []
        for ch in text:
            if ch in unknown:
                strip.append({"label": token_label(ch.encode("utf-8")), "id": -1,
                              "hex": ch.encode("utf-8").hex(" "), "color": 0, "unknown": True})
            else:
                ids.append(tok.ids[ch])
                strip.append({"label": token_label(ch.encode("utf-8")), "id": tok.ids[ch],
                              "hex": ch.encode("utf-8").hex(" "), "color": len(ids) % len(PALETTE)})
        if not ids:
            notices.append(f"None of the characters are known, so this uses “{fallback}”.")
            return _with_notices(prepare(loaded, fallback, max_tokens), notices)
    else:
        try:
            ids = tok.encode(text)
        except ValueError as exc:  # e.g. a lone surrogate
            notices.append(f"The text cannot be encoded ({exc}); using “{fallback}”.")
            return _with_notices(prepare(loaded, fallback, max_tokens), notices)
        strip = [{"label": token_label(tok.token_bytes(i)), "id": i, "hex": tok.token_bytes(i).hex(" "),
                  "color": n % len(PALETTE)} for n, i in enumerate(ids)]
    fits = loaded.model.max_trace_tokens()
    if len(ids) > min(limit, fits):
        reason = (f"recording every intermediate tensor of a longer text would take more than "
                  f"{loaded.model.trace_bytes(None, fits + 1) / 2**30:.1f} GiB of memory" if limit > fits else
                  f"the model's context is {context} tokens" if limit == context else
                  why or f"this page reads at most {limit} tokens")
        limit = min(limit, fits)
        notices.append(f"The text is {len(ids)} tokens long; only its last {limit} are used ({reason}).")
        ids = ids[-limit:]
        known = [r for r in strip if not r.get("unknown")]
        strip = known[-limit:]
    return Prepared(ids, strip, notices, text)
