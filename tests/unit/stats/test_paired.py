"""Time-aligned tests (``judge.stats.paired``): R's signed-rank numbers, the sign-flip null's
size, what each test sees and what it must not."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats as sps

from judge.stats.autocorrelation import (
    ar1_variance_factor_rows,
    raw_autocorrelation_rows,
    shift_test_rows,
)
from judge.stats.paired import (
    aligned_rank_sum_rows,
    paired_shift_test,
    paired_spread_test,
    rank_correlation_rows,
    residual_phi,
)

# x <- c(101,99,104,98,107,103,100,110,102,105,99,108,104,101,106)
# y <- c(100,100,101,99,103,100,101,104,100,101,100,103,102,100,102)
# w <- wilcox.test(x, y, paired=TRUE, exact=FALSE, correct=FALSE, conf.int=TRUE,
#                  conf.level=0.98)
# w$p.value                      # 0.00842632278769768   (two-sided; ties in |d|)
# w$estimate                     # 2.00002250712578      (R's root search)
# w$conf.int                     # 0.49990974820654 3.99999974644599
X = [101, 99, 104, 98, 107, 103, 100, 110, 102, 105, 99, 108, 104, 101, 106]
Y = [100, 100, 101, 99, 103, 100, 101, 104, 100, 101, 100, 103, 102, 100, 102]


def test_signed_rank_matches_r_with_ties() -> None:
    result = paired_shift_test(X, Y, confidence=0.98, independent=True)
    assert 2 * min(result.p_greater, result.p_less) == pytest.approx(0.00842632278769768,
                                                                    rel=1e-12)
    # R finds the estimate and limits by root search (1e-4 tolerance); ours are the Walsh
    # averages' order statistics, the values R's search converges to.
    assert result.estimate == pytest.approx(2.00002250712578, abs=1e-4)
    assert (result.low, result.high) == pytest.approx((0.49990974820654, 3.99999974644599),
                                                      abs=1e-3)
    assert result.pairs == 15 and result.zeros == 0 and result.phi == 0.0


def test_zero_differences_are_dropped_and_all_equal_is_no_evidence() -> None:
    result = paired_shift_test([1.0, 2.0, 3.0, 5.0], [1.0, 2.0, 3.0, 4.0], independent=True)
    assert (result.pairs, result.zeros) == (1, 3)
    same = paired_shift_test([1.0, 2.0], [1.0, 2.0])
    assert (same.pairs, same.p_greater, same.estimate) == (0, 1.0, 0.0)


def test_pairs_with_a_nan_are_dropped_and_misaligned_input_is_refused() -> None:
    result = paired_shift_test([1.0, math.nan, 3.0, 4.0], [0.0, 1.0, math.nan, 2.0],
                               independent=True)
    assert result.pairs == 2
    with pytest.raises(ValueError, match="aligned"):
        paired_shift_test([1.0, 2.0], [1.0])


def test_shared_load_swings_cancel() -> None:
    # A big shared swing and a small real shift: the pairs see the shift.
    rng = np.random.default_rng(5)
    load = 100 + 30 * np.sin(np.linspace(0, 3, 60))
    baseline = load + rng.normal(0, 1, 60)
    canary = load + rng.normal(0, 1, 60) + 1.0
    result = paired_shift_test(canary, baseline)
    assert result.p_greater < 1e-4
    assert 0.3 < result.estimate < 1.7 and result.low > 0


def test_size_under_exchangeable_sides_with_autocorrelated_noise() -> None:
    # AR(1) noise (phi 0.7) on each side and a shared swing: the false-alarm rate of a
    # one-sided test at 1% stays near or below 1% (400 canaries at a fixed seed; 2% allows
    # for sampling error, the uncorrected test rejects far more often).
    rng = np.random.default_rng(20261202)
    rejected = naive = 0
    for _ in range(400):
        noise = np.zeros((2, 60))
        shock = rng.normal(size=(2, 60))
        for t in range(60):
            noise[:, t] = 0.7 * noise[:, t - 1] + math.sqrt(1 - 0.49) * shock[:, t] if t else \
                shock[:, t]
        load = np.cumsum(rng.normal(0, 1, 60))
        baseline, canary = load + noise[0], load + noise[1]
        rejected += paired_shift_test(canary, baseline).p_greater < 0.01
        naive += paired_shift_test(canary, baseline, independent=True).p_greater < 0.01
    assert rejected <= 8
    assert naive >= 3 * max(rejected, 1)


def test_spread_test_sees_a_wider_canary_and_not_a_shift() -> None:
    rng = np.random.default_rng(11)
    level = 50 + 10 * np.sin(np.linspace(0, 6, 60)) + rng.normal(0, 2, 60)
    baseline = level + rng.normal(0, 0.5, 60)
    wider = 50 + 2 * (level - 50) + rng.normal(0, 0.5, 60)
    shifted = level + 5 + rng.normal(0, 0.5, 60)
    assert paired_spread_test(wider, baseline).p_wider < 1e-3
    assert paired_spread_test(shifted, baseline).p_wider > 0.01
    # ... and the shift test sees the shift.
    assert paired_shift_test(shifted, baseline).p_greater < 1e-6


def test_residual_phi_ignores_a_level_dependent_change() -> None:
    # A wider canary makes d follow the slow level; removing that leaves independent noise.
    rng = np.random.default_rng(3)
    level = np.cumsum(rng.normal(0, 1, 120))
    d = 0.8 * (level - np.median(level)) + rng.normal(0, 1, 120)
    assert residual_phi(d, level, margin=0.0) < 0.25
    # Autocorrelated noise itself is seen.
    noise = np.zeros(120)
    for t in range(1, 120):
        noise[t] = 0.8 * noise[t - 1] + rng.normal()
    assert residual_phi(noise, rng.normal(size=120), margin=0.0) > 0.55


def _ar1(rng: np.random.Generator, rows: int, phi: float, n: int = 60) -> np.ndarray:
    shock = rng.normal(size=(rows, n))
    out = np.zeros_like(shock)
    out[:, 0] = shock[:, 0]
    for t in range(1, n):
        out[:, t] = phi * out[:, t - 1] + math.sqrt(1 - phi * phi) * shock[:, t]
    return out


def test_aligned_rank_sum_is_the_sign_flip_variance_of_the_rank_sum() -> None:
    # Row by row against the definition: pooled ranks, D_t = R(canary_t) - R(baseline_t),
    # kappa from the residual phi of D on the pair's mean rank, factor = kappa sum D^2 over
    # 4 Var(U) (tie-corrected); with that factor the rank-sum z is sum D / sqrt(kappa sum D^2).
    rng = np.random.default_rng(8)
    load = np.cumsum(rng.normal(size=(6, 40)), axis=1)
    canary = np.round(load + rng.normal(size=(6, 40)), 1)  # rounded: ties in the pooled ranks
    baseline = np.round(load + rng.normal(size=(6, 40)) + 0.3, 1)
    result = aligned_rank_sum_rows(canary, baseline)
    shifts = shift_test_rows(canary, baseline, factor_canary=result.factor,
                             factor_baseline=result.factor)
    for row in range(6):
        pooled = sps.rankdata(np.concatenate([canary[row], baseline[row]]))
        d = pooled[:40] - pooled[40:]
        phi = residual_phi(d, (pooled[:40] + pooled[40:]) / 2.0, 1.0)
        kappa = (1 + phi) / (1 - phi)
        total = 80
        variance_u = 40 * 40 / (total * (total - 1)) * float(np.sum((pooled - 40.5) ** 2))
        assert result.phi[row] == pytest.approx(phi, abs=1e-12)
        assert result.factor[row] == pytest.approx(kappa * float(d @ d) / (4 * variance_u),
                                                   rel=1e-12)
        assert result.differing[row] == np.count_nonzero(d)
        assert shifts[row].z == pytest.approx(d.sum() / math.sqrt(kappa * float(d @ d)),
                                              rel=1e-9)


def test_aligned_rank_sum_holds_its_size_and_sees_what_shared_swings_hide() -> None:
    # Sides that share a slow load but carry their own AR(1) noise (phi 0.5), loosely enough
    # that half of them correlate below 0.5 (where the signed-rank test is not used): 400
    # canaries at a fixed seed. With nothing changed the one-sided test at 1% rejects about
    # 1% (3 here); the unpaired test with each side's own autocorrelation counts the shared
    # swings as noise and sees a half-sigma shift 7 times where the minutes' variance sees it
    # 56 times.
    rng = np.random.default_rng(20261203)
    load = 1.5 * _ar1(rng, 400, 0.95)
    baseline = load + _ar1(rng, 400, 0.5)
    same = load + _ar1(rng, 400, 0.5)
    assert 0.4 < float(np.median(rank_correlation_rows(same, baseline))) < 0.6

    def rejections(canary: np.ndarray) -> tuple[int, int]:
        aligned = aligned_rank_sum_rows(canary, baseline)
        with_minutes = shift_test_rows(canary, baseline, factor_canary=aligned.factor,
                                       factor_baseline=aligned.factor)
        phi_c, phi_b = raw_autocorrelation_rows(canary, baseline).raised(1.0)
        unpaired = shift_test_rows(canary, baseline,
                                   factor_canary=ar1_variance_factor_rows(phi_c),
                                   factor_baseline=ar1_variance_factor_rows(phi_b))
        return (sum(r.p_greater < 0.01 for r in with_minutes),
                sum(r.p_greater < 0.01 for r in unpaired))

    aligned_null, _ = rejections(same)
    assert aligned_null <= 8
    aligned_shift, unpaired_shift = rejections(same + 0.5)
    assert aligned_shift >= 40 and aligned_shift >= 4 * unpaired_shift


def test_aligned_rank_sum_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="aligned"):
        aligned_rank_sum_rows([[1.0] * 10], [[1.0] * 9])
    with pytest.raises(ValueError, match="at least 5"):
        aligned_rank_sum_rows([[1.0, 2.0]], [[2.0, 1.0]])
    same = aligned_rank_sum_rows([np.arange(10.0)], [np.arange(10.0)])
    # Every minute tied with its pair: no sign carries information.
    assert (same.differing[0], same.factor[0], same.phi[0]) == (0, 0.0, 0.0)


def test_rank_correlation_rows_is_spearman_row_by_row() -> None:
    rng = np.random.default_rng(4)
    canary = np.round(rng.normal(size=(5, 30)), 1)
    baseline = np.round(canary + rng.normal(size=(5, 30)), 1)
    got = rank_correlation_rows(canary, baseline)
    for row in range(5):
        expected = sps.spearmanr(canary[row], baseline[row]).statistic
        assert got[row] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(rank_correlation_rows([[1.0, 1.0, 1.0]], [[1.0, 2.0, 3.0]])[0])


def test_docstring_examples_hold() -> None:
    import judge.stats.paired as module

    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
