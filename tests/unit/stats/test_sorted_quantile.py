"""sorted_quantile is numpy's linear (R-7) quantile to the last bit, on the samples reports see."""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats._descriptive import median_rows, sorted_quantile, sorted_quantile_rows


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0])
def test_equals_numpy_linear_quantile(fraction: float) -> None:
    generator = np.random.default_rng(20_261_203)
    samples = [np.array([7.5]), np.array([1.0, 2.0]), np.full(9, 3.0)]
    for size in (2, 3, 10, 29, 30, 101, 1_440):
        samples.append(generator.lognormal(3.0, 1.0, size))
        samples.append(np.round(generator.normal(0.0, 1e6, size), 1))
        samples.append(generator.integers(-3, 3, size).astype(float))
    for sample in samples:
        ordered = np.sort(sample)
        expected = float(np.quantile(ordered, fraction))
        assert sorted_quantile(ordered, fraction) == expected
        # percentile=90 is asked as 90 / 100, as np.percentile divides.
        percent = fraction * 100.0
        assert sorted_quantile(ordered, percent / 100.0) == float(np.percentile(ordered, percent))


def test_row_medians_and_quantiles_are_numpys_to_the_bit() -> None:
    generator = np.random.default_rng(20_261_203)
    for trial in range(1_000):
        rows, size = int(generator.integers(1, 6)), int(generator.integers(1, 300))
        values = generator.lognormal(3.0, 2.0, (rows, size)) * 10.0 ** generator.uniform(-6, 6)
        if trial % 2:
            values = np.round(values, 1)
        assert np.array_equal(median_rows(values), np.median(values, axis=1))
        ordered = np.sort(values, axis=1)
        for fraction in (0.01, 0.1, 0.25, 0.5, 0.9, 0.99, float(generator.uniform())):
            assert np.array_equal(sorted_quantile_rows(ordered, fraction),
                                  np.quantile(values, fraction, axis=1))
    with_nan = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    assert np.array_equal(median_rows(with_nan), np.median(with_nan, axis=1), equal_nan=True)
