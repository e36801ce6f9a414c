"""Tail test (generalised median test) and order-statistic quantile intervals."""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats.quantiles import quantile_interval, tail_test


def test_heavier_upper_tail_is_caught_and_lower_tail_ignored() -> None:
    rng = np.random.default_rng(7)
    base = rng.lognormal(0, 0.2, 200)
    canary = rng.lognormal(0, 0.2, 200) * np.where(rng.uniform(size=200) < 0.25, 3.0, 1.0)
    assert tail_test(canary, base, 0.9).p_value < 0.001
    assert tail_test(canary, base, 0.1, tail="lower").p_value > 0.05


def test_same_distribution_rarely_rejects() -> None:
    rng = np.random.default_rng(8)
    rejections = sum(
        tail_test(rng.normal(size=120), rng.normal(size=120), 0.9).p_value < 0.05
        for _ in range(1000)
    )
    assert rejections / 1000 < 0.07


def test_too_few_expected_exceedances_are_not_tested() -> None:
    result = tail_test([1.0] * 10 + [5.0], [1.0] * 11, 0.99)
    assert not result.tested and result.p_value == 1.0


def test_quantile_interval_covers_and_widens_with_factor() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=500)
    narrow = quantile_interval(x, 0.9, confidence=0.95)
    wide = quantile_interval(x, 0.9, confidence=0.95, factor=4.0)
    assert narrow.low < 1.2816 < narrow.high
    assert wide.low <= narrow.low and wide.high >= narrow.high
    with pytest.raises(ValueError, match="quantile"):
        quantile_interval(x, 1.5)
