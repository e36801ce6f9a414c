"""Unit tests of the preprocessing helpers, effect sizes, aggregates and summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.stats import (
    aggregate,
    apply_nan_strategy,
    cles,
    mean_ratio,
    remove_outliers_iqr,
    summarize,
)


def test_nan_remove_drops_and_counts() -> None:
    cleaned, nan_count = apply_nan_strategy([1.0, math.nan, 2.0, math.nan], "remove")
    assert cleaned.tolist() == [1.0, 2.0]
    assert nan_count == 2


def test_nan_replace_uses_zero_and_keeps_infinity() -> None:
    cleaned, nan_count = apply_nan_strategy([math.nan, math.inf, 3.0], "replace")
    assert cleaned.tolist() == [0.0, math.inf, 3.0]
    assert nan_count == 1


def test_nan_strategy_empty_input() -> None:
    cleaned, nan_count = apply_nan_strategy([], "remove")
    assert cleaned.size == 0
    assert nan_count == 0


def test_nan_strategy_rejects_unknown_strategy_naming_choices() -> None:
    with pytest.raises(ValueError, match=r"`strategy` must be one of 'remove', 'replace'"):
        apply_nan_strategy([1.0], "drop")  # type: ignore[arg-type]


def test_iqr_keeps_values_inside_widened_fences() -> None:
    # Q1 = 2, Q3 = 4, so Tukey's upper fence is 10, but P99 = 1000 widens it: only 1e5 goes.
    values = [1.0, 2.0, 3.0, 4.0, 1000.0] * 20 + [1e5]
    kept = remove_outliers_iqr(values, factor=3.0)
    assert kept.size == 100
    assert kept.max() == 1000.0


def test_iqr_plain_tukey_fence_when_percentiles_are_inside() -> None:
    values = np.concatenate([np.arange(1.0, 201.0), [10_000.0, -10_000.0]])
    # Q1 = 50.75, Q3 = 151.25 -> fences -250.75 / 452.75; P1 = 2.01, P99 = 198.99.
    kept = remove_outliers_iqr(values, factor=3.0)
    assert kept.tolist() == list(np.arange(1.0, 201.0))


def test_iqr_empty_and_constant() -> None:
    assert remove_outliers_iqr([]).size == 0
    assert remove_outliers_iqr([5.0, 5.0, 5.0]).tolist() == [5.0, 5.0, 5.0]


@pytest.mark.parametrize("factor", [0.0, -1.0])
def test_iqr_rejects_non_positive_factor(factor: float) -> None:
    with pytest.raises(ValueError, match="`factor` must be greater than zero"):
        remove_outliers_iqr([1.0, 2.0], factor=factor)


def test_aggregate_all_kinds() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert aggregate(values, "mean") == 2.5
    assert aggregate(values, "median") == 2.5
    assert aggregate(values, "min") == 1.0
    assert aggregate(values, "max") == 4.0
    assert aggregate(values, "last") == 2.0
    assert aggregate(values, "sum") == 10.0
    # R: quantile(c(4, 1, 3, 2), 0.9, type = 7) = 3.7
    assert aggregate(values, "percentile", 90) == pytest.approx(3.7, abs=1e-12)
    assert aggregate(values, "percentile", 0) == 1.0
    assert aggregate(values, "percentile", 100) == 4.0


def test_aggregate_validation() -> None:
    with pytest.raises(ValueError, match="`how` must be one of"):
        aggregate([1.0], "p95")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`percentile` is required"):
        aggregate([1.0], "percentile")
    with pytest.raises(ValueError, match="between 0 and 100"):
        aggregate([1.0], "percentile", 101)
    with pytest.raises(ValueError, match="only used with how='percentile'"):
        aggregate([1.0], "mean", 50)
    with pytest.raises(ValueError, match="`values` must contain at least one value"):
        aggregate([], "mean")


def test_mean_ratio_and_zero_means() -> None:
    assert mean_ratio([2.0, 4.0], [1.0, 2.0]) == 2.0
    assert math.isnan(mean_ratio([1.0], [0.0, 0.0]))
    # Kayenta's EffectSizes.meanRatio is NaN when the experiment mean is 0 as well.
    assert math.isnan(mean_ratio([-1.0, 1.0], [1.0]))
    with pytest.raises(ValueError, match="`baseline` must contain at least one value"):
        mean_ratio([1.0], [])


def test_cles_counts_ties_as_half() -> None:
    assert cles([1.0, 2.0, 3.0], [2.0]) == 0.5
    assert cles([5.0, 6.0], [1.0, 2.0]) == 1.0
    assert cles([1.0, 2.0], [5.0, 6.0]) == 0.0
    # Kayenta's rank formula (2 R1 - m (m + 1)) / (2 n m) on the same data.
    canary = np.array([1.0, 2.0, 2.0, 7.0])
    baseline = np.array([2.0, 3.0, 0.5])
    combined = np.concatenate([canary, baseline])
    ranks = np.argsort(np.argsort(combined)).astype(float) + 1.0
    for value in np.unique(combined):
        same = combined == value
        ranks[same] = ranks[same].mean()
    m, n = canary.size, baseline.size
    expected = (2.0 * ranks[:m].sum() - m * (m + 1)) / (2.0 * n * m)
    assert cles(canary, baseline) == pytest.approx(expected, abs=1e-15)


def test_summarize() -> None:
    summary = summarize(np.arange(1.0, 101.0))
    assert summary.count == 100
    assert summary.mean == 50.5
    assert summary.median == 50.5
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.min == 1.0 and summary.max == 100.0
    assert summary.std == pytest.approx(np.std(np.arange(1.0, 101.0), ddof=1))
    assert summary.as_dict()["count"] == 100
    empty = summarize([])
    assert empty.count == 0 and math.isnan(empty.mean)
    assert math.isnan(summarize([3.0]).std)
