"""Core of the Mann-Whitney test: R's ``wilcox.test`` algorithms for one pair of samples.

This is a re-implementation of the two-sample branch of R's ``wilcox.test.default`` (package
*stats*, R 4.x) with ``conf.int = TRUE`` and ``alternative = "two.sided"``; R is the reference
oracle (see ``tests/fixtures/r/mann_whitney_cases.R``). The algorithm, not the code, follows R:

* exact method (both samples < 50 and no ties, or forced): the exact null distribution of the
  Mann-Whitney count U (Hollander & Wolfe 1999, sec. 4.1; R's ``pwilcox``/``qwilcox``), the
  Moses confidence limits as order statistics of the pairwise differences (Bauer 1972, and
  Hollander & Wolfe sec. 4.3) and the Hodges-Lehmann estimate, the median of the differences
  (Hodges & Lehmann 1963);
* asymptotic method: the normal approximation with tie-corrected variance and optional
  continuity correction; the confidence limits and the estimate are the roots in the shift
  ``d`` of the standardised statistic of ``canary - d`` against ``baseline``, found like R with
  Brent's zero finder (R's ``uniroot`` on ``zeroin.c``, tolerance 1e-4). The estimate is the
  root without continuity correction (R sets ``correct <- FALSE`` before it), which is not the
  plain median of the differences when that root is not unique.

The standardised statistic at a shift ``d`` is computed from the two *sorted* samples by counting
(``searchsorted``), never by re-ranking or by forming the n*m differences.

References:
    Bauer, D. F. (1972). Constructing confidence sets using rank statistics. JASA 67, 687-690.
    Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on rank tests.
        Ann. Math. Statist. 34, 598-611.
    Hollander, M. & Wolfe, D. A. (1999). Nonparametric Statistical Methods, 2nd ed. Wiley.
    R Core Team. ``wilcox.test.default`` and ``src/library/stats/src/zeroin.c``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from judge.stats._validation import check_choice

Method = Literal["auto", "exact", "asymptotic"]
METHODS: tuple[str, ...] = ("auto", "exact", "asymptotic")
IntervalSearch = Literal["closed_form", "uniroot"]
INTERVAL_SEARCHES: tuple[str, ...] = ("closed_form", "uniroot")

#: R's rule: the exact method is used when both samples have fewer than this many values.
EXACT_SIZE_LIMIT = 50
#: Largest n_canary * n_baseline for which the exact distribution is computed when forced; the
#: table costs O((n*m)^2) additions, and R itself is impractically slow well before this.
EXACT_MAX_PAIRS = 10_000
#: ``tol.root`` of R's wilcox.test: absolute tolerance of the root finder.
ROOT_TOL = 1e-4
#: ``maxiter`` of R's uniroot.
ROOT_MAXITER = 1000
_DBL_EPSILON = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class MannWhitneyResult:
    """Result of :func:`mann_whitney`.

    Attributes:
        estimate: Hodges-Lehmann shift, canary minus baseline.
        low: lower end of the confidence interval for the shift.
        high: upper end of the confidence interval for the shift.
        p_value: two-sided p-value of "no shift".
        method: ``"exact"`` or ``"asymptotic"``: the method actually used.
        statistic: R's ``W`` for ``wilcox.test(canary, baseline)``: the number of pairs with
            canary > baseline plus half the number of tied pairs.
        n_canary: size of the canary sample.
        n_baseline: size of the baseline sample.
        confidence: confidence level of the interval.
    """

    estimate: float
    low: float
    high: float
    p_value: float
    method: Literal["exact", "asymptotic"]
    statistic: float
    n_canary: int
    n_baseline: int
    confidence: float = 0.95

    @property
    def interval(self) -> tuple[float, float]:
        """The confidence interval ``(low, high)``."""
        return (self.low, self.high)

    def excludes_zero(self) -> bool:
        """True when the confidence interval lies entirely above or below zero."""
        return self.low > 0.0 or self.high < 0.0


def check_method(method: object) -> Method:
    """Validate the ``method`` argument."""
    checked = check_choice(method, "method", METHODS)
    if checked == "exact":
        return "exact"
    if checked == "asymptotic":
        return "asymptotic"
    return "auto"


def check_interval_search(interval_search: object) -> IntervalSearch:
    """Validate the ``interval_search`` argument."""
    checked = check_choice(interval_search, "interval_search", INTERVAL_SEARCHES)
    return "uniroot" if checked == "uniroot" else "closed_form"


def use_exact(n_canary: int, n_baseline: int, has_ties: bool, method: Method) -> bool:
    """Whether R would use the exact method: asked for (or auto and both < 50), and no ties."""
    if has_ties or method == "asymptotic":
        return False
    if method == "exact":
        if n_canary * n_baseline > EXACT_MAX_PAIRS:
            raise ValueError(
                f"`method`='exact' supports n_canary * n_baseline <= {EXACT_MAX_PAIRS}; "
                f"got {n_canary} * {n_baseline}; use method='auto' or 'asymptotic'"
            )
        return True
    return n_canary < EXACT_SIZE_LIMIT and n_baseline < EXACT_SIZE_LIMIT


def reference_mann_whitney(
    canary: np.ndarray, baseline: np.ndarray, confidence: float, method: Method, correct: bool
) -> MannWhitneyResult:
    """One pair step by step as R does it (R's root search for every asymptotic interval).

    The reference the batch code is tested against; finite, non-empty, validated input.
    """
    canary_sorted = np.sort(canary)
    baseline_sorted = np.sort(baseline)
    n, m = canary_sorted.size, baseline_sorted.size
    below, upto = _counts(canary_sorted, baseline_sorted)
    statistic = float(below.sum()) + 0.5 * float((upto - below).sum())
    tie_sum = combined_tie_sum(canary_sorted, baseline_sorted, below, upto)
    has_ties = tie_sum > 0
    if use_exact(n, m, has_ties, method):
        p_value = exact_p_value(statistic, n, m)
        estimate, low, high = exact_interval(canary_sorted, baseline_sorted, confidence)
        return MannWhitneyResult(estimate, low, high, p_value, "exact", statistic, n, m, confidence)
    p_value = asymptotic_p_value(statistic, n, m, tie_sum, correct)
    if canary_sorted[0] == canary_sorted[-1] and baseline_sorted[0] == baseline_sorted[-1]:
        difference = float(canary_sorted[0] - baseline_sorted[0])
        estimate = low = high = difference
    else:
        estimate, low, high = asymptotic_interval(
            canary_sorted, baseline_sorted, confidence, correct
        )
    return MannWhitneyResult(
        estimate, low, high, p_value, "asymptotic", statistic, n, m, confidence
    )


# --------------------------------------------------------------------------- counting helpers


def _counts(shifted: np.ndarray, baseline_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value v of ``shifted``: #baseline < v and #baseline <= v."""
    below = np.searchsorted(baseline_sorted, shifted, side="left")
    upto = np.searchsorted(baseline_sorted, shifted, side="right")
    return below, upto


def _tie_term(counts: np.ndarray) -> int:
    """Sum of t^3 - t over tie-group sizes t (the variance correction of Hollander & Wolfe)."""
    sizes = counts.astype(np.int64)
    return int(np.sum(sizes * sizes * sizes - sizes))


def _group_sizes(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and sizes of runs of equal values in a sorted array."""
    if sorted_values.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    sizes = np.diff(np.append(starts, sorted_values.size))
    return starts, sizes


def combined_tie_sum(
    shifted_sorted: np.ndarray,
    baseline_sorted: np.ndarray,
    below: np.ndarray,
    upto: np.ndarray,
    baseline_tie_sum: int | None = None,
) -> int:
    """Sum of t^3 - t over the tie groups of the combined sample (shifted canary, baseline).

    ``below``/``upto`` are the baseline counts of :func:`_counts` for ``shifted_sorted``; the
    combined groups are the baseline's own groups, enlarged where canary values land on them.
    """
    if baseline_tie_sum is None:
        baseline_tie_sum = _tie_term(_group_sizes(baseline_sorted)[1])
    starts, sizes = _group_sizes(shifted_sorted)
    matched = (upto - below)[starts].astype(np.int64)
    joint = sizes.astype(np.int64) + matched
    return (
        baseline_tie_sum
        + int(np.sum(joint * joint * joint - joint))
        - int(np.sum(matched * matched * matched - matched))
    )


def normal_sigma(n: int, m: int, tie_sum: int | float) -> float:
    """Standard deviation of W under H0 with ties (Hollander & Wolfe 1999, eq. 4.9); R's SIGMA."""
    nx, ny = float(n), float(m)
    return math.sqrt((nx * ny / 12.0) * ((nx + ny + 1.0) - tie_sum / ((nx + ny) * (nx + ny - 1.0))))


def asymptotic_p_value(statistic: float, n: int, m: int, tie_sum: int, correct: bool) -> float:
    """Two-sided normal-approximation p-value of W, as R computes it.

    When every value of both samples is equal the variance is 0; R returns NaN, this returns 1.
    """
    sigma = normal_sigma(n, m, tie_sum) if n + m > 1 else 0.0
    z = statistic - n * m / 2.0
    if sigma == 0.0:
        return 1.0
    correction = 0.5 * float(np.sign(z)) if correct else 0.0
    z = (z - correction) / sigma
    return float(2.0 * min(special.ndtr(z), special.ndtr(-z)))


# ------------------------------------------------------------------------------ exact method


@functools.lru_cache(maxsize=128)
def wilcox_frequencies(n: int, m: int) -> np.ndarray:
    """Number of arrangements giving each value 0..n*m of the Mann-Whitney count U.

    The generating function is the Gaussian binomial coefficient [n+m choose n]_q (Hollander &
    Wolfe 1999, sec. 4.1), built with the recurrence G(i, j) = G(i-1, j) + q^i G(i, j-1), which
    only adds non-negative numbers (R's ``cwilcox`` uses the same recursion, memoised).
    """
    small, large = sorted((n, m))
    previous = [np.ones(1) for _ in range(large + 1)]
    for i in range(1, small + 1):
        current = [np.ones(1)]
        for j in range(1, large + 1):
            poly = np.zeros(i * j + 1)
            above = previous[j]
            poly[: above.size] += above
            left = current[j - 1]
            poly[i : i + left.size] += left
            current.append(poly)
        previous = current
    frequencies = previous[large]
    frequencies.setflags(write=False)
    return frequencies


def _pwilcox_lower(q: float, n: int, m: int) -> float:
    """P(U <= q), R's ``pwilcox(q, n, m)``."""
    q = math.floor(q + 1e-7)
    if q < 0:
        return 0.0
    if q >= n * m:
        return 1.0
    frequencies = wilcox_frequencies(n, m)
    return float(frequencies[: q + 1].sum() / frequencies.sum())


def _pwilcox_upper(q: float, n: int, m: int) -> float:
    """P(U > q), R's ``pwilcox(q, n, m, lower.tail = FALSE)``."""
    q = math.floor(q + 1e-7)
    if q < 0:
        return 1.0
    if q >= n * m:
        return 0.0
    frequencies = wilcox_frequencies(n, m)
    return float(frequencies[q + 1 :].sum() / frequencies.sum())


def _qwilcox_lower(probability: float, n: int, m: int) -> int:
    """Smallest q with P(U <= q) >= probability (R's ``qwilcox`` for probability <= 0.5).

    Keeps R's fuzz of 10 machine epsilons so that boundary cases round the same way.
    """
    frequencies = wilcox_frequencies(n, m)
    cumulative = np.cumsum(frequencies / frequencies.sum())
    target = probability - 10.0 * _DBL_EPSILON
    return int(np.searchsorted(cumulative, target, side="left"))


def exact_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided exact p-value of W without ties, as R: min(2 * smaller tail, 1)."""
    if statistic > n * m / 2.0:
        tail = _pwilcox_upper(statistic - 1.0, n, m)
    else:
        tail = _pwilcox_lower(statistic, n, m)
    return min(2.0 * tail, 1.0)


def exact_interval(
    canary_sorted: np.ndarray, baseline_sorted: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate and Moses/Bauer exact interval from the sorted differences.

    The limits are the qu-th smallest and qu-th largest of the n*m differences with qu the
    alpha/2 quantile of U (R: ``qwilcox(alpha/2, n, m)``, at least 1). Only used for small
    samples, so the n*m differences are formed.
    """
    n, m = canary_sorted.size, baseline_sorted.size
    differences = np.sort(np.subtract.outer(canary_sorted, baseline_sorted).ravel())
    alpha = 1.0 - confidence
    qu = _qwilcox_lower(alpha / 2.0, n, m)
    if qu == 0:
        qu = 1
    ql = n * m - qu
    return float(np.median(differences)), float(differences[qu - 1]), float(differences[ql])


# ------------------------------------------------------------------------- asymptotic method


class _ShiftStatistic:
    """R's inner function ``W(d)``: the standardised statistic of ``canary - d`` vs baseline."""

    def __init__(self, canary_sorted: np.ndarray, baseline_sorted: np.ndarray) -> None:
        self.canary = canary_sorted
        self.baseline = baseline_sorted
        self.n = canary_sorted.size
        self.m = baseline_sorted.size
        self.baseline_tie_sum = _tie_term(_group_sizes(baseline_sorted)[1])

    def __call__(self, shift: float, correct: bool) -> float:
        shifted = self.canary - shift
        below, upto = _counts(shifted, self.baseline)
        # Rank sums of half-integers are exact in binary floating point, as in R.
        equal = int((upto - below).sum())
        dz = float(below.sum()) + 0.5 * float(equal) - self.n * self.m / 2.0
        if equal == 0 and bool(np.all(shifted[1:] != shifted[:-1])):
            # The usual case: no shifted value lands on a baseline value or on another
            # shifted value, so the only ties are the baseline's own (what
            # combined_tie_sum would count, at a fraction of its numpy calls).
            tie_sum = self.baseline_tie_sum
        else:
            tie_sum = combined_tie_sum(shifted, self.baseline, below, upto,
                                       self.baseline_tie_sum)
        sigma = normal_sigma(self.n, self.m, tie_sum)
        correction = 0.5 * float(np.sign(dz)) if correct else 0.0
        if sigma == 0.0:
            # Only when every shifted value ties with every baseline value; callers handle
            # that case (both samples constant) before searching.
            return math.nan
        return (dz - correction) / sigma


def asymptotic_interval(
    canary_sorted: np.ndarray, baseline_sorted: np.ndarray, confidence: float, correct: bool
) -> tuple[float, float, float]:
    """Asymptotic Hodges-Lehmann estimate and interval by root finding, as R's wilcox.test.

    The limits solve W(d) = +-z_{1-alpha/2} (with the continuity correction when ``correct``),
    the estimate solves W(d) = 0 without correction; d is searched in [min(canary) -
    max(baseline), max(canary) - min(baseline)] with Brent's method (:func:`zeroin`).
    """
    lowest = float(canary_sorted[0] - baseline_sorted[-1])
    highest = float(canary_sorted[-1] - baseline_sorted[0])
    if lowest == highest:
        # Both samples constant: every difference equals `lowest` (R stops here).
        return lowest, lowest, lowest
    statistic = _ShiftStatistic(canary_sorted, baseline_sorted)
    alpha = 1.0 - confidence
    z_upper = -float(special.ndtri(alpha / 2.0))
    w_lowest = statistic(lowest, correct)
    w_highest = statistic(highest, correct)

    def root(quantile: float) -> float:
        f_lower = w_lowest - quantile
        if f_lower <= 0:
            return lowest
        f_upper = w_highest - quantile
        if f_upper >= 0:
            return highest
        return zeroin(
            lambda shift: statistic(shift, correct) - quantile,
            lowest,
            highest,
            f_lower,
            f_upper,
            ROOT_TOL,
            ROOT_MAXITER,
        )

    low = root(z_upper)
    high = root(-z_upper)
    estimate = zeroin(
        lambda shift: statistic(shift, False),
        lowest,
        highest,
        statistic(lowest, False),
        statistic(highest, False),
        ROOT_TOL,
        ROOT_MAXITER,
    )
    return estimate, low, high


def zeroin(
    function: Callable[[float], float],
    lower: float,
    upper: float,
    f_lower: float,
    f_upper: float,
    tol: float,
    maxiter: int,
) -> float:
    """Brent's zero finder as in R's ``R_zeroin2`` (Brent 1973; Forsythe, Malcolm & Moler 1977).

    Bisection combined with linear or inverse quadratic interpolation; returns ``b`` once the
    bracket [b, c] has half-width at most 2 eps |b| + tol/2. Kept step by step like R's so the
    root lands where R's does when the root is not unique (a flat stretch of a step function).
    The steps are :func:`zeroin_steps`; this feeds them ``function``'s values.
    """
    steps = zeroin_steps(lower, upper, f_lower, f_upper, tol, maxiter)
    try:
        shift = next(steps)
        while True:
            shift = steps.send(function(shift))
    except StopIteration as stop:
        root: float = stop.value
        return root


def zeroin_steps(
    lower: float, upper: float, f_lower: float, f_upper: float, tol: float, maxiter: int
) -> Generator[float, float, float]:
    """:func:`zeroin` as a generator: yields each point to evaluate, is sent the function's
    value there, and returns the root (so that many searches can share batched evaluations)."""
    a, b = lower, upper
    fa, fb = f_lower, f_upper
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        previous_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _DBL_EPSILON * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(previous_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2.0) and p < abs(previous_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = yield b
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b
