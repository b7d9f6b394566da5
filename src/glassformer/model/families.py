"""Model families as data: what each fixes in the config, and how its Hugging Face checkpoints
are laid out. One decoder (`DecoderLM`) builds every family from its config.

A family entry has:
    fixed      config values every model of the family has (checked when a model is built);
    hf_types   the `model_type`s of Hugging Face config.json files it loads;
    from_hf    config.json (a dict) -> ModelConfig;
    hf_rules   ModelConfig -> key map: for each of our tensors, the checkpoint tensor(s) it comes
               from and the transform applied (see Rule).

Adding a family that only differs in values (Mistral without sliding windows, say) is one
entry here plus its name in `config.Family`. A family with a new component (GeGLU, embedding
scaling...) also adds that component to the module of its concept (mlp.py, embedding.py) and
the config field that selects it.

    >>> sorted(FAMILIES)
    ['course', 'gpt2', 'llama', 'mixtral', 'qwen3', 'qwen3_moe']
    >>> FAMILIES["gpt2"].fixed["position"]
    'learned'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from glassformer.model.config import ModelConfig


class UnsupportedCheckpoint(ValueError):
    """A Hugging Face config that uses something glassformer does not implement."""


@dataclass(frozen=True)
class Rule:
    """Our tensor `ours` is built from checkpoint tensors `theirs` by `transform`.

    transforms: "copy"; "transpose" (torch.nn.Linear stores (out, in), our Linear (in, out));
    "concat" (our fused qkv projection = q, k and v stacked along the output dimension);
    "concat_transpose" (both); "stack_transpose" (a mixture of experts' weights: one checkpoint
    tensor per expert, stacked into (E, in, out)). GPT-2's Conv1D already stores (in, out).
    """
    ours: str
    theirs: tuple[str, ...]
    transform: str = "copy"


@dataclass(frozen=True)
class FamilyEntry:
    name: str
    summary: str
    fixed: dict = field(default_factory=dict)
    hf_types: tuple[str, ...] = ()
    from_hf: Callable[[dict], ModelConfig] | None = None
    hf_rules: Callable[[ModelConfig], list[Rule]] | None = None
    hf_prefix: str = ""            # a prefix some checkpoints put before every key ("transformer.")

    def check(self, config: ModelConfig) -> None:
        wrong = {k: getattr(config, k) for k, v in self.fixed.items()
                 if getattr(config, k) != v and not (isinstance(v, tuple) and getattr(config, k) in v)}
        if wrong:
            raise ValueError(f"the {self.name} family has {self.fixed}; this config has {wrong}")


# --- GPT-2 ------------------------------------------------------------------------------------

def gpt2_from_hf(hf: dict) -> ModelConfig:
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if hf.get(flag):
            raise UnsupportedCheckpoint(f"GPT-2 option {flag}=true is not supported")
    acts = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
    act = hf.get("activation_function", "gelu_new")
    if act not in acts:
        raise UnsupportedCheckpoint(f"GPT-2 activation {act!r} is not supported; expected one of {sorted(acts)}")
    return ModelConfig(family="gpt2", vocab_size=hf["vocab_size"], n_ctx=hf["n_positions"], d_model=hf["n_embd"],
                       n_layers=hf["n_layer"], n_heads=hf["n_head"], d_mlp=hf.get("n_inner"), mlp=acts[act],
                       position="learned", norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                       tie_embeddings=hf.get("tie_word_embeddings", True))


def gpt2_rules(cfg: ModelConfig) -> list[Rule]:
    rules = [Rule("embed.tok.weight", ("wte.weight",)), Rule("embed.positions.weight", ("wpe.weight",))]
    for i in range(cfg.n_layers):
        h = f"h.{i}"
        pairs = [("norm1", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.out", "attn.c_proj"), ("norm2", "ln_2"),
                 ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")]
        rules += [Rule(f"blocks.{i}.{ours}.{p}", (f"{h}.{theirs}.{p}",)) for ours, theirs in pairs
                  for p in ("weight", "bias")]
    rules += [Rule("final_norm.weight", ("ln_f.weight",)), Rule("final_norm.bias", ("ln_f.bias",))]
    if not cfg.tie_embeddings:
        rules.append(Rule("unembed.weight", ("lm_head.weight",)))
    return rules


# --- Llama, Qwen2, Qwen3 ----------------------------------------------------------------------

def _rope_theta(hf: dict) -> float:
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ("default", None):
        raise UnsupportedCheckpoint(f"RoPE scaling type {rope_type!r} is not supported (only plain RoPE)")
    return float(params.get("rope_theta", hf.get("rope_theta", 10_000.0)))


def llama_from_hf(hf: dict) -> ModelConfig:
    kind = hf.get("model_type")
    if hf.get("use_sliding_window"):
        raise UnsupportedCheckpoint("sliding-window attention checkpoints are not supported")
    if hf.get("hidden_act", "silu") != "silu":
        raise UnsupportedCheckpoint(f"activation {hf['hidden_act']!r} is not supported (SwiGLU uses silu)")
    bias = bool(hf.get("attention_bias", kind == "qwen2"))
    return ModelConfig(
        family=family_for_hf(kind).name, vocab_size=hf["vocab_size"],
        n_ctx=hf.get("max_position_embeddings", 2048), d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        head_dim=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
        d_mlp=hf["intermediate_size"], position="rope", rope_theta=_rope_theta(hf), norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu", attn_bias=bias,
        attn_out_bias=bias and kind != "qwen2", mlp_bias=bool(hf.get("mlp_bias", False)),
        qk_norm=kind in ("qwen3", "qwen3_moe"), tie_embeddings=hf.get("tie_word_embeddings", False),
    )


def llama_rules(cfg: ModelConfig) -> list[Rule]:
    """Llama, Qwen2 and Qwen3 share this layout; Qwen3 adds q_norm/k_norm."""
    rules = [Rule("embed.tok.weight", ("model.embed_tokens.weight",))]
    for i in range(cfg.n_layers):
        L, a, m = f"model.layers.{i}", f"model.layers.{i}.self_attn", f"model.layers.{i}.mlp"
        qkv = lambda p: (f"{a}.q_proj.{p}", f"{a}.k_proj.{p}", f"{a}.v_proj.{p}")  # noqa: E731
        rules += [
            Rule(f"blocks.{i}.norm1.weight", (f"{L}.input_layernorm.weight",)),
            Rule(f"blocks.{i}.attn.qkv.weight", qkv("weight"), "concat_transpose"),
            Rule(f"blocks.{i}.attn.out.weight", (f"{a}.o_proj.weight",), "transpose"),
            Rule(f"blocks.{i}.norm2.weight", (f"{L}.post_attention_layernorm.weight",)),
            *[Rule(f"blocks.{i}.mlp.{p}.weight", (f"{m}.{p}_proj.weight",), "transpose") for p in ("gate", "up", "down")],
        ]
        if cfg.attn_bias:
            rules.append(Rule(f"blocks.{i}.attn.qkv.bias", qkv("bias"), "concat"))
        if cfg.attn_out_bias:
            rules.append(Rule(f"blocks.{i}.attn.out.bias", (f"{a}.o_proj.bias",)))
        if cfg.mlp_bias:
            rules += [Rule(f"blocks.{i}.mlp.{p}.bias", (f"{m}.{p}_proj.bias",)) for p in ("gate", "up", "down")]
        if cfg.qk_norm:
            rules += [Rule(f"blocks.{i}.attn.{n}.weight", (f"{a}.{n}.weight",)) for n in ("q_norm", "k_norm")]
    rules.append(Rule("final_norm.weight", ("model.norm.weight",)))
    if not cfg.tie_embeddings:
        rules.append(Rule("unembed.weight", ("lm_head.weight",)))
    return rules


# --- Mixtral, Qwen3-MoE: Llama / Qwen3 with a mixture of experts in every block ----------------

def moe_from_hf(hf: dict) -> ModelConfig:
    """Mixtral renormalizes the kept top-k probabilities; Qwen3-MoE does when norm_topk_prob is true."""
    kind, layers = hf.get("model_type"), hf["num_hidden_layers"]
    if kind == "mixtral":
        if hf.get("sliding_window") is not None:
            raise UnsupportedCheckpoint("Mixtral with sliding-window attention is not supported")
        n, width, renormalize = hf["num_local_experts"], hf["intermediate_size"], True
    else:
        n = hf.get("num_experts") or hf.get("num_local_experts") or 0
        width, renormalize = hf["moe_intermediate_size"], bool(hf.get("norm_topk_prob", False))
        dense = [i for i in range(layers) if i in (hf.get("mlp_only_layers") or [])
                 or (i + 1) % (hf.get("decoder_sparse_step") or 1) != 0]
        if n == 0 or dense:
            raise UnsupportedCheckpoint(
                f"this Qwen3-MoE checkpoint has dense MLPs in layers {dense or list(range(layers))} "
                "(mlp_only_layers / decoder_sparse_step / num_experts=0); "
                "glassformer's MoE models have experts in every layer")
    return llama_from_hf(hf).replace(n_experts=n, experts_per_token=hf["num_experts_per_tok"], d_expert=width,
                                     moe_renormalize=renormalize)


MOE_LAYOUT = {  # family -> (the block's MoE module, expert weight names for our gate, up, down)
    "mixtral": ("block_sparse_moe", ("w1", "w3", "w2")),
    "qwen3_moe": ("mlp", ("gate_proj", "up_proj", "down_proj")),
}


def moe_rules(cfg: ModelConfig) -> list[Rule]:
    """Llama's attention and norms; each block's dense MLP rules replaced by a router and the experts."""
    module, expert_names = MOE_LAYOUT[cfg.family]
    rules = [r for r in llama_rules(cfg) if ".mlp." not in r.ours]
    for i in range(cfg.n_layers):
        m = f"model.layers.{i}.{module}"
        rules.append(Rule(f"blocks.{i}.mlp.router.weight", (f"{m}.gate.weight",), "transpose"))
        for ours, theirs in zip(("gate", "up", "down"), expert_names):
            per_expert = tuple(f"{m}.experts.{j}.{theirs}.weight" for j in range(cfg.n_experts))
            rules.append(Rule(f"blocks.{i}.mlp.experts.{ours}.weight", per_expert, "stack_transpose"))
    return rules


LLAMA_LIKE = dict(position="rope", norm="rmsnorm", pre_norm=True, mlp="swiglu")

FAMILIES: dict[str, FamilyEntry] = {e.name: e for e in [
    FamilyEntry("gpt2", "GPT-2 (Radford et al. 2019): learned positions, pre-norm LayerNorm, GELU MLP, biases",
                fixed=dict(position="learned", norm="layernorm", pre_norm=True, qk_norm=False,
                           mlp=("gelu", "gelu_tanh")),
                hf_types=("gpt2",), from_hf=gpt2_from_hf, hf_rules=gpt2_rules, hf_prefix="transformer."),
    FamilyEntry("llama", "Llama (Touvron et al. 2023): RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases",
                fixed=dict(LLAMA_LIKE, qk_norm=False), hf_types=("llama", "qwen2"), from_hf=llama_from_hf,
                hf_rules=llama_rules),
    FamilyEntry("qwen3", "Qwen3 (2025): Llama's layout plus an RMSNorm on every head's queries and keys",
                fixed=dict(LLAMA_LIKE, qk_norm=True), hf_types=("qwen3",), from_hf=llama_from_hf,
                hf_rules=llama_rules),
    FamilyEntry("mixtral", "Mixtral (Jiang et al. 2024): Llama's layout with 8 SwiGLU experts per block, 2 per token",
                fixed=dict(LLAMA_LIKE, qk_norm=False), hf_types=("mixtral",), from_hf=moe_from_hf,
                hf_rules=moe_rules),
    FamilyEntry("qwen3_moe", "Qwen3-MoE (2025): Qwen3's layout with many small experts per block",
                fixed=dict(LLAMA_LIKE, qk_norm=True), hf_types=("qwen3_moe",), from_hf=moe_from_hf,
                hf_rules=moe_rules),
    FamilyEntry("course", "the course's own: every piece swappable (positions, norm, pre/post-norm, MLP)"),
]}


def family_for_hf(model_type: str | None) -> FamilyEntry:
    for entry in FAMILIES.values():
        if model_type in entry.hf_types:
            return entry
    known = sorted(t for e in FAMILIES.values() for t in e.hf_types)
    raise UnsupportedCheckpoint(f"model_type {model_type!r} is not supported; glassformer loads {known}")
