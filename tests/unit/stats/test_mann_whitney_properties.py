"""Properties of mann_whitney and mann_whitney_many, checked on generated data (hypothesis).

Inputs are quarter-integers, so that shifting by a quarter-integer and scaling by a power of two
are exact in floating point and any difference in the results comes from the algorithm. The
tolerance is zero for the exact method and for the order statistics of the default search; where
R's Brent search is replayed (small asymptotic pairs, wide estimate gaps, ``"uniroot"``) the
roots are only determined to R's tolerance, 1e-4, and an estimate whose root is a whole interval
may land anywhere in it (see docs/statistics.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judge.stats import MannWhitneyResult, mann_whitney, mann_whitney_many
from judge.stats._wilcox import reference_mann_whitney

ROOT_TOLERANCE = 1e-4

quarter = st.integers(min_value=-4_000, max_value=4_000).map(lambda value: value / 4.0)
coarse = st.integers(min_value=-6, max_value=6).map(float)
values = st.one_of(quarter, coarse)
samples = st.lists(values, min_size=1, max_size=70)
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _root_interval(canary: list[float], baseline: list[float]) -> tuple[float, float]:
    """The two middle pairwise differences: every zero of R's W(d) lies between them."""
    differences = np.sort(np.subtract.outer(canary, baseline).ravel())
    size = differences.size
    return float(differences[(size - 1) // 2]), float(differences[size // 2])


def _tolerance(result: MannWhitneyResult, scale: float = 1.0) -> float:
    return 0.0 if result.method == "exact" else 2.5 * ROOT_TOLERANCE * scale


@PROPERTY_SETTINGS
@given(samples, samples)
def test_low_estimate_high_are_ordered(canary: list[float], baseline: list[float]) -> None:
    result = mann_whitney(canary, baseline)
    tolerance = _tolerance(result)
    assert result.low <= result.estimate + tolerance
    assert result.estimate <= result.high + tolerance
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.statistic <= len(canary) * len(baseline)
    lowest = min(canary) - max(baseline)
    highest = max(canary) - min(baseline)
    assert lowest <= result.low and result.high <= highest


@PROPERTY_SETTINGS
@given(samples, samples)
def test_swapping_samples_negates_the_shift(canary: list[float], baseline: list[float]) -> None:
    forward = mann_whitney(canary, baseline)
    backward = mann_whitney(baseline, canary)
    assert backward.method == forward.method
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-12, abs=1e-15)
    assert backward.statistic == len(canary) * len(baseline) - forward.statistic
    tolerance = _tolerance(forward)
    assert backward.low == pytest.approx(-forward.high, abs=tolerance)
    assert backward.high == pytest.approx(-forward.low, abs=tolerance)
    low, high = _root_interval(canary, baseline)
    for estimate in (forward.estimate, -backward.estimate):
        assert low - tolerance <= estimate <= high + tolerance


@PROPERTY_SETTINGS
@given(samples, samples, quarter)
def test_shifting_the_canary_shifts_estimate_and_interval(
    canary: list[float], baseline: list[float], shift: float
) -> None:
    # The p-value and W test "no shift", so they change; the shift estimate moves along. The
    # method can change too (a shift can create or remove ties between the samples).
    original = mann_whitney(canary, baseline)
    shifted = mann_whitney([value + shift for value in canary], baseline)
    tolerance = max(_tolerance(original), _tolerance(shifted))
    if shifted.method == original.method:
        # The asymptotic limits depend on ties inside each sample only, which a shift keeps.
        assert shifted.low == pytest.approx(original.low + shift, abs=tolerance)
        assert shifted.high == pytest.approx(original.high + shift, abs=tolerance)
    low, high = _root_interval(canary, baseline)
    assert low + shift - tolerance <= shifted.estimate <= high + shift + tolerance


@PROPERTY_SETTINGS
@given(samples, samples, st.sampled_from([0.25, 0.5, 2.0, 8.0, 1024.0]))
def test_scaling_both_samples_scales_estimate_and_interval(
    canary: list[float], baseline: list[float], factor: float
) -> None:
    original = mann_whitney(canary, baseline)
    scaled = mann_whitney([v * factor for v in canary], [v * factor for v in baseline])
    assert scaled.p_value == pytest.approx(original.p_value, rel=1e-12, abs=1e-15)
    assert scaled.statistic == original.statistic
    # R's root tolerance is absolute, so it does not scale with the data.
    tolerance = _tolerance(original, scale=max(1.0, factor))
    assert scaled.low == pytest.approx(original.low * factor, abs=tolerance)
    assert scaled.high == pytest.approx(original.high * factor, abs=tolerance)
    low, high = _root_interval(canary, baseline)
    assert low * factor - tolerance <= scaled.estimate <= high * factor + tolerance


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(samples, samples), min_size=1, max_size=8))
def test_batch_equals_one_by_one(pairs: list[tuple[list[float], list[float]]]) -> None:
    batch = mann_whitney_many(pairs, confidence=0.98)
    assert batch == [mann_whitney(c, b, confidence=0.98) for c, b in pairs]


def _random_pairs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Large pairs (closed-form path) of several kinds, ties included."""
    generator = np.random.default_rng(seed)
    pairs = []
    for kind in range(6):
        n, m = int(generator.integers(60, 400)), int(generator.integers(60, 400))
        if kind == 0:
            pair = generator.poisson(0.3, n), generator.poisson(0.4, m)
        elif kind == 1:
            pair = generator.poisson(4.0, n), generator.poisson(4.5, m)
        elif kind == 2:
            pair = np.round(generator.normal(0, 1, n), 1), np.round(generator.normal(0.2, 1, m), 1)
        elif kind == 3:
            pair = generator.lognormal(4, 1, n), generator.lognormal(4.1, 1, m)
        elif kind == 4:
            pair = generator.normal(0, 1, n) * 1e-3, generator.normal(0.1, 1, m) * 1e-3
        else:
            pair = generator.normal(5e7, 1e6, n), generator.normal(5.01e7, 1e6, m)
        pairs.append((np.asarray(pair[0], dtype=float), np.asarray(pair[1], dtype=float)))
    return pairs


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("correct", [True, False])
def test_batch_agrees_with_rs_search_replayed_step_by_step(seed: int, correct: bool) -> None:
    pairs = _random_pairs(seed)
    batch = mann_whitney_many(pairs, confidence=0.95, correct=correct)
    for (canary, baseline), result in zip(pairs, batch, strict=True):
        reference = reference_mann_whitney(canary, baseline, 0.95, "auto", correct)
        scale = max(1.0, float(canary.max() - baseline.min() - (canary.min() - baseline.max())))
        assert result.statistic == reference.statistic
        assert result.p_value == pytest.approx(reference.p_value, rel=1e-12, abs=1e-15)
        for ours, theirs in (
            (result.estimate, reference.estimate),
            (result.low, reference.low),
            (result.high, reference.high),
        ):
            assert ours == pytest.approx(theirs, abs=ROOT_TOLERANCE * scale)
        uniroot = mann_whitney(
            canary, baseline, confidence=0.95, correct=correct, interval_search="uniroot"
        )
        assert (uniroot.estimate, uniroot.low, uniroot.high) == (
            reference.estimate,
            reference.low,
            reference.high,
        )


def test_closed_form_is_exactly_antisymmetric_for_large_pairs() -> None:
    generator = np.random.default_rng(11)
    canary = np.round(generator.normal(0.1, 1, 700), 3)
    baseline = np.round(generator.normal(0, 1, 650), 3)
    forward, backward = mann_whitney_many([(canary, baseline), (baseline, canary)])
    assert (backward.low, backward.high) == (-forward.high, -forward.low)
    assert backward.estimate == -forward.estimate


def _awkward_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Data that stresses exactness: large offsets, extreme scales, heavy ties, one value."""
    generator = np.random.default_rng(99)
    return [
        ("offset 1e12", 1e12 + generator.normal(0, 1, 300), 1e12 + generator.normal(0.1, 1, 250)),
        (
            "integers offset 1e9",
            1e9 + generator.integers(0, 50, 400).astype(float),
            1e9 + generator.integers(0, 50, 380).astype(float),
        ),
        ("scale 1e150", generator.normal(0, 1, 200) * 1e150, generator.normal(0.2, 1, 220) * 1e150),
        (
            "binary",
            generator.integers(0, 2, 900).astype(float),
            generator.integers(0, 2, 800).astype(float),
        ),
        (
            "mostly zeros",
            generator.poisson(0.02, 1500).astype(float),
            generator.poisson(0.03, 1500).astype(float),
        ),
        ("one canary value", np.array([0.5]), generator.normal(0, 1, 3000)),
        ("one baseline value", generator.normal(0, 1, 3000), np.array([0.5])),
        (
            "two values far apart",
            np.r_[np.zeros(500), np.full(3, 1e6)],
            np.r_[np.zeros(400), np.full(5, 1e6)],
        ),
        (
            "signed zeros",
            np.r_[np.full(100, -0.0), generator.normal(0, 1, 100)],
            np.r_[np.zeros(100), generator.normal(0, 1, 100)],
        ),
        ("all differences alike", np.arange(100.0), np.arange(100.0) + 0.25),
        ("cauchy", generator.standard_cauchy(500), generator.standard_cauchy(500)),
        (
            "constant against two values",
            np.full(200, 3.0),
            np.r_[np.full(100, 3.0), np.full(100, 4.0)],
        ),
    ]


@pytest.mark.parametrize("correct", [True, False])
def test_batch_agrees_with_rs_search_on_awkward_data(correct: bool) -> None:
    cases = _awkward_pairs()
    batch = mann_whitney_many([(c, b) for _, c, b in cases], confidence=0.98, correct=correct)
    for (name, canary, baseline), result in zip(cases, batch, strict=True):
        reference = reference_mann_whitney(canary, baseline, 0.98, "auto", correct)
        scale = max(1.0, float(canary.max() - baseline.min() - (canary.min() - baseline.max())))
        assert result.statistic == reference.statistic, name
        assert result.p_value == pytest.approx(reference.p_value, rel=1e-12, abs=1e-15), name
        assert result.estimate == pytest.approx(reference.estimate, abs=ROOT_TOLERANCE * scale)
        assert result.low == pytest.approx(reference.low, abs=ROOT_TOLERANCE * scale), name
        assert result.high == pytest.approx(reference.high, abs=ROOT_TOLERANCE * scale), name
        assert mann_whitney(canary, baseline, confidence=0.98, correct=correct) == result, name
