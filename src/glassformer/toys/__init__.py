"""Small models built or trained for one lesson, with their tasks.

    bigram          an embedding plus a linear layer: next token from the current one alone (chapter 2)
    worked_example  a 6-dimensional model small enough to run by hand (appendix A)
    mask_training   the same tiny model trained with and without the causal mask (chapter 4)
    reverser        an encoder-decoder that reverses strings, with cross-attention (chapter 7)
    induction       a two-layer attention-only model that grows induction heads on repeated random tokens (chapter 12)
"""
