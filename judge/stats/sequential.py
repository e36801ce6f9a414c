"""Anytime-valid statistics: keep the false-failure rate under its level however often a
controller polls.

Re-running a fixed-horizon test every minute on the data so far inflates its false failures
(each look is another chance to cross the line by luck). The statistics here stay valid at
*every* look simultaneously:

- :func:`confidence_sequence_halfwidth`: the asymptotic confidence sequence for a mean of
  Waudby-Smith, Arnold, Wu & Ramdas (2024), "Time-uniform central limit theory and asymptotic
  confidence sequences", Ann. Statist. 52(6) (Robbins' normal-mixture boundary, their eq. (7)):
  ``mean_t +- sd_t * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha))``,
  where ``rho`` tunes the boundary to be tightest near ``t_star`` observations. With serially
  correlated scores ``sd_t`` is the long-run standard deviation (AR(1) factor, see
  :mod:`judge.stats.autocorrelation`).
- :func:`rate_ratio_log_evalue`: an e-process for "the canary's event rate is higher than the
  baseline's". Conditioning each interval on its total events makes the canary's share
  binomial with ``p0 = T_c / (T_c + T_b)`` under equal rates, so the product over intervals of
  binomial likelihood ratios for a ratio ``r > 1`` is a test martingale (a nonnegative
  supermartingale for every true ratio ``<= 1``), and so is an average of them over a grid of
  ``r`` (a mixture). By Ville's inequality it exceeds ``1 / alpha`` with probability at most
  ``alpha``, ever (Ramdas, Grünwald, Vovk & Shafer 2023, "Game-theoretic statistics and safe
  anytime-valid inference", Statist. Sci. 38(4)). Overdispersed counts are handled by
  tempering: each log-likelihood ratio is divided by the dispersion factor (quasi-likelihood,
  McCullagh & Nelder 1989 §9.2), an approximation documented as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import log_ndtr, logsumexp

from judge.stats.autocorrelation import sample_autocorrelation

FloatArray = npt.NDArray[np.float64]

DEFAULT_T_STAR = 60.0
"""Observations at which the confidence sequence is tuned to be tightest: one hour of
one-minute points, the usual canary length."""

INCREASE_RATIOS: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)
"""Grid of rate ratios the count e-process mixes over (equal weights): from modest increases to
"errors where there were none"."""


def _rho_squared(alpha: float, t_star: float) -> float:
    """The tuning that makes the normal-mixture boundary tightest at ``t_star`` (Waudby-Smith
    et al. 2024, eq. (8): ``rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / t_star``)."""
    two_log = -2.0 * math.log(alpha)
    return (two_log + math.log(two_log + 1.0)) / t_star


def _check_boundary_args(t: int, sd: float, alpha: float, t_star: float) -> None:
    """The one validation step of both confidence-sequence boundaries."""
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sd < 0 or not math.isfinite(sd):
        raise ValueError(f"sd must be finite and >= 0, got {sd}")
    if t_star <= 0:
        raise ValueError(f"t_star must be > 0, got {t_star}")


def confidence_sequence_halfwidth(
    t: int, sd: float, *, alpha: float, t_star: float = DEFAULT_T_STAR
) -> float:
    """Half-width of the two-sided asymptotic confidence sequence after ``t`` observations with
    (long-run) standard deviation ``sd``, valid at level ``alpha`` over all ``t`` at once.

    >>> round(confidence_sequence_halfwidth(60, 1.0, alpha=0.05), 4)
    0.3918
    """
    _check_boundary_args(t, sd, alpha, t_star)
    rho2 = _rho_squared(alpha, t_star)
    radius = 2.0 * (t * rho2 + 1.0) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1.0) / alpha)
    return sd * math.sqrt(radius)


def one_sided_halfwidth(
    t: int, sd: float, *, alpha: float, t_star: float = DEFAULT_T_STAR
) -> float:
    """Distance below the running mean of a one-sided lower confidence sequence (or above it,
    for an upper one) after ``t`` observations with (long-run) standard deviation ``sd``, valid
    at level ``alpha`` over all ``t`` at once.

    One-sided normal mixture (Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform,
    nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), §3): mixing
    ``exp(lambda s - lambda^2 t / 2)`` over a half-normal ``lambda >= 0`` of scale ``rho`` gives
    ``2 / sqrt(1 + rho^2 t) * exp(rho^2 s^2 / (2 (1 + rho^2 t))) * Phi(rho s / sqrt(1 + rho^2 t))``
    for a sum ``s`` in units of ``sd``; the bound is the ``s`` where it reaches ``1 / alpha``
    (Ville's inequality), divided by ``t``. Same ``rho`` as :func:`confidence_sequence_halfwidth`;
    with that ``rho`` it lies between the two-sided radius at ``2 alpha`` and at ``alpha``: a
    check that only ever looks at one side need not pay for the other.

    >>> round(one_sided_halfwidth(60, 1.0, alpha=0.05), 4)
    0.3573
    """
    _check_boundary_args(t, sd, alpha, t_star)
    rho2 = _rho_squared(alpha, t_star)
    a = 1.0 + rho2 * t
    target = math.log(1.0 / alpha)

    def log_mixture(s: float) -> float:
        return (math.log(2.0) - 0.5 * math.log(a) + rho2 * s * s / (2.0 * a)
                + float(log_ndtr(math.sqrt(rho2) * s / math.sqrt(a))))

    # The mixture increases in s >= 0; the two-sided radius at alpha brackets the root from
    # above (there Phi < 1 is the only difference, and 2 Phi >= 1).
    high = math.sqrt(2.0 * a / rho2 * math.log(math.sqrt(a) / alpha))
    low = 0.0
    if log_mixture(low) >= target:
        return 0.0
    s = float(brentq(lambda v: log_mixture(v) - target, low, high, xtol=1e-12))
    return sd * s / t


def rate_ratio_log_evalue(
    canary_counts: npt.ArrayLike,
    baseline_counts: npt.ArrayLike,
    canary_exposures: npt.ArrayLike | None = None,
    baseline_exposures: npt.ArrayLike | None = None,
    *,
    null_ratio: float = 1.0,
    ratios: Sequence[float] = INCREASE_RATIOS,
    dispersion: float = 1.0,
) -> float:
    """Log of the mixture e-value against "rate ratio canary / baseline <= null_ratio"
    (``ratios`` all above ``null_ratio``) or against ">= null_ratio" (all below).

    Interval ``i`` contributes, for each alternative ratio ``r``, the binomial log-likelihood
    ratio of its canary share ``x_i`` of ``n_i`` events at ``p(r) = r T_ci / (r T_ci + T_bi)``
    against ``p(null_ratio)``, divided by ``dispersion``. The e-value is the average over
    ``ratios`` of the exponentiated sums. Intervals without events contribute nothing.

    >>> round(rate_ratio_log_evalue([3, 2, 4], [0, 0, 0]), 3)
    4.792
    """
    c = np.asarray(canary_counts, dtype=np.float64)
    b = np.asarray(baseline_counts, dtype=np.float64)
    if c.shape != b.shape or c.ndim != 1:
        raise ValueError("canary_counts and baseline_counts must be aligned 1-d arrays")
    ce = np.ones_like(c) if canary_exposures is None else np.asarray(canary_exposures, float)
    be = np.ones_like(b) if baseline_exposures is None else np.asarray(baseline_exposures, float)
    if ce.shape != c.shape or be.shape != b.shape:
        raise ValueError("exposures must be aligned with the counts")
    if dispersion < 1.0:
        raise ValueError(f"dispersion must be >= 1, got {dispersion}")
    if not ratios:
        raise ValueError("ratios must not be empty")
    above = all(r > null_ratio for r in ratios)
    below = all(0 < r < null_ratio for r in ratios)
    if not (above or below):
        raise ValueError("ratios must all be above null_ratio, or all below it (and > 0)")
    n = c + b
    keep = (n > 0) & (ce > 0) & (be > 0)
    if not np.any(keep):
        return 0.0
    c, n, ce, be = c[keep], n[keep], ce[keep], be[keep]
    p0 = null_ratio * ce / (null_ratio * ce + be)
    logs = []
    for ratio in ratios:
        p1 = ratio * ce / (ratio * ce + be)
        # x log(p1/p0) + (n - x) log((1 - p1)/(1 - p0)); both p's are strictly inside (0, 1).
        contribution = c * np.log(p1 / p0) + (n - c) * np.log((1.0 - p1) / (1.0 - p0))
        logs.append(float(np.sum(contribution)) / dispersion)
    return float(logsumexp(logs) - math.log(len(logs)))


# -- scores of paired series, and their anytime-valid bounds ----------------------------------

MIN_VARIANCE_SHRINK = 0.6
"""No sequential decision on a score while its sample variance would need correcting by more
than this factor for autocorrelation (``1 - (kappa - 1) / (n - 1)``): with ``phi = 0.7`` that
is the first 12 points."""

PHI_MAX_DESIGN = 0.7
"""Autocorrelation assumed at least while a sequential series is short (up to 30 points; the
floor then fades linearly to 0 at 60 points): a few points cannot rule out strong memory, and
0.7 is the strongest the judge is designed for."""

GAUSSIAN_LOG_CHANGE_VARIANCE = 0.390
"""Variance of one side's per-minute term in :func:`change_ratio_score`,
``(log(|x_t - x_(t-1)| + f) + log(|x_t - x_(t-2)| + f)) / 2``, when the values are Gaussian
white noise of any scale (``f`` a tenth of the median one-minute change): 0.390, from 20
million simulated points (``tests/unit/test_default_judge.py`` checks it by simulation). The
floor of the score's variance under "no change"."""

def change_score_phi(y: FloatArray, margin: float) -> float:
    """The lag-1 autocorrelation whose AR(1) long-run factor ``(1 + phi) / (1 - phi)`` equals
    ``1 + 2 (r1 + r2 + margin * sqrt(2 / n))``: the spread score's long-run variance factor
    from its lag-1 and lag-2 autocorrelations (each minute's score shares points with the next
    two), with ``margin`` standard errors of ``r1 + r2`` (``sqrt(2 / n)`` for uncorrelated
    scores), clipped to [0, 0.95]."""
    n = y.size
    r1 = r2 = 0.0
    if n >= 4:
        r1, r2 = sample_autocorrelation(y, 1), sample_autocorrelation(y, 2)
    factor = max(1.0, 1.0 + 2.0 * (r1 + r2 + margin * math.sqrt(2.0 / n)))
    return min(0.95, (factor - 1.0) / (factor + 1.0))

def score_bounds(
    y: FloatArray, alpha: float, horizon: float, phi_series: float,
    design_floor: float = PHI_MAX_DESIGN, *, prior_points: float = 0.0,
    prior_square: float = 1.0, fade: bool = True,
) -> tuple[float, float, float] | None:
    """Mean of a score series and its anytime-valid half-width (long-run variance), or
    ``None`` while the points are worth too few independent ones to say anything.

    ``phi_series`` is the lag-1 autocorrelation of the underlying difference series (with a
    standard-error margin); up to 30 points it is too noisy to trust and at least
    ``design_floor`` (the score's lag-1 autocorrelation when the metric has ``phi = 0.7``) is
    used, a floor that fades out by 60 points (``fade=False``: a floor that is a property of
    the score itself, kept whatever the length). The sample variance of an
    autocorrelated series underestimates its variance by the factor
    ``1 - (kappa - 1) / (n - 1)`` (``kappa`` the long-run factor;
    Bayley & Hammersley 1946), which is divided out; one pseudo-observation of unit square
    keeps it positive when every score so far is the same. ``prior_points`` adds that many
    pseudo-observations of square ``prior_square`` (the score's variance under "no change"):
    a short run of equal signs must not claim a variance near 0 (the default judge's
    ``CHANGE_PRIOR_POINTS``).
    """
    n = y.size
    # The floor fades out between 30 and 60 points: no sudden drop in caution at one poll.
    # A floor that is a property of the score under "no change" (fade=False) stays.
    floor = design_floor * (min(1.0, max(0.0, (60.0 - n) / 30.0)) if fade else 1.0)
    phi = max(phi_series, floor)
    kappa = (1.0 + phi) / (1.0 - phi)
    shrink = 1.0 - (kappa - 1.0) / (n - 1.0) if n > 1 else 0.0
    if shrink < MIN_VARIANCE_SHRINK:
        return None
    mean = float(y.mean())
    if prior_points > 0:
        variance = ((float(np.sum((y - mean) ** 2)) + prior_points * prior_square)
                    / (n + prior_points) / shrink)
    else:
        variance = (float(np.sum((y - mean) ** 2)) + 1.0) / n / shrink
    sd = math.sqrt(variance * kappa)
    return mean, one_sided_halfwidth(n, sd, alpha=alpha, t_star=horizon), phi

def change_ratio_score(
    c: FloatArray, b: FloatArray, *, relative: bool
) -> tuple[FloatArray, float]:
    """Per-minute spread score: the log-ratio of the two sides' changes over the last one and
    two minutes (of the logarithms of the values when ``relative``), and its variance under
    "no change".

    For minute ``t >= 2`` of side ``x``, ``g_t = (log(|x_t - x_(t-1)| + f) + log(|x_t -
    x_(t-2)| + f)) / 2``; the score is ``g_t`` of the canary minus ``g_t`` of the baseline,
    clipped at +-4 (minute 1 has only its one-minute change). It is antisymmetric in the two
    sides, so its mean is 0 when they are exchangeable (nothing changed); a canary that moves
    more from minute to minute gives a positive mean, the log of the ratio of typical change
    sizes. Why this score:

    - Changes, not distances from a centre: they cancel the slow wander of an autocorrelated
      level and the daily cycle, so the score is far less autocorrelated than the metric
      (the default judge's ``CHANGE_PHI_DESIGN``).
    - The logarithm of the values when all are positive: a latency's noise is multiplicative,
      and on the raw scale the size of a change follows the side's own wandering level, a
      slowly varying term in the score that a lag-1 autocorrelation does not see (simulated at
      ``phi = 0.7``: long-run variance 2.0x the sample variance where lag 1 suggests 1.4x; on
      the log scale 1.18x and 1.13x).
    - Log-ratios, not signs of the difference: a sign only says which side moved more, the
      log-ratio by how much, and its variance does not collapse when the change is real (so a
      prior at the null variance costs little).
    - One- and two-minute changes averaged: two looks at the same noise scale, less noisy than
      one (the one-minute log change of Gaussian noise has variance 0.68, the average 0.39).

    ``f``, a tenth of the pooled median one-minute change, keeps unchanged minutes (ties,
    integer gauges) finite; the clip bounds what one minute can say. The variance under "no
    change" is the sum of the two sides' variances of ``g`` (independent sides), which a shift
    of one side's ``g`` does not inflate, and at least ``2 * GAUSSIAN_LOG_CHANGE_VARIANCE``: a
    few very regular changes must not make the prior claim a variance near 0. Needs at least 3
    points a side.
    """
    if relative:
        c, b = np.log(c), np.log(b)
    one_c, one_b = np.abs(np.diff(c)), np.abs(np.diff(b))
    med = float(np.median(np.concatenate([one_c, one_b])))
    floor = 0.1 * med if med > 0 else 1.0

    def per_minute(x: FloatArray, one: FloatArray) -> FloatArray:
        g = np.log(one + floor)
        g[1:] = (g[1:] + np.log(np.abs(x[2:] - x[:-2]) + floor)) / 2.0
        return g

    gc, gb = per_minute(c, one_c), per_minute(b, one_b)
    null_variance = max(float(gc.var() + gb.var()), 2.0 * GAUSSIAN_LOG_CHANGE_VARIANCE)
    return np.clip(gc - gb, -4.0, 4.0), null_variance

def half_spread_ratios(c: FloatArray, b: FloatArray) -> tuple[float, float]:
    """Canary / baseline ratios of the upper (p90 - median) and lower (median - p10)
    half-spreads (``nan`` when the baseline's is 0)."""
    qc = np.quantile(c, [0.1, 0.5, 0.9])
    qb = np.quantile(b, [0.1, 0.5, 0.9])
    up_b, low_b = float(qb[2] - qb[1]), float(qb[1] - qb[0])
    up = float(qc[2] - qc[1]) / up_b if up_b > 0 else math.nan
    low = float(qc[1] - qc[0]) / low_b if low_b > 0 else math.nan
    return up, low
