"""PrometheusSource against a real Prometheus filled with known samples by promtool.

Samples are written one per minute, three hours in the past; range queries use the same grid,
so every fetched point is a written sample, a lookback repeat of one (Prometheus' default
5-minute lookback), or a gap (NaN).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from judge.analysis import analyze
from judge.config import CanaryConfig
from judge.errors import QueryError, ScopeValueError
from judge.fetching import RetryPolicy
from judge.ports import FetchedSeries, Scope, ScopePair
from judge.report import Classification
from metricsources.prometheus import PrometheusSource
from tests.support.prometheus import PrometheusServer, Sample, running_prometheus

pytestmark = pytest.mark.prometheus

T0 = (int(time.time()) // 3600) * 3600 - 3 * 3600
START = datetime.fromtimestamp(T0, UTC)
END = START + timedelta(minutes=59)
STEP = timedelta(minutes=1)
INJECTION = 'x"} or vector(1) #'
MINUTES = range(60)
ODD_VALUES = {  # label value -> the value its series holds
    INJECTION: 7.0,
    "back\\slash": 1.0,
    "it's 'single'": 2.0,
    "new\nline": 3.0,
    "tab\tand `tick`": 4.0,
    "ünïcödé ☃": 5.0,
    "x'} or vector(1) #": 6.0,
}


def samples() -> Iterator[Sample]:
    for k in MINUTES:
        at = T0 + 60 * k
        yield Sample("checkout_latency", {"version": "v1"}, at, float(k))
        yield Sample("checkout_latency", {"version": "v2"}, at, 100.0 + k)
        if not 20 <= k < 35:
            yield Sample("gappy", {"version": "v1"}, at, float(k))
        if k < 30:
            yield Sample("stopped", {"version": "v1"}, at, float(k))
        yield Sample("requests_total", {"version": "v1", "uri": "/a"}, at, 10.0 + k)
        yield Sample("requests_total", {"version": "v1", "uri": "/b"}, at, 20.0 + k)
        for label, value in ODD_VALUES.items():
            yield Sample("weird", {"version": label}, at, value)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(samples(), tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def source(prometheus: PrometheusServer) -> Iterator[PrometheusSource]:
    made = PrometheusSource(prometheus.url, scope_label="version", timeout=10)
    yield made
    made.close()


def config(query: dict[str, object]) -> CanaryConfig:
    return CanaryConfig.model_validate({"metrics": [{"name": "m", "query": query}]})


def fetch(source: PrometheusSource, query: dict[str, object], scope: str) -> FetchedSeries:
    cfg = config(query)
    window = Scope(scope, start=START, end=END, step=STEP)
    return asyncio.run(source.fetch(cfg.metrics[0], window, cfg))


def test_fetched_values_equal_what_was_written(source: PrometheusSource) -> None:
    fetched = fetch(source, {"type": "prometheus",
                             "promql": 'checkout_latency{version="${scope}"}'}, "v2")
    assert fetched.query == 'checkout_latency{version="v2"}'
    (series,) = fetched.series
    assert dict(series.tags) == {"version": "v2"}
    assert series.timestamps.tolist() == [T0 + 60 * k for k in MINUTES]
    assert series.values.tolist() == [100.0 + k for k in MINUTES]


def test_kayenta_query_config_against_the_server(source: PrometheusSource) -> None:
    fetched = fetch(source, {"type": "prometheus", "metricName": "checkout_latency"}, "v1")
    assert fetched.query == 'avg(checkout_latency{version="v1"})'
    assert fetched.series[0].values.tolist() == [float(k) for k in MINUTES]


def test_group_by_returns_one_series_per_tag_set(source: PrometheusSource) -> None:
    fetched = fetch(source, {"type": "prometheus", "metricName": "requests_total",
                             "groupByFields": ["uri"]}, "v1")
    assert fetched.group_by == ("uri",)
    by_uri = {s.tags["uri"]: s.values for s in fetched.series}
    assert sorted(by_uri) == ["/a", "/b"]
    assert by_uri["/b"].tolist() == [20.0 + k for k in MINUTES]


def test_gaps_are_lookback_repeats_then_nan(source: PrometheusSource) -> None:
    values = fetch(source, {"type": "prometheus", "promql": 'gappy{version="${scope}"}'},
                   "v1").series[0].values
    assert values[:20].tolist() == [float(k) for k in range(20)]
    # Within the 5-minute lookback the last sample (minute 19) is repeated ...
    assert values[20:24].tolist() == [19.0] * 4
    assert values[24] == 19.0 or np.isnan(values[24])  # the lookback boundary itself
    # ... after it the points are missing, and missing points are NaN on the step grid.
    assert np.isnan(values[25:35]).all()
    assert values[35:].tolist() == [float(k) for k in range(35, 60)]


def test_a_stale_series_ends_in_nan(source: PrometheusSource) -> None:
    (series,) = fetch(source, {"type": "prometheus", "promql": 'stopped{version="${scope}"}'},
                      "v1").series
    assert series.values[:30].tolist() == [float(k) for k in range(30)]
    assert np.isnan(series.values[35:]).all()
    assert series.values.size == 60


def test_an_empty_result_is_no_series(source: PrometheusSource) -> None:
    fetched = fetch(source, {"type": "prometheus",
                             "promql": 'checkout_latency{version="${scope}"}'}, "v9")
    assert fetched.series == () and fetched.empty


def test_bad_promql_is_a_query_error(source: PrometheusSource) -> None:
    with pytest.raises(QueryError, match=r"HTTP 400: bad_data: .*parse error"):
        fetch(source, {"type": "prometheus", "promql": 'checkout_latency{version="${scope}"'},
              "v1")


def test_injection_attempt_selects_only_the_literal_label_value(source: PrometheusSource) -> None:
    fetched = fetch(source, {"type": "prometheus", "promql": 'weird{version="${scope}"}'},
                    INJECTION)
    # Unescaped, the query would be `weird{version="x"} or vector(1) #"}`: a label-less
    # series of 1s. Escaped, it selects exactly the series whose label is that odd string.
    (series,) = fetched.series
    assert dict(series.tags) == {"version": INJECTION}
    assert set(series.values.tolist()) == {7.0}
    nothing = fetch(source, {"type": "prometheus",
                             "promql": 'checkout_latency{version="${scope}"}'}, INJECTION)
    assert nothing.series == ()


@pytest.mark.parametrize("quote", ['"', "'"])
@pytest.mark.parametrize("label", sorted(ODD_VALUES))
def test_odd_label_values_select_exactly_their_series(
    source: PrometheusSource, label: str, quote: str
) -> None:
    template = f"weird{{version={quote}${{scope}}{quote}}}"
    (series,) = fetch(source, {"type": "prometheus", "promql": template}, label).series
    assert dict(series.tags) == {"version": label}
    assert set(series.values.tolist()) == {ODD_VALUES[label]}


def test_injection_in_a_bare_placeholder_is_refused_before_any_request(
    source: PrometheusSource,
) -> None:
    cfg = config({"type": "prometheus", "promql": "rate(requests_total[${window}])"})
    scope = Scope("v1", start=START, end=END, params={"window": "5m]) or vector(1"})
    with pytest.raises(ScopeValueError, match="outside a quoted string"):
        asyncio.run(source.fetch(cfg.metrics[0], scope, cfg))


def test_query_error_becomes_an_error_metric_in_an_analysis(source: PrometheusSource) -> None:
    cfg = CanaryConfig.model_validate({"metrics": [
        {"name": "broken", "query": {"type": "prometheus", "promql": "sum(("}},
        {"name": "latency", "query": {"type": "prometheus", "metricName": "checkout_latency"}},
    ]})
    report = analyze(cfg, source, ScopePair(Scope("v1"), Scope("v1")), START, END, STEP)
    assert report.metric("broken").classification is Classification.ERROR
    assert "bad_data" in report.metric("broken").reason
    assert report.metric("latency").classification is Classification.PASS


def test_a_stopped_prometheus_is_retried_then_an_error_metric(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path / "empty-tsdb")
    (tmp_path / "empty-tsdb").mkdir()
    server.start()
    url = server.url
    server.stop()
    source = PrometheusSource(url, timeout=2)
    cfg = config({"type": "prometheus", "metricName": "checkout_latency"})
    began = time.perf_counter()
    report = analyze(cfg, source, ScopePair(Scope("v1"), Scope("v2")), START, END, STEP,
                     retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1))
    source.close()
    result = report.metric("m")
    assert result.classification is Classification.ERROR
    assert f"cannot connect to Prometheus at {url}" in result.reason
    assert "gave up after 3 attempts" in result.reason
    assert report.details["fetch"]["m"]["canary"]["attempts"] == 3
    assert time.perf_counter() - began < 10
