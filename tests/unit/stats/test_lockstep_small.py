"""Few small pairs take the broadcast search (judge.stats._lockstep._BroadcastSearch): R's
scalar Brent steps per lane, evaluations batched by comparing every shifted canary value with
every baseline value. It must give, bit for bit, what the scalar reference
(judge.stats._wilcox.asymptotic_interval) and the bracket-tracking lock-step search give.

The data exercise each branch: continuous and rounded values, heavy ties (counts), one side
constant, separated samples (limits at an end of the search interval), pairs of different
sizes in one batch (padding), and an estimate that lands exactly on an end (a zero of W there).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from judge.stats import _lockstep, mann_whitney_many
from judge.stats._lockstep import _BroadcastSearch, _LockstepSearch, lockstep_intervals
from judge.stats._wilcox import asymptotic_interval, zeroin
from tests.support.stat_pairs import mixed_pairs, paired_samples


def _small_pairs(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return mixed_pairs(seed, count=count, largest=50, lognormal_sigma=0.3)


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize(("confidence", "correct"), [(0.98, True), (0.95, False)])
def test_broadcast_search_equals_the_scalar_and_the_lockstep_search(
    seed: int, confidence: float, correct: bool
) -> None:
    pairs = _small_pairs(seed, 12)
    samples = paired_samples(pairs)
    rows = np.arange(len(pairs))
    broadcast = _BroadcastSearch(samples, rows, confidence, correct).run()
    tracked = _LockstepSearch(samples, rows, confidence, correct).run()
    assert broadcast.tolist() == tracked.tolist()
    for row, (canary, baseline) in enumerate(pairs):
        estimate, low, high = asymptotic_interval(
            np.sort(canary), np.sort(baseline), confidence, correct
        )
        assert broadcast[3 * row : 3 * row + 3].tolist() == [low, high, estimate]


def test_small_batches_take_the_broadcast_search_and_large_ones_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[str] = []
    for kind in (_BroadcastSearch, _LockstepSearch):
        original = kind.run

        def run(
            self: _LockstepSearch,
            original: Callable[[_LockstepSearch], np.ndarray] = original,
        ) -> np.ndarray:
            taken.append(type(self).__name__)
            return original(self)

        monkeypatch.setattr(kind, "run", run)
    small = paired_samples(_small_pairs(6, 5))
    lockstep_intervals(small, 0.95, True)
    monkeypatch.setattr(_lockstep, "_BROADCAST_MAX_CELLS", 0)
    lockstep_intervals(small, 0.95, True)
    assert taken == ["_BroadcastSearch", "_LockstepSearch"]


def test_zeroin_returns_an_end_that_is_a_zero() -> None:
    assert zeroin(lambda shift: shift, 0.0, 1.0, 0.0, 1.0, 1e-4, 1000) == 0.0
    assert zeroin(lambda shift: shift - 1.0, 0.0, 1.0, -1.0, 0.0, 1e-4, 1000) == 1.0
    root = zeroin(lambda shift: shift * shift - 2.0, 0.0, 2.0, -2.0, 2.0, 1e-12, 1000)
    assert abs(root - 2.0**0.5) < 1e-9


@pytest.mark.parametrize("count", [2, 3])
def test_two_or_three_small_pairs_give_the_scalar_numbers(count: int) -> None:
    pairs = _small_pairs(7, count)
    results = mann_whitney_many(pairs, confidence=0.95, correct=True, method="asymptotic")
    for (canary, baseline), result in zip(pairs, results, strict=True):
        expected = asymptotic_interval(np.sort(canary), np.sort(baseline), 0.95, True)
        assert (result.estimate, result.low, result.high) == expected


@pytest.mark.parametrize("sizes", [(30, 30), (2, 49)])
def test_untied_pairs_count_comparisons_with_the_same_numbers(sizes: tuple[int, int]) -> None:
    # Continuous values only (every multiplicity 1): R's numbers, also with pairs of
    # different sizes (padding) when the sizes differ.
    generator = np.random.default_rng(20_261_203)
    pairs = []
    for index in range(8):
        n, m = (sizes[0], sizes[0]) if sizes[0] == sizes[1] else (
            int(generator.integers(*sizes)), int(generator.integers(*sizes)))
        pairs.append((generator.normal(0.3 * (index % 3), 1, n), generator.normal(0, 1, m)))
    samples = paired_samples(pairs)
    assert bool(samples.untied.all())
    roots = _BroadcastSearch(samples, np.arange(len(pairs)), 0.98, True).run()
    for row, (canary, baseline) in enumerate(pairs):
        estimate, low, high = asymptotic_interval(np.sort(canary), np.sort(baseline), 0.98, True)
        assert roots[3 * row : 3 * row + 3].tolist() == [low, high, estimate]


@pytest.mark.parametrize("seed", [3, 8])
def test_rank_table_evaluation_equals_the_dense_counts(seed: int) -> None:
    # The broadcast search counts from its rank table (_evaluate); the lock-step search's
    # dense counts (one searchsorted per pair, checked against brute force in
    # test_lockstep_dense.py) must give the same bits, also where fl(v - d) lands on baseline
    # values (ties across the samples), with padding, and for waiting sets of every size.
    pairs = _small_pairs(seed, 6)
    samples = paired_samples(pairs)
    search = _BroadcastSearch(samples, np.arange(len(pairs)), 0.95, True)
    generator = np.random.default_rng(seed)
    everyone = np.arange(search.lanes)
    landing = np.array([float(samples.xv[row, 0] - samples.yv[row, 0]) for row in search.row])
    checked_ties = False
    for round_ in range(60):
        lanes = np.sort(generator.choice(everyone, int(generator.integers(1, search.lanes + 1)),
                                         replace=False))
        low, high = samples.lowest[search.row[lanes]], samples.highest[search.row[lanes]]
        shifts = low + generator.random(lanes.size) * (high - low)
        if round_ % 3 == 0:
            shifts = landing[lanes]  # v - d exactly a baseline value: a tie across
        fast = search._evaluate(lanes, shifts)
        general = _LockstepSearch._evaluate(search, lanes, shifts)
        assert fast.view(np.int64).tolist() == general.view(np.int64).tolist()
        shifted = samples.xv[search.row[lanes], :, None] - shifts[:, None, None]
        checked_ties |= bool((shifted == samples.yv[search.row[lanes], None, :]).any())
    assert checked_ties
