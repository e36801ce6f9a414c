"""Anytime-valid statistics: false positives under continuous monitoring stay below alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.stats.sequential import (
    INCREASE_RATIOS,
    confidence_sequence_halfwidth,
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
