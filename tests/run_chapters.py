"""Run chapter notebooks headless, one after another in one process, and print what happened.

    python tests/run_chapters.py [--model NAME] [--pages DIR] KEY [KEY ...]     -> one JSON line on stdout

Each chapter runs exactly as `python chapter.py` runs it (marimo's app.run(): every cell, in
order, no browser), but the interpreter, torch and marimo start once for all of them. For each
chapter: whether it ran without an exception, the exception's traceback if not, the warnings the
course logged while it ran (a model that could not load, say), and its time. With --pages, each
chapter's outputs are also written to DIR/<key>.txt as one text (what `page_text` in the tests reads),
so tests that check a page's default state read it instead of running the chapter again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
import traceback
from pathlib import Path


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def picker_chapters() -> list[str]:
    """The built chapters that run on the model picker's choice (the others load their own models, so a
    run on another picked model would repeat the course-model run)."""
    from glassformer.course import catalog

    return [c.key for c in catalog.CHAPTERS
            if c.built and "model_picker(" in (catalog.CHAPTER_DIR / c.module).read_text()]


def page_text(outputs) -> str:
    """A chapter's outputs (from app.run()) as one text: the HTML of every cell's output."""
    return "\n".join(str(getattr(o, "text", o)) for o in outputs if o is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model the picker starts on (saved setting)")
    parser.add_argument("--pages", help="folder for each chapter's outputs as text (<key>.txt)")
    parser.add_argument("keys", nargs="+")
    args = parser.parse_args()

    from glassformer.course import catalog, store

    if args.model:
        store.set_setting("model", args.model)
    results = {}
    for key in args.keys:
        chapter = catalog.chapter(key)
        collect = Collect()
        logging.getLogger("glassformer").addHandler(collect)
        start = time.perf_counter()
        try:
            spec = importlib.util.spec_from_file_location(f"chapter_{key}", catalog.CHAPTER_DIR / chapter.module)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            outputs, _ = module.app.run()
            if args.pages:
                Path(args.pages, f"{key}.txt").write_text(page_text(outputs))
            error = None
        except BaseException:  # noqa: BLE001  (reported, then the next chapter runs)
            error = traceback.format_exc()[-3000:]
        finally:
            logging.getLogger("glassformer").removeHandler(collect)
        results[key] = {"ok": error is None, "error": error, "warnings": collect.messages,
                        "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
