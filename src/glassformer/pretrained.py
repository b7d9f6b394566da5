"""Hugging Face checkpoints -> glassformer models.

    model, tokenizer = load_pretrained("gpt2")            # hub id (downloads when online)
    model, tokenizer = load_pretrained("/path/to/folder") # config.json + *.safetensors + tokenizer.json

Each family has a declarative key map (in `model.families`): for every tensor of our model,
the checkpoint tensor(s) it comes from and the transform applied (copy, transpose,
concatenate). The loader checks that every key is present, that every shape matches, and that no checkpoint
tensor is left over; each error names the offending key.

Weights are read only from safetensors files: a pickle file (.bin, .pt) can run arbitrary
code when loaded, so glassformer refuses them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from glassformer.checkpoint import CheckpointError
from glassformer.model import FAMILIES, DecoderLM, ModelConfig, build_model
from glassformer.model.families import UnsupportedCheckpoint, family_for_hf
from glassformer.tokenizers.pretrained import PretrainedTokenizer


def config_from_hf(hf: dict) -> ModelConfig:
    """Translate a Hugging Face config.json (as a dict) into a ModelConfig, by its model_type."""
    try:
        return family_for_hf(hf.get("model_type")).from_hf(hf)
    except UnsupportedCheckpoint as exc:
        raise CheckpointError(str(exc)) from None


# Checkpoint entries that are not weights (old GPT-2 files store the causal mask as a
# buffer) or duplicates of a tied weight. Anything else left over is an error.
IGNORED = [re.compile(r"(^|\.)attn\.(masked_)?bias$"), re.compile(r"^lm_head\.weight$")]


def convert_state_dict(tensors: dict[str, torch.Tensor], cfg: ModelConfig, model: DecoderLM) -> dict[str, torch.Tensor]:
    """Apply the family's key map; check presence, shapes and leftovers."""
    family = FAMILIES[cfg.family]
    if family.hf_rules is None:
        raise CheckpointError(f"the {cfg.family} family has no Hugging Face checkpoint layout")
    if family.hf_prefix:  # e.g. GPT2LMHeadModel saves "transformer.h.0...", the original files "h.0..."
        tensors = {k.removeprefix(family.hf_prefix): v for k, v in tensors.items()}
    rules = family.hf_rules(cfg)
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
        if rule.transform.startswith("concat"):
            value = torch.cat(parts, dim=0)
        elif rule.transform.startswith("stack"):  # one tensor per expert -> (E, out, in)
            value = torch.stack(parts)
        else:
            value = parts[0]
        if rule.transform.endswith("transpose"):
            value = value.transpose(-2, -1)
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
