"""Rate-ratio tests on counts (errors, requests): judge a ratio metric on its counts.

A canary's error rate is compared with the baseline's by the *conditional* test of two Poisson
rates: given the total number of events ``n = x_c + x_b``, the canary's share is binomial,

    x_c | n  ~  Binomial(n, p0),    p0 = r * T_c / (r * T_c + T_b),

where ``T_c`` and ``T_b`` are the exposures (requests, or intervals when the two sides have the
same size) and ``r`` is the rate ratio under the null hypothesis (1: same rate). The test and the
Clopper-Pearson interval for the binomial share are mapped back to the rate ratio
``(x_c / T_c) / (x_b / T_b)``, exactly as R's ``poisson.test(c(x_c, x_b), c(T_c, T_b))`` does
(R ``stats`` sources, ``poisson.test``; Lehmann & Romano, *Testing Statistical Hypotheses*,
3rd ed., §4.5). With the baseline at zero errors the ratio is infinite, yet the test still has
power: ``x_c`` canary errors against none give a one-sided p-value of ``(T_c/(T_c+T_b))**x_c``,
so a handful of errors fail once they could not be luck.

Overdispersion. Counts per interval usually vary more than Poisson (bursts, uneven traffic),
and neighbouring intervals are correlated. :func:`count_dispersion` estimates a dispersion
factor ``D >= 1`` (quasi-Poisson: the Pearson statistic over its degrees of freedom, McCullagh &
Nelder, *Generalized Linear Models*, 2nd ed., §4.5 and §6.2, times the AR(1) long-run variance
factor ``(1+phi)/(1-phi)`` of the Pearson residuals). :func:`rate_ratio_test` then tests the
*effective counts* ``x/D``: the binomial tail and the Clopper-Pearson limits are written with
the regularised incomplete beta function, which accepts non-integer counts, so ``D = 1`` gives
R's numbers exactly and larger ``D`` widens the interval smoothly (the variance of a
quasi-Poisson count is ``D * mu``, which is what dividing the counts by ``D`` matches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy import stats as sps

from judge.stats.autocorrelation import sample_autocorrelation

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")

# R's binom.test treats outcomes whose probability is within this relative error of the
# observed one as "equally likely" when it sums the two-sided p-value (R stats sources).
_R_RELATIVE_ERROR = 1.0 + 1e-7


@dataclass(frozen=True)
class RateRatioResult:
    """Conditional (binomial) test of the rate ratio canary / baseline.

    ``ratio`` is ``(canary_count / canary_exposure) / (baseline_count / baseline_exposure)``
    (``inf`` when the baseline has no events, ``nan`` when neither has); ``low``/``high`` its
    confidence interval at ``confidence`` for ``alternative``; ``p_value`` for the null
    ratio ``null_ratio``. ``dispersion`` is the factor the counts were divided by (1: exact
    Poisson test).
    """

    canary_count: float
    baseline_count: float
    canary_exposure: float
    baseline_exposure: float
    ratio: float
    low: float
    high: float
    p_value: float
    confidence: float
    alternative: Alternative
    null_ratio: float
    dispersion: float
    method: str

    @property
    def canary_rate(self) -> float:
        return self.canary_count / self.canary_exposure

    @property
    def baseline_rate(self) -> float:
        return self.baseline_count / self.baseline_exposure


@dataclass(frozen=True)
class DispersionEstimate:
    """Quasi-Poisson dispersion of per-interval counts.

    ``pearson``: Pearson chi-square over its degrees of freedom (1 for Poisson counts);
    ``phi``: lag-1 autocorrelation of the Pearson residuals (clipped to [0, 0.95]);
    ``dispersion``: ``max(1, pearson * (1 + phi) / (1 - phi))``, the factor by which the
    variance of the *total* counts exceeds Poisson; ``intervals``: intervals used.
    """

    pearson: float
    phi: float
    dispersion: float
    intervals: int


def _validate(
    canary_count: float,
    baseline_count: float,
    canary_exposure: float,
    baseline_exposure: float,
    confidence: float,
    alternative: str,
    null_ratio: float,
    dispersion: float,
) -> None:
    for name, count in (("canary_count", canary_count), ("baseline_count", baseline_count)):
        if not math.isfinite(count) or count < 0:
            raise ValueError(f"{name} must be a finite count >= 0, got {count}")
    for name, exposure in (
        ("canary_exposure", canary_exposure),
        ("baseline_exposure", baseline_exposure),
    ):
        if not math.isfinite(exposure) or exposure <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {exposure}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if not math.isfinite(null_ratio) or null_ratio <= 0:
        raise ValueError(f"null_ratio must be finite and > 0, got {null_ratio}")
    if not math.isfinite(dispersion) or dispersion < 1.0:
        raise ValueError(f"dispersion must be finite and >= 1, got {dispersion}")


def _upper_tail(x: float, n: float, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), through the incomplete beta function so that
    non-integer (quasi-Poisson effective) counts are allowed: I_p(x, n - x + 1)."""
    if x <= 0:
        return 1.0
    return float(sps.beta.cdf(p, x, n - x + 1.0))


def upper_tail_rows(x: npt.ArrayLike, n: npt.ArrayLike, p: npt.ArrayLike) -> FloatArray:
    """:func:`_upper_tail` elementwise (the same incomplete beta function, ``I_p(x, n - x +
    1)``, 1 where ``x <= 0``)."""
    xs = np.asarray(x, dtype=np.float64)
    ns = np.asarray(n, dtype=np.float64)
    positive = xs > 0
    a = np.where(positive, xs, 1.0)
    b = np.where(positive, ns - xs + 1.0, 1.0)
    # scipy.stats.beta.cdf(p, a, b) is special.betainc(a, b, p) after argument checks that
    # cost more than the function at a small judgment's sizes: called directly, with the
    # distribution's answers outside its domain (NaN for a or b <= 0; 0 below the support
    # and 1 above it).
    values = np.where((a > 0) & (b > 0),
                      special.betainc(a, b, np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)),
                      math.nan)
    out: FloatArray = np.where(positive, values, 1.0)
    return out


def _lower_tail(x: float, n: float, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p): 1 - I_p(x + 1, n - x)."""
    if x >= n:
        return 1.0
    return float(sps.beta.sf(p, x + 1.0, n - x))


def _two_sided_exact(x: int, n: int, p: float) -> float:
    """R's ``binom.test`` two-sided p-value: the probability of every outcome no more likely
    than the observed one (with R's relative tolerance)."""
    d = sps.binom.pmf(x, n, p)
    m = n * p
    if x == m:
        return 1.0
    if x < m:
        i = np.arange(math.ceil(m), n + 1)
        y = int(np.sum(sps.binom.pmf(i, n, p) <= d * _R_RELATIVE_ERROR))
        pval = sps.binom.cdf(x, n, p) + sps.binom.sf(n - y, n, p)
    else:
        i = np.arange(0, math.floor(m) + 1)
        y = int(np.sum(sps.binom.pmf(i, n, p) <= d * _R_RELATIVE_ERROR))
        pval = sps.binom.cdf(y - 1, n, p) + sps.binom.sf(x - 1, n, p)
    return float(min(1.0, pval))


def _share_interval(x: float, n: float, confidence: float, alternative: str) -> tuple[float, float]:
    """Clopper-Pearson interval for a binomial share (R's ``binom.test`` conf.int)."""
    alpha = 1.0 - confidence
    if alternative == "two-sided":
        lo_tail, hi_tail = alpha / 2.0, alpha / 2.0
    elif alternative == "greater":
        lo_tail, hi_tail = alpha, 0.0
    else:
        lo_tail, hi_tail = 0.0, alpha
    low = 0.0 if (x <= 0 or lo_tail == 0.0) else float(sps.beta.ppf(lo_tail, x, n - x + 1.0))
    high = 1.0 if (x >= n or hi_tail == 0.0) else float(sps.beta.ppf(1.0 - hi_tail, x + 1.0, n - x))
    return low, high


def _share_to_ratio(share: float, canary_exposure: float, baseline_exposure: float) -> float:
    if share >= 1.0:
        return math.inf
    return share / (1.0 - share) * baseline_exposure / canary_exposure


def rate_ratio_test(
    canary_count: float,
    baseline_count: float,
    canary_exposure: float = 1.0,
    baseline_exposure: float = 1.0,
    *,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    null_ratio: float = 1.0,
    dispersion: float = 1.0,
) -> RateRatioResult:
    """Test the rate ratio canary / baseline of two event counts with their exposures.

    With ``dispersion == 1`` and integer counts this is R's exact two-sample
    ``poisson.test(c(canary_count, baseline_count), c(canary_exposure, baseline_exposure),
    r = null_ratio, alternative = alternative, conf.level = confidence)``. With
    ``dispersion > 1`` the counts are divided by it (quasi-Poisson effective counts) and the
    same binomial tails are evaluated through the incomplete beta function; the two-sided
    p-value is then twice the smaller tail (the "central" rule), since R's
    minimum-likelihood rule needs integer outcomes.

    When neither side has events there is nothing to test: the result has ``p_value = 1`` and
    the uninformative interval ``[0, inf]`` (R refuses such input).

    Example (R: ``poisson.test(c(12, 3), c(1000, 1000))``):

    >>> r = rate_ratio_test(12, 3, 1000, 1000)
    >>> round(r.ratio, 3), round(r.p_value, 5), round(r.low, 4), round(r.high, 3)
    (4.0, 0.03516, 1.0795, 22.088)
    """
    _validate(
        canary_count,
        baseline_count,
        canary_exposure,
        baseline_exposure,
        confidence,
        alternative,
        null_ratio,
        dispersion,
    )
    if baseline_count > 0:
        ratio = (canary_count / canary_exposure) / (baseline_count / baseline_exposure)
    else:
        ratio = math.inf if canary_count > 0 else math.nan

    def result(low: float, high: float, p_value: float, method: str) -> RateRatioResult:
        return RateRatioResult(
            canary_count=float(canary_count),
            baseline_count=float(baseline_count),
            canary_exposure=float(canary_exposure),
            baseline_exposure=float(baseline_exposure),
            ratio=ratio,
            low=low,
            high=high,
            p_value=p_value,
            confidence=confidence,
            alternative=alternative,
            null_ratio=null_ratio,
            dispersion=dispersion,
            method=method,
        )

    total = canary_count + baseline_count
    if total <= 0:
        return result(0.0, math.inf, 1.0, "no events on either side")
    x = canary_count / dispersion
    n = total / dispersion
    p0 = null_ratio * canary_exposure / (null_ratio * canary_exposure + baseline_exposure)
    exact = dispersion == 1.0 and float(canary_count).is_integer() and float(total).is_integer()
    if alternative == "greater":
        p_value = _upper_tail(x, n, p0)
    elif alternative == "less":
        p_value = _lower_tail(x, n, p0)
    elif exact:
        p_value = _two_sided_exact(int(canary_count), int(total), p0)
    else:
        p_value = min(1.0, 2.0 * min(_upper_tail(x, n, p0), _lower_tail(x, n, p0)))
    share_low, share_high = _share_interval(x, n, confidence, alternative)
    method = (
        "exact conditional binomial test of the Poisson rate ratio"
        if exact
        else "conditional binomial test on quasi-Poisson effective counts "
        f"(dispersion {dispersion:.3g})"
    )
    return result(
        _share_to_ratio(share_low, canary_exposure, baseline_exposure),
        _share_to_ratio(share_high, canary_exposure, baseline_exposure),
        float(p_value),
        method,
    )


def poisson_rate_bounds(
    count: float, exposure: float, confidence: float, *, mid_p: bool = False
) -> tuple[float, float]:
    """One-sided Poisson bounds for the rate ``count / exposure``: the lower bound at
    ``confidence`` (0 without events) and the upper bound at ``confidence``. Counts may be
    non-integer (quasi-Poisson effective counts): the tails are written with the regularised
    incomplete gamma function, which takes any count.

    Exact (Garwood) by default: the upper bound ``U`` solves ``P(X <= x | U) = alpha``, which
    covers the rate in at least ``confidence`` of draws and, with few events, in many more (the
    discreteness makes exact bounds conservative). ``mid_p=True`` counts half the probability of
    the observed count instead, ``P(X < x | U) + P(X = x | U) / 2 = alpha`` (Lancaster 1961;
    Agresti & Gottard 2007, "Nonconservative exact small-sample inference", *Statist. Sci.*
    22): coverage close to ``confidence`` on average over rates, not at least it at every rate.

    >>> [round(b * 3900 * 1000) / 1000 for b in poisson_rate_bounds(0, 3900, 0.9)]
    [0.0, 2.303]
    >>> [round(b * 3900 * 1000) / 1000 for b in poisson_rate_bounds(0, 3900, 0.9, mid_p=True)]
    [0.0, 1.609]
    """
    if exposure <= 0:
        raise ValueError("exposure must be positive")
    alpha = 1.0 - confidence
    # chi2.ppf(q, 2k) / 2 is gammaincinv(k, q), without scipy.stats' per-call overhead.
    lower = 0.0 if count <= 0 else float(special.gammaincinv(count, alpha))
    upper = float(special.gammainccinv(count + 1.0, alpha))
    if mid_p:
        # Each mid-p bound lies between the exact ones (the exact upper bound has
        # P(X <= x) = alpha, so the mid-p tail there is below alpha; mirrored below).
        def below(mu: float) -> float:  # P(X < x) + P(X = x) / 2, decreasing in mu
            strictly = float(special.gammaincc(count, mu)) if count > 0 else 0.0
            return 0.5 * (strictly + float(special.gammaincc(count + 1.0, mu))) - alpha

        def above(mu: float) -> float:  # P(X > x) + P(X = x) / 2, increasing in mu
            return 0.5 * (float(special.gammainc(count, mu))
                          + float(special.gammainc(count + 1.0, mu))) - alpha

        exact_lower, exact_upper = lower, upper
        upper = float(optimize.brentq(below, 0.0, exact_upper, xtol=1e-12 * exact_upper))
        if count > 0:
            lower = float(optimize.brentq(above, exact_lower, exact_upper,
                                          xtol=1e-12 * exact_upper))
    return lower / exposure, upper / exposure


def rate_ratio_bounds(
    canary_count: float,
    baseline_count: float,
    canary_exposure: float,
    baseline_exposure: float,
    *,
    confidence: float,
    dispersion: float = 1.0,
    mid_p: bool = False,
    sides: Literal["both", "lower", "upper"] = "both",
) -> tuple[float, float]:
    """One-sided bounds for the rate ratio canary / baseline, each at ``confidence``: the lower
    bound (0 without canary events) and the upper bound (infinity without baseline events).
    ``sides`` skips the bound a caller does not need (it comes back as 0 or infinity): the
    mid-p limits are root searches, and a judge asking about one direction pays for one.

    From the conditional binomial share of :func:`rate_ratio_test`, on effective counts
    (``dispersion``). Exact (Clopper-Pearson, as R's one-sided ``poisson.test`` limits) by
    default; ``mid_p=True`` gives the mid-p limits (half the probability of the observed share,
    as :func:`poisson_rate_bounds`): close to ``confidence`` on average rather than at least it.

    R: ``poisson.test(c(12, 3), c(1000, 1000), alternative = "greater")`` (lower bound) and
    ``alternative = "less"`` (upper):

    >>> [round(b, 3) for b in rate_ratio_bounds(12, 3, 1000, 1000, confidence=0.95)]
    [1.274, 16.591]
    >>> [round(b, 3) for b in rate_ratio_bounds(12, 3, 1000, 1000, confidence=0.95, mid_p=True)]
    [1.434, 13.308]
    """
    _validate(canary_count, baseline_count, canary_exposure, baseline_exposure, confidence,
              "less", 1.0, dispersion)
    total = canary_count + baseline_count
    if total <= 0:
        return 0.0, math.inf
    x, n = canary_count / dispersion, total / dispersion
    alpha = 1.0 - confidence
    # Clopper-Pearson one-sided limits (as _share_interval, through scipy.special directly).
    want_low, want_high = sides != "upper", sides != "lower"
    low = 0.0 if x <= 0 or not want_low else float(special.betaincinv(x, n - x + 1.0, alpha))
    high = (1.0 if x >= n or not want_high
            else float(special.betaincinv(x + 1.0, n - x, confidence)))
    if mid_p:
        def below(p: float) -> float:  # P(X < x) + P(X = x) / 2 at share p, decreasing in p
            at_most = float(special.betainc(n - x, x + 1.0, 1.0 - p)) if x < n else 1.0
            strictly = float(special.betainc(n - x + 1.0, x, 1.0 - p)) if x > 0 else 0.0
            return 0.5 * (at_most + strictly) - alpha

        def above(p: float) -> float:  # P(X > x) + P(X = x) / 2, increasing in p
            at_least = float(special.betainc(x, n - x + 1.0, p)) if x > 0 else 1.0
            strictly = float(special.betainc(x + 1.0, n - x, p)) if x < n else 0.0
            return 0.5 * (at_least + strictly) - alpha

        if high < 1.0:
            high = float(optimize.brentq(below, 0.0, high, xtol=1e-14))
        if low > 0.0:
            low = float(optimize.brentq(above, low, 1.0, xtol=1e-14))
    return (_share_to_ratio(low, canary_exposure, baseline_exposure),
            _share_to_ratio(high, canary_exposure, baseline_exposure))


def rate_difference_upper(
    canary_count: float,
    baseline_count: float,
    canary_exposure: float,
    baseline_exposure: float,
    *,
    confidence: float = 0.9,
    dispersion: float = 1.0,
    mid_p: bool = False,
) -> float:
    """One-sided upper confidence bound for the rate difference ``canary - baseline``.

    MOVER (method of variance estimates recovery; Newcombe, *Statistics in Medicine* 17, 1998,
    and Zou & Donner, *Statistics in Medicine* 27, 2008): the difference's bound is recovered
    from each rate's own exact bound, ``d + sqrt((u_c - r_c)**2 + (r_b - l_b)**2)``. Unlike
    "the canary's upper bound minus the baseline's lower bound" it does not compound two
    bounds at ``confidence`` each (that is a joint bound at about ``1 - 2 alpha``), and unlike
    the Wald bound it stays valid with zero events (0 against 0 on ``T`` requests bounds the
    difference by the canary's exact bound, ``-ln(alpha) / T`` at ``confidence``). Counts are
    tempered by ``dispersion`` as in :func:`rate_ratio_test`. ``mid_p=True`` recovers it from
    the mid-p limits of :func:`poisson_rate_bounds` instead of the exact ones.

    >>> round(rate_difference_upper(0, 0, 3900, 3900) * 100, 4)  # % of requests
    0.059
    """
    if dispersion < 1.0 or not math.isfinite(dispersion):
        raise ValueError("dispersion must be a finite number >= 1")
    if canary_count < 0 or baseline_count < 0:
        raise ValueError("counts must not be negative")
    if not 0.5 < confidence < 1.0:
        raise ValueError("confidence must be in (0.5, 1)")
    x_c, t_c = canary_count / dispersion, canary_exposure / dispersion
    x_b, t_b = baseline_count / dispersion, baseline_exposure / dispersion
    r_c, r_b = x_c / t_c, x_b / t_b
    _, u_c = poisson_rate_bounds(x_c, t_c, confidence, mid_p=mid_p)
    l_b, _ = poisson_rate_bounds(x_b, t_b, confidence, mid_p=mid_p)
    return (r_c - r_b) + math.hypot(u_c - r_c, r_b - l_b)


FloatArray = npt.NDArray[np.float64]


def _lag1(residuals: FloatArray) -> float:
    """Lag-1 autocorrelation of residuals that already have mean ~0, clipped to [0, 0.95]:
    negative values are not trusted to *shrink* a variance (a conservative choice), and 0.95
    caps the inflation at 39x."""
    if residuals.size < 3:
        return 0.0
    return min(max(sample_autocorrelation(residuals), 0.0), 0.95)


def _conditional_pearson(
    canary: FloatArray, n: FloatArray, p: FloatArray, residuals: FloatArray, variance: FloatArray
) -> float:
    """The Pearson statistic over its degrees of freedom for the canary's share of each
    interval's events, made robust to sparse counts (issue 13, eighth round).

    An interval with a single event is a Bernoulli trial: its variance is fixed by its mean, so
    it cannot be overdispersed (for ungrouped binary data the Pearson statistic says nothing
    about dispersion: McCullagh & Nelder §4.5), and its squared residual only adds noise, much
    of it when the exposures are split unevenly (one event on the side with an eighth of the
    minute's requests is a squared residual of 8). It counts at its null expectation ``1 - h``
    (``h`` its leverage in the fitted ratio, its share of the variance), so all-single-event
    counts give exactly 1. A few events at a lopsided share are nearly as skewed (1 against 1
    where the canary is expected to take 99% is a squared residual of 48): an interval with
    several events counts its squared residual less the skewness term ``(1 - 2p)(x - np) /
    (np(1 - p))``, ``V'(mu)(x - mu) / V(mu)`` for the binomial, the correction for sparse data
    of Farrington (1996, JRSS B 58) and Fletcher (2012, Biometrika 99). The term has mean 0,
    so the estimate stays unbiased, and it cancels most of the skew (1 against 1 above counts
    about 0, 2 against 0 about 1); for a single event it would give exactly 1.
    """
    if n.size < 2:
        return 1.0
    leverage = variance / variance.sum()
    terms = 1.0 - leverage
    several = n > 1
    skew = (1.0 - 2.0 * p[several]) * (canary[several] - n[several] * p[several]) \
        / variance[several]
    terms[several] = residuals[several] ** 2 - skew
    return max(float(terms.sum()) / (n.size - 1), 0.0)


def count_dispersion(
    canary_counts: npt.ArrayLike,
    baseline_counts: npt.ArrayLike,
    canary_exposures: npt.ArrayLike | None = None,
    baseline_exposures: npt.ArrayLike | None = None,
) -> DispersionEstimate:
    """Estimate how much more the total counts vary than Poisson (quasi-Poisson dispersion).

    When both sides have the same number of intervals (aligned in time, the usual case), the
    model is the one the conditional test assumes, interval by interval: the canary's share of
    interval ``i``'s events is binomial with ``p_i = r T_ci / (r T_ci + T_bi)`` at the
    estimated ratio ``r``. Conditioning on each interval's total removes whatever the two sides
    share (daily cycles, traffic swings), so only the extra variation *between* the sides counts.
    Otherwise each side is modelled with its own constant rate. The Pearson statistic over its
    degrees of freedom estimates the dispersion (McCullagh & Nelder 1989, §4.5); the lag-1
    autocorrelation ``phi`` of the Pearson residuals (on the time grid: an interval without
    events counts as a residual of 0, so lag 1 pairs neighbouring intervals) multiplies it by
    ``(1+phi)/(1-phi)``, the long-run variance factor of an AR(1) series (Box, Jenkins &
    Reinsel, *Time Series Analysis*, §2.1), since the test sums correlated intervals.

    Fewer than 3 informative intervals give ``dispersion = 1`` (no evidence either way).
    """
    canary = np.asarray(canary_counts, dtype=np.float64)
    baseline = np.asarray(baseline_counts, dtype=np.float64)
    canary_exp = (
        np.ones_like(canary) if canary_exposures is None
        else np.asarray(canary_exposures, dtype=np.float64)
    )
    baseline_exp = (
        np.ones_like(baseline) if baseline_exposures is None
        else np.asarray(baseline_exposures, dtype=np.float64)
    )
    if canary.shape != canary_exp.shape or baseline.shape != baseline_exp.shape:
        raise ValueError("counts and exposures must have the same length on each side")
    if np.any(canary < 0) or np.any(baseline < 0):
        raise ValueError("counts must be >= 0")
    if canary.size == baseline.size and canary.size > 0:
        total_c, total_b = canary.sum(), baseline.sum()
        if total_c <= 0 or total_b <= 0:
            return DispersionEstimate(pearson=1.0, phi=0.0, dispersion=1.0, intervals=0)
        ratio = (total_c / canary_exp.sum()) / (total_b / baseline_exp.sum())
        n = canary + baseline
        valid = (n > 0) & (canary_exp > 0) & (baseline_exp > 0)
        p = ratio * canary_exp[valid] / (ratio * canary_exp[valid] + baseline_exp[valid])
        expected = n[valid] * p
        variance = n[valid] * p * (1.0 - p)
        keep = variance > 0
        residuals = (canary[valid][keep] - expected[keep]) / np.sqrt(variance[keep])
        df = residuals.size - 1
        pearson = _conditional_pearson(
            canary[valid][keep], n[valid][keep], p[keep], residuals, variance[keep]
        )
        # For the lag-1 autocorrelation, the residuals on the time grid: an interval without
        # events (or exposure) carries no information and counts as a residual of 0, so that
        # "lag 1" pairs neighbouring intervals. Dropping those intervals instead paired events
        # minutes apart, and on sparse counts (a dozen intervals with an error among 60) the
        # noisy estimate only ever inflated the dispersion (issue 13, seventh round).
        on_grid = np.zeros(canary.size)
        on_grid[np.flatnonzero(valid)[keep]] = residuals
    else:
        parts = []
        for counts, exposures in ((canary, canary_exp), (baseline, baseline_exp)):
            if counts.sum() <= 0:
                continue
            rate = counts.sum() / exposures.sum()
            expected = rate * exposures
            keep = expected > 0
            parts.append((counts[keep] - expected[keep]) / np.sqrt(expected[keep]))
        residuals = np.concatenate(parts) if parts else np.empty(0)
        df = residuals.size - len(parts)
        on_grid = residuals
        pearson = float(np.dot(residuals, residuals)) / df if df > 0 else 1.0
    if df < 2:
        return DispersionEstimate(
            pearson=1.0, phi=0.0, dispersion=1.0, intervals=int(residuals.size)
        )
    phi = _lag1(on_grid)
    dispersion = max(1.0, pearson * (1.0 + phi) / (1.0 - phi))
    return DispersionEstimate(
        pearson=pearson, phi=phi, dispersion=dispersion, intervals=int(residuals.size)
    )
