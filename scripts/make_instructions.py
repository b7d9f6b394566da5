"""Make the Shakespeare instruction set: short tasks with one checkable answer, from TinyShakespeare.

    .venv/bin/python scripts/make_instructions.py                 # the shipped set
    .venv/bin/python scripts/make_instructions.py --tasks all --out /tmp/candidates   # every candidate task

Each example is {"task", "prompt", "response"}; the response is the one right answer, so a reply can be
scored by exact match. Training examples come from the first 90% of the corpus and held-out ones from
the last 10% (the course model's validation split): no held-out line was seen in pre-training or
fine-tuning. Fixed seed: the same files every time. Writes train.jsonl, test.jsonl, card.json and
preference pairs for DPO (preferences_train.jsonl, preferences_test.jsonl: {"prompt", "chosen", "rejected"}).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

from glassformer.data import load_text

OUT = Path(__file__).resolve().parents[1] / "src" / "glassformer" / "assets" / "instructions"
SEED = 1234
WORD = re.compile(r"[A-Za-z']+")


def speeches(text: str) -> list[tuple[str, list[str]]]:
    """(speaker, lines) for every speech: a block of "NAME:" then its lines, blocks split by blank lines."""
    out = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) >= 2 and lines[0].endswith(":") and lines[0][:-1].replace(" ", "").isalpha():
            out.append((lines[0][:-1], [l for l in lines[1:] if l.strip()]))
    return out


def words(line: str) -> list[str]:
    return WORD.findall(line)


# Each task: (speeches, rng) -> a (prompt, response) pair or None (no usable line in this speech).

def shout(speaker, lines, rng):
    line = rng.choice(lines)
    if not 10 <= len(line) <= 40:
        return None
    return f"Shout: {line}", line.upper()


def whisper(speaker, lines, rng):
    line = rng.choice(lines).upper()
    if not 10 <= len(line) <= 40:
        return None
    return f"Whisper: {line}", line.lower()


def who_speaks(speaker, lines, rng):
    passage = f"{speaker}:\n{lines[0]}"
    if len(passage) > 90:
        return None
    return f"Who speaks?\n{passage}", speaker


def first_word(speaker, lines, rng):
    line = rng.choice(lines)
    w = words(line)
    if not 10 <= len(line) <= 60 or not w:
        return None
    return f"First word: {line}", w[0]


def last_word(speaker, lines, rng):
    line = rng.choice(lines)
    w = words(line)
    if not 10 <= len(line) <= 60 or not w:
        return None
    return f"Last word: {line}", w[-1]


def is_question(speaker, lines, rng):
    """yes when the line ends with a question mark; half the examples of each answer."""
    want = rng.random() < 0.5
    usable = [l for l in lines if 10 <= len(l) <= 60 and l.rstrip().endswith("?") == want]
    if not usable:
        return None
    return f"Question? {rng.choice(usable)}", "yes" if want else "no"


def next_line_first_word(speaker, lines, rng):
    """The first word of the line that follows: needs the play by heart, not the text given."""
    if len(lines) < 2:
        return None
    i = rng.randrange(len(lines) - 1)
    w = words(lines[i + 1])
    if not 10 <= len(lines[i]) <= 60 or not w:
        return None
    return f"Next line's first word: {lines[i]}", w[0]


TASKS = {"shout": shout, "whisper": whisper, "who_speaks": who_speaks, "first_word": first_word,
         "last_word": last_word, "is_question": is_question, "next_line_first_word": next_line_first_word}
# Chosen by measurement (the course model fine-tuned with `glassformer finetune`, response-only loss,
# lr 3e-3, batch 16, one thread on a 2-core AMD EPYC; held-out exact match per task, 50 examples each):
#   six candidates, 60 s (224 steps):    first_word 10%, next_line_first_word 4%, last_word 0%,
#                                        shout 0%, whisper 0%, who_speaks 0%
#   four candidates, 180 s (684 steps):  first_word 86%, last_word 38%, who_speaks 12%, shout 4%
#   these three, 60 s (426 steps):       is_question 100%, first_word 57%, last_word 28%
# who_speaks is answered with a Shakespearean name, not the one in the passage (VINCENTIO -> VIRGILIA),
# shout copies a few words and then loops; next_line_first_word needs the plays by heart.
SHIPPED = ("first_word", "last_word", "is_question")
MEASURED = {"60s_six_candidates": {"steps": 224, "first_word": 0.10, "next_line_first_word": 0.04, "last_word": 0.0,
                                   "shout": 0.0, "whisper": 0.0, "who_speaks": 0.0},
            "180s_four_candidates": {"steps": 684, "first_word": 0.86, "last_word": 0.38, "who_speaks": 0.12,
                                     "shout": 0.04},
            "60s_shipped_three": {"steps": 426, "is_question": 1.0, "first_word": 0.57, "last_word": 0.28}}


def make(task: str, pool: list, n: int, rng: random.Random, seen: set) -> list[dict]:
    rows = []
    for _ in range(50 * n):
        if len(rows) == n:
            break
        speaker, lines = rng.choice(pool)
        pair = TASKS[task](speaker, lines, rng)
        if pair is None or "$" in pair[0] + pair[1] or pair in seen:
            continue
        seen.add(pair)
        rows.append({"task": task, "prompt": pair[0], "response": pair[1]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(SHIPPED), help="comma-separated task names, or 'all'")
    parser.add_argument("--train", type=int, default=300, help="training examples per task")
    parser.add_argument("--test", type=int, default=100, help="held-out examples per task")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    text, sha = load_text(None)
    cut = int(len(text) * 0.9)          # the course model's train/validation split (by characters)
    train_pool, test_pool = speeches(text[:cut]), speeches(text[cut:])
    rng = random.Random(SEED)
    train, test, seen = [], [], set()
    for task in tasks:
        train += make(task, train_pool, args.train, rng, seen)
        test += make(task, test_pool, args.test, rng, seen)
    rng.shuffle(train)
    rng.shuffle(test)         # so that the first N held-out examples mix every task
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Preference pairs (for DPO) from the last-word examples: chosen = the last word, rejected = another
    # word of the same line. A separate generator: the files above stay the same with or without them.
    pair_rng = random.Random(SEED + 1)
    pair_counts = {}
    for name, rows in (("preferences_train.jsonl", train), ("preferences_test.jsonl", test)):
        pairs = []
        for r in rows:
            if r["task"] != "last_word":
                continue
            others = [w for w in words(r["prompt"].removeprefix("Last word: ")) if w != r["response"]]
            if others:
                pairs.append({"task": "last_word", "prompt": r["prompt"], "chosen": r["response"],
                              "rejected": pair_rng.choice(others)})
        (out / name).write_text("".join(json.dumps(p) + "\n" for p in pairs))
        pair_counts[name] = len(pairs)
    card = {"name": "shakespeare-instructions", "made_by": "scripts/make_instructions.py", "seed": SEED,
            "source": "TinyShakespeare", "source_sha256": sha, "tasks": tasks,
            "train_examples": len(train), "test_examples": len(test),
            "split": "train from the first 90% of the corpus, test from the last 10% (no line in both)",
            "files_sha256": {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in ("train.jsonl", "test.jsonl",
                                                                                     "preferences_train.jsonl", "preferences_test.jsonl")},
            "example": train[0], "preference_pairs": pair_counts,
            "preference_pairs_note": "last_word prompts: chosen = the line's last word, rejected = another word of it",
            "chosen_by": "held-out exact match of the course model after fine-tuning on each candidate task "
                         "(see MEASURED in the script); tasks it could not learn in 3 minutes were left out",
            "measured": MEASURED if tasks == list(SHIPPED) else None}
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: card[k] for k in ("tasks", "train_examples", "test_examples")}))


if __name__ == "__main__":
    main()
