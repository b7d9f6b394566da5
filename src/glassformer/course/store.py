"""Learner state that must survive a restart: quiz answers, visited chapters, shared choices
(the selected model, the learner's own text). One SQLite file in the user data directory
($GLASSFORMER_DATA overrides it). Each call opens its own connection: chapters run in
threads of one server process, and SQLite serializes the writes.

A damaged file (a disk that filled up mid-write, a copy cut short) is never a reason to fail: it is
moved aside to progress.sqlite3.damaged-<date>-<time>, a fresh store takes its place, and
`damaged_files()` names what was set aside so the home page can say so. A setting larger than
MAX_SETTING_BYTES is refused: the store holds choices and short texts, not documents.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    chapter TEXT NOT NULL, question TEXT NOT NULL, choice INTEGER NOT NULL, correct INTEGER NOT NULL,
    answered_at REAL NOT NULL, PRIMARY KEY (chapter, question));
CREATE TABLE IF NOT EXISTS visits (chapter TEXT PRIMARY KEY, first_at REAL NOT NULL, last_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def db_path() -> Path:
    from platformdirs import user_data_dir

    folder = Path(os.environ.get("GLASSFORMER_DATA") or user_data_dir("glassformer"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "progress.sqlite3"


MAX_SETTING_BYTES = 256 * 1024

_checked: set[Path] = set()       # files whose integrity this process has checked
_set_aside: list[Path] = []       # damaged files moved aside by this process
_check_lock = threading.Lock()


def connect() -> sqlite3.Connection:
    path = db_path()
    with _check_lock:
        if path not in _checked:  # once per process: a full check costs a read of the file
            conn = _open_checked(path)
            _checked.add(path)
            return conn
    try:
        return _open(path)
    except sqlite3.DatabaseError:  # damaged since the check (another process wrote garbage)
        with _check_lock:
            return _open_checked(path)


def _open(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)
    try:
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _open_checked(path: Path) -> sqlite3.Connection:
    """Open `path`, and if SQLite finds it damaged, move it aside and start a fresh one."""
    conn = None
    try:
        conn = _open(path)
        if conn.execute("PRAGMA quick_check").fetchone()[0] == "ok":
            return conn
    except sqlite3.OperationalError:
        raise  # locked, busy, a disk I/O error, no file handles left: trouble, but not a damaged file
    except sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
        pass
    if conn is not None:
        conn.close()
    dest = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 2
    while dest.exists():
        dest, n = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
    path.rename(dest)
    for suffix in ("-wal", "-shm", "-journal"):  # their pages belong to the damaged file
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(dest.with_name(dest.name + suffix))
    _set_aside.append(dest)
    return _open(path)


def damaged_files() -> list[Path]:
    """Damaged progress files this process moved aside (and started afresh after)."""
    return list(_set_aside)


def record_answer(chapter: str, question: str, choice: int, correct: bool) -> None:
    with closing(connect()) as conn, conn:
        conn.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                     (chapter, question, choice, int(correct), time.time()))


def answers(chapter: str) -> dict[str, tuple[int, bool]]:
    with closing(connect()) as conn:
        rows = conn.execute("SELECT question, choice, correct FROM answers WHERE chapter = ?", (chapter,)).fetchall()
    return {q: (c, bool(ok)) for q, c, ok in rows}


def mark_visited(chapter: str) -> None:
    now = time.time()
    with closing(connect()) as conn, conn:
        conn.execute("INSERT INTO visits VALUES (?, ?, ?) ON CONFLICT(chapter) DO UPDATE SET last_at = ?",
                     (chapter, now, now, now))


def progress() -> dict[str, dict]:
    """Per chapter: visited, number answered, number correct."""
    with closing(connect()) as conn:
        visited = {c for (c,) in conn.execute("SELECT chapter FROM visits")}
        scores = conn.execute("SELECT chapter, COUNT(*), SUM(correct) FROM answers GROUP BY chapter").fetchall()
    out = {c: {"visited": True, "answered": 0, "correct": 0} for c in visited}
    for chapter, answered, correct in scores:
        out.setdefault(chapter, {"visited": chapter in visited})
        out[chapter].update(answered=answered, correct=int(correct or 0))
    return out


def get_setting(key: str, default=None):
    with closing(connect()) as conn:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def set_setting(key: str, value) -> None:
    encoded = json.dumps(value)
    if len(encoded.encode()) > MAX_SETTING_BYTES:
        raise ValueError(f"setting {key!r} is {len(encoded.encode()):,} bytes; the store keeps at most "
                         f"{MAX_SETTING_BYTES:,}")
    with closing(connect()) as conn, conn:
        conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, encoded))


def reset() -> None:
    """Forget all answers and visits (settings such as the chosen model are kept)."""
    with closing(connect()) as conn, conn:
        conn.execute("DELETE FROM answers")
        conn.execute("DELETE FROM visits")
