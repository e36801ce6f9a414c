"""Order statistics of the pairwise differences canary_i - baseline_j, for many pairs at once.

Selecting the k-th smallest of the n*m differences never forms them: the number of differences
at most ``d`` is ``sum_i #{baseline_j >= canary_i - d}``, counted from the sorted samples with
``searchsorted`` in O(n log m) (the counting view of selection in X - Y, cf. Johnson & Mizoguchi
1978, "Selecting the k-th element in X + Y and X1 + X2 + ... + Xm", SIAM J. Comput. 7). A bracket
(lo, hi] with ``#{D <= lo} < k <= #{D <= hi}`` is narrowed for every (pair, target) together:

1. the first probes are quantiles of a random sample of differences, about three standard
   errors either side of the target rank (the start of Floyd & Rivest 1975, Algorithm 489);
2. then probes at ``k -+ delta`` by linear interpolation of the counts; where a round did not
   halve the bracket, its thirds instead (so every round makes progress);
3. once a bracket holds at most ``cap`` distinct (canary value, baseline value) pairs they are
   listed, sorted per bracket in one padded matrix, and the k-th is read off with weights.

Samples are reduced to distinct values with multiplicities first, so tied data (counts with many
zeros) costs as little as its number of distinct values. The random sample only steers the
search: the result is exact whatever it draws, and a fixed seed keeps the work reproducible.
"""

from __future__ import annotations

import numpy as np

from judge.stats import _compiled

#: Pairs whose distinct canary x distinct baseline values are at most this many are counted by
#: broadcasting (no Python loop); larger ones by one ``searchsorted`` call per pair and round.
_BROADCAST_MAX_CELLS = 4_096
_MAX_ROUNDS = 200
_SAMPLE_SIZE = 2_048
_SAMPLE_SEED = 20_240_601
#: Probes sit this fraction of the bracket's count either side of the interpolated target.
_INTERPOLATION_MARGIN = 0.005
#: A bracket is listed once it holds at most this many times (nd + md) distinct pairs, plus 64.
_CAP_FACTOR = 0.25
#: Listed differences of tied values are repeated by their weights (products of
#: multiplicities) unless that makes a bracket's list more than this many times the longest
#: list of distinct pairs.
_REPEAT_WEIGHTS_MAX_FACTOR = 2
#: Largest padded listing matrix (cells) sorted in one piece.
_LISTING_CHUNK_CELLS = 4_000_000


def _distinct_rows(
    sorted_rows: np.ndarray, sizes: np.ndarray, padding: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of each sorted row (its first ``sizes[g]`` entries) and their counts.

    Returns ``(values, counts, distinct)``: padded matrices (``padding`` / 0 past the end) and
    the number of distinct values per row. Vectorised on flat indices: runs start where a
    value differs from its left neighbour, and a run's count is the distance from its start
    to the next start or the row's end.
    """
    rows, width = sorted_rows.shape
    compiled = _compiled.kernels(int(sizes.sum()))
    if compiled is not None:
        runs: tuple[np.ndarray, np.ndarray, np.ndarray] = compiled.distinct_runs(
            sorted_rows, sizes.astype(np.int64), float(padding))
        return runs
    starts = np.arange(width)[None, :] < sizes[:, None]
    starts[:, 1:] &= sorted_rows[:, 1:] != sorted_rows[:, :-1]
    distinct = starts.sum(axis=1)
    width_distinct = max(int(distinct.max()), 1)
    flat_start = np.flatnonzero(starts)
    row = flat_start // width
    run = np.arange(flat_start.size) - (np.cumsum(distinct) - distinct)[row]
    cell = row * width_distinct + run
    values = np.full((rows, width_distinct), padding)
    values.reshape(-1)[cell] = sorted_rows.reshape(-1)[flat_start]
    next_start = np.empty_like(flat_start)
    next_start[:-1] = flat_start[1:]
    next_start[-1:] = rows * width
    counts = np.zeros((rows, width_distinct), dtype=np.int64)
    counts.reshape(-1)[cell] = np.minimum(next_start, row * width + sizes[row]) - flat_start
    return values, counts, distinct.astype(np.int64)


def tie_sums(counts: np.ndarray) -> np.ndarray:
    """Per row, the sum of t^3 - t over tie-group sizes t (zero counts add nothing)."""
    result: np.ndarray = (counts * counts * counts - counts).sum(axis=1)
    return result


class PairedSamples:
    """Sorted (canary, baseline) pairs as padded matrices of distinct values and multiplicities.

    Built from ``canary_rows``/``baseline_rows``: each row sorted ascending, padded past
    ``n``/``m`` with +inf. ``xv``/``wx``: distinct canary values and counts (padding: value 0,
    count 0); ``yv``/``wy``: the same for the baseline (padding +inf); ``cwy[g, j]``: number of
    baseline values below the j-th distinct one. ``within_tie_sum``: sum of t^3 - t over the
    ties inside each sample.
    """

    def __init__(
        self,
        canary_rows: np.ndarray,
        n: np.ndarray,
        baseline_rows: np.ndarray,
        m: np.ndarray,
    ) -> None:
        self.n = n.astype(np.int64)
        self.m = m.astype(np.int64)
        self.x_full = canary_rows
        self.y_full = baseline_rows
        self.xv, self.wx, self.nd = _distinct_rows(canary_rows, self.n, 0.0)
        self.yv, self.wy, self.md = _distinct_rows(baseline_rows, self.m, np.inf)
        self.untied = (self.nd == self.n) & (self.md == self.m)
        self.cwy = np.zeros((self.m.size, self.yv.shape[1] + 1), dtype=np.int64)
        np.cumsum(self.wy, axis=1, out=self.cwy[:, 1:])
        self.valid_x = np.arange(self.xv.shape[1])[None, :] < self.nd[:, None]
        self.within_tie_sum = tie_sums(self.wx) + tie_sums(self.wy)
        rows = np.arange(self.n.size)
        smallest_x, largest_x = canary_rows[:, 0], canary_rows[rows, self.n - 1]
        smallest_y, largest_y = baseline_rows[:, 0], baseline_rows[rows, self.m - 1]
        self.lowest = smallest_x - largest_y
        self.highest = largest_x - smallest_y

    def subset(self, rows: np.ndarray) -> PairedSamples:
        """The pairs ``rows`` only (padding widths are kept)."""
        chosen = object.__new__(PairedSamples)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(chosen, name, value[rows])
        return chosen

    def _rows(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Per pair, views of its distinct canary values, baseline values and canary counts."""
        cached: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] | None = getattr(
            self, "_views", None
        )
        if cached is None:
            cached = (
                [self.xv[row, :size] for row, size in enumerate(self.nd.tolist())],
                [self.yv[row, :size] for row, size in enumerate(self.md.tolist())],
                [self.wx[row, :size] for row, size in enumerate(self.nd.tolist())],
            )
            self._views = cached
        return cached

    def count(
        self, shifts: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts at shifts[r, p] for pair rows[r]: (#D <= d, #distinct pairs with D <= d, below).

        ``below[r, p, i]`` is the number of distinct baseline values < canary value i - d.
        """
        below = np.zeros((rows.size, shifts.shape[1], self.xv.shape[1]), dtype=np.int32)
        if int(self.nd[rows].max()) * int(self.md[rows].max()) <= _BROADCAST_MAX_CELLS:
            width_x, width_y = int(self.nd[rows].max()), int(self.md[rows].max())
            shifted = self.xv[rows, :width_x][:, None, :] - shifts[:, :, None]
            below[:, :, :width_x] = (
                self.yv[rows, :width_y][:, None, None, :] < shifted[..., None]
            ).sum(axis=3, dtype=np.int32)
            valid = self.valid_x[rows][:, None, :]
            distinct = np.where(valid, self.md[rows][:, None, None] - below, 0).sum(axis=2)
            cumulative = np.take_along_axis(self.cwy[rows][:, None, :], below, axis=2)
            weighted = (self.wx[rows][:, None, :] * (self.m[rows][:, None, None] - cumulative)).sum(
                axis=2
            )
            return weighted, distinct, below
        distinct = np.empty(shifts.shape, dtype=np.int64)
        weighted = np.empty(shifts.shape, dtype=np.int64)
        work = shifts.shape[1] * int((self.nd[rows] + self.md[rows]).sum())
        compiled = _compiled.kernels(work)
        if compiled is not None:
            compiled.selection_counts(
                self.xv, self.wx, self.nd, self.yv, self.md, self.wy, self.cwy, self.n, self.m,
                self.untied, rows, shifts, below, weighted, distinct,
            )
            return weighted, distinct, below
        # One searchsorted per pair: its rows are contiguous and stay in cache, which measured
        # faster than one search over all pairs (and keeps the comparisons exact); the sums
        # are cheaper here too than over the padded matrices.
        canary_rows, baseline_rows, canary_counts = self._rows()
        for position, row in enumerate(rows.tolist()):
            canary, baseline = canary_rows[row], baseline_rows[row]
            found = np.searchsorted(baseline, canary - shifts[position][:, None], side="left")
            below[position, :, : canary.size] = found
            distinct[position] = canary.size * baseline.size - found.sum(axis=1)
            if self.untied[row]:
                weighted[position] = distinct[position]
            else:
                weighted[position] = (
                    canary_counts[row] * (self.m[row] - self.cwy[row, found])
                ).sum(axis=1)
        return weighted, distinct, below


def select_differences(samples: PairedSamples, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranks[g, t]-th and (ranks[g, t] + 1)-th smallest differences of every pair g.

    Ranks are 1-based and between 1 and n*m; the second array is +inf where rank = n*m.
    """
    groups, targets = ranks.shape
    width_x = samples.xv.shape[1]
    lo = np.repeat(samples.lowest[:, None], targets, axis=1)
    hi = np.repeat(samples.highest[:, None], targets, axis=1)
    # lo starts "just below the smallest difference" (nothing is <= it), hi at the largest.
    count_lo = np.zeros((groups, targets), dtype=np.int64)
    distinct_lo = np.zeros((groups, targets), dtype=np.int64)
    count_hi = np.repeat((samples.n * samples.m)[:, None], targets, axis=1)
    distinct_hi = np.repeat((samples.nd * samples.md)[:, None], targets, axis=1)
    below_lo = np.broadcast_to(samples.md[:, None, None], (groups, targets, width_x)).astype(
        np.int32
    )
    below_hi = np.zeros((groups, targets, width_x), dtype=np.int32)
    cap = (_CAP_FACTOR * (samples.nd + samples.md) + 64).astype(np.int64)[:, None]
    previous_size = distinct_hi - distinct_lo
    for round_number in range(_MAX_ROUNDS):
        size = distinct_hi - distinct_lo
        middle = lo + (hi - lo) / 2.0
        # A bracket between adjacent floats cannot be split: it is listed as it is.
        active = (size > cap) & (lo < middle) & (middle < hi)
        rows = np.flatnonzero(active.any(axis=1))
        if rows.size == 0:
            break
        if round_number == 0:
            shifts = _sample_probes(samples, ranks, rows)
        else:
            per_pair = (count_hi - count_lo)[rows] / np.maximum(size[rows], 1)
            shifts = _interpolated_probes(
                lo[rows],
                hi[rows],
                count_lo[rows],
                count_hi[rows],
                ranks[rows],
                delta=cap[rows] * per_pair,
                stalled=2 * size[rows] > previous_size[rows],
            )
        previous_size = size
        counts, distinct_counts, below = samples.count(shifts, rows)
        # Every probe narrows every target of its pair that it falls inside, not only the one
        # it was aimed at: a pair's targets (the interval's ends and the median) lie close
        # together, so the first round's probes for one target cut the others' brackets about
        # fourfold and the second round's interpolation is then close enough to finish.
        for column in range(shifts.shape[1]):
            shift = shifts[:, column, None]
            count = counts[:, column, None]
            still = active[rows] & (shift > lo[rows]) & (shift < hi[rows])
            up = still & (count < ranks[rows])
            down = still & ~up
            for moved, bound, bound_count, bound_distinct, bound_below in (
                (up, lo, count_lo, distinct_lo, below_lo),
                (down, hi, count_hi, distinct_hi, below_hi),
            ):
                local, target = np.nonzero(moved)
                group = rows[local]
                bound[group, target] = shifts[local, column]
                bound_count[group, target] = counts[local, column]
                bound_distinct[group, target] = distinct_counts[local, column]
                bound_below[group, target] = below[local, column]
    return _list_candidates(samples, ranks, hi, count_lo, below_lo, below_hi)


def _sample_probes(samples: PairedSamples, ranks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Two starting probes per target: sample quantiles about 3 standard errors around it."""
    generator = np.random.default_rng(_SAMPLE_SEED)
    n = samples.n[rows][:, None]
    m = samples.m[rows][:, None]
    canary_index = (generator.random((rows.size, _SAMPLE_SIZE)) * n).astype(np.int64)
    baseline_index = (generator.random((rows.size, _SAMPLE_SIZE)) * m).astype(np.int64)
    sample = np.sort(
        np.take_along_axis(samples.x_full[rows], canary_index, axis=1)
        - np.take_along_axis(samples.y_full[rows], baseline_index, axis=1),
        axis=1,
    )
    fraction = (ranks[rows] - 0.5) / (n * m)
    centre = fraction * _SAMPLE_SIZE
    half = 3.0 * np.sqrt(_SAMPLE_SIZE * fraction * (1.0 - fraction)) + 2.0
    below = np.floor(centre - half).astype(np.int64)
    above = np.ceil(centre + half).astype(np.int64)
    # A position outside the sample gives a probe on the bracket's end, which is ignored.
    probe_below = np.where(
        below >= 0,
        np.take_along_axis(sample, np.clip(below, 0, _SAMPLE_SIZE - 1), axis=1),
        samples.lowest[rows][:, None],
    )
    probe_above = np.where(
        above < _SAMPLE_SIZE,
        np.take_along_axis(sample, np.clip(above, 0, _SAMPLE_SIZE - 1), axis=1),
        samples.highest[rows][:, None],
    )
    return np.concatenate([probe_below, probe_above], axis=1)


def _interpolated_probes(
    lo: np.ndarray,
    hi: np.ndarray,
    count_lo: np.ndarray,
    count_hi: np.ndarray,
    ranks: np.ndarray,
    delta: np.ndarray,
    stalled: np.ndarray,
) -> np.ndarray:
    """Probes at rank -+ delta by linear interpolation of the counts; thirds where stalled."""
    span = (count_hi - count_lo).astype(np.float64)
    width = hi - lo
    target = ranks - count_lo
    # Aim a little wider than the cap: the count is only locally linear in the shift.
    spread = np.maximum(delta / 4.0, _INTERPOLATION_MARGIN * span)
    first = np.where(stalled, 1.0 / 3.0, np.clip((target - spread) / span, 0.0, 1.0))
    second = np.where(stalled, 2.0 / 3.0, np.clip((target + spread) / span, 0.0, 1.0))
    probes = []
    for fraction in (first, second):
        probe = lo + fraction * width
        inside = (probe > lo) & (probe < hi)
        probes.append(np.where(inside, probe, lo + width / 2.0))
    return np.concatenate(probes, axis=1)


def _list_candidates(
    samples: PairedSamples,
    ranks: np.ndarray,
    hi: np.ndarray,
    count_lo: np.ndarray,
    below_lo: np.ndarray,
    below_hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """List the differences in each bracket, sort them per bracket and read off the ranks.

    In row i of pair g, the differences in (lo, hi] are canary_i - baseline_j for the distinct
    baseline values j in [below_hi, below_lo).
    """
    groups, targets = ranks.shape
    width_x = samples.xv.shape[1]
    segments = groups * targets
    lengths = np.where(samples.valid_x[:, None, :], np.maximum(below_lo - below_hi, 0), 0)
    lengths = lengths.reshape(segments, width_x).astype(np.int64)
    segment_length = lengths.sum(axis=1)
    first = below_hi.reshape(segments, width_x).astype(np.int64)
    need = (ranks - count_lo).reshape(segments)
    value = np.full(segments, np.nan)
    following = np.full(segments, np.nan)
    compiled = _compiled.kernels(int(segment_length.sum()))
    if compiled is not None:
        compiled.bracket_picks(
            samples.xv, samples.wx, samples.nd, samples.yv, samples.wy,
            np.repeat(np.arange(groups), targets), first,
            below_lo.reshape(segments, width_x).astype(np.int64), need, value, following,
        )
    else:
        chunk = max(1, _LISTING_CHUNK_CELLS // max(int(segment_length.max()), 1))
        for start in range(0, segments, chunk):
            part = np.arange(start, min(start + chunk, segments))
            _pick(samples, targets, part, lengths[part], first[part], need[part], value,
                  following)
    value = value.reshape(groups, targets)
    following = following.reshape(groups, targets)
    # An empty bracket cannot hold the rank (it only happens when lo and hi are adjacent
    # floats); its end is then the answer.
    value = np.where(np.isnan(value), hi, value)
    # The next rank lies above hi when the bracket ends at the wanted rank.
    outside = np.isnan(following)
    if outside.any():
        following = np.where(outside, _smallest_above(samples, below_hi), following)
    return value, following


def _pick(
    samples: PairedSamples,
    targets: int,
    segment: np.ndarray,
    lengths: np.ndarray,
    first: np.ndarray,
    need: np.ndarray,
    value: np.ndarray,
    following: np.ndarray,
) -> None:
    """Fill value/following for a chunk of brackets from a padded, row-sorted matrix.

    A difference of tied values stands for as many pairs as the product of their
    multiplicities (its weight). Where the weights add up to little more than the listed
    differences, each is repeated that many times and a plain row sort reads off the ranks;
    otherwise (few distinct values, many ties: counts) the weights are carried through the
    sort and accumulated.
    """
    width_x = lengths.shape[1]
    flat_lengths = lengths.ravel()
    cells = np.flatnonzero(flat_lengths)
    if cells.size == 0:
        return
    cell_lengths = flat_lengths[cells]
    total = int(cell_lengths.sum())
    cell_local, cell_row = np.divmod(cells, width_x)
    cell_start = np.cumsum(cell_lengths) - cell_lengths
    cell_group = segment[cell_local] // targets
    # Flat positions in the padded value matrices: one gather each instead of 2-d indexing.
    canary_at = np.repeat(cell_group * samples.xv.shape[1] + cell_row, cell_lengths)
    baseline_at = np.repeat(cell_group * samples.yv.shape[1] + first.ravel()[cells] - cell_start,
                            cell_lengths) + np.arange(total)
    local = np.repeat(cell_local, cell_lengths)
    differences = samples.xv.ravel()[canary_at] - samples.yv.ravel()[baseline_at]
    weights = samples.wx.ravel()[canary_at] * samples.wy.ravel()[baseline_at]
    listed_length = np.bincount(local, minlength=segment.size)
    segment_length = listed_length
    carried = False
    if weights.max() > 1:
        weighted_length = np.bincount(local, weights=weights, minlength=segment.size)
        # Repeating must not widen the padded matrix much beyond what the caller sized.
        carried = weighted_length.max() > _REPEAT_WEIGHTS_MAX_FACTOR * listed_length.max()
        if not carried:
            differences = np.repeat(differences, weights)
            local = np.repeat(local, weights)
            segment_length = np.bincount(local, minlength=segment.size)
    segment_start = np.cumsum(segment_length) - segment_length
    position = np.arange(local.size) - segment_start[local]
    width = int(segment_length.max())
    matrix = np.full((segment.size, width), np.inf)
    matrix[local, position] = differences
    nonempty = segment_length > 0
    index = np.clip(need - 1, 0, None)
    index_next = np.clip(need, 0, None)
    if not carried:
        matrix.sort(axis=1)
    else:
        weight_matrix = np.zeros((segment.size, width), dtype=np.int64)
        weight_matrix[local, position] = weights
        order = np.argsort(matrix, axis=1)
        matrix = np.take_along_axis(matrix, order, axis=1)
        cumulative = np.cumsum(np.take_along_axis(weight_matrix, order, axis=1), axis=1)
        index = (cumulative < need[:, None]).sum(axis=1)
        index_next = (cumulative < need[:, None] + 1).sum(axis=1)
    chosen = np.take_along_axis(matrix, np.minimum(index, width - 1)[:, None], axis=1)[:, 0]
    value[segment] = np.where(nonempty, chosen, np.nan)
    chosen_next = np.take_along_axis(matrix, np.minimum(index_next, width - 1)[:, None], axis=1)
    following[segment] = np.where(nonempty & (index_next < segment_length), chosen_next[:, 0],
                                  np.nan)


def _smallest_above(samples: PairedSamples, below_hi: np.ndarray) -> np.ndarray:
    """Smallest difference above each bracket: min over rows of canary_i - baseline[below - 1]."""
    has_smaller = (below_hi > 0) & samples.valid_x[:, None, :]
    previous = np.clip(below_hi.astype(np.int64) - 1, 0, None)
    baseline = np.take_along_axis(samples.yv[:, None, :], previous, axis=2)
    differences = np.where(has_smaller, samples.xv[:, None, :] - baseline, np.inf)
    result: np.ndarray = differences.min(axis=2)
    return result
