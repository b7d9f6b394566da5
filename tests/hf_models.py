"""Tiny random-weight Hugging Face models, saved to a folder the way the hub stores them.

They let the equivalence tests compare glassformer with `transformers` offline.
"""

from __future__ import annotations

from pathlib import Path

import torch


def save_gpt2(folder: Path, *, n_layer=2, n_head=3, n_embd=48, vocab_size=97, n_positions=64,
              activation="gelu_new", tie=True, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size,
                     n_positions=n_positions, activation_function=activation, tie_word_embeddings=tie,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=vocab_size - 1,
                     bos_token_id=vocab_size - 1, initializer_range=0.2)
    model = GPT2LMHeadModel(cfg).eval()
    _randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def save_qwen3(folder: Path, *, layers=2, heads=4, kv_heads=2, hidden=64, head_dim=None,
               vocab_size=101, tie=False, intermediate=96, rope_theta=10_000.0, seed=0,
               model_type="qwen3"):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate,
                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                  max_position_embeddings=128, tie_word_embeddings=tie, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                  eos_token_id=vocab_size - 1, bos_token_id=vocab_size - 1, initializer_range=0.2)
    if model_type == "qwen3":
        cfg = Qwen3Config(head_dim=head_dim or hidden // heads, **common)
        model = Qwen3ForCausalLM(cfg).eval()
    else:
        cfg = LlamaConfig(head_dim=head_dim or hidden // heads, **common)
        model = LlamaForCausalLM(cfg).eval()
    _randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def _randomize(model) -> None:
    """Norm weights start at exactly 1 and biases at 0; perturb them so the test sees them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)


def make_gpt2_cache(root: Path) -> Path:
    """A tiny random GPT-2 with a byte-level BPE tokenizer, laid out in a Hugging Face cache under
    root/hub with the hub id "gpt2", so the picker's GPT-2 path runs offline. Returns the cache dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(["To be, or not to be: that is the question.\n"] * 50 +
                                  ["Whether 'tis nobler in the mind to suffer"] * 50, trainer)
    snapshot = root / "hub" / "models--gpt2" / "snapshots" / ("0" * 40)
    save_gpt2(snapshot, vocab_size=tokenizer.get_vocab_size(), n_positions=64)
    tokenizer.save(str(snapshot / "tokenizer.json"))
    (root / "hub" / "models--gpt2" / "refs").mkdir()
    (root / "hub" / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    return root / "hub"


def save_moe(folder: Path, *, model_type="mixtral", layers=2, heads=4, kv_heads=2, hidden=64, head_dim=None,
             experts=4, top_k=2, expert_width=32, norm_topk_prob=True, vocab_size=101, tie=False, seed=0, **extra):
    """A tiny random MixtralForCausalLM or Qwen3MoeForCausalLM (extra: other config fields, e.g. mlp_only_layers)."""
    from transformers import MixtralConfig, MixtralForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, head_dim=head_dim or hidden // heads, max_position_embeddings=128,
                  tie_word_embeddings=tie, rms_norm_eps=1e-6, num_experts_per_tok=top_k,
                  rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
                  eos_token_id=vocab_size - 1, bos_token_id=vocab_size - 1, initializer_range=0.2, **extra)
    if model_type == "mixtral":
        model = MixtralForCausalLM(MixtralConfig(num_local_experts=experts, intermediate_size=expert_width, **common))
    else:
        cfg = Qwen3MoeConfig(num_experts=experts, moe_intermediate_size=expert_width,
                             intermediate_size=2 * expert_width, norm_topk_prob=norm_topk_prob, **common)
        model = Qwen3MoeForCausalLM(cfg)
    model.eval()
    _randomize(model)
    model.save_pretrained(folder, safe_serialization=True)
    return model
