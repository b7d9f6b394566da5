"""What a model is made of: one small dataclass, plus presets looked up by exact name.

A ModelConfig says everything needed to build a model with random weights. Every field has
one meaning and, after construction, one value: the defaults that depend on other fields
(n_kv_heads, head_dim, d_mlp, attn_dropout) are resolved once, in __post_init__.
The `family` field names an entry of `families.FAMILIES` (which values the family fixes,
and how its Hugging Face checkpoints are laid out).

    >>> cfg = preset("gpt2")
    >>> cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.d_mlp
    (768, 12, 12, 64, 3072)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Literal, get_args

class BadSetting(ValueError):
    """A setting (a config field, a sampling knob, an address) with a value that cannot be used.

    `name` is the setting's name in the library (top_p); the command line, whose flags carry the
    same names, reports the flag instead (--top-p):

        >>> str(BadSetting("top_p", "must be in (0, 1], got nan")), BadSetting("top_p", "...").flag
        ('top_p must be in (0, 1], got nan', '--top-p')
    """

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name, self.problem = name, problem

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


Family = Literal["gpt2", "llama", "qwen3", "mixtral", "qwen3_moe", "course"]
Position = Literal["learned", "sinusoidal", "rope", "alibi", "none"]
Norm = Literal["layernorm", "rmsnorm"]
MLPKind = Literal["gelu", "gelu_tanh", "swiglu", "none"]  # "none": attention-only blocks (chapter 12's toy)

FAMILY_NAMES, POSITIONS, NORMS, MLPS = get_args(Family), get_args(Position), get_args(Norm), get_args(MLPKind)


class UnknownName(KeyError, ValueError):
    """A name (preset, hook point...) that is not in its table: a lookup miss, and a user error.
    The message is printed as is (a plain KeyError would print it quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

def check_field_types(config) -> None:
    """Refuse a dataclass field whose value is not of its declared kind (int, float, bool), naming it.

    A config.json written by hand can say "n_layers": "4", and a float for an integer field would
    only fail deep inside torch: both are stopped here, before any other check compares them.
    (An integer is a fine float; a bool is not a number here, though Python says it is.)"""
    kinds = {"int": (numbers.Integral, "an integer"), "float": (numbers.Real, "a number"),
             "bool": (bool, "true or false")}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        declared = f.type.removesuffix(" | None")
        if declared not in kinds or value is None:  # None: a derived field, or an optional one unset
            continue
        kind, said = kinds[declared]
        if not isinstance(value, kind) or (isinstance(value, bool) and f.type != "bool"):
            raise BadSetting(f.name, f"must be {said}, got {value!r}")


# Fields whose default is computed from other fields, and how.
DERIVED = {
    "n_kv_heads": lambda c: c.n_heads,            # plain multi-head attention
    "head_dim": lambda c: c.d_model // c.n_heads,
    "d_mlp": lambda c: 4 * c.d_model,
    "attn_dropout": lambda c: c.dropout,
    "d_expert": lambda c: c.d_mlp,              # MoE: each expert as wide as the dense MLP would be
}


@dataclass(frozen=True)
class ModelConfig:
    family: Family = "course"
    vocab_size: int = 65
    n_ctx: int = 256               # longest sequence the model accepts (learned positions need a bound)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = None         # default: n_heads (fewer: grouped-query attention; 1: multi-query)
    head_dim: int = None           # default: d_model // n_heads
    d_mlp: int = None              # default: 4 * d_model
    position: Position = "learned"
    rope_theta: float = 10_000.0
    norm: Norm = "layernorm"
    norm_eps: float = 1e-5
    pre_norm: bool = True          # False: the original 2017 post-norm block
    mlp: MLPKind = "gelu"
    attn_bias: bool = True         # bias on the q, k, v projections
    attn_out_bias: bool = True     # bias on the attention output projection
    mlp_bias: bool = True          # bias on the MLP projections
    qk_norm: bool = False          # Qwen3: RMSNorm on each head's q and k before RoPE
    tie_embeddings: bool = True    # unembedding matrix = embedding matrix (transposed)
    dropout: float = 0.0           # on the residual additions during training
    attn_dropout: float = None     # on the attention weights; default: dropout
    n_experts: int = 0             # > 0: every block's MLP is a mixture of this many experts (moe.py)
    experts_per_token: int = 2     # MoE: experts each token is routed to (top-k of the router's softmax)
    d_expert: int = None           # MoE: hidden width of one expert; default: d_mlp
    moe_renormalize: bool = True   # MoE: kept top-k probabilities divided by their sum (Mixtral) or not

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"invalid ModelConfig: {message}")

        def need(ok: bool, name: str, problem: str) -> None:  # a check of one field: named in the error
            if not ok:
                raise BadSetting(name, f"{problem}, got {getattr(self, name)!r}")

        check_field_types(self)
        for name, options in (("family", FAMILY_NAMES), ("position", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            need(getattr(self, name) in options, name, f"must be one of {options}")
        for name in ("vocab_size", "n_ctx", "d_model", "n_layers", "n_heads"):
            need(getattr(self, name) > 0, name, "must be positive")
        for name in ("n_kv_heads", "head_dim") + (("d_mlp",) if self.mlp != "none" else ()):
            need(getattr(self, name) is None or getattr(self, name) > 0, name, "must be positive")
        need(math.isfinite(self.rope_theta) and self.rope_theta > 0, "rope_theta", "must be a finite number > 0")
        need(math.isfinite(self.norm_eps) and self.norm_eps > 0, "norm_eps", "must be a finite number > 0")
        if self.head_dim is None:
            check(self.d_model % self.n_heads == 0,
                  f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim")
        for name, default in DERIVED.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default(self))  # frozen: set once, here
        check(self.n_heads % self.n_kv_heads == 0,
              f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads}")
        if self.position == "rope":
            check(self.head_dim % 2 == 0, f"RoPE needs an even head width, got {self.head_dim}")
        if self.position == "sinusoidal":
            check(self.d_model % 2 == 0, f"sinusoidal positions need an even d_model, got {self.d_model}")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(0.0 <= self.attn_dropout < 1.0, "attn_dropout", "must be in [0, 1)")
        need(self.n_experts >= 0, "n_experts", "must be >= 0 (0: a dense MLP)")
        if self.n_experts:
            need(self.mlp != "none", "mlp", "must name the experts' kind when n_experts > 0")
            need(1 <= self.experts_per_token <= self.n_experts, "experts_per_token",
                 f"must be between 1 and n_experts ({self.n_experts})")
            need(self.d_expert > 0, "d_expert", "must be positive")

    def replace(self, **changes) -> "ModelConfig":
        """A copy with `changes`; a derived field still at its default follows the fields it
        derives from (replace(d_model=256) also doubles a default d_mlp).

            >>> preset("tiny").replace(d_model=32).d_mlp
            128
        """
        for name, default in DERIVED.items():
            if name not in changes and getattr(self, name) == default(self):
                changes[name] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {unknown}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # GPT-2 small (124M): the shape of the original OpenAI checkpoint.
    "gpt2": ModelConfig(family="gpt2", vocab_size=50257, n_ctx=1024, d_model=768, n_layers=12,
                        n_heads=12, mlp="gelu_tanh", position="learned"),
    # Qwen3-0.6B: RoPE, RMSNorm, SwiGLU, 16 query heads sharing 8 key/value heads, q/k norm.
    "qwen3-0.6b": ModelConfig(family="qwen3", vocab_size=151936, n_ctx=40960, d_model=1024,
                              n_layers=28, n_heads=16, n_kv_heads=8, head_dim=128, d_mlp=3072,
                              position="rope", rope_theta=1_000_000.0, norm="rmsnorm",
                              norm_eps=1e-6, mlp="swiglu", attn_bias=False, attn_out_bias=False, mlp_bias=False,
                              qk_norm=True, tie_embeddings=True),
    # The course model: a character-level GPT sized for 10 minutes on a 2-core CPU (0.8M parameters):
    # RoPE, RMSNorm, SwiGLU, context 256, residual dropout 0.1. d=128 rather than 192: in the same
    # 10-minute budget it takes 1.7x more steps and ends lower, whole-split val 1.4318 vs 1.4504
    # (bf16, AVX-512 CPU), and in fp32 a 5-minute budget gave 1.4929 vs 1.5535. Earlier choices,
    # measured the same way: RoPE 1.4725 vs learned positions 1.4887; context 256 1.4669 vs 128 1.4725;
    # RMSNorm + SwiGLU at equal parameter count 1.4662; dropout on the attention weights as well cost
    # 41% of the training speed.
    "course": ModelConfig(family="course", vocab_size=65, n_ctx=256, d_model=128, n_layers=4,
                          n_heads=4, d_mlp=344, position="rope", norm="rmsnorm", mlp="swiglu",
                          dropout=0.1, attn_dropout=0.0),
    # A tiny model for tests and quick experiments.
    "tiny": ModelConfig(family="course", vocab_size=65, n_ctx=64, d_model=64, n_layers=2,
                        n_heads=4, position="learned"),
}


def preset(name: str, **overrides) -> ModelConfig:
    """The preset called exactly `name`, with optional field overrides."""
    if name not in PRESETS:
        raise UnknownName(f"no model preset named {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
