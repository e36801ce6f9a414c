"""The compiled kernels behind :mod:`judge.stats._compiled` (imported only through it).

Most kernels count, for a shift d, where each of a pair's sorted distinct canary values v
falls among its sorted distinct baseline values: ``below`` (the number of baseline values
``< fl(v - d)``, what ``searchsorted(baseline, v - d, side="left")`` returns) only grows with
v, so a pointer that never moves back finds every position in one pass over both rows. That
merge is :func:`_merged_counts`, shared by the selection's counts, the rank statistics and
R's root search (:func:`_interval_roots`, which runs R's whole ``zeroin`` loop of each root in
the kernel, listing the undecided canary values once its bracket is narrow: the lock-step
search's numpy bookkeeping of every round had cost as much as its counts). The others list
and pick the differences inside a bracket, sort deviations, merge rows and tabulate distinct
values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

_DBL_EPSILON = float(np.finfo(np.float64).eps)


def _compile(function: Callable[..., Any]) -> Any:
    """``numba.njit`` with an on-disk cache where one can be written (else compiled per
    process; numba refuses to cache when it finds no writable place)."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return numba.njit(cache=False, nogil=True)(function)


def _baseline_position(ybuf: np.ndarray, j: int, value: float) -> int:
    """The number of baseline values below ``value``, counting from position ``j`` (which
    none after it lies below): four comparisons a step, so that the step's branch is taken
    rarely (about one baseline value lies between two canary values) and predicted well."""
    while True:
        step = (ybuf[j] < value) + (ybuf[j + 1] < value) + (ybuf[j + 2] < value) + (
            ybuf[j + 3] < value)
        j += step
        if step < 4:
            return j


baseline_position = _compile(_baseline_position)


def _padded_row(
    yv: np.ndarray, wy: np.ndarray, g: int, ny: int, ybuf: np.ndarray, wybuf: np.ndarray
) -> None:
    """Baseline row g as :func:`_merged_counts` reads it: its ny distinct values then four
    +inf in ``ybuf`` (so a step of :func:`_baseline_position` never reads past the row),
    their multiplicities then 0 in ``wybuf``."""
    ybuf[:ny] = yv[g, :ny]
    ybuf[ny:ny + 4] = np.inf
    wybuf[:ny] = wy[g, :ny]
    wybuf[ny] = 0


padded_row = _compile(_padded_row)


def _merge_value(
    xv: np.ndarray,
    wx: np.ndarray,
    ybuf: np.ndarray,
    wybuf: np.ndarray,
    cwy: np.ndarray,
    g: int,
    i: int,
    shift: float,
    j: int,
    below: np.ndarray,
    upto: np.ndarray,
) -> tuple[int, int, int, int]:
    """One step of :func:`_merged_counts`: canary value i's position (from ``j``), left in
    below[i] and upto[i], and its weights greater, equal and tie term."""
    value = xv[g, i] - shift
    j = baseline_position(ybuf, j, value)
    w = wx[g, i]
    below[i] = j
    if ybuf[j] == value:
        e = wybuf[j]
        upto[i] = j + 1
        return j, w * cwy[g, j], w * e, 3 * w * e * (w + e)
    upto[i] = j
    return j, w * cwy[g, j], 0, 0


merge_value = _compile(_merge_value)


def _merged_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    ybuf: np.ndarray,
    wybuf: np.ndarray,
    cwy: np.ndarray,
    g: int,
    nx: int,
    ny: int,
    shift: float,
    below: np.ndarray,
    upto: np.ndarray,
) -> tuple[int, int, int, int, int]:
    """For a shift d, the weight of the pairs with fl(v - d) > y (greater), == y (equal), the
    tie term 3we(w+e) of the equal ones, and each canary value's position below and up to
    fl(v - d) among the baseline values (below[i], upto[i]) and their sums: a merge of the
    row's fl(v - d) with the baseline row ``ybuf`` (:func:`_padded_row`).

    Early in a search fl(v - d) falls anywhere among the baseline values, and a plain
    merge's branch (one more baseline value below?) is mispredicted about once a value; here
    each step compares four baseline values at once (:func:`_baseline_position`), and the row
    is walked as two halves side by side, whose independent steps the processor overlaps (on
    1,440 values, about 4.5 ns a value against a plain merge's 7-10)."""
    greater = 0
    equal = 0
    ties = 0
    below_sum = 0
    upto_sum = 0
    half = nx // 2
    j = 0
    k = np.searchsorted(ybuf[:ny + 1], xv[g, half] - shift) if half > 0 else 0
    for i in range(half):
        j, more, same, tie = merge_value(xv, wx, ybuf, wybuf, cwy, g, i, shift, j, below, upto)
        greater += more
        equal += same
        ties += tie
        below_sum += j
        upto_sum += j + (same > 0)
        k, more, same, tie = merge_value(xv, wx, ybuf, wybuf, cwy, g, i + half, shift, k, below,
                                         upto)
        greater += more
        equal += same
        ties += tie
        below_sum += k
        upto_sum += k + (same > 0)
    if nx > 2 * half:
        k, more, same, tie = merge_value(xv, wx, ybuf, wybuf, cwy, g, nx - 1, shift, k, below,
                                         upto)
        greater += more
        equal += same
        ties += tie
        below_sum += k
        upto_sum += k + (same > 0)
    return greater, equal, ties, below_sum, upto_sum


merged_counts = _compile(_merged_counts)


def _selection_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    md: np.ndarray,
    wy: np.ndarray,
    cwy: np.ndarray,
    n: np.ndarray,
    m: np.ndarray,
    untied: np.ndarray,
    rows: np.ndarray,
    shifts: np.ndarray,
    below: np.ndarray,
    weighted: np.ndarray,
    distinct: np.ndarray,
) -> None:
    """``PairedSamples.count``: per (row r, shift p), below[r, p, :], #D <= d and #distinct,
    from :func:`_merged_counts` (the pairs with D <= d are those not greater: n m minus its
    weight greater)."""
    ybuf = np.empty(yv.shape[1] + 4)
    wybuf = np.empty(yv.shape[1] + 1, dtype=np.int64)
    upto = np.empty(xv.shape[1], dtype=np.int64)
    for r in range(rows.size):
        g = rows[r]
        nx = nd[g]
        ny = md[g]
        padded_row(yv, wy, g, ny, ybuf, wybuf)
        for p in range(shifts.shape[1]):
            greater, _, _, below_sum, _ = merged_counts(xv, wx, ybuf, wybuf, cwy, g, nx, ny,
                                                        shifts[r, p], below[r, p], upto)
            distinct[r, p] = nx * ny - below_sum
            weighted[r, p] = distinct[r, p] if untied[g] else n[g] * m[g] - greater


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
        total = 0
        for i in range(nd[g]):
            for j in range(first[s, i], end[s, i]):
                differences[k] = xv[g, i] - yv[g, j]
                weights[k] = wx[g, i] * wy[g, j]
                total += weights[k]
                k += 1
        target = need[s]
        if 1 <= target <= total and total <= 2 * length:
            # The picks are order statistics of the differences repeated by their weights,
            # which a partition finds without sorting the bracket (order statistics are
            # unique values, so the same ones the cumulative weights below give).
            if total > length:
                repeated = np.empty(total)
                k = 0
                for position in range(length):
                    for _ in range(weights[position]):
                        repeated[k] = differences[position]
                        k += 1
                differences = repeated
            ordered = np.partition(differences, target - 1)
            value[s] = ordered[target - 1]
            if target < total:
                following[s] = ordered[target:].min()
            continue
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


def _standardised(
    greater: int, equal: int, ties: int, within: int, n: int, m: int, correct: bool
) -> float:
    """R's standardised W from the counts: ``_lockstep._LockstepSearch._statistic``'s float
    operations in the same order (NaN where sigma is 0)."""
    nx = float(n)
    ny = float(m)
    dz = (float(greater) + 0.5 * float(equal)) - float(n * m) / 2.0
    inner = (nx + ny + 1.0) - float(within + ties) / ((nx + ny) * (nx + ny - 1.0))
    sigma = math.sqrt(max(nx * ny / 12.0 * inner, 0.0))
    sign = 1.0 if dz > 0.0 else (-1.0 if dz < 0.0 else 0.0)
    corrected = dz - (0.5 if correct else 0.0) * sign
    if sigma == 0.0:
        return math.nan
    standard: float = corrected / sigma
    return standard


standardised = _compile(_standardised)


def _bounded_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    ybuf: np.ndarray,
    wybuf: np.ndarray,
    cwy: np.ndarray,
    g: int,
    shift: float,
    active: np.ndarray,
    count: int,
    floor: np.ndarray,
    below: np.ndarray,
    upto: np.ndarray,
) -> tuple[int, int, int]:
    """:func:`_merged_counts` over the canary values ``active[:count]`` only. Value i's
    position is at least floor[i] (its position below fl(v - hi), the bracket's upper end),
    and at least the previous active value's: the merge's pointer starts at the larger."""
    greater = 0
    equal = 0
    ties = 0
    j = 0
    for k in range(count):
        i = active[k]
        if j < floor[i]:
            j = floor[i]
        j, more, same, tie = merge_value(xv, wx, ybuf, wybuf, cwy, g, i, shift, j, below, upto)
        greater += more
        equal += same
        ties += tie
    return greater, equal, ties


bounded_counts = _compile(_bounded_counts)


def _interval_roots(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    md: np.ndarray,
    wy: np.ndarray,
    cwy: np.ndarray,
    within: np.ndarray,
    n: np.ndarray,
    m: np.ndarray,
    lowest: np.ndarray,
    highest: np.ndarray,
    rows: np.ndarray,
    z_upper: float,
    correct: bool,
    tol: float,
    maxiter: int,
    roots: np.ndarray,
) -> None:
    """``_lockstep._LockstepSearch.run`` for the pairs ``rows``, one lane after another: R's
    ``zeroin`` (``_wilcox.zeroin_steps``, step for step) on each pair's low limit, high limit
    and estimate, left in roots[3r], roots[3r + 1], roots[3r + 2].

    W(d) is evaluated from counts, as in the lock-step search: every iterate lies inside the
    current bracket, so canary value i's position among the baseline values lies between
    floor[i] (its position below fl(v - hi)) and ceiling[i] (up to fl(v - lo)), and a value
    whose two are equal is decided for the rest of the search: its weight goes to ``fixed``
    and it leaves the active list. The first evaluations merge whole rows; later ones walk
    the few active values and the baseline values between their bounds."""
    eps = _DBL_EPSILON
    width = xv.shape[1]
    end_floor = np.empty(width, dtype=np.int64)
    end_ceiling = np.empty(width, dtype=np.int64)
    floor = np.empty(width, dtype=np.int64)
    ceiling = np.empty(width, dtype=np.int64)
    active = np.empty(width, dtype=np.int64)
    below = np.empty(width, dtype=np.int64)
    upto = np.empty(width, dtype=np.int64)
    ybuf = np.empty(yv.shape[1] + 4)
    wybuf = np.empty(yv.shape[1] + 1, dtype=np.int64)
    quantiles = np.array([z_upper, -z_upper, 0.0])
    for r in range(rows.size):
        g = rows[r]
        nx = nd[g]
        ny = md[g]
        size_n = n[g]
        size_m = m[g]
        tied = within[g]
        padded_row(yv, wy, g, ny, ybuf, wybuf)
        # The ends of the search interval, shared by the three lanes.
        low_counts = merged_counts(xv, wx, ybuf, wybuf, cwy, g, nx, ny, lowest[g], below,
                                   upto)
        end_ceiling[:nx] = upto[:nx]
        high_counts = merged_counts(xv, wx, ybuf, wybuf, cwy, g, nx, ny, highest[g], below,
                                    upto)
        end_floor[:nx] = below[:nx]
        # Listing the undecided values pays once the pairs between the bracket's ends are
        # about as few as a merge's steps.
        cap = nx + ny
        for lane in range(3):
            quantile = quantiles[lane]
            lane_correct = correct and lane < 2
            f_lowest = standardised(low_counts[0], low_counts[1], low_counts[2], tied,
                                    size_n, size_m, lane_correct) - quantile
            f_highest = standardised(high_counts[0], high_counts[1], high_counts[2], tied,
                                     size_n, size_m, lane_correct) - quantile
            slot = 3 * r + lane
            # R's root(): the limits return an end of the search interval when W does not
            # cross; zeroin itself returns an end where the function is zero.
            if lane < 2 and f_lowest <= 0:
                roots[slot] = lowest[g]
                continue
            if lane < 2 and f_highest >= 0:
                roots[slot] = highest[g]
                continue
            a = lowest[g]
            b = highest[g]
            fa = f_lowest
            fb = f_highest
            c = a
            fc = fa
            if fa == 0.0:
                roots[slot] = a
                continue
            if fb == 0.0:
                roots[slot] = b
                continue
            listed = False
            count = 0
            fixed = 0
            floor[:nx] = end_floor[:nx]
            ceiling[:nx] = end_ceiling[:nx]
            floor_sum = high_counts[3]
            ceiling_sum = low_counts[4]
            for _ in range(maxiter + 1):
                previous_step = b - a
                if abs(fc) < abs(fb):
                    a = b
                    b = c
                    c = a
                    fa = fb
                    fb = fc
                    fc = fa
                tol_act = 2.0 * eps * abs(b) + tol / 2.0
                new_step = (c - b) / 2.0
                if abs(new_step) <= tol_act or fb == 0.0:
                    break
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
                    if (p < (0.75 * cb * q - abs(tol_act * q) / 2.0)
                            and p < abs(previous_step * q / 2.0)):
                        new_step = p / q
                if abs(new_step) < tol_act:
                    new_step = tol_act if new_step > 0.0 else -tol_act
                a = b
                fa = fb
                b += new_step
                if listed:
                    greater, equal, ties = bounded_counts(xv, wx, ybuf, wybuf, cwy, g, b, active,
                                                          count, floor, below, upto)
                    greater += fixed
                else:
                    greater, equal, ties, below_sum, upto_sum = merged_counts(
                        xv, wx, ybuf, wybuf, cwy, g, nx, ny, b, below, upto)
                fb = standardised(greater, equal, ties, tied, size_n, size_m,
                                  lane_correct) - quantile
                if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
                    c = a
                    fc = fa
                # The bracket is [b, c] in some order: b's positions bound that end.
                b_is_low = c > b
                if listed:
                    kept = 0
                    for k in range(count):
                        i = active[k]
                        if b_is_low:
                            ceiling[i] = upto[i]
                        else:
                            floor[i] = below[i]
                        if ceiling[i] > floor[i]:
                            active[kept] = i
                            kept += 1
                        else:
                            fixed += wx[g, i] * cwy[g, floor[i]]
                    count = kept
                    continue
                # Whole rows: the new end's positions are the evaluation's (swapped in).
                if b_is_low:
                    ceiling, upto = upto, ceiling
                    ceiling_sum = upto_sum
                else:
                    floor, below = below, floor
                    floor_sum = below_sum
                if ceiling_sum - floor_sum <= cap:
                    listed = True
                    for i in range(nx):
                        if ceiling[i] > floor[i]:
                            active[count] = i
                            count += 1
                        else:
                            fixed += wx[g, i] * cwy[g, floor[i]]
            # Found, or R's maxiter spent: b either way, as zeroin returns.
            roots[slot] = b


interval_roots = _compile(_interval_roots)


def _rank_counts(
    xv: np.ndarray,
    wx: np.ndarray,
    nd: np.ndarray,
    yv: np.ndarray,
    md: np.ndarray,
    wy: np.ndarray,
    cwy: np.ndarray,
    wins: np.ndarray,
    ties: np.ndarray,
    cross: np.ndarray,
) -> None:
    """``_batch._rank_statistics``' counts for every pair g: the weight of pairs with canary >
    baseline (wins[g]), == (ties[g]), and the tie term 3we(w+e) of the equal ones (cross[g]):
    :func:`_merged_counts` at shift 0 (v - 0.0 is v)."""
    ybuf = np.empty(yv.shape[1] + 4)
    wybuf = np.empty(yv.shape[1] + 1, dtype=np.int64)
    below = np.empty(xv.shape[1], dtype=np.int64)
    upto = np.empty(xv.shape[1], dtype=np.int64)
    for g in range(nd.size):
        padded_row(yv, wy, g, md[g], ybuf, wybuf)
        wins[g], ties[g], cross[g], _, _ = merged_counts(xv, wx, ybuf, wybuf, cwy, g, nd[g],
                                                         md[g], 0.0, below, upto)


rank_counts = _compile(_rank_counts)


def _distinct_runs(
    sorted_rows: np.ndarray, sizes: np.ndarray, padding: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_selection._distinct_rows``: the runs of equal values of each sorted row's first
    sizes[g] entries, their values and lengths (padded with ``padding`` / 0 to the most runs
    of a row), and the number of runs per row. One pass counts the runs, a second fills."""
    rows = sizes.size
    distinct = np.zeros(rows, dtype=np.int64)
    for g in range(rows):
        for t in range(sizes[g]):
            if t == 0 or sorted_rows[g, t] != sorted_rows[g, t - 1]:
                distinct[g] += 1
    width = max(1, distinct.max()) if rows else 1
    values = np.full((rows, width), padding)
    counts = np.zeros((rows, width), dtype=np.int64)
    for g in range(rows):
        runs = 0
        for t in range(sizes[g]):
            value = sorted_rows[g, t]
            if t == 0 or value != sorted_rows[g, t - 1]:
                values[g, runs] = value
                runs += 1
            counts[g, runs - 1] += 1
    return values, counts, distinct


distinct_runs = _compile(_distinct_runs)
