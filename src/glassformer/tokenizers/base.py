"""What every tokenizer offers, so the rest of glassformer never asks which kind it has."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    vocab_size: int
    eos_id: int | list[int] | None  # the end-of-text token(s), where the tokenizer has any

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes a single token stands for (may be part of a UTF-8 character)."""
        ...
