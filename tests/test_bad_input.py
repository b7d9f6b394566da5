"""Bad input gets a clear error that says what is wrong, never a crash deep inside torch."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from glassformer.generate import generate
from glassformer.model import build_model, preset
from glassformer.pretrained import CheckpointError, load_pretrained
from hf_models import save_gpt2, save_qwen3


@pytest.fixture(scope="module")
def model():
    return build_model(preset("tiny")).eval()


def test_empty_input(model):
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty prompt"):
        generate(model, [], 5)


@pytest.mark.parametrize("bad_id", [65, 1000, -1])
def test_token_ids_outside_the_vocabulary(model, bad_id):
    with pytest.raises(ValueError, match=f"token id {bad_id} is outside the vocabulary"):
        model(torch.tensor([[1, bad_id, 2]]))


def test_float_ids_are_refused(model):
    with pytest.raises(TypeError, match="integer"):
        model(torch.tensor([[1.0, 2.0]]))


def test_prompt_longer_than_the_context(model):
    with pytest.raises(ValueError, match="longer than the model's context of 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds the model's context of 64.*truncate=True"):
        generate(model, [1] * 60, 10)


def test_truncate_slides_the_window_when_asked(model):
    prompt = list(range(1, 61)) * 2                       # 120 tokens, context 64
    out = generate(model, prompt, 100, temperature=0, truncate=True)
    assert len(out) == 120 + 100 and out[:120].tolist() == prompt
    # The model saw only the prompt's last n_ctx/2 = 32 tokens:
    from_end = generate(model, prompt[-32:], 100, temperature=0, truncate=True)
    assert out[120:].tolist() == from_end[32:].tolist()
    # With few new tokens, it keeps as much as fits: 64 - 10 = 54.
    short = generate(model, prompt, 10, temperature=0, truncate=True)
    assert short[120:].tolist() == generate(model, prompt[-54:], 10, temperature=0)[54:].tolist()


def test_missing_tensor_names_the_key(tmp_path):
    save_gpt2(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["transformer.h.1.mlp.c_fc.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensor 'h\.1\.mlp\.c_fc\.weight'"):
        load_pretrained(tmp_path)


def test_wrong_shape_names_the_key(tmp_path):
    save_qwen3(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["model.layers.0.mlp.up_proj.weight"] = torch.zeros(5, 5)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.0\.mlp\.up_proj\.weight.*\(5, 5\)"):
        load_pretrained(tmp_path)


def test_unexpected_extra_tensor_is_reported(tmp_path):
    save_qwen3(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["model.layers.9.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="does not use.*model.layers.9.extra.weight"):
        load_pretrained(tmp_path)


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


def test_pickle_disguised_as_safetensors_is_refused_and_never_run(tmp_path, monkeypatch):
    save_gpt2(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_pretrained(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_pickle_only_folder_is_refused_with_the_reason(tmp_path):
    save_gpt2(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="never loads pickle files"):
        load_pretrained(tmp_path)


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="model_type 'bert' is not supported"):
        load_pretrained(tmp_path)


def test_offline_hub_id_fails_at_once_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        load_pretrained("gpt2")


def test_bad_config_values():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        preset("tiny", n_kv_heads=3)
    with pytest.raises(KeyError, match="no model preset named 'GPT2'"):
        preset("GPT2")
