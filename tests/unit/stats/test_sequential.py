"""Anytime-valid statistics: false positives under continuous monitoring stay below alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.stats.sequential import (
    INCREASE_RATIOS,
    confidence_sequence_halfwidth,
    one_sided_halfwidth,
    rate_ratio_log_evalue,
)


def _running_log_evalues(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log e-value after each interval (equal exposures), via cumulative sums of the
    per-interval binomial log-likelihood ratios, averaged over the default grid."""
    n = c + b
    logs = []
    for ratio in INCREASE_RATIOS:
        p1 = ratio / (ratio + 1.0)
        logs.append(np.cumsum(c * np.log(2 * p1) + (n - c) * np.log(2 * (1 - p1))))
    stacked = np.array(logs)
    return np.log(np.mean(np.exp(stacked), axis=0))


def test_running_evalue_matches_the_function() -> None:
    rng = np.random.default_rng(13)
    c, b = rng.poisson(2.0, 30), rng.poisson(2.0, 30)
    running = _running_log_evalues(c, b)
    for t in (1, 7, 30):
        assert rate_ratio_log_evalue(c[:t], b[:t]) == pytest.approx(running[t - 1], abs=1e-9)


def test_evalue_under_null_crosses_rarely_at_any_time() -> None:
    # Polled after every one of 120 intervals, the e-process must cross 1/alpha in at most
    # alpha of A/A runs (Ville's inequality).
    rng = np.random.default_rng(12)
    alpha, reps = 0.05, 2000
    crossed = 0
    for _ in range(reps):
        c, b = rng.poisson(2.0, 120), rng.poisson(2.0, 120)
        crossed += bool(np.any(_running_log_evalues(c, b) >= math.log(1 / alpha)))
    assert crossed / reps <= alpha


def test_evalue_grows_fast_with_errors_against_none() -> None:
    assert rate_ratio_log_evalue([1] * 10, [0] * 10) > math.log(100)


def test_confidence_sequence_wider_than_fixed_interval_and_shrinks() -> None:
    fixed = 1.96 / math.sqrt(60)
    assert confidence_sequence_halfwidth(60, 1.0, alpha=0.05) > fixed
    assert confidence_sequence_halfwidth(600, 1.0, alpha=0.05) < confidence_sequence_halfwidth(
        60, 1.0, alpha=0.05)


def test_ratio_grid_must_be_on_one_side() -> None:
    with pytest.raises(ValueError, match="ratios"):
        rate_ratio_log_evalue([1], [1], ratios=(0.5, 2.0))


def test_one_sided_bound_between_two_sided_at_alpha_and_twice_alpha() -> None:
    # Same rho (tuned for alpha): the two-sided radius at alpha is an upper bracket, the one at
    # 2 alpha (Phi -> 1) a lower one.
    for t in (1, 13, 20, 60, 600):
        for alpha in (0.05, 0.005 / 3):
            rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 20.0
            a = 1 + t * rho2
            one = one_sided_halfwidth(t, 2.0, alpha=alpha, t_star=20)
            assert one < confidence_sequence_halfwidth(t, 2.0, alpha=alpha, t_star=20)
            lower = 2.0 * math.sqrt(2 * a / (t * t * rho2) * math.log(math.sqrt(a) / (2 * alpha)))
            assert one > lower


def test_one_sided_bound_solves_the_half_normal_mixture() -> None:
    # 2 / sqrt(a) exp(rho^2 s^2 / (2 a)) Phi(rho s / sqrt(a)) = 1 / alpha at s = t * half / sd
    # (Howard et al. 2021), checked here by direct numerical integration over lambda >= 0.
    from scipy.integrate import quad

    t, alpha, t_star = 20, 0.01, 20.0
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / t_star
    s = t * one_sided_halfwidth(t, 1.0, alpha=alpha, t_star=t_star)
    density = lambda lam: 2 * math.exp(-lam * lam / (2 * rho2)) / math.sqrt(2 * math.pi * rho2)  # noqa: E731
    value, _ = quad(lambda lam: math.exp(lam * s - lam * lam * t / 2) * density(lam), 0, 50)
    assert value == pytest.approx(1 / alpha, rel=1e-6)


def test_one_sided_lower_bound_crosses_zero_rarely_at_any_time() -> None:
    # i.i.d. N(0, 1) scores watched after every one of 200 points: the lower bound
    # mean - half must exceed 0 in at most alpha of the runs (with known sd: the exact case).
    rng = np.random.default_rng(5)
    alpha, reps, n = 0.05, 4000, 200
    halves = np.array([one_sided_halfwidth(t, 1.0, alpha=alpha) for t in range(1, n + 1)])
    means = np.cumsum(rng.standard_normal((reps, n)), axis=1) / np.arange(1, n + 1)
    crossed = float(np.mean(np.any(means - halves > 0, axis=1)))
    assert crossed <= alpha
    # ... and the bound is not pointlessly loose: a one-sided fixed test at each look alone
    # would cross far more often.
    assert crossed > alpha / 10
