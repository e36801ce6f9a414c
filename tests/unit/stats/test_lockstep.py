"""R's root search in lock step (judge.stats._lockstep) gives, bit for bit, what the scalar
search (judge.stats._wilcox.asymptotic_interval, R's uniroot step by step) gives pair by pair.

The R numbers themselves are pinned in test_mann_whitney_r_reference.py and the Kayenta suites;
here the batch is held to the scalar reference on data that exercises every path: continuous
and rounded values, heavy ties (counts), sizes large enough that lanes switch from whole-sample
searches to listed pairs, one side constant, limits at an end of the search interval, and
offsets so large that shifted values could round together (the scalar fallback).
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats import mann_whitney_many
from judge.stats._lockstep import _no_absorption, lockstep_intervals
from judge.stats._selection import PairedSamples
from judge.stats._wilcox import asymptotic_interval
from tests.support.stat_pairs import mixed_pairs


def _mixed_pairs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return mixed_pairs(seed, count=120, largest=700, lognormal_sigma=0.5)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("confidence", "correct"), [(0.98, True), (0.95, False)])
def test_batch_search_equals_the_scalar_search(seed: int, confidence: float, correct: bool) -> None:
    pairs = _mixed_pairs(seed)
    results = mann_whitney_many(
        pairs, confidence=confidence, correct=correct, method="asymptotic",
        interval_search="uniroot",
    )
    for (canary, baseline), result in zip(pairs, results, strict=True):
        canary_sorted, baseline_sorted = np.sort(canary), np.sort(baseline)
        expected = asymptotic_interval(canary_sorted, baseline_sorted, confidence, correct)
        assert (result.estimate, result.low, result.high) == expected


def test_values_that_could_round_together_keep_the_scalar_search() -> None:
    # 1e16 + k: neighbouring values are 2 apart, an ulp of the shifted values is 2 as well.
    canary = np.sort(1e16 + 2.0 * np.arange(40.0))
    baseline = np.sort(1e16 + 2.0 * np.arange(5.0, 60.0))
    ordinary = np.sort(np.arange(40.0)), np.sort(np.arange(5.0, 60.0) + 0.5)
    width = 60
    canaries = np.full((2, width), np.inf)
    baselines = np.full((2, width), np.inf)
    canaries[0, :40], canaries[1, :40] = canary, ordinary[0]
    baselines[0, :55], baselines[1, :55] = baseline, ordinary[1]
    samples = PairedSamples(canaries, np.array([40, 40]), baselines, np.array([55, 55]))
    assert _no_absorption(samples).tolist() == [False, True]
    estimate, low, high = lockstep_intervals(samples, 0.98, True)
    for row, (x, y) in enumerate([(canary, baseline), ordinary]):
        assert (estimate[row], low[row], high[row]) == asymptotic_interval(x, y, 0.98, True)
