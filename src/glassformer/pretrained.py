"""Hugging Face checkpoints -> glassformer models.

    model, tokenizer = load_pretrained("gpt2")            # hub id (downloads when online)
    model, tokenizer = load_pretrained("/path/to/folder") # config.json + *.safetensors + tokenizer.json

Each family has a declarative key map: for every tensor of our model, the checkpoint
tensor(s) it comes from and the transform applied (copy, transpose, concatenate). The
loader checks that every key is present, that every shape matches, and that no checkpoint
tensor is left over; each error names the offending key.

Weights are read only from safetensors files: a pickle file (.bin, .pt) can run arbitrary
code when loaded, so glassformer refuses them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from glassformer.checkpoint import CheckpointError
from glassformer.model import DecoderLM, ModelConfig, build_model
from glassformer.tokenizers.pretrained import PretrainedTokenizer




# --- configs ----------------------------------------------------------------------------

def _rope_theta(hf: dict) -> float:
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ("default", None):
        raise CheckpointError(f"RoPE scaling type {rope_type!r} is not supported (only plain RoPE)")
    return float(params.get("rope_theta", hf.get("rope_theta", 10_000.0)))


def config_from_hf(hf: dict) -> ModelConfig:
    """Translate a Hugging Face config.json (as a dict) into a ModelConfig."""
    kind = hf.get("model_type")
    if kind == "gpt2":
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
            if hf.get(flag):
                raise CheckpointError(f"GPT-2 option {flag}=true is not supported")
        acts = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
        act = hf.get("activation_function", "gelu_new")
        if act not in acts:
            raise CheckpointError(f"GPT-2 activation {act!r} is not supported; expected one of {sorted(acts)}")
        return ModelConfig(
            family="gpt2", vocab_size=hf["vocab_size"], n_ctx=hf["n_positions"], d_model=hf["n_embd"],
            n_layers=hf["n_layer"], n_heads=hf["n_head"], d_mlp=hf.get("n_inner"), mlp=acts[act],
            position="learned", norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )
    if kind in ("qwen3", "llama", "qwen2"):
        if hf.get("use_sliding_window"):
            raise CheckpointError("sliding-window attention checkpoints are not supported")
        if hf.get("hidden_act", "silu") != "silu":
            raise CheckpointError(f"activation {hf['hidden_act']!r} is not supported (SwiGLU uses silu)")
        bias = bool(hf.get("attention_bias", kind == "qwen2"))
        return ModelConfig(
            family="qwen3" if kind == "qwen3" else "llama", vocab_size=hf["vocab_size"],
            n_ctx=hf.get("max_position_embeddings", 2048), d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
            n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            head_dim=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
            d_mlp=hf["intermediate_size"], position="rope", rope_theta=_rope_theta(hf), norm="rmsnorm",
            norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu", attn_bias=bias,
            attn_out_bias=bias and kind != "qwen2", mlp_bias=bool(hf.get("mlp_bias", False)),
            qk_norm=kind == "qwen3", tie_embeddings=hf.get("tie_word_embeddings", False),
        )
    raise CheckpointError(f"model_type {kind!r} is not supported; glassformer loads gpt2, qwen3, qwen2 and llama")


# --- key maps ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Our tensor `ours` is built from checkpoint tensors `theirs` by `transform`.

    transforms: "copy"; "transpose" (torch.nn.Linear stores (out, in), our Linear (in, out));
    "concat" (our fused qkv projection = q, k and v stacked along the output dimension);
    "concat_transpose" (both). GPT-2's Conv1D already stores (in, out).
    """
    ours: str
    theirs: tuple[str, ...]
    transform: str = "copy"


def gpt2_rules(cfg: ModelConfig) -> list[Rule]:
    rules = [Rule("embed.tok.weight", ("wte.weight",)), Rule("embed.positions.weight", ("wpe.weight",))]
    for i in range(cfg.n_layers):
        h = f"h.{i}"
        rules += [
            Rule(f"blocks.{i}.norm1.weight", (f"{h}.ln_1.weight",)),
            Rule(f"blocks.{i}.norm1.bias", (f"{h}.ln_1.bias",)),
            Rule(f"blocks.{i}.attn.qkv.weight", (f"{h}.attn.c_attn.weight",)),
            Rule(f"blocks.{i}.attn.qkv.bias", (f"{h}.attn.c_attn.bias",)),
            Rule(f"blocks.{i}.attn.out.weight", (f"{h}.attn.c_proj.weight",)),
            Rule(f"blocks.{i}.attn.out.bias", (f"{h}.attn.c_proj.bias",)),
            Rule(f"blocks.{i}.norm2.weight", (f"{h}.ln_2.weight",)),
            Rule(f"blocks.{i}.norm2.bias", (f"{h}.ln_2.bias",)),
            Rule(f"blocks.{i}.mlp.up.weight", (f"{h}.mlp.c_fc.weight",)),
            Rule(f"blocks.{i}.mlp.up.bias", (f"{h}.mlp.c_fc.bias",)),
            Rule(f"blocks.{i}.mlp.down.weight", (f"{h}.mlp.c_proj.weight",)),
            Rule(f"blocks.{i}.mlp.down.bias", (f"{h}.mlp.c_proj.bias",)),
        ]
    rules += [Rule("final_norm.weight", ("ln_f.weight",)), Rule("final_norm.bias", ("ln_f.bias",))]
    if not cfg.tie_embeddings:
        rules.append(Rule("unembed.weight", ("lm_head.weight",)))
    return rules


def llama_rules(cfg: ModelConfig) -> list[Rule]:
    """Qwen3, Qwen2 and Llama share this layout; Qwen3 adds q_norm/k_norm."""
    rules = [Rule("embed.tok.weight", ("model.embed_tokens.weight",))]
    for i in range(cfg.n_layers):
        a, m = f"model.layers.{i}.self_attn", f"model.layers.{i}.mlp"
        rules += [
            Rule(f"blocks.{i}.norm1.weight", (f"model.layers.{i}.input_layernorm.weight",)),
            Rule(f"blocks.{i}.attn.qkv.weight", (f"{a}.q_proj.weight", f"{a}.k_proj.weight", f"{a}.v_proj.weight"), "concat_transpose"),
            Rule(f"blocks.{i}.attn.out.weight", (f"{a}.o_proj.weight",), "transpose"),
            Rule(f"blocks.{i}.norm2.weight", (f"model.layers.{i}.post_attention_layernorm.weight",)),
            Rule(f"blocks.{i}.mlp.gate.weight", (f"{m}.gate_proj.weight",), "transpose"),
            Rule(f"blocks.{i}.mlp.up.weight", (f"{m}.up_proj.weight",), "transpose"),
            Rule(f"blocks.{i}.mlp.down.weight", (f"{m}.down_proj.weight",), "transpose"),
        ]
        if cfg.attn_bias:
            rules.append(Rule(f"blocks.{i}.attn.qkv.bias", (f"{a}.q_proj.bias", f"{a}.k_proj.bias", f"{a}.v_proj.bias"), "concat"))
        if cfg.attn_out_bias:
            rules.append(Rule(f"blocks.{i}.attn.out.bias", (f"{a}.o_proj.bias",)))
        if cfg.mlp_bias:
            rules += [Rule(f"blocks.{i}.mlp.{p}.bias", (f"{m}.{p}_proj.bias",)) for p in ("gate", "up", "down")]
        if cfg.qk_norm:
            rules += [Rule(f"blocks.{i}.attn.q_norm.weight", (f"{a}.q_norm.weight",)),
                      Rule(f"blocks.{i}.attn.k_norm.weight", (f"{a}.k_norm.weight",))]
    rules.append(Rule("final_norm.weight", ("model.norm.weight",)))
    if not cfg.tie_embeddings:
        rules.append(Rule("unembed.weight", ("lm_head.weight",)))
    return rules


# Checkpoint entries that are not weights (old GPT-2 files store the causal mask as a
# buffer) or duplicates of a tied weight. Anything else left over is an error.
IGNORED = [re.compile(r"(^|\.)attn\.(masked_)?bias$"), re.compile(r"^lm_head\.weight$")]


def _normalize_keys(tensors: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    if family == "gpt2":  # GPT2LMHeadModel saves "transformer.h.0...", the original files "h.0..."
        return {k.removeprefix("transformer."): v for k, v in tensors.items()}
    return tensors


def convert_state_dict(tensors: dict[str, torch.Tensor], cfg: ModelConfig, model: DecoderLM) -> dict[str, torch.Tensor]:
    """Apply the family's key map; check presence, shapes and leftovers."""
    tensors = _normalize_keys(tensors, cfg.family)
    rules = gpt2_rules(cfg) if cfg.family == "gpt2" else llama_rules(cfg)
    expected = model.state_dict()
    ours_needed = {k for k in expected if not (cfg.tie_embeddings and k == "unembed.weight")}
    assert {r.ours for r in rules} == ours_needed, "key map does not cover the model exactly"

    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for rule in rules:
        for key in rule.theirs:
            if key not in tensors:
                raise CheckpointError(f"checkpoint is missing tensor {key!r} (needed for {rule.ours})")
        parts = [tensors[k] for k in rule.theirs]
        value = torch.cat(parts, dim=0) if rule.transform.startswith("concat") else parts[0]
        if rule.transform.endswith("transpose"):
            value = value.t()
        if value.shape != expected[rule.ours].shape:
            src = rule.theirs[0] if len(rule.theirs) == 1 else "+".join(rule.theirs)
            shapes = ", ".join(str(tuple(p.shape)) for p in parts)
            raise CheckpointError(f"tensor {src!r} has shape {shapes}; {rule.ours} needs "
                                  f"{tuple(expected[rule.ours].shape)} after {rule.transform}")
        out[rule.ours] = value.contiguous()
        used.update(rule.theirs)
    leftover = sorted(k for k in tensors if k not in used and not any(p.search(k) for p in IGNORED))
    if leftover:
        raise CheckpointError(f"checkpoint has {len(leftover)} tensors this model does not use: {leftover[:5]}")
    return out


# --- files ------------------------------------------------------------------------------

def read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors files (one file, or shards listed in an index)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        hint = (f" It has {pickles}: glassformer never loads pickle files, which can run arbitrary code; "
                "convert them to safetensors with a tool you trust.") if pickles else ""
        raise CheckpointError(f"no *.safetensors weights in {folder}.{hint}")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{f} is not a valid safetensors file ({exc}); refusing to load it") from None
    return tensors


CHECKPOINT_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
                    "tokenizer.json", "tokenizer_config.json")


def resolve(path_or_id: str | os.PathLike, patterns: tuple[str, ...] = CHECKPOINT_FILES) -> Path:
    """A local folder as is; a hub id ("gpt2", "Qwen/Qwen3-0.6B") from the cache or the hub,
    fetching only the files matching `patterns`."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the folder holding config.json and the safetensors")
    repo_id = str(path_or_id)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
        raise CheckpointError(f"{repo_id!r} is neither a folder nor a Hugging Face hub id")
    from huggingface_hub import snapshot_download

    patterns = list(patterns)
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:  # the local cache first, so that a model downloaded once works offline
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass  # not cached yet: download below
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise CheckpointError(f"{repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, etag_timeout=5))
    except (OSError, HfHubHTTPError) as exc:  # no network, unknown repo, refused: anything else is a bug
        raise CheckpointError(
            f"could not download {repo_id!r} from the Hugging Face hub ({type(exc).__name__}). Are you offline? "
            f"Download it where there is a network (`hf download {repo_id}`) or pass a local folder."
        ) from None


def load_pretrained(path_or_id: str | os.PathLike, dtype: torch.dtype = torch.float32,
                    ) -> tuple[DecoderLM, PretrainedTokenizer | None]:
    """Load a GPT-2 / Qwen3 / Llama checkpoint into our classes; returns (model, tokenizer).

    The tokenizer is None when the folder has no tokenizer.json.
    """
    folder = resolve(path_or_id)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{folder} has no config.json")
    hf = json.loads(config_file.read_text())
    cfg = config_from_hf(hf)
    model = build_model(cfg)
    state = convert_state_dict(read_safetensors(folder), cfg, model)
    if cfg.tie_embeddings:
        state["unembed.weight"] = state["embed.tok.weight"]
    model.load_state_dict(state, strict=True)
    model.to(dtype).eval()

    eos = hf.get("eos_token_id")
    gen = folder / "generation_config.json"
    if gen.exists():
        eos = json.loads(gen.read_text()).get("eos_token_id", eos)
    if isinstance(eos, list):  # several end-of-sequence ids (Qwen3): generation stops at any of them
        eos = [int(i) for i in eos] or None
    tok_file = folder / "tokenizer.json"
    tokenizer = PretrainedTokenizer(tok_file, eos_id=eos) if tok_file.exists() else None
    model.source = str(path_or_id)
    return model, tokenizer
