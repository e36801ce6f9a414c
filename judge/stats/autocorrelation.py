"""Serial correlation of metric time series, and a Mann-Whitney shift test that allows for it.

The points of a metric's time series are not independent: a slow minute is followed by slow
minutes. Mann-Whitney's null variance assumes independence, so on AR(1) noise with
``phi = 0.5`` a nominal 5% test rejects about a quarter of A/A canaries. The remedy used here is
the *effective sample size*: a stationary AR(1) series of ``n`` points carries as much
information about its mean as ``n (1 - phi) / (1 + phi)`` independent points, because the
variance of its mean is ``(1 + phi) / (1 - phi)`` times the independent one (Bartlett 1946;
Zwiers & von Storch 1995, "Taking serial correlation into account in tests of the mean",
J. Climate 8, 336-351; Bayley & Hammersley 1946 for the effective number of observations).

For Mann-Whitney the same factor applies to the rank-transformed series: by Hoeffding's
projection, ``U / (n_c n_b)`` is to first order ``mean_i F_b(c_i) - mean_j F_c(b_j)`` plus a
constant, so its variance is ``(kappa_c / n_c + kappa_b / n_b) / 12`` where ``kappa`` is the
long-run variance factor of each side's (probability-transformed) series (Serfling 1968,
"The Wilcoxon two-sample statistic on strongly mixing processes", Ann. Math. Statist. 39).
:func:`shift_test` inflates the tie-corrected null variance by that ratio and reads the
Hodges-Lehmann interval off the sorted pairwise differences (Hollander, Wolfe & Chicken,
*Nonparametric Statistical Methods*, 3rd ed., §4.3, asymptotic critical value).

Estimating ``phi`` (:func:`estimate_autocorrelation`): baseline and canary run at the same
time, so daily cycles and traffic swings are shared. Two estimates ignore what the sides share:
the lag-1 autocorrelation of their difference (which cancels it and keeps their independent AR
noise) and each side's first differences (AR(1) identity
``corr(dx_t, dx_{t-1}) = -(1 - phi) / 2``). Aligned series (same length) use the average of
both, unaligned ones the second. Estimates are taken on ranks (robust to latency spikes),
bias-corrected for the unknown mean (Kendall 1954, ``E r1 ~ phi - (1 + 4 phi) / n``), and
raised by ``margin`` standard errors (``sqrt((1 - phi^2) / n)``): with 60 points the estimate
is uncertain, and underestimating ``phi`` is what makes a test cry wolf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sps

from judge.stats._batch import _rank_statistics
from judge.stats._ranks import (
    SORT_DIFFERENCES_MAX_PAIRS,
    average_ranks_rows,
    rank_sum_statistics_rows,
    sorted_difference_order_statistics,
)
from judge.stats._selection import PairedSamples, select_differences
from judge.stats._validation import per_row

FloatArray = npt.NDArray[np.float64]

PHI_CAP = 0.95
"""Largest ``phi`` used: caps the variance inflation at (1 + 0.95) / (1 - 0.95) = 39."""

MIN_POINTS_FOR_PHI = 8
"""Fewer points than this per series: ``phi`` is not estimated and ``PHI_SHORT_SERIES`` is used."""

PHI_SHORT_SERIES = 0.5
"""Assumed ``phi`` when a series is too short to estimate it (a cautious middle value: treats
the points as worth a third of independent ones)."""


@dataclass(frozen=True)
class AutocorrelationEstimate:
    """Lag-1 autocorrelation used for each side and the variance factors it implies.

    ``factor_*`` is ``(1 + phi) / (1 - phi)``: how many points are worth one independent point.
    ``method`` says how ``phi`` was estimated (``difference``, ``first-differences``,
    ``assumed`` or ``none``).
    """

    phi_canary: float
    phi_baseline: float
    method: str

    @property
    def factor_canary(self) -> float:
        return ar1_variance_factor(self.phi_canary)

    @property
    def factor_baseline(self) -> float:
        return ar1_variance_factor(self.phi_baseline)


def ar1_variance_factor(phi: float) -> float:
    """Long-run variance factor of a stationary AR(1) series: ``(1 + phi) / (1 - phi)``
    (``phi`` clipped to ``[0, PHI_CAP]``)."""
    phi = min(max(phi, 0.0), PHI_CAP)
    return (1.0 + phi) / (1.0 - phi)


def sample_autocorrelation(values: FloatArray, lag: int = 1) -> float:
    """``sum_t d_t d_(t-lag) / sum_t d_t^2`` of the centred series ``d`` (not clipped, no bias
    correction); 0 for a constant series or one no longer than ``lag``."""
    if lag < 1:
        raise ValueError(f"lag must be >= 1, got {lag}")
    centred = values - values.mean()
    denom = float(np.dot(centred, centred))
    if denom <= 0.0 or values.size <= lag:
        return 0.0
    return float(np.dot(centred[lag:], centred[:-lag])) / denom


def lag1_autocorrelation(
    series: npt.ArrayLike, *, ranks: bool = True, bias_correct: bool = True
) -> float:
    """Lag-1 autocorrelation of a series (not clipped).

    On ranks by default (a spike then counts as one large value, not as a huge one), with
    Kendall's (1954) first-order bias correction for an estimated mean:
    ``phi = (n r1 + 1) / (n - 4)``.
    """
    values = np.asarray(series, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = values.size
    if n < 3:
        raise ValueError(f"series: need at least 3 finite points, got {n}")
    if ranks:
        values = sps.rankdata(values)
    r1 = sample_autocorrelation(values)
    if bias_correct and n > 4:
        return (n * r1 + 1.0) / (n - 4.0)
    return r1


def _raise_by_margin(phi: float, n: int, margin: float) -> float:
    phi = min(max(phi, 0.0), PHI_CAP)
    se = math.sqrt(max(1.0 - phi * phi, 0.0) / n)
    return min(phi + margin * se, PHI_CAP)


def _first_difference_phi(series: FloatArray) -> float:
    """``phi`` of an AR(1) series from its first differences: ``corr(dx_t, dx_{t-1}) =
    -(1 - phi) / 2``, so ``phi = 1 + 2 r`` (first differences remove a slowly varying level,
    such as a daily cycle, that would otherwise look like memory). On ranks."""
    steps = np.diff(series)
    if steps.size < 3 or np.ptp(steps) == 0:
        return 0.0
    return 1.0 + 2.0 * lag1_autocorrelation(steps, bias_correct=False)


def _lag1_rows(values: FloatArray) -> FloatArray:
    """Lag-1 autocorrelation of every row (0 for a constant row)."""
    centred = values - values.mean(axis=1, keepdims=True)
    denom = np.einsum("ij,ij->i", centred, centred)
    num = np.einsum("ij,ij->i", centred[:, 1:], centred[:, :-1])
    out: FloatArray = np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)
    return out


def lag1_autocorrelation_rows(rows: npt.ArrayLike, *, bias_correct: bool = True) -> FloatArray:
    """:func:`lag1_autocorrelation` (on ranks) of every row of a finite 2-d array at once."""
    values = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    n = values.shape[1]
    if n < 3:
        raise ValueError(f"series: need at least 3 finite points, got {n}")
    # average_ranks_rows is scipy's rankdata(axis=1) without its argument handling (a tenth
    # of a small judgment's time went there); the same ranks.
    r1 = _lag1_rows(average_ranks_rows(values))
    if bias_correct and n > 4:
        corrected: FloatArray = (n * r1 + 1.0) / (n - 4.0)
        return corrected
    return r1


def _raise_by_margin_rows(phi: FloatArray, n: int, margin: float) -> FloatArray:
    """Vectorised :func:`_raise_by_margin`."""
    # np.minimum(np.maximum(...)) is np.clip without its wrapper (a small judgment calls these
    # a dozen times); the same values, NaN included.
    phi = np.minimum(np.maximum(phi, 0.0), PHI_CAP)
    se = np.sqrt(np.maximum(1.0 - phi * phi, 0.0) / n)
    out: FloatArray = np.minimum(phi + margin * se, PHI_CAP)
    return out


def _first_difference_phi_rows(rows: FloatArray) -> FloatArray:
    """:func:`_first_difference_phi` of every row."""
    steps = np.diff(rows, axis=1)
    if steps.shape[1] < 3:
        return np.zeros(rows.shape[0])
    constant = np.ptp(steps, axis=1) == 0
    phi = 1.0 + 2.0 * lag1_autocorrelation_rows(steps, bias_correct=False)
    out: FloatArray = np.where(constant, 0.0, phi)
    return out


@dataclass(frozen=True)
class RawAutocorrelation:
    """Unraised lag-1 autocorrelation estimates of many (canary, baseline) pairs of equal-size
    rows (:func:`raw_autocorrelation_rows`); :meth:`raised` adds the standard-error margin."""

    phi_canary: FloatArray
    phi_baseline: FloatArray
    estimated_canary: bool
    estimated_baseline: bool
    constant: npt.NDArray[np.bool_]
    method: str
    canary_size: int
    baseline_size: int

    def raised(self, margin: float) -> tuple[FloatArray, FloatArray]:
        """Per row ``(phi_canary, phi_baseline)`` raised by ``margin`` standard errors (the
        assumed value for a side too short to estimate, 0 for a constant difference)."""
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        out = []
        for phi, estimated, size in (
            (self.phi_canary, self.estimated_canary, self.canary_size),
            (self.phi_baseline, self.estimated_baseline, self.baseline_size),
        ):
            if estimated:
                value = np.where(self.constant, 0.0, _raise_by_margin_rows(phi, size, margin))
            else:
                value = np.full(phi.shape, PHI_SHORT_SERIES)
            out.append(value)
        return out[0], out[1]

    def method_of(self, row: int) -> str:
        return "difference (constant)" if self.constant[row] else self.method


def raw_autocorrelation_rows(canary_rows: npt.ArrayLike, baseline_rows: npt.ArrayLike
                             ) -> RawAutocorrelation:
    """The estimates of :func:`estimate_autocorrelation` for every row pair at once (rows of
    one 2-d array have one length), before the margin is added."""
    c = np.atleast_2d(np.asarray(canary_rows, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64))
    n_c, n_b = c.shape[1], b.shape[1]
    if n_c == n_b and n_c >= MIN_POINTS_FOR_PHI + 1:
        diff = c - b
        constant = np.ptp(diff, axis=1) == 0
        # Two estimates that both ignore a shared cycle, averaged: they err differently (an
        # isolated spike drags the first down more), and the average varies less than either.
        from_difference = lag1_autocorrelation_rows(diff)
        # Both sides' rows in one call (row-wise operations: the same numbers, half the calls).
        steps_phi = _first_difference_phi_rows(np.concatenate([c, b]))
        from_steps = (steps_phi[: c.shape[0]] + steps_phi[c.shape[0]:]) / 2.0
        phi = (from_difference + from_steps) / 2.0
        return RawAutocorrelation(phi, phi, True, True, constant,
                                  "difference and first differences", n_c, n_b)
    estimated = []
    phis = []
    for side in (c, b):
        ok = side.shape[1] >= MIN_POINTS_FOR_PHI + 1
        estimated.append(ok)
        phis.append(_first_difference_phi_rows(side) if ok else np.full(side.shape[0], math.nan))
    method = "first-differences" if any(estimated) else "assumed (short series)"
    return RawAutocorrelation(phis[0], phis[1], estimated[0], estimated[1],
                              np.zeros(c.shape[0], dtype=bool), method, n_c, n_b)


def estimate_autocorrelation(
    canary: npt.ArrayLike, baseline: npt.ArrayLike, *, margin: float = 1.0
) -> AutocorrelationEstimate:
    """Estimate each side's lag-1 autocorrelation, robustly to shared cycles (see the module
    docstring). ``margin`` standard errors are added to the estimate (0: the point estimate).

    Aligned series (same length) give one ``phi`` for both sides: the average of the estimate
    from the series of differences ``canary - baseline`` (the sum of two independent AR(1)
    series with the same ``phi`` is AR(1) with that ``phi``) and the first-difference
    estimates of the two sides. NaN points must have been handled before. The same numbers as
    :func:`raw_autocorrelation_rows` on one row (it is computed that way).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    c = np.asarray(canary, dtype=np.float64).reshape(1, -1)
    b = np.asarray(baseline, dtype=np.float64).reshape(1, -1)
    raw = raw_autocorrelation_rows(c, b)
    phi_c, phi_b = raw.raised(margin)
    return AutocorrelationEstimate(float(phi_c[0]), float(phi_b[0]), raw.method_of(0))


@dataclass(frozen=True)
class ShiftResult:
    """Mann-Whitney shift test with autocorrelation-inflated variance.

    ``estimate``: Hodges-Lehmann shift (median of pairwise differences canary - baseline);
    ``low``/``high``: its two-sided interval at ``confidence`` (infinite when the data cannot
    bound it); ``p_greater``/``p_less``: one-sided p-values for "canary stochastically larger /
    smaller"; ``inflation``: variance factor applied (1 for independent points);
    ``effective_canary``/``effective_baseline``: effective sample sizes.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    z: float
    p_greater: float
    p_less: float
    inflation: float
    effective_canary: float
    effective_baseline: float
    canary_size: int
    baseline_size: int
    statistic: float = math.nan
    """Mann-Whitney ``U``: canary-baseline pairs where the canary is larger, ties one half."""

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2.0 * min(self.p_greater, self.p_less))

    def p_value(self, alternative: Literal["greater", "less", "two-sided"]) -> float:
        if alternative == "greater":
            return self.p_greater
        if alternative == "less":
            return self.p_less
        return self.p_two_sided


def shift_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    confidence: float = 0.98,
    factor_canary: float = 1.0,
    factor_baseline: float = 1.0,
) -> ShiftResult:
    """Mann-Whitney test and Hodges-Lehmann interval with serially correlated samples.

    The tie-corrected null variance of U, ``n_c n_b / 12 (N + 1 - sum(t^3 - t) / (N (N - 1)))``,
    is multiplied by ``(factor_c / n_c + factor_b / n_b) / (1 / n_c + 1 / n_b)`` (module
    docstring). No continuity correction. The interval is
    ``[D_(k), D_(n_c n_b + 1 - k)]`` of the sorted pairwise differences with
    ``k = floor(n_c n_b / 2 - z_{1 - alpha/2} sd(U))`` (Hollander, Wolfe & Chicken §4.3); when
    ``k < 1`` the data cannot bound the shift and the interval is infinite.

    With both factors 1 this is the usual asymptotic Wilcoxon rank-sum test without
    continuity correction, e.g. R's ``wilcox.test(canary, baseline, exact = FALSE,
    correct = FALSE)`` for its p-value.

    >>> r = shift_test([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0], confidence=0.9)
    >>> r.estimate, round(r.p_greater, 4)
    (4.0, 0.0105)
    """
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.size == 0 or b.size == 0:
        raise ValueError("canary and baseline need at least one point each")
    return shift_test_rows(
        c.reshape(1, -1), b.reshape(1, -1), confidence=confidence,
        factor_canary=factor_canary, factor_baseline=factor_baseline,
    )[0]


def rank_sum_rows(
    canary_sorted: FloatArray, baseline_sorted: FloatArray
) -> tuple[FloatArray, FloatArray, PairedSamples]:
    """Mann-Whitney ``U`` (ties count one half) and the tie term ``sum(t^3 - t)`` of the
    combined sample for every row pair of two row-sorted 2-d arrays, with the
    :class:`~judge.stats._selection.PairedSamples` built from them (kept for the interval).
    Counted from the sorted samples (no re-ranking), as the Kayenta batch path does."""
    n = np.full(canary_sorted.shape[0], canary_sorted.shape[1], dtype=np.int64)
    m = np.full(baseline_sorted.shape[0], baseline_sorted.shape[1], dtype=np.int64)
    samples = PairedSamples(canary_sorted, n, baseline_sorted, m)
    statistic, tie_sum = _rank_statistics(samples)
    return statistic, tie_sum.astype(np.float64), samples


def _check_rows(c: FloatArray, b: FloatArray, confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if c.ndim != 2 or b.ndim != 2 or c.shape[0] != b.shape[0]:
        raise ValueError("canary and baseline rows must be 2-d arrays with as many rows")
    if c.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError("canary and baseline need at least one point each")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(b))):
        raise ValueError("canary and baseline must be finite (handle NaN before the test)")


def two_sample_inflation(
    factor_canary: FloatArray, factor_baseline: FloatArray, n_c: int, n_b: int
) -> FloatArray:
    """The factor on a two-sample rank statistic's variance when each side's points are
    dependent (each side's variance factor weighted by its share of ``1/n_c + 1/n_b``)."""
    out: FloatArray = (factor_canary / n_c + factor_baseline / n_b) / (1.0 / n_c + 1.0 / n_b)
    return out


def shift_p_values_rows(
    statistic: FloatArray,
    tie_sum: FloatArray,
    n_c: int,
    n_b: int,
    factor_canary: FloatArray,
    factor_baseline: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(z, p_greater, p_less, sd)`` of the inflated-variance test for every row (module
    docstring; ``p = 1`` both ways when every value is tied). A factor below 1 is a variance
    smaller than the independent samples' one: time-aligned sides whose shared swings cancel
    (:func:`judge.stats.paired.aligned_rank_sum_rows`)."""
    if np.any(factor_canary <= 0.0) or np.any(factor_baseline <= 0.0):
        raise ValueError("variance factors must be > 0")
    total = n_c + n_b
    variance = n_c * n_b / 12.0 * ((total + 1.0) - tie_sum / (total * (total - 1.0)))
    inflation = two_sample_inflation(factor_canary, factor_baseline, n_c, n_b)
    sd = np.sqrt(np.maximum(variance * inflation, 0.0))
    positive = sd > 0
    z = np.divide(statistic - n_c * n_b / 2.0, sd, out=np.zeros_like(sd), where=positive)
    p_greater = np.where(positive, special.ndtr(-z), 1.0)
    p_less = np.where(positive, special.ndtr(z), 1.0)
    return z, p_greater, p_less, sd


def shift_test_rows(
    canary_rows: npt.ArrayLike,
    baseline_rows: npt.ArrayLike,
    *,
    confidence: float = 0.98,
    factor_canary: npt.ArrayLike = 1.0,
    factor_baseline: npt.ArrayLike = 1.0,
) -> list[ShiftResult]:
    """:func:`shift_test` for every row pair of two 2-d arrays (rows of one array have one
    length), vectorised over rows: each row is sorted once, ``U`` and the tie term are counted
    from the sorted rows, and the Hodges-Lehmann estimate and limits are selected among the
    pairwise differences by counting (:func:`judge.stats._selection.select_differences`),
    never forming them. Factors are scalars or one per row."""
    c = np.sort(np.atleast_2d(np.asarray(canary_rows, dtype=np.float64)), axis=1)
    b = np.sort(np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64)), axis=1)
    _check_rows(c, b, confidence)
    rows, n_c = c.shape
    n_b = b.shape[1]
    f_c = per_row(factor_canary, rows)
    f_b = per_row(factor_baseline, rows)
    pairs = n_c * n_b
    small = pairs <= SORT_DIFFERENCES_MAX_PAIRS
    if small:
        # Few differences: pooled ranks give U and the ties, and sorting the differences
        # gives the interval; both cost a few array calls where the counting selection's
        # distinct-value tables cost some hundred (same numbers: judge.stats._ranks).
        statistic, tie_sum = rank_sum_statistics_rows(c, b)
    else:
        statistic, tie_sum, samples = rank_sum_rows(c, b)
    z, p_greater, p_less, sd = shift_p_values_rows(statistic, tie_sum, n_c, n_b, f_c, f_b)
    critical = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))  # norm.ppf, unchecked
    k = np.floor(pairs / 2.0 - critical * sd).astype(np.int64)
    bounded = k >= 1
    ranks = np.stack([np.clip(k, 1, pairs), np.clip(pairs + 1 - k, 1, pairs),
                      np.full(rows, (pairs + 1) // 2)], axis=1)
    if small:
        value, following = sorted_difference_order_statistics(c, b, ranks)
    else:
        value = np.empty((rows, 3))
        following = np.empty((rows, 3))
        spread = samples.highest > samples.lowest
        if np.any(spread):
            chosen = np.flatnonzero(spread)
            value[chosen], following[chosen] = select_differences(samples.subset(chosen),
                                                                  ranks[chosen])
        # Every difference is the same number when the widest one is 0 wide.
        value[~spread] = samples.lowest[~spread, None]
        following[~spread] = samples.lowest[~spread, None]
    middle_high = following[:, 2] if pairs % 2 == 0 else value[:, 2]
    estimate = (value[:, 2] + middle_high) / 2.0
    low = np.where(bounded, value[:, 0], -math.inf)
    high = np.where(bounded, value[:, 1], math.inf)
    inflation = two_sample_inflation(f_c, f_b, n_c, n_b)
    return [
        ShiftResult(
            estimate=float(estimate[i]), low=float(low[i]), high=float(high[i]),
            confidence=confidence, z=float(z[i]), p_greater=float(p_greater[i]),
            p_less=float(p_less[i]), inflation=float(inflation[i]),
            effective_canary=n_c / float(f_c[i]), effective_baseline=n_b / float(f_b[i]),
            canary_size=n_c, baseline_size=n_b, statistic=float(statistic[i]),
        )
        for i in range(rows)
    ]


def ar1_variance_factor_rows(phi: FloatArray) -> FloatArray:
    """Vectorised :func:`ar1_variance_factor`: one factor per entry of ``phi``."""
    clipped = np.minimum(np.maximum(phi, 0.0), PHI_CAP)  # np.clip, without its wrapper
    out: FloatArray = (1.0 + clipped) / (1.0 - clipped)
    return out
