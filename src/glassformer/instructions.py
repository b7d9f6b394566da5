"""The shipped instruction set's three tasks, as rules: the one right answer to a prompt.

scripts/make_instructions.py wrote assets/instructions from TinyShakespeare with these rules; a chapter
uses them to score an instruction the learner typed, and a test checks that they give the shipped
answer for every shipped example.

    >>> answer("Last word: Now is the winter of our discontent")
    'discontent'
    >>> answer("First word: O, woe the day!"), answer("Question? Art thou mad?"), answer("Hello")
    ('O', 'yes', None)
"""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z']+")        # a word: letters and apostrophes ("e'er", "I'll")

# prefix -> (task name, what the reply must be)
TASKS = {"First word: ": ("first_word", "the first word of the line"),
         "Last word: ": ("last_word", "the last word of the line"),
         "Question? ": ("is_question", "yes if the line ends with a question mark, otherwise no")}


def task_of(prompt: str) -> str | None:
    """The task a prompt asks for (by its prefix), or None."""
    return next((name for prefix, (name, _) in TASKS.items() if prompt.startswith(prefix)), None)


def line_of(prompt: str) -> str | None:
    """The line a prompt of one of the three tasks asks about (the prompt without its prefix), or None."""
    return next((prompt[len(prefix):] for prefix in TASKS if prompt.startswith(prefix)), None)


def answer(prompt: str) -> str | None:
    """The right answer to a prompt of one of the three tasks; None for any other prompt or a line without words."""
    task, line = task_of(prompt), line_of(prompt)
    if task is None:
        return None
    if task == "is_question":
        return "yes" if line.rstrip().endswith("?") else "no"
    words = WORD.findall(line)
    if not words:
        return None
    return words[0] if task == "first_word" else words[-1]
