"""The autoregressive loop: predict a token, append it, repeat.

A language model only ever predicts the next token. To write a sentence it is run again
and again, each time on the text so far plus the token it just chose. Two phases:

- prefill: run the whole prompt once, filling the KV cache with every position's keys
  and values;
- decode: feed only the newest token; attention reads the older positions from the cache.

    >>> from glassformer.model import build_model, preset
    >>> model = build_model(preset("tiny")).eval()
    >>> generate(model, [12, 7, 3], max_new_tokens=5, temperature=0.8, seed=0).shape
    torch.Size([8])

`stream()` yields each new token as soon as it is chosen (for printing as it goes);
`generate()` collects them. `beam_search()` keeps the best few partial sequences instead
of committing to one token at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from glassformer.model import DecoderLM
from glassformer.errors import BadSetting
from glassformer.sampling import check_settings, distribution, make_generator, next_token


@dataclass
class Step:
    """What one step of the loop saw and chose, handed to stream()'s on_step observer."""

    index: int                 # 0 for the first new token
    logits: torch.Tensor       # (B, V) the model's raw scores
    probs: torch.Tensor        # (B, V) the distribution after temperature / top-k / top-p / min-p
    token: torch.Tensor        # (B,) the chosen token
    cache_length: int = 0      # positions held in the KV cache once these logits were computed (0: no cache)


def as_batch(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """A prompt as a (B, T) integer tensor; a list or 1-D tensor becomes a batch of one.

    Ids must be integers, as the model itself requires: 2.7 is refused, never rounded to token 2."""
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2:
        raise ValueError(f"prompt must be a list of ids or a (B, T) tensor, got shape {tuple(ids.shape)}")
    if ids.shape[1] == 0:
        raise ValueError("empty prompt: give at least one token")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"token ids must be integers, got {ids.dtype} values")
    return ids if ids.dtype in (torch.int64, torch.int32) else ids.long()


def eos_ids(eos_id: int | Sequence[int] | None) -> list[int]:
    """End-of-sequence ids as a list: models may have several (Qwen3: <|im_end|> and <|endoftext|>).

        >>> eos_ids(None), eos_ids(2), eos_ids([151645, 151643])
        ([], [2], [151645, 151643])
    """
    if eos_id is None:
        return []
    return [int(i) for i in torch.as_tensor(eos_id).reshape(-1).tolist()]  # an int, a list, numpy or torch


def fit_context(ids: torch.Tensor, max_new_tokens: int, n_ctx: int, truncate: bool) -> torch.Tensor:
    """Check that prompt + new tokens fit the context; with truncate=True keep only the prompt's end."""
    if max_new_tokens < 0:
        raise BadSetting("max_new_tokens", f"must be >= 0, got {max_new_tokens}")
    T = ids.shape[1]
    if T + max_new_tokens <= n_ctx:
        return ids
    if not truncate:
        raise ValueError(f"prompt of {T} tokens + {max_new_tokens} new tokens exceeds the model's context of "
                         f"{n_ctx}; shorten the prompt, ask for fewer tokens, or pass truncate=True "
                         f"(keeps the prompt's last tokens and slides the window while generating)")
    if T < n_ctx:
        return ids  # fits now; the window slides once generation reaches the context
    # Keep as much of the prompt's end as leaves room for some new tokens before the first slide.
    return ids[:, -(n_ctx - min(max_new_tokens, n_ctx // 2)):]


@torch.inference_mode()
def stream(model: DecoderLM, ids: Sequence[int] | torch.Tensor, max_new_tokens: int, *,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           min_p: float | None = None, seed: int | None = None, eos_id: int | Sequence[int] | None = None,
           truncate: bool = False, use_cache: bool = True,
           on_step: Callable[[Step], None] | None = None) -> Iterator[torch.Tensor]:
    """Yield the next token of every batch row, (B,), one step at a time.

    on_step, when given, is called at every step with a Step (the logits, the filtered
    distribution the token was drawn from, the token): how the course draws this loop's own
    decisions without re-implementing it. It does not change what is drawn.

    temperature=0 is greedy decoding. A row that produced an end-of-sequence id (eos_id: one id
    or several) keeps yielding its first eos id; the loop stops once every row has.

    With truncate=True a sequence may grow past the context: when the visible window would
    exceed n_ctx, it restarts from the most recent half-context of tokens. The rule is the same
    with and without the KV cache (the cache is rebuilt from that window), so both paths see the
    same tokens at every step and give the same output.
    """
    check_settings(temperature, top_k, top_p, min_p)
    n_ctx = model.config.n_ctx
    ids = fit_context(as_batch(ids).to(next(model.parameters()).device), max_new_tokens, n_ctx, truncate)
    generator = make_generator(seed, ids.device)
    stops = torch.tensor(eos_ids(eos_id), dtype=torch.long, device=ids.device)
    B = ids.shape[0]
    finished = torch.zeros(B, dtype=torch.bool, device=ids.device)
    context = ids                                                    # (B, T) all tokens so far
    start = 0                                                        # the visible window is context[:, start:]
    cache = model.new_cache(B, min(n_ctx, ids.shape[1] + max_new_tokens)) if use_cache else None
    logits = model(ids, cache=cache, last_only=True)[:, -1]         # prefill -> (B, V)
    for step in range(max_new_tokens):
        token = next_token(logits, temperature, top_k, top_p, min_p, generator)   # (B,)
        if len(stops):
            token = token.masked_fill(finished, int(stops[0]))
            finished |= torch.isin(token, stops)
        if on_step is not None:  # what is yielded (a finished row keeps repeating its end-of-sequence id)
            on_step(Step(step, logits, distribution(logits, temperature, top_k, top_p, min_p), token,
                         cache.length if cache is not None else 0))
        yield token
        if step == max_new_tokens - 1 or (len(stops) and bool(finished.all())):
            return
        context = torch.cat([context, token[:, None]], dim=1)       # (B, T + 1)
        slid = context.shape[1] - start > n_ctx
        if slid:  # window full (truncate=True): restart it from the recent half
            start = context.shape[1] - n_ctx // 2
        if cache is None:
            logits = model(context[:, start:], last_only=True)[:, -1]
        elif slid:
            cache = model.new_cache(B, n_ctx)
            logits = model(context[:, start:], cache=cache, last_only=True)[:, -1]
        else:
            logits = model(token[:, None], cache=cache)[:, -1]      # decode one position


def generate(model: DecoderLM, ids: Sequence[int] | torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """Prompt + generated tokens: (B, T + n) for a (B, T) prompt, (T + n,) for a list or 1-D prompt.

    Keyword arguments are those of stream(): temperature, top_k, top_p, min_p, seed,
    eos_id, truncate, use_cache.
    """
    one_d = not isinstance(ids, torch.Tensor) or ids.dim() == 1
    prompt = as_batch(ids)
    new = list(stream(model, prompt, max_new_tokens, **kwargs))
    out = torch.cat([prompt, torch.stack(new, dim=1).to(prompt.device)], dim=1) if new else prompt
    return out[0] if one_d else out


@torch.inference_mode()
def token_logprobs(model: DecoderLM, prompt: Sequence[int], continuation: Sequence[int]) -> list[float]:
    """log p(token | everything before it) for each token of `continuation` after `prompt`, in one
    forward pass: how likely the model finds a text it may not have written itself.

        >>> from glassformer.model import build_model, preset
        >>> model = build_model(preset("tiny")).eval()
        >>> lp = token_logprobs(model, [1, 2], [3, 4])
        >>> len(lp), all(v < 0 for v in lp)
        (2, True)
    """
    if not prompt or not continuation:
        raise ValueError("token_logprobs needs a non-empty prompt and continuation")
    ids = torch.tensor([list(prompt) + list(continuation)])
    logp = model(ids).float().log_softmax(dim=-1)[0]                   # (T, V)
    first = len(prompt) - 1                                           # the position that predicts continuation[0]
    return [logp[first + i, t].item() for i, t in enumerate(continuation)]


@dataclass
class Beam:
    tokens: list[int]   # generated tokens only (not the prompt)
    logprob: float      # sum of log-probabilities of the generated tokens
    score: float        # logprob / len ** length_penalty, what beams are ranked by


@torch.inference_mode()
def beam_search(model: DecoderLM, ids: Sequence[int] | torch.Tensor, max_new_tokens: int, *,
                num_beams: int = 4, eos_id: int | Sequence[int] | None = None,
                length_penalty: float = 1.0,
                on_step: Callable[[int, list[tuple[Beam, str]]], None] | None = None) -> list[Beam]:
    """Keep the num_beams most likely partial continuations at every step; return them best first.

    A beam that emits an end-of-sequence id (eos_id: one id or several) is finished. Scores are
    summed log-probabilities divided by length ** length_penalty (so 0 ranks by total probability;
    1 by average per token). on_step(step, candidates), if given, sees every candidate considered
    at each step with its fate: "kept" (a live beam), "finished" (ended with an end-of-sequence id)
    or "pruned".
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if not math.isfinite(length_penalty):  # NaN would make every score NaN, and the ranking meaningless
        raise BadSetting("length_penalty", f"must be a finite number, got {length_penalty!r}")
    prompt = as_batch(ids)
    if prompt.shape[0] != 1:
        raise ValueError("beam_search takes one prompt (batch of 1)")
    prompt = fit_context(prompt, max_new_tokens, model.config.n_ctx, truncate=False)
    K = num_beams
    stops = set(eos_ids(eos_id))
    cache = model.new_cache(K, prompt.shape[1] + max_new_tokens)
    logits = model(prompt.expand(K, -1), cache=cache, last_only=True)[:, -1]           # (K, V)
    running = [Beam([], 0.0, 0.0) for _ in range(K)]
    alive = torch.tensor([0.0] + [float("-inf")] * (K - 1))             # only one distinct beam at first
    finished: list[Beam] = []

    def ranked(beam: Beam) -> Beam:
        beam.score = beam.logprob / (len(beam.tokens) ** length_penalty) if beam.tokens else beam.logprob
        return beam

    for step in range(max_new_tokens):
        logp = logits.float().log_softmax(dim=-1) + alive[:, None]      # (K, V)
        V = logp.shape[-1]
        values, flat = logp.reshape(-1).topk(min(2 * K, K * V))
        parents, tokens, new_running, fates = [], [], [], []
        for value, index in zip(values.tolist(), flat.tolist()):
            if value == float("-inf"):
                break
            parent, token = divmod(index, V)
            beam = ranked(Beam(running[parent].tokens + [token], value, 0.0))
            if len(new_running) == K:
                fates.append((beam, "pruned"))  # considered, but K live beams are already chosen
                continue
            if token in stops:
                finished.append(beam)
                fates.append((beam, "finished"))
            else:
                parents.append(parent)
                tokens.append(token)
                new_running.append(beam)
                fates.append((beam, "kept"))
        if on_step is not None:
            on_step(step, fates)
        if not new_running:
            break
        while len(new_running) < K:  # fewer live candidates than beams: pad with impossible ones
            parents.append(parents[-1])
            tokens.append(tokens[-1])
            new_running.append(Beam(new_running[-1].tokens, float("-inf"), float("-inf")))
        if len(finished) >= K and max(b.score for b in new_running) <= min(b.score for b in finished):
            running = []
            break
        running = new_running
        alive = torch.tensor([b.logprob for b in running])
        if step == max_new_tokens - 1:
            break
        cache.reorder(torch.tensor(parents))
        logits = model(torch.tensor(tokens)[:, None], cache=cache)[:, -1]
    live = [b for b in running if b.logprob > float("-inf")]
    return sorted(finished + live, key=lambda b: b.score, reverse=True)[:K]
