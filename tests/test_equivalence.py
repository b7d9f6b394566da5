"""glassformer vs Hugging Face `transformers` on random tiny checkpoints (offline).

Tolerance (fp32, two-sided): max |ours - theirs| <= 1e-4 for logits and every hidden state.
"""

from __future__ import annotations

import pytest
import torch

from glassformer.generate import generate
from glassformer.pretrained import load_pretrained
from hf_models import save_gpt2, save_qwen3

ATOL = 1e-4

GPT2_SHAPES = {
    "odd-heads-tied": dict(n_layer=2, n_head=3, n_embd=48, activation="gelu_new", tie=True),
    "one-head-untied": dict(n_layer=3, n_head=1, n_embd=32, activation="gelu_new", tie=False),
    "five-heads-exact-gelu": dict(n_layer=2, n_head=5, n_embd=40, activation="gelu", tie=True),
}
QWEN3_SHAPES = {
    "mha-ratio1-untied": dict(heads=4, kv_heads=4, hidden=64, tie=False),
    "gqa-ratio2-tied": dict(heads=4, kv_heads=2, hidden=64, tie=True),
    "gqa-ratio4-wide-heads": dict(heads=8, kv_heads=2, hidden=64, head_dim=16, tie=False),
    "mqa-odd-heads": dict(heads=3, kv_heads=1, hidden=48, tie=True, rope_theta=1e6),
}


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    diff = (ours - theirs).abs()
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    assert diff.max().item() <= ATOL, f"{what}: max abs diff {diff.max():.3g}, mean {diff.mean():.3g}"


def compare(hf_model, folder, vocab_size: int) -> None:
    ours, _ = load_pretrained(folder)
    L = ours.config.n_layers
    ids = torch.randint(0, vocab_size, (2, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf_model(ids, output_hidden_states=True)
        logits, trace = ours.run_with_trace(ids, names=["blocks.*.resid_pre", "final_norm"])
    # A sanity check that the comparison is not vacuous: logits vary across the vocabulary.
    assert ref.logits.std().item() > 0.1
    assert_close(logits, ref.logits, "logits")
    for i in range(L):
        assert_close(trace[f"blocks.{i}.resid_pre"], ref.hidden_states[i], f"hidden state {i}")
    assert_close(trace["final_norm"], ref.hidden_states[L], "final normed hidden state")

    prompt = ids[:1, :5]
    theirs = hf_model.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False,
                               eos_token_id=None, pad_token_id=0)
    mine = generate(ours, prompt, 32, temperature=0)
    assert mine.tolist() == theirs.tolist()
    assert len(set(mine[0, 5:].tolist())) > 1, "degenerate test: greedy repeats one token"


@pytest.mark.parametrize("shape", GPT2_SHAPES.values(), ids=GPT2_SHAPES.keys())
def test_gpt2_matches_transformers(tmp_path, shape):
    hf_model = save_gpt2(tmp_path, vocab_size=97, **shape)
    compare(hf_model, tmp_path, 97)


@pytest.mark.parametrize("shape", QWEN3_SHAPES.values(), ids=QWEN3_SHAPES.keys())
def test_qwen3_matches_transformers(tmp_path, shape):
    hf_model = save_qwen3(tmp_path, vocab_size=101, **shape)
    compare(hf_model, tmp_path, 101)


LLAMA_SHAPES = {
    "gqa-untied": dict(heads=4, kv_heads=2, hidden=64, tie=False),
    "mha-tied": dict(heads=4, kv_heads=4, hidden=48, tie=True, rope_theta=5e5),
}


@pytest.mark.parametrize("shape", LLAMA_SHAPES.values(), ids=LLAMA_SHAPES.keys())
def test_llama_matches_transformers(tmp_path, shape):
    """Llama is a family entry (values + the shared key map), not a class of its own."""
    from glassformer.model import FAMILIES

    hf_model = save_qwen3(tmp_path, vocab_size=101, model_type="llama", **shape)
    ours, _ = load_pretrained(tmp_path)
    assert ours.config.family == "llama" and not ours.config.qk_norm and FAMILIES["llama"].hf_rules
    compare(hf_model, tmp_path, 101)


def test_loader_reads_original_gpt2_key_layout(tmp_path):
    """The hub's gpt2 file has keys without the "transformer." prefix and stores attn.bias buffers."""
    from safetensors.torch import load_file, save_file

    hf_model = save_gpt2(tmp_path, vocab_size=97)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    renamed = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    renamed["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    save_file(renamed, str(tmp_path / "model.safetensors"))
    ours, _ = load_pretrained(tmp_path)
    ids = torch.arange(10)[None]
    with torch.no_grad():
        assert_close(ours(ids), hf_model(ids).logits, "logits")
