"""The lock-step search's dense evaluation of W(d) (judge.stats._lockstep._LockstepSearch._dense:
plain counts for untied pairs, tie terms only where values meet, the ends of the search
interval counted once per pair) counts what a brute-force comparison of every shifted canary
value with every baseline value counts, and the roots it leads to are the scalar reference's
(judge.stats._wilcox.asymptotic_interval), bit for bit.

Counts are checked on their own (untied samples, which take the plain-count branch; tied ones,
with shifts landing exactly on differences so that values tie across the samples; lanes handed
over out of pair order), and the roots on batches mixing sizes from 1 point up, samples where
one side is all tied, huge values, and pairs whose lanes converge at different rounds.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats._lockstep import _LockstepSearch
from judge.stats._wilcox import asymptotic_interval
from tests.support.stat_pairs import mixed_pairs, paired_samples


def _brute_counts(canary: np.ndarray, baseline: np.ndarray, shift: float) -> tuple[int, int, int]:
    """Greater, equal and the cross-sample tie term 3we(w+e) summed over shifted values."""
    shifted = canary - shift
    greater = int((shifted[:, None] > baseline[None, :]).sum())
    equal = int((shifted[:, None] == baseline[None, :]).sum())
    ties = 0
    for value in np.unique(shifted).tolist():
        w = int((shifted == value).sum())
        e = int((baseline == value).sum())
        ties += 3 * w * e * (w + e)
    return greater, equal, ties


def _shifts_for(
    pairs: list[tuple[np.ndarray, np.ndarray]], lanes: np.ndarray, seed: int
) -> np.ndarray:
    """Per lane a shift: half of them an exact difference canary_i - baseline_j (values then
    tie across the samples), the others anywhere in the pair's range of differences."""
    generator = np.random.default_rng(seed)
    shifts = []
    for lane in lanes.tolist():
        canary, baseline = pairs[lane // 3]
        if lane % 2 == 0:
            shifts.append(float(generator.choice(canary) - generator.choice(baseline)))
        else:
            low, high = canary.min() - baseline.max(), canary.max() - baseline.min()
            shifts.append(float(generator.uniform(low, high)))
    return np.array(shifts)


def _untied_pairs(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    generator = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        n, m = (int(size) for size in generator.integers(1, 300, size=2))
        pairs.append((generator.normal(0.3, 1, n), generator.normal(0, 1, m)))
    return pairs


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_dense_counts_are_the_brute_force_counts(kind: str) -> None:
    pairs = (
        _untied_pairs(11, 9)
        if kind == "untied"
        else mixed_pairs(12, count=12, largest=300, lognormal_sigma=0.5)
    )
    samples = paired_samples(pairs)
    assert bool(samples.untied.all()) == (kind == "untied")
    search = _LockstepSearch(samples, np.arange(len(pairs)), 0.98, True)
    # Lanes out of pair order, some pairs with several lanes, some with none.
    lanes = np.random.default_rng(13).permutation(search.lanes)[: 2 * len(pairs)]
    shifts = _shifts_for(pairs, lanes, seed=14)
    greater, equal, ties = search._dense(lanes, shifts)
    for position, (lane, shift) in enumerate(zip(lanes.tolist(), shifts.tolist(), strict=True)):
        canary, baseline = pairs[lane // 3]
        expected = _brute_counts(canary, baseline, shift)
        assert (int(greater[position]), int(equal[position]), int(ties[position])) == expected
        row = lane // 3
        size = int(samples.nd[row])
        distinct_shifted = samples.xv[row, :size] - shift
        distinct_baseline = samples.yv[row, : int(samples.md[row])]
        below = np.searchsorted(distinct_baseline, distinct_shifted, side="left")
        upto = np.searchsorted(distinct_baseline, distinct_shifted, side="right")
        assert search._last_below[lane, :size].tolist() == below.tolist()
        assert search._last_upto[lane, :size].tolist() == upto.tolist()
        assert int(search._last_below_sum[lane]) == int(below.sum())
        assert int(search._last_upto_sum[lane]) == int(upto.sum())
    # Exact differences were among the shifts: the tie branch was exercised.
    assert kind == "untied" or bool(equal.any())


def test_shared_ends_count_as_each_lane_would() -> None:
    pairs = mixed_pairs(15, count=12, largest=200, lognormal_sigma=0.5)
    samples = paired_samples(pairs)
    rows = np.arange(len(pairs))
    shared = _LockstepSearch(samples, rows, 0.95, True)
    each = _LockstepSearch(samples, rows, 0.95, True)
    for end in (samples.lowest, samples.highest):
        per_lane = np.repeat(end, 3)
        values = shared._evaluate_shared(per_lane)
        expected = each._evaluate(np.arange(each.lanes), per_lane)
        assert np.array_equal(values, expected, equal_nan=True)
        assert np.array_equal(shared._last_below, each._last_below)
        assert np.array_equal(shared._last_upto, each._last_upto)
        assert np.array_equal(shared._last_below_sum, each._last_below_sum)
        assert np.array_equal(shared._last_upto_sum, each._last_upto_sum)


def _edge_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    generator = np.random.default_rng(16)
    return [
        # One point on a side.
        (np.array([0.7]), generator.normal(0, 1, 40)),
        (generator.normal(0.2, 1, 35), np.array([-0.1])),
        # A side all tied, the other with ties too.
        (np.full(50, 2.0), np.round(generator.normal(2, 1, 60), 1)),
        (np.round(generator.normal(2, 1, 45), 0), np.full(30, 2.0)),
        # Huge values, far enough apart that shifted values never round together.
        (1e12 + 1e3 * generator.normal(0.1, 1, 80), 1e12 + 1e3 * generator.normal(0, 1, 90)),
        (-1e14 + np.round(1e4 * generator.normal(0, 1, 70)), -1e14 + np.round(
            1e4 * generator.normal(0.5, 1, 75))),
        # A wide pair and a narrow one: their lanes converge at different rounds.
        (generator.normal(0.1, 1, 400), generator.normal(0, 1, 380)),
        (generator.normal(50, 0.01, 12), generator.normal(50, 0.01, 9)),
    ]


@pytest.mark.parametrize(("confidence", "correct"), [(0.98, True), (0.9, False)])
@pytest.mark.parametrize("batch", ["edges", "mixed", "untied"])
def test_lockstep_roots_equal_the_scalar_search(
    batch: str, confidence: float, correct: bool
) -> None:
    if batch == "edges":
        pairs = _edge_pairs()
    elif batch == "mixed":
        pairs = mixed_pairs(17, count=18, largest=400, lognormal_sigma=0.5)
    else:
        pairs = _untied_pairs(18, 10)
    samples = paired_samples(pairs)
    roots = _LockstepSearch(samples, np.arange(len(pairs)), confidence, correct).run()
    for row, (canary, baseline) in enumerate(pairs):
        estimate, low, high = asymptotic_interval(
            np.sort(canary), np.sort(baseline), confidence, correct
        )
        assert roots[3 * row : 3 * row + 3].tolist() == [low, high, estimate]
