"""The compiled merge counts (judge.stats._compiled, judge.stats._kernels) give what the numpy
paths give, to the bit, and are loaded only when a call is large enough to pay for them.

Each comparison runs the same call twice: once with the kernels forced on for every size (the
thresholds set to zero), once with ``CANARY_JUDGE_COMPILED=0``. The batches mix untied pairs,
rounded ones that tie across the samples, heavy count ties, separated samples and a constant
canary (``tests.support.stat_pairs``), and sizes large enough for ``PairedSamples.count``'s
per-pair path. Whole reports are compared too, in both judging modes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import judge.stats as stats_package
from judge.stats import _compiled, _lockstep
from judge.stats._lockstep import _LockstepSearch, lockstep_intervals
from judge.stats._selection import _BROADCAST_MAX_CELLS, select_differences
from judge.stats._wilcox import asymptotic_interval
from tests.support.stat_pairs import mixed_pairs, paired_samples


@pytest.fixture
def compiled_always(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Kernels loaded and used for calls of any size (the module's state restored after)."""
    monkeypatch.setattr(_compiled, "_state", {"kernels": None, "failed": False, "work": 0})
    monkeypatch.setattr(_compiled, "LOAD_WORK", 0)
    monkeypatch.setattr(_compiled, "USE_WORK", 0)
    monkeypatch.delenv("CANARY_JUDGE_COMPILED", raising=False)
    assert _compiled.load() is not None, "numba (the fast extra, in dev) must be installed"
    yield


def _both(monkeypatch: pytest.MonkeyPatch, call: Any) -> tuple[Any, Any]:
    """``call()`` with the kernels, then in numpy."""
    compiled = call()
    monkeypatch.setenv("CANARY_JUDGE_COMPILED", "0")
    numpy_result = call()
    monkeypatch.delenv("CANARY_JUDGE_COMPILED")
    return compiled, numpy_result


def _batch(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    generator = np.random.default_rng(seed)
    pairs = mixed_pairs(seed, count=18, largest=400, lognormal_sigma=0.5)
    # Untied pairs wide enough for the per-pair counting path, and one-point sides.
    pairs += [(generator.normal(0.3, 1, 300), generator.normal(0, 1, 280)) for _ in range(3)]
    pairs += [(np.array([0.5]), generator.normal(0, 1, 90)), (generator.normal(0, 1, 70),
                                                              np.array([2.0]))]
    return pairs


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("seed", [21, 22])
def test_selection_counts_are_numpys(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    pairs = _batch(seed)
    samples = paired_samples(pairs)
    rows = np.flatnonzero(samples.nd * samples.md > 0)
    generator = np.random.default_rng(seed)
    shifts = np.stack([
        np.concatenate([
            # Exact differences (values tie across the samples) and anywhere in the range.
            [pairs[row][0][0] - pairs[row][1][-1], np.median(pairs[row][0]) - pairs[row][1][0]],
            generator.uniform(samples.lowest[row] - 1, samples.highest[row] + 1, 5),
        ])
        for row in rows.tolist()
    ])
    assert int(samples.nd.max()) * int(samples.md.max()) > _BROADCAST_MAX_CELLS
    compiled, numpy_result = _both(monkeypatch, lambda: samples.count(shifts, rows))
    for ours, theirs in zip(compiled, numpy_result, strict=True):
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours, theirs)


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("seed", [23, 24])
def test_selected_differences_are_numpys_and_the_sorted_differences(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    pairs = _batch(seed)
    samples = paired_samples(pairs)
    total = (samples.n * samples.m)
    generator = np.random.default_rng(seed)
    ranks = np.stack([
        np.array([1, size, max(1, size // 2), *generator.integers(1, size + 1, 3)])
        for size in total.tolist()
    ])
    (value, following), (numpy_value, numpy_following) = _both(
        monkeypatch, lambda: select_differences(samples, ranks)
    )
    assert np.array_equal(value, numpy_value)
    assert np.array_equal(following, numpy_following)
    for row, (canary, baseline) in enumerate(pairs):
        differences = np.sort((canary[:, None] - baseline[None, :]).ravel())
        assert value[row].tolist() == differences[ranks[row] - 1].tolist()


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_merged_counts_are_the_dense_evaluations(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The kernels' one merge (``_kernels.merged_counts``: the root search's, the selection's
    and the rank statistics' counts) gives the lock-step search's numpy evaluation: greater,
    equal, tie term, every position below and up to fl(v - d), and their sums, also at shifts
    that are exact differences (fl(v - d) lands on baseline values)."""
    if kind == "untied":
        generator = np.random.default_rng(25)
        pairs = [(generator.normal(0.2, 1, 250), generator.normal(0, 1, 231)) for _ in range(6)]
    else:
        pairs = mixed_pairs(26, count=12, largest=300, lognormal_sigma=0.5)
    samples = paired_samples(pairs)
    generator = np.random.default_rng(27)
    monkeypatch.setenv("CANARY_JUDGE_COMPILED", "0")
    search = _LockstepSearch(samples, np.arange(len(pairs)), 0.98, True)
    lanes = generator.permutation(search.lanes)[: 2 * len(pairs)]
    shifts = np.array([
        pairs[lane // 3][0][lane % 7 % pairs[lane // 3][0].size]
        - pairs[lane // 3][1][lane % 5 % pairs[lane // 3][1].size]
        if lane % 2 else generator.uniform(samples.lowest[lane // 3], samples.highest[lane // 3])
        for lane in lanes.tolist()
    ])
    greater, equal, ties = search._dense(lanes, shifts)
    kernels = _compiled._state["kernels"]
    width_y = samples.yv.shape[1]
    ybuf, wybuf = np.empty(width_y + 4), np.empty(width_y + 1, dtype=np.int64)
    below = np.empty(samples.xv.shape[1], dtype=np.int64)
    upto = np.empty_like(below)
    for position, (lane, shift) in enumerate(zip(lanes.tolist(), shifts.tolist(), strict=True)):
        row = lane // 3
        nx, ny = int(samples.nd[row]), int(samples.md[row])
        kernels.padded_row(samples.yv, samples.wy, row, ny, ybuf, wybuf)
        counts = kernels.merged_counts(samples.xv, samples.wx, ybuf, wybuf, samples.cwy, row, nx,
                                       ny, shift, below, upto)
        assert counts == (greater[position], equal[position], ties[position],
                          search._last_below_sum[lane], search._last_upto_sum[lane])
        assert below[:nx].tolist() == search._last_below[lane, :nx].tolist()
        assert upto[:nx].tolist() == search._last_upto[lane, :nx].tolist()
    assert kind == "untied" or bool(equal.any())  # exact differences met values


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize(("confidence", "correct"), [(0.98, True), (0.9, False)])
def test_interval_roots_are_the_scalar_reference(confidence: float, correct: bool) -> None:
    pairs = _batch(28)
    samples = paired_samples(pairs)
    estimate, low, high = lockstep_intervals(samples, confidence, correct)
    for row, (canary, baseline) in enumerate(pairs):
        if np.ptp(canary) == 0 and np.ptp(baseline) == 0:
            continue
        expected = asymptotic_interval(np.sort(canary), np.sort(baseline), confidence, correct)
        assert [estimate[row], low[row], high[row]] == list(expected)


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("seed", [33, 34, 35])
@pytest.mark.parametrize(("confidence", "correct"), [(0.98, True), (0.9, False), (0.5, True)])
def test_the_compiled_interval_search_is_the_lockstep_searchs(
    monkeypatch: pytest.MonkeyPatch, seed: int, confidence: float, correct: bool
) -> None:
    """Each lane's whole Brent loop in one kernel (``_kernels.interval_roots``) lands on the
    lock-step search's roots (and so R's) to the bit, on every kind of pair: ties across and
    within the samples, separated samples (limits at an end), a one-point side, and sizes
    from 2 to 600 (the whole-row merges, the listing, odd rows for the two-halves merge)."""
    pairs = mixed_pairs(seed, count=30, largest=600, lognormal_sigma=0.4)
    generator = np.random.default_rng(seed)
    pairs += [(np.array([0.5]), generator.normal(0, 1, 301)),
              (generator.normal(0, 1, 3), generator.normal(0, 1, 2))]
    samples = paired_samples(pairs)
    rows = np.flatnonzero(samples.lowest < samples.highest)
    assert not _lockstep.fits_broadcast(samples, rows)
    calls: list[int] = []
    kernel = _compiled.load().interval_roots  # type: ignore[union-attr]

    def counted(*args: Any) -> None:
        calls.append(1)
        kernel(*args)

    monkeypatch.setattr(_compiled.load(), "interval_roots", counted)
    compiled, numpy_result = _both(
        monkeypatch, lambda: _lockstep._search(samples, rows, confidence, correct))
    assert calls == [1]  # the kernel ran once (the first call), numpy the second
    assert compiled.tobytes() == numpy_result.tobytes()
    for position, row in enumerate(rows.tolist()[:8]):
        canary, baseline = pairs[row]
        estimate, low, high = asymptotic_interval(
            np.sort(canary), np.sort(baseline), confidence, correct)
        assert compiled[3 * position: 3 * position + 3].tolist() == [low, high, estimate]


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("seed", [36, 37])
def test_rank_statistics_and_distinct_values_are_numpys(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    from judge.stats._batch import _rank_statistics
    from judge.stats._selection import _distinct_rows

    pairs = mixed_pairs(seed, count=24, largest=500, lognormal_sigma=0.3)
    samples = paired_samples(pairs)
    compiled, numpy_result = _both(monkeypatch, lambda: _rank_statistics(samples))
    for ours, theirs in zip(compiled, numpy_result, strict=True):
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()
    rows, sizes = samples.x_full, samples.n
    for padding in (0.0, np.inf):
        compiled, numpy_result = _both(
            monkeypatch, lambda padding=padding: _distinct_rows(rows, sizes, padding))
        for ours, theirs in zip(compiled, numpy_result, strict=True):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert ours.tobytes() == theirs.tobytes()


@pytest.mark.usefixtures("compiled_always")
def test_sorted_deviations_and_pooled_rows_are_numpys() -> None:
    from judge.stats.quantiles import _pooled_rows, _sorted_deviations

    generator = np.random.default_rng(32)
    for trial in range(300):
        rows, n, m = (int(v) for v in generator.integers(1, 60, size=3))
        rows = rows % 5 + 1
        x = np.round(generator.normal(0, 1, (rows, n)), int(generator.integers(0, 3)))
        y = np.round(generator.normal(0, 1, (rows, m)), 1)
        if trial % 3 == 0:  # signed zeros: |x - m| must not keep -0.0 - 0.0's sign
            x[:, : n // 2] = -0.0 if trial % 2 else 0.0
            y[:, : m // 2] = -0.0
        x, y = np.sort(x, axis=1), np.sort(y, axis=1)
        if trial % 7 == 0:
            x[:, 0], x[:, -1] = -np.inf, np.inf
        median, deviations = _sorted_deviations(x)
        with np.errstate(invalid="ignore"):  # inf - inf where the median is infinite
            expected = np.sort(np.abs(x - median[:, None]), axis=1)
        assert deviations.tobytes() == expected.tobytes()
        pooled = np.sort(np.concatenate([x, y], axis=1), axis=1, kind="stable")
        assert _pooled_rows(x, y).tobytes() == pooled.tobytes()
    # Rows with NaN (sorted last) stay in numpy, which orders them as it always has.
    with_nan = np.sort(np.array([[1.0, np.nan, 3.0, 0.5, 0.7]]), axis=1)
    median, deviations = _sorted_deviations(with_nan)
    expected = np.sort(np.abs(with_nan - median[:, None]), axis=1)
    assert median.tolist() == [1.0] and np.isnan(deviations[0, -1])
    assert np.array_equal(deviations, expected, equal_nan=True)
    assert np.array_equal(_pooled_rows(with_nan, with_nan), np.sort(
        np.concatenate([with_nan, with_nan], axis=1), axis=1, kind="stable"), equal_nan=True)


def _judgment(mode: str) -> dict[str, Any]:
    """A whole judgment of 30 latency-like metrics x 400 points (some shifted, rounded so
    values tie), as the report's JSON."""
    from judge.config import CanaryConfig
    from judge.judging import judge_series

    generator = np.random.default_rng(29)
    test: dict[str, object] = {"kind": "mann_whitney"}
    if mode == "default":
        test["tails"] = True
    config = CanaryConfig.from_dict({
        "name": "compiled", "mode": mode,
        "metrics": [{"name": f"m{k}", "direction": "increase", "test": test} for k in range(30)],
    })
    series = {}
    for k in range(30):
        baseline = np.round(np.exp(3 + 0.5 * generator.standard_normal(400)), 2)
        canary = np.round(np.exp(3 + 0.05 * (k % 3) + 0.5 * generator.standard_normal(400)), 2)
        series[f"m{k}"] = (baseline, canary)
    report: dict[str, Any] = judge_series(config, series).to_dict()
    return report


@pytest.mark.usefixtures("compiled_always")
@pytest.mark.parametrize("mode", ["default", "kayenta"])
def test_whole_reports_are_numpys(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    compiled, numpy_result = _both(monkeypatch, lambda: _judgment(mode))
    assert compiled == numpy_result


def test_small_calls_do_not_load_and_the_switch_turns_them_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_compiled, "_state", {"kernels": None, "failed": False, "work": 0})
    monkeypatch.delenv("CANARY_JUDGE_COMPILED", raising=False)
    # However many, calls below USE_WORK neither load nor count.
    for _ in range(10 * _compiled.LOAD_WORK // _compiled.USE_WORK):
        assert _compiled.kernels(_compiled.USE_WORK - 1) is None
    assert not _compiled.loaded() and _compiled._state["work"] == 0
    monkeypatch.setenv("CANARY_JUDGE_COMPILED", "0")
    assert not _compiled.enabled()
    assert _compiled.kernels(10 * _compiled.LOAD_WORK) is None
    assert _compiled._state["work"] == 0
    monkeypatch.delenv("CANARY_JUDGE_COMPILED")
    # Larger calls run in numpy until LOAD_WORK has been done there, then load the kernels.
    assert _compiled.kernels(_compiled.LOAD_WORK // 2) is None
    assert _compiled.kernels(_compiled.LOAD_WORK // 2 - 1) is None
    loaded = _compiled.kernels(_compiled.USE_WORK)
    assert loaded is not None
    # Once loaded, calls from USE_WORK on use them, smaller ones stay in numpy.
    assert _compiled.kernels(_compiled.USE_WORK) is loaded
    assert _compiled.kernels(_compiled.USE_WORK - 1) is None


def test_without_numba_everything_stays_in_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compiled, "_state", {"kernels": None, "failed": False, "work": 0})
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "judge.stats._kernels", raising=False)
    monkeypatch.delattr(stats_package, "_kernels", raising=False)  # import it afresh
    assert _compiled.kernels(10 * _compiled.LOAD_WORK) is None
    assert not _compiled.enabled()
    pairs = _batch(30)
    estimate, low, high = lockstep_intervals(paired_samples(pairs), 0.98, True)
    canary, baseline = pairs[0]
    assert [estimate[0], low[0], high[0]] == list(
        asymptotic_interval(np.sort(canary), np.sort(baseline), 0.98, True)
    )


def test_a_fresh_process_loads_the_kernels_for_a_large_call_only() -> None:
    script = (
        "import sys\n"
        "import numpy as np\n"
        "from judge.stats import _compiled\n"
        "from judge.stats._lockstep import lockstep_intervals\n"
        "from tests.support.stat_pairs import paired_samples\n"
        "rng = np.random.default_rng(31)\n"
        "small = paired_samples([(rng.normal(0, 1, 60), rng.normal(0, 1, 60))] * 3)\n"
        "lockstep_intervals(small, 0.98, True)\n"
        "print('numba' in sys.modules)\n"
        "large = paired_samples([(rng.normal(0, 1, 1440), rng.normal(0, 1, 1440))] * 200)\n"
        "lockstep_intervals(large, 0.98, True)\n"
        "print('numba' in sys.modules, _compiled._state['kernels'] is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.split("\n")[:2] == ["False", "True True"]
