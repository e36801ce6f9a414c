"""The counting selection of pairwise differences (``judge.stats._selection``) gives the k-th
smallest difference exactly, whatever its probes and however it lists a bracket: held to
sorting all n*m differences, to the bit, on untied, tied and heavily tied pairs large enough
to take several rounds."""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats import _selection
from judge.stats._ranks import sorted_difference_order_statistics
from judge.stats._selection import PairedSamples, select_differences

KINDS = ("untied", "rounded latencies", "small counts", "shifted and tied")


def _pair_rows(kind: str, generator: np.random.Generator, rows: int, n: int, m: int
               ) -> tuple[np.ndarray, np.ndarray]:
    if kind == "untied":
        canary, baseline = generator.normal(0.0, 1.0, (rows, n)), generator.normal(0, 1, (rows, m))
    elif kind == "rounded latencies":
        canary = np.round(generator.lognormal(3.0, 0.4, (rows, n)), 1)
        baseline = np.round(generator.lognormal(3.0, 0.4, (rows, m)), 1)
    elif kind == "small counts":
        canary = generator.poisson(2.0, (rows, n)).astype(np.float64)
        baseline = generator.poisson(1.5, (rows, m)).astype(np.float64)
    else:
        canary = np.round(generator.normal(10.0, 2.0, (rows, n)), 0) + 0.5
        baseline = np.round(generator.normal(9.0, 2.0, (rows, m)), 2)
    return np.sort(canary, axis=1), np.sort(baseline, axis=1)


def _ranks(generator: np.random.Generator, rows: int, pairs: int) -> np.ndarray:
    # The shift test's targets (the interval's ends about the median, and the median) and
    # ranks anywhere, the first and last included.
    half = int(pairs * generator.uniform(0.3, 0.49))
    ranks = np.stack([np.full(rows, half), np.full(rows, pairs + 1 - half),
                      np.full(rows, (pairs + 1) // 2)], axis=1)
    ranks[0] = generator.integers(1, pairs + 1, 3)
    ranks[-1, 0], ranks[-1, 1] = 1, pairs
    return ranks


@pytest.mark.parametrize("repeat_factor", [0, 2, 1_000_000])
@pytest.mark.parametrize("kind", KINDS)
def test_selection_is_the_sorted_differences(
    kind: str, repeat_factor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # repeat_factor 0: every bracket holding tied values carries their weights through the
    # sort; 10^6: every one repeats its tied differences by their weights; 2: the default
    # choice, bracket by bracket.
    monkeypatch.setattr(_selection, "_REPEAT_WEIGHTS_MAX_FACTOR", repeat_factor)
    generator = np.random.default_rng(18)
    for n, m in ((300, 400), (700, 650), (1440, 1440)):
        rows = 3
        canary, baseline = _pair_rows(kind, generator, rows, n, m)
        samples = PairedSamples(canary, np.full(rows, n), baseline, np.full(rows, m))
        ranks = _ranks(generator, rows, n * m)
        value, following = select_differences(samples, ranks)
        expected_value, expected_following = sorted_difference_order_statistics(
            canary, baseline, ranks)
        assert value.tobytes() == expected_value.tobytes()
        assert following.tobytes() == expected_following.tobytes()


def test_distinct_values_and_counts_are_numpys_unique() -> None:
    # The flat-index tables of distinct values (padded rows of several lengths, ties from
    # counts to none) against np.unique of each row's values, padding included.
    generator = np.random.default_rng(18)
    for trial in range(300):
        rows, width = int(generator.integers(1, 6)), int(generator.integers(1, 60))
        if trial % 3 == 0:
            values = generator.integers(0, 4, (rows, width)).astype(np.float64)
        elif trial % 3 == 1:
            values = np.round(generator.normal(size=(rows, width)), 1)
        else:
            values = generator.normal(size=(rows, width))
        sizes = generator.integers(1, width + 1, rows)
        padded = np.sort(np.where(np.arange(width) < sizes[:, None], values, np.inf), axis=1)
        for padding in (0.0, np.inf):
            distinct_values, counts, distinct = _selection._distinct_rows(padded, sizes, padding)
            assert distinct_values.shape == counts.shape == (rows, int(distinct.max()))
            for row in range(rows):
                unique, unique_counts = np.unique(padded[row, : sizes[row]], return_counts=True)
                assert distinct[row] == unique.size
                # Equal values (-0.0 and 0.0 from rounding are one value), not their bits.
                assert np.array_equal(distinct_values[row, : unique.size], unique)
                assert np.array_equal(counts[row, : unique.size], unique_counts)
                assert np.all(distinct_values[row, unique.size:] == padding)
                assert not counts[row, unique.size:].any()
