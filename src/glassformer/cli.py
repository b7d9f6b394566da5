"""The `glassformer` command: start the course, train, generate, trace.

    glassformer start                      the course in your browser
    glassformer edit 8                     chapter 8 as a notebook you can change
    glassformer train --preset course      train the course model (or --preset tiny to try it)
    glassformer finetune --from course     teach a model to answer in a chat format (--lora RANK: adapters only)
    glassformer generate --prompt "ROMEO:" text from a model, streamed as it is chosen
    glassformer trace --text "To be"       every intermediate tensor of one forward pass
    glassformer info [--remeasure]         this CPU's capabilities and the decisions taken from them
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glassformer.errors import report_user_errors


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="course",
                        help="course (default), gpt2, qwen3-0.6b, or a model folder (e.g. runs/tiny)")


def encode_prompt(loaded, text: str) -> list[int]:
    """Encode text; a character model refuses characters it has never seen, naming them."""
    tok = loaded.tokenizer
    if loaded.is_char_level:
        unknown = tok.unknown(text)
        if unknown:
            shown = " ".join(repr(c) for c in unknown[:10])
            raise ValueError(f"the model {loaded.name!r} knows only the {tok.vocab_size} characters of its training "
                             f"text; not: {shown}")
    ids = tok.encode(text)
    if not ids:
        raise ValueError("the prompt is empty: give at least one character")
    return ids


class StreamDecoder:
    """Turns a growing list of ids into text pieces, holding back a partial UTF-8 character
    until its last byte arrives; flush() gives what is left when the stream ends (an unfinished
    character as U+FFFD)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.ids, self.shown = tokenizer, [], 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""  # wait for the rest of the character
        piece, self.shown = text[self.shown:], len(text)
        return piece

    def flush(self) -> str:
        text = self.tokenizer.decode(self.ids)
        piece, self.shown = text[self.shown:], len(text)
        return piece


def cmd_generate(args: argparse.Namespace) -> int:
    from glassformer.errors import BadSetting
    from glassformer.generate import beam_search, stream
    from glassformer.registry import load_model
    from glassformer.sampling import check_settings

    # Every setting is checked before anything is printed: an error comes alone, never after the prompt.
    check_settings(args.temperature, args.top_k, args.top_p, args.min_p)
    if args.max_new_tokens < 0:
        raise BadSetting("max_new_tokens", f"must be >= 0, got {args.max_new_tokens}")
    if args.beams < 1:
        raise BadSetting("beams", f"must be >= 1, got {args.beams}")
    loaded = load_model(args.model)
    ids = encode_prompt(loaded, args.prompt)
    if args.beams > 1:
        beams = beam_search(loaded.model, ids, args.max_new_tokens, num_beams=args.beams,
                            eos_id=loaded.tokenizer.eos_id)
        for rank, beam in enumerate(beams, 1):
            print(f"--- beam {rank}: mean log-prob {beam.score:.3f}")
            print(args.prompt + loaded.tokenizer.decode(beam.tokens))
        return 0
    out = StreamDecoder(loaded.tokenizer)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    for token in stream(loaded.model, ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, min_p=args.min_p, seed=args.seed, eos_id=loaded.tokenizer.eos_id,
                        truncate=True):
        sys.stdout.write(out.push(int(token[0])))
        sys.stdout.flush()
    sys.stdout.write(out.flush() + "\n")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    import torch

    from glassformer.model import HOOK_NAMES
    from glassformer.registry import load_model

    loaded = load_model(args.model)
    ids = encode_prompt(loaded, args.text)
    n_ctx = loaded.model.config.n_ctx
    if len(ids) > n_ctx:
        print(f"note: text is {len(ids)} tokens; tracing its last {n_ctx} (the model's context)", file=sys.stderr)
        ids = ids[-n_ctx:]
    fits = loaded.model.max_trace_tokens(args.names)
    if len(ids) > fits:
        print(f"note: a trace of {len(ids)} tokens would take {loaded.model.trace_bytes(args.names, len(ids)) / 2**30:.1f} "
              f"GiB of memory; tracing the last {fits} (or pass fewer --names)", file=sys.stderr)
        ids = ids[-fits:]
    with torch.no_grad():
        logits, trace = loaded.model.run_with_trace(torch.tensor([ids]), names=args.names)
    pieces = [loaded.tokenizer.token_bytes(i).decode("utf-8", errors="replace") for i in ids]
    print(f"model {loaded.name}: {len(ids)} tokens {pieces[:12]}{' ...' if len(ids) > 12 else ''}")
    docs = {name: (shape, what) for name, shape, what in HOOK_NAMES}
    print(f"{'hook point':32s} {'shape':22s} {'mean':>9s} {'std':>9s}  what it is")
    for name, tensor in trace.items():
        generic = name.split(".", 2)[2] if name.startswith("blocks.") else name
        shape, what = docs.get("blocks.{i}." + generic, docs.get(name, ("", "")))
        finite = tensor[torch.isfinite(tensor)].float()
        mean = finite.mean().item() if finite.numel() else float("nan")
        std = finite.std().item() if finite.numel() > 1 else 0.0
        print(f"{name:32s} {str(list(tensor.shape)):22s} {mean:9.3f} {std:9.3f}  {shape} {what}")
    probs = logits[0, -1].float().softmax(-1)
    top = probs.topk(min(5, probs.numel()))
    guesses = ", ".join(f"{loaded.tokenizer.decode([i])!r} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
    print(f"next-token prediction after the last position: {guesses}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from glassformer.train import run

    return run(args)


def cmd_finetune(args: argparse.Namespace) -> int:
    from glassformer.finetune import run

    return run(args)


def cmd_info(args: argparse.Namespace) -> int:
    from glassformer.decode_paths import machine_report

    print(machine_report(remeasure=args.remeasure))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from glassformer.course.server import serve

    return serve(host=args.host, port=args.port, open_browser=not args.no_browser)


def cmd_edit(args: argparse.Namespace) -> int:
    """Copy chapter N into the learner's folder and open it in marimo's editor (localhost, with
    marimo's token authentication), where every cell can be changed and re-run."""
    import os
    import shutil
    import subprocess

    from glassformer.course import catalog

    try:
        chapter = catalog.chapter(args.chapter)
    except KeyError:
        raise ValueError(f"no chapter {args.chapter!r}; chapters: "
                         f"{', '.join(c.key for c in catalog.CHAPTERS)}") from None
    if not chapter.built:
        raise ValueError(f"chapter {chapter.key} ({chapter.title}) is not written yet; built: "
                         f"{', '.join(c.key for c in catalog.CHAPTERS if c.built)}")
    folder = Path(args.dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / chapter.module
    if target.exists() and not args.fresh:
        print(f"opening your edited copy {target} (--fresh starts again from the course's version)", file=sys.stderr)
    else:
        shutil.copy(catalog.CHAPTER_DIR / chapter.module, target)
        print(f"copied chapter {chapter.key} to {target}", file=sys.stderr)
    for extra in catalog.CHAPTER_DIR.glob("*.css"):  # the chapter's stylesheet, beside it
        shutil.copy(extra, folder / extra.name)
    settings = folder / "pyproject.toml"  # marimo reads its settings from the nearest pyproject.toml
    if not settings.exists():
        settings.write_text("# Written by `glassformer edit`: marimo runs the chapter as soon as it opens.\n"
                            "[tool.marimo.runtime]\nauto_instantiate = true\n")
    command = [sys.executable, "-m", "marimo", "edit", str(target), "--host", "127.0.0.1", "--port", str(args.port)]
    if args.no_browser:
        command.append("--headless")
    print("marimo's editor: change any cell (e.g. the attention formula) and every picture below it re-runs. "
          "Ctrl-C to stop.", file=sys.stderr, flush=True)
    sys.stdout.flush()
    if os.name == "posix":  # become marimo: Ctrl-C and termination reach the editor itself
        os.execv(sys.executable, command)
    return subprocess.call(command)


def build_parser() -> argparse.ArgumentParser:
    from glassformer.train import add_arguments

    parser = argparse.ArgumentParser(prog="glassformer", description="A glass-box Transformer: course and lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("start", help="serve the course and open it in the browser")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    p.set_defaults(fn=cmd_start)

    p = sub.add_parser("edit", help="open a chapter as an editable notebook (your copy, in marimo's editor)")
    p.add_argument("chapter", help="the chapter's key, e.g. 8")
    p.add_argument("--dir", default="glassformer-chapters", help="where your copies live (default ./glassformer-chapters)")
    p.add_argument("--port", type=int, default=2718)
    p.add_argument("--fresh", action="store_true", help="replace your edited copy with the course's version")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    p.set_defaults(fn=cmd_edit)

    p = sub.add_parser("train", help="train a character-level model on TinyShakespeare or --corpus")
    add_arguments(p)
    p.set_defaults(fn=cmd_train)

    from glassformer.finetune import add_arguments as add_finetune_arguments

    p = sub.add_parser("finetune", help="fine-tune a model on prompt/response pairs (or --lora adapters)")
    add_finetune_arguments(p)
    p.set_defaults(fn=cmd_finetune)

    p = sub.add_parser("generate", help="generate text from a prompt, streamed")
    _model_arg(p)
    p.add_argument("--prompt", default="\n", help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="same seed, same text")
    p.add_argument("--beams", type=int, default=1, help="beam search with this many beams (deterministic)")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("trace", help="run one forward pass and list every hook point with its shape")
    _model_arg(p)
    p.add_argument("--text", default="To be, or not to be", help="the input text")
    p.add_argument("--names", nargs="*", default=None, help="hook names or globs, e.g. 'blocks.*.attn.pattern'")
    p.set_defaults(fn=cmd_trace)

    p = sub.add_parser("info", help="this CPU's capabilities (bf16, int8) and the stored measurements behind them")
    p.add_argument("--remeasure", action="store_true", help="measure again and replace the stored decisions")
    p.set_defaults(fn=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return report_user_errors(args.command, lambda: args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
