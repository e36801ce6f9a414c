"""AR(1)-corrected Mann-Whitney: nominal false-positive rate on autocorrelated A/A data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.signal import lfilter

from judge.stats.autocorrelation import (
    ar1_variance_factor,
    estimate_autocorrelation,
    lag1_autocorrelation,
    shift_test,
)


def _ar1(rng: np.random.Generator, phi: float, n: int) -> np.ndarray:
    e = rng.standard_normal(n)
    drive = e * np.sqrt(1 - phi**2)
    drive[0] = e[0]
    return np.asarray(lfilter([1.0], [1.0, -phi], drive))


def test_independent_case_matches_scipy_asymptotic_without_continuity() -> None:
    rng = np.random.default_rng(1)
    c, b = rng.normal(0.3, 1, 40), rng.normal(0, 1, 50)
    ours = shift_test(c, b)
    ref = sps.mannwhitneyu(c, b, alternative="greater", method="asymptotic", use_continuity=False)
    assert ours.p_greater == pytest.approx(ref.pvalue, rel=1e-9)


def test_phi_estimate_recovers_ar1_and_ignores_shared_cycle() -> None:
    rng = np.random.default_rng(2)
    cycle = 5 * np.sin(np.linspace(0, 3, 600))
    c, b = cycle + _ar1(rng, 0.6, 600), cycle + _ar1(rng, 0.6, 600)
    assert lag1_autocorrelation(c - b) == pytest.approx(0.6, abs=0.08)
    assert estimate_autocorrelation(c, b, margin=0).phi_canary == pytest.approx(0.6, abs=0.08)


@pytest.mark.parametrize("phi", [0.0, 0.7])
def test_false_positive_rate_near_nominal_on_ar1(phi: float) -> None:
    rng = np.random.default_rng(3)
    reps, rejections, naive = 1500, 0, 0
    for _ in range(reps):
        c, b = _ar1(rng, phi, 60), _ar1(rng, phi, 60)
        est = estimate_autocorrelation(c, b)
        result = shift_test(c, b, factor_canary=est.factor_canary,
                            factor_baseline=est.factor_baseline)
        rejections += result.p_greater < 0.025
        naive += shift_test(c, b).p_greater < 0.025
    assert rejections / reps < 0.04
    if phi == 0.7:
        assert naive / reps > 0.15  # the problem being solved: uncorrected, it cries wolf


def test_interval_covers_true_shift_and_is_infinite_when_data_cannot_bound_it() -> None:
    rng = np.random.default_rng(4)
    result = shift_test(rng.normal(2, 1, 80), rng.normal(0, 1, 80), confidence=0.95)
    assert result.low < 2 < result.high
    tiny = shift_test([1.0, 2.0], [1.5, 0.5], factor_canary=5, factor_baseline=5)
    assert tiny.low == -np.inf and tiny.high == np.inf


def test_variance_factor() -> None:
    assert ar1_variance_factor(0.0) == 1.0
    assert ar1_variance_factor(0.5) == pytest.approx(3.0)
