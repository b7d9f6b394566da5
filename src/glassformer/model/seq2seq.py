"""The encoder–decoder (sequence-to-sequence) Transformer of Vaswani et al. 2017, small.

    source ids -> encoder (bidirectional self-attention + MLP, n_enc blocks) -> memory (B, S, D)
    target ids -> decoder (causal self-attention + cross-attention to memory + MLP, n_dec blocks) -> logits

The encoder reads the whole source at once: every source position sees every other one.
The decoder writes the output one token at a time, like a decoder-only language model, but
each of its blocks also looks at the encoder's output through cross-attention (queries from
the decoder, keys and values from the memory).

Built from the library's own pieces: the encoder blocks are `block.Block` with
`BidirectionalAttention`, the decoder's self-attention is the causal `attention.Attention`,
and norms, MLPs, embeddings and learned positions are the ones the decoder-only models use.

Hook names (i = block index), shapes as in hooks.HOOK_NAMES:
    encoder.embed.tok / encoder.embed.pos                 [B, S, D]
    encoder.{i}.resid_pre ... encoder.{i}.resid_post       as a decoder-only block's, over S
    encoder.{i}.attn.q|k|v|scores|pattern|z                [B, H, S, ...] (no mask)
    decoder.{i}.resid_pre, resid_mid, resid_cross, resid_post   [B, T, D]
    decoder.{i}.self_attn.*                                 causal self-attention (attention.py's names)
    decoder.{i}.cross_attn.q|z [B, H, T, Dh], k|v [B, H, S, Dh], scores|pattern [B, H, T, S]
    logits                                                  [B, T, V]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from glassformer.model.attention import Attention, causal_mask
from glassformer.model.block import Block
from glassformer.model.cross_attention import BidirectionalAttention, CrossAttention
from glassformer.model.embedding import Embed, Unembed
from glassformer.model.hooks import HookFn, HookPoint, Trace, attach, select_names
from glassformer.model.mlp import make_mlp
from glassformer.model.norm import make_norm
from glassformer.model.position import LearnedPositions


@dataclass(frozen=True)
class Seq2SeqConfig:
    vocab_size: int                # shared by source and target (special tokens included)
    n_ctx: int = 16                # longest source, and longest target including its start token
    d_model: int = 64
    n_enc_layers: int = 2
    n_dec_layers: int = 2
    n_heads: int = 2
    d_mlp: int = 128
    norm: str = "layernorm"
    mlp: str = "gelu"

    def to_dict(self) -> dict:
        return asdict(self)


def encoder_decoder_masks(n_source: int, n_target: int) -> dict[str, torch.Tensor]:
    """Who may look at whom, as (queries, keys) booleans (True = may attend), for the three designs.

        decoder-only  : one sequence, causal                 (n_source + n_target, same)
        encoder       : bidirectional over the source        (n_source, n_source)
        enc-dec self  : the decoder's causal self-attention  (n_target, n_target)
        enc-dec cross : every target position sees all of the source (n_target, n_source)
    """
    n = n_source + n_target
    return {
        "decoder-only": causal_mask(0, n, n),
        "encoder": torch.ones(n_source, n_source, dtype=torch.bool),
        "enc-dec self": causal_mask(0, n_target, n_target),
        "enc-dec cross": torch.ones(n_target, n_source, dtype=torch.bool),
    }


class DecoderBlock(nn.Module):
    """Pre-norm decoder block with three sub-layers, each added to the residual stream:

        x = x + self_attn(norm1(x))            causal: position t sees target positions 0..t
        x = x + cross_attn(norm2(x), memory)   queries from x, keys/values from the encoder
        x = x + mlp(norm3(x))
    """

    def __init__(self, c: Seq2SeqConfig) -> None:
        super().__init__()
        hd = c.d_model // c.n_heads
        self.norm1 = make_norm(c.norm, c.d_model, 1e-5)
        self.self_attn = Attention(c.d_model, c.n_heads, c.n_heads, hd, qkv_bias=True, out_bias=True)
        self.norm2 = make_norm(c.norm, c.d_model, 1e-5)
        self.cross_attn = CrossAttention(c.d_model, c.n_heads, hd)
        self.norm3 = make_norm(c.norm, c.d_model, 1e-5)
        self.mlp = make_mlp(c.mlp, c.d_model, c.d_mlp, True)
        self.hook_resid_pre, self.hook_resid_mid = HookPoint(), HookPoint()
        self.hook_resid_cross, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), memory (B, S, D) -> (B, T, D)."""
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.self_attn(self.norm1(x)))             # (B, T, D)
        x = self.hook_resid_cross(x + self.cross_attn(self.norm2(x), memory))  # (B, T, D)
        return self.hook_resid_post(x + self.mlp(self.norm3(x)))               # (B, T, D)


class EncoderDecoder(nn.Module):
    """source ids (B, S) + target ids (B, T) -> logits (B, T, V) for the next target token."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        self.enc_embed = Embed(c.vocab_size, c.d_model, LearnedPositions(c.n_ctx, c.d_model))
        self.encoder = nn.ModuleList(
            Block(make_norm(c.norm, c.d_model, 1e-5), BidirectionalAttention(c.d_model, c.n_heads),
                  make_norm(c.norm, c.d_model, 1e-5), make_mlp(c.mlp, c.d_model, c.d_mlp, True))
            for _ in range(c.n_enc_layers))
        self.enc_norm = make_norm(c.norm, c.d_model, 1e-5)
        self.dec_embed = Embed(c.vocab_size, c.d_model, LearnedPositions(c.n_ctx, c.d_model))
        self.decoder = nn.ModuleList(DecoderBlock(c) for _ in range(c.n_dec_layers))
        self.final_norm = make_norm(c.norm, c.d_model, 1e-5)
        self.unembed = Unembed(c.vocab_size, c.d_model)
        self.hook_memory, self.hook_logits = HookPoint(), HookPoint()
        self.hook_points: dict[str, HookPoint] = {}
        for path, module in self.named_modules():
            if isinstance(module, HookPoint):
                *parents, leaf = path.replace("enc_embed", "encoder.embed").replace("dec_embed", "decoder.embed") \
                    .split(".")
                module.name = ".".join([*parents, leaf.removeprefix("hook_")])
                self.hook_points[module.name] = module

    def check(self, ids: torch.Tensor, what: str) -> torch.Tensor:
        if ids.dim() == 1:
            ids = ids[None]
        if ids.shape[1] == 0 or ids.shape[1] > self.config.n_ctx:
            raise ValueError(f"{what} has {ids.shape[1]} tokens; this model takes 1 to {self.config.n_ctx}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"{what} has a token id outside the vocabulary [0, {self.config.vocab_size})")
        return ids

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """source ids (B, S) -> memory (B, S, D): every source position has seen the whole source."""
        x = self.enc_embed(self.check(source, "the source"))                   # (B, S, D)
        for block in self.encoder:
            x = block(x)                                                        # (B, S, D)
        return self.hook_memory(self.enc_norm(x))                               # (B, S, D)

    def decode(self, target: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """target ids (B, T) so far, memory (B, S, D) -> logits (B, T, V) for each next target token."""
        x = self.dec_embed(self.check(target, "the target"))                    # (B, T, D)
        for block in self.decoder:
            x = block(x, memory)                                                # (B, T, D)
        return self.hook_logits(self.unembed(self.final_norm(x)))               # (B, T, V)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.decode(target, self.encode(source))

    @torch.no_grad()
    def greedy(self, source: torch.Tensor, bos_id: int, eos_id: int, max_new: int | None = None) -> list[list[int]]:
        """Greedy decoding: start from bos, append the most likely token until eos (not included).

        source (B, S) -> B lists of target ids. The encoder runs once; the decoder reruns on the
        growing target each step (no KV cache: these sequences are a few tokens long).
        """
        source = self.check(source, "the source")
        memory = self.encode(source)                                            # (B, S, D)
        target = torch.full((source.shape[0], 1), bos_id, dtype=torch.long)     # (B, 1)
        done = torch.zeros(source.shape[0], dtype=torch.bool)
        for _ in range(min(max_new or self.config.n_ctx, self.config.n_ctx)):  # decodes targets of 1..n_ctx
            nxt = self.decode(target, memory)[:, -1].argmax(-1)                 # (B,)
            nxt = torch.where(done, eos_id, nxt)
            target = torch.cat([target, nxt[:, None]], dim=1)                   # (B, T + 1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        out = []
        for row in target[:, 1:].tolist():
            out.append(row[:row.index(eos_id)] if eos_id in row else row)
        return out

    # The same hook machinery as the decoder-only model (hooks.py): attach for a `with` block.
    @contextlib.contextmanager
    def hooks(self, fns: Mapping[str, HookFn | Iterable[HookFn]]) -> Iterator[None]:
        """Attach functions to hook points (names or globs) for a `with` block, as DecoderLM.hooks does."""
        with attach(self.hook_points, fns):
            yield

    def run_with_trace(self, source: torch.Tensor, target: torch.Tensor,
                       names: Iterable[str] | str | None = None) -> tuple[torch.Tensor, Trace]:
        """forward(source, target), recording the tensors at hook points `names` (globs allowed)."""
        recorded: dict[str, torch.Tensor] = {}
        chosen = select_names(self.hook_points, names)
        with self.hooks({n: (lambda x, name: recorded.__setitem__(name, x.detach())) for n in chosen}):
            logits = self(source, target)
        return logits, Trace({n: recorded[n] for n in chosen if n in recorded})
