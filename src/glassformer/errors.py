"""Which errors are the user's (one line on stderr) and which are bugs (a traceback)."""

from __future__ import annotations

import sys

from glassformer.checkpoint import CheckpointError
from glassformer.data import CorpusError


def user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause: bad values, missing or unreadable files, an unknown or unavailable
    model, a corpus that cannot be had, a checkpoint that cannot be resumed. Anything else (a
    TypeError or KeyError from our own code, say) is a bug and keeps its traceback."""
    return (ValueError, OSError, CorpusError, CheckpointError)


def report_user_errors(command: str, fn) -> int:
    """Run fn(); a user error becomes one line on stderr and exit status 2; Ctrl-C exits 130."""
    try:
        return fn()
    except user_errors() as exc:
        print(f"glassformer {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
