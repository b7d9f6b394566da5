"""The decoder-only language model: ids -> embeddings -> blocks -> final norm -> logits.

Every model family in glassformer (GPT-2, Llama, Qwen3, the course's) is this one class: the
config says which pieces go in (positions, norm, MLP, attention options), and `families`
says which values each family fixes. It owns the forward pass, input checks, the KV cache and
the hook machinery.

    >>> import torch
    >>> from glassformer.model import preset
    >>> model = DecoderLM(preset("tiny"))
    >>> logits, trace = model.run_with_trace(torch.tensor([[1, 2, 3]]))
    >>> logits.shape, trace["blocks.0.attn.pattern"].shape
    (torch.Size([1, 3, 65]), torch.Size([1, 4, 3, 3]))
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from glassformer.model.attention import Attention, KVCache
from glassformer.model.block import Block
from glassformer.model.config import ModelConfig
from glassformer.model.embedding import Embed, Unembed
from glassformer.model.families import FAMILIES
from glassformer.model.hooks import HOOK_NAMES, HookFn, HookPoint, Trace, attach, hook_names, select_names
from glassformer.model.mlp import make_mlp
from glassformer.model.moe import MoE
from glassformer.model.norm import make_norm
from glassformer.model.position import Rotary, alibi_bias, alibi_slopes, make_positions


# The most memory a trace may take unless the caller says otherwise.
TRACE_BUDGET_BYTES = 2**30


class DecoderLM(nn.Module):
    """ids -> embeddings (+ positions) -> n_layers blocks -> final norm -> logits, built from a config."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        FAMILIES[config.family].check(config)
        self.embed = Embed(config.vocab_size, config.d_model, make_positions(config.position, config.n_ctx,
                                                                             config.d_model))
        self.rotary = Rotary(config.head_dim, config.rope_theta) if config.position == "rope" else None
        if config.position == "alibi":
            self.register_buffer("alibi_slopes", alibi_slopes(config.n_heads), persistent=False)
        else:
            self.alibi_slopes = None
        self.blocks = nn.ModuleList(self.make_block(i) for i in range(config.n_layers))
        self.final_norm = make_norm(config.norm, config.d_model, config.norm_eps)
        self.unembed = Unembed(config.vocab_size, config.d_model)
        if config.tie_embeddings:
            self.unembed.weight = self.embed.tok.weight
        self.hook_final_norm = HookPoint()
        self.hook_logits = HookPoint()
        self.init_weights()
        self.hook_points: dict[str, HookPoint] = self._name_hook_points()

    def make_block(self, i: int) -> Block:
        c = self.config
        has_mlp = c.mlp != "none"                                              # "none": attention-only blocks
        return Block(
            make_norm(c.norm, c.d_model, c.norm_eps),
            Attention(c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, qkv_bias=c.attn_bias, out_bias=c.attn_out_bias,
                      qk_norm_eps=c.norm_eps if c.qk_norm else None, dropout=c.attn_dropout),
            make_norm(c.norm, c.d_model, c.norm_eps) if has_mlp else None,
            self.make_mlp() if has_mlp else None,
            pre_norm=c.pre_norm, dropout=c.dropout,
        )

    def make_mlp(self) -> nn.Module:
        """The dense MLP, or with n_experts > 0 a mixture of experts of the same kind (moe.py)."""
        c = self.config
        if c.n_experts:
            return MoE(c.mlp, c.d_model, c.d_expert, c.n_experts, c.experts_per_token, c.mlp_bias, c.moe_renormalize)
        return make_mlp(c.mlp, c.d_model, c.d_mlp, c.mlp_bias)

    def init_weights(self) -> None:
        """GPT-2's scheme: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2L)."""
        for name, p in self.named_parameters():
            if p.dim() >= 2 and "positions" not in name:  # 3-D: a MoE's experts, stacked (E, in, out)
                residual_out = ("attn.out.weight", "mlp.down.weight", "experts.down.weight")
                std = 0.02 / math.sqrt(2 * self.config.n_layers) if name.endswith(residual_out) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    # --- hooks -------------------------------------------------------------------------
    def _name_hook_points(self) -> dict[str, HookPoint]:
        points: dict[str, HookPoint] = {}
        for path, module in self.named_modules():
            if isinstance(module, HookPoint):
                *parents, leaf = path.split(".")
                module.name = ".".join([*parents, leaf.removeprefix("hook_")])
                points[module.name] = module
        expected = hook_names(self.config.n_layers, has_pos_embed=self.embed.positions is not None,
                              has_mlp=self.config.mlp != "none", moe=self.config.n_experts > 0)
        assert set(points) == set(expected), "hook points out of sync with HOOK_NAMES"
        return {name: points[name] for name in expected}  # forward order

    @contextlib.contextmanager
    def hooks(self, fns: Mapping[str, HookFn | Iterable[HookFn]]) -> Iterator[None]:
        """Attach functions to hook points (names or globs) for the duration of a `with` block.

        A function gets (tensor, name) and returns a replacement tensor or None:

            def ablate_head_2(z, name):
                z = z.clone(); z[:, 2] = 0; return z
            with model.hooks({"blocks.0.attn.z": ablate_head_2}):
                logits = model(ids)
        """
        with attach(self.hook_points, fns):  # this thread's attachments only
            yield

    def trace_bytes(self, names: Iterable[str] | str | None, n_tokens: int, batch: int = 1,
                    n_keys: int | None = None) -> int:
        """Memory that run_with_trace would use to record `names` for n_tokens new positions
        attending to n_keys positions (default n_tokens; more when a KV cache holds a prefix).

        The attention scores and patterns are (B, H, T, T): they grow with the square of the
        length, and for a big model and a long text they alone can exceed the machine's memory.
        """
        c = self.config
        sizes = {"B": batch, "T": n_tokens, "S": n_keys or n_tokens, "D": c.d_model, "H": c.n_heads, "Hkv": c.n_kv_heads,
                 "Dh": c.head_dim, "F": c.d_mlp, "V": c.vocab_size, "E": c.n_experts, "K": c.experts_per_token}
        shapes = {name.replace("{i}", "*"): shape for name, shape, _ in HOOK_NAMES}
        element = next(self.parameters()).element_size()
        total = 0
        for name in select_names(self.hook_points, names):
            generic = "blocks.*." + name.split(".", 2)[2] if name.startswith("blocks.") else name
            total += math.prod(sizes[d] for d in shapes[generic].strip("[]").split(", ")) * element
        return total

    def max_trace_tokens(self, names: Iterable[str] | str | None = None, budget: int | None = None) -> int:
        """The longest input (<= n_ctx) whose trace of `names` fits in `budget` bytes (default TRACE_BUDGET_BYTES)."""
        budget = TRACE_BUDGET_BYTES if budget is None else budget
        low, high = 1, self.config.n_ctx
        while low < high:  # trace_bytes grows with the length: binary search
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self.trace_bytes(names, mid) <= budget else (low, mid - 1)
        return low

    def run_with_trace(self, ids: torch.Tensor, names: Iterable[str] | str | None = None,
                       cache: KVCache | None = None, budget: int | None = None) -> tuple[torch.Tensor, Trace]:
        """Run forward and record the tensors at hook points `names` (all when None; globs allowed).

        Returns (logits, trace); trace["blocks.0.attn.pattern"] is (B, H, T, S).
        Recording never changes the logits (tests/test_hooks.py checks it). A trace that would
        take more than `budget` bytes (1 GiB by default) is refused before anything runs:
        trace fewer tokens (max_trace_tokens says how many fit) or fewer names.
        """
        budget = TRACE_BUDGET_BYTES if budget is None else budget
        chosen = select_names(self.hook_points, names)
        start = cache.length if cache is not None else 0
        B, T = self.check_ids(ids, start).shape
        need = self.trace_bytes(chosen, T, B, n_keys=start + T)
        if need > budget:
            raise ValueError(f"tracing {T} tokens would record {need / 2**30:.1f} GiB (budget {budget / 2**30:.1f} "
                             f"GiB); trace at most {self.max_trace_tokens(chosen, budget)} tokens, or fewer hook names")
        recorded: dict[str, torch.Tensor] = {}

        def record(x: torch.Tensor, name: str) -> None:
            recorded[name] = x.detach()

        with self.hooks({name: record for name in chosen}):
            logits = self(ids, cache=cache)
        return logits, Trace({n: recorded[n] for n in chosen if n in recorded})

    def set_attention(self, impl: str) -> None:
        """'eager' forces the step-by-step reference path everywhere; 'auto' lets untraced layers use the fused kernel."""
        if impl not in ("eager", "auto"):
            raise ValueError(f"attention implementation must be 'eager' or 'auto', got {impl!r}")
        for block in self.blocks:
            block.attn.force_eager = impl == "eager"

    # --- forward -----------------------------------------------------------------------
    def check_ids(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"ids must be a torch.Tensor of token ids, got {type(ids).__name__}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"ids must be an integer tensor (torch.long), got {ids.dtype}")
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, T) or (T,), got {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError("empty input: ids has no tokens (T = 0)")
        if not torch.compiler.is_compiling():  # reading values out would split a compiled graph
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.config.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size})")
        if self.config.position == "learned" and start + ids.shape[1] > self.config.n_ctx:
            raise ValueError(f"sequence of {start + ids.shape[1]} positions is longer than the model's "
                             f"context of {self.config.n_ctx} (learned positions stop there); "
                             f"truncate the input to its last {self.config.n_ctx - start} tokens")
        return ids

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """ids (B, T) or (T,) -> logits (B, T, V). With a cache, ids continue the cached positions.

        last_only=True computes logits for the last position only, (B, 1, V): generation
        needs nothing else, and the unembedding is the largest single matrix multiply.
        """
        start = cache.length if cache is not None else 0
        ids = self.check_ids(ids, start)
        T = ids.shape[1]
        x = self.embed(ids, start)                                            # (B, T, D)
        rope = self.rotary.cos_sin(start, T, x.dtype) if self.rotary is not None else None
        alibi = alibi_bias(self.alibi_slopes, start, T, start + T) if self.alibi_slopes is not None else None
        for i, block in enumerate(self.blocks):
            x = block(x, start=start, rope=rope, alibi=alibi, cache=cache, layer=i)
        if cache is not None:
            cache.advance(T)
        if last_only:
            x = x[:, -1:]                                                     # (B, 1, D)
        x = self.hook_final_norm(self.final_norm(x))                          # (B, T, D)
        return self.hook_logits(self.unembed(x))                              # (B, T, V)

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> KVCache:
        """An empty KV cache for up to max_len positions (default: the model's context)."""
        cfg = self.config
        p = next(self.parameters())
        return KVCache(cfg.n_layers, batch, cfg.n_kv_heads, max_len or cfg.n_ctx, cfg.head_dim,
                       dtype=p.dtype, device=p.device)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.embed.tok.weight.numel()
        return n



def build_model(config: ModelConfig) -> DecoderLM:
    """A model with freshly initialized weights for `config`."""
    return DecoderLM(config)
