"""Measurements on a model, each the library behind one of the course's experiments.

    embedding_space  similarity, nearest neighbours, PCA of an embedding table (chapter 2)
    param_count      where the parameters are, counted from a config (chapter 2)
    position_lab     order-blind attention, the sinusoidal shift, RoPE on a 2-D pair (chapter 3)
    extrapolation    the position-scheme models evaluated past their training length (chapter 3)
    heads            what each attention head looks at, and what it writes (chapter 5)
    ablation         switching heads off through the hooks; the loss without them (chapter 5)
    kv_memory        KV-cache bytes for MHA, GQA and MQA, from an allocated cache (chapter 5)
    block_anatomy    one block's sub-layers read from a trace; norms, activations (chapter 6)
    gradient_norms   per-layer gradient lengths at initialisation, pre- vs post-norm (chapter 6)
    logit_lens       what each layer's residual stream would predict (chapter 7)
    training_lab     per-position loss, gradient accumulation and resume checks (chapter 9)
    experts          a mixture of experts' load over a text, per layer and expert (chapter 11)
    scaling          N, active N and FLOPs per token as scaling laws count them; the scaling runs (chapter 11)
    induction        induction and previous-token scores, ablation, the composition test (chapter 12)
    emergence        a smooth and a sharp metric on models of several sizes (chapter 12)
"""
