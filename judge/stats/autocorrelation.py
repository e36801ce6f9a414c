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
from scipy import stats as sps

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


def effective_sample_size(n: int, phi: float) -> float:
    """``n (1 - phi) / (1 + phi)``: independent points worth as much as ``n`` AR(1) points."""
    return n / ar1_variance_factor(phi)


def _lag1(values: FloatArray) -> float:
    centred = values - values.mean()
    denom = float(np.dot(centred, centred))
    if denom <= 0.0:
        return 0.0
    return float(np.dot(centred[1:], centred[:-1])) / denom


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
    r1 = _lag1(values)
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


def estimate_autocorrelation(
    canary: npt.ArrayLike, baseline: npt.ArrayLike, *, margin: float = 1.0
) -> AutocorrelationEstimate:
    """Estimate each side's lag-1 autocorrelation, robustly to shared cycles (see the module
    docstring). ``margin`` standard errors are added to the estimate (0: the point estimate).

    Aligned series (same length) give one ``phi`` for both sides: the average of the estimate
    from the series of differences ``canary - baseline`` (the sum of two independent AR(1)
    series with the same ``phi`` is AR(1) with that ``phi``) and the first-difference
    estimates of the two sides. NaN points must have been handled before.
    """
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if c.size == b.size and c.size >= MIN_POINTS_FOR_PHI + 1:
        diff = c - b
        if np.ptp(diff) == 0:
            return AutocorrelationEstimate(0.0, 0.0, "difference (constant)")
        # Two estimates that both ignore a shared cycle, averaged: they err differently (an
        # isolated spike drags the first down more), and the average varies less than either.
        from_difference = lag1_autocorrelation(diff)
        from_steps = (_first_difference_phi(c) + _first_difference_phi(b)) / 2.0
        phi = _raise_by_margin((from_difference + from_steps) / 2.0, c.size, margin)
        return AutocorrelationEstimate(phi, phi, "difference and first differences")
    phis = []
    for side in (c, b):
        if side.size < MIN_POINTS_FOR_PHI + 1:
            phis.append(PHI_SHORT_SERIES)
            continue
        phis.append(_raise_by_margin(_first_difference_phi(side), side.size, margin))
    method = (
        "assumed (short series)"
        if c.size < MIN_POINTS_FOR_PHI + 1 and b.size < MIN_POINTS_FOR_PHI + 1
        else "first-differences"
    )
    return AutocorrelationEstimate(phis[0], phis[1], method)


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
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if c.size == 0 or b.size == 0:
        raise ValueError("canary and baseline need at least one point each")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(b))):
        raise ValueError("canary and baseline must be finite (handle NaN before the test)")
    if factor_canary < 1.0 or factor_baseline < 1.0:
        raise ValueError("variance factors must be >= 1")
    n_c, n_b = c.size, b.size
    total = n_c + n_b
    pooled = np.concatenate([c, b])
    ranks = sps.rankdata(pooled)
    u = float(ranks[:n_c].sum()) - n_c * (n_c + 1) / 2.0
    _, tie_counts = np.unique(pooled, return_counts=True)
    tie_term = float(np.sum(tie_counts.astype(np.float64) ** 3 - tie_counts))
    variance = n_c * n_b / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)))
    inflation = (factor_canary / n_c + factor_baseline / n_b) / (1.0 / n_c + 1.0 / n_b)
    sd = math.sqrt(max(variance * inflation, 0.0))
    mean_u = n_c * n_b / 2.0
    if sd > 0:
        z = (u - mean_u) / sd
        p_greater = float(sps.norm.sf(z))
        p_less = float(sps.norm.cdf(z))
    else:
        z, p_greater, p_less = 0.0, 1.0, 1.0
    differences = np.sort(np.subtract.outer(c, b).ravel())
    estimate = float(np.median(differences))
    critical = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    k = math.floor(mean_u - critical * sd)
    m = differences.size
    if k < 1:
        low, high = -math.inf, math.inf
    else:
        low, high = float(differences[k - 1]), float(differences[m - k])
    return ShiftResult(
        estimate=estimate,
        low=low,
        high=high,
        confidence=confidence,
        z=float(z),
        p_greater=p_greater,
        p_less=p_less,
        inflation=inflation,
        effective_canary=n_c / factor_canary,
        effective_baseline=n_b / factor_baseline,
        canary_size=n_c,
        baseline_size=n_b,
    )
