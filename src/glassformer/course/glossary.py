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
    Term("embedding table", "The (V, D) matrix whose row t is token t's vector; embedding a token reads its row.",
         "2"),
    Term("embedding", "The vector a model uses for a token: one row of the embedding table, learned in training.",
         "2", ("embeddings",)),
    Term("one-hot", "A vector of zeros with a single 1; one-hot(t) times a matrix picks out row t.", "2"),
    Term("cosine similarity", "a·b / (|a| |b|): 1 when two vectors point the same way, 0 when perpendicular, "
         "-1 when opposite; lengths do not count.", "2", ("cosine",)),
    Term("nearest neighbours", "The rows of a table with the highest cosine similarity to a given row.", "2",
         ("nearest neighbour",)),
    Term("PCA", "Principal component analysis: the directions along which a set of vectors varies most; used to "
         "draw many-dimensional vectors as 2-D points.", "2", ("principal component analysis",)),
    Term("linear layer", "y = xW + b: a matrix multiply plus a bias; most learned computation in a Transformer.",
         "2"),
    Term("bias", "The vector b added after the matrix multiply of a linear layer.", "2"),
    Term("unembedding", "The output head: a (V, D) matrix U turning the final vector h into logits h Uᵀ.", "2",
         ("output head",)),
    Term("tied embeddings", "Using the embedding table as the unembedding matrix too (U = E).", "2",
         ("Tied embeddings.", "tied weights")),
    Term("bigram model", "A language model that predicts the next token from the current token alone; here an "
         "embedding table followed by one linear layer.", "2", ("bigram",)),
    Term("perplexity", "e to the power of the loss (in nats): how many equally likely choices the model is as "
         "unsure as.", "2"),
    Term("parameters", "The learned numbers of a model: every entry of its weight matrices and vectors.", "2",
         ("parameter",)),
    # -- chapter 3 --
    Term("positional encoding", "How a model is told where each token is: vectors added to the tokens (sinusoidal, "
         "learned) or a change to attention's scores (RoPE, ALiBi).", "3", ("positional encodings",)),
    Term("permutation equivariance", "Shuffle the inputs and the outputs come out shuffled the same way, each "
         "otherwise unchanged: attention without positions or mask is permutation-equivariant.", "3",
         ("permutation-equivariant",)),
    Term("sinusoidal positions", "A fixed table added to the token vectors: pairs of dimensions hold sin and cos of "
         "the position at geometrically spaced speeds; an offset is a rotation of each pair.", "3",
         ("sinusoidal encoding",)),
    Term("learned positions", "A trained vector per position (GPT-2), added to the token vectors; it has rows only "
         "up to the context length.", "3", ("learned position table",)),
    Term("RoPE", "Rotary position embedding: each (q, k) pair of dimensions is rotated by an angle proportional to "
         "the position, so q·k depends only on the offset.", "3", ("rotary position embedding",)),
    Term("ALiBi", "Attention with linear biases: subtract slope × distance from each score, a fixed slope per head.",
         "3"),
    Term("relative position", "The offset between two tokens (n − m), as opposed to each token's absolute index.",
         "3", ("relative positions",)),
    # -- chapter 4 --
    Term("attention", "The step where positions exchange information: each position's output is a weighted average "
         "of the values of the positions it may see, weighted by how well its query matches their keys.", "4",
         ("self-attention",)),
    Term("query", "The vector a position makes to look for information: compared with every key it may see.", "4",
         ("queries",)),
    Term("key", "The vector a position offers to be found by: its dot product with a query is the score.", "4",
         ("keys",)),
    Term("value", "The vector a position hands over when attended to; the output is a weighted sum of values.", "4",
         ("values",)),
    Term("dot product", "q·k = Σ qᵢkᵢ: large when two vectors point the same way, 0 when perpendicular, negative "
         "when opposed.", "4"),
    Term("attention weights", "The softmax of one query's (masked) scores: one weight per key, positive, adding up "
         "to 1; the attention pattern is all queries' weights.", "4", ("attention pattern",)),
    Term("attention head", "One set of query, key and value projections with its own pattern; a layer runs several "
         "side by side.", "4"),
    Term("grouped-query attention", "GQA: several query heads share one key/value head, shrinking the KV cache "
         "(Qwen3-0.6B: 16 query heads, 8 kv heads).", "4", ("GQA",)),
    Term("causal mask", "−∞ added to the score of every key after the query, so its softmax weight is exactly 0: a "
         "position never sees the tokens it must predict.", "4"),
    Term("scaled dot-product attention", "softmax(QKᵀ/√d_k + M)V: the division by √d_k keeps the scores' variance "
         "at 1 whatever the head width.", "4"),
    # -- chapter 5 --
    Term("multi-head attention", "Several attentions side by side in one layer, each with its own query, key and "
         "value projections over a slice of D_h = D / H numbers; their outputs are concatenated and projected.", "5",
         ("MHA",)),
    Term("head", "One of the parallel attentions of a multi-head layer: its own pattern, its own D_h-wide output.",
         "5", ("attention head",)),
    Term("concatenation", "Putting the heads' outputs back side by side: H vectors of D_h numbers become one of "
         "H·D_h.", "5", ("concatenate",)),
    Term("output projection", "The matrix W_O after the heads: it maps the concatenated head outputs back to D; "
         "equivalently, each head writes through its own block of W_O and the writes add up.", "5", ("W_O",)),
    Term("head ablation", "Switching one head (or several) off by zeroing its output z, to measure how much the "
         "model's loss depends on it.", "5", ("ablation", "ablate")),
    Term("KV cache", "The keys and values of every earlier position, kept per layer during generation so that each "
         "new token computes only its own; it grows by 2·L·H_kv·D_h numbers per token.", "5", ("key/value cache",)),
    Term("grouped-query attention", "GQA: groups of query heads share one key/value head, shrinking the KV cache "
         "by H / H_kv while every head keeps its own queries.", "5", ("GQA",)),
    Term("multi-query attention", "MQA: all query heads share a single key/value head (H_kv = 1).", "5", ("MQA",)),
    # -- chapter 6 --
    Term("Transformer block", "The repeated unit of a Transformer: attention then an MLP, each wrapped in a norm and "
         "a residual addition; [B, T, D] in, [B, T, D] out.", "6"),
    Term("sub-layer", "One of the two parts of a block (attention or the MLP), whose output is added to the stream.",
         "6"),
    Term("MLP", "Multilayer perceptron (feed-forward network): per token, widen D to F, apply an activation, "
         "project back to D.", "6", ("feed-forward network", "FFN")),
    Term("residual connection", "Adding a sub-layer's output to its input (x + f(x)) instead of replacing it; gives "
         "the gradient a direct path.", "6", ("skip connection",)),
    Term("normalization", "Rescaling each token's vector to a standard size before a sub-layer reads it.", "6"),
    Term("LayerNorm", "Subtract the vector's mean, divide by its standard deviation, then a learned scale and shift.",
         "6", ("layer normalization",)),
    Term("RMSNorm", "Divide the vector by its root mean square, then a learned scale; no mean subtracted, no shift.",
         "6"),
    Term("activation function", "A fixed non-linear function applied to each number (GELU, SiLU); without it "
         "stacked matrices collapse into one.", "6"),
    Term("GELU", "Gaussian error linear unit: x times the probability that a standard normal is below x; a smooth "
         "ReLU (GPT-2).", "6"),
    Term("SwiGLU", "The gated MLP of Llama and Qwen: silu(W_gate x) multiplies W_up x element by element, then "
         "W_down.", "6"),
    Term("pre-norm", "Block arrangement x + f(Norm(x)): the norm inside each branch (GPT-2 and most models since).",
         "6"),
    Term("post-norm", "Block arrangement Norm(x + f(x)): the norm after each addition (the 2017 Transformer).", "6"),
    Term("warmup", "Starting training with a learning rate near 0 and raising it over the first steps.", "6"),
    Term("gradient", "The derivative of the loss with respect to each weight: the direction and size of the push a "
         "training step gives it.", "6"),
    Term("dropout", "During training, zero each number with probability p and scale the rest by 1/(1-p); off in "
         "evaluation mode.", "6"),
    # -- chapter 7 --
    Term("residual stream", "The one D-wide vector per position that runs through the whole model; every block "
         "reads it and adds its attention and MLP outputs to it, never replacing it.", "7"),
    Term("logit lens", "Applying the model's final norm and unembedding to the residual stream after an earlier "
         "block: what the model would predict if it stopped there.", "7"),
    Term("decoder-only", "A Transformer of one sequence with a causal mask (GPT-2, Llama, Qwen3): it can generate "
         "one token at a time.", "7", ("decoder-only model",)),
    Term("encoder", "A Transformer stack whose attention has no mask: every position sees every other one, before "
         "and after it (BERT; the first half of an encoder–decoder).", "7"),
    Term("bidirectional", "Attention without a causal mask: each position sees the positions after it as well as "
         "before it.", "7", ("bidirectional attention",)),
    Term("encoder–decoder", "An encoder reads the input, a causal decoder writes the output and reads the "
         "encoder's output through cross-attention (the 2017 Transformer, T5).", "7",
         ("encoder-decoder", "sequence-to-sequence")),
    Term("cross-attention", "Attention whose queries come from the decoder and whose keys and values come from the "
         "encoder's output.", "7"),
    Term("teacher forcing", "Training a decoder on the true previous tokens (not its own guesses) and scoring every "
         "next token at once.", "7"),
    Term("held-out", "Data kept away from training, used only to measure: a score on it cannot come from "
         "memorizing.", "7", ("held out",)),
    Term("mirror weight", "Chapter 7's measure for the reverser: the average cross-attention weight on input position "
         "n−1−t while writing output t (1 = a perfect anti-diagonal).", "7"),
    # -- chapter 9 --
    Term("training", "The loop that changes a model's weights so it gives the real next tokens of its training "
         "text higher probability: forward pass, loss, gradients, optimizer step, repeat.", "9"),
    Term("next-token prediction", "The task a language model trains on: after each prefix of a text, give a "
         "probability to every possible next token. A text of T tokens holds T − 1 such examples.", "9"),
    Term("teacher forcing", "Training with the real previous tokens as the context at every position, never the "
         "model's own guesses, so all positions train in one pass.", "9"),
    Term("cross-entropy", "The training loss: −ln of the probability the model gave the correct token, averaged "
         "over positions; 0 when certain and right.", "9"),
    Term("backpropagation", "Computing the gradient of the loss for every weight at once by applying the chain "
         "rule backwards through the recorded forward pass (`loss.backward()`).", "9"),
    Term("learning rate", "How far the optimizer moves the weights in one step (lr); too high diverges, too low "
         "barely moves.", "9", ("lr",)),
    Term("AdamW", "The usual optimizer: per-weight steps scaled by running averages of the gradient and its square, "
         "plus weight decay applied directly to the weights.", "9"),
    Term("cosine decay", "A learning-rate schedule that falls from its peak to a floor along half a cosine wave.",
         "9"),
    Term("validation loss", "The loss on held-out text the model never trains on: the honest measure of what it "
         "learned.", "9", ("validation",)),
    Term("overfitting", "Learning the training text itself rather than what carries over: training loss keeps "
         "falling while validation loss rises.", "9"),
    Term("batch size", "How many sequences (windows) one optimizer step averages its gradient over.", "9"),
    Term("gradient accumulation", "Running one batch as several smaller micro-batches and adding their gradients "
         "before one optimizer step: the same step, in less memory.", "9"),
    Term("mixed precision", "Doing the matrix multiplies in a 16-bit format (bf16) while keeping weights, losses and "
         "sums in fp32.", "9"),
    Term("checkpoint", "A file with everything needed to continue a run exactly: weights, optimizer state, step "
         "number and random-generator states.", "9"),
    # -- chapter 10 --
    Term("decoding", "Generating text: one call of the model per new token, each call needing the token before.",
         "10"),
    Term("tiles", "Blocks of positions that tiled attention visits one at a time instead of forming the whole "
         "T x T matrix of scores.", "10", ("tile",)),
    Term("online softmax", "Computing softmax-weighted sums in one pass over the scores, keeping a running maximum "
         "and running sums that are rescaled when the maximum grows; the idea behind FlashAttention.", "10"),
    Term("sliding window", "Attention limited to the last w positions: the KV cache stays at w positions per layer.",
         "10", ("sliding-window attention",)),
    Term("speculative decoding", "A small draft model guesses several tokens, the big model checks them all in "
         "one call; the output follows the big model exactly.", "10"),
    Term("quantization", "Storing weights with fewer bits (int8: 8-bit integers plus a scale per row) to read "
         "fewer bytes per token.", "10", ("int8 weight-only quantization",)),
    Term("dynamic quantization", "Rounding the activations to integers too, at every call, with scales computed "
         "from the values themselves (here one per row), so the matrix product is all integers.", "10",
         ("int8-dynamic",)),
    Term("split-K", "Computing x W as a sum of partial products over slices of the input, x_1 W_1 + x_2 W_2 + ..., "
         "each slice on its own thread; for one token, a way to stream the weights on every core.", "10"),
    # -- chapter 11 --
    Term("mixture of experts", "A block whose feed-forward part is several networks (experts) of which a router "
         "runs only a few per token: many parameters stored, few used per token.", "11", ("MoE",)),
    Term("expert", "One of the feed-forward networks of a mixture-of-experts layer.", "11", ("experts",)),
    Term("router", "In a mixture of experts, the linear map from a token's vector to one score per expert; "
         "softmax, then the top K experts run.", "11"),
    Term("gate", "The weight a chosen expert's output is multiplied by before the outputs are summed: its router "
         "probability, renormalized over the K chosen ones in Mixtral.", "11", ("gates",)),
    Term("active parameters", "The weights one token actually uses: in a mixture of experts, K of the E experts "
         "plus the router (total parameters count all E).", "11", ("active parameter",)),
    Term("dense model", "A model whose every token goes through all of its weights; the dense twin of a mixture "
         "of experts has the same active parameters per token.", "11", ("dense twin",)),
    Term("load-balancing loss", "Switch Transformers' auxiliary loss E·Σ f_i·P_i (share of tokens times mean "
         "router probability, per expert): 1 when the experts share the tokens evenly, added to the training "
         "loss with a small weight.", "11", ("balance loss",)),
    Term("routing collapse", "A router that sends most tokens to a few experts, which then do the work while "
         "the others learn little.", "11"),
    Term("FLOPs", "Floating-point operations: a multiply and an add per weight used is 2 FLOPs; training costs "
         "about 3 times a forward pass.", "11", ("FLOPs per token",)),
    Term("scaling law", "A formula for how the loss falls as parameters, training tokens or compute grow, fitted "
         "to many training runs (Kaplan et al. 2020; Hoffmann et al. 2022).", "11"),
    Term("power law", "y = A·x^(−α): a straight line of slope −α on log–log axes.", "11"),
    Term("irreducible loss", "E in a scaling law: the loss no size and no amount of data removes with that data "
         "and recipe.", "11"),
    Term("compute-optimal", "The split of a compute budget between parameters and training tokens that reaches "
         "the lowest loss (about 20 tokens per parameter in Hoffmann et al. 2022).", "11"),
    Term("compute frontier", "The runs that no cheaper run beats: the lower edge of loss against compute.", "11"),
    Term("tokens per parameter", "Training tokens D divided by parameters N; Chinchilla's rule of thumb is about "
         "20.", "11"),
    Term("epoch", "One pass over the whole training set; a token budget larger than the set repeats it.", "11",
         ("epochs",)),
    # -- chapter 12 --
    Term("induction head", "An attention head that, at a token A seen before as 'A B', attends to that B and copies "
         "it into the prediction: A B … A → B (Olsson et al. 2022).", "12", ("induction heads",)),
    Term("induction score", "The average attention weight a head puts, on a sequence written twice, from each token "
         "of the second copy to the token after its first occurrence; 1 for a perfect induction head.", "12"),
    Term("previous-token head", "A head that attends mostly to the token just before the query, writing 'the token "
         "before me' into every position.", "12", ("previous-token heads",)),
    Term("previous-token score", "The average attention weight a head puts on the token just before the query.",
         "12"),
    Term("in-context learning", "Predicting better from patterns in the text read so far, with no change to any "
         "weight.", "12"),
    Term("in-context-learning score", "Loss late in the context minus loss early (Olsson et al. 2022); negative "
         "when the context helps. Chapter 12: the repeat's loss minus the first copy's.", "12"),
    Term("K-composition", "A head whose keys are computed from what an earlier head wrote into the residual stream "
         "(Elhage et al. 2021); an induction head's keys read a previous-token head's output.", "12"),
    Term("phase change", "A sudden change during training: in chapter 12, the repeat's loss drops within a few "
         "hundred steps as an induction head forms.", "12"),
    Term("pre-training", "The first, long training of a language model: predicting the next token of a large "
         "amount of text. It makes a model of text, not an assistant.", "13", ("pretraining",)),
    Term("fine-tuning", "Training a pretrained model further, usually briefly and on a smaller, more specific "
         "dataset; the same weights keep learning.", "13", ("fine-tune",)),
    Term("instruction tuning", "Fine-tuning on requests and the replies the model should give, so that it answers "
         "instead of continuing the text.", "13"),
    Term("SFT", "Supervised fine-tuning: fine-tuning on example conversations whose replies are the targets.", "13",
         ("supervised fine-tuning",)),
    Term("chat format", "How a conversation is written as one text a model can continue: markers for each message's "
         "role and for the end of a reply (for pretrained models, the chat template in their tokenizer files).",
         "13", ("chat template",)),
    Term("exact match", "The share of answers that are exactly the right answer, character for character.", "13"),
    Term("format compliance", "The share of replies that end where the chat format says a reply ends.", "13"),
    Term("LoRA", "Low-rank adaptation (Hu et al. 2021): the pretrained weights stay frozen and each chosen layer "
         "learns a small correction A·B of rank r, added into the weight after training.", "13"),
    Term("rank", "In LoRA, r: the inner size of the correction A·B, which caps how much a layer can change and sets "
         "the trainable parameters, r·(d_in + d_out) per layer.", "13", ("LoRA rank",)),
    Term("RLHF", "Reinforcement learning from human feedback: a reward model learns people's preferences between "
         "replies, then the language model is trained (e.g. with PPO) to score high on it (Ouyang et al. 2022).",
         "13"),
    Term("reward model", "A model trained to give a reply the score people would, from their rankings of replies.",
         "13"),
    Term("PPO", "Proximal policy optimization (Schulman et al. 2017), the reinforcement-learning algorithm RLHF "
         "used to train the language model against the reward model.", "13"),
    Term("DPO", "Direct preference optimization (Rafailov et al. 2023): trains on pairs of preferred and rejected "
         "replies with a classification loss, against a frozen reference model, with no reward model.", "13",
         ("direct preference optimization",)),
    Term("reference", "In DPO (and RLHF's penalty), the frozen copy of the model training started from; the implicit "
         "reward and the KL divergence are measured against it.", "13", ("reference model",)),
    Term("implicit reward", "In DPO, β times how much more log-probability the trained model gives a reply than the "
         "reference does.", "13"),
    Term("reward margin", "In DPO, the preferred reply's implicit reward minus the rejected one's.", "13"),
    Term("preference accuracy", "In DPO, the share of pairs in which the preferred reply gets the higher implicit "
         "reward.", "13"),
    Term("emergent ability", "An ability that seems absent below some scale of model or compute and present above "
         "it (Wei et al. 2022); whether many are artefacts of sharp metrics is debated (Schaeffer et al. 2023).",
         "12", ("emergent abilities",)),
    Term("training compute", "The arithmetic spent on training, about 6 × parameters × training tokens FLOPs.", "12"),
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
    ("Elhage et al.", "A Mathematical Framework for Transformer Circuits", 2021),
    ("Olsson et al.", "In-context Learning and Induction Heads", 2022),
    ("Kaplan et al.", "Scaling Laws for Neural Language Models", 2020),
    ("Shazeer et al.", "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer", 2017),
    ("Fedus, Zoph, Shazeer", "Switch Transformers: Scaling to Trillion Parameter Models with Simple and Efficient "
     "Sparsity", 2021),
    ("Jiang et al.", "Mixtral of Experts", 2024),
    ("Hoffmann et al.", "Training Compute-Optimal Large Language Models", 2022),
    ("Muennighoff et al.", "Scaling Data-Constrained Language Models", 2023),
    ("Wei et al.", "Emergent Abilities of Large Language Models", 2022),
    ("Schaeffer, Miranda, Koyejo", "Are Emergent Abilities of Large Language Models a Mirage?", 2023),
    ("Ouyang et al.", "Training language models to follow instructions with human feedback", 2022),
    ("Schulman et al.", "Proximal Policy Optimization Algorithms", 2017),
    ("Hu et al.", "LoRA: Low-Rank Adaptation of Large Language Models", 2021),
    ("Dettmers et al.", "QLoRA: Efficient Finetuning of Quantized LLMs", 2023),
    ("Rafailov et al.", "Direct Preference Optimization: Your Language Model is Secretly a Reward Model", 2023),
    ("Touvron et al.", "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023),
    ("Tunstall et al.", "Zephyr: Direct Distillation of LM Alignment", 2023),
    ("Pal et al.", "Smaug: Fixing Failure Modes of Preference Optimisation with DPO-Positive", 2024),
    ("Zhou et al.", "LIMA: Less Is More for Alignment", 2023),
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
