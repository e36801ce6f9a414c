"""Anytime-valid statistics: false positives under continuous monitoring stay below alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judge.stats.sequential import confidence_sequence_halfwidth, rate_ratio_log_evalue


def test_evalue_under_null_crosses_rarely_at_any_time() -> None:
    rng = np.random.default_rng(12)
    alpha, reps, crossed = 0.05, 400, 0
    for _ in range(reps):
        c, b = rng.poisson(2.0, 120), rng.poisson(2.0, 120)
        for t in range(1, 121):  # polled after every interval
            if rate_ratio_log_evalue(c[:t], b[:t]) >= math.log(1 / alpha):
                crossed += 1
                break
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
