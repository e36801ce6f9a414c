"""The analysis use-case with in-memory sources: concurrency, retries, timeouts, routing,
group-by splitting, progress. No I/O."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from judge.analysis import analyze, analyze_async
from judge.config import CanaryConfig, MetricConfig
from judge.errors import QueryError, RetryableSourceError
from judge.fetching import (
    MetricFetch,
    RetryPolicy,
    SideFetch,
    build_pairs,
    combine_series,
    fetch_metrics,
    new_points,
    resolve_source,
)
from judge.ports import FetchedSeries, MetricSource, Scope, ScopePair, TaggedSeries
from judge.report import Classification, Report, Verdict

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
SCOPES = ScopePair(Scope("v1"), Scope("v2"))
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
RNG = np.random.default_rng(3)
BASELINE_VALUES = RNG.normal(100, 5, 40)
CANARY_VALUES = RNG.normal(100, 5, 40)


def series(values: Any, tags: Mapping[str, str] | None = None) -> TaggedSeries:
    values = np.asarray(values, dtype=np.float64)
    return TaggedSeries(tags or {}, np.arange(values.size, dtype=np.float64) * 60, values)


@dataclass
class ScriptedSource:
    """Answers per (metric, scope value): a FetchedSeries, an exception, or a callable."""

    answers: dict[tuple[str, str], Any] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    query_types: frozenset[str] | None = None

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        return f"{metric.name}@{scope.scope}"

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        self.calls.append((metric.name, scope.scope))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = self.answers.get((metric.name, scope.scope))
            if callable(answer):
                answer = answer()
            if isinstance(answer, BaseException):
                raise answer
            if answer is None:
                values = BASELINE_VALUES if scope.scope == "v1" else CANARY_VALUES
                return FetchedSeries(self.render(metric, scope, config), (series(values),))
            assert isinstance(answer, FetchedSeries)
            return answer
        finally:
            self.in_flight -= 1


def config(*names: str, **queries: Any) -> CanaryConfig:
    metrics = [{"name": n, "query": queries.get(n, {"type": "column"})} for n in names]
    return CanaryConfig.model_validate({"metrics": metrics})


def run(cfg: CanaryConfig, source: Any, **options: Any) -> Report:
    options.setdefault("retry", FAST)
    return analyze(cfg, source, SCOPES, start=T0, end=T0 + timedelta(hours=1), **options)


def test_protocol_is_satisfied_by_the_scripted_source() -> None:
    assert isinstance(ScriptedSource(), MetricSource)


def test_all_fetches_run_concurrently_and_concurrency_bounds_them() -> None:
    cfg = config(*(f"m{k}" for k in range(10)))
    unbounded = ScriptedSource(delay=0.02)
    report = run(cfg, unbounded, concurrency=None)
    assert unbounded.most_in_flight == 20
    assert all(m.classification is Classification.PASS for m in report.metrics)
    bounded = ScriptedSource(delay=0.02)
    run(cfg, bounded, concurrency=3)
    assert bounded.most_in_flight == 3 and len(bounded.calls) == 20


def test_retryable_errors_are_retried_then_succeed() -> None:
    failures = iter([RetryableSourceError("HTTP 503"), RetryableSourceError("HTTP 503")])
    source = ScriptedSource({("m", "v2"): lambda: next(failures, None)})
    report = run(config("m"), source)
    assert report.metric("m").classification is Classification.PASS
    assert report.details["fetch"]["m"]["canary"]["attempts"] == 3
    assert report.details["fetch"]["m"]["baseline"]["attempts"] == 1


def test_exhausted_retries_make_that_metric_error_only() -> None:
    source = ScriptedSource({("bad", "v2"): RetryableSourceError("connection refused")})
    report = run(config("bad", "good"), source)
    bad = report.metric("bad")
    assert bad.classification is Classification.ERROR
    assert "connection refused (gave up after 3 attempts)" in bad.reason
    assert report.metric("good").classification is Classification.PASS
    assert source.calls.count(("bad", "v2")) == 3


def test_fatal_errors_are_not_retried() -> None:
    source = ScriptedSource({("m", "v1"): QueryError("parse error at char 3")})
    report = run(config("m"), source)
    assert report.metric("m").classification is Classification.ERROR
    assert "parse error at char 3" in report.metric("m").reason
    assert source.calls.count(("m", "v1")) == 1


def test_a_slow_fetch_times_out_and_is_retried() -> None:
    source = ScriptedSource(delay=0.5)
    report = run(config("m"), source, timeout=0.05,
                 retry=RetryPolicy(max_attempts=2, base_delay=0.0))
    assert report.metric("m").classification is Classification.ERROR
    assert "no answer within 0.05 s (gave up after 2 attempts)" in report.metric("m").reason


def test_unexpected_exceptions_in_a_source_do_not_crash_the_analysis() -> None:
    source = ScriptedSource({("m", "v1"): ZeroDivisionError("oops")})
    report = run(config("m", "n"), source)
    assert report.metric("m").classification is Classification.ERROR
    assert "ZeroDivisionError: oops" in report.metric("m").reason
    assert report.metric("n").classification is Classification.PASS


def test_unserved_sources_fail_their_metric_without_any_call() -> None:
    cfg = config("sfx", "ok", sfx={"type": "signalfx", "metricName": "cpu.utilization"})
    source = ScriptedSource()
    report = run(cfg, source)
    assert report.metric("sfx").classification is Classification.ERROR
    assert report.metric("sfx").reason.endswith("source signalfx is not served by canary-judge")
    assert all(name != "sfx" for name, _ in source.calls)


def test_missing_scope_name_or_source_is_an_error_for_that_metric() -> None:
    cfg = CanaryConfig.model_validate({"metrics": [
        {"name": "a", "scopeName": "eu"}, {"name": "b", "source": "thanos"}, {"name": "c"},
    ]})
    report = analyze(cfg, {"default": ScriptedSource()}, {"default": SCOPES}, retry=FAST)
    assert "scope 'eu', which the analysis was not given" in report.metric("a").reason
    assert "source 'thanos', which is not configured" in report.metric("b").reason
    assert report.metric("c").classification is Classification.PASS


def _typed(*types: str) -> ScriptedSource:
    return ScriptedSource(query_types=frozenset(types))


def test_source_routing_goes_by_query_type_when_the_metric_names_no_source() -> None:
    prometheus, datadog, datadog_eu = _typed("prometheus"), _typed("datadog"), _typed("datadog")
    files, other_files = ScriptedSource(), ScriptedSource()
    metric = MetricConfig.model_validate(
        {"name": "m", "query": {"type": "datadog", "query": "avg:x{*}"}})
    # The request's source (put under "default") runs Prometheus: a Datadog metric still goes
    # to the Datadog source (this used to be an error metric).
    routed = {"default": prometheus, "prometheus": prometheus, "datadog": datadog}
    assert resolve_source(metric, routed) == ("datadog", datadog)
    # An account chosen for the request selects a source for its type (metricsAccountName).
    assert resolve_source(metric, {"default": datadog_eu, "datadog": datadog})[1] is datadog_eu
    assert resolve_source(metric, {"prod": prometheus, "dd-eu": datadog_eu})[0] == "dd-eu"
    # A source reading any type (files) is the fallback, after a source of the type.
    assert resolve_source(metric, {"default": files, "dd": datadog})[0] == "dd"
    assert resolve_source(metric, {"default": files, "prometheus": prometheus})[0] == "default"
    assert resolve_source(metric, {"only": files})[0] == "only"
    named = MetricConfig.model_validate(
        {"name": "n", "source": "prometheus", "query": {"type": "datadog", "query": "q"}})
    assert resolve_source(named, routed)[1] is prometheus  # its own source always wins
    with pytest.raises(LookupError, match="no configured source runs 'datadog' queries"):
        resolve_source(metric, {"default": prometheus})
    with pytest.raises(LookupError, match=r"several run 'datadog' queries \(a, b\)"):
        resolve_source(metric, {"a": datadog, "b": datadog_eu})
    with pytest.raises(LookupError, match="several run 'datadog'"):
        resolve_source(metric, {"a": files, "b": other_files})


def test_a_metric_whose_type_no_source_runs_is_an_error_with_the_reason() -> None:
    cfg = CanaryConfig.model_validate({"metrics": [
        {"name": "p99", "query": {"type": "prometheus", "promql": "x"}},
        {"name": "dd", "query": {"type": "datadog", "query": "avg:x{*}"}},
    ]})
    prometheus = _typed("prometheus")
    report = run(cfg, {"default": prometheus, "prometheus": prometheus})
    assert report.metric("p99").classification is Classification.PASS
    dd = report.metric("dd")
    assert dd.classification is Classification.ERROR
    assert "no configured source runs 'datadog' queries" in dd.reason
    assert "prometheus (prometheus)" in dd.reason
    assert all(name == "p99" for name, _ in prometheus.calls)


def test_per_scope_windows_win_over_the_analysis_window() -> None:
    seen: list[Scope] = []

    class Recording(ScriptedSource):
        async def fetch(self, metric: MetricConfig, scope: Scope,
                        config: CanaryConfig) -> FetchedSeries:
            seen.append(scope)
            return await super().fetch(metric, scope, config)

    yesterday = Scope("v1", start=T0 - timedelta(days=1), end=T0 - timedelta(hours=23))
    analyze(config("m"), Recording(), ScopePair(yesterday, Scope("v2")), start=T0,
            end=T0 + timedelta(hours=1), step=timedelta(seconds=30), retry=FAST)
    by_scope = {s.scope: s for s in seen}
    assert by_scope["v1"].start == T0 - timedelta(days=1)
    assert by_scope["v1"].step == timedelta(seconds=30)
    assert by_scope["v2"].start == T0 and by_scope["v2"].end == T0 + timedelta(hours=1)


def test_group_by_tag_sets_become_their_own_metrics() -> None:
    def grouped(shift: float, uris: tuple[str, ...]) -> FetchedSeries:
        return FetchedSeries("q", tuple(series(BASELINE_VALUES + shift, {"uri": u, "pod": "p"})
                                        for u in uris), group_by=("uri",))

    source = ScriptedSource({("lat", "v1"): grouped(0.0, ("/a", "/b")),
                             ("lat", "v2"): grouped(0.0, ("/a", "/b", "/new"))})
    report = run(config("lat"), source)
    names = {m.name: m.classification for m in report.metrics}
    assert names == {"lat{uri=/a}": Classification.PASS, "lat{uri=/b}": Classification.PASS,
                     "lat{uri=/new}": Classification.NODATA}


def test_grouped_query_without_any_data_is_nodata_under_its_own_name() -> None:
    # The other metric has series for both scopes: an empty query is missing data, judged
    # as Kayenta judges an empty result.
    empty = FetchedSeries("q", (), group_by=("uri",))
    source = ScriptedSource({("lat", "v1"): empty, ("lat", "v2"): empty})
    report = run(config("lat", "cpu"), source)
    assert report.metric("lat").classification is Classification.NODATA
    assert report.metric("cpu").classification is Classification.PASS
    assert not report.is_error


def test_a_scope_that_matches_no_series_at_all_is_an_error_outcome() -> None:
    # A misspelt canary scope: every query of that scope comes back without any series.
    empty = FetchedSeries("q", ())
    source = ScriptedSource({("lat", "v2"): empty, ("cpu", "v2"): empty})
    report = run(config("lat", "cpu"), source)
    assert report.verdict is Verdict.ERROR and report.is_error
    assert np.isnan(report.score)
    lat = report.metric("lat")
    assert lat.classification is Classification.ERROR
    assert lat.details["fetch_failure"] == "no_series"
    assert lat.reason.startswith("canary: source 'default' (no_series), query 'lat@v2': ")
    assert "no series at all for canary scope 'v2' (none of the 2 queries" in lat.reason
    assert report.details["fetch"]["lat"]["baseline"]["error"] is None
    assert {f["metric"] for f in report.details["fetch_failures"]} == {"lat", "cpu"}
    assert report.reason.startswith("No verdict: the data of 2 of 2 scored metrics")


def test_untagged_multiple_series_are_combined_point_by_point() -> None:
    fetched = FetchedSeries("q", (series([1.0, np.nan, 3.0]), series([3.0, np.nan, np.nan])))
    np.testing.assert_array_equal(combine_series(fetched, "mean"), [2.0, np.nan, 3.0])
    np.testing.assert_array_equal(combine_series(fetched, "sum"), [4.0, np.nan, 3.0])
    assert combine_series(None).size == 0


def test_build_pairs_keeps_the_reason_of_a_failed_side() -> None:
    cfg = config("m")
    fetches = asyncio.run(fetch_metrics(
        cfg, ScriptedSource({("m", "v2"): QueryError("bad")}), SCOPES, retry=FAST))
    built = build_pairs(cfg, fetches)
    # The reason names the source, the kind of failure, the query and the source's words.
    assert built.pairs == {"m": "canary: source 'default' (rejected), query 'm@v2': bad"}
    assert built.kinds == {"m": "rejected"}


def test_progress_is_reported_per_metric() -> None:
    calls: list[tuple[int, int]] = []
    run(config("a", "b", "c"), ScriptedSource(), on_progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    assert [d for d, _ in calls] == [0, 1, 2, 3]


def test_retry_delays_grow_with_jitter_and_honour_retry_after_in_full() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, max_wait=300.0)
    rng = random.Random(1)
    delays = [policy.delay(n, None, rng) for n in (1, 2, 3, 4, 5)]
    for delay, ceiling in zip(delays, (1, 2, 4, 8, 8), strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, 3.0, rng) == 3.0
    # A source's own wait (a rate limit's reset) is not cut to the backoff's cap (issue 19:
    # retries landed while the limit still held), only to max_wait.
    assert policy.delay(1, 120.0, rng) == 120.0
    assert policy.delay(1, 900.0, rng) == 300.0
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_sync_analyze_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> Report:
        return analyze(config("m"), ScriptedSource(), SCOPES, retry=FAST)

    assert asyncio.run(notebook_cell()).metric("m").classification is Classification.PASS


def test_analyze_async_returns_the_judges_report_with_fetch_details() -> None:
    report = asyncio.run(analyze_async(config("m"), ScriptedSource(), SCOPES, retry=FAST))
    assert report.details["fetch"]["m"]["baseline"]["query"] == "m@v1"
    assert report.metric("m").baseline.count == 40


def _fetch(name: str, baseline: FetchedSeries | None, canary: FetchedSeries | None,
           error: str | None = None) -> MetricFetch:
    metric = MetricConfig.model_validate({"name": name})
    return MetricFetch(metric, SideFetch("q", series=baseline, error=error),
                       SideFetch("q", series=canary, error=error))


def _timed_series(stamps: list[float], values: list[float]) -> FetchedSeries:
    return FetchedSeries("q", (TaggedSeries({}, np.array(stamps), np.array(values)),))


def test_new_points_drop_what_was_judged_and_share_one_grid() -> None:
    fetches = [
        # a refetch from the last judged point (60) returns it again: it must be dropped
        _fetch("errors", _timed_series([60, 120, 180], [1, 2, 3]),
               _timed_series([60, 120, 180], [4, 5, 6])),
        # the canary's point at 180 is not in yet, and requests has no point at 120
        _fetch("requests", _timed_series([60, 180, 240], [10, 30, 40]),
               _timed_series([60, 180], [11, 31])),
        _fetch("down", None, None, error="connection refused"),
    ]
    points = new_points(fetches, after=60.0)
    assert points.timestamps.tolist() == [120.0, 180.0]  # 240: canary missing, left for later
    assert points.last == 180.0
    assert points.baseline["errors"].tolist() == [2.0, 3.0]
    assert np.isnan(points.baseline["requests"][0]) and points.canary["requests"][1] == 31.0
    assert points.errors == {"down": "query 'q': connection refused"}
    assert new_points(fetches, after=180.0).timestamps.size == 0
    everything = new_points(fetches, after=None)
    assert everything.timestamps.tolist() == [60.0, 120.0, 180.0]
