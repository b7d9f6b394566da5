"""Byte-level byte-pair encoding (BPE), as in GPT-2 and most models since.

Start with 256 tokens, one per byte, so any text at all can be encoded (UTF-8 turns every
character into 1-4 bytes). Then learn merges from a training text:

    1. count every pair of adjacent tokens;
    2. give the most frequent pair a new token id; replace it everywhere;
    3. repeat until the vocabulary has the size asked for.

Frequent words end up as single tokens, rare words as several pieces, and nothing is
ever "unknown". Before counting, text is pre-split by a regular expression into chunks
(words with their leading space, numbers, punctuation runs, whitespace), and merges never
cross a chunk boundary: " dog" and "." stay separate tokens even though "dog." is common.

    >>> tok = BPETokenizer.train("aaabdaaabac", vocab_size=259, pattern=None)
    >>> [(m.pair, m.new_id, m.count) for m in tok.merges]
    [((97, 97), 256, 4), ((97, 98), 257, 2), ((256, 257), 258, 2)]

By hand: "aa" occurs 4 times (twice in each "aaab") and becomes 256. In "Z a b d Z a b a c"
(Z = 256) the pairs "Za" and "ab" both occur twice; ties go to the earlier token in GPT-2's byte
order (for letters and merged tokens: the smaller id), so "ab" becomes 257; then "Z"+"ab"
(= "aaab") occurs twice and becomes 258.
    >>> tok.encode("aaabdaaabac")
    [258, 100, 258, 97, 99]

Training keeps pair counts up to date incrementally: a merge only touches the chunks that
contain the merged pair, instead of recounting the whole corpus every time.
(Sennrich et al. 2016 for BPE on words; Radford et al. 2019 for the byte-level version.)
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import regex

# GPT-2's pre-split pattern: contractions, optional space + letters, optional space + digits,
# optional space + other symbols, and whitespace (keeping a single space to start the next word).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-4's (cl100k) refinement: case-insensitive contractions, digits in groups of at most three,
# newlines kept apart from other whitespace.
GPT4_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*"""
                r"""|\s*[\r\n]|\s+(?!\S)|\s+""")
PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}

Pair = tuple[int, int]


@dataclass(frozen=True)
class Merge:
    pair: Pair        # the two token ids that were merged
    new_id: int       # the id of the merged token
    token: bytes      # the bytes the new token stands for
    count: int        # how often the pair occurred in the training text when it was merged


def utf8(text: str) -> bytes:
    """text as UTF-8 bytes; a lone surrogate (not a real character) is a clear error."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        raise ValueError(f"text contains a lone surrogate U+{ord(ch):04X} at position {exc.start}, which is not "
                         f"a character and cannot be encoded as UTF-8") from None


def byte_rank() -> list[int]:
    """For byte b, its position when bytes are ordered by GPT-2's printable stand-in characters.

    Hugging Face's trainer numbers the 256 base tokens in that order and breaks ties between
    equally frequent pairs by the smaller ids; ranking bytes the same way makes our merges match.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in stand_in:
            stand_in[b] = 256 + extra
            extra += 1
    order = sorted(range(256), key=lambda b: stand_in[b])
    rank = [0] * 256
    for position, b in enumerate(order):
        rank[b] = position
    return rank


class BPETokenizer:
    kind = "bpe"

    def __init__(self, merges: list[Merge], pattern: str | None = GPT2_PATTERN,
                 special_tokens: dict[str, int] | None = None) -> None:
        self.merges = list(merges)
        self.pattern = pattern
        self.split_re = regex.compile(pattern) if pattern else None
        self.ranks: dict[Pair, int] = {m.pair: i for i, m in enumerate(self.merges)}
        self.merged_id: dict[Pair, int] = {m.pair: m.new_id for m in self.merges}
        self.vocab: list[bytes] = [bytes([b]) for b in range(256)] + [m.token for m in self.merges]
        self.special_tokens = dict(special_tokens or {})
        for name, token_id in self.special_tokens.items():
            if token_id < len(self.vocab):
                raise ValueError(f"special token {name!r} id {token_id} collides with a byte or merge id")
        self.special_by_id = {v: k for k, v in self.special_tokens.items()}
        self.special_re = (regex.compile("(" + "|".join(regex.escape(s) for s in
                                         sorted(self.special_tokens, key=len, reverse=True)) + ")")
                           if self.special_tokens else None)
        self.vocab_size = len(self.vocab) + len(self.special_tokens)
        self.eos_id = self.special_tokens.get("<|endoftext|>")
        self._cache: dict[bytes, list[int]] = {}

    # --- training ------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str | None = "gpt2",
              special_tokens: list[str] | tuple[str, ...] = (), min_count: int = 2,
              progress=None, on_merge=None) -> "BPETokenizer":
        """Learn vocab_size - 256 - len(special_tokens) merges from text.

        pattern: "gpt2", "gpt4", a regex, or None (no pre-split: the text is one chunk).
        Stops early when no pair occurs at least min_count times. progress(i, total) is
        called after each merge. on_merge(merge, counts), if given, is called before each merge
        is applied with a copy of every pair's count at that moment (the course steps through a
        small example with it; on a big corpus the copies are slow).
        """
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is smaller than the 256 byte tokens + {len(special_tokens)} special")
        pattern = PATTERNS.get(pattern, pattern) if pattern else None
        chunks = regex.findall(pattern, text) if pattern else [text]
        chunk_counts = Counter(chunks)
        words: list[list[int]] = [list(utf8(c)) for c in chunk_counts]
        freq: list[int] = list(chunk_counts.values())

        counts: dict[Pair, int] = defaultdict(int)
        where: dict[Pair, set[int]] = defaultdict(set)
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                counts[pair] += freq[w]
                where[pair].add(w)

        rank = byte_rank() + list(range(256, 256 + n_merges))  # tie-break order of token ids

        def entry(pair: Pair) -> tuple:
            return (-counts[pair], rank[pair[0]], rank[pair[1]], pair)

        heap = [entry(p) for p in counts]
        heapq.heapify(heap)
        vocab = [bytes([b]) for b in range(256)]
        merges: list[Merge] = []
        while len(merges) < n_merges and heap:
            neg, _, _, pair = heapq.heappop(heap)
            if -neg != counts.get(pair, 0):
                continue  # stale entry: the pair's count changed after it was pushed
            if -neg < min_count:
                break
            new_id = 256 + len(merges)
            vocab.append(vocab[pair[0]] + vocab[pair[1]])
            merges.append(Merge(pair, new_id, vocab[new_id], -neg))
            if on_merge is not None:
                on_merge(merges[-1], {p: c for p, c in counts.items() if c > 0})
            changed: set[Pair] = set()
            for w in where.pop(pair):
                old = words[w]
                if len(old) < 2:
                    continue
                new = merge_pair(old, pair, new_id)
                if len(new) == len(old):
                    continue  # stale index entry: the pair is no longer in this chunk
                f = freq[w]
                for p in zip(old, old[1:]):
                    counts[p] -= f
                    changed.add(p)
                for p in zip(new, new[1:]):
                    counts[p] += f
                    where[p].add(w)
                    changed.add(p)
                words[w] = new
            counts.pop(pair, None)
            changed.discard(pair)
            for p in changed:
                if counts[p] > 0:
                    heapq.heappush(heap, entry(p))
                else:
                    del counts[p]
            if progress is not None:
                progress(len(merges), n_merges)
        specials = {s: 256 + len(merges) + i for i, s in enumerate(special_tokens)}
        return cls(merges, pattern, specials)

    # --- encoding ------------------------------------------------------------------------
    def encode_chunk(self, data: bytes) -> list[int]:
        """Apply the merges to one pre-split chunk, always the earliest-learned pair first."""
        cached = self._cache.get(data)
        if cached is not None:
            return cached
        ids = list(data)
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, 1 << 60))
            if best not in self.ranks:
                break
            ids = merge_pair(ids, best, self.merged_id[best])
        if len(self._cache) < 500_000:
            self._cache[data] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        utf8(text)  # reject lone surrogates with a clear message before splitting
        chunks = self.split_re.findall(text) if self.split_re else [text]
        out: list[int] = []
        for chunk in chunks:
            out.extend(self.encode_chunk(chunk.encode("utf-8")))
        return out

    def encode(self, text: str, allowed_special: str | set[str] = "none") -> list[int]:
        """Text -> ids. Special-token strings in the text are encoded as ordinary text unless
        allowed_special is "all" or a set naming them (so user text cannot forge them)."""
        if allowed_special == "none" or not self.special_re:
            return self.encode_ordinary(text)
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"unknown special tokens: {sorted(unknown)}")
        out: list[int] = []
        for i, piece in enumerate(self.special_re.split(text)):
            if i % 2 == 1 and piece in allowed:
                out.append(self.special_tokens[piece])
            elif piece:
                out.extend(self.encode_ordinary(piece))
        return out

    def token_bytes(self, token_id: int) -> bytes:
        if 0 <= token_id < len(self.vocab):
            return self.vocab[token_id]
        if token_id in self.special_by_id:
            return self.special_by_id[token_id].encode("utf-8")
        raise ValueError(f"token id {token_id} is outside the vocabulary [0, {self.vocab_size})")

    def decode(self, ids: list[int]) -> str:
        """ids -> text; byte sequences that are not valid UTF-8 become U+FFFD."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    # --- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "pattern": self.pattern, "special_tokens": self.special_tokens,
                "merges": [[m.pair[0], m.pair[1], m.count] for m in self.merges]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        """The tokenizer that to_dict() described; a field that is missing or wrong is named."""
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            raise ValueError(f"not a glassformer BPE tokenizer (field 'kind' is not {cls.kind!r})")
        merges_in = data.get("merges")
        if not isinstance(merges_in, list) or not all(
                isinstance(m, list) and len(m) == 3 and all(isinstance(v, int) for v in m) for m in merges_in):
            raise ValueError("field 'merges' must be a list of [a, b, count] integer triples")
        pattern, special = data.get("pattern"), data.get("special_tokens")
        if pattern is not None:
            try:
                regex.compile(pattern)
            except (regex.error, TypeError) as exc:
                raise ValueError(f"field 'pattern' is not a regular expression ({exc})") from None
        if special is not None and not (isinstance(special, dict) and
                                        all(isinstance(k, str) and isinstance(v, int) for k, v in special.items())):
            raise ValueError("field 'special_tokens' must map token strings to integer ids")
        vocab = [bytes([b]) for b in range(256)]
        merges = []
        for a, b, count in merges_in:
            if not (0 <= a < len(vocab) and 0 <= b < len(vocab)):
                raise ValueError(f"field 'merges': merge ({a}, {b}) refers to a token that does not exist yet")
            vocab.append(vocab[a] + vocab[b])
            merges.append(Merge((a, b), len(vocab) - 1, vocab[-1], count))
        return cls(merges, pattern, special)

    @classmethod
    def load(cls, path: str | Path) -> "BPETokenizer":
        """Read a tokenizer file; whatever is wrong with it, the error names the file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except ValueError as exc:  # also a file that is not JSON, or not UTF-8
            raise ValueError(f"{path}: {exc}") from None


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of pair, left to right.

        >>> merge_pair([1, 1, 1, 2], (1, 1), 9)
        [9, 1, 2]
    """
    out: list[int] = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
