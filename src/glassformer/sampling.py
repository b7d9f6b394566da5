"""From logits to the next token: small pure functions, composable, one idea each.

The model's last layer gives one score (logit) per vocabulary entry. softmax turns scores
into probabilities: p_i = exp(z_i) / sum_j exp(z_j). Before sampling, each filter below
reshapes or trims the distribution. By default they are applied in this order (the same
order as Hugging Face `transformers`; it is one convention, not a law: llama.cpp, for one,
applies temperature last, and `temperature_last=True` does the same here):

    1. temperature   z / T: T < 1 sharpens, T > 1 flattens, T -> 0 becomes greedy
    2. top-k         keep the k highest scores
    3. top-p         keep the smallest set of top tokens whose probability adds up to >= p
    4. min-p         keep tokens whose probability is >= min_p * (probability of the best token)

Filters set removed entries to -inf, so softmax gives them probability 0. Every function
works on the last dimension, with any leading batch dimensions. Randomness always comes
from an explicit torch.Generator, so the same seed gives the same tokens.
"""

from __future__ import annotations

import math
import numbers

import torch

from glassformer.model.config import BadSetting


def check_settings(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   min_p: float | None = None) -> None:
    """Refuse any knob that cannot be used, whatever the others say (temperature 0 included).

    Called before anything is drawn. NaN compares false with everything, so without this check a
    NaN would slip past a test such as `top_p < 1` and silently switch its filter off.

        >>> check_settings(temperature=0, top_p=float("nan"))
        Traceback (most recent call last):
        ...
        glassformer.model.config.BadSetting: top_p must be in (0, 1], got nan
    """
    def number(x) -> bool:
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not (number(temperature) and temperature >= 0):
        raise BadSetting("temperature", f"must be a finite number >= 0 (0: always the most likely token), "
                                        f"got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, numbers.Integral) and top_k >= 1):
        raise BadSetting("top_k", f"must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not (number(top_p) and 0 < top_p <= 1):
        raise BadSetting("top_p", f"must be in (0, 1], got {top_p!r}")
    if min_p is not None and not (number(min_p) and 0 <= min_p <= 1):
        raise BadSetting("min_p", f"must be in [0, 1], got {min_p!r}")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the scores by the temperature (> 0)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy() for temperature 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest scores, set the rest to -inf. Scores tied with the k-th are all kept,
    so on ties more than k tokens survive.

        >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0]), 2)
        tensor([-inf, 3., 2.])
        >>> top_k_filter(torch.tensor([1.0, 2.0, 2.0]), 1)
        tensor([-inf, 2., 2.])
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    kth_best = logits.topk(k, dim=-1).values[..., -1:]              # (..., 1)
    return logits.masked_fill(logits < kth_best, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al. 2019): keep the fewest top tokens whose probabilities sum to >= p.

        >>> probs = torch.tensor([0.5, 0.25, 0.125, 0.125])
        >>> top_p_filter(probs.log(), 0.7).exp()        # 0.5 < 0.7, 0.5 + 0.25 >= 0.7: two kept
        tensor([0.5000, 0.2500, 0.0000, 0.0000])
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs                      # probability of better tokens
    drop_sorted = mass_before >= p                                  # the best token is never dropped
    drop = drop_sorted.scatter(-1, order, drop_sorted)              # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens at least min_p times as likely as the most likely one (Nguyen et al. 2024).

        >>> probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
        >>> min_p_filter(probs.log(), 0.2).exp()         # threshold 0.2 * 0.5 = 0.1
        tensor([0.5000, 0.3000, 0.1500, 0.0000])
    """
    if not 0.0 <= min_p <= 1.0:
        raise ValueError(f"min_p must be in [0, 1], got {min_p}")
    probs = logits.softmax(dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)            # (..., 1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None,
                  temperature_last: bool = False) -> torch.Tensor:
    """Apply temperature, top-k, top-p, min-p in that order; None (or 1.0 for top-p) skips a filter.

    temperature_last=True applies the temperature after the filters instead; top-p and min-p
    then judge the untempered probabilities, so a different set of tokens can survive.

        >>> z = torch.tensor([2.0, 1.0, 0.0])     # probabilities 0.67, 0.24, 0.09; at T = 2: 0.51, 0.31, 0.19
        >>> filter_logits(z, temperature=2.0, top_p=0.85).isfinite().tolist()          # T first
        [True, True, True]
        >>> filter_logits(z, temperature=2.0, top_p=0.85, temperature_last=True).isfinite().tolist()
        [True, True, False]
    """
    check_settings(temperature, top_k, top_p, min_p)
    if temperature_last:
        return apply_temperature(filter_logits(logits, 1.0, top_k, top_p, min_p), temperature)
    logits = apply_temperature(logits.float(), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:  # p = 1 keeps everything; skipping it avoids round-off in the sum
        logits = top_p_filter(logits, top_p)
    if min_p is not None and min_p > 0.0:
        logits = min_p_filter(logits, min_p)
    return logits


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits, -sum p log2 p, over the last dimension: how many yes/no questions
    the choice is worth (0: certain; log2(n): n equally likely tokens).

        >>> entropy(torch.tensor([0.5, 0.5, 0.0])).item(), entropy(torch.tensor([1.0, 0.0])).item()
        (1.0, 0.0)
    """
    logs = torch.where(probs > 0, probs.log2(), torch.zeros_like(probs))
    return (probs * -logs).sum(dim=-1) + 0.0  # + 0.0: no "-0.0" for a certain choice


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The single most likely token: argmax over the last dimension."""
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token from softmax(logits) for every leading position: (..., V) -> (...)."""
    probs = logits.softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The probabilities the next token is drawn from, after the filters: (..., V) -> (..., V).
    temperature == 0 (greedy) puts all the probability on the most likely token.

        >>> distribution(torch.tensor([2.0, 1.0, 0.0]), temperature=0).tolist()
        [1.0, 0.0, 0.0]
    """
    check_settings(temperature, top_k, top_p, min_p)
    if temperature == 0:
        return torch.nn.functional.one_hot(greedy(logits), logits.shape[-1]).float()
    return filter_logits(logits, temperature, top_k, top_p, min_p).softmax(dim=-1)


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, min_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick the next token: greedy when temperature == 0, else filter then sample."""
    check_settings(temperature, top_k, top_p, min_p)
    if temperature == 0:
        return greedy(logits)
    return sample(filter_logits(logits, temperature, top_k, top_p, min_p), generator)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded with `seed`, or from fresh entropy when seed is None."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen
