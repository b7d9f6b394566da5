"""A toy task for the encoder–decoder: reverse a short lowercase string ("hello" -> "olleh").

Reversal is the clearest way to see cross-attention work: to write output character t of an
n-character string the decoder must read input character n-1-t, so a trained model's
cross-attention pattern (target position x source position) is an anti-diagonal.

    ALPHABET       the 26 lowercase letters (ids 0..25), then BOS = 26 and EOS = 27
    random_words   seeded random strings of given lengths
    train_reverser the training loop that made the shipped model (scripts/ship_reverser.py)
    load_reverser  the shipped fp16 model, from src/glassformer/assets/reverser/
    reverse        run the model on one string; accuracy: exact-match rate over many
"""

from __future__ import annotations

import json
import math
import random
import zlib
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from glassformer.model.seq2seq import EncoderDecoder, Seq2SeqConfig
from glassformer.threads import one_thread

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
BOS, EOS = len(ALPHABET), len(ALPHABET) + 1
MIN_LEN, MAX_LEN = 3, 10
ASSET_DIR = Path(__file__).parents[1] / "assets" / "reverser"


def encode(word: str) -> list[int]:
    return [ALPHABET.index(ch) for ch in word]


def decode(ids: list[int]) -> str:
    return "".join(ALPHABET[i] if i < len(ALPHABET) else "?" for i in ids)


def problem(word: str) -> str | None:
    """Why `word` cannot go into the reverser (None if it can): the model knows only what it was trained on."""
    if not MIN_LEN <= len(word) <= MAX_LEN:
        return f"it has {len(word)} characters; the model was trained on {MIN_LEN} to {MAX_LEN}"
    bad = sorted(set(word) - set(ALPHABET))
    if bad:
        return "it contains characters other than a–z: " + " ".join(repr(c) for c in bad[:8])
    return None


def held_out(word: str) -> bool:
    """True for the one string in ten (by a checksum of its letters) that training never shows the model.

    Measuring accuracy on these only means the model cannot have memorized an answer: every
    one of them is new to it. (Short strings would otherwise repeat: there are only 26^3 =
    17,576 strings of length 3, and training draws tens of thousands of words.)"""
    return zlib.crc32(word.encode()) % 10 == 0


def random_words(n: int, seed: int, lengths: range = range(MIN_LEN, MAX_LEN + 1),
                 split: str = "held-out") -> list[str]:
    """n random lowercase strings, lengths uniform over `lengths`, reproducible from `seed`;
    split "held-out" keeps only strings training never saw, "train" only the others."""
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < n:
        w = "".join(rng.choice(ALPHABET) for _ in range(rng.choice(lengths)))
        if held_out(w) == (split == "held-out"):
            words.append(w)
    return words


def batch(words: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same-length words -> source (B, n), decoder input [BOS, reversed] (B, n+1), target [reversed, EOS] (B, n+1)."""
    src = torch.tensor([encode(w) for w in words])                              # (B, n)
    rev = src.flip(1)                                                           # (B, n)
    bos = torch.full((len(words), 1), BOS)
    eos = torch.full((len(words), 1), EOS)
    return src, torch.cat([bos, rev], 1), torch.cat([rev, eos], 1)


def default_config() -> Seq2SeqConfig:
    return Seq2SeqConfig(vocab_size=len(ALPHABET) + 2, n_ctx=MAX_LEN + 1, d_model=64, n_enc_layers=2,
                         n_dec_layers=2, n_heads=2, d_mlp=128)


def train_reverser(config: Seq2SeqConfig, steps: int, seed: int, batch_size: int = 64, lr: float = 3e-3,
                   on_step=None) -> EncoderDecoder:
    """AdamW with linear warmup then cosine decay; each step is one batch of fresh random words of
    one random length (so no padding is needed). Teacher forcing: the decoder sees the true
    reversed prefix and is scored (cross-entropy) on every next character and the final EOS."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = EncoderDecoder(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for step in range(steps):
        n = rng.randint(MIN_LEN, MAX_LEN)
        words = random_words(batch_size, rng.getrandbits(32), range(n, n + 1), split="train")
        src, dec_in, target = batch(words)
        logits = model(src, dec_in)                                             # (B, n+1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(step, loss.item())
    return model.eval()


def save_reverser(model: EncoderDecoder, folder: Path, card: dict) -> None:
    """fp16 safetensors + config.json + card.json."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")


@lru_cache(maxsize=2)
def load_reverser(folder: Path = ASSET_DIR) -> tuple[EncoderDecoder, dict]:
    """The shipped model (weights via safetensors only, cast to fp32) and its card."""
    from safetensors.torch import load_file

    config = Seq2SeqConfig(**json.loads((folder / "config.json").read_text()))
    model = EncoderDecoder(config)
    tensors = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    model.load_state_dict(tensors, strict=True)
    card = json.loads((folder / "card.json").read_text())
    return model.eval(), card


def reverse(model: EncoderDecoder, word: str, cross_attention: bool = True) -> str:
    """The model's greedy output for one string (checked first with `problem`).

    cross_attention=False zeroes every cross-attention output through the hook points: the
    decoder then writes without ever seeing the input."""
    why = problem(word)
    if why:
        raise ValueError(f"cannot reverse {word!r}: {why}")
    cut = {} if cross_attention else {"decoder.*.cross_attn.z": lambda z, name: torch.zeros_like(z)}
    with model.hooks(cut), one_thread():
        return decode(model.greedy(torch.tensor([encode(word)]), BOS, EOS, max_new=MAX_LEN + 1)[0])


@torch.no_grad()
def accuracy(model: EncoderDecoder, words: list[str]) -> tuple[float, list[tuple[str, str]]]:
    """Exact-match rate (the whole output string must equal the reversed input) and the misses.

    Words are grouped by length so each group is one batch (no padding needed)."""
    by_len: dict[int, list[str]] = {}
    for w in words:
        by_len.setdefault(len(w), []).append(w)
    misses = []
    for group in by_len.values():
        with one_thread():
            outs = model.greedy(torch.tensor([encode(w) for w in group]), BOS, EOS, max_new=MAX_LEN + 1)
        misses += [(w, decode(o)) for w, o in zip(group, outs) if decode(o) != w[::-1]]
    return 1 - len(misses) / max(1, len(words)), misses


def cross_attention_maps(model: EncoderDecoder, word: str) -> tuple[str, torch.Tensor]:
    """(output, patterns): the model's output for `word` and its cross-attention while writing it,
    (L_dec, H, T, S) with T = len(output) + 1 (the last row is the step that wrote EOS), S = len(word)."""
    out = reverse(model, word)
    src = torch.tensor([encode(word)])
    dec_in = torch.tensor([[BOS] + encode(out)])
    with torch.no_grad(), one_thread():
        _, trace = model.run_with_trace(src, dec_in, names="decoder.*.cross_attn.pattern")
    maps = torch.stack([trace[f"decoder.{i}.cross_attn.pattern"][0] for i in range(model.config.n_dec_layers)])
    return out, maps


def mirror_weight(maps: torch.Tensor) -> torch.Tensor:
    """maps (L, H, T, S) from cross_attention_maps -> (L, H): the average weight each head puts on the
    mirrored source position S-1-t while writing output character t (the EOS row left out).
    1.0 is a perfect anti-diagonal: each output character reads exactly the input character it copies."""
    S = maps.shape[-1]
    rows = min(S, maps.shape[-2])                                               # output characters
    t = torch.arange(rows)
    return maps[..., t, S - 1 - t].mean(-1)                                     # (L, H)
