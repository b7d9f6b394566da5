"""glassformer: a glass-box Transformer you can read, trace, train and talk to.

The library lives in sub-modules, in teaching order:

    tokenizers   text -> token ids (characters, byte-level BPE, pretrained tokenizer.json)
    model        the Transformer itself, every intermediate exposed through named hook points
    pretrained   Hugging Face checkpoints -> our model classes (safetensors only)
    sampling     logits -> the next token (temperature, top-k, top-p, min-p, greedy)
    generate     the autoregressive loop with a KV cache; beam search
"""

__version__ = "0.1.0"
