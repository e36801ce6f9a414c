"""The synthetic demo source: deterministic, realistic shapes, regressions on request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from judge.config import CanaryConfig
from judge.errors import ScopeValueError
from judge.ports import FetchedSeries, Scope
from metricsources.demo import DemoSource, ar1, daily_cycle

T0 = datetime(2024, 5, 1, tzinfo=UTC)
CONFIG = CanaryConfig.model_validate({"metrics": [
    {"name": "latency", "query": {"type": "demo", "signal": "latency", "level": 100}},
    {"name": "errors", "query": {"type": "demo", "signal": "errors", "level": 100}},
    {"name": "requests", "query": {"type": "demo", "signal": "requests", "level": 1000}},
    {"name": "cpu", "query": {"type": "demo", "signal": "cpu", "level": 80, "noise": 0.1}},
    {"name": "memory", "query": {"type": "demo", "signal": "memory", "level": 512}},
]})


def fetch(metric: str, scope: Scope) -> FetchedSeries:
    return asyncio.run(DemoSource().fetch(CONFIG.metric(metric), scope, CONFIG))


def day(scope: str, **params: str) -> Scope:
    return Scope(scope, start=T0, end=T0 + timedelta(hours=24), step=timedelta(minutes=5),
                 params=params)


def test_same_request_same_numbers_and_sides_differ() -> None:
    first = fetch("latency", day("v1")).series[0]
    again = fetch("latency", day("v1")).series[0]
    other = fetch("latency", day("v2")).series[0]
    np.testing.assert_array_equal(first.values, again.values)
    assert not np.array_equal(first.values, other.values)
    assert first.timestamps.size == 24 * 12 + 1
    assert first.timestamps[1] - first.timestamps[0] == 300


def test_latency_has_a_heavy_right_tail_and_a_daily_cycle() -> None:
    values = fetch("latency", day("v1")).series[0].values
    assert np.percentile(values, 99) > 1.5 * np.median(values)
    hours = (fetch("latency", day("v1")).series[0].timestamps / 3600) % 24
    afternoon = np.median(values[(hours >= 13) & (hours < 17)])
    night = np.median(values[(hours >= 1) & (hours < 5)])
    assert afternoon > 1.1 * night


def test_errors_are_counts_with_zeros() -> None:
    values = fetch("errors", day("v1")).series[0].values
    assert np.all(values == np.round(values)) and np.all(values >= 0)
    assert 0.05 < np.mean(values == 0) < 0.9


def test_regression_by_bad_scope_or_parameter() -> None:
    base = np.mean(fetch("cpu", day("v1")).series[0].values)
    bad = np.mean(fetch("cpu", day("v2-bad")).series[0].values)
    assert bad / base == pytest.approx(1.3, rel=0.05)
    explicit = np.mean(fetch("memory", day("v2", regression="2.0")).series[0].values)
    assert explicit / np.mean(fetch("memory", day("v1")).series[0].values) == pytest.approx(
        2.0, rel=0.02)
    served = np.mean(fetch("requests", day("v2-bad")).series[0].values)
    assert served < np.mean(fetch("requests", day("v1")).series[0].values) / 1.2
    assert "regression=1.3" in DemoSource().render(CONFIG.metric("cpu"), day("bad"), CONFIG)
    with pytest.raises(ScopeValueError, match="number"):
        fetch("cpu", day("v1", regression="lots"))


def test_default_window_when_the_scope_has_none() -> None:
    series = fetch("requests", Scope("v1")).series[0]
    assert series.values.size == 60
    assert series.timestamps[0] == datetime(2024, 1, 1, 12, tzinfo=UTC).timestamp()


def test_ar1_noise_is_autocorrelated_with_unit_variance() -> None:
    noise = ar1(np.random.default_rng(7), 20_000)
    assert np.corrcoef(noise[:-1], noise[1:])[0, 1] == pytest.approx(0.6, abs=0.03)
    assert np.var(noise) == pytest.approx(1.0, abs=0.05)
    cycle = daily_cycle(np.array([15 * 3600.0, 3 * 3600.0]))
    assert cycle.tolist() == pytest.approx([1.3, 0.7])
