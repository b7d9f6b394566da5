"""The simplest tokenizer: one token per character.

The vocabulary is the sorted set of characters seen in the training text (65 for
TinyShakespeare). Small vocabulary, long sequences: "hello" is 5 tokens.

    >>> tok = CharTokenizer.train("hello")
    >>> tok.encode("hell"), tok.decode([3, 1])
    ([1, 0, 2, 2], 'oh')
"""

from __future__ import annotations

import json
from pathlib import Path


class UnknownCharacterError(ValueError):
    """The text has characters the vocabulary does not contain."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = chars
        shown = ", ".join(repr(c) for c in chars[:10]) + (" ..." if len(chars) > 10 else "")
        super().__init__(f"{len(chars)} character(s) not in the vocabulary: {shown}")


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str]) -> None:
        if len(set(chars)) != len(chars) or any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("a character vocabulary is a list of distinct single characters")
        self.chars = list(chars)
        self.ids = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)
        self.eos_id = None

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        if not text:
            raise ValueError("cannot build a character vocabulary from empty text")
        return cls(sorted(set(text)))

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.ids))

    def encode(self, text: str, errors: str = "strict") -> list[int]:
        """errors='strict' raises UnknownCharacterError on unknown characters; 'skip' drops them."""
        if errors == "skip":
            return [self.ids[c] for c in text if c in self.ids]
        if errors != "strict":
            raise ValueError(f"errors must be 'strict' or 'skip', got {errors!r}")
        try:
            return [self.ids[c] for c in text]
        except KeyError:
            raise UnknownCharacterError(self.unknown(text)) from None

    def decode(self, ids: list[int]) -> str:
        try:
            return "".join(self.chars[i] for i in ids)
        except (IndexError, TypeError):
            bad = [i for i in ids if not (isinstance(i, int) and 0 <= i < self.vocab_size)]
            raise ValueError(f"token id {bad[0]} is outside the vocabulary [0, {self.vocab_size})") from None

    def token_bytes(self, token_id: int) -> bytes:
        return self.chars[token_id].encode("utf-8")

    # --- files -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        """The tokenizer that to_dict() described; a field that is missing or wrong is named."""
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            raise ValueError(f"not a glassformer character tokenizer (field 'kind' is not {cls.kind!r})")
        chars = data.get("chars")
        if chars is None:
            raise ValueError("field 'chars' (the vocabulary) is missing")
        if not isinstance(chars, list):
            raise ValueError(f"field 'chars' must be a list of characters, got {type(chars).__name__}")
        try:
            return cls(chars)
        except ValueError as exc:
            raise ValueError(f"field 'chars': {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        """Read a tokenizer file; whatever is wrong with it, the error names the file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except ValueError as exc:  # also a file that is not JSON, or not UTF-8
            raise ValueError(f"{path}: {exc}") from None
