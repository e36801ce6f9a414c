"""Spread and tails: is the canary's upper (or lower) tail heavier, or its spread wider?

A canary whose median is unchanged but whose p90/p99 got worse passes a location test. Two
tools here:

- :func:`tail_test` compares the two sides beyond a quantile with the *generalised median
  test* (Mood 1950, *Introduction to the Theory of Statistics*, §16.2; Conover, *Practical
  Nonparametric Statistics*, 3rd ed., §4.3, with the quantile ``q`` in place of the median):
  pool both sides, take the pooled ``q``-quantile as a threshold, and count each side's points
  beyond it. Given the total number of exceedances ``K``, the canary's count is (close to)
  Binomial(K, n_c / (n_c + n_b)) when nothing changed; the one-sided p-value is that binomial
  tail, evaluated on *effective* counts (divided by the AR(1) variance factor, as the
  quasi-Poisson rate test of :mod:`judge.stats.counts` does), so it stays honest with few
  exceedances and with serially correlated points. The binomial stands in for the
  hypergeometric of the exact test; its larger variance is corrected by the finite-population
  factor ``(N - K) / (N - 1)`` within the effective counts.
- :func:`spread_test` is a rank test on absolute deviations from each side's own median
  (centred as Brown & Forsythe 1974, "Robust tests for the equality of variances", JASA 69,
  364-367, do): a wider canary has larger deviations whatever its location. The deviations'
  pooled ranks are scored squared, Conover's squared-ranks test (Conover, *Practical
  Nonparametric Statistics*, 3rd ed., 1999, section 5.3; Conover, Johnson & Johnson 1981,
  Technometrics 23, compare it with the other tests for equal spreads): a wider spread moves
  the largest deviations most, and squared ranks weigh those. Against the plain ranks
  (Mann-Whitney on the deviations) it sees a doubled spread on 60 Gaussian points a side in
  81% of samples instead of 67% at the level a metric's component gets among 11 (0.0006), with
  the same size (issue 13, twelfth round).

Serial correlation: for a Gaussian AR(1) series with coefficient ``phi`` the autocorrelation
of ``|X_t|`` at lag ``k`` is ``g(phi^k)`` with ``g(r) = (r asin r + sqrt(1 - r^2) - 1) /
(pi / 2 - 1) <= r^2``, so absolute deviations have a long-run variance factor of at most
``(1 + phi^2) / (1 - phi^2)`` (:func:`deviation_variance_factor`), smaller than the series' own
``(1 + phi) / (1 - phi)``. Exceedance indicators have their own factor, computed exactly for the
Gaussian case from bivariate normal orthant probabilities (:func:`exceedance_variance_factor`);
``phi`` estimated on ranks makes both apply to any increasing transform of a Gaussian series.
Real series are not Gaussian AR(1): a regime change puts whole stretches beyond a threshold,
so the outlier test's factor is never below the one the exceedance indicators show
themselves (:func:`exceedance_dependence_factor_rows`).

Each side's quantile also gets a distribution-free interval from order statistics
(:func:`quantile_interval`: ``[x_(l), x_(u)]`` with ``l, u`` from Binomial(n_eff, q) quantiles,
David & Nagaraja, *Order Statistics*, 3rd ed., §7.1), computed at the effective sample size and
mapped back to the series' own order statistics, so the report can show "p90 153 ms [141, 170]".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.special import ndtr, ndtri, owens_t

from judge.stats import _compiled
from judge.stats._descriptive import median_rows, sorted_median_rows, sorted_quantile_rows
from judge.stats._ranks import squared_rank_statistics_rows
from judge.stats._validation import per_row
from judge.stats.autocorrelation import PHI_CAP, two_sample_inflation
from judge.stats.counts import upper_tail_rows

Tail = Literal["upper", "lower"]
FloatArray = npt.NDArray[np.float64]

def exceedance_variance_factor(phi: float, quantile: float) -> float:
    """Long-run variance factor of the indicator ``1{X_t > x_q}`` for a Gaussian AR(1) series
    with coefficient ``phi`` (or any increasing transform of one, since only ranks matter).

    ``1 + 2 sum_k r_k`` with ``r_k = (P(X_0 > u, X_k > u) - p^2) / (p (1 - p))``, ``p = 1 - q``,
    ``u = Phi^-1(q)`` and ``corr(X_0, X_k) = phi^k``; the orthant probability is
    ``Phi(-u) - 2 T(u, sqrt((1 - rho) / (1 + rho)))`` with Owen's T function (Owen 1956, "Tables
    for computing bivariate normal probabilities", Ann. Math. Statist. 27). Larger than
    ``(1 + phi^2) / (1 - phi^2)`` near the median, smaller far in the tail (extremes of a
    Gaussian series are asymptotically independent).

    >>> round(exceedance_variance_factor(0.0, 0.8), 6)
    1.0
    >>> round(exceedance_variance_factor(0.7, 0.8), 2)
    3.69
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    phi = min(max(phi, 0.0), 0.95)
    if phi == 0.0:
        return 1.0
    tail = min(quantile, 1.0 - quantile)
    # scipy.stats.norm.isf(tail) is -ndtri(tail); called directly, without its per-call
    # argument checks (a tenth of a small judgment's time).
    u = -float(ndtri(tail))
    # Lags until phi^k < 1e-6: beyond that the terms are negligible.
    lags = np.arange(1, math.ceil(math.log(1e-6) / math.log(phi)) + 1)
    rho = phi**lags
    joint = tail - 2.0 * owens_t(u, np.sqrt((1.0 - rho) / (1.0 + rho)))
    terms = (joint - tail * tail) / (tail * (1.0 - tail))
    return float(1.0 + 2.0 * np.sum(terms))


def deviation_variance_factor(phi: float) -> float:
    """Long-run variance factor for absolute deviations / exceedances of a Gaussian AR(1)
    series: ``(1 + phi^2) / (1 - phi^2)`` (``phi`` clipped to [0, 0.95])."""
    phi = min(max(phi, 0.0), 0.95)
    return (1.0 + phi * phi) / (1.0 - phi * phi)


@dataclass(frozen=True)
class QuantileInterval:
    """A sample quantile (R-7 / numpy default) and its order-statistic interval."""

    quantile: float
    value: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class TailResult:
    """Generalised median test at quantile ``quantile`` for tail ``tail``.

    ``threshold``: the pooled quantile; ``canary_share``/``baseline_share``: shares of points
    beyond it (above for ``upper``, below for ``lower``); ``difference``: canary share minus
    baseline share with its interval ``low``/``high``; ``p_value``: one-sided, for "the canary
    has more points beyond the threshold"; ``tested``: ``False`` when no point is beyond the
    threshold on either side (then ``p_value`` is 1).
    """

    quantile: float
    tail: Tail
    threshold: float
    canary_exceedances: int
    baseline_exceedances: int
    canary_size: int
    baseline_size: int
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    tested: bool
    canary_quantile: QuantileInterval
    baseline_quantile: QuantileInterval

    @property
    def canary_share(self) -> float:
        return self.canary_exceedances / self.canary_size

    @property
    def baseline_share(self) -> float:
        return self.baseline_exceedances / self.baseline_size


def quantile_interval(
    values: npt.ArrayLike, quantile: float, *, confidence: float = 0.95, factor: float = 1.0
) -> QuantileInterval:
    """The ``quantile`` of ``values`` with a distribution-free interval from order statistics.

    With ``m = n / factor`` effective points, ``l = Binomial(m, q).ppf(alpha/2)`` and
    ``u = Binomial(m, q).ppf(1 - alpha/2) + 1`` are order-statistic ranks at the effective size;
    they are scaled back by ``factor`` to ranks of the ``n`` points. A rank outside ``1..n``
    leaves that end of the interval infinite (the data cannot bound it).
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise ValueError("values: need at least one point")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if factor < 1.0:
        raise ValueError(f"factor must be >= 1, got {factor}")
    n = x.size
    effective = max(n / factor, 1.0)
    alpha = 1.0 - confidence
    # The binomial needs an integer size: round the effective size down (a wider interval).
    m = max(math.floor(effective), 1)
    lower_rank = float(sps.binom.ppf(alpha / 2.0, m, quantile))
    upper_rank = float(sps.binom.ppf(1.0 - alpha / 2.0, m, quantile)) + 1.0
    scale = n / m
    low_index = math.floor(lower_rank * scale)
    high_index = math.ceil(upper_rank * scale)
    low = float(x[low_index - 1]) if low_index >= 1 else -math.inf
    high = float(x[high_index - 1]) if high_index <= n else math.inf
    return QuantileInterval(
        quantile=quantile,
        value=float(np.quantile(x, quantile)),
        low=low,
        high=high,
        confidence=confidence,
    )


def tail_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    quantile: float,
    *,
    tail: Tail = "upper",
    confidence: float = 0.98,
    factor_canary: float = 1.0,
    factor_baseline: float = 1.0,
) -> TailResult:
    """Does the canary put more of its points beyond the pooled ``quantile`` than the baseline?

    ``tail="upper"`` counts points above the pooled quantile (use q = 0.9, 0.99 for "p90/p99
    got worse" on a metric where increases are bad); ``"lower"`` counts points below it (use
    q = 0.1, 0.01 when decreases are bad). Ties with the threshold do not count as beyond it.

    The p-value is the conditional binomial tail of the canary's exceedances on effective
    counts (``dispersion = max(f_c, f_b)``, module docstring); the interval for ``p_c - p_b``
    is the normal one with the unpooled variance inflated by the same factors.

    >>> base = [float(v) for v in range(1, 101)]
    >>> canary = [float(v) for v in range(1, 81)] + [200.0] * 20
    >>> r = tail_test(canary, base, 0.9)
    >>> r.canary_exceedances, r.baseline_exceedances, r.p_value < 0.05
    (20, 0, True)
    """
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.size == 0 or b.size == 0:
        raise ValueError("canary and baseline need at least one point each")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if tail not in ("upper", "lower"):
        raise ValueError(f"tail must be 'upper' or 'lower', got {tail!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ex = exceedance_test_rows(c.reshape(1, -1), b.reshape(1, -1), quantile, tail=tail,
                              factor_canary=factor_canary, factor_baseline=factor_baseline)
    threshold = float(ex.threshold[0])
    a, d = int(ex.canary_exceedances[0]), int(ex.baseline_exceedances[0])
    n_c, n_b = c.size, b.size
    share_c, share_b = a / n_c, d / n_b
    pooled = (a + d) / (n_c + n_b)
    difference = share_c - share_b
    tested = a + d > 0
    null_var = pooled * (1.0 - pooled) * (factor_canary / n_c + factor_baseline / n_b)
    p_value = float(ex.p_value[0])
    critical = float(ndtri(1.0 - (1.0 - confidence) / 2.0))  # norm.ppf, without its checks
    spread = math.sqrt(
        factor_canary * share_c * (1.0 - share_c) / n_c
        + factor_baseline * share_b * (1.0 - share_b) / n_b
    )
    # The unpooled variance is 0 when both shares are 0 or 1; fall back to the null variance.
    spread = spread if spread > 0 else math.sqrt(max(null_var, 0.0))
    return TailResult(
        quantile=quantile,
        tail=tail,
        threshold=threshold,
        canary_exceedances=a,
        baseline_exceedances=d,
        canary_size=n_c,
        baseline_size=n_b,
        difference=difference,
        low=difference - critical * spread,
        high=difference + critical * spread,
        confidence=confidence,
        p_value=p_value,
        tested=tested,
        canary_quantile=quantile_interval(c, quantile, confidence=confidence, factor=factor_canary),
        baseline_quantile=quantile_interval(
            b, quantile, confidence=confidence, factor=factor_baseline
        ),
    )


@dataclass(frozen=True)
class SpreadResult:
    """Squared-ranks test on absolute deviations from each side's own median.

    ``p_value``: one-sided, "the canary's deviations are larger"; ``ratio``: canary / baseline
    median absolute deviation (``nan`` when the baseline's is 0); ``upper_ratio`` /
    ``lower_ratio``: the same for the upper (p90 - median) and lower (median - p10) half-spreads,
    used to say which tail widened.
    """

    p_value: float
    ratio: float
    upper_ratio: float
    lower_ratio: float
    canary_mad: float
    baseline_mad: float


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def spread_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    factor_canary: float = 1.0,
    factor_baseline: float = 1.0,
) -> SpreadResult:
    """Is the canary more spread out than the baseline (Conover's squared-ranks test on
    absolute deviations from each side's median)?

    The canary's sum of squared pooled ranks of ``|x - median(x)|`` against its permutation
    mean and variance, one-sided for a larger canary spread, the variance inflated by the
    variance factors (use
    :func:`deviation_variance_factor`). Centring each side on its own median makes the test
    insensitive to a pure shift.

    >>> r = spread_test([1.0, 9.0, 2.0, 8.0, 0.0, 10.0, 5.0], [4.0, 5.0, 6.0, 5.5, 4.5, 5.0, 6.5])
    >>> r.p_value < 0.05, r.ratio > 1
    (True, True)
    """
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.size < 2 or b.size < 2:
        raise ValueError("canary and baseline need at least two points each")
    med_c, med_b = float(np.median(c)), float(np.median(b))
    dev_c, dev_b = np.abs(c - med_c), np.abs(b - med_b)
    p_value = float(spread_p_values_rows(
        c.reshape(1, -1), b.reshape(1, -1), factor_canary=factor_canary,
        factor_baseline=factor_baseline,
    )[0])
    mad_c, mad_b = float(np.median(dev_c)), float(np.median(dev_b))
    q_c = np.quantile(c, [0.1, 0.9])
    q_b = np.quantile(b, [0.1, 0.9])
    return SpreadResult(
        p_value=p_value,
        ratio=_ratio(mad_c, mad_b),
        upper_ratio=_ratio(float(q_c[1]) - med_c, float(q_b[1]) - med_b),
        lower_ratio=_ratio(med_c - float(q_c[0]), med_b - float(q_b[0])),
        canary_mad=mad_c,
        baseline_mad=mad_b,
    )


@dataclass(frozen=True)
class ExceedanceRows:
    """Per row of :func:`exceedance_test_rows`: the pooled threshold, each side's number of
    points beyond it and the one-sided p-value (1 where no point is beyond it)."""

    threshold: npt.NDArray[np.float64]
    canary_exceedances: npt.NDArray[np.int64]
    baseline_exceedances: npt.NDArray[np.int64]
    p_value: npt.NDArray[np.float64]


def exceedance_test_rows(
    canary_rows: npt.ArrayLike,
    baseline_rows: npt.ArrayLike,
    quantile: float,
    *,
    tail: Tail = "upper",
    factor_canary: npt.ArrayLike = 1.0,
    factor_baseline: npt.ArrayLike = 1.0,
) -> ExceedanceRows:
    """The threshold, counts and p-value of :func:`tail_test` for every row pair of two 2-d
    arrays at once (rows of one array have one length; factors scalars or one per row)."""
    c = np.atleast_2d(np.asarray(canary_rows, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64))
    if c.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError("canary and baseline need at least one point each")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if tail not in ("upper", "lower"):
        raise ValueError(f"tail must be 'upper' or 'lower', got {tail!r}")
    rows = c.shape[0]
    threshold = np.quantile(np.concatenate([c, b], axis=1), quantile, axis=1)
    if tail == "upper":
        a = np.sum(c > threshold[:, None], axis=1)
        d = np.sum(b > threshold[:, None], axis=1)
    else:
        a = np.sum(c < threshold[:, None], axis=1)
        d = np.sum(b < threshold[:, None], axis=1)
    f_c = per_row(factor_canary, rows)
    f_b = per_row(factor_baseline, rows)
    total, exceeding = c.shape[1] + b.shape[1], a + d
    # Conditional binomial on effective counts (module docstring): exceedances play the part
    # of events, each side's size the part of exposure. Sampling without replacement (the
    # exact test is hypergeometric) has variance smaller by (N - K) / (N - 1), which the
    # effective counts take into account (never below the plain binomial).
    finite_population = (total - exceeding) / (total - 1.0) if total > 1 else np.ones(rows)
    dispersion = np.maximum(1.0, np.maximum(f_c, f_b) * finite_population)
    share = c.shape[1] / total
    p_value = upper_tail_rows(a / dispersion, exceeding / dispersion, share)
    return ExceedanceRows(threshold, a.astype(np.int64), d.astype(np.int64),
                          np.where(exceeding > 0, p_value, 1.0))


def spread_p_values_rows(
    canary_rows: npt.ArrayLike,
    baseline_rows: npt.ArrayLike,
    *,
    factor_canary: npt.ArrayLike = 1.0,
    factor_baseline: npt.ArrayLike = 1.0,
) -> npt.NDArray[np.float64]:
    """The p-value of :func:`spread_test` for every row pair at once: the inflated-variance
    squared-ranks test on absolute deviations from each row's median, counted from the sorted
    deviations (1 where every deviation is the same)."""
    c = np.atleast_2d(np.asarray(canary_rows, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64))
    if c.shape[1] < 2 or b.shape[1] < 2:
        raise ValueError("canary and baseline need at least two points each")
    rows = c.shape[0]
    dev_c = np.sort(np.abs(c - median_rows(c)[:, None]), axis=1)
    dev_b = np.sort(np.abs(b - median_rows(b)[:, None]), axis=1)
    return _spread_p_values_sorted(dev_c, dev_b, per_row(factor_canary, rows),
                                   per_row(factor_baseline, rows))


def _spread_p_values_sorted(
    dev_c: FloatArray, dev_b: FloatArray, f_c: FloatArray, f_b: FloatArray
) -> FloatArray:
    """:func:`spread_p_values_rows` from each side's absolute deviations, sorted row by row:
    Conover's squared-ranks statistic (:func:`judge.stats._ranks.squared_rank_statistics_rows`)
    against its permutation variance times the sides' dependence factors."""
    centred, variance = squared_rank_statistics_rows(dev_c, dev_b)
    inflation = two_sample_inflation(f_c, f_b, dev_c.shape[1], dev_b.shape[1])
    sd = np.sqrt(np.maximum(variance * inflation, 0.0))
    z = np.divide(centred, sd, out=np.zeros_like(sd), where=sd > 0)
    p_greater = np.where(sd > 0, ndtr(-z), 1.0)
    lowest = np.minimum(dev_c[:, 0], dev_b[:, 0])
    highest = np.maximum(dev_c[:, -1], dev_b[:, -1])
    out: npt.NDArray[np.float64] = np.where(highest > lowest, p_greater, 1.0)
    return out


OUTLIER_FENCE = 3.0
"""Robust standard deviations (1.4826 MAD) between the pooled median and the outlier fence of
:func:`outlier_test_rows`: Hampel's identifier (Hampel 1974, "The influence curve and its role
in robust estimation", JASA 69; Davies & Gather 1993, JASA 88) with its usual constant."""


def outlier_fences(pooled: npt.ArrayLike, *, fence: float = OUTLIER_FENCE) -> tuple[
        npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row of ``pooled`` (both sides together), the lower and upper outlier fences
    ``median -+ fence * 1.4826 * MAD``."""
    x = np.atleast_2d(np.asarray(pooled, dtype=np.float64))
    median = median_rows(x)
    return _fences(median, median_rows(np.abs(x - median[:, None])), fence)


def _fences(median: FloatArray, mad: FloatArray, fence: float) -> tuple[FloatArray, FloatArray]:
    """``median -+ fence * 1.4826 * mad``: Hampel's fences from a median and its MAD."""
    scale = 1.4826 * mad
    return median - fence * scale, median + fence * scale


def _sorted_deviations(ordered: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row medians of finite rows sorted ascending, and the absolute deviations from them,
    sorted: what :func:`median_rows` and a sort of ``|x - median|`` give, to the bit (the same
    middle values, the same multiset of deviations), without a partition of the rows (numpy's
    SIMD sort of a row takes about half its partition's time)."""
    median = sorted_median_rows(ordered)
    compiled = _compiled.kernels(ordered.size)
    if compiled is not None and _without_nan(ordered):
        # Linear instead of a sort (judge.stats._compiled): the same numbers, to the bit.
        deviations = np.empty(ordered.shape)
        compiled.sorted_deviations(np.ascontiguousarray(ordered), median, deviations)
        return median, deviations
    return median, np.sort(np.abs(ordered - median[:, None]), axis=1)


def _without_nan(ordered: FloatArray) -> bool:
    """Rows sorted ascending hold no NaN (numpy sorts NaN last); asked only where the kernels
    would run, so small judgments do not pay for the check."""
    return ordered.size == 0 or not bool(np.isnan(ordered[:, -1]).any())


def _pooled_rows(sorted_c: FloatArray, sorted_b: FloatArray) -> FloatArray:
    """Each row of sorted_c merged with the same row of sorted_b: the pooled sample, sorted."""
    compiled = _compiled.kernels(sorted_c.size + sorted_b.size)
    if compiled is not None and _without_nan(sorted_c) and _without_nan(sorted_b):
        pooled = np.empty((sorted_c.shape[0], sorted_c.shape[1] + sorted_b.shape[1]))
        compiled.merge_rows(np.ascontiguousarray(sorted_c), np.ascontiguousarray(sorted_b),
                            pooled)
        return pooled
    # Two sorted runs: numpy's stable sort (timsort) merges them in linear time.
    merged: FloatArray = np.sort(np.concatenate([sorted_c, sorted_b], axis=1), axis=1,
                                 kind="stable")
    return merged


def _clip_phi_rows(phi: npt.ArrayLike) -> FloatArray:
    """``np.clip(phi, 0, PHI_CAP)`` without its Python wrapper (a small judgment's clips cost
    more in the call than in the arithmetic); the same values (0.0 where np.clip gives -0.0,
    which only ever feeds ``(1 + r) / (1 - r)`` and ``r**2``)."""
    out: FloatArray = np.minimum(np.maximum(phi, 0.0), PHI_CAP)
    return out


def exceedance_dependence_factor_rows(
    canary_exceeds: npt.ArrayLike, baseline_exceeds: npt.ArrayLike
) -> FloatArray:
    """Per row of two boolean 2-d arrays (points beyond a threshold, in time order, one row
    per metric): the AR(1) variance factor ``(1 + r) / (1 - r)`` of the exceedance indicators
    from their own lag-1 autocorrelation ``r`` (clipped to [0, 0.95]; 1 for a row without
    exceedances).

    ``r`` pools the two sides, each centred on its own share ``p_s``: ``sum_s (A_s - (n_s - 1)
    p_s^2) / sum_s (n_s - 1) p_s (1 - p_s)`` with ``A_s`` the side's pairs of neighbouring
    exceedances. Each side is its own series, so a canary with more (independent) outliers
    than the baseline does not read as dependence. Independent exceedances give ``r`` near 0
    (factor 1), however many happen to be neighbours; one regime block of ten consecutive
    minutes beyond the fence among 60 gives ``r`` 0.9 (factor about 19): the runs of exceedances
    that extreme-value practice declusters (Coles 2001, *An Introduction to Statistical
    Modeling of Extreme Values*, §5.3.2), measured as the indicators' serial correlation.

    >>> exceedance_dependence_factor_rows([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]],
    ...                                   [[0] * 10]).round(2).tolist()
    [6.2]
    >>> exceedance_dependence_factor_rows([[1, 0, 1, 0, 1, 0, 1, 0]], [[0, 1, 0, 0] * 2]).tolist()
    [1.0]
    """
    numerator: FloatArray | None = None
    denominator: FloatArray | None = None
    for side in (canary_exceeds, baseline_exceeds):
        x = np.atleast_2d(np.asarray(side, dtype=bool))
        # x.mean(axis=1) without its wrapper: numpy sums booleans in float64 and divides by
        # the count (the same bits).
        share = np.add.reduce(x, axis=1, dtype=np.float64) / x.shape[1]
        pairs = np.add.reduce(x[:, 1:] & x[:, :-1], axis=1, dtype=np.float64)
        lags = x.shape[1] - 1
        num = pairs - lags * share * share
        den = lags * share * (1.0 - share)
        numerator = num if numerator is None else numerator + num
        denominator = den if denominator is None else denominator + den
    assert numerator is not None and denominator is not None
    r = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    r = _clip_phi_rows(r)
    out: FloatArray = (1.0 + r) / (1.0 - r)
    return out


def outlier_test_rows(
    canary_rows: npt.ArrayLike,
    baseline_rows: npt.ArrayLike,
    *,
    tail: Tail = "upper",
    phi_canary: npt.ArrayLike = 0.0,
    phi_baseline: npt.ArrayLike = 0.0,
    fence: float = OUTLIER_FENCE,
    declustered: bool = True,
) -> ExceedanceRows:
    """Does the canary have more *outlier points* (beyond the pooled outlier fence, above for
    ``upper``) than the baseline? For every row pair at once.

    The generalised median test of :func:`tail_test` with the threshold at the pooled Hampel
    fence ``median +- fence * 1.4826 MAD`` (:func:`outlier_fences`) instead of a fixed
    quantile: a heavier tail shows as more minutes far out, however many that is, while a
    fixed quantile cuts through the tail wherever its share happens to put it. The fence is a
    symmetric function of the pooled points, so given the number of outliers the canary's
    count is (close to) binomial with its share of the points under "no change". The serial
    dependence of the indicators is the Gaussian-copula factor of
    :func:`exceedance_variance_factor` at the observed pooled outlier share, from each side's
    ``phi``; with the finite-population factor as in :func:`tail_test`.

    With ``declustered`` (the default) the factor is at least the dependence the exceedances
    themselves show (:func:`exceedance_dependence_factor_rows`): on real series a regime change
    puts whole stretches beyond the fence, runs the Gaussian AR(1) model (whose extremes are
    nearly independent) does not expect. Scattered outlier minutes keep the model's factor.
    """
    c = np.atleast_2d(np.asarray(canary_rows, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64))
    if c.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError("canary and baseline need at least one point each")
    if tail not in ("upper", "lower"):
        raise ValueError(f"tail must be 'upper' or 'lower', got {tail!r}")
    low, high = outlier_fences(np.concatenate([c, b], axis=1), fence=fence)
    return _outlier_rows_beyond(c, b, low if tail == "lower" else high, tail,
                                phi_canary, phi_baseline, declustered)


def _outlier_rows_beyond(
    c: FloatArray,
    b: FloatArray,
    threshold: FloatArray,
    tail: Tail,
    phi_canary: npt.ArrayLike,
    phi_baseline: npt.ArrayLike,
    declustered: bool,
) -> ExceedanceRows:
    """:func:`outlier_test_rows` past its fences (``threshold``, the fence of ``tail``), so
    that :func:`spread_tail_rows` computes the pooled fences once for both tails."""
    rows = c.shape[0]
    if tail == "upper":
        beyond_c, beyond_b = c > threshold[:, None], b > threshold[:, None]
    else:
        beyond_c, beyond_b = c < threshold[:, None], b < threshold[:, None]
    a, d = np.sum(beyond_c, axis=1), np.sum(beyond_b, axis=1)
    phi_c = per_row(phi_canary, rows)
    phi_b = per_row(phi_baseline, rows)
    total, exceeding = c.shape[1] + b.shape[1], a + d
    if not exceeding.any():
        # No row has a point beyond its fence: every p-value is 1 (the general path's
        # ``np.where`` below); skipping the factors saves a small judgment some 20 numpy calls.
        return ExceedanceRows(threshold, a.astype(np.int64), d.astype(np.int64), np.ones(rows))
    # The Gaussian-copula factor at the observed share (kept within [0.5%, 50%]: beyond, the
    # indicators are either too rare to matter or the fence is the median).
    share = np.clip(exceeding / total, 0.005, 0.5)
    cache: dict[tuple[float, float], float] = {}

    def factor(phi: float, level: float) -> float:
        if (phi, level) not in cache:
            cache[phi, level] = exceedance_variance_factor(phi, level)
        return cache[phi, level]

    factor_c = np.array([factor(p, 1.0 - q)
                         for p, q in zip(phi_c.tolist(), share.tolist(), strict=True)])
    factor_b = np.array([factor(p, 1.0 - q)
                         for p, q in zip(phi_b.tolist(), share.tolist(), strict=True)])
    factor_ab = np.maximum(factor_c, factor_b)
    if declustered:
        # Floored at the model: the indicators' own dependence can only widen the allowance.
        factor_ab = np.maximum(factor_ab, exceedance_dependence_factor_rows(beyond_c, beyond_b))
    finite_population = (total - exceeding) / (total - 1.0) if total > 1 else np.ones(rows)
    dispersion = np.maximum(1.0, factor_ab * finite_population)
    p_value = upper_tail_rows(a / dispersion, exceeding / dispersion, c.shape[1] / total)
    return ExceedanceRows(threshold, a.astype(np.int64), d.astype(np.int64),
                          np.where(exceeding > 0, p_value, 1.0))


@dataclass(frozen=True)
class SpreadTailRows:
    """Spread and tail statistics of a group of metrics (arrays, one entry per metric)."""

    spread_p: FloatArray
    mad_c: FloatArray
    mad_b: FloatArray
    upper_ratio: FloatArray
    lower_ratio: FloatArray
    upper_reach: FloatArray
    """How far the canary's p90 reaches above the *baseline's* median, as a multiple of the
    baseline's upper half (p90 - median): above 1 when the canary's upper values go beyond the
    baseline's p90 (``nan`` when the baseline's upper half is 0)."""
    lower_reach: FloatArray
    """The same below the baseline's median, with p10."""
    spread_factor: FloatArray
    exceedances: dict[str, ExceedanceRows]
    sizes: tuple[int, int]


def _ratio_rows(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out: FloatArray = np.divide(numerator, denominator,
                                out=np.full(numerator.shape, math.nan), where=denominator > 0)
    return out


def spread_tail_rows(
    c: FloatArray,
    b: FloatArray,
    phi_c: FloatArray,
    phi_b: FloatArray,
    *,
    spread_phi_c: FloatArray | None = None,
    spread_phi_b: FloatArray | None = None,
) -> SpreadTailRows:
    """The spread test and both tail tests of the default judge's ``mann_whitney`` metric for
    every row (metric) of ``c`` (canary) and ``b`` (baseline), with descriptive spreads.

    The spread test uses the deviation variance factor ``(1 + phi^2) / (1 - phi^2)`` and the
    tail test the exact Gaussian-copula factor of exceedance indicators
    (:mod:`judge.stats.quantiles`), from ``phi_c`` / ``phi_b``, the lag-1 autocorrelations
    to allow for; the spread test from ``spread_phi_c`` / ``spread_phi_b`` when given. On
    AR(1) noise the point estimate suffices for both (the ``phi^2`` bound overstates the
    deviations' autocorrelation); on real series with bursts and regime changes the spread test
    needs more, and the default judge passes it its margin-raised estimate
    (``docs/default-judge.md``, real-noise benchmark).
    """
    clipped_c = _clip_phi_rows(phi_c if spread_phi_c is None else spread_phi_c)
    clipped_b = _clip_phi_rows(phi_b if spread_phi_b is None else spread_phi_b)
    f_c = (1.0 + clipped_c**2) / (1.0 - clipped_c**2)
    f_b = (1.0 + clipped_b**2) / (1.0 - clipped_b**2)
    # One sort per side gives numpy's medians and quantiles to the bit, the sorted deviations
    # of the spread test and their medians (the MADs), and, merged, the pooled sample whose
    # median and MAD place the outlier fences: the same numbers as spread_p_values_rows,
    # median_rows and outlier_fences, which partition and sort the rows again.
    sorted_c, sorted_b = np.sort(c, axis=1), np.sort(b, axis=1)
    (med_c, dev_c), (med_b, dev_b) = _sorted_deviations(sorted_c), _sorted_deviations(sorted_b)
    spread_p = _spread_p_values_sorted(dev_c, dev_b, f_c, f_b)
    mad_c, mad_b = sorted_median_rows(dev_c), sorted_median_rows(dev_b)
    q_c = [sorted_quantile_rows(sorted_c, 0.1), sorted_quantile_rows(sorted_c, 0.9)]
    q_b = [sorted_quantile_rows(sorted_b, 0.1), sorted_quantile_rows(sorted_b, 0.9)]
    pooled = _pooled_rows(sorted_c, sorted_b)
    pooled_median, pooled_deviations = _sorted_deviations(pooled)
    # outlier_test_rows for both tails from one computation of the pooled fences.
    low, high = _fences(pooled_median, sorted_median_rows(pooled_deviations), OUTLIER_FENCE)
    exceedances = {
        "upper": _outlier_rows_beyond(c, b, high, "upper", phi_c, phi_b, True),
        "lower": _outlier_rows_beyond(c, b, low, "lower", phi_c, phi_b, True),
    }
    return SpreadTailRows(
        spread_p=spread_p, mad_c=mad_c, mad_b=mad_b,
        upper_ratio=_ratio_rows(q_c[1] - med_c, q_b[1] - med_b),
        lower_ratio=_ratio_rows(med_c - q_c[0], med_b - q_b[0]),
        upper_reach=_ratio_rows(q_c[1] - med_b, q_b[1] - med_b),
        lower_reach=_ratio_rows(med_b - q_c[0], med_b - q_b[0]),
        spread_factor=f_c, exceedances=exceedances, sizes=(c.shape[1], b.shape[1]),
    )
