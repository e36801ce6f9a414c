"""Argument validation and the defined behaviour where R stops or warns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.stats import MannWhitneyResult, mann_whitney, mann_whitney_many


@pytest.mark.parametrize(
    ("canary", "baseline", "message"),
    [
        ([], [1.0], "`canary` must contain at least one value"),
        ([1.0], [], "`baseline` must contain at least one value"),
        ([1.0, math.nan], [1.0], "`canary` must contain only finite values"),
        ([1.0], [math.inf], "`baseline` must contain only finite values"),
        ([[1.0, 2.0]], [1.0], "`canary` must be one-dimensional"),
        (["a"], [1.0], "`canary` must be a sequence of numbers"),
    ],
)
def test_rejects_bad_samples_naming_the_parameter(
    canary: list[object], baseline: list[object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mann_whitney(canary, baseline)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 95, True])
def test_rejects_confidence_outside_the_unit_interval(confidence: float) -> None:
    with pytest.raises(ValueError, match="`confidence` must"):
        mann_whitney([1.0, 2.0], [3.0], confidence=confidence)


def test_rejects_unknown_choices_listing_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="`method` must be one of 'auto', 'exact', 'asymptotic'"):
        mann_whitney([1.0], [2.0], method="normal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`interval_search` must be one of 'closed_form'"):
        mann_whitney([1.0], [2.0], interval_search="brent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`correct` must be True or False"):
        mann_whitney([1.0], [2.0], correct=1)  # type: ignore[arg-type]


def test_exact_method_has_a_size_limit() -> None:
    canary = np.arange(200.0)
    baseline = np.arange(60.0) + 0.5
    with pytest.raises(ValueError, match="`method`='exact' supports n_canary \\* n_baseline"):
        mann_whitney(canary, baseline, method="exact")


def test_batch_names_the_pair_too_large_for_the_exact_method() -> None:
    small = (np.arange(5.0), np.arange(5.0) + 0.5)
    large = (np.arange(200.0), np.arange(60.0) + 0.5)
    with pytest.raises(ValueError, match=r"^pairs\[1\]: `method`='exact' supports"):
        mann_whitney_many([small, large], method="exact")


def test_batch_error_names_the_pair() -> None:
    with pytest.raises(ValueError, match=r"`pairs\[1\]\[1\] \(baseline\)` must contain at least"):
        mann_whitney_many([([1.0], [2.0]), ([1.0], [])])


def test_batch_of_nothing_is_empty() -> None:
    assert mann_whitney_many([]) == []


def test_single_points() -> None:
    # R: wilcox.test(1.5, 0.25, conf.int = TRUE) -> exact, estimate 1.25, interval [1.25, 1.25]
    result = mann_whitney([1.5], [0.25])
    assert result == MannWhitneyResult(1.25, 1.25, 1.25, 1.0, "exact", 1.0, 1, 1, 0.95)
    # Asymptotic, R stops; here the single difference is estimate and interval.
    forced = mann_whitney([1.0], [2.0], method="asymptotic")
    assert (forced.estimate, forced.low, forced.high) == (-1.0, -1.0, -1.0)
    assert forced.method == "asymptotic"


def test_all_values_equal_is_no_evidence_of_a_shift() -> None:
    # R: p-value NaN and "cannot compute confidence interval when all observations are tied".
    result = mann_whitney([3.0] * 5, [3.0] * 7)
    assert result.p_value == 1.0
    assert (result.estimate, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.statistic == 17.5
    assert not result.excludes_zero()


def test_both_constant_but_different() -> None:
    # R: p-value 0.0004148759634539933 (from the fixture `constant_different`), then stops.
    result = mann_whitney([1.0] * 6, [2.0] * 8)
    assert result.p_value == pytest.approx(0.0004148759634539933, rel=1e-12)
    assert result.interval == (-1.0, -1.0)
    assert result.excludes_zero()


def test_one_side_constant_is_an_ordinary_asymptotic_case() -> None:
    result = mann_whitney([2.0] * 30, np.linspace(1.0, 3.0, 41))
    assert result.method == "asymptotic"
    assert result.low < 0.0 < result.high
    assert result.estimate == pytest.approx(0.0, abs=1e-4)


def test_inputs_are_not_modified() -> None:
    canary = np.array([3.0, 1.0, 2.0])
    baseline = np.array([0.5, 0.25])
    mann_whitney(canary, baseline)
    assert canary.tolist() == [3.0, 1.0, 2.0]
    assert baseline.tolist() == [0.5, 0.25]
