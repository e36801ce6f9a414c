"""Tests on time-aligned pairs: baseline and canary observed at the same minutes.

A canary usually runs next to its baseline behind one load balancer, and both are queried over
one window with one step: minute ``t`` of each side saw the same load. The difference
``d_t = canary_t - baseline_t`` cancels what the sides share (daily cycles, traffic swings,
a noisy neighbour on the whole cluster), so a shift stands out against the minute-level noise
only, not against the load's swings. With nothing changed the sides are exchangeable minute by
minute: ``d_t`` is symmetric about 0, and given the pair ``{baseline_t, canary_t}`` its sign is
a fair coin. The tests here are that sign-flip symmetry made into statistics (the Wilcoxon
signed-rank family; Hollander, Wolfe & Chicken, *Nonparametric Statistical Methods*, 3rd ed.,
§3.1 and §3.2):

- :func:`paired_shift_test`: the signed-rank statistic ``S = sum sign(d_t) r_t`` (``r_t`` the
  midrank of ``|d_t|`` among the non-zero differences) against its permutation variance
  ``sum r_t^2``, with the Hodges-Lehmann one-sample estimate (median of the Walsh averages
  ``(d_i + d_j) / 2``) and its interval at the same critical value.
- :func:`paired_spread_test`: whether the canary is further from the common level than the
  baseline, minute by minute: ``T = sum sign(d_t) r_t sign(m_t - median(m))`` with
  ``m_t = (baseline_t + canary_t) / 2``. A wider canary is above the baseline when the level is
  high and below it when it is low; a pure shift cancels out of ``T``.

Serial dependence: the differences need not be independent from minute to minute (an
instance's slowly varying state, a cache warming). Both statistics are sums of terms that follow
``d_t``; their variance is inflated by the AR(1) long-run factor ``(1 + phi) / (1 - phi)`` of
the differences' *residuals* ``e_t = d_t - a - b (m_t - median(m)) - c t`` (least squares):
removing a shift, a level-dependent change and a drift first keeps the alternatives the tests
are built to see from passing for dependence (a wider canary makes ``d_t`` follow the slow
level; a canary that degrades over the run makes it drift). ``phi`` is
the rank-based, bias-corrected lag-1 estimate of :func:`judge.stats.autocorrelation.
lag1_autocorrelation`, raised by ``margin`` standard errors ``sqrt((1 - phi^2) / n)``, as the
unpaired tests do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps
from scipy.special import ndtr, ndtri

from judge.stats._ranks import average_ranks_rows
from judge.stats.autocorrelation import (
    PHI_CAP,
    _raise_by_margin_rows,
    lag1_autocorrelation_rows,
)

__all__ = [
    "AlignedRankSum",
    "PairedShiftResult",
    "PairedSpreadResult",
    "aligned_rank_sum_rows",
    "paired_shift_test",
    "paired_spread_test",
    "rank_correlation_rows",
    "residual_phi",
    "residual_phi_rows",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PairedShiftResult:
    """Signed-rank shift test of ``canary - baseline`` and its Hodges-Lehmann interval."""

    estimate: float
    """Median of the Walsh averages of the non-zero differences (0 when all are 0)."""
    low: float
    high: float
    p_greater: float
    """One-sided p-value for "the canary is higher" (``p_less`` mirrored)."""
    p_less: float
    z: float
    pairs: int
    """Pairs with a non-zero difference (the test's ``n``; zeros carry no sign)."""
    zeros: int
    phi: float
    """Lag-1 autocorrelation allowed for (margin included, clipped to ``[0, PHI_CAP]``)."""

    @property
    def inflation(self) -> float:
        return (1.0 + self.phi) / (1.0 - self.phi)


@dataclass(frozen=True)
class PairedSpreadResult:
    """Sign-flip test of "the canary is further from the common level than the baseline"."""

    p_wider: float
    z: float
    pairs: int
    phi: float


def _differences(canary: npt.ArrayLike, baseline: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    c = np.asarray(canary, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if c.shape != b.shape or c.ndim != 1:
        raise ValueError(
            f"canary and baseline must be aligned 1-d arrays, got shapes {c.shape} and {b.shape}"
        )
    keep = np.isfinite(c) & np.isfinite(b)
    return c[keep] - b[keep], (c[keep] + b[keep]) / 2.0


def residual_phi(d: FloatArray, level: FloatArray, margin: float) -> float:
    """The lag-1 autocorrelation allowed for: of the residuals of ``d`` on ``(1, level -
    median(level), t)`` (see the module doc), plus ``margin`` standard errors, in
    ``[0, PHI_CAP]`` (:func:`residual_phi_rows` of one row; ``PHI_CAP`` below 5 points)."""
    if d.size < 5:
        return PHI_CAP
    return float(residual_phi_rows(d[None, :], level[None, :], margin)[0])


def residual_phi_rows(d: FloatArray, level: FloatArray, margin: float) -> FloatArray:
    """:func:`residual_phi` of every row of two 2-d arrays at once (at least 5 columns): the
    least-squares fit by its normal equations, every row together (``pinv``, since a row whose
    pairs all sit at one level has a singular design). A row whose residuals are flat (within
    rounding of the fit) has nothing to correlate: 0."""
    n = d.shape[1]
    design = np.stack([np.ones_like(level), level - np.median(level, axis=1, keepdims=True),
                       np.broadcast_to(np.arange(n) - (n - 1) / 2.0, level.shape)], axis=2)
    gram = np.einsum("rti,rtj->rij", design, design)
    coefficients = np.einsum("rij,rj->ri", np.linalg.pinv(gram),
                             np.einsum("rti,rt->ri", design, d))
    residuals = d - np.einsum("rti,ri->rt", design, coefficients)
    flat = np.ptp(residuals, axis=1) <= 1e-9 * np.maximum(np.abs(d).max(axis=1), 1.0)
    phi = _raise_by_margin_rows(lag1_autocorrelation_rows(residuals), n, margin)
    out: FloatArray = np.where(flat, 0.0, phi)
    return out


def _validate(confidence: float, margin: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")


def paired_shift_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    confidence: float = 0.98,
    margin: float = 1.0,
    independent: bool = False,
) -> PairedShiftResult:
    """Signed-rank test of ``canary - baseline`` on aligned points (pairs with a NaN dropped),
    its variance inflated for serially dependent signs, and the Hodges-Lehmann interval.

    ``z = S / sqrt(kappa * sum r^2)`` (no continuity correction); the interval is
    ``[W_(k), W_(N + 1 - k)]`` of the ``N = n (n + 1) / 2`` sorted Walsh averages with
    ``k = floor(N / 2 - z_{(1 + confidence) / 2} sqrt(kappa n (n + 1) (2 n + 1) / 24))``;
    when ``k < 1`` the data cannot bound the shift and the interval is infinite.
    ``independent=True`` takes the signs as independent (``kappa = 1``): the p-values are then
    R's ``wilcox.test(canary, baseline, paired = TRUE, exact = FALSE, correct = FALSE)`` when
    there are no ties among the ``|d|`` (R corrects the variance for ties; here the midranks'
    own ``sum r^2`` is that variance, which is the same number).

    >>> r = paired_shift_test([11.0, 12.5, 13.0, 12.0, 14.0], [10.0, 11.0, 10.5, 10.0, 11.0],
    ...                       independent=True)
    >>> r.estimate, round(r.p_greater, 4)
    (2.0, 0.0216)
    """
    _validate(confidence, margin)
    d, level = _differences(canary, baseline)
    nonzero = d[d != 0.0]
    n = int(nonzero.size)
    zeros = int(d.size - n)
    if n == 0:
        return PairedShiftResult(0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0, zeros, 0.0)
    ranks = sps.rankdata(np.abs(nonzero))
    signs = np.sign(nonzero)
    statistic = float(np.dot(signs, ranks))
    phi = 0.0 if independent else residual_phi(d, level, margin)
    kappa = (1.0 + phi) / (1.0 - phi)
    sd = math.sqrt(kappa * float(np.dot(ranks, ranks)))
    z = statistic / sd
    walsh = (nonzero[:, None] + nonzero[None, :])[np.triu_indices(n)] / 2.0
    walsh.sort()
    count = walsh.size
    estimate = float(np.median(walsh))
    # norm.ppf / sf / cdf are ndtri(q), ndtr(-z), ndtr(z): called directly, without the
    # distributions' per-call argument checks.
    critical = float(ndtri((1.0 + confidence) / 2.0))
    k = math.floor(count / 2.0 - critical * math.sqrt(kappa * n * (n + 1) * (2 * n + 1) / 24.0))
    if k < 1:
        low, high = -math.inf, math.inf
    else:
        low, high = float(walsh[k - 1]), float(walsh[count - k])
    return PairedShiftResult(
        estimate=estimate, low=low, high=high,
        p_greater=float(ndtr(-z)), p_less=float(ndtr(z)), z=z,
        pairs=n, zeros=zeros, phi=phi,
    )


def paired_spread_test(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    margin: float = 1.0,
    phi: float | None = None,
) -> PairedSpreadResult:
    """One-sided sign-flip test that the canary is further than the baseline from the common
    level ``m_t = (canary_t + baseline_t) / 2``, minute by minute (see the module doc):
    ``T = sum sign(d_t) r_t s_t`` over pairs with ``d_t != 0`` and ``s_t = sign(m_t -
    median(m)) != 0``, variance ``kappa * sum r_t^2``. ``phi``: the autocorrelation to allow
    for when already known (:attr:`PairedShiftResult.phi` of the same pairs), else
    :func:`residual_phi` with ``margin``.

    >>> level = [5.0, 15.0, 4.0, 16.0, 6.0, 14.0, 3.0, 17.0, 5.5, 15.5]
    >>> wide = [2 * v - 10 for v in level]   # the same minutes, twice as far from 10
    >>> paired_spread_test(wide, level, margin=0.0).p_wider < 0.01
    True
    """
    _validate(0.5, margin)
    d, level = _differences(canary, baseline)
    if d.size == 0:
        return PairedSpreadResult(1.0, 0.0, 0, 0.0)
    side = np.sign(level - np.median(level))
    keep = (d != 0.0) & (side != 0.0)
    n = int(keep.sum())
    if n == 0:
        return PairedSpreadResult(1.0, 0.0, 0, 0.0)
    ranks = sps.rankdata(np.abs(d[keep]))
    terms = np.sign(d[keep]) * side[keep]
    if phi is None:
        phi = residual_phi(d, level, margin)
    kappa = (1.0 + phi) / (1.0 - phi)
    z = float(np.dot(terms, ranks)) / math.sqrt(kappa * float(np.dot(ranks, ranks)))
    return PairedSpreadResult(p_wider=float(ndtr(-z)), z=z, pairs=n, phi=phi)


@dataclass(frozen=True)
class AlignedRankSum:
    """The Mann-Whitney statistic's null variance from time-aligned minutes, per row."""

    factor: FloatArray
    """Its variance over the usual (tie-corrected) permutation variance of ``U``: below 1 when
    the sides share the load's swings, about the AR(1) factor of the minutes' rank
    differences when they do not."""
    phi: FloatArray
    """Lag-1 autocorrelation allowed for (margin included, in ``[0, PHI_CAP]``)."""
    differing: npt.NDArray[np.int64]
    """Minutes whose two pooled ranks differ (the sign flips that carry information)."""


def aligned_rank_sum_rows(
    canary_rows: npt.ArrayLike, baseline_rows: npt.ArrayLike, *, margin: float = 1.0,
    independent: bool = False,
) -> AlignedRankSum:
    """Mann-Whitney on time-aligned sides with the variance the minutes give.

    Rank all ``2 n`` points of a row together; ``D_t = R(canary_t) - R(baseline_t)``. The
    rank-sum statistic is ``sum_t D_t`` up to constants (``2 U - n^2 = sum_t D_t``). With
    nothing changed the sides are exchangeable minute by minute (module doc), so given the
    pairs each ``D_t`` has a random sign, and ``sum_t D_t`` has variance ``kappa sum_t D_t^2``,
    ``kappa`` the AR(1) factor of the ``D_t``'s residuals (:func:`residual_phi`, with the
    pair's mean rank as the level, vectorised here). That is the usual test's statistic with a
    variance that lets the load both sides saw cancel: where the sides swing together the
    ``D_t`` are small and the test sees a shift the unpaired variance hides; with independent
    noise ``E[D_t^2]`` is twice the pooled ranks' variance and the factor is about ``kappa``,
    the unpaired test's power. Unlike the signed-rank test of the raw differences it needs no
    correlation between the sides to be worth using.

    Returned as a factor on the tie-corrected variance of ``U``,
    ``n^2 / (2n (2n - 1)) sum (R - mean R)^2``, so the Hodges-Lehmann interval and p-values
    of :func:`judge.stats.autocorrelation.shift_test_rows` take it as they take the AR(1)
    factors of unpaired sides (a factor per side, the same on both). ``independent=True``
    takes the minutes as independent (``kappa = 1``).

    >>> load = [10.0, 30.0, 12.0, 28.0, 11.0, 31.0, 13.0, 29.0, 10.5, 30.5, 12.5, 28.5]
    >>> canary = [v + 1.0 for v in load]
    >>> r = aligned_rank_sum_rows([canary], [load], margin=0.0)
    >>> bool(r.factor[0] < 0.2), int(r.differing[0])
    (True, 12)
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    c = np.atleast_2d(np.asarray(canary_rows, dtype=np.float64))
    b = np.atleast_2d(np.asarray(baseline_rows, dtype=np.float64))
    if c.shape != b.shape:
        raise ValueError(f"canary and baseline rows must be aligned, got {c.shape} and {b.shape}")
    rows, n = c.shape
    if n < 5:
        raise ValueError(f"need at least 5 aligned minutes, got {n}")
    pooled = average_ranks_rows(np.concatenate([c, b], axis=1))
    rank_c, rank_b = pooled[:, :n], pooled[:, n:]
    d = rank_c - rank_b
    phi = (np.zeros(rows) if independent
           else residual_phi_rows(d, (rank_c + rank_b) / 2.0, margin))
    kappa = (1.0 + phi) / (1.0 - phi)
    total = 2 * n
    centred = pooled - (total + 1) / 2.0
    variance_u = n * n / (total * (total - 1.0)) * np.einsum("ij,ij->i", centred, centred)
    # Var(sum D) = 4 Var(U).
    factor = np.divide(kappa * np.einsum("ij,ij->i", d, d), 4.0 * variance_u,
                       out=np.zeros(rows), where=variance_u > 0)
    return AlignedRankSum(factor=factor, phi=phi,
                          differing=np.count_nonzero(d, axis=1).astype(np.int64))


def rank_correlation_rows(canary_rows: npt.ArrayLike, baseline_rows: npt.ArrayLike) -> FloatArray:
    """Spearman's rank correlation of every row pair of two aligned finite 2-d arrays (each
    side ranked within its row); NaN for a row where a side is constant.

    >>> rank_correlation_rows([[1.0, 2.0, 3.0, 4.0]], [[10.0, 30.0, 20.0, 40.0]]).round(2).tolist()
    [0.8]
    """
    c = average_ranks_rows(canary_rows)
    b = average_ranks_rows(baseline_rows)
    c = c - c.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    scale = np.sqrt(np.einsum("ij,ij->i", c, c) * np.einsum("ij,ij->i", b, b))
    out: FloatArray = np.divide(np.einsum("ij,ij->i", c, b), scale,
                                out=np.full(scale.shape, np.nan), where=scale > 0)
    return out
