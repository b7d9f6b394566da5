"""Run chapter notebooks headless, one after another in one process, and print what happened.

    python tests/run_chapters.py [--model NAME] KEY [KEY ...]     -> one JSON line on stdout

Each chapter runs exactly as `python chapter.py` runs it (marimo's app.run(): every cell, in
order, no browser), but the interpreter, torch and marimo start once for all of them. For each
chapter: whether it ran without an exception, the exception's traceback if not, the warnings the
course logged while it ran (a model that could not load, say), and its time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
import traceback


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model the picker starts on (saved setting)")
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
            module.app.run()
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
