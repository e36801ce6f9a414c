"""The whole-array rank helpers give the same numbers, to the bit, as the routines they stand in
for (scipy's ``rankdata``, the per-pair rank statistics, the counting selection of differences)
on untied, tied and finely spread data."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import stats as sps

from judge.stats import _batch, _ranks
from judge.stats._batch import _rank_statistics
from judge.stats._ranks import (
    average_ranks_rows,
    rank_sum_statistics_rows,
    sorted_difference_order_statistics,
    squared_rank_statistics_rows,
)
from judge.stats._selection import PairedSamples, select_differences

KINDS = ("rounded latencies", "small counts", "fine and coarse")


def _rows(kind: str, generator: np.random.Generator, rows: int, size: int) -> np.ndarray:
    if kind == "rounded latencies":
        return np.round(generator.lognormal(3.0, 0.3, (rows, size)), 3)
    if kind == "small counts":
        return generator.integers(0, 4, (rows, size)).astype(np.float64)
    scale = 1e-3 if generator.random() < 0.5 else 10.0
    return generator.normal(0.0, scale, (rows, size))


@pytest.mark.parametrize("kind", KINDS)
def test_same_numbers_as_the_general_routines(kind: str) -> None:
    generator = np.random.default_rng(20_261_203)
    for _ in range(150):
        rows = int(generator.integers(1, 7))
        n, m = (int(size) for size in generator.integers(1, 50, 2))
        canary = _rows(kind, generator, rows, n)
        baseline = _rows(kind, generator, rows, m)
        assert np.array_equal(average_ranks_rows(canary), sps.rankdata(canary, axis=1))
        canary_sorted, baseline_sorted = np.sort(canary, axis=1), np.sort(baseline, axis=1)
        samples = PairedSamples(canary_sorted, np.full(rows, n), baseline_sorted,
                                np.full(rows, m))
        statistic, tie_sum = _rank_statistics(samples)
        for c, b in ((canary, baseline), (canary_sorted, baseline_sorted)):
            fast_statistic, fast_tie_sum = rank_sum_statistics_rows(c, b)
            assert np.array_equal(fast_statistic, statistic)
            assert np.array_equal(fast_tie_sum, tie_sum.astype(np.float64))
        ranks = generator.integers(1, n * m + 1, (rows, 3))
        ranks[0, 0] = n * m  # the last rank: the next one is +inf
        spread = np.flatnonzero(samples.highest > samples.lowest)
        if spread.size:
            value, following = select_differences(samples.subset(spread), ranks[spread])
            fast_value, fast_following = sorted_difference_order_statistics(
                canary_sorted[spread], baseline_sorted[spread], ranks[spread])
            assert np.array_equal(fast_value, value)
            assert np.array_equal(fast_following, following)


@pytest.mark.parametrize("kind", KINDS)
def test_long_rows_give_the_general_routines_numbers(kind: str) -> None:
    # Long rows take numpy's SIMD quicksort, whose order of ties differs from a stable sort:
    # the average ranks must not depend on it; and the runs of ties, found from the tied
    # neighbours only, give the rank sums and tie terms of the per-pair counts.
    generator = np.random.default_rng(18)
    values = _rows(kind, generator, 4, 2_000)
    assert np.array_equal(average_ranks_rows(values), sps.rankdata(values, axis=1))
    canary = np.sort(_rows(kind, generator, 4, 1_440), axis=1)
    baseline = np.sort(_rows(kind, generator, 4, 1_300), axis=1)
    samples = PairedSamples(canary, np.full(4, 1_440), baseline, np.full(4, 1_300))
    statistic, tie_sum = _rank_statistics(samples)
    fast_statistic, fast_tie_sum = rank_sum_statistics_rows(canary, baseline)
    assert fast_statistic.tobytes() == statistic.tobytes()
    assert fast_tie_sum.tobytes() == tie_sum.astype(np.float64).tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_squared_ranks_have_the_permutation_moments(kind: str) -> None:
    # Conover's squared-ranks statistic: the canary's share of the pooled squared average
    # ranks. Its centring and variance are the exact first two moments over every way of
    # choosing which pooled points are the canary's (enumerated), ties included; sorted and
    # unsorted rows give the same numbers.
    import itertools

    generator = np.random.default_rng(5)
    for _ in range(20):
        n, m = (int(size) for size in generator.integers(2, 7, 2))
        canary, baseline = _rows(kind, generator, 1, n), _rows(kind, generator, 1, m)
        centred, variance = squared_rank_statistics_rows(canary, baseline)
        scores = sps.rankdata(np.concatenate([canary[0], baseline[0]])) ** 2
        sums = np.array([scores[list(chosen)].sum()
                         for chosen in itertools.combinations(range(n + m), n)])
        assert centred[0] == pytest.approx(scores[:n].sum() - sums.mean(), abs=1e-9)
        assert variance[0] == pytest.approx(sums.var(), rel=1e-12, abs=1e-9)
        sorted_numbers = squared_rank_statistics_rows(np.sort(canary, axis=1),
                                                      np.sort(baseline, axis=1))
        assert np.array_equal(sorted_numbers[1], variance)
    many_c, many_b = _rows(kind, generator, 6, 60), _rows(kind, generator, 6, 45)
    together = squared_rank_statistics_rows(many_c, many_b)
    for row in range(6):
        alone = squared_rank_statistics_rows(many_c[row:row + 1], many_b[row:row + 1])
        assert (together[0][row], together[1][row]) == (alone[0][0], alone[1][0])


def test_differences_are_formed_in_chunks_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = np.random.default_rng(7)
    canary = np.sort(generator.normal(size=(5, 20)), axis=1)
    baseline = np.sort(generator.normal(size=(5, 30)), axis=1)
    ranks = generator.integers(1, 601, (5, 3))
    whole = sorted_difference_order_statistics(canary, baseline, ranks)
    monkeypatch.setattr(_ranks, "_SORT_DIFFERENCES_CHUNK_CELLS", 1_200)  # two rows a chunk
    chunked = sorted_difference_order_statistics(canary, baseline, ranks)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked, strict=True))


def test_docstring_examples_hold() -> None:
    failures, tried = doctest.testmod(_ranks)
    assert tried > 0 and failures == 0


def test_small_unpadded_buckets_take_the_pooled_ranks_with_the_same_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generator = np.random.default_rng(11)
    canary = np.sort(np.round(generator.lognormal(3.0, 0.3, (5, 30)), 1), axis=1)
    baseline = np.sort(np.round(generator.lognormal(3.0, 0.3, (5, 30)), 1), axis=1)
    samples = PairedSamples(canary, np.full(5, 30), baseline, np.full(5, 30))
    pooled: list[bool] = []
    original = rank_sum_statistics_rows

    def recording(c: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pooled.append(True)
        return original(c, b)

    monkeypatch.setattr(_batch, "rank_sum_statistics_rows", recording)
    statistic, tie_sum = _batch._bucket_rank_statistics(samples)
    expected_statistic, expected_tie_sum = _rank_statistics(samples)
    assert pooled == [True]
    assert np.array_equal(statistic, expected_statistic)
    assert tie_sum.dtype == expected_tie_sum.dtype
    assert np.array_equal(tie_sum, expected_tie_sum)
    padded = PairedSamples(canary, np.array([30, 29, 30, 30, 30]), baseline, np.full(5, 30))
    _batch._bucket_rank_statistics(padded)
    assert pooled == [True]  # padded rows keep the per-pair count
