"""The timing rule (glassformer/timing.py), checked on made-up clocks and samples: nothing here is timed."""

from __future__ import annotations

import math

import pytest
import torch

from glassformer import timing
from glassformer.timing import Comparison, compare, measure, median_interval


class FakeClock:
    """A clock that only moves when a fake function says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def takes(self, durations, log=None, name=""):
        """A function whose i-th call takes durations[i] seconds (the last one repeats)."""
        calls = iter(durations)
        last = [durations[-1]]

        def fn():
            last[0] = next(calls, last[0])
            self.now += last[0]
            if log is not None:
                log.append(name)
        return fn


def test_median_interval_coverage_is_the_sign_test():
    for n in range(1, 40):
        low, high, coverage = median_interval(list(range(n)))
        k = low + 1                                           # values 0..n-1: the k-th smallest is k-1
        expected = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
        assert abs(coverage - expected) < 1e-12
        assert high == n - k                                  # symmetric: the k-th largest
        if n >= 6:
            assert coverage >= timing.CONFIDENCE
            # ... and it is the narrowest that does: one step in would fall below 95%
            if k + 1 <= (n + 1) // 2:
                assert 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n < timing.CONFIDENCE
        else:
            assert (low, high) == (0, n - 1) and coverage < timing.CONFIDENCE
    with pytest.raises(ValueError):
        median_interval([])


def test_a_clear_speedup_is_called_faster_with_its_figure():
    c = Comparison("plain", "new", [2.0, 2.2, 2.1, 2.0, 2.3, 2.1, 2.0], [1.0, 1.0, 1.1, 1.0, 1.1, 1.0, 1.0])
    assert abs(c.speedup - 2.0) < 1e-12 and c.verdict == "faster" and c.says() == "faster"
    assert c.figure() == "2.00× (1.91–2.20×, 7 runs in turns)"
    flipped = Comparison("new", "plain", c.candidate_seconds, c.baseline_seconds)
    assert flipped.verdict == "slower" and abs(flipped.speedup - 0.5) < 1e-12
    assert flipped.says(slower="took longer") == "took longer"


def test_noise_around_no_difference_gives_no_verdict():
    base = [1.0, 1.1, 0.9, 1.0, 1.2, 0.95, 1.05, 1.0, 0.9]
    c = Comparison("a", "b", base, [1.02, 1.0, 1.0, 0.97, 1.0, 1.0, 1.0, 1.1, 1.0])
    assert c.verdict == "unclear" and c.says() == timing.UNCLEAR


def test_a_small_real_difference_inside_the_margin_is_not_called():
    c = Comparison("a", "b", [1.03] * 15, [1.0] * 15)            # 3% faster, every time
    assert c.interval == pytest.approx((1.03, 1.03)) and c.verdict == "unclear"
    assert Comparison("a", "b", [1.06] * 15, [1.0] * 15).verdict == "faster"


def test_not_slower_needs_the_whole_interval_at_or_above_the_margins_lower_edge():
    level = Comparison("a", "b", [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99], [1.0] * 9)
    assert level.verdict == "unclear" and level.not_slower
    assert Comparison("a", "b", [0.97] * 15, [1.0] * 15).not_slower          # 3% slower: inside the margin
    assert not Comparison("a", "b", [0.94] * 15, [1.0] * 15).not_slower      # 6% slower: beyond it
    wide = Comparison("a", "b", [1.0, 1.2, 0.8, 1.0, 1.3, 0.85, 1.1, 1.0, 0.9], [1.0] * 9)
    assert wide.verdict == "unclear" and not wide.not_slower                  # could be either: not shown
    assert not Comparison("a", "b", [10.0] * 5, [1.0] * 5).not_slower         # too few runs for any claim
    assert Comparison("a", "b", [2.0] * 7, [1.0] * 7).as_dict()["not_slower"] is True


def test_too_few_runs_give_no_verdict_however_large_the_gap():
    c = Comparison("a", "b", [10.0] * 5, [1.0] * 5)
    assert c.coverage < timing.CONFIDENCE and c.verdict == "unclear"
    assert Comparison("a", "b", [10.0] * 6, [1.0] * 6).verdict == "faster"


def test_a_few_disturbed_pairs_do_not_move_the_verdict():
    # 15 pairs where b is 2x faster; two pairs hit by a busy moment on b's side, one on a's.
    a = [2.0] * 15
    b = [1.0] * 15
    b[3], b[9], a[6] = 8.0, 5.0, 20.0
    c = Comparison("a", "b", a, b)
    assert abs(c.speedup - 2.0) < 1e-12 and c.verdict == "faster"


def test_compare_warms_up_then_alternates_and_pairs_correctly():
    clock, log = FakeClock(), []
    slow = clock.takes([9.0, 2.0], log, "a")                     # first call (the warm-up) is slow
    fast = clock.takes([9.0, 1.0], log, "b")
    c = compare(slow, fast, names=("a", "b"), repeats=6, clock=clock)
    assert log[:2] == ["a", "b"]                                  # warm-up, one each, untimed
    assert log[2:] == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b", "b", "a"]   # in turns, order alternating
    assert c.baseline_seconds == (2.0,) * 6 and c.candidate_seconds == (1.0,) * 6
    assert c.runs == 6 and c.verdict == "faster" and (c.baseline, c.candidate) == ("a", "b")


def test_compare_stops_at_its_budget_but_not_before_min_repeats():
    clock = FakeClock()
    c = compare(clock.takes([1.0]), clock.takes([1.0]), repeats=50, budget=3.0, min_repeats=6, clock=clock)
    assert c.runs == 6                                            # 12 s spent by then: stopped at the minimum
    clock = FakeClock()
    c = compare(clock.takes([0.01]), clock.takes([0.01]), repeats=50, budget=0.5, min_repeats=6, clock=clock)
    assert abs(c.runs - 25) <= 1                                  # 25 pairs x 0.02 s = the 0.5 s budget (float sums)


def test_compare_runs_on_one_thread_and_restores_the_setting():
    seen = []
    outside = torch.get_num_threads()
    torch.set_num_threads(2)             # not 1, or the test could not tell (make test runs on one thread)
    try:
        clock = FakeClock()
        step = clock.takes([1.0])

        def record():
            seen.append(torch.get_num_threads())
            step()
        compare(record, record, repeats=6, clock=clock)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        measure(record, repeats=3, threads=None, clock=clock)
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(outside)


def test_several_things_are_timed_in_rotating_rounds():
    clock, log = FakeClock(), []
    fns = {n: clock.takes([9.0, d], log, n) for n, d in (("a", 1.0), ("b", 2.0), ("c", 3.0))}
    times = timing.measure_in_turns(fns, repeats=4, clock=clock)
    assert log == ["a", "b", "c",                                          # warm-up round, untimed
                   "a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert {n: t.seconds for n, t in times.items()} == {"a": (1.0,) * 4, "b": (2.0,) * 4, "c": (3.0,) * 4}
    with pytest.raises(ValueError):
        compare(fns["a"], fns["b"], names=("same", "same"), clock=clock)


def test_measure_gives_median_spread_and_runs():
    clock = FakeClock()
    t = measure(clock.takes([5.0, 0.010, 0.012, 0.011, 0.013, 0.010, 0.050, 0.011]), repeats=7, clock=clock)
    assert t.seconds == pytest.approx((0.010, 0.012, 0.011, 0.013, 0.010, 0.050, 0.011))   # no 5 s warm-up
    assert abs(t.median - 0.011) < 1e-9 and t.interval == pytest.approx((0.010, 0.050))
    assert t.figure() == "11.0 ms (10.0–50.0, 7 runs)"


def test_trend_needs_intervals_that_do_not_overlap():
    short = Comparison("serial", "parallel", [2.0] * 7, [1.0] * 7)
    long = Comparison("serial", "parallel", [20.0] * 7, [1.0] * 7)
    noisy_long = Comparison("serial", "parallel", [1.5, 30, 2, 25, 3, 20, 1.8], [1.0] * 7)
    assert timing.trend(short, long) == "grows" and timing.trend(long, short) == "shrinks"
    assert timing.trend(short, noisy_long) == "unclear"
    assert timing.trend(Comparison("a", "b", [1.0] * 7, [1.0] * 7),
                        Comparison("a", "b", [1.01] * 7, [1.0] * 7)) == "unclear"


def test_mismatched_samples_are_refused():
    with pytest.raises(ValueError):
        Comparison("a", "b", [1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        Comparison("a", "b", [], [])
