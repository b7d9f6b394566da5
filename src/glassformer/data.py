"""Training text: TinyShakespeare (downloaded once, checked, cached) or any UTF-8 file.

TinyShakespeare is 1,115,394 characters of Shakespeare's plays (public domain), the corpus
of Karpathy's char-rnn. It ships inside the package, gzip-compressed (0.43 MB), and is verified
against its sha256 on every read, so every learner trains on exactly the same bytes, offline.

Where the text comes from, in order:
    1. the path in $GLASSFORMER_TINYSHAKESPEARE (must have the right checksum);
    2. the copy in the package (assets/data/tinyshakespeare.txt.gz);
    3. <cache dir>/tinyshakespeare.txt (cache dir: $GLASSFORMER_CACHE or the user cache dir);
    4. a download from TINYSHAKESPEARE_URL into the cache (never when $GLASSFORMER_OFFLINE=1),
       for an install whose package data was stripped.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import torch

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
PACKAGED_TINYSHAKESPEARE = Path(__file__).parent / "assets" / "data" / "tinyshakespeare.txt.gz"


class CorpusError(RuntimeError):
    """The training text cannot be had; the message says how to provide it."""


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    path = Path(os.environ.get("GLASSFORMER_CACHE") or user_cache_dir("glassformer"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tinyshakespeare_path(download: bool = True) -> Path:
    """The verified TinyShakespeare file, downloading it into the cache if needed."""
    override = os.environ.get("GLASSFORMER_TINYSHAKESPEARE")
    if override:
        path = Path(override)
        if not path.is_file():
            raise CorpusError(f"GLASSFORMER_TINYSHAKESPEARE points to {path}, which is not a file")
        if sha256(path) != TINYSHAKESPEARE_SHA256:
            raise CorpusError(f"{path} is not TinyShakespeare (sha256 mismatch)")
        return path
    target = cache_dir() / "tinyshakespeare.txt"
    if target.is_file() and sha256(target) == TINYSHAKESPEARE_SHA256:
        return target
    how = (f"Put the file at {target}, set GLASSFORMER_TINYSHAKESPEARE=/path/to/input.txt, "
           f"or train on any UTF-8 text with --corpus PATH.")
    if not download or os.environ.get("GLASSFORMER_OFFLINE") == "1":
        raise CorpusError(f"TinyShakespeare is not in the cache (and downloading is off). {how}")
    try:  # download to a temp file beside the target, verify, then rename: never a half file
        with urllib.request.urlopen(TINYSHAKESPEARE_URL, timeout=20) as response:
            payload = response.read()
    except OSError as exc:
        raise CorpusError(f"TinyShakespeare is not cached and could not be downloaded ({exc}). {how}") from None
    if hashlib.sha256(payload).hexdigest() != TINYSHAKESPEARE_SHA256:
        raise CorpusError(f"downloaded TinyShakespeare has the wrong sha256; not saved. {how}")
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(payload)
    os.replace(tmp.name, target)
    return target


def packaged_tinyshakespeare() -> bytes | None:
    """The copy shipped in the package, checked; None when the package has none."""
    if not PACKAGED_TINYSHAKESPEARE.is_file():
        return None
    try:
        raw = gzip.decompress(PACKAGED_TINYSHAKESPEARE.read_bytes())
    except (OSError, EOFError) as exc:
        raise CorpusError(f"the packaged TinyShakespeare {PACKAGED_TINYSHAKESPEARE} is damaged ({exc}); "
                          "reinstall glassformer") from None
    if hashlib.sha256(raw).hexdigest() != TINYSHAKESPEARE_SHA256:
        raise CorpusError(f"the packaged TinyShakespeare {PACKAGED_TINYSHAKESPEARE} fails its sha256 check; "
                          "reinstall glassformer")
    return raw


def tinyshakespeare_bytes() -> bytes:
    """TinyShakespeare's bytes, from the first source that has them (see the module docstring)."""
    if not os.environ.get("GLASSFORMER_TINYSHAKESPEARE"):
        packaged = packaged_tinyshakespeare()
        if packaged is not None:
            return packaged
    return tinyshakespeare_path().read_bytes()


def load_text(corpus: str | Path | None = None) -> tuple[str, str]:
    """(text, sha256 of its bytes); corpus None means TinyShakespeare."""
    if corpus is None:
        raw = tinyshakespeare_bytes()
        path = Path("TinyShakespeare")
    else:
        path = Path(corpus)
        if path.is_dir():
            raise CorpusError(f"corpus {path} is a folder; give a UTF-8 text file")
        if not path.exists():
            raise CorpusError(f"corpus {path} does not exist")
        if not path.is_file():
            raise CorpusError(f"corpus {path} is not a regular file; give a UTF-8 text file")
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"corpus {path} is not UTF-8 text ({exc})") from None
    if len(text) < 100:
        raise CorpusError(f"corpus {path} has only {len(text)} characters; give it at least a few thousand")
    return text, hashlib.sha256(raw).hexdigest()


def train_val_split(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 90% for training, the last 10% for validation (a contiguous split, no shuffling)."""
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def random_batch(data: torch.Tensor, batch_size: int, block_size: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """B random windows of the corpus: inputs x (B, T) and targets y (B, T), y = x shifted by one.

    One window of T + 1 tokens holds T training examples: after each prefix, the next token.
    """
    if len(data) <= block_size:
        raise ValueError(f"corpus of {len(data)} tokens is too short for windows of {block_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[s:s + block_size] for s in starts.tolist()])          # (B, T)
    y = torch.stack([data[s + 1:s + 1 + block_size] for s in starts.tolist()])  # (B, T)
    return x, y


def sequential_batches(data: torch.Tensor, batch_size: int, block_size: int):
    """Non-overlapping windows covering the whole split once (for an exact validation loss)."""
    n = (len(data) - 1) // block_size
    windows = data[: n * block_size + 1]
    for first in range(0, n, batch_size):
        rows = range(first, min(first + batch_size, n))
        x = torch.stack([windows[r * block_size:(r + 1) * block_size] for r in rows])
        y = torch.stack([windows[r * block_size + 1:(r + 1) * block_size + 1] for r in rows])
        yield x, y


def spread_windows(data: torch.Tensor, block_size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows of block_size + 1 tokens at evenly spaced starts across `data` (a sample of the
    whole split, not just its beginning): inputs x (n, T) and targets y (n, T)."""
    n = max(1, min(n, (len(data) - 1) // block_size))
    starts = torch.linspace(0, len(data) - block_size - 1, n).long().tolist()
    x = torch.stack([data[s:s + block_size] for s in starts])               # (n, T)
    y = torch.stack([data[s + 1:s + 1 + block_size] for s in starts])       # (n, T)
    return x, y
