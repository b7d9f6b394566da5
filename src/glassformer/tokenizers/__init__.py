"""Tokenizers: text -> token ids -> text.

    char        one id per character (the course model)
    bpe         byte-level byte-pair encoding, trained from scratch, with its merge history
    pretrained  a real model's tokenizer.json, through Hugging Face `tokenizers`

All of them share one small interface (see `Tokenizer` in base.py): encode, decode,
vocab_size, and token_bytes for display.
"""

from glassformer.tokenizers.base import Tokenizer
from glassformer.tokenizers.pretrained import PretrainedTokenizer

__all__ = ["Tokenizer", "PretrainedTokenizer"]
