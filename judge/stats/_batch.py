"""Batch Mann-Whitney: many (canary, baseline) pairs judged together with array operations.

Pairs are grouped into buckets of similar size; in a bucket the samples are rows of two padded
matrices, sorted row-wise, and reduced to distinct values with multiplicities
(:class:`judge.stats._selection.PairedSamples`). W (the Mann-Whitney count), the tie sums,
variances and p-values of all pairs follow as array operations. The asymptotic Hodges-Lehmann
estimate and confidence limits come from a closed form:

Between two consecutive pairwise differences ``D = canary_i - baseline_j`` R's function
``W(d)`` (the standardised statistic of ``canary - d`` against ``baseline``) depends on ``d``
only through ``g(d) = #{D > d}``, and its variance only through the ties *inside* each sample
(ties across samples happen at the differences themselves). The root that R's ``uniroot``
finds for ``W(d) = z`` is therefore the jump of ``g`` across a known threshold, an order
statistic of the differences:

* lower limit: ``D_(k)``, ``k = ceil(N - (N/2 + c + z * sigma0))``,
* upper limit: ``D_(k)``, ``k = floor(N - (N/2 - c - z * sigma0)) + 1``,
* estimate (no correction, z = 0): the median of the differences,

with ``N = n * m``, ``c`` the continuity correction (0.5 or 0), ``z = z_{1 - alpha/2}`` and
``sigma0`` the tie-corrected standard deviation with the within-sample ties; ``k`` is clamped to
[1, N], which reproduces R's return of the search interval's ends. R's answer is within its
root tolerance (1e-4) of these order statistics. When the median lies in a gap (``N`` even, two
different middle differences) the zero of ``W`` is a whole interval and R returns the point its
Brent iterations land on; if that gap is wider than 2e-4 times the data's scale, R's Brent
search is replayed (:func:`judge.stats._wilcox.asymptotic_interval`), so the estimate stays
within 1e-4 of the scale of R's.

The order statistics are selected for all pairs and targets at once without forming the n*m
differences (:func:`judge.stats._selection.select_differences`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from judge.stats import _compiled
from judge.stats._lockstep import fits_broadcast, lockstep_intervals
from judge.stats._ranks import rank_sum_statistics_rows
from judge.stats._selection import PairedSamples, select_differences
from judge.stats._wilcox import (
    IntervalSearch,
    MannWhitneyResult,
    Method,
    asymptotic_interval,
    exact_interval,
    exact_p_value,
    use_exact,
)

#: Pairs with at most this many differences use R's root search directly: it is cheap there,
#: and it reproduces R's numbers to the last digit.
BRENT_MAX_PAIRS = 2_500
#: Fewer pairs than this are searched one by one: the lock-step search's fixed cost per round
#: (some fifty array operations) exceeds a scalar search's below it (measured: one 60 x 60
#: pair 1.8 ms scalar, 3.5 ms in lock step; five 30 x 30 pairs faster in lock step).
#: Two or three pairs small enough for the broadcast search (``fits_broadcast``) share it:
#: two 30 x 30 pairs 1.7 ms against 2.7 ms one by one, three 2.8 against 4.4.
LOCKSTEP_MIN_PAIRS = 4
#: Half a gap between the middle differences above this fraction of the data's scale (the
#: range of the differences, at least 1) triggers a replay of R's search for the estimate.
ESTIMATE_GAP_TOLERANCE = 1e-4
#: Values per side in one bucket of pairs judged together: bounds memory (about 100 bytes per
#: value at the peak) while keeping the arrays long enough to amortise the numpy calls.
_BUCKET_MAX_CELLS = 2_000_000


def judge_many(
    canaries: Sequence[np.ndarray],
    baselines: Sequence[np.ndarray],
    confidence: float,
    method: Method,
    correct: bool,
    interval_search: IntervalSearch = "closed_form",
) -> list[MannWhitneyResult]:
    """Judge validated, finite, non-empty samples; see :func:`judge.stats.mann_whitney_many`."""
    results: list[MannWhitneyResult | None] = [None] * len(canaries)
    sizes = np.array([max(c.size, b.size) for c, b in zip(canaries, baselines, strict=True)])
    for bucket in _size_buckets(sizes):
        try:
            bucket_results = _judge_bucket(
                [canaries[i] for i in bucket.tolist()],
                [baselines[i] for i in bucket.tolist()],
                confidence,
                method,
                correct,
                interval_search,
            )
        except _PairError as error:
            raise ValueError(f"pairs[{int(bucket[error.position])}]: {error.reason}") from error
        for index, result in zip(bucket.tolist(), bucket_results, strict=True):
            results[index] = result
    return [result for result in results if result is not None]


class _PairError(Exception):
    """A pair of a bucket cannot be judged as asked; judge_many names it in a ValueError."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def _size_buckets(sizes: np.ndarray) -> list[np.ndarray]:
    """Group pair indices by size so that padding at most doubles a bucket's matrices, and
    split groups so that a bucket's matrices stay below ``_BUCKET_MAX_CELLS`` values."""
    order = np.argsort(sizes, kind="stable")
    buckets: list[np.ndarray] = []
    start = 0
    for position in range(1, order.size + 1):
        if position == order.size or sizes[order[position]] > 2 * sizes[order[start]] + 64:
            group = order[start:position]
            per_bucket = max(1, _BUCKET_MAX_CELLS // max(int(sizes[group].max()), 1))
            buckets.extend(group[i : i + per_bucket] for i in range(0, group.size, per_bucket))
            start = position
    return buckets


def _sorted_rows(samples: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Samples as rows of a matrix padded with +inf (inputs are finite), each row sorted."""
    rows = np.full((len(samples), width), np.inf)
    for row, sample in enumerate(samples):
        rows[row, : sample.size] = sample
    rows.sort(axis=1)
    return rows


def _judge_bucket(
    canaries: Sequence[np.ndarray],
    baselines: Sequence[np.ndarray],
    confidence: float,
    method: Method,
    correct: bool,
    interval_search: IntervalSearch,
) -> list[MannWhitneyResult]:
    """All pairs of one size bucket: statistics as arrays, then the intervals."""
    count = len(canaries)
    n = np.array([sample.size for sample in canaries], dtype=np.int64)
    m = np.array([sample.size for sample in baselines], dtype=np.int64)
    samples = PairedSamples(
        _sorted_rows(canaries, int(n.max())), n, _sorted_rows(baselines, int(m.max())), m
    )
    statistic, tie_sum = _bucket_rank_statistics(samples)
    sigma = _sigma(n, m, tie_sum)
    p_value = _asymptotic_p_values(statistic, n, m, sigma, correct)

    estimate = np.empty(count)
    low = np.empty(count)
    high = np.empty(count)
    exact = np.zeros(count, dtype=bool)
    closed_form: list[int] = []
    searched: list[int] = []
    for index in range(count):
        size_n, size_m = int(n[index]), int(m[index])
        canary_sorted = samples.x_full[index, :size_n]
        baseline_sorted = samples.y_full[index, :size_m]
        try:
            exact_pair = use_exact(size_n, size_m, bool(tie_sum[index] > 0), method)
        except ValueError as error:
            raise _PairError(index, str(error)) from error
        if exact_pair:
            exact[index] = True
            p_value[index] = exact_p_value(float(statistic[index]), size_n, size_m)
            estimate[index], low[index], high[index] = exact_interval(
                canary_sorted, baseline_sorted, confidence
            )
        elif samples.nd[index] == 1 and samples.md[index] == 1:
            # Both samples constant: all differences are one number (R stops with an error).
            difference = float(canary_sorted[0] - baseline_sorted[0])
            estimate[index] = low[index] = high[index] = difference
        elif interval_search == "uniroot" or size_n * size_m <= BRENT_MAX_PAIRS:
            searched.append(index)
        else:
            closed_form.append(index)
    selected = np.array(searched, dtype=np.int64)
    if len(searched) >= LOCKSTEP_MIN_PAIRS or (
        len(searched) >= 2 and fits_broadcast(samples, selected)
    ):
        # R's root search, every pair's three roots in lock step (the same numbers as
        # asymptotic_interval pair by pair); two or three small pairs already gain from
        # sharing the evaluations (the broadcast search).
        estimate[selected], low[selected], high[selected] = lockstep_intervals(
            samples.subset(selected), confidence, correct
        )
    else:
        for index in searched:
            estimate[index], low[index], high[index] = asymptotic_interval(
                samples.x_full[index, : n[index]],
                samples.y_full[index, : m[index]],
                confidence,
                correct,
            )
    if closed_form:
        selected = np.array(closed_form, dtype=np.int64)
        estimate[selected], low[selected], high[selected] = _closed_form_intervals(
            samples.subset(selected), confidence, correct
        )
    return [
        MannWhitneyResult(
            estimate=float(estimate[i]),
            low=float(low[i]),
            high=float(high[i]),
            p_value=float(p_value[i]),
            method="exact" if exact[i] else "asymptotic",
            statistic=float(statistic[i]),
            n_canary=int(n[i]),
            n_baseline=int(m[i]),
            confidence=confidence,
        )
        for i in range(count)
    ]


# ----------------------------------------------------------------------- rank statistics


#: Buckets of unpadded rows with at most this many values take the pooled-rank form of the
#: rank statistics (a few whole-array calls; measured 14 us against 99 us for five 30 x 30
#: pairs); larger ones the per-pair count, faster there (64 x 1,440: 4.7 ms against 16 ms).
_POOLED_RANKS_MAX_CELLS = 10_000


def _bucket_rank_statistics(samples: PairedSamples) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_rank_statistics`, from the pooled ranks
    (:func:`judge.stats._ranks.rank_sum_statistics_rows`, the same numbers) for small buckets
    of pairs of one size."""
    unpadded = (int(samples.n.min()) == samples.x_full.shape[1]
                and int(samples.m.min()) == samples.y_full.shape[1])
    if unpadded and samples.x_full.size + samples.y_full.size <= _POOLED_RANKS_MAX_CELLS:
        statistic, tie_sum = rank_sum_statistics_rows(samples.x_full, samples.y_full)
        return statistic, tie_sum.astype(np.int64)
    return _rank_statistics(samples)


def _rank_statistics(samples: PairedSamples) -> tuple[np.ndarray, np.ndarray]:
    """R's W and the tie sum of the combined sample for every pair, from the sorted samples.

    W is the rank sum of the canary minus n(n+1)/2, which equals the Mann-Whitney count
    ``sum_i #{baseline < canary_i} + 0.5 #{baseline = canary_i}`` (Hollander & Wolfe 1999, sec.
    4.1), an exact half-integer in floating point as in R. The combined tie groups are the
    groups of each sample, merged where a canary value also occurs in the baseline. Counted on
    distinct values with one ``searchsorted`` per pair.
    """
    count = samples.n.size
    compiled = _compiled.kernels(int((samples.nd + samples.md).sum()))
    if compiled is not None:
        greater = np.empty(count, dtype=np.int64)
        equal = np.empty(count, dtype=np.int64)
        cross = np.empty(count, dtype=np.int64)
        compiled.rank_counts(samples.xv, samples.wx, samples.nd, samples.yv, samples.md,
                             samples.wy, samples.cwy, greater, equal, cross)
        # wins + 0.5 ties as below: integers under 2**53, the same float.
        return greater + 0.5 * equal, samples.within_tie_sum + cross
    statistic = np.empty(count)
    cross_ties = np.zeros(count, dtype=np.int64)
    for row in range(count):
        size_x, size_y = int(samples.nd[row]), int(samples.md[row])
        canary_values = samples.xv[row, :size_x]
        canary_counts = samples.wx[row, :size_x]
        baseline_values = samples.yv[row, :size_y]
        baseline_counts = samples.wy[row, :size_y]
        below = np.searchsorted(baseline_values, canary_values, side="left")
        matched = below < size_y
        matched[matched] = baseline_values[below[matched]] == canary_values[matched]
        smaller = samples.cwy[row, below]
        wins = int(np.dot(canary_counts, smaller))
        tied_x = canary_counts[matched]
        tied_y = baseline_counts[below[matched]]
        ties = int(np.dot(tied_x, tied_y))
        statistic[row] = wins + 0.5 * ties
        joint = tied_x + tied_y
        cross_ties[row] = int(
            np.sum(joint**3 - joint) - np.sum(tied_x**3 - tied_x) - np.sum(tied_y**3 - tied_y)
        )
    return statistic, samples.within_tie_sum + cross_ties


def _sigma(n: np.ndarray, m: np.ndarray, tie_sum: np.ndarray) -> np.ndarray:
    """R's SIGMA for every pair (same operation order as :func:`normal_sigma`)."""
    nx = n.astype(np.float64)
    ny = m.astype(np.float64)
    inner = (nx + ny + 1.0) - tie_sum / ((nx + ny) * (nx + ny - 1.0))
    return np.sqrt(np.maximum((nx * ny / 12.0) * inner, 0.0))


def _asymptotic_p_values(
    statistic: np.ndarray, n: np.ndarray, m: np.ndarray, sigma: np.ndarray, correct: bool
) -> np.ndarray:
    """Two-sided normal p-values; 1 where every value is tied (sigma = 0, R gives NaN)."""
    z = statistic - n.astype(np.float64) * m.astype(np.float64) / 2.0
    correction = 0.5 * np.sign(z) if correct else np.zeros_like(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        standard = (z - correction) / sigma
        p_value = 2.0 * np.minimum(special.ndtr(standard), special.ndtr(-standard))
    p_value[sigma == 0.0] = 1.0
    return np.asarray(p_value, dtype=np.float64)


# ------------------------------------------------------------ closed-form estimate and limits


def _closed_form_intervals(
    samples: PairedSamples, confidence: float, correct: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low, high of R's asymptotic interval for sorted, non-constant pairs."""
    total = samples.n * samples.m
    pairs = total.astype(np.float64)
    sigma0 = _sigma(samples.n, samples.m, samples.within_tie_sum)
    z = -float(special.ndtri((1.0 - confidence) / 2.0))
    correction = 0.5 if correct else 0.0
    rank_low = np.ceil(pairs - (pairs / 2.0 + correction + z * sigma0)).astype(np.int64)
    rank_high = np.floor(pairs - (pairs / 2.0 - correction - z * sigma0)).astype(np.int64) + 1
    ranks = np.stack(
        [np.clip(rank_low, 1, total), np.clip(rank_high, 1, total), (total + 1) // 2], axis=1
    )
    value, following = select_differences(samples, ranks)
    low, high = value[:, 0], value[:, 1]
    middle_low = value[:, 2]
    middle_high = np.where(total % 2 == 0, following[:, 2], middle_low)
    estimate = (middle_low + middle_high) / 2.0
    scale = np.maximum(1.0, samples.highest - samples.lowest)
    replay = np.flatnonzero((middle_high - middle_low) / 2.0 > ESTIMATE_GAP_TOLERANCE * scale)
    for index in replay.tolist():
        canary_sorted = samples.x_full[index, : samples.n[index]]
        baseline_sorted = samples.y_full[index, : samples.m[index]]
        replayed, _, _ = asymptotic_interval(canary_sorted, baseline_sorted, confidence, correct)
        estimate[index] = replayed
    return estimate, low, high
