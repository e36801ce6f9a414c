"""The compiled kernels behind :mod:`judge.stats._compiled` (imported only through it).

Each kernel walks a pair's sorted distinct canary values and its sorted distinct baseline
values together: ``below`` (the number of baseline values ``< fl(v - d)``, what
``searchsorted(baseline, v - d, side="left")`` returns) only grows with v, so a pointer that
never moves back finds every position in one pass over both rows. The kernels spell the
merge out each (``duplicates`` pairs them): a shared helper writing the positions first and
summing them in a second pass made the root search's counts 15-20% slower (0.20-0.22 s
against 0.17-0.18 on 500 x 1,440).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _compile(function: Callable[..., Any]) -> Any:
    """``numba.njit`` with an on-disk cache where one can be written (else compiled per
    process; numba refuses to cache when it finds no writable place)."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return numba.njit(cache=False, nogil=True)(function)


def _selection_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    md: np.ndarray,
    cwy: np.ndarray,
    m: np.ndarray,
    untied: np.ndarray,
    rows: np.ndarray,
    shifts: np.ndarray,
    below: np.ndarray,
    weighted: np.ndarray,
    distinct: np.ndarray,
) -> None:
    """``PairedSamples.count``: per (row r, shift p), below[r, p, :], #D <= d and #distinct."""
    for r in range(rows.size):
        g = rows[r]
        nx = nd[g]
        ny = md[g]
        for p in range(shifts.shape[1]):
            shift = shifts[r, p]
            j = 0
            total_below = 0
            total_weighted = 0
            for i in range(nx):
                value = xv[g, i] - shift
                while j < ny and yv[g, j] < value:
                    j += 1
                below[r, p, i] = j
                total_below += j
                total_weighted += wx[g, i] * (m[g] - cwy[g, j])
            distinct[r, p] = nx * ny - total_below
            weighted[r, p] = distinct[r, p] if untied[g] else total_weighted


selection_counts = _compile(_selection_counts)


def _bracket_picks(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    wy: np.ndarray,
    segment_group: np.ndarray,
    first: np.ndarray,
    end: np.ndarray,
    need: np.ndarray,
    value: np.ndarray,
    following: np.ndarray,
) -> None:
    """``_selection._list_candidates``: per bracket s of pair segment_group[s], the differences
    xv[i] - yv[j] for j in [first[s, i], end[s, i]), weighted by the product of the
    multiplicities; value[s] is the first difference (in sorted order) whose cumulative
    weight reaches need[s], following[s] the first reaching need[s] + 1 (NaN where none)."""
    for s in range(segment_group.size):
        g = segment_group[s]
        length = 0
        for i in range(nd[g]):
            if end[s, i] > first[s, i]:
                length += end[s, i] - first[s, i]
        value[s] = np.nan
        following[s] = np.nan
        if length == 0:
            continue
        differences = np.empty(length)
        weights = np.empty(length, dtype=np.int64)
        k = 0
        for i in range(nd[g]):
            for j in range(first[s, i], end[s, i]):
                differences[k] = xv[g, i] - yv[g, j]
                weights[k] = wx[g, i] * wy[g, j]
                k += 1
        order = np.argsort(differences)
        cumulative = 0
        for position in range(length):
            index = order[position]
            cumulative += weights[index]
            if np.isnan(value[s]) and cumulative >= need[s]:
                value[s] = differences[index]
            if cumulative >= need[s] + 1:
                following[s] = differences[index]
                break


bracket_picks = _compile(_bracket_picks)


def _root_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    md: np.ndarray,
    wy: np.ndarray,
    cwy: np.ndarray,
    untied: np.ndarray,
    lane_row: np.ndarray,
    lanes: np.ndarray,
    shifts: np.ndarray,
    greater: np.ndarray,
    equal: np.ndarray,
    ties: np.ndarray,
    last_below: np.ndarray,
    last_upto: np.ndarray,
    last_below_sum: np.ndarray,
    last_upto_sum: np.ndarray,
) -> None:
    """``_lockstep._LockstepSearch._dense``: per lane q, the weight of the pairs with
    fl(v - d) > y (greater), == y (equal), the tie term 3we(w+e) of the equal ones, and the
    positions below / up to fl(v - d) per canary value (left in last_* by lane).

    A plain merge: starting each value from the lane's position at its previous shift
    (galloping from there) measured slower, since the merge's pointer already moves about
    m / n steps a value and the branches of a gallop cost more than those steps."""
    for q in range(lanes.size):
        lane = lanes[q]
        g = lane_row[lane]
        nx = nd[g]
        ny = md[g]
        shift = shifts[q]
        j = 0
        below_sum = 0
        upto_sum = 0
        total_greater = 0
        total_equal = 0
        total_ties = 0
        for i in range(nx):
            shifted = xv[g, i] - shift
            while j < ny and yv[g, j] < shifted:
                j += 1
            w = wx[g, i]
            last_below[lane, i] = j
            below_sum += j
            total_greater += j if untied[g] else w * cwy[g, j]
            if j < ny and yv[g, j] == shifted:
                e = wy[g, j]
                total_equal += w * e
                total_ties += 3 * w * e * (w + e)
                last_upto[lane, i] = j + 1
                upto_sum += j + 1
            else:
                last_upto[lane, i] = j
                upto_sum += j
        greater[q] = total_greater
        equal[q] = total_equal
        ties[q] = total_ties
        last_below_sum[lane] = below_sum
        last_upto_sum[lane] = upto_sum


root_counts = _compile(_root_counts)


def _sorted_deviations(ordered: np.ndarray, median: np.ndarray, out: np.ndarray) -> None:
    """out[r] = ``np.sort(np.abs(ordered[r] - median[r]))`` for rows sorted ascending without
    NaN: the values below the median, read downwards, give |x - m| ascending, those from it
    upwards too, and one merge of the two orders them."""
    rows, n = ordered.shape
    for r in range(rows):
        m = median[r]
        j = np.searchsorted(ordered[r], m)
        i = j - 1
        for t in range(n):
            # abs(x - m) exactly as numpy computes it (x - m alone would keep -0.0 - 0.0's
            # sign).
            above = abs(ordered[r, j] - m) if j < n else np.inf
            below = abs(ordered[r, i] - m) if i >= 0 else np.inf
            if j < n and (i < 0 or above <= below):
                out[r, t] = above
                j += 1
            else:
                out[r, t] = below
                i -= 1


sorted_deviations = _compile(_sorted_deviations)


def _merge_rows(first: np.ndarray, second: np.ndarray, out: np.ndarray) -> None:
    """out[r] = the rows first[r] and second[r], each sorted ascending without NaN, merged (what
    a stable sort of their concatenation gives: on equal values first's come first)."""
    rows, n = first.shape
    m = second.shape[1]
    for r in range(rows):
        i = 0
        j = 0
        for t in range(n + m):
            if i < n and (j >= m or first[r, i] <= second[r, j]):
                out[r, t] = first[r, i]
                i += 1
            else:
                out[r, t] = second[r, j]
                j += 1


merge_rows = _compile(_merge_rows)
