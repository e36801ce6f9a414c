"""Mann-Whitney (Wilcoxon rank-sum) test with the Hodges-Lehmann shift and its confidence interval.

Public entry points :func:`mann_whitney` (one pair) and :func:`mann_whitney_many` (many pairs at
once). Both validate their input and run the same batch code (``judge.stats._batch``), so one
pair judged alone or among many gets the same numbers. The algorithms follow R's
``wilcox.test`` (see ``judge.stats._wilcox`` and ``docs/statistics.md``).

References:
    Bauer, D. F. (1972). Constructing confidence sets using rank statistics. JASA 67, 687-690.
    Hodges, J. L. & Lehmann, E. L. (1963). Estimates of location based on rank tests.
        Ann. Math. Statist. 34, 598-611.
    Hollander, M. & Wolfe, D. A. (1999). Nonparametric Statistical Methods, 2nd ed. Wiley.
    R Core Team. ``wilcox.test.default`` (package stats).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy.typing as npt

from judge.stats._batch import judge_many
from judge.stats._validation import as_sample, check_bool, check_open_unit
from judge.stats._wilcox import (
    IntervalSearch,
    MannWhitneyResult,
    Method,
    check_interval_search,
    check_method,
)

__all__ = ["MannWhitneyResult", "mann_whitney", "mann_whitney_many"]


def mann_whitney(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    method: Method = "auto",
    correct: bool = True,
    interval_search: IntervalSearch = "closed_form",
) -> MannWhitneyResult:
    """Mann-Whitney test of canary against baseline with the Hodges-Lehmann shift and its CI.

    Computes what R's ``wilcox.test(canary, baseline, conf.int = TRUE, conf.level =
    confidence, exact = ..., correct = correct)`` computes (two-sided).

    Args:
        canary: sample of the canary (experiment); finite numbers, at least one.
        baseline: sample of the baseline (control); finite numbers, at least one.
        confidence: confidence level of the interval, strictly between 0 and 1.
        method: ``"auto"`` (R's default: exact when both samples have fewer than 50 values and
            there are no ties), ``"exact"`` (R's ``exact = TRUE``; like R it falls back to the
            asymptotic method when there are ties) or ``"asymptotic"`` (R's ``exact = FALSE``).
        correct: apply the continuity correction in the asymptotic p-value and interval.
        interval_search: how the asymptotic estimate and limits are found (the exact method
            is not affected). ``"closed_form"`` (default): R's roots are jumps of a step
            function, i.e. order statistics of the pairwise differences, selected without
            forming them; R's own answer lies within its root tolerance (1e-4) of them, so
            the results agree with R to 1e-4 of the data's scale (and to rounding error for
            pairs with at most 2,500 differences, where R's search is replayed, as it is for
            an estimate whose root is an interval wider than that tolerance). ``"uniroot"``:
            replay R's Brent search (``uniroot``, tolerance 1e-4) for every root, reproducing
            R's and Kayenta's numbers to rounding error, tolerance artefacts included (a
            limit can sit up to 1e-4 away from the jump it approximates, even on the wrong
            side of a tiny estimate); it costs O(iterations * (n + m) log m) per pair.

    Returns:
        A frozen :class:`MannWhitneyResult`. Its ``confidence`` is the requested level, also
        for tiny exact cases where R warns "Requested conf.level not achievable".

    Raises:
        ValueError: for an empty or non-finite sample, an unknown ``method`` or
            ``interval_search``, ``confidence`` outside (0, 1), or ``method="exact"`` with
            more than ``EXACT_MAX_PAIRS`` (10,000) pairs of values.

    Edge cases (where R stops with "cannot compute confidence interval when all observations
    are tied", this function returns a defined result instead):

    * both samples constant (this includes one value on each side with the asymptotic method):
      every pairwise difference is the same number ``c``, so ``estimate = low = high = c``;
    * all values of both samples equal: additionally the variance of the statistic is 0 and R
      reports a NaN p-value; here ``p_value = 1.0`` (no evidence of a shift) and ``c = 0``.

    Example:
        >>> result = mann_whitney([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30],
        ...                       [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.07, 3.14, 1.21])
        >>> result.method, round(result.p_value, 4), result.statistic
        ('exact', 0.1359, 58.0)
        >>> round(result.estimate, 2), round(result.low, 2), round(result.high, 3)
        (0.59, -0.37, 1.183)
    """
    canary_values = as_sample(canary, "canary")
    baseline_values = as_sample(baseline, "baseline")
    confidence = check_open_unit(confidence, "confidence")
    method = check_method(method)
    correct = check_bool(correct, "correct")
    interval_search = check_interval_search(interval_search)
    return judge_many(
        [canary_values], [baseline_values], confidence, method, correct, interval_search
    )[0]


def mann_whitney_many(
    pairs: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    confidence: float = 0.95,
    correct: bool = True,
    method: Method = "auto",
    interval_search: IntervalSearch = "closed_form",
) -> list[MannWhitneyResult]:
    """Judge many ``(canary, baseline)`` pairs at once; same numbers as :func:`mann_whitney`.

    The work is shared across pairs: one row-wise argsort of all pairs gives every W, tie
    correction and p-value, and the asymptotic limits of all pairs are selected together
    (``judge.stats._batch``, ``docs/statistics.md``). Each result equals
    ``mann_whitney(canary, baseline, ...)`` for the same pair.

    Args:
        pairs: a sequence of ``(canary, baseline)`` samples, e.g. one per metric.
        confidence: confidence level, as in :func:`mann_whitney`.
        correct: continuity correction, as in :func:`mann_whitney`.
        method: as in :func:`mann_whitney`, applied to every pair.
        interval_search: as in :func:`mann_whitney`; ``"uniroot"`` loops over the pairs.

    Returns:
        One :class:`MannWhitneyResult` per pair, in order.

    Raises:
        ValueError: as :func:`mann_whitney`; the message names the pair's index.
    """
    confidence = check_open_unit(confidence, "confidence")
    method = check_method(method)
    correct = check_bool(correct, "correct")
    interval_search = check_interval_search(interval_search)
    canaries = []
    baselines = []
    for index, (canary, baseline) in enumerate(pairs):
        canaries.append(as_sample(canary, f"pairs[{index}][0] (canary)"))
        baselines.append(as_sample(baseline, f"pairs[{index}][1] (baseline)"))
    return judge_many(canaries, baselines, confidence, method, correct, interval_search)
