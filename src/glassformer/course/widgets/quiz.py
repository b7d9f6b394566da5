"""Multiple-choice checks with immediate feedback; answers are saved so progress survives restarts.

In a chapter notebook:

    questions = [Question("q1", "Why ...?", ["a", "b", "c"], answer=1, why="Because ...")]
    radios = quiz("8", questions)          # one cell: the radio buttons (previous answers restored)
    quiz_feedback("8", questions, radios)  # the next cell: saves the answers, shows right/wrong + why
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import marimo as mo

from glassformer.course import store


@dataclass(frozen=True)
class Question:
    key: str
    prompt: str
    options: list[str]
    answer: int        # index of the correct option in `options` (as written)
    why: str           # the explanation shown after answering

    def shown_options(self) -> list[str]:
        """The options in the order the page shows them: shuffled, the same way every time
        (seeded by the question's key), so the right answer's position carries no hint.

            >>> q = Question("q", "?", ["right", "b", "c", "d"], answer=0, why="")
            >>> sorted(q.shown_options()) == sorted(q.options), q.shown_options() == q.shown_options()
            (True, True)
        """
        seed = int.from_bytes(hashlib.sha256(self.key.encode()).digest()[:8], "big")
        return random.Random(seed).sample(self.options, len(self.options))


def quiz(chapter: str, questions: list[Question]) -> mo.ui.dictionary:
    saved = store.answers(chapter)
    radios = {}
    for q in questions:
        previous = saved.get(q.key)
        value = q.options[previous[0]] if previous and previous[0] < len(q.options) else None
        radios[q.key] = mo.ui.radio(options=q.shown_options(), value=value, label=f"**{q.prompt}**")
    return mo.ui.dictionary(radios)


def quiz_feedback(chapter: str, questions: list[Question], radios: mo.ui.dictionary) -> mo.Html:
    parts, correct, answered = [], 0, 0
    saved = store.answers(chapter)
    for q in questions:
        choice = radios.value.get(q.key)
        parts.append(radios[q.key])
        if choice is None:
            continue
        index = q.options.index(choice)
        ok = index == q.answer
        answered += 1
        correct += ok
        if saved.get(q.key) != (index, ok):
            store.record_answer(chapter, q.key, index, ok)
        verdict = "✅ **Right.**" if ok else f"❌ **Not quite.** The answer is *{q.options[q.answer]}*."
        parts.append(mo.callout(mo.md(f"{verdict} {q.why}"), kind="success" if ok else "warn"))
    parts.append(mo.md(f"*Score: {correct} of {len(questions)} correct ({answered} answered). "
                       f"Your answers are saved; reset them from the home page.*"))
    return mo.vstack(parts)
