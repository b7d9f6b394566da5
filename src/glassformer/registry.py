"""The models the lab and the course can use, by name.

    course        the shipped character-level GPT trained on TinyShakespeare (the default)
    induction     chapter 12's two-layer attention-only model, trained on random tokens with a repeated
                  segment (shipped; not offered in the picker: it knows no text, only its 64 symbols)
    moe, moe-dense, moe-no-balance
                  chapter 11's character-level mixture of experts (8 experts, 2 per token), its dense twin
                  (the same active parameters per token, the same training time) and the mixture trained
                  without the load-balancing loss (shipped; not offered in the picker)
    assistant/sft, assistant/sft-all-tokens, assistant/lora-r8, assistant/dpo
                  chapter 13's course model fine-tuned to answer instructions (shipped; chat format)
    runs/<name>   a model the learner trained with `glassformer train` (any folder works too)
    gpt2          OpenAI's GPT-2 small (124M), from the Hugging Face hub or its cache
    qwen3-0.6b    Qwen3-0.6B, from the Hugging Face hub or its cache

Every one of them is loaded into glassformer's own classes, so the same code, hooks and
pictures work on all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from glassformer.checkpoint import is_model_folder, load_model_folder

COURSE_MODEL_DIR = Path(__file__).parent / "assets" / "course"
DRAFT_MODEL_DIR = Path(__file__).parent / "assets" / "draft"   # chapter 10's speculative-decoding draft
INDUCTION_MODEL_DIR = Path(__file__).parent / "assets" / "induction"   # chapter 12's attention-only toy
ASSISTANT_DIR = Path(__file__).parent / "assets" / "assistant"         # chapter 13's fine-tuned course models
MOE_MODELS_DIR = Path(__file__).parent / "assets" / "moe"   # chapter 11's (scripts/ship_moe_models.py)
SHIPPED = {"course": COURSE_MODEL_DIR, "induction": INDUCTION_MODEL_DIR, "moe": MOE_MODELS_DIR / "moe",
           "moe-dense": MOE_MODELS_DIR / "dense", "moe-no-balance": MOE_MODELS_DIR / "moe_no_balance",
           **{f"assistant/{n}": ASSISTANT_DIR / n for n in ("sft", "sft-all-tokens", "lora-r8", "dpo")}}
HUB_MODELS = {"gpt2": "gpt2", "qwen3-0.6b": "Qwen/Qwen3-0.6B"}


@dataclass
class LoadedModel:
    name: str
    model: object          # a glassformer DecoderLM
    tokenizer: object      # CharTokenizer, BPETokenizer or PretrainedTokenizer
    card: dict = field(default_factory=dict)

    @property
    def is_char_level(self) -> bool:
        return getattr(self.tokenizer, "kind", None) == "char"


@dataclass
class ModelEntry:
    name: str
    description: str
    available: bool
    reason: str = ""


def learner_runs_dir() -> Path:
    """Where the course's own training runs go (chapter 9): runs/ in the learner's data folder
    ($GLASSFORMER_DATA, else the platform's user data folder, as the progress store uses)."""
    from platformdirs import user_data_dir

    return Path(os.environ.get("GLASSFORMER_DATA") or user_data_dir("glassformer")) / "runs"


def runs_dirs() -> list[Path]:
    """Where learner-trained models are looked for: ./runs, $GLASSFORMER_RUNS and learner_runs_dir()."""
    dirs = [Path("runs")]
    if os.environ.get("GLASSFORMER_RUNS"):
        dirs.insert(0, Path(os.environ["GLASSFORMER_RUNS"]))
    dirs.append(learner_runs_dir())
    return dirs


def trained_runs() -> list[Path]:
    found = []
    for d in runs_dirs():
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.is_dir() and (p / "model.safetensors").exists()
                            and is_model_folder(p))
    return found


def hub_cached(repo_id: str, filename: str = "config.json") -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except (OSError, ValueError):  # unreadable cache folder, or an id the hub would refuse
        return False


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """Can this machine open a connection to the Hugging Face hub? (Checked once per process.)"""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@lru_cache(maxsize=2)
def hub_tokenizer(name: str = "gpt2"):
    """Only the tokenizer of a hub model: one file of a megabyte or two, not the weights."""
    from glassformer.pretrained import resolve
    from glassformer.tokenizers.pretrained import PretrainedTokenizer

    repo = HUB_MODELS[name]
    if not hub_cached(repo, "tokenizer.json") and not hub_reachable():  # fail at once, not after a timeout
        raise RuntimeError(f"{repo}'s tokenizer is not in the local Hugging Face cache "
                           "and the hub is unreachable (offline)")
    return PretrainedTokenizer(resolve(repo, patterns=("tokenizer.json",)) / "tokenizer.json")


def _fine_tuned(folder: Path) -> bool:
    """Does the folder's card say `glassformer finetune` made it?"""
    import json

    try:
        return json.loads((folder / "card.json").read_text()).get("kind") == "finetuned"
    except (OSError, ValueError, AttributeError):
        return False


def available_models() -> list[ModelEntry]:
    """Every model the picker can offer, with whether it can be loaded right now and why not."""
    entries = [ModelEntry("course", "character-level GPT trained on TinyShakespeare (shipped)",
                          (COURSE_MODEL_DIR / "model.safetensors").exists(),
                          "" if (COURSE_MODEL_DIR / "model.safetensors").exists() else "not built into this install")]
    for run in trained_runs():
        entries.append(ModelEntry(str(run), "fine-tuned by you with `glassformer finetune`" if _fine_tuned(run)
                                  else "trained by you with `glassformer train`", True))
    for name, repo in HUB_MODELS.items():
        if hub_cached(repo):
            entries.append(ModelEntry(name, f"{repo} from the Hugging Face cache", True))
        elif hub_reachable():
            entries.append(ModelEntry(name, f"{repo}, downloaded from the hub on first use", True))
        else:
            entries.append(ModelEntry(name, repo, False, "the Hugging Face hub is unreachable (offline) and "
                                      "the model is not in the local cache"))
    return entries


@lru_cache(maxsize=8)   # chapter 13 alone holds four (the course model and three assistants)
def load_model(name: str = "course") -> LoadedModel:
    """Load a model by name (see the module docstring) or by folder path; cached per process."""
    if name in SHIPPED:
        if not (SHIPPED[name] / "model.safetensors").exists():
            raise FileNotFoundError(f"the shipped {name} model is missing from {SHIPPED[name]}")
        model, tokenizer, card = load_model_folder(SHIPPED[name])
        return LoadedModel(name, model, tokenizer, card)
    if name in HUB_MODELS:
        from glassformer.pretrained import load_pretrained

        model, tokenizer = load_pretrained(HUB_MODELS[name])
        if tokenizer is None:
            raise ValueError(f"{name} has no tokenizer.json")
        return LoadedModel(name, model, tokenizer, {"source": HUB_MODELS[name]})
    path = Path(name).expanduser()
    if path.is_dir() and is_model_folder(path):
        model, tokenizer, card = load_model_folder(path)
        return LoadedModel(str(path), model, tokenizer, card)
    if path.is_dir():
        from glassformer.pretrained import load_pretrained

        model, tokenizer = load_pretrained(path)
        if tokenizer is None:
            raise ValueError(f"{path} has no tokenizer.json")
        return LoadedModel(str(path), model, tokenizer, {"source": str(path)})
    raise ValueError(f"unknown model {name!r}: use 'course', 'induction', 'gpt2', 'qwen3-0.6b', or a model folder")
