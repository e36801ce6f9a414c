"""Rate-ratio test: pinned to R's poisson.test (tests/fixtures/r/counts_cases.R), properties."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from judge.stats.counts import (
    count_dispersion,
    poisson_rate_bounds,
    rate_difference_upper,
    rate_ratio_bounds,
    rate_ratio_test,
)
from tests.support.requires import require_binary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r"
CASES = json.loads((FIXTURES / "counts_cases.json").read_text())


def _value(v: float | str) -> float:
    return math.inf if v == "Infinity" else float(v)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['canary_count']}-{c['baseline_count']}"
                         f"-{c['alternative']}-{c['null_ratio']}")
def test_matches_r_poisson_test(case: dict[str, float | str]) -> None:
    result = rate_ratio_test(
        float(case["canary_count"]), float(case["baseline_count"]),
        float(case["canary_exposure"]), float(case["baseline_exposure"]),
        confidence=float(case["confidence"]), alternative=case["alternative"],  # type: ignore[arg-type]
        null_ratio=float(case["null_ratio"]),
    )
    for ours, theirs in ((result.ratio, case["estimate"]), (result.p_value, case["p_value"]),
                         (result.low, case["low"]), (result.high, case["high"])):
        assert ours == pytest.approx(_value(theirs), rel=1e-9, abs=1e-14)


def test_live_against_r_when_present() -> None:
    rscript = require_binary("Rscript")
    out = subprocess.run(
        [rscript, "-e", "t <- poisson.test(c(17, 4), c(300, 250)); "
         "cat(sprintf('%.15g %.15g %.15g', t$p.value, t$conf.int[1], t$conf.int[2]))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()
    result = rate_ratio_test(17, 4, 300, 250)
    assert [result.p_value, result.low, result.high] == pytest.approx(
        [float(v) for v in out], rel=1e-9)


def test_symmetric_when_sides_and_exposures_swap() -> None:
    forward = rate_ratio_test(30, 12, 1000, 700, confidence=0.95)
    backward = rate_ratio_test(12, 30, 700, 1000, confidence=0.95)
    assert forward.p_value == pytest.approx(backward.p_value, rel=1e-12)
    assert forward.ratio == pytest.approx(1 / backward.ratio)
    assert forward.low == pytest.approx(1 / backward.high)
    assert forward.high == pytest.approx(1 / backward.low)


def test_errors_against_none_fail_once_volume_is_meaningful() -> None:
    # 0.5**6 = 0.0156 > 0.01; 0.5**7 = 0.0078 < 0.01 (equal exposures).
    assert rate_ratio_test(6, 0, alternative="greater").p_value > 0.01
    assert rate_ratio_test(7, 0, alternative="greater").p_value < 0.01


def test_dispersion_widens_the_interval_and_is_exact_at_one() -> None:
    plain = rate_ratio_test(40, 20, confidence=0.98)
    same = rate_ratio_test(40, 20, confidence=0.98, dispersion=1.0)
    wide = rate_ratio_test(40, 20, confidence=0.98, dispersion=3.0)
    assert plain == same
    assert wide.low < plain.low and wide.high > plain.high
    assert wide.p_value > plain.p_value


def test_no_events_is_uninformative() -> None:
    result = rate_ratio_test(0, 0, 10, 10)
    assert result.p_value == 1.0 and result.low == 0.0 and result.high == math.inf


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="canary_exposure"):
        rate_ratio_test(1, 1, 0, 1)
    with pytest.raises(ValueError, match="alternative"):
        rate_ratio_test(1, 1, alternative="bigger")  # type: ignore[arg-type]


def test_dispersion_near_one_for_poisson_and_large_for_bursty_counts() -> None:
    rng = np.random.default_rng(5)
    poisson = count_dispersion(rng.poisson(20, 60), rng.poisson(20, 60))
    assert poisson.dispersion < 1.6
    bursty = rng.poisson(20 * rng.gamma(0.5, 2.0, (2, 60)))
    assert count_dispersion(bursty[0], bursty[1]).dispersion > 3.0


def test_dispersion_pairs_neighbouring_intervals_not_neighbouring_events() -> None:
    # Sparse errors: an event every fourth minute, four on the canary, then four on the
    # baseline, and so on. Listed without the empty minutes those residuals look
    # strongly autocorrelated; on the time grid no two of them are neighbours, and an interval
    # without events says nothing about dependence.
    canary, baseline = np.zeros(60), np.zeros(60)
    for event, minute in enumerate(range(0, 60, 4)):
        side = canary if event % 8 < 4 else baseline
        side[minute] = 1.0
    estimate = count_dispersion(canary, baseline)
    assert estimate.phi == 0.0
    assert estimate.intervals == 15
    # The same events in consecutive minutes are runs: the dependence shows and inflates.
    packed_c, packed_b = np.zeros(60), np.zeros(60)
    for event in range(15):
        (packed_c if event % 8 < 4 else packed_b)[event] = 1.0
    packed = count_dispersion(packed_c, packed_b)
    assert packed.phi > 0.3
    assert packed.dispersion > estimate.dispersion


def test_single_event_intervals_say_nothing_about_dispersion() -> None:
    # Sparse errors with the exposures split unevenly minute by minute (independent traffic):
    # every interval with an event has exactly one, a Bernoulli trial whose variance its mean
    # fixes. Its squared residual is counted at its null expectation, so the Pearson
    # statistic is exactly 1 (before: one event on a side with an eighth of the minute's
    # requests was a squared residual of 8, and 2 against 3 events gave a dispersion of 4.75).
    canary_exp = np.where(np.arange(60) % 2 == 0, 10.0, 80.0)
    baseline_exp = canary_exp[::-1].copy()
    canary, baseline = np.zeros(60), np.zeros(60)
    canary[[4, 30]] = 1.0              # on the canary's 10-request minutes
    baseline[[11, 25, 51]] = 1.0       # on the baseline's 80-request minutes
    estimate = count_dispersion(canary, baseline, canary_exp, baseline_exp)
    assert estimate.pearson == pytest.approx(1.0, abs=1e-12)
    assert estimate.dispersion == pytest.approx(1.0, abs=1e-12)
    assert estimate.intervals == 5
    # 1 against 1 in a minute where the canary's share of the requests is 99% (the baseline
    # had one request): a squared residual of about 80 that is skew, not dispersion (plain Pearson
    # 8.2 over 12 intervals); less the skewness term it counts about 0.
    lopsided_c, lopsided_b = np.zeros(60), np.zeros(60)
    lopsided_c[[0, 3, 6, 9, 12, 15, 18, 21, 24, 27]] = 1.0
    lopsided_b[[0, 33, 40]] = 1.0
    exposures_b = np.full(60, 50.0)
    exposures_b[0] = 1.0
    lopsided = count_dispersion(lopsided_c, lopsided_b, np.full(60, 50.0), exposures_b)
    assert lopsided.pearson < 1.0 and lopsided.dispersion == 1.0
    # Several events in one interval can show a burst: those still move the estimate.
    canary[4], baseline[11] = 6.0, 6.0
    canary[30] = 0.0
    assert count_dispersion(canary, baseline, canary_exp, baseline_exp).pearson > 2.0


def test_sparse_counts_dispersion_is_unbiased_and_steadier() -> None:
    # Binomial errors at 0.2% on uneven per-minute traffic (the real-noise benchmark's
    # independent canaries): the Pearson statistic averages about 1, and the dispersion
    # rarely inflates by more than a third.
    rng = np.random.default_rng(8)
    pearsons, inflated = [], 0
    for _ in range(400):
        canary_exp = rng.poisson(rng.gamma(2.0, 32.5, 60)).astype(float) + 1.0
        baseline_exp = rng.poisson(rng.gamma(2.0, 32.5, 60)).astype(float) + 1.0
        estimate = count_dispersion(
            rng.binomial(canary_exp.astype(np.int64), 0.002),
            rng.binomial(baseline_exp.astype(np.int64), 0.002),
            canary_exp, baseline_exp,
        )
        pearsons.append(estimate.pearson)
        inflated += estimate.dispersion > 4 / 3
    assert float(np.mean(pearsons)) == pytest.approx(1.0, abs=0.05)
    assert inflated / 400 < 0.15


def test_poisson_false_positive_rate_near_nominal() -> None:
    rng = np.random.default_rng(11)
    rejections = 0
    for _ in range(2000):
        c, b = rng.poisson(30, 60), rng.poisson(30, 60)
        d = count_dispersion(c, b).dispersion
        rejections += rate_ratio_test(c.sum(), b.sum(), alternative="greater",
                                      dispersion=d).p_value < 0.05
    assert rejections / 2000 < 0.06


def test_rate_difference_upper_with_no_events_is_the_canary_bound() -> None:
    # 0 against 0: the bound is the canary's exact Poisson bound, -ln(0.1) / T at 90%.
    assert rate_difference_upper(0, 0, 3900, 3900) == pytest.approx(-math.log(0.1) / 3900)
    # and it shrinks with traffic, so 0 vs 0 on thousands of requests bounds a small increase.
    assert rate_difference_upper(0, 0, 50, 50) > 0.04
    # MOVER never exceeds the compounded "canary upper minus baseline lower" bound.
    for x_c, x_b in ((7, 8), (6, 5), (13, 5), (0, 4), (30, 10)):
        _, u_c = poisson_rate_bounds(x_c, 3700, 0.9)
        l_b, _ = poisson_rate_bounds(x_b, 3700, 0.9)
        assert rate_difference_upper(x_c, x_b, 3700, 3700) <= u_c - l_b + 1e-15


def test_rate_difference_upper_dispersion_widens_it() -> None:
    plain = rate_difference_upper(7, 8, 3800, 3700)
    assert rate_difference_upper(7, 8, 3800, 3700, dispersion=2.0) > plain
    with pytest.raises(ValueError):
        rate_difference_upper(7, 8, 3800, 3700, dispersion=0.5)
    with pytest.raises(ValueError):
        rate_difference_upper(-1, 8, 3800, 3700)


@pytest.mark.parametrize("rates", [(0.0005, 0.0005), (0.002, 0.002), (0.004, 0.002),
                                   (0.001, 0.0)])
def test_rate_difference_upper_covers_at_about_its_level(rates: tuple[float, float]) -> None:
    # Coverage by simulation: the bound is at or above the true difference in at least ~90%
    # of draws (MOVER with exact limits is slightly conservative at small counts).
    rate_c, rate_b = rates
    rng = np.random.default_rng(20261202)
    exposure = 3900.0
    draws = 4000
    xs_c = rng.poisson(rate_c * exposure, draws)
    xs_b = rng.poisson(rate_b * exposure, draws)
    covered = np.mean([rate_difference_upper(c, b, exposure, exposure) >= rate_c - rate_b
                       for c, b in zip(xs_c, xs_b, strict=True)])
    # 4000 draws: the standard error of a 90% share is 0.5%; allow 3 of them below nominal.
    assert covered >= 0.885
    assert covered <= 0.995


@pytest.mark.parametrize("count", [0, 1, 2, 7, 30])
def test_mid_p_poisson_bounds_solve_their_definition(count: int) -> None:
    # Checked against scipy.stats' Poisson distribution, independently of the incomplete gamma
    # functions the bounds are computed with: P(X < x) + P(X = x) / 2 = alpha at the upper
    # bound, P(X > x) + P(X = x) / 2 = alpha at the lower one; exact bounds lie outside them.
    exposure, alpha = 3700.0, 0.1
    low, high = poisson_rate_bounds(count, exposure, 0.9, mid_p=True)
    exact_low, exact_high = poisson_rate_bounds(count, exposure, 0.9)
    mu = high * exposure
    assert sps.poisson.cdf(count - 1, mu) + sps.poisson.pmf(count, mu) / 2 == pytest.approx(alpha)
    assert high < exact_high
    if count == 0:
        assert low == 0.0
    else:
        mu = low * exposure
        assert (sps.poisson.sf(count, mu) + sps.poisson.pmf(count, mu) / 2
                == pytest.approx(alpha))
        assert low > exact_low


@pytest.mark.parametrize(("canary", "baseline"), [(0, 4), (3, 3), (13, 5), (9, 0)])
def test_mid_p_ratio_bounds_solve_their_definition(canary: int, baseline: int) -> None:
    # The canary's share of the n events is Binomial(n, p); the ratio is p / (1 - p) at equal
    # exposures. Exact bounds are R's one-sided poisson.test limits (rate_ratio_test's).
    n, alpha = canary + baseline, 0.1
    low, high = rate_ratio_bounds(canary, baseline, 1000, 1000, confidence=0.9, mid_p=True)
    exact_low, exact_high = rate_ratio_bounds(canary, baseline, 1000, 1000, confidence=0.9)
    assert exact_high == pytest.approx(rate_ratio_test(
        canary, baseline, 1000, 1000, alternative="less", confidence=0.9).high)
    assert exact_low == pytest.approx(rate_ratio_test(
        canary, baseline, 1000, 1000, alternative="greater", confidence=0.9).low)
    if baseline == 0:
        assert high == math.inf
    else:
        p = high / (1 + high)
        assert (sps.binom.cdf(canary - 1, n, p) + sps.binom.pmf(canary, n, p) / 2
                == pytest.approx(alpha))
        assert high < exact_high
    if canary == 0:
        assert low == 0.0
    else:
        p = low / (1 + low)
        assert sps.binom.sf(canary, n, p) + sps.binom.pmf(canary, n, p) / 2 == pytest.approx(alpha)
        assert low > exact_low



@pytest.mark.parametrize("mid_p", [False, True])
def test_ratio_bounds_asked_for_one_side_skip_the_other(mid_p: bool) -> None:
    both = rate_ratio_bounds(13, 5, 1000, 1200, confidence=0.9, mid_p=mid_p)
    assert rate_ratio_bounds(13, 5, 1000, 1200, confidence=0.9, mid_p=mid_p,
                             sides="upper") == (0.0, both[1])
    assert rate_ratio_bounds(13, 5, 1000, 1200, confidence=0.9, mid_p=mid_p,
                             sides="lower") == (both[0], math.inf)


MID_P_RATES = [(0.0005, 0.0005), (0.002, 0.002), (0.004, 0.002), (0.001, 0.0), (0.006, 0.002)]


def _coverage(bound: Any, rates: tuple[float, float]) -> float:
    rate_c, rate_b = rates
    rng = np.random.default_rng(20261203)
    exposure, draws = 3300.0, 4000
    xs_c = rng.poisson(rate_c * exposure, draws)
    xs_b = rng.poisson(rate_b * exposure, draws)
    return float(np.mean([bound(c, b, exposure) for c, b in zip(xs_c, xs_b, strict=True)]))


def test_mid_p_bounds_cover_close_to_their_level_on_average() -> None:
    # Mid-p bounds aim at their level on average over rates, not at least it at every rate:
    # by simulation (4,000 draws per pair) the difference's bound covers in 84-94% of draws
    # (84% with 3.3 expected canary events against a baseline without any), 90% on average;
    # exact bounds cover 92-96%, and up to 99.8% with fewer events (the conservatism that
    # held healthy error counts at marginal).
    differences = [_coverage(lambda c, b, t, d=rates: rate_difference_upper(
        c, b, t, t, mid_p=True) >= d[0] - d[1], rates) for rates in MID_P_RATES]
    ratios = [_coverage(lambda c, b, t, d=rates: rate_ratio_bounds(
        c, b, t, t, confidence=0.9, mid_p=True)[1] >= d[0] / d[1], rates)
        for rates in MID_P_RATES if rates[1] > 0]
    for coverage in differences + ratios:
        assert 0.83 <= coverage <= 0.96
    assert 0.88 <= float(np.mean(differences)) <= 0.92
    assert 0.88 <= float(np.mean(ratios)) <= 0.93
