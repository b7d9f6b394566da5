"""One rule for every speed verdict: time two things in turns, and say "faster" only when it shows.

A single timing on a shared machine is a sample of what else the machine was doing in that
moment: the same comparison, timed once, can come out 0.7x in one run and 2x in the next. So
every page and bench that compares two things by time does it here, the same way:

1. run on **one CPU thread** (by default): on a shared machine a product split over two threads
   waits for whichever thread the system paused, and one such wait costs more than the work
   (measured on a busy 2-core machine: a 512 x 512 fp32 product took 24 ms on two threads, 2.7 ms
   on one, and bf16's advantage over fp32 swung between 0.3x and 8x on two threads, 1.9x and 2.3x
   on one);
2. **warm up** each function first (the first call may allocate, pick a kernel or fill caches);
3. run them **in turns**, a b, b a, a b, ...: a busy moment slows both halves of a pair alike,
   and the alternating order cancels any advantage of going first or second;
4. take the **median** of the per-pair ratios, and an interval for it from the ratios themselves
   (the sign-test interval: no assumption about the shape of the noise);
5. give a **verdict** only when that interval lies wholly beyond a small margin around 1
   (`MARGIN`: 5%); otherwise the answer is "no clear difference on this machine right now";
6. print the **number of runs and the interval** beside the figure.

    >>> c = Comparison("plain", "new", baseline_seconds=[2.0, 2.2, 2.1, 2.0, 2.3, 2.1, 2.0],
    ...                candidate_seconds=[1.0, 1.0, 1.1, 1.0, 1.1, 1.0, 1.0])
    >>> c.speedup, c.verdict
    (2.0, 'faster')
    >>> c.figure()
    '2.00× (1.91–2.20×, 7 runs in turns)'

The interval: with n ratios sorted, r_(k) <= median <= r_(n+1-k) fails only when k-1 or fewer
ratios fall on one side of the true median, which has probability 2 P(Binomial(n, 1/2) <= k-1)
(Hollander & Wolfe, *Nonparametric Statistical Methods*, the sign test). `median_interval` picks
the narrowest such interval that still holds with `CONFIDENCE` (95%): with 7 runs it is
[min, max] (98.4%), with 9 runs the 2nd to the 8th (96.1%; the 3rd to the 7th would hold only 82%).
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

CONFIDENCE = 0.95          # how sure the interval must be
MARGIN = 0.05              # differences within ±5% are not called faster or slower
UNCLEAR = "no clear difference on this machine right now"


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(low, high, coverage): an interval around the median of `values` from their order statistics.

    The narrowest [v_(k), v_(n+1-k)] (sorted values, 1-based) whose coverage
    1 - 2 P(Binomial(n, 1/2) <= k - 1) is at least `confidence`. With too few values for any
    interval to reach it (fewer than 6 at 95%), the whole range is returned with its real, lower
    coverage, and a verdict built on it says so by not being given.

        >>> median_interval([5, 1, 4, 2, 3, 7, 6])          # 7 values: min and max, 98.4%
        (1, 7, 0.984375)
        >>> median_interval(list(range(1, 10)))[:2]         # 9 values: drop one on each side
        (2, 8)
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")

    def coverage(k: int) -> float:   # P(v_(k) <= true median <= v_(n+1-k))
        tail = sum(math.comb(n, i) for i in range(k)) / 2 ** n
        return 1 - 2 * tail

    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one thing: its median and the spread around it."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def interval(self) -> tuple[float, float]:
        low, high, _ = median_interval(self.seconds)
        return low, high

    def figure(self, scale: float = 1e3, unit: str = "ms", digits: int = 1) -> str:
        """e.g. "12.3 ms (11.8–13.0, 7 runs)": the median, its interval and the number of runs."""
        low, high = self.interval
        return (f"{self.median * scale:,.{digits}f} {unit} ({low * scale:,.{digits}f}–{high * scale:,.{digits}f}, "
                f"{len(self.seconds)} runs)")


@dataclass(frozen=True)
class Comparison:
    """Paired timings of a baseline and a candidate, run in turns (pair i = baseline_seconds[i],
    candidate_seconds[i]). `speedup` > 1 means the candidate took less time."""

    baseline: str
    candidate: str
    baseline_seconds: Sequence[float]
    candidate_seconds: Sequence[float]
    confidence: float = CONFIDENCE
    margin: float = MARGIN
    ratios: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.baseline_seconds) != len(self.candidate_seconds) or not self.baseline_seconds:
            raise ValueError("need the same number (at least one) of baseline and candidate timings")
        object.__setattr__(self, "baseline_seconds", tuple(self.baseline_seconds))
        object.__setattr__(self, "candidate_seconds", tuple(self.candidate_seconds))
        tiny = 1e-12   # a clock can read the same time twice around a very fast call
        object.__setattr__(self, "ratios", tuple(max(b, tiny) / max(c, tiny) for b, c in
                                                 zip(self.baseline_seconds, self.candidate_seconds)))

    @property
    def runs(self) -> int:
        return len(self.ratios)

    @property
    def speedup(self) -> float:
        """Median over the pairs of baseline time / candidate time."""
        return statistics.median(self.ratios)

    @property
    def interval(self) -> tuple[float, float]:
        low, high, _ = median_interval(self.ratios, self.confidence)
        return low, high

    @property
    def coverage(self) -> float:
        return median_interval(self.ratios, self.confidence)[2]

    @property
    def verdict(self) -> str:
        """"faster" (the candidate), "slower", or "unclear": a side is taken only when the whole
        interval is beyond the margin and it holds with the asked-for confidence."""
        low, high = self.interval
        if self.coverage < self.confidence:
            return "unclear"
        if low > 1 + self.margin:
            return "faster"
        if high < 1 / (1 + self.margin):
            return "slower"
        return "unclear"

    @property
    def not_slower(self) -> bool:
        """Whether the candidate is shown at least level: the whole interval at or above the margin's
        lower edge (1 / (1 + margin)), with the asked-for confidence. "faster" implies it; so can
        "unclear", when the interval reaches above 1 + margin but not below the lower edge.

            >>> Comparison("a", "b", [1.00, 1.02, 0.99, 1.01, 1.00, 1.03, 0.98], [1.0] * 7).not_slower
            True
            >>> Comparison("a", "b", [1.00, 0.90, 0.99, 1.01, 1.00, 1.03, 0.98], [1.0] * 7).not_slower
            False
        """
        return self.coverage >= self.confidence and self.interval[0] >= 1 / (1 + self.margin)

    def says(self, faster: str = "faster", slower: str = "slower", unclear: str = UNCLEAR) -> str:
        """The verdict in the page's own words."""
        return {"faster": faster, "slower": slower, "unclear": unclear}[self.verdict]

    def figure(self, digits: int = 2) -> str:
        """e.g. "1.42× (1.21–1.60×, 9 runs in turns)": the median ratio, its interval, the runs."""
        low, high = self.interval
        return f"{self.speedup:.{digits}f}× ({low:.{digits}f}–{high:.{digits}f}×, {self.runs} runs in turns)"

    @property
    def baseline_timing(self) -> Timing:
        return Timing(self.baseline_seconds)

    @property
    def candidate_timing(self) -> Timing:
        return Timing(self.candidate_seconds)

    def as_dict(self) -> dict:
        """Plain numbers, for a cache file or JSON output."""
        low, high = self.interval
        return {"baseline": self.baseline, "candidate": self.candidate, "speedup": self.speedup,
                "interval": [low, high], "runs": self.runs, "verdict": self.verdict, "not_slower": self.not_slower,
                "baseline_median_s": Timing(self.baseline_seconds).median,
                "candidate_median_s": Timing(self.candidate_seconds).median}


def _timed(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


@contextlib.contextmanager
def _quiet(threads: int | None) -> Iterator[None]:
    """torch on `threads` threads (None: as set), and no garbage collection in the middle of a
    timed call (its pause is noise, not the call's cost); both restored afterwards."""
    before, gc_was_on = torch.get_num_threads(), gc.isenabled()
    if threads is not None:
        torch.set_num_threads(threads)
    gc.disable()
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if gc_was_on:
            gc.enable()


def measure(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 1, budget: float | None = None,
            min_repeats: int = 3, threads: int | None = 1, clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time fn() `repeats` times after `warmup` untimed calls, on `threads` torch threads; stop
    early (after at least `min_repeats`) once `budget` seconds of timed calls have passed."""
    seconds: list[float] = []
    with _quiet(threads):
        for _ in range(warmup):
            fn()
        while len(seconds) < repeats:
            seconds.append(_timed(fn, clock))
            if budget is not None and len(seconds) >= min_repeats and sum(seconds) >= budget:
                break
    return Timing(tuple(seconds))


def measure_in_turns(fns: Mapping[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1,
                     budget: float | None = None, min_repeats: int = 6, threads: int | None = 1,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, Timing]:
    """Time several functions in rounds, each round calling every one once, the starting point
    moving by one each round (a b c, b c a, c a b, ...), after `warmup` rounds untimed; so a busy
    moment on the machine falls on all of them alike. Run i of every function is from round i,
    which makes runs of two of them pairs for a Comparison. Stops after `repeats` rounds, or once
    `budget` seconds of timed calls have passed and at least `min_repeats` rounds are in."""
    names = list(fns)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    spent = 0.0
    with _quiet(threads):
        for _ in range(warmup):
            for name in names:
                fns[name]()
        for r in range(repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                seconds[name].append(_timed(fns[name], clock))
                spent += seconds[name][-1]
            if budget is not None and r + 1 >= min_repeats and spent >= budget:
                break
    return {name: Timing(tuple(t)) for name, t in seconds.items()}


def compare(baseline: Callable[[], object], candidate: Callable[[], object], *, names: tuple[str, str] = ("baseline",
            "candidate"), repeats: int = 7, warmup: int = 1, budget: float | None = None, min_repeats: int = 6,
            threads: int | None = 1, confidence: float = CONFIDENCE, margin: float = MARGIN,
            clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time baseline() and candidate() in turns (b c, c b, b c, ...) after `warmup` calls of each,
    on `threads` torch threads (None: as the process has them).

    Runs `repeats` pairs, or stops early once `budget` seconds of timed calls have passed and at
    least `min_repeats` pairs are in (6 is the fewest for which a 95% interval exists). Use:

        c = compare(lambda: plain(q, k, v), lambda: tiled(q, k, v), names=("plain", "tiled"))
        f"tiled: {c.figure()}, {c.says()}"     # "tiled: 1.42× (1.21–1.60×, 7 runs in turns), faster"
    """
    if names[0] == names[1]:
        raise ValueError("the two things compared need different names")
    times = measure_in_turns({names[0]: baseline, names[1]: candidate}, repeats=repeats, warmup=warmup,
                             budget=budget, min_repeats=min_repeats, threads=threads, clock=clock)
    return Comparison(names[0], names[1], times[names[0]].seconds, times[names[1]].seconds,
                      confidence=confidence, margin=margin)


def trend(first: Comparison, last: Comparison) -> str:
    """"grows", "shrinks" or "unclear": whether `last`'s speed-up is clearly above or below
    `first`'s, i.e. their intervals do not overlap."""
    (a_low, a_high), (b_low, b_high) = first.interval, last.interval
    if first.verdict == "unclear" and last.verdict == "unclear":
        return "unclear"
    if b_low > a_high:
        return "grows"
    if b_high < a_low:
        return "shrinks"
    return "unclear"
