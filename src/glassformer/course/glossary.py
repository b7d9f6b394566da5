"""The course's reference, as data: every term a chapter introduces (with the chapter that
teaches it), the math symbols, and further reading. Appendix B renders it; a test checks
that every term a chapter introduces in bold is here and that every link resolves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str
    meaning: str
    chapter: str        # the catalog key of the chapter that teaches it
    aliases: tuple[str, ...] = ()   # other spellings used in bold in the chapters


TERMS: list[Term] = [
    Term("sequence", "An ordered list of items (here: tokens); order carries meaning.", "0"),
    Term("RNN", "Recurrent neural network: reads a sequence one step at a time, carrying a single memory vector "
         "from step to step.", "0", ("recurrent network",)),
    Term("Transformer", "A network that reads every position of a sequence at once; attention lets each position "
         "use any earlier one.", "0"),
    Term("context window", "The longest input a model accepts, in tokens; anything earlier is out of its sight.", "0"),
    Term("shape", "The sizes of a tensor's dimensions, e.g. [B, T, D].", "0"),
    Term("sequence model", "The first view of a Transformer: text in, a probability for every possible next token out.",
         "0", ("A sequence model.",)),
    Term("stack of matrix multiplications", "The second view: mostly learned matrices applied to vectors, with "
         "norms, element-wise functions and softmaxes between them.", "0", ("A stack of matrix multiplications.",)),
    Term("information routing", "The third view: attention decides which earlier positions each position copies "
         "from; the residual stream carries it up.", "0", ("Information routing.",)),
    Term("token", "One unit of text the model reads or writes: a character, a byte, a word or a piece of one.", "1"),
    Term("tokenizer", "The code that cuts text into tokens and maps each to its id (and back).", "1"),
    Term("vocabulary", "The fixed list of tokens a model knows; a token's id is its position in the list.", "1"),
    Term("characters", "Tokenizing one character per token: tiny vocabulary, long sequences.", "1"),
    Term("words", "Tokenizing one word per token: short sequences, huge vocabulary, unknown words.", "1"),
    Term("subwords", "Tokens between characters and words: frequent words whole, rare ones in pieces.", "1"),
    Term("bytes", "The 256 values of 8 bits; UTF-8 writes any text as bytes, so a byte-level tokenizer meets no "
         "unknown text.", "1"),
    Term("UTF-8", "The encoding that writes each Unicode code point as 1 to 4 bytes.", "1"),
    Term("byte-pair encoding", "BPE: start from bytes and repeatedly merge the most frequent neighbouring pair into "
         "a new token.", "1", ("BPE",)),
    Term("merges", "BPE's learned rules, in order: 'pair (a, b) becomes new token c'.", "1", ("merge",)),
    Term("pre-split", "Cutting text into chunks (words with their leading space, numbers, punctuation) before BPE; "
         "merges never cross a chunk border.", "1"),
    Term("round trip", "decode(encode(text)) == text: a byte-level tokenizer loses nothing.", "1"),
    Term("special token", "A token with a reserved meaning (e.g. end of text) that ordinary text must not produce.",
         "1"),
    Term("logit", "The raw score a model gives one vocabulary entry for 'this comes next'; any real number.", "8"),
    Term("softmax", "Turns scores into probabilities: exponentiate, divide by the total.", "8"),
    Term("temperature", "Divides the logits before softmax: below 1 sharpens, above 1 flattens, 0 is greedy.", "8"),
    Term("top-k", "Keep only the k highest-scoring tokens (ties with the k-th included).", "8"),
    Term("top-p", "Nucleus sampling: keep the fewest top tokens whose probabilities add up to at least p.", "8"),
    Term("min-p", "Keep tokens at least min_p times as likely as the most likely one.", "8"),
    Term("greedy", "Decoding that always takes the most likely token.", "8", ("greedy decoding",)),
    Term("sampling", "Decoding that draws the next token at random from the (filtered) distribution.", "8"),
    Term("seed", "The starting value of a random number generator: the same seed replays the same draws.", "8"),
    Term("beam search", "Decoding that keeps the b best partial continuations at every step.", "8"),
    Term("entropy", "How uncertain a distribution is, in bits: 0 when one token is certain.", "8"),
    Term("end-of-sequence token", "A token that ends generation when produced; a model may have several.", "8"),
    # -- chapter 2 --
    # -- chapter 3 --
    # -- chapter 4 --
    # -- chapter 5 --
    # -- chapter 6 --
    # -- chapter 7 --
    # -- chapter 9 --
    # -- chapter 10 --
    # -- chapter A --
]

SYMBOLS: list[tuple[str, str]] = [
    ("B", "batch size: how many texts are processed together"),
    ("T", "positions (tokens) in this call; also, in chapter 8, the sampling temperature"),
    ("S", "key/value positions: T plus what the KV cache already holds"),
    ("D", "model width: the length of each token's vector"),
    ("H", "attention heads"),
    ("Hkv", "key/value heads (fewer than H in grouped-query attention, 1 in multi-query)"),
    ("Dh", "the width of one head (usually D / H)"),
    ("F", "the hidden width of the feed-forward network"),
    ("V", "vocabulary size"),
    ("z_i", "the logit of token i"),
    ("p_i", "the probability of token i"),
    ("[B, T, D]", "a tensor's shape, outermost dimension first"),
]

READING: list[tuple[str, str, int]] = [
    ("Vaswani et al.", "Attention Is All You Need", 2017),
    ("Radford et al.", "Language Models are Unsupervised Multitask Learners (GPT-2)", 2019),
    ("Sennrich, Haddow, Birch", "Neural Machine Translation of Rare Words with Subword Units", 2016),
    ("Holtzman et al.", "The Curious Case of Neural Text Degeneration", 2020),
    ("Nguyen et al.", "Turning Up the Heat: Min-p Sampling for Creative and Coherent LLM Outputs", 2024),
    ("Su et al.", "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021),
    ("Press, Smith, Lewis", "Train Short, Test Long: Attention with Linear Biases Enables Input Length "
     "Extrapolation", 2022),
    ("Xiong et al.", "On Layer Normalization in the Transformer Architecture", 2020),
    ("Zhang, Sennrich", "Root Mean Square Layer Normalization", 2019),
    ("Shazeer", "GLU Variants Improve Transformer", 2020),
    ("Shazeer", "Fast Transformer Decoding: One Write-Head is All You Need", 2019),
    ("Ainslie et al.", "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints", 2023),
    ("Dao et al.", "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness", 2022),
    ("Loshchilov, Hutter", "Decoupled Weight Decay Regularization", 2019),
    ("Liu et al.", "Muon is Scalable for LLM Training", 2025),
    ("Touvron et al.", "LLaMA: Open and Efficient Foundation Language Models", 2023),
    ("Qwen Team", "Qwen3 Technical Report", 2025),
]


def search(query: str) -> list[Term]:
    """Terms whose name, aliases or meaning contain the query (case-insensitive), name matches first.

        >>> [t.name for t in search("nucleus")]
        ['top-p']
    """
    q = query.strip().lower()
    if not q:
        return list(TERMS)
    named = [t for t in TERMS if q in t.name.lower() or any(q in a.lower() for a in t.aliases)]
    return named + [t for t in TERMS if t not in named and q in t.meaning.lower()]
