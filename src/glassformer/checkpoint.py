"""Saving and loading glassformer's own models and training state, in safetensors only.

A model folder (what `glassformer train` writes and `--model PATH` reads):

    config.json        {"glassformer": 1, "model": <ModelConfig fields>}
    model.safetensors  the weights, under glassformer's own parameter names
    tokenizer.json     the tokenizer (character or byte-level BPE)
    card.json          how the model was made: recipe, data checksum, steps, losses
    checkpoint.safetensors   training state for --resume (weights, optimizer moments by parameter
                             name, RNG states, the recipe and the corpus checksum)

Every file is written to a temporary name, flushed to the disk (fsync), and then renamed over
the old one, so a crash or a power cut mid-write leaves the previous complete file in place,
never half a file or an empty one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from glassformer.model import DecoderLM, ModelConfig, build_model

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """Weights or training state that cannot be used: unreadable, the wrong shapes, or (for
    --resume) made by another recipe or corpus. The message says what differs."""


def _fsync(path: str | Path, directory: bool = False) -> None:
    if directory and not hasattr(os, "O_DIRECTORY"):  # Windows: folders cannot be opened, nor need to be
        return
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync it, rename it to path, fsync the folder.

    The rename is atomic on POSIX filesystems; the two fsyncs make it durable: without the
    first, a power cut can leave the new name pointing at a file whose bytes never reached
    the disk (an empty checkpoint); without the second, the rename itself may be lost.

    A write that fails for a reason the user can fix (a full disk, a folder without permission) is
    an OSError naming the folder and the cause, whether Python or safetensors (whose SafetensorError
    is no OSError) met it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(f"cannot write {path.name} into {path.parent}: {exc.strerror or exc}") from exc
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    except (OSError, SafetensorError) as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise OSError(f"cannot write {path.name} into {path.parent}: {cause}") from exc
    except BaseException:  # Ctrl-C, a bug: no half-written file left behind either
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def weights_of(model: DecoderLM) -> dict[str, torch.Tensor]:
    """The state dict without the tied unembedding (safetensors stores each tensor once)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("unembed.weight")
    return state


def load_weights(model: DecoderLM, tensors: dict[str, torch.Tensor], source: str) -> None:
    if model.config.tie_embeddings and "embed.tok.weight" in tensors:
        tensors = {**tensors, "unembed.weight": tensors["embed.tok.weight"]}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{source}: weights do not fit the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    model.load_state_dict(tensors)


def save_model_folder(model: DecoderLM, tokenizer, folder: str | Path, card: dict | None = None,
                      dtype: torch.dtype | None = None) -> None:
    """Write config.json, model.safetensors, tokenizer.json (and card.json) into folder."""
    folder = Path(folder)
    weights = weights_of(model)
    if dtype is not None:
        weights = {k: v.to(dtype) for k, v in weights.items()}
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(weights, tmp))
    atomic_write_text(folder / "config.json",
                      json.dumps({"glassformer": FORMAT_VERSION, "model": model.config.to_dict()}, indent=2))
    atomic_write_text(folder / "tokenizer.json", json.dumps(tokenizer.to_dict(), ensure_ascii=False))
    if card is not None:
        atomic_write_text(folder / "card.json", json.dumps(card, indent=2))


def is_model_folder(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "glassformer" in meta


def read_json(path: Path):
    """A JSON file's contents; a file that is not JSON (or not UTF-8) is an error naming it."""
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None


def load_tokenizer(path: Path):
    """The tokenizer in a model folder's tokenizer.json; an error names the file and the field."""
    from glassformer.tokenizers.bpe import BPETokenizer
    from glassformer.tokenizers.char import CharTokenizer

    data = read_json(path)
    if isinstance(data, dict) and "kind" not in data and "model" in data:  # a Hugging Face tokenizer.json
        from glassformer.tokenizers.pretrained import PretrainedTokenizer  # (a fine-tuned GPT-2 or Qwen3)

        tokenizer = PretrainedTokenizer(path)
        config = path.parent / "tokenizer_config.json"   # its end-of-turn token, when the folder has one
        eos = read_json(config).get("eos_token") if config.exists() else None
        eos = eos.get("content") if isinstance(eos, dict) else eos
        tokenizer.eos_id = tokenizer.hf.token_to_id(eos) if isinstance(eos, str) else None
        return tokenizer
    loaders = {"char": CharTokenizer.from_dict, "bpe": BPETokenizer.from_dict}
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in loaders:
        raise ValueError(f"{path}: field 'kind' must be one of {sorted(loaders)}, got {kind!r}")
    try:
        return loaders[kind](data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_model_folder(folder: str | Path, weights_file: str = "model.safetensors"):
    """(model, tokenizer, card) from a folder written by save_model_folder. Whatever is wrong with
    a file the folder holds (a field missing, a value of the wrong type), the error names the file."""
    folder = Path(folder)
    if not is_model_folder(folder):
        raise ValueError(f"{folder} is not a glassformer model folder (no config.json with a 'glassformer' key)")
    config_file = folder / "config.json"
    meta = read_json(config_file)
    version = meta["glassformer"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{config_file}: field 'glassformer' must be the format number, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{folder} was written by a newer glassformer (format {version})")
    if not isinstance(meta.get("model"), dict):
        raise ValueError(f"{config_file}: field 'model' (the model's settings) is missing or not an object")
    try:
        model = build_model(ModelConfig.from_dict(meta["model"]))  # the family's own rules are checked too
    except ValueError as exc:
        raise ValueError(f"{config_file}: in field 'model': {exc}") from None
    path = folder / weights_file
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
    load_weights(model, {k: v.float() for k, v in tensors.items()}, str(path))
    model.eval()
    card_file = folder / "card.json"
    card = read_json(card_file) if card_file.exists() else {}
    return model, load_tokenizer(folder / "tokenizer.json"), card


# --- training state (--resume) ---------------------------------------------------------------

def save_training_state(path: Path, model: DecoderLM, optimizer, rng: dict[str, torch.Tensor],
                        meta: dict) -> None:
    """Weights, every optimizer state tensor under its parameter's name, RNG states, and `meta`
    (step, wall time, the recipe, the corpus checksum...: strings-to-JSON, checked on resume)."""
    names = {p: n for n, p in model.named_parameters()}
    tensors = {f"model.{k}": v for k, v in weights_of(model).items()}
    for name, state in optimizer.named_state(names):
        for key, value in state.items():  # AdamW: step, exp_avg, exp_avg_sq; Muon: momentum_buffer
            value = torch.as_tensor(value).detach()
            tensors[f"optim.{name}.{key}"] = value.clone().reshape(-1) if key == "step" else value.contiguous()
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={k: json.dumps(v) for k, v in meta.items()}))


def read_training_meta(path: Path) -> dict:
    """The checkpoint's metadata, without loading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            raw = f.metadata() or {}
        return {k: json.loads(v) for k, v in raw.items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None


def load_training_state(path: Path, model: DecoderLM, optimizer) -> dict[str, torch.Tensor]:
    """Put the checkpoint's weights and optimizer state into model and optimizer; return its RNG states.

    Optimizer state is matched by parameter name and optimizer kind, never by position, so a
    checkpoint made with another optimizer or model shape is refused, naming what differs."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    try:
        load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    except ValueError as exc:
        raise CheckpointError(f"cannot resume: {exc}") from None
    names = {p: n for n, p in model.named_parameters()}
    expected = dict(optimizer.named_state(names))
    saved = {k[len("optim."):].rsplit(".", 1)[0] for k in tensors if k.startswith("optim.")}
    if any(s.isdigit() for s in saved):  # optimizer state by position: written before version 0.2
        raise CheckpointError(f"cannot resume: {path} was written by an older glassformer (optimizer state "
                              "stored by position); start a new run")
    if saved - set(expected):
        raise CheckpointError(f"cannot resume: the checkpoint holds optimizer state for {sorted(saved - set(expected))[:3]}, "
                              f"which this run's optimizer does not have (another optimizer or model?)")
    for name, state in expected.items():
        prefix = f"optim.{name}."
        state.update({k[len(prefix):]: v.reshape(()).clone() if k.endswith(".step") else v.clone()
                      for k, v in tensors.items() if k.startswith(prefix)})
    return {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
