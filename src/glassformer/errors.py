"""Which errors are the user's (one line on stderr) and which are bugs (a traceback)."""

from __future__ import annotations

import sys

from glassformer.data import CorpusError
from glassformer.model.config import BadSetting  # noqa: F401 - a user error too (a ValueError)


# What a user can cause: bad values (unknown names, refused checkpoints: CheckpointError is a
# ValueError), missing or unreadable files, a corpus that cannot be had. Anything else (a TypeError
# or KeyError from our own code, say) is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, CorpusError)


def report_user_errors(command: str, fn) -> int:
    """Run fn(); a user error becomes one line on stderr and exit status 2; Ctrl-C exits 130."""
    try:
        return fn()
    except USER_ERRORS as exc:
        message = f"{exc.flag} {exc.problem}" if isinstance(exc, BadSetting) else str(exc)
        print(f"glassformer {command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
