"""Learner state that must survive a restart: quiz answers, visited chapters, shared choices
(the selected model, the learner's own text). One SQLite file in the user data directory
($GLASSFORMER_DATA overrides it). Each call opens its own connection: chapters run in
threads of one server process, and SQLite serializes the writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
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


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(db_path(), timeout=10)
    conn.executescript(SCHEMA)
    return conn


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
    with closing(connect()) as conn, conn:
        conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))


def reset() -> None:
    """Forget all answers and visits (settings such as the chosen model are kept)."""
    with closing(connect()) as conn, conn:
        conn.execute("DELETE FROM answers")
        conn.execute("DELETE FROM visits")
