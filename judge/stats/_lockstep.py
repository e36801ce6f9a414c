"""R's asymptotic Hodges-Lehmann search for many pairs at once: Brent's method in lock step.

:func:`judge.stats._wilcox.asymptotic_interval` runs R's ``uniroot`` (``zeroin.c``) once per
root and pair, a scalar loop of about a dozen evaluations of ``W(d)``, each a ``searchsorted``
of the whole canary into the whole baseline. Here the three roots (low limit, high limit,
estimate) of every pair are *lanes* of one vectorised Brent iteration: each lane takes exactly
the steps R's scalar code takes (same floating-point operations, same branches, as masks), so
the roots are the same numbers to the last bit.

What makes it cheap is the evaluation of ``W(d)``. It depends on ``d`` only through how each
pair (canary value v, baseline value y) compares, ``fl(v - d)`` against ``y`` (greater, equal
or less; the ties give the variance correction). Every later Brent iterate lies inside the
current bracket ``[lo, hi]`` (Brent 1973, ch. 4: a step never leaves the interval between
``b`` and ``c``), and ``fl(v - d)`` is monotone in ``d``, so a pair with ``y < fl(v - hi)`` is
"greater" for the rest of the search and one with ``y > fl(v - lo)`` is "less". Only the pairs
between the two, the *active* pairs, can change. While they are many a lane is evaluated
densely (one ``searchsorted`` on the distinct values, which also tells where the bracket's ends
fall); once at most ``cap`` remain they are listed, and every later evaluation of every such lane
is one array operation over the listed pairs, which shrink with the bracket.

Samples come as :class:`judge.stats._selection.PairedSamples` (distinct values with
multiplicities), so heavily tied data (counts) cost their number of distinct values.

Where the compiled kernels are loaded (:mod:`judge.stats._compiled`), large batches run the same
search lane by lane in one kernel (``_kernels.interval_roots``: the same Brent steps, the same
counts, so the same roots; ``tests/unit/stats/test_compiled.py``); this module's lock-step
search is the numpy path and the reference the kernel is held to.

Reference: Brent, R. P. (1973). Algorithms for Minimization without Derivatives, ch. 4;
R Core Team, ``src/library/stats/src/zeroin.c`` and ``wilcox.test.default``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from judge.stats import _compiled
from judge.stats._selection import PairedSamples
from judge.stats._wilcox import ROOT_MAXITER, ROOT_TOL, asymptotic_interval, zeroin_steps

_DBL_EPSILON = float(np.finfo(np.float64).eps)
#: A lane's active pairs are listed once there are at most this many times (nd + md) of them,
#: plus 64: small enough that a round over the list costs less than a dense evaluation.
_CAP_FACTOR = 0.5
#: Searches whose every lane compares all its pairs in one array of at most this many cells
#: (lanes x distinct canary values x distinct baseline values, padded) skip the bracket
#: bookkeeping: for a few small pairs it costs more than the comparisons it saves.
_BROADCAST_MAX_CELLS = 250_000
#: Whole-row merges a lock-step search makes per pair, about (its three lanes' eight dense
#: evaluations and the two shared ends): the work a compiled search stands for, in
#: :func:`judge.stats._compiled.kernels`' accounting.
_SEARCH_EVALUATIONS = 26


def lockstep_intervals(
    samples: PairedSamples, confidence: float, correct: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low and high of R's asymptotic interval for every (non-constant) pair.

    The same numbers as :func:`judge.stats._wilcox.asymptotic_interval` on each pair. Pairs
    where the shifted canary values could round onto each other (distinct values closer than a
    few units in the last place of the shifts searched) keep the scalar search, whose grouping
    of the shifted values is then the reference's own.
    """
    pairs = samples.n.size
    estimate = np.empty(pairs)
    low = np.empty(pairs)
    high = np.empty(pairs)
    safe = _no_absorption(samples)
    for row in np.flatnonzero(~safe).tolist():
        estimate[row], low[row], high[row] = asymptotic_interval(
            samples.x_full[row, : samples.n[row]],
            samples.y_full[row, : samples.m[row]],
            confidence,
            correct,
        )
    rows = np.flatnonzero(safe)
    if rows.size:
        roots = _search(samples, rows, confidence, correct)
        low[rows], high[rows], estimate[rows] = roots[0::3], roots[1::3], roots[2::3]
    return estimate, low, high


def _search(
    samples: PairedSamples, rows: np.ndarray, confidence: float, correct: bool
) -> np.ndarray:
    """The three roots of each pair ``rows`` (low, high, estimate, in that order per pair):
    few small pairs by the broadcast search; large batches, where the kernels are loaded, by
    the compiled search (each lane's Brent loop in one kernel, with no per-round numpy calls);
    otherwise in lock step."""
    if fits_broadcast(samples, rows):
        return _BroadcastSearch(samples, rows, confidence, correct).run()
    compiled = _compiled.kernels(_SEARCH_EVALUATIONS * int(
        (samples.nd[rows] + samples.md[rows]).sum()))
    if compiled is None:
        return _LockstepSearch(samples, rows, confidence, correct).run()
    roots = np.empty(3 * rows.size)
    compiled.interval_roots(
        samples.xv, samples.wx, samples.nd, samples.yv, samples.md, samples.wy, samples.cwy,
        samples.within_tie_sum, samples.n, samples.m, samples.lowest, samples.highest,
        rows.astype(np.int64), -float(special.ndtri((1.0 - confidence) / 2.0)), bool(correct),
        ROOT_TOL, ROOT_MAXITER, roots,
    )
    return roots


def fits_broadcast(samples: PairedSamples, rows: np.ndarray) -> bool:
    """Whether the pairs ``rows`` are few and small enough for :class:`_BroadcastSearch`."""
    cells = 3 * rows.size * int(samples.nd[rows].max()) * int(samples.md[rows].max())
    return cells <= _BROADCAST_MAX_CELLS


def _no_absorption(samples: PairedSamples) -> np.ndarray:
    """Pairs whose distinct canary values stay distinct after any shift in the search.

    fl(v1 - d) == fl(v2 - d) needs |v1 - v2| within an ulp of |v - d|; the reference groups the
    shifted values as they come out, this module groups them by canary value.
    """
    values = samples.xv
    valid = samples.valid_x
    gaps = np.where(valid[:, 1:], values[:, 1:] - values[:, :-1], np.inf)
    smallest_gap = gaps.min(axis=1, initial=np.inf)
    magnitude = np.where(valid, np.abs(values), 0.0).max(axis=1) + np.maximum(
        np.abs(samples.lowest), np.abs(samples.highest)
    )
    safe: np.ndarray = smallest_gap > 8.0 * _DBL_EPSILON * magnitude
    return safe


class _DenseTables:
    """Per pair, the distinct baseline values and their multiplicities with one more column
    (+inf / 0) past the widest row, so that below = md is a valid position."""

    def __init__(self, samples: PairedSamples) -> None:
        pairs, width = samples.yv.shape
        self.baseline = np.full((pairs, width + 1), np.inf)
        self.baseline[:, :width] = samples.yv
        self.weight = np.zeros((pairs, width + 1), dtype=np.int64)
        self.weight[:, :width] = samples.wy


class _LockstepSearch:
    """Lanes 3g, 3g+1, 3g+2: low limit, high limit and estimate of pair ``rows[g]``."""

    def __init__(
        self, samples: PairedSamples, rows: np.ndarray, confidence: float, correct: bool
    ) -> None:
        self.samples = samples
        z_upper = -float(special.ndtri((1.0 - confidence) / 2.0))
        lanes = 3 * rows.size
        self.row = np.repeat(rows, 3)
        # R: low = root(qnorm(1 - alpha/2)), high = root(-qnorm(...)), estimate without
        # correction (f = W(d) - 0).
        self.quantile = np.tile(np.array([z_upper, -z_upper, 0.0]), rows.size)
        self.correct = np.tile(np.array([correct, correct, False]), rows.size)
        self.is_limit = np.tile(np.array([True, True, False]), rows.size)
        self.n = samples.n[self.row]
        self.m = samples.m[self.row]
        self.half_pairs = (self.n * self.m) / 2.0
        self.within = samples.within_tie_sum[self.row]
        # The parts of R's sigma that do not depend on d, computed once per lane with the
        # reference's operations (so the same numbers): a round then costs a dozen numpy
        # calls fewer, which is most of a small search's time.
        nx = self.n.astype(np.float64)
        ny = self.m.astype(np.float64)
        self._points_plus_one = nx + ny + 1.0
        self._tie_divisor = (nx + ny) * (nx + ny - 1.0)
        self._sigma_scale = nx * ny / 12.0
        self._half_correction = np.where(self.correct, 0.5, 0.0)
        # sigma when nothing ties across the samples (the within-sample ties only).
        self._sigma_within = np.sqrt(np.maximum(
            self._sigma_scale * (self._points_plus_one - self.within / self._tie_divisor), 0.0))
        self.lanes = lanes
        width = samples.xv.shape[1]
        # Where the bracket's ends fall in the distinct baseline values, per canary value:
        # below(fl(v - hi)) and upto(fl(v - lo)); pairs in between are the active ones.
        self.hi_below = np.zeros((lanes, width), dtype=np.int32)
        self.lo_upto = np.zeros((lanes, width), dtype=np.int32)
        # Their row sums: the number of active distinct pairs is lo_sum - hi_sum.
        self.hi_sum = np.zeros(lanes, dtype=np.int64)
        self.lo_sum = np.zeros(lanes, dtype=np.int64)
        self._last_below = np.zeros((lanes, width), dtype=np.int32)
        self._last_upto = np.zeros((lanes, width), dtype=np.int32)
        self._last_below_sum = np.zeros(lanes, dtype=np.int64)
        self._last_upto_sum = np.zeros(lanes, dtype=np.int64)
        self.listed = np.zeros(lanes, dtype=bool)
        self.fixed_greater = np.zeros(lanes, dtype=np.int64)
        self.cap = (_CAP_FACTOR * (samples.nd + samples.md) + 64)[self.row]
        # Listed pairs: their lane, and the rows canary value, baseline value, product of the
        # multiplicities and tie term 3we(w+e) (integers below 2**53, exact in float64); one
        # matrix so that dropping decided pairs is one compaction.
        self._pair_lane = np.zeros(0, dtype=np.int64)
        self._pairs = np.zeros((4, 0))

    # ------------------------------------------------------------------ W(d) from counts

    def _statistic(
        self, lanes: np.ndarray, greater: np.ndarray, equal: np.ndarray, ties: np.ndarray
    ) -> np.ndarray:
        """R's standardised W (the reference's float operations, in the same order; NaN where
        sigma is 0)."""
        dz = (greater.astype(np.float64) + 0.5 * equal.astype(np.float64)) - self.half_pairs[lanes]
        tie_sum = self.within[lanes] + ties
        inner = self._points_plus_one[lanes] - tie_sum / self._tie_divisor[lanes]
        sigma = np.sqrt(np.maximum(self._sigma_scale[lanes] * inner, 0.0))
        # 0.5 sign(dz) where corrected; elsewhere 0 * sign(dz), a zero, subtracts nothing.
        corrected = dz - self._half_correction[lanes] * np.sign(dz)
        standard: np.ndarray = np.divide(corrected, sigma, out=np.full(dz.shape, np.nan),
                                         where=sigma != 0.0)
        return standard

    def _statistic_untied_across(self, lanes: np.ndarray, greater: np.ndarray) -> np.ndarray:
        """:meth:`_statistic` when no canary value ties with a baseline value (``equal`` and
        ``ties`` 0): adding those zeros changes no bit, and sigma is the lane's constant."""
        dz = greater.astype(np.float64) - self.half_pairs[lanes]
        corrected = dz - self._half_correction[lanes] * np.sign(dz)
        sigma = self._sigma_within[lanes]
        standard: np.ndarray = np.divide(corrected, sigma, out=np.full(dz.shape, np.nan),
                                         where=sigma != 0.0)
        return standard

    def _dense(
        self, lanes: np.ndarray, shifts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts of ``lanes`` at ``shifts`` from whole samples: greater, equal and tie term.

        Also leaves each lane's below(fl(v - shift)) and upto(fl(v - shift)) per distinct
        canary value, and their sums, in ``_last_below``/``_last_upto``. Pair by pair (all
        its lanes in one ``searchsorted``): a pair's rows stay in cache, which measured faster
        than whole-array operations over all lanes (each a pass over megabytes); a pair costs
        one search and a handful of array calls, the tie terms only where a shifted canary
        value meets a baseline value.
        """
        samples = self.samples
        greater = np.zeros(lanes.size, dtype=np.int64)
        equal = np.zeros(lanes.size, dtype=np.int64)
        ties = np.zeros(lanes.size, dtype=np.int64)
        rows = self.row[lanes]
        tables = self._tables
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        boundaries = np.flatnonzero(sorted_rows[1:] != sorted_rows[:-1]) + 1
        starts = np.concatenate([[0], boundaries])
        for start, end, row, nx, ny, untied in zip(
            starts.tolist(),
            np.append(boundaries, rows.size).tolist(),
            sorted_rows[starts].tolist(),
            samples.nd[sorted_rows[starts]].tolist(),
            samples.md[sorted_rows[starts]].tolist(),
            samples.untied[sorted_rows[starts]].tolist(),
            strict=True,
        ):
            group = order[start:end]
            owners = lanes[group]
            shifted = samples.xv[row, :nx] - shifts[group, None]
            below = np.searchsorted(samples.yv[row, :ny], shifted, side="left")
            # The baseline row ends with +inf (so below = md is a valid position); its values
            # are distinct: at most one of them equals a shifted value.
            hit = tables.baseline[row][below] == shifted
            below_sum = below.sum(axis=1)
            self._last_below[owners, :nx] = below
            self._last_below_sum[owners] = below_sum
            if untied:
                # Every multiplicity 1: the baseline weight below a value is its position.
                greater[group] = below_sum
            else:
                greater[group] = samples.cwy[row][below] @ samples.wx[row, :nx]
            if hit.any():
                hits = hit.sum(axis=1)
                weights = samples.wx[row, :nx]
                matched = np.where(hit, tables.weight[row][below], 0)
                equal[group] = matched @ weights
                # Merging a canary group of w with a baseline group of e adds
                # (w+e)^3 - w^3 - e^3 = 3we(w+e) to the sum of t^3 - t.
                ties[group] = (3 * weights * matched * (weights + matched)).sum(axis=1)
                self._last_upto[owners, :nx] = below + hit
                self._last_upto_sum[owners] = below_sum + hits
            else:
                self._last_upto[owners, :nx] = below
                self._last_upto_sum[owners] = below_sum
        return greater, equal, ties

    @cached_property
    def _tables(self) -> _DenseTables:
        """The pairs' values laid out for :meth:`_dense`, built at its first use (the
        broadcast search of small calls never needs them)."""
        return _DenseTables(self.samples)

    def _evaluate(self, lanes: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """f(shift) = W(shift) - quantile for ``lanes``; dense lanes also leave their
        below/upto positions in ``_last_below``/``_last_upto``."""
        greater = np.zeros(lanes.size, dtype=np.int64)
        equal = np.zeros(lanes.size, dtype=np.int64)
        ties = np.zeros(lanes.size, dtype=np.int64)
        dense = np.flatnonzero(~self.listed[lanes])
        if dense.size:
            greater[dense], equal[dense], ties[dense] = self._dense(lanes[dense], shift[dense])
        if dense.size < lanes.size:
            listed_positions = np.flatnonzero(self.listed[lanes])
            size = lanes.size
            # Pairs of lanes not evaluated now go to an extra bin that is dropped.
            slot = np.full(self.lanes, size, dtype=np.int64)
            slot[lanes[listed_positions]] = listed_positions
            owner = slot[self._pair_lane]
            values, baseline, weight, tie = self._pairs
            shifted = values - np.append(shift, 0.0)[owner]
            is_greater = shifted > baseline
            is_equal = shifted == baseline
            # Sums of integers below 2**53 are exact in float64.
            greater += np.bincount(owner, np.where(is_greater, weight, 0.0), size + 1)[
                :size
            ].astype(np.int64)
            equal += np.bincount(owner, np.where(is_equal, weight, 0.0), size + 1)[
                :size
            ].astype(np.int64)
            ties += np.bincount(owner, np.where(is_equal, tie, 0.0), size + 1)[:size].astype(
                np.int64
            )
            greater[listed_positions] += self.fixed_greater[lanes[listed_positions]]
        value: np.ndarray = self._statistic(lanes, greater, equal, ties) - self.quantile[lanes]
        return value

    def _evaluate_shared(self, shift: np.ndarray) -> np.ndarray:
        """:meth:`_evaluate` of every lane at a shift its pair's three lanes share (an end of
        the search interval): the counts are searched once per pair, not once per lane."""
        first = np.arange(0, self.lanes, 3)
        counts = self._dense(first, shift[first])
        for last in (self._last_below, self._last_upto, self._last_below_sum,
                     self._last_upto_sum):
            last[:] = np.repeat(last[first], 3, axis=0)
        greater, equal, ties = (np.repeat(count, 3) for count in counts)
        everyone = np.arange(self.lanes)
        value: np.ndarray = self._statistic(everyone, greater, equal, ties) - self.quantile
        return value

    # ------------------------------------------------------------------ bracket bookkeeping

    def _shrink(self, lanes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Drop listed pairs decided on the new bracket; list dense lanes that became small."""
        if self._pair_lane.size:
            lane_lo = np.full(self.lanes, np.nan)
            lane_hi = np.full(self.lanes, np.nan)
            lane_lo[lanes] = lo
            lane_hi[lanes] = hi
            pair_lo = lane_lo[self._pair_lane]
            pair_hi = lane_hi[self._pair_lane]
            values, baseline, weight, _ = self._pairs
            live = ~np.isnan(pair_lo)
            decided_greater = live & (baseline < values - pair_hi)
            self.fixed_greater += np.bincount(
                self._pair_lane, np.where(decided_greater, weight, 0.0), self.lanes
            ).astype(np.int64)
            keep = live & ~decided_greater & ~(baseline > values - pair_lo)
            self._pair_lane = self._pair_lane[keep]
            self._pairs = self._pairs[:, keep]
        dense = lanes[~self.listed[lanes]]
        if dense.size == 0:
            return
        samples = self.samples
        # lo <= hi, so upto(fl(v - lo)) >= below(fl(v - hi)) for every canary value.
        small = self.lo_sum[dense] - self.hi_sum[dense] <= self.cap[dense]
        if not small.any():
            return
        chosen = dense[small]
        rows = self.row[chosen]
        chosen_width = np.where(
            samples.valid_x[rows], self.lo_upto[chosen] - self.hi_below[chosen], 0
        )
        cumulative = np.take_along_axis(samples.cwy[rows], self.hi_below[chosen], axis=1)
        self.fixed_greater[chosen] = np.where(
            samples.valid_x[rows], samples.wx[rows] * cumulative, 0
        ).sum(axis=1)
        lane_index, canary_index = np.nonzero(chosen_width)
        repeats = chosen_width[lane_index, canary_index]
        pair_lane_local = np.repeat(lane_index, repeats)
        pair_canary = np.repeat(canary_index, repeats)
        starts = np.cumsum(repeats) - repeats
        offset = np.arange(int(repeats.sum())) - np.repeat(starts, repeats)
        pair_baseline = self.hi_below[chosen][lane_index, canary_index]
        pair_baseline = np.repeat(pair_baseline, repeats) + offset
        pair_row = rows[pair_lane_local]
        w = samples.wx[pair_row, pair_canary]
        wy = samples.wy[pair_row, pair_baseline]
        listing = np.stack([
            samples.xv[pair_row, pair_canary],
            samples.yv[pair_row, pair_baseline],
            (w * wy).astype(np.float64),
            (3 * w * wy * (w + wy)).astype(np.float64),
        ])
        self._pair_lane = np.concatenate([self._pair_lane, chosen[pair_lane_local]])
        self._pairs = np.concatenate([self._pairs, listing], axis=1)
        self.listed[chosen] = True

    # ------------------------------------------------------------------ Brent, vectorised

    def run(self) -> np.ndarray:
        """The root of every lane, as R's ``R_zeroin2`` finds it (see ``_wilcox.zeroin``)."""
        samples = self.samples
        lanes = self.lanes
        lowest = samples.lowest[self.row]
        highest = samples.highest[self.row]
        f_lowest = self._evaluate_shared(lowest)
        self.lo_upto[:] = self._last_upto
        self.lo_sum[:] = self._last_upto_sum
        f_highest = self._evaluate_shared(highest)
        self.hi_below[:] = self._last_below
        self.hi_sum[:] = self._last_below_sum

        result = np.full(lanes, np.nan)
        done = np.zeros(lanes, dtype=bool)
        # R's root(): the limits return an end of the search interval when W does not cross.
        at_lowest = self.is_limit & (f_lowest <= 0)
        at_highest = self.is_limit & ~at_lowest & (f_highest >= 0)
        result[at_lowest] = lowest[at_lowest]
        result[at_highest] = highest[at_highest]
        done |= at_lowest | at_highest
        # zeroin's own start: a zero at an end is returned as it is.
        a, b = lowest.copy(), highest.copy()
        fa, fb = f_lowest.copy(), f_highest.copy()
        c, fc = a.copy(), fa.copy()
        for mask, value in ((~done & (fa == 0.0), a), (~done & (fb == 0.0), b)):
            result[mask] = value[mask]
            done |= mask

        live = np.flatnonzero(~done)
        self._shrink(live, lowest[live], highest[live])
        for _ in range(ROOT_MAXITER + 1):
            if live.size == 0:
                break
            la, lb, lc = a[live], b[live], c[live]
            lfa, lfb, lfc = fa[live], fb[live], fc[live]
            previous_step = lb - la
            swap = np.abs(lfc) < np.abs(lfb)
            la = np.where(swap, lb, la)
            lb, lc = np.where(swap, lc, lb), np.where(swap, lb, lc)
            lfa = np.where(swap, lfb, lfa)
            lfb, lfc = np.where(swap, lfc, lfb), np.where(swap, lfb, lfc)
            tol_act = 2.0 * _DBL_EPSILON * np.abs(lb) + ROOT_TOL / 2.0
            new_step = (lc - lb) / 2.0
            finished = (np.abs(new_step) <= tol_act) | (lfb == 0.0)
            result[live[finished]] = lb[finished]
            interpolate = (
                ~finished & (np.abs(previous_step) >= tol_act) & (np.abs(lfa) > np.abs(lfb))
            )
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                cb = lc - lb
                secant = la == lc
                t1_secant = lfb / lfa
                p_secant = cb * t1_secant
                q_secant = 1.0 - t1_secant
                q0 = lfa / lfc
                t1 = lfb / lfc
                t2 = lfb / lfa
                p_inverse = t2 * (cb * q0 * (q0 - t1) - (lb - la) * (t1 - 1.0))
                q_inverse = (q0 - 1.0) * (t1 - 1.0) * (t2 - 1.0)
                p = np.where(secant, p_secant, p_inverse)
                q = np.where(secant, q_secant, q_inverse)
                positive = p > 0.0
                q = np.where(positive, -q, q)
                p = np.where(positive, p, -p)
                accept = (
                    interpolate
                    & (p < (0.75 * cb * q - np.abs(tol_act * q) / 2.0))
                    & (p < np.abs(previous_step * q / 2.0))
                )
                new_step = np.where(accept, p / q, new_step)
            tiny = np.abs(new_step) < tol_act
            new_step = np.where(tiny, np.where(new_step > 0.0, tol_act, -tol_act), new_step)
            la, lfa = lb, lfb
            lb = lb + new_step
            going = ~finished
            a[live], b[live], c[live] = la, lb, lc
            fa[live], fb[live], fc[live] = lfa, lfb, lfc
            done[live[finished]] = True
            live = live[going]
            if live.size == 0:
                break
            lb = lb[going]
            lfb_new = self._evaluate(live, lb)
            fb[live] = lfb_new
            lfc = fc[live]
            same_sign = ((lfb_new > 0) & (lfc > 0)) | ((lfb_new < 0) & (lfc < 0))
            c[live] = np.where(same_sign, a[live], c[live])
            fc[live] = np.where(same_sign, fa[live], lfc)
            # The bracket is now [b, c] in some order: b (the new point) replaced one end.
            lc = c[live]
            b_is_low = lc > lb
            dense = ~self.listed[live]
            replace_low = live[dense & b_is_low]
            replace_high = live[dense & ~b_is_low]
            self.lo_upto[replace_low] = self._last_upto[replace_low]
            self.lo_sum[replace_low] = self._last_upto_sum[replace_low]
            self.hi_below[replace_high] = self._last_below[replace_high]
            self.hi_sum[replace_high] = self._last_below_sum[replace_high]
            self._shrink(live, np.minimum(lb, lc), np.maximum(lb, lc))
        unfinished = ~done
        result[unfinished] = b[unfinished]
        return result


@dataclass(frozen=True)
class _Gathered:
    """The rows of :class:`_BroadcastSearch`'s per-lane arrays for one set of waiting lanes."""

    xv: np.ndarray
    half_pairs: np.ndarray
    half_correction: np.ndarray
    sigma: np.ndarray
    sigma_nonzero: bool
    quantile: np.ndarray
    wx: np.ndarray
    table_row: np.ndarray


class _BroadcastSearch(_LockstepSearch):
    """The same roots for few small pairs, where the array bookkeeping of a round (some sixty
    numpy calls on a handful of lanes) costs more than the arithmetic it vectorises.

    Each lane runs R's scalar Brent iteration itself (:func:`judge.stats._wilcox.zeroin_steps`,
    the steps of the reference, on Python floats); only the evaluations are batched: every round
    looks up, for each waiting lane's distinct shifted canary values, the baseline weight below
    and up to them in a rank table built once (see ``__init__``). The counts are those of the
    dense evaluation (baseline weight below or equal to each ``fl(v - d)``, times the canary
    multiplicities; padding weighs 0), so ``W(d)`` and the roots are the same numbers.
    """

    def __init__(
        self, samples: PairedSamples, rows: np.ndarray, confidence: float, correct: bool
    ) -> None:
        super().__init__(samples, rows, confidence, correct)
        width_x, width_y = int(samples.nd[rows].max()), int(samples.md[rows].max())
        self._xv = samples.xv[self.row, :width_x]
        # Multiplicities as floats: the sums below are of integers under 2**53, exact in
        # float64 in any order.
        self._wx = samples.wx[self.row, :width_x].astype(np.float64)
        yv = samples.yv[self.row, :width_y]
        self._gathered_key = b""
        self._gathered: _Gathered | None = None
        # Rank table: the distinct baseline values of all the pairs, sorted (``_union``), and
        # per lane the baseline weight below each of them (``_below``, row-major, one row of
        # len(_union) + 2 per lane: column g holds the weight of the lane's values of union
        # rank below g). Then the weight below (or up to) fl(v - d) is one search of the
        # union and one lookup, some ten numpy calls a round on a few hundred values instead
        # of comparing every shifted canary value with every baseline value (about 40 us a
        # round for 5 pairs of 30; the counts are the same integers).
        valid_y = np.arange(width_y)[None, :] < samples.md[self.row, None]
        self._union = np.unique(yv[valid_y])
        self._union_end = np.append(self._union, np.inf)
        columns = self._union.size + 2
        table = np.zeros((self.lanes, columns))
        ranks = np.searchsorted(self._union, yv) + 1
        table[np.arange(self.lanes)[:, None], np.where(valid_y, ranks, columns - 1)] = np.where(
            valid_y, samples.wy[self.row, :width_y], 0.0)
        self._below = np.cumsum(table, axis=1).ravel()
        self._table_row = np.arange(self.lanes) * columns

    def _gather(self, lanes: np.ndarray) -> _Gathered:
        """The waiting lanes' rows of the per-lane arrays, kept while the waiting set stays the
        same (most rounds: a lane leaves only when its root is found), which saves a round
        some ten fancy-indexing calls."""
        key = lanes.tobytes()
        if self._gathered is None or key != self._gathered_key:
            sigma = self._sigma_within[lanes]
            self._gathered = _Gathered(
                xv=self._xv[lanes],
                half_pairs=self.half_pairs[lanes],
                half_correction=self._half_correction[lanes],
                sigma=sigma,
                sigma_nonzero=bool(np.all(sigma != 0.0)),
                quantile=self.quantile[lanes],
                wx=self._wx[lanes],
                table_row=self._table_row[lanes][:, None],
            )
            self._gathered_key = key
        return self._gathered

    def _evaluate(self, lanes: np.ndarray, shift: np.ndarray) -> np.ndarray:
        gathered = self._gather(lanes)
        shifted = gathered.xv - shift[:, None]
        # Baseline weight below and up to each fl(v - d): the union rank g of fl(v - d) (the
        # number of union values below it, or up to it) picks the lane's cumulative weight.
        # The union's values are distinct: the rank up to fl(v - d) is the rank below it plus
        # one where fl(v - d) is a union value (``_union_end`` ends with +inf, never hit).
        rank = np.searchsorted(self._union, shifted, "left")
        at = gathered.table_row + rank
        below = self._below[at]
        upto = self._below[at + (self._union_end[rank] == shifted)]
        # Integers under 2**53 in float64: exact in any order; canary padding weighs 0. (The
        # reductions are ndarray.sum's and .any's without their Python wrappers; matched is
        # never negative, so its maximum is positive exactly where any is true.)
        weights = gathered.wx
        greater = np.add.reduce(below * weights, axis=1).astype(np.int64)
        matched = upto - below
        if not np.maximum.reduce(matched, axis=None) > 0.0:
            # A shift rarely lands a canary value exactly on a baseline value: then nothing
            # is tied across the samples, and sigma is the lane's constant.
            if not gathered.sigma_nonzero:
                untied: np.ndarray = (self._statistic_untied_across(lanes, greater)
                                      - gathered.quantile)
                return untied
            # _statistic_untied_across on the gathered rows; with every sigma nonzero its
            # masked division is the plain one (the same bits).
            dz = greater.astype(np.float64) - gathered.half_pairs
            corrected = dz - gathered.half_correction * np.sign(dz)
            fast: np.ndarray = corrected / gathered.sigma - gathered.quantile
            return fast
        equal = np.add.reduce(matched * weights, axis=1).astype(np.int64)
        ties = np.add.reduce(3.0 * weights * matched * (weights + matched), axis=1).astype(np.int64)
        value: np.ndarray = self._statistic(lanes, greater, equal, ties) - gathered.quantile
        return value

    def run(self) -> np.ndarray:
        everyone = np.arange(self.lanes)
        lowest = self.samples.lowest[self.row]
        highest = self.samples.highest[self.row]
        f_lowest = self._evaluate(everyone, lowest).tolist()
        f_highest = self._evaluate(everyone, highest).tolist()
        result = np.full(self.lanes, np.nan)
        searches: dict[int, Generator[float, float, float]] = {}
        waiting: dict[int, float] = {}
        for lane, (is_limit, low, high) in enumerate(
            zip(self.is_limit.tolist(), lowest.tolist(), highest.tolist(), strict=True)
        ):
            # R's root(): the limits return an end of the search interval when W does not cross.
            if is_limit and f_lowest[lane] <= 0:
                result[lane] = low
            elif is_limit and f_highest[lane] >= 0:
                result[lane] = high
            else:
                steps = zeroin_steps(
                    low, high, f_lowest[lane], f_highest[lane], ROOT_TOL, ROOT_MAXITER
                )
                try:
                    waiting[lane] = next(steps)
                    searches[lane] = steps
                except StopIteration as stop:
                    result[lane] = stop.value
        while waiting:
            lanes = np.fromiter(waiting, dtype=np.int64, count=len(waiting))
            shifts = np.fromiter(waiting.values(), dtype=np.float64, count=len(waiting))
            values = self._evaluate(lanes, shifts).tolist()
            for lane, value in zip(lanes.tolist(), values, strict=True):
                try:
                    waiting[lane] = searches[lane].send(value)
                except StopIteration as stop:
                    result[lane] = stop.value
                    del waiting[lane]
        return result
