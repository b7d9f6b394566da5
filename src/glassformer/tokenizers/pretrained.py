"""A real model's tokenizer, read from its `tokenizer.json` by Hugging Face `tokenizers` (Rust)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte -> printable-character table (byte-level BPE stores tokens that way)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


class PretrainedTokenizer:
    def __init__(self, path: str | Path, eos_id: int | list[int] | None = None) -> None:
        path = Path(path)
        try:
            self.hf = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for malformed files
            raise ValueError(f"{path} is not a valid tokenizer.json: {exc}") from None
        self.vocab_size = self.hf.get_vocab_size(with_added_tokens=True)
        self.eos_id = eos_id
        self.name = path.parent.name
        self.path = path            # its folder may also hold the chat template (tokenizer_config.json)

    def to_dict(self) -> dict:
        """The tokenizer.json contents (what a model folder stores)."""
        import json

        return json.loads(self.hf.to_str())

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    @cached_property
    def _bytes_of(self) -> dict[str, int]:
        return _byte_decoder()

    def token_bytes(self, token_id: int) -> bytes:
        piece = self.hf.id_to_token(token_id)
        if piece is None:
            raise ValueError(f"token id {token_id} is outside the vocabulary [0, {self.vocab_size})")
        table = self._bytes_of
        if all(ch in table for ch in piece):  # byte-level BPE piece (GPT-2, Qwen)
            return bytes(table[ch] for ch in piece)
        return piece.encode("utf-8")
