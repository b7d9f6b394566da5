"""The chapters of the course, in order (what each must cover: docs/curriculum.md).
`module` is None until built. A chapter notebook finds its own entry by its file name
(`for_file(__file__)`), so its key, title and neighbours are written here only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHAPTER_DIR = Path(__file__).parent / "chapters"


@dataclass(frozen=True)
class Chapter:
    key: str          # "0".."13", "A", "B": also the URL: /chapter/<key>
    title: str
    summary: str
    module: str | None = None  # file name in chapters/, when the chapter is built

    @property
    def built(self) -> bool:
        return self.module is not None and (CHAPTER_DIR / self.module).exists()

    @property
    def path(self) -> str:
        return f"/chapter/{self.key}/"


CHAPTERS: list[Chapter] = [
    Chapter("0", "The big picture", "Text to tokens to vectors to blocks to probabilities: the whole pipeline on your sentence.",
            "ch00_big_picture.py"),
    Chapter("1", "Tokenization", "Characters, words, subwords; train a byte-level BPE live and step through its merges.",
            "ch01_tokenization.py"),
    Chapter("2", "Embeddings and the output head", "Lookup tables, similarity, unembedding, a bigram model.",
            "ch02_embeddings.py"),
    Chapter("3", "Positional encoding", "Why order must be added; sinusoidal, learned, RoPE, ALiBi.",
            "ch03_positions.py"),
    Chapter("4", "Attention from scratch", "Queries, keys, values, softmax, scaling and the causal mask.",
            "ch04_attention.py"),
    Chapter("5", "Multi-head attention", "Heads in parallel; what they learn; MQA and GQA.",
            "ch05_multi_head.py"),
    Chapter("6", "The Transformer block", "Norms, the feed-forward network, residual connections.",
            "ch06_block.py"),
    Chapter("7", "Stacking, decoders, encoders", "The residual stream, the logit lens, cross-attention.",
            "ch07_stacking.py"),
    Chapter("8", "From logits to words", "Temperature, top-k, top-p, min-p, greedy, sampling and beam search.",
            "ch08_logits_to_words.py"),
    Chapter("9", "Training", "Cross-entropy, AdamW, schedules, and training the model live.",
            "ch09_training.py"),
    Chapter("10", "Inference engineering", "KV cache, tiled attention, speculative decoding, int8.",
            "ch10_inference.py"),
    Chapter("11", "Mixture of experts and scaling", "Routers, experts, power laws.", "ch11_moe_scaling.py"),
    Chapter("12", "What makes it work", "Induction heads and in-context learning, found in a model trained here.",
            "ch12_induction.py"),
    Chapter("13", "From language model to assistant", "Fine-tuning, LoRA and a preference step, run on the course "
            "model.", "ch13_assistant.py"),
    Chapter("A", "Worked example by hand", "One forward pass small enough for pencil and paper.",
            "chA_by_hand.py"),
    Chapter("B", "Reference", "Symbols, a searchable glossary, further reading.", "chB_reference.py"),
]


# The pattern a new chapter copies (chapters/_template.py); not part of the course.
TEMPLATE = Chapter("template", "Chapter template", "The shape every chapter follows.", "_template.py")


def chapter(key: str) -> Chapter:
    for ch in [*CHAPTERS, TEMPLATE]:
        if ch.key == key:
            return ch
    raise KeyError(f"no chapter {key!r}")


def for_file(path: str | Path) -> Chapter:
    """The catalog entry of the chapter notebook at `path` (by file name)."""
    name = Path(path).name
    for ch in [*CHAPTERS, TEMPLATE]:
        if ch.module == name:
            return ch
    raise KeyError(f"{name} is not a chapter listed in the catalog")


def neighbours(key: str) -> tuple[Chapter | None, Chapter | None]:
    """The previous and next *built* chapters."""
    built = [c for c in CHAPTERS if c.built]
    keys = [c.key for c in built]
    if key not in keys:  # the template
        return None, None
    i = keys.index(key)
    return (built[i - 1] if i > 0 else None, built[i + 1] if i + 1 < len(built) else None)
