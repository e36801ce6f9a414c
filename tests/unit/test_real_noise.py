"""Real-noise canaries (``judge.lab.real_noise``) and a reduced run of the real-noise benchmark
(``benchmarks/bench_real_noise.py``, issue 13).

The data is ``../shared/data/real-series`` (or ``$CANARY_JUDGE_REAL_SERIES``): missing, these
tests skip, or fail with ``CI=true``. The reduced run (10 canaries per kind, flavour and split,
3 of them also in sequential mode; about 30 s on 2 cores) is deterministic: its Kayenta-mode
counts are pinned (:data:`KAYENTA_REDUCED_RUN`), because nothing may change Kayenta mode's
numbers. The default judge's targets from issue 13 are :data:`TARGETS`, checked by a test that
is expected to fail until the judge meets them.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

import judge
from judge.config import JudgeMode, MannWhitneyTest, RateRatioTest
from judge.lab.real_noise import (
    BENCHMARK_SEED,
    EXPECTED,
    HELD_OUT_SERIES,
    KIND_DESCRIPTIONS,
    SERIES_ROLES,
    CanarySpec,
    Expected,
    Flavour,
    Kind,
    RealSeriesSet,
    Split,
    benchmark_config,
    block_bootstrap,
    default_series_path,
    draw_canary,
    labelled_canary,
    level_metric_names,
    load_real_series,
    split_neighbours,
    window_iqr,
    with_overrides,
)

SEED = BENCHMARK_SEED
"""The benchmark's own seed: the reduced run and the spot checks judge canaries of its tables."""
REGRESSIONS = tuple(kind for kind in Kind if EXPECTED[kind] is Expected.STOP)

TARGETS: dict[str, Any] = {
    # Issue 13, "Targets": default mode, 60 points a side, the config the docs lead to
    # (judge.lab.real_noise.benchmark_config), each flavour, tuning and held-out series alike.
    # Fixed horizon:
    "fixed_healthy_failed_max": 0.005,  # healthy canaries failed outright, low traffic included
    "fixed_healthy_not_promoted_max": 0.03,  # healthy canaries at normal traffic not promoted
    "fixed_regression_stopped_min": 0.90,  # each regression kind not promoted
    "fixed_regression_at_least_kayenta": True,  # ... and at least as often as Kayenta mode
    # Sequential mode, polled every 5 points up to 60, ``final`` on the last poll:
    "sequential_healthy_promoted_min": 0.97,  # healthy at normal traffic promoted by the end
    "sequential_healthy_failed_max": 0.01,  # healthy canaries failed, low traffic included
    "sequential_regression_stopped_min": 0.90,  # each regression kind not promoted
    "sequential_median_points_max": 20,  # ... decided at a median of at most 20 points for:
    "sequential_median_kinds": ("shift", "spread", "tail", "error_jump"),
    # Sampling error: a reduced run violates a target only when the target is outside the
    # Wilson interval at this confidence (many checks: each must rarely misfire by chance).
    "check_confidence": 0.999,
}


# -- data and the benchmark module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_series() -> RealSeriesSet:
    path = default_series_path()
    if not path.is_dir():
        message = (f"real series not found at {path} (../shared/data/real-series, or set "
                   "CANARY_JUDGE_REAL_SERIES)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return load_real_series(path)


@pytest.fixture(scope="module")
def tuning(real_series: RealSeriesSet) -> RealSeriesSet:
    return real_series.select(Split.TUNING)


def _load_bench(name: str = "bench_real_noise") -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module is executed
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load_bench()


REDUCED_CANARIES = 10
REDUCED_SEQUENTIAL = 3


@pytest.fixture(scope="module")
def reduced_run(bench: ModuleType, real_series: RealSeriesSet) -> list[Any]:
    """Every kind, flavour and split: 10 canaries each, 3 also in sequential mode, in 2
    processes (each canary has its own seed: the same outcomes whatever the number of
    processes). The same canaries as ``bench_real_noise.py --canaries 10
    --sequential-canaries 3``."""
    settings = bench.Settings(canaries=REDUCED_CANARIES, sequential_canaries=REDUCED_SEQUENTIAL,
                              seed=SEED, jobs=2)
    outcomes: list[Any] = bench.run(settings, path=str(default_series_path()))
    return outcomes


# -- the series ---------------------------------------------------------------------------------


def test_every_series_loads_with_its_role(real_series: RealSeriesSet) -> None:
    assert {s.name for s in real_series.level} | {s.name for s in real_series.traffic} == set(
        SERIES_ROLES)
    for series in (*real_series.level, *real_series.traffic):
        assert series.values.size > 1000
        assert np.isfinite(series.values).all()
        assert not series.values.flags.writeable


def test_held_out_series_never_appear_in_the_tuning_set(real_series: RealSeriesSet) -> None:
    tuning = real_series.select(Split.TUNING)
    held_out = real_series.select(Split.HELD_OUT)
    assert held_out.names() == HELD_OUT_SERIES
    assert not tuning.names() & HELD_OUT_SERIES
    assert tuning.names() | held_out.names() == set(SERIES_ROLES)
    for index in range(30):
        for flavour in Flavour:
            canary = labelled_canary(tuning, Kind.SHIFT, flavour, seed=SEED, index=index)
            assert canary.label.split is Split.TUNING
            assert {w.series for w in canary.label.windows} <= tuning.names()
            canary = labelled_canary(held_out, Kind.SHIFT, flavour, seed=SEED, index=index)
            assert {w.series for w in canary.label.windows} <= HELD_OUT_SERIES


def test_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CANARY_JUDGE_REAL_SERIES"):
        load_real_series(tmp_path)


def test_env_var_overrides_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANARY_JUDGE_REAL_SERIES", str(tmp_path))
    assert default_series_path() == tmp_path
    monkeypatch.delenv("CANARY_JUDGE_REAL_SERIES")
    assert default_series_path().parts[-3:] == ("shared", "data", "real-series")


# -- drawing pairs ------------------------------------------------------------------------------


def test_neighbour_split_gives_one_of_each_pair_to_each_side() -> None:
    window = np.arange(200, dtype=np.float64)
    baseline, canary = split_neighbours(window, np.random.default_rng(1))
    assert baseline.size == canary.size == 100
    pairs = np.sort(np.stack([baseline, canary], axis=1), axis=1)
    np.testing.assert_array_equal(pairs, window.reshape(-1, 2))
    # By a coin per pair, not all even points to one side (period-2 patterns would separate
    # the sides): both sides get even and odd positions.
    share_even = np.mean(baseline % 2 == 0)
    assert 0.3 < share_even < 0.7
    with pytest.raises(ValueError, match="even number"):
        split_neighbours(window[:5], np.random.default_rng(1))


def test_block_bootstrap_keeps_runs_of_consecutive_points() -> None:
    window = np.arange(240, dtype=np.float64)
    side = block_bootstrap(window, 60, 10, np.random.default_rng(2))
    assert side.size == 60
    runs = side.reshape(6, 10)
    np.testing.assert_array_equal(np.diff(runs, axis=1), 1.0)
    assert len({float(r[0]) for r in runs}) > 1
    odd = block_bootstrap(window, 55, 10, np.random.default_rng(2))
    assert odd.size == 55


def _rolling_mean_correlations(series: RealSeriesSet, flavour: Flavour) -> list[float]:
    correlations = []
    for index in range(30):
        canary = labelled_canary(series, Kind.HEALTHY, flavour, seed=SEED, index=index)
        for metric in level_metric_names():
            b = canary.baseline[metric].rolling(10).mean().dropna()
            c = canary.canary[metric].rolling(10).mean().dropna()
            if b.std() > 0 and c.std() > 0:
                correlations.append(float(np.corrcoef(b, c)[0, 1]))
    return correlations


def test_concurrent_sides_share_the_slow_swings_and_independent_ones_do_not(
    tuning: RealSeriesSet,
) -> None:
    # 10-point rolling means follow the load's slow swings: the same on both sides of a
    # concurrent canary (median correlation about 0.8 over 30 canaries x 9 metrics), unrelated
    # between independently bootstrapped sides (about 0).
    concurrent = _rolling_mean_correlations(tuning, Flavour.CONCURRENT)
    independent = _rolling_mean_correlations(tuning, Flavour.INDEPENDENT)
    assert len(concurrent) > 200 and len(independent) > 200
    assert np.median(concurrent) > 0.6
    assert abs(np.median(independent)) < 0.25


def test_windows_are_the_real_series(tuning: RealSeriesSet, real_series: RealSeriesSet) -> None:
    by_name = {s.name: s.values for s in (*real_series.level, *real_series.traffic)}
    canary = labelled_canary(tuning, Kind.HEALTHY, Flavour.CONCURRENT, seed=SEED, index=3)
    for metric in level_metric_names():
        window = canary.label.window(metric)
        assert window.length == 120
        points = by_name[window.series][window.start:window.start + window.length]
        assert window.iqr == pytest.approx(window_iqr(points))
        both = np.sort(np.concatenate([canary.baseline[metric], canary.canary[metric]]))
        np.testing.assert_array_equal(both, np.sort(points))
    independent = labelled_canary(tuning, Kind.HEALTHY, Flavour.INDEPENDENT, seed=SEED, index=3)
    window = independent.label.window("level_1")
    assert window.length == 240
    points = by_name[window.series][window.start:window.start + window.length]
    assert set(independent.canary["level_1"]) <= set(points)


# -- labelled canaries --------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", list(Flavour))
@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_its_label(tuning: RealSeriesSet, kind: Kind, flavour: Flavour) -> None:
    canary = labelled_canary(tuning, kind, flavour, seed=SEED, index=0)
    label = canary.label
    assert (label.kind, label.flavour, label.split) == (kind, flavour, Split.TUNING)
    assert label.expected is EXPECTED[kind]
    names = level_metric_names()
    if kind in (Kind.HEALTHY, Kind.HEALTHY_LOW_TRAFFIC):
        assert label.expected is Expected.PROMOTE and label.target is None
    elif kind is Kind.ERROR_JUMP:
        assert label.target == "errors"
        assert (label.baseline_error_rate, label.canary_error_rate) == (0.0005, 0.01)
    else:
        assert label.target in names and label.window(label.target).iqr > 0
    assert (label.injected == "") == (kind is Kind.HEALTHY)
    columns = [*names, "requests", "errors"]
    for side in (canary.baseline, canary.canary):
        assert list(side.columns) == columns
        assert isinstance(side.index, pd.DatetimeIndex) and len(side) == 60
        assert side.index.freqstr in ("min", "T")
    # Both flavours give both sides the same one-minute grid (the flavour is in the label).
    assert canary.baseline.index.equals(canary.canary.index)
    config = benchmark_config()
    assert sorted(m.name for m in config.metrics) == sorted(columns)


def test_the_same_seed_gives_the_same_canary(tuning: RealSeriesSet) -> None:
    first = labelled_canary(tuning, Kind.TAIL, Flavour.INDEPENDENT, seed=SEED, index=4)
    again = labelled_canary(tuning, Kind.TAIL, Flavour.INDEPENDENT, seed=SEED, index=4)
    other = labelled_canary(tuning, Kind.TAIL, Flavour.INDEPENDENT, seed=SEED, index=5)
    pd.testing.assert_frame_equal(first.canary, again.canary)
    assert first.label == again.label
    assert not first.canary.equals(other.canary)


def _pair(tuning: RealSeriesSet, kind: Kind, index: int,
          flavour: Flavour = Flavour.CONCURRENT) -> tuple[Any, Any]:
    """Canary ``index`` of ``kind`` and the healthy canary it was made from."""
    return (labelled_canary(tuning, kind, flavour, seed=SEED, index=index),
            labelled_canary(tuning, Kind.HEALTHY, flavour, seed=SEED, index=index))


@pytest.mark.parametrize("kind", [k for k in REGRESSIONS if k is not Kind.ERROR_JUMP])
def test_a_regression_changes_only_the_canarys_target(tuning: RealSeriesSet, kind: Kind) -> None:
    for index in range(5):
        regressed, healthy = _pair(tuning, kind, index)
        pd.testing.assert_frame_equal(regressed.baseline, healthy.baseline)
        others = [c for c in healthy.canary.columns if c != regressed.label.target]
        pd.testing.assert_frame_equal(regressed.canary[others], healthy.canary[others])


def test_shift_moves_the_canarys_median_by_one_iqr(tuning: RealSeriesSet) -> None:
    for index in range(10):
        shifted, healthy = _pair(tuning, Kind.SHIFT, index, Flavour.INDEPENDENT)
        target = shifted.label.target
        assert target is not None
        iqr = shifted.label.window(target).iqr
        moved = np.median(shifted.canary[target]) - np.median(healthy.canary[target])
        assert moved == pytest.approx(iqr, rel=1e-9)


def test_spread_doubles_the_upper_half_and_keeps_the_median(tuning: RealSeriesSet) -> None:
    for index in range(10):
        wide, healthy = _pair(tuning, Kind.SPREAD, index)
        target = wide.label.target
        before, after = healthy.canary[target], wide.canary[target]
        assert np.median(after) == pytest.approx(np.median(before))
        upper_before = np.percentile(before, 90) - np.median(before)
        upper_after = np.percentile(after, 90) - np.median(after)
        assert upper_after == pytest.approx(2 * upper_before)
        assert (after >= 0).all() or (before < 0).any()


def test_tail_moves_a_tenth_of_the_points_by_three_iqr(tuning: RealSeriesSet) -> None:
    for index in range(10):
        tail, healthy = _pair(tuning, Kind.TAIL, index)
        target = tail.label.target
        change = (tail.canary[target] - healthy.canary[target]).to_numpy()
        iqr = tail.label.window(target).iqr
        moved = change[change != 0]
        assert moved.size == 6
        np.testing.assert_allclose(moved, 3 * iqr)


def test_ramp_rises_linearly_to_one_and_a_half_iqr(tuning: RealSeriesSet) -> None:
    ramp, healthy = _pair(tuning, Kind.RAMP, 2)
    target = ramp.label.target
    change = (ramp.canary[target] - healthy.canary[target]).to_numpy()
    np.testing.assert_allclose(change, np.linspace(0, 1.5 * ramp.label.window(target).iqr, 60))


def test_low_load_shift_hits_only_the_low_traffic_minutes(tuning: RealSeriesSet) -> None:
    for index in range(5):
        shifted, healthy = _pair(tuning, Kind.LOW_LOAD_SHIFT, index)
        target = shifted.label.target
        change = (shifted.canary[target] - healthy.canary[target]).to_numpy()
        requests = healthy.canary["requests"].to_numpy()
        low = requests < np.median(requests)
        np.testing.assert_allclose(change[low], 2 * shifted.label.window(target).iqr)
        assert (change[~low] == 0).all()


def test_flat_and_missing_metrics(tuning: RealSeriesSet) -> None:
    flat = labelled_canary(tuning, Kind.FLAT, Flavour.CONCURRENT, seed=SEED, index=1)
    assert (flat.canary[flat.label.target] == 0).all()
    missing = labelled_canary(tuning, Kind.MISSING, Flavour.CONCURRENT, seed=SEED, index=1)
    assert missing.canary[missing.label.target].isna().all()
    assert missing.baseline[missing.label.target].notna().all()


def _pooled(series: RealSeriesSet, kind: Kind, count: int) -> dict[str, Any]:
    errors = {"baseline": 0.0, "canary": 0.0}
    requests = {"baseline": 0.0, "canary": 0.0}
    pearson, cells, zero_rate_errors, rates = 0.0, 0, 0.0, []
    for index in range(count):
        canary = labelled_canary(series, kind, Flavour.CONCURRENT, seed=SEED, index=index)
        rates.append(canary.label.baseline_error_rate)
        for side_name, side in (("baseline", canary.baseline), ("canary", canary.canary)):
            e, n = side["errors"].to_numpy(), side["requests"].to_numpy()
            assert (e == np.round(e)).all() and (e >= 0).all() and (e <= n).all()
            errors[side_name] += e.sum()
            requests[side_name] += n.sum()
            rate = (canary.label.baseline_error_rate if side_name == "baseline"
                    else canary.label.canary_error_rate)
            if rate == 0:
                zero_rate_errors += e.sum()
            elif kind is Kind.HEALTHY:
                # Pearson chi-square of per-minute counts against Binomial(requests, rate)
                expected = n * rate
                ok = expected > 0
                pearson += float(np.sum((e[ok] - expected[ok]) ** 2
                                        / (expected[ok] * (1 - rate))))
                cells += int(ok.sum())
    return {"errors": errors, "requests": requests, "pearson": pearson, "cells": cells,
            "zero_rate_errors": zero_rate_errors, "rates": rates}


def test_error_counts_are_binomial_draws(tuning: RealSeriesSet) -> None:
    healthy = _pooled(tuning, Kind.HEALTHY, 120)
    # Rate 0 for about half the healthy canaries, and then no error at all.
    assert 0.35 < np.mean(np.asarray(healthy["rates"]) == 0) < 0.65
    assert healthy["zero_rate_errors"] == 0
    # Per-minute counts are binomial: Pearson chi-square / cells near 1 (no overdispersion).
    assert 0.85 < healthy["pearson"] / healthy["cells"] < 1.15
    # About 65 requests a minute, ~3,900 a side.
    assert 2500 < healthy["requests"]["canary"] / 120 < 6000
    jump = _pooled(tuning, Kind.ERROR_JUMP, 60)
    canary_rate = jump["errors"]["canary"] / jump["requests"]["canary"]
    baseline_rate = jump["errors"]["baseline"] / jump["requests"]["baseline"]
    assert canary_rate == pytest.approx(0.01, rel=0.1)
    assert baseline_rate == pytest.approx(0.0005, rel=0.3)


def test_low_traffic_thins_requests_twentyfold(tuning: RealSeriesSet) -> None:
    for index in range(5):
        low, healthy = _pair(tuning, Kind.HEALTHY_LOW_TRAFFIC, index)
        for side_low, side in ((low.baseline, healthy.baseline), (low.canary, healthy.canary)):
            assert (side_low["requests"] <= side["requests"]).all()
            assert (side_low["errors"] <= side["errors"]).all()
            ratio = side_low["requests"].sum() / side["requests"].sum()
            assert 0.035 < ratio < 0.07
        level = list(level_metric_names())
        pd.testing.assert_frame_equal(low.canary[level], healthy.canary[level])


def test_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="block"):
        CanarySpec(block=0)
    with pytest.raises(ValueError, match="error rates"):
        CanarySpec(healthy_error_rates=())
    spec = CanarySpec(points=30, level_metrics=3)
    assert level_metric_names(spec) == ("level_1", "level_2", "level_3")


def test_draw_canary_from_one_generator(tuning: RealSeriesSet) -> None:
    spec = CanarySpec(points=30)
    canary = draw_canary(tuning, Kind.SHIFT, Flavour.INDEPENDENT, np.random.default_rng(3), spec)
    assert canary.canary.shape == (30, 11) and canary.label.target is not None


def test_benchmark_configs() -> None:
    default = benchmark_config()
    kayenta = benchmark_config(JudgeMode.KAYENTA)
    assert default.mode is JudgeMode.DEFAULT and kayenta.mode is JudgeMode.KAYENTA
    assert isinstance(default.metric("errors").test, RateRatioTest)
    assert default.metric("errors").critical and kayenta.metric("errors").critical
    assert isinstance(kayenta.metric("errors").test, MannWhitneyTest)
    assert (default.thresholds.pass_, default.thresholds.marginal) == (95, 75)
    assert default.metric("requests").direction.value == "decrease"
    assert {default.metric(m).direction.value for m in level_metric_names()} == {"increase"}


def test_config_overrides_set_fields_and_name_what_is_wrong() -> None:
    changed = with_overrides(benchmark_config(), {
        "multiple_testing.level": 0.05,
        "metrics.errors.test.negligible_rate": 0.005,
        "metrics.*.critical": False,
    })
    assert changed.multiple_testing.level == 0.05
    errors = changed.metric("errors").test
    assert isinstance(errors, RateRatioTest) and errors.negligible_rate == 0.005
    assert not any(m.critical for m in changed.metrics)
    # Untouched fields keep their values, and the original config is not changed.
    assert errors.margin == 3.0 and benchmark_config().metric("errors").critical
    with pytest.raises(ValueError, match="no metric 'latency'"):
        with_overrides(benchmark_config(), {"metrics.latency.critical": True})
    with pytest.raises(ValueError, match="negligble_rate"):
        with_overrides(benchmark_config(), {"metrics.errors.test.negligble_rate": 0.005})
    with pytest.raises(ValueError, match="ends in a field"):
        with_overrides(benchmark_config(), {"metrics.errors": {}})


def test_real_noise_docstring_examples_hold() -> None:
    import judge.lab.real_noise as module

    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_benchmark_set_changes_the_default_config_only(
    bench: ModuleType, tuning: RealSeriesSet, capsys: pytest.CaptureFixture[str]
) -> None:
    # --set reaches the judged config (a family level of 0.5: the healthy canary's level
    # metrics are tested at 25 times the default's level) and the printed header; Kayenta mode
    # is the reference and keeps its config.
    overrides = (("multiple_testing.level", 0.45),)
    context = bench.make_context(load_real_series(str(default_series_path())), SEED,
                                 CanarySpec(), (Split.TUNING,), overrides)
    assert context.default.multiple_testing.level == 0.45
    assert context.kayenta == benchmark_config(JudgeMode.KAYENTA)
    assert bench.main(["--canaries", "1", "--kinds", "healthy", "--tuning-only",
                       "--sequential", "off", "--jobs", "1",
                       "--series", str(default_series_path()),
                       "--set", "multiple_testing.level=0.45"]) == 0
    assert "Default-mode config changed: multiple_testing.level = 0.45" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--set", "metrics.latency.critical=true"])
    assert "no metric 'latency'" in capsys.readouterr().err


# -- the reduced benchmark run ------------------------------------------------------------------

KAYENTA_REDUCED_RUN: dict[tuple[str, str, str], tuple[int, int]] = {
    ("tuning", "concurrent", "healthy"): (0, 0),
    ("tuning", "concurrent", "healthy_low_traffic"): (0, 0),
    ("tuning", "concurrent", "shift"): (10, 0),
    ("tuning", "concurrent", "spread"): (0, 0),
    ("tuning", "concurrent", "tail"): (0, 0),
    ("tuning", "concurrent", "error_jump"): (5, 5),
    ("tuning", "concurrent", "ramp"): (7, 0),
    ("tuning", "concurrent", "low_load_shift"): (8, 0),
    ("tuning", "concurrent", "flat"): (0, 0),
    ("tuning", "concurrent", "missing"): (0, 0),
    ("tuning", "independent", "healthy"): (5, 0),
    ("tuning", "independent", "healthy_low_traffic"): (5, 0),
    ("tuning", "independent", "shift"): (10, 1),
    ("tuning", "independent", "spread"): (5, 0),
    ("tuning", "independent", "tail"): (5, 0),
    ("tuning", "independent", "error_jump"): (9, 8),
    ("tuning", "independent", "ramp"): (10, 1),
    ("tuning", "independent", "low_load_shift"): (10, 1),
    ("tuning", "independent", "flat"): (5, 0),
    ("tuning", "independent", "missing"): (4, 0),
    ("held-out", "concurrent", "healthy"): (0, 0),
    ("held-out", "concurrent", "healthy_low_traffic"): (0, 0),
    ("held-out", "concurrent", "shift"): (6, 0),
    ("held-out", "concurrent", "spread"): (0, 0),
    ("held-out", "concurrent", "tail"): (0, 0),
    ("held-out", "concurrent", "error_jump"): (5, 5),
    ("held-out", "concurrent", "ramp"): (9, 0),
    ("held-out", "concurrent", "low_load_shift"): (7, 0),
    ("held-out", "concurrent", "flat"): (0, 0),
    ("held-out", "concurrent", "missing"): (0, 0),
    ("held-out", "independent", "healthy"): (2, 0),
    ("held-out", "independent", "healthy_low_traffic"): (2, 0),
    ("held-out", "independent", "shift"): (9, 0),
    ("held-out", "independent", "spread"): (2, 0),
    ("held-out", "independent", "tail"): (2, 0),
    ("held-out", "independent", "error_jump"): (8, 8),
    ("held-out", "independent", "ramp"): (7, 0),
    ("held-out", "independent", "low_load_shift"): (7, 0),
    ("held-out", "independent", "flat"): (2, 0),
    ("held-out", "independent", "missing"): (2, 0),
}
"""Kayenta mode in the reduced run: ``(split, flavour, kind) -> (not promoted, failed)`` of 10
canaries. Nothing may change these (issue 13); a change of the canaries' construction does,
and then they are re-pinned from ``bench_real_noise.py --canaries 10 --sequential off``
(seed 13; its tables' Kayenta columns)."""


def test_reduced_run_has_every_row(bench: ModuleType, reduced_run: list[Any]) -> None:
    rows = bench.summarise(reduced_run)
    keys = [(r.split, r.flavour, r.kind) for r in rows]
    assert keys == [(s, f, k) for s in Split for f in Flavour for k in Kind]
    for row in rows:
        assert row.n == REDUCED_CANARIES
        assert row.sequential_promoted.n == REDUCED_SEQUENTIAL
        assert 5 <= row.sequential_median_points <= 60
    tables = bench.format_tables(rows)
    for description in KIND_DESCRIPTIONS.values():
        assert tables.count(f"| {description} |") == 4
    for split in Split:
        assert f"**{split.value} series, concurrent canaries**" in tables
    targets = bench.target_table([o for o in reduced_run if o.split is Split.TUNING])
    assert len(targets.splitlines()) == 2 + len(REGRESSIONS)


def test_reduced_run_outcomes_are_well_formed(reduced_run: list[Any]) -> None:
    for outcome in reduced_run:
        for fixed in (outcome.default, outcome.kayenta):
            assert fixed.verdict in ("pass", "marginal", "fail")
            assert (fixed.target is None) == (EXPECTED[outcome.kind] is Expected.PROMOTE)
        if outcome.sequential is not None:
            assert outcome.sequential.status in ("pass", "fail", "inconclusive")
            # a run ends at a poll: every 5 points, the last one final
            assert outcome.sequential.points % 5 == 0 and outcome.sequential.points <= 60


def test_reduced_run_kayenta_mode_figures_are_pinned(
    bench: ModuleType, reduced_run: list[Any]
) -> None:
    figures = {
        (r.split.value, r.flavour.value, r.kind.value):
            (r.kayenta_not_promoted.count, r.kayenta_failed.count)
        for r in bench.summarise(reduced_run)
    }
    assert figures == KAYENTA_REDUCED_RUN


def test_reduced_run_kayenta_mode_misses_what_it_is_known_to_miss(
    bench: ModuleType, reduced_run: list[Any]
) -> None:
    # Kayenta's known weak spots (DESIGN.md), on real noise: a wider spread and a metric that
    # went missing or flat at 0 pass on concurrent canaries; a +1 IQR shift is caught.
    rows = {(r.split, r.flavour, r.kind): r for r in bench.summarise(reduced_run)}
    for split in Split:
        row = rows[split, Flavour.CONCURRENT, Kind.MISSING]
        assert row.kayenta_not_promoted.count == rows[
            split, Flavour.CONCURRENT, Kind.HEALTHY].kayenta_not_promoted.count
        assert rows[split, Flavour.CONCURRENT, Kind.SPREAD].kayenta_failed.count == 0
    assert rows[Split.TUNING, Flavour.CONCURRENT, Kind.SHIFT].kayenta_not_promoted.share >= 0.75


def _target_violations(bench: ModuleType, rows: list[Any]) -> list[str]:
    """Each target of :data:`TARGETS` the reduced run shows missed beyond sampling error."""
    level = TARGETS["check_confidence"]

    def interval(rate: Any) -> tuple[float, float]:
        from scipy.stats import binomtest

        ci = binomtest(rate.count, rate.n).proportion_ci(confidence_level=level,
                                                         method="wilson")
        return float(ci.low), float(ci.high)

    problems: list[str] = []

    def at_most(rate: Any, bound: float, what: str) -> None:
        if rate.n and interval(rate)[0] > bound:
            problems.append(f"{what}: {rate.count}/{rate.n} > {bound:.1%}")

    def at_least(rate: Any, bound: float, what: str) -> None:
        if rate.n and interval(rate)[1] < bound:
            problems.append(f"{what}: {rate.count}/{rate.n} < {bound:.1%}")

    for r in rows:
        where = f"{r.split.value} {r.flavour.value} {r.kind.value}"
        if r.kind in (Kind.HEALTHY, Kind.HEALTHY_LOW_TRAFFIC):
            at_most(r.default_failed, TARGETS["fixed_healthy_failed_max"], f"{where} failed")
            at_most(r.sequential_failed, TARGETS["sequential_healthy_failed_max"],
                    f"{where} sequential failed")
        if r.kind is Kind.HEALTHY:
            at_most(r.default_not_promoted, TARGETS["fixed_healthy_not_promoted_max"],
                    f"{where} not promoted")
            at_least(r.sequential_promoted, TARGETS["sequential_healthy_promoted_min"],
                     f"{where} sequential promoted")
        if EXPECTED[r.kind] is Expected.STOP:
            at_least(r.default_not_promoted, TARGETS["fixed_regression_stopped_min"],
                     f"{where} stopped")
            # Both shares are estimates: behind Kayenta mode only when the intervals part.
            if (TARGETS["fixed_regression_at_least_kayenta"]
                    and interval(r.default_not_promoted)[1]
                    < interval(r.kayenta_not_promoted)[0]):
                problems.append(f"{where}: stopped less often than Kayenta mode "
                                f"({r.default_not_promoted.count} vs "
                                f"{r.kayenta_not_promoted.count} of {r.n})")
            stopped = bench.Rate(r.sequential_promoted.n - r.sequential_promoted.count,
                                 r.sequential_promoted.n)
            at_least(stopped, TARGETS["sequential_regression_stopped_min"],
                     f"{where} sequential stopped")
    return problems


def _sequential_speed_violations(reduced_run: list[Any]) -> list[str]:
    # "A median of at most 20 points": at least half the runs decided by then.
    from scipy.stats import binomtest

    problems = []
    for split in Split:
        for flavour in Flavour:
            for kind in TARGETS["sequential_median_kinds"]:
                runs = [o.sequential for o in reduced_run
                        if (o.split, o.flavour, o.kind.value) == (split, flavour, kind)
                        and o.sequential is not None]
                # Decided against promotion: failed, or stopped as inconclusive because the
                # run could no longer pass (the config's scoring makes one metric marginal).
                early = sum(s.status in ("fail", "inconclusive")
                            and s.points <= TARGETS["sequential_median_points_max"]
                            for s in runs)
                ci = binomtest(early, len(runs)).proportion_ci(
                    confidence_level=TARGETS["check_confidence"], method="wilson")
                if ci.high < 0.5:
                    problems.append(f"{split.value} {flavour.value} {kind}: {early}/{len(runs)} "
                                    "sequential runs stopped by 20 points")
    return problems


def _row(bench: ModuleType, kind: Kind, *, not_promoted: int, failed: int, kayenta: int,
         promoted_seq: int, failed_seq: int, n: int = 100) -> Any:
    return bench.Row(
        split=Split.TUNING, flavour=Flavour.CONCURRENT, kind=kind,
        default_not_promoted=bench.Rate(not_promoted, n), default_failed=bench.Rate(failed, n),
        kayenta_not_promoted=bench.Rate(kayenta, n), kayenta_failed=bench.Rate(0, n),
        sequential_promoted=bench.Rate(promoted_seq, n),
        sequential_failed=bench.Rate(failed_seq, n), sequential_median_points=15.0,
    )


def test_target_checks_allow_for_sampling_error_but_not_more(bench: ModuleType) -> None:
    # What a judge meeting the targets could show on 100 canaries passes the checks ...
    good = [
        _row(bench, Kind.HEALTHY, not_promoted=3, failed=1, kayenta=0, promoted_seq=96,
             failed_seq=1),
        _row(bench, Kind.HEALTHY_LOW_TRAFFIC, not_promoted=60, failed=1, kayenta=0,
             promoted_seq=40, failed_seq=1),
        _row(bench, Kind.SHIFT, not_promoted=88, failed=80, kayenta=90, promoted_seq=10,
             failed_seq=85),
    ]
    assert _target_violations(bench, good) == []
    # ... today's judge (healthy canaries failed by the error-count rule) does not.
    bad = [
        _row(bench, Kind.HEALTHY, not_promoted=78, failed=78, kayenta=0, promoted_seq=0,
             failed_seq=2),
        _row(bench, Kind.SHIFT, not_promoted=70, failed=70, kayenta=98, promoted_seq=0,
             failed_seq=60),
    ]
    problems = _target_violations(bench, bad)
    assert any("healthy failed: 78/100" in p for p in problems)
    assert any("healthy sequential promoted: 0/100" in p for p in problems)
    assert any("shift: stopped less often than Kayenta mode" in p for p in problems)
    assert any("shift stopped: 70/100" in p for p in problems)



def test_sequential_stop_causes_name_what_stopped_the_run(bench: ModuleType) -> None:
    fixed = bench.FixedOutcome(verdict="pass", reason="", target=None)

    def outcome(status: str, *blame: Any) -> Any:
        return bench.CanaryOutcome(
            split=Split.TUNING, flavour=Flavour.CONCURRENT, kind=Kind.HEALTHY, index=0,
            error_rate=0.0, default=fixed, kayenta=fixed,
            sequential=bench.SequentialOutcome(status=status, points=25, blame=blame))

    high = bench.Blame("level_3", "high", "speed_7578", counted=True)
    undecided = bench.Blame("errors", "nodata", "errors", counted=False)
    held = bench.Blame("level_5", "nodata", "occupancy_6005", counted=False)
    causes = dict(bench.sequential_stop_causes([
        # stopped early by one failed metric: that metric, not what was still undecided
        outcome("inconclusive", high, undecided),
        # ended undecided: every metric that held it
        outcome("inconclusive", undecided, held),
        outcome("pass", high),
    ]))
    assert causes == {
        "inconclusive: level high: speed_7578 (healthy)": 1,
        "inconclusive: errors nodata, error rate 0.00% (healthy)": 1,
        "inconclusive: level nodata: occupancy_6005 (healthy)": 1,
    }


MET_TARGETS = (
    # Issue 13 targets the default judge meets on the reduced run (the rest are in the xfail
    # test below; docs/default-judge.md has the full run and why each open one is open).
    # no healthy canary failed outright (fixed horizon), low traffic included
    " healthy failed:", " healthy_low_traffic failed:",
    "flat stopped", "missing stopped", "error_jump stopped",
    # concurrent canaries (the usual deployment), within the reduced run's sampling error:
    # healthy not promoted <= 3% (full run: 5% / 9%, the errors held at marginal where the
    # counts are ambiguous), promoted by the last sequential poll >= 97% (full run: 94% /
    # 88%). A loose guard at this size, not a measurement.
    "concurrent healthy not promoted", "concurrent healthy sequential promoted",
    # no healthy sequential run failed, either flavour, low traffic included (full run: 1 of
    # 400, a run whose error count a one-shot judgment fails too, since the final look takes
    # the counts; 0 before; 12-16% of independent ones before runs decided by the config's
    # scoring)
    " healthy sequential failed", " healthy_low_traffic sequential failed",
    "error_jump sequential stopped",
)


def test_default_judge_meets_these_issue_13_targets(
    bench: ModuleType, reduced_run: list[Any]
) -> None:
    problems = _target_violations(bench, bench.summarise(reduced_run))
    met = [p for p in problems if any(target in p for target in MET_TARGETS)]
    assert not met, "\n".join(met)
    # The checks above do run: they are among the targets checked.
    assert {"fixed_healthy_failed_max", "fixed_regression_stopped_min"} <= set(TARGETS)


@pytest.mark.xfail(strict=True, reason="issue 13's open targets, measured and explained in "
                   "docs/default-judge.md (Against issue 13's targets)")
def test_default_judge_meets_the_issue_13_targets(
    bench: ModuleType, reduced_run: list[Any]
) -> None:
    problems = _target_violations(bench, bench.summarise(reduced_run))
    problems += _sequential_speed_violations(reduced_run)
    assert not problems, "\n".join(problems)


def test_a_sequence_fails_a_metric_only_when_the_run_so_far_shows_it(
    tuning: RealSeriesSet,
) -> None:
    # Healthy independent canary 29 (the benchmark's seed): after 15 minutes the canary's
    # grok_asg_anomaly moved 12x more from minute to minute than the baseline's, one stretch
    # of another regime, and the spread sequence's anytime-valid bound was above 0. A
    # one-shot judgment of those 15 points does not find it significant (p 0.16), so the
    # metric stays undecided (it used to fail it, and the run with it); the whole hour
    # passes it.
    config = benchmark_config(JudgeMode.DEFAULT)
    canary = labelled_canary(tuning, Kind.HEALTHY, Flavour.INDEPENDENT, seed=SEED, index=29)
    state = judge.SequentialState.new("regime", config.name)
    statuses = []
    for start in range(0, 60, 5):
        report, state = judge.poll(config, state, canary.baseline.iloc[start:start + 5],
                                   canary.canary.iloc[start:start + 5], final=start == 55)
        statuses.append(report.details["sequential"]["status"])
        if start == 10:
            held = report.metric("level_2")
    assert canary.label.series_of("level_2") == "grok_asg_anomaly"
    assert held.classification.value == "nodata"
    assert held.details["run_so_far"]["classification"] == "pass"
    assert held.details["run_so_far"]["p_value"] > 0.1
    assert "spread score" in held.reason and "does not show it" in held.reason
    assert statuses == ["continue"] * 11 + ["pass"]
    assert report.metric("level_2").classification.value == "pass"


def test_public_api_judges_a_real_noise_canary(tuning: RealSeriesSet) -> None:
    canary = labelled_canary(tuning, Kind.ERROR_JUMP, Flavour.CONCURRENT, seed=SEED, index=0)
    report = judge.judge(benchmark_config(), canary.baseline, canary.canary)
    assert report.metric("errors").classification.value == "high"


def test_real_noise_canaries_backtest_as_a_history(tuning: RealSeriesSet) -> None:
    from judge.lab.backtest import backtest
    from judge.lab.real_noise import real_noise_history
    from judge.lab.scenarios import Label

    history = real_noise_history(tuning, kinds=(Kind.HEALTHY, Kind.SHIFT), canaries=3)
    assert [s.kind for s in history] == ["healthy"] * 3 + ["shift"] * 3
    assert [s.label for s in history] == [Label.GOOD] * 3 + [Label.BAD] * 3
    # The same canaries as the benchmark's, and every series is a tuning one.
    same = labelled_canary(tuning, Kind.SHIFT, Flavour.CONCURRENT, seed=SEED, index=1)
    pd.testing.assert_frame_equal(history[4].canary, same.canary)
    assert {s.meta["series"] for s in history} <= tuning.names()
    assert history[4].meta["target"] == same.label.target
    result = backtest(benchmark_config(), history)
    assert result.summary().loc["good (all)", "n"] == 3


def test_spread_statistics_follow_the_reach_rule(tuning: RealSeriesSet) -> None:
    # benchmarks/real_noise_spread.py on the first healthy independent canaries of the
    # benchmark: canary 24 has a level metric three times as wide above its own median
    # (machine_temperature_system_failure) whose p90 stays below the baseline's: significant,
    # passed as not material. Every significant spread component fails exactly when it reaches
    # beyond the baseline's p90 (spread_reach 1, the default).
    script = _load_bench("real_noise_spread")
    rows = list(script.spread_rows(tuning, Kind.HEALTHY, Flavour.INDEPENDENT, 25, SEED))
    assert rows, "no significant spread component among the first 25 canaries"
    for row in rows:
        assert row.adjusted_p_value <= 0.02 and row.upper_ratio > 1.0
        assert (row.classification == "high") == (not row.reach < 1.0), row
    passed = [r for r in rows if r.classification == "pass"]
    assert any(r.index == 24 and r.median_shift < -1.0 and r.reach < 1.0 for r in passed)
    text = script.format_rows(rows) + "\n" + script.summary(rows, Kind.HEALTHY)
    assert "| reach |" in text and "passed as not material" in text


def test_spread_statistics_script_runs(
    tuning: RealSeriesSet, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _load_bench("real_noise_spread")
    assert script.main(["--canaries", "2", "--series", str(default_series_path())]) == 0
    out = capsys.readouterr().out
    assert "Spread components found significant (tuning series, 2 canaries" in out
    for flavour in ("concurrent", "independent"):
        assert f"{flavour}, healthy:" in out and f"{flavour}, spread:" in out
    with pytest.raises(SystemExit):
        script.main(["--canaries", "0"])
