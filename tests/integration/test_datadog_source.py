"""DatadogSource against a local server speaking Datadog's ``GET /api/v1/query``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from judge.analysis import analyze
from judge.config import CanaryConfig
from judge.errors import (
    MalformedResponseError,
    QueryError,
    RateLimitError,
    SourceAuthError,
    SourceError,
    SourceTimeoutError,
)
from judge.fetching import RetryPolicy
from judge.ports import FetchedSeries, Scope, ScopePair
from judge.report import Classification
from metricsources.datadog import DatadogSource
from tests.support.datadog import Answer, FakeDatadog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datadog"
API_KEY = "dd-api-0123456789abcdef"
APP_KEY = "dd-app-fedcba9876543210"
T0 = 1714564800
START = datetime.fromtimestamp(T0, UTC)
END = START + timedelta(minutes=59)
QUERY = "avg:trace.http.request.duration{service:web,version:${scope}}"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
CONFIG = CanaryConfig.model_validate(
    {"metrics": [{"name": "latency", "direction": "increase",
                  "query": {"type": "datadog", "query": QUERY}}]}
)


@pytest.fixture
def datadog() -> Iterator[FakeDatadog]:
    with FakeDatadog(API_KEY, APP_KEY) as fake:
        rng = np.random.default_rng(5)
        for version, mean in (("v1", 0.100), ("v2", 0.101)):
            points: list[tuple[float, float | None]] = [
                (T0 + 60 * k, float(rng.normal(mean, 0.004))) for k in range(60)
            ]
            points[3] = (points[3][0], None)
            fake.add_series(QUERY.replace("${scope}", version), points,
                            tags=("service:web", f"version:{version}"))
        yield fake


def source_for(fake: FakeDatadog, **options: object) -> DatadogSource:
    return DatadogSource(api_key=API_KEY, application_key=APP_KEY, site=fake.url,
                         **options)  # type: ignore[arg-type]


def fetch(source: DatadogSource, scope: str = "v1") -> FetchedSeries:
    window = Scope(scope, start=START, end=END)
    return asyncio.run(source.fetch(CONFIG.metrics[0], window, CONFIG))


def test_query_parameters_headers_and_gaps(datadog: FakeDatadog) -> None:
    fetched = fetch(source_for(datadog))
    (request,) = datadog.requests
    assert request.path == "/api/v1/query"
    # The step (60 s by default) reaches Datadog as the rollup interval.
    assert request.params == {"from": str(T0), "to": str(T0 + 3540),
                              "query": QUERY.replace("${scope}", "v1") + ".rollup(avg, 60)"}
    assert request.headers["dd-api-key"] == API_KEY
    assert request.headers["dd-application-key"] == APP_KEY
    (series,) = fetched.series
    assert dict(series.tags) == {"service": "web", "version": "v1"}
    assert series.timestamps.tolist() == [T0 + 60 * k for k in range(60)]
    assert np.isnan(series.values[3]) and np.isfinite(np.delete(series.values, 3)).all()


def test_keys_from_the_environment(datadog: FakeDatadog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APPLICATION_KEY", APP_KEY)
    monkeypatch.delenv("DD_APP_KEY", raising=False)
    assert len(fetch(DatadogSource(site=datadog.url)).series) == 1
    monkeypatch.delenv("DD_API_KEY")
    with pytest.raises(SourceAuthError, match="set DD_API_KEY"):
        fetch(DatadogSource(site=datadog.url))
    assert len(datadog.requests) == 1  # the keyless fetch never left the process


@pytest.mark.parametrize("status", [401, 403])
def test_refused_keys_are_fatal_and_not_retried(status: int) -> None:
    with FakeDatadog(API_KEY, APP_KEY, auth_status=status) as fake:
        wrong = DatadogSource(api_key="wrong", application_key=APP_KEY, site=fake.url)
        with pytest.raises(SourceAuthError, match=f"HTTP {status}"):
            fetch(wrong)
        report = analyze(CONFIG, wrong, ScopePair(Scope("v1"), Scope("v2")), START, END,
                         retry=FAST)
        assert report.metric("latency").classification is Classification.ERROR
        assert "refused the keys" in report.metric("latency").reason
        assert len(fake.requests) == 3  # one direct fetch, one per side: no retries


def test_429_waits_the_whole_reset_not_the_backoff_cap(datadog: FakeDatadog) -> None:
    datadog.script(Answer(status=429, headers={"X-RateLimit-Reset": "0.3"}))
    source = source_for(datadog)
    with pytest.raises(RateLimitError) as caught:
        fetch(source)
    assert caught.value.retry_after == 0.3 and caught.value.kind == "http"
    datadog.script(Answer(status=429, headers={"X-RateLimit-Reset": "0.6",
                                               "Retry-After": "0.2"}))
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v2")), START, END,
                     retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
                     concurrency=1)
    assert report.metric("latency").classification is Classification.PASS
    # The retry waited the whole reset (the later of the two headers, 0.6 s), not max_delay
    # (0.05 s): measured from the request answered 429 to its own retry, as the server saw
    # them. (The gap between consecutive requests was measured before: the other side's
    # request falls in between, and under load it split the 0.6 s wait into 0.39 + 0.21.)
    # A sleep never ends early, so load can only lengthen this gap; 0.02 s is the clocks'.
    limited, *others = datadog.requests[1:]
    (retry,) = [r for r in others if r.params["query"] == limited.params["query"]]
    assert retry.at - limited.at >= 0.6 - 0.02
    attempts = [report.details["fetch"]["latency"][side]["attempts"]
                for side in ("baseline", "canary")]
    assert sorted(attempts) == [1, 2]


def test_a_reset_past_the_deadline_fails_at_once_naming_the_deadline(
    datadog: FakeDatadog,
) -> None:
    # Waiting would take the whole deadline (20 s); giving up at once a fraction of it (10 s
    # is a margin no load on the machine comes near).
    datadog.script(*[Answer(status=429, headers={"X-RateLimit-Reset": "300"})] * 2)
    began = time.perf_counter()
    report = analyze(CONFIG, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST, deadline=20.0)
    assert time.perf_counter() - began < 10.0  # nobody waited for a reset it could not use
    latency = report.metric("latency")
    assert latency.classification is Classification.ERROR
    assert "HTTP 429" in latency.reason
    assert "waiting 300 s as the source asked would pass the analysis' deadline of 20 s" \
        in latency.reason
    assert report.details["fetch_deadline"] == 20.0


def test_server_errors_are_retried_and_then_give_up(datadog: FakeDatadog) -> None:
    datadog.script(Answer(status=502))
    report = analyze(CONFIG, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST, concurrency=1)
    assert report.metric("latency").classification is Classification.PASS
    fetched = report.details["fetch"]["latency"]
    assert sorted(fetched[side]["attempts"] for side in ("baseline", "canary")) == [1, 2]
    datadog.script(*[Answer(status=503)] * 6)
    report = analyze(CONFIG, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST)
    latency = report.metric("latency")
    assert latency.classification is Classification.ERROR
    assert "HTTP 503" in latency.reason and "gave up after 3 attempts" in latency.reason


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"<html>gateway</html>", "not JSON"),
     (b'{"status": "ok"}', "no 'series' list"),
     (b'{"status": "ok", "series": [{"pointlist": [[1714564800000, "fast"]]}]}',
      "series #0"),
     (b"[1, 2]", "JSON list")],
)
def test_malformed_bodies_are_fatal_with_a_clear_message(
    datadog: FakeDatadog, body: bytes, message: str
) -> None:
    datadog.script(Answer(body=body))
    with pytest.raises(MalformedResponseError, match=message):
        fetch(source_for(datadog))


def test_slow_answers_time_out_and_are_retried(datadog: FakeDatadog) -> None:
    datadog.script(Answer(delay=2.0))
    with pytest.raises(SourceTimeoutError, match=r"within 0\.2 s"):
        fetch(source_for(datadog, timeout=0.2))
    datadog.script(Answer(delay=2.0))
    report = analyze(CONFIG, source_for(datadog, timeout=0.2),
                     ScopePair(Scope("v1"), Scope("v2")), START, END, retry=FAST,
                     concurrency=1)
    assert report.metric("latency").classification is Classification.PASS
    fetched = report.details["fetch"]["latency"]
    assert sorted(fetched[side]["attempts"] for side in ("baseline", "canary")) == [1, 2]


def test_grouped_queries_are_judged_per_tag_set(datadog: FakeDatadog) -> None:
    grouped = "avg:requests{service:web,version:${scope}} by {resource_name}"
    for version in ("v1", "v2"):
        for resource in ("get_/cart", "post_/checkout"):
            datadog.add_series(grouped.replace("${scope}", version),
                               [(T0 + 60 * k, 10.0 + k % 3) for k in range(60)],
                               tags=(f"resource_name:{resource}",))
    config = CanaryConfig.model_validate(
        {"metrics": [{"name": "requests", "query": {"type": "datadog", "query": grouped}}]})
    report = analyze(config, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST)
    assert sorted(m.name for m in report.metrics) == [
        "requests{resource_name=get_/cart}", "requests{resource_name=post_/checkout}"]
    assert all(m.classification is Classification.PASS for m in report.metrics)


def test_keys_never_appear_in_logs_errors_reprs_or_results(
    datadog: FakeDatadog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = source_for(datadog, timeout=0.2)
    # A proxy that echoes the request headers back in its error body.
    echo = json.dumps({"errors": [f"bad key {API_KEY} / {APP_KEY}"]}).encode()
    datadog.script(Answer(status=500, body=None), Answer(delay=1.0))
    messages: list[str] = []
    for _ in range(2):
        try:
            fetch(source)
        except SourceError as exc:
            messages.append(f"{exc!s} {exc!r} {exc.__cause__!r}")
    with FakeDatadog(API_KEY, APP_KEY, auth_status=403) as refusing:
        refusing.script(Answer(status=403, body=echo))
        try:
            fetch(DatadogSource(api_key=API_KEY, application_key=APP_KEY, site=refusing.url))
        except SourceError as exc:
            messages.append(str(exc))
    datadog.script(*[Answer(status=503)] * 6)
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v2")), START, END,
                     retry=FAST)
    texts = [*messages, repr(source), str(vars(source)), json.dumps(report.to_dict()),
             caplog.text]
    assert len(messages) == 3 and "***" in messages[2]
    for text in texts:
        assert API_KEY not in text and APP_KEY not in text


# -- the requested grid (issue 19) ------------------------------------------------------------
GRID_QUERY = "sum:trace.http.request.errors{service:web,version:${scope}}.as_count()"


def _grid_config(**query: object) -> CanaryConfig:
    return CanaryConfig.model_validate(
        {"metrics": [{"name": "errors", "direction": "increase", "nan_strategy": "replace",
                      "query": {"type": "datadog", "query": GRID_QUERY, **query}}]})


def test_missing_buckets_are_nan_on_the_requested_grid(datadog: FakeDatadog) -> None:
    # Five one-minute buckets, three empty: Datadog leaves them out of the pointlist.
    datadog.add_series(GRID_QUERY.replace("${scope}", "v7"), [(T0, 3.0), (T0 + 240, 1.0)])
    config = _grid_config()
    window = Scope("v7", start=START, end=START + timedelta(minutes=4))
    fetched = asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config))
    (series,) = fetched.series
    assert series.timestamps.tolist() == [T0 + 60 * k for k in range(5)]
    np.testing.assert_array_equal(series.values, [3.0, np.nan, np.nan, np.nan, 1.0])
    (request,) = datadog.requests
    assert request.params["query"].endswith(".as_count().rollup(sum, 60)")


def test_the_step_sets_the_buckets_datadog_rolls_up(datadog: FakeDatadog) -> None:
    # One point a minute; a 5-minute step sums them into 5-minute buckets.
    datadog.add_series(GRID_QUERY.replace("${scope}", "v8"),
                       [(T0 + 60 * k, 1.0) for k in range(60)])
    config = _grid_config()
    window = Scope("v8", start=START, end=END, step=timedelta(minutes=5))
    (series,) = asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config)).series
    assert series.timestamps.tolist() == [T0 + 300 * k for k in range(12)]
    assert series.values.tolist() == [5.0] * 12
    assert datadog.requests[-1].params["query"].endswith(".rollup(sum, 300)")


def test_rollup_none_keeps_datadogs_own_buckets_as_kayenta_does(datadog: FakeDatadog) -> None:
    datadog.add_series(GRID_QUERY.replace("${scope}", "v9"),
                       [(T0 + 60 * k, 2.0) for k in range(0, 24 * 60, 7)])
    config = _grid_config(rollup="none")
    window = Scope("v9", start=START, end=START + timedelta(days=1))
    (series,) = asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config)).series
    # No rollup sent: Datadog's API picks 300 s over a day; its grid, NaN where empty.
    assert datadog.requests[-1].params["query"] == GRID_QUERY.replace("${scope}", "v9")
    assert series.values.size == 289 and np.diff(series.timestamps).tolist() == [300.0] * 288
    assert np.isnan(series.values).any() and np.nanmax(series.values) == 2.0


def test_a_recorded_real_answer_replayed_through_the_server(datadog: FakeDatadog) -> None:
    recorded = json.loads((FIXTURES / "recorded_v1_system_cpu_idle.json").read_text())
    datadog.replay("system.cpu.idle{*}", recorded)
    config = CanaryConfig.model_validate({"metrics": [{"name": "idle", "query": {
        "type": "datadog", "query": "system.cpu.idle{*}", "rollup": "none"}}]})
    window = Scope("any", start=datetime.fromtimestamp(1641343852, UTC),
                   end=datetime.fromtimestamp(1641430252, UTC))
    (series,) = asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config)).series
    assert series.values.size == 288 and series.timestamps[0] == 1641344100.0
    assert series.values[0] == pytest.approx(91.4583840476142)


def test_nan_strategy_replace_makes_missing_buckets_zeros(datadog: FakeDatadog) -> None:
    for version, hits in (("v1", (0, 2, 5)), ("v2", (1, 3))):
        datadog.add_series(GRID_QUERY.replace("${scope}", version),
                           [(T0 + 60 * k, 1.0) for k in hits])
    report = analyze(_grid_config(), source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, START + timedelta(minutes=5), retry=FAST)
    errors = report.metric("errors")
    assert errors.classification is not Classification.ERROR
    # Six buckets a side, the empty ones zeros: counts line up minute by minute.
    assert errors.baseline.count == 6 and errors.canary.count == 6


# -- rate limits and concurrency --------------------------------------------------------------
def _many(datadog: FakeDatadog, count: int) -> CanaryConfig:
    for k in range(count):
        for version in ("v1", "v2"):
            datadog.add_series(f"avg:m{k}{{version:{version}}}",
                               [(T0 + 60 * p, 1.0 + (p % 3)) for p in range(60)])
    return CanaryConfig.model_validate({"metrics": [
        {"name": f"m{k}", "query": {"type": "datadog", "query": f"avg:m{k}{{version:${{scope}}}}"}}
        for k in range(count)]})


def test_requests_are_paced_by_the_announced_budget(datadog: FakeDatadog) -> None:
    datadog.rate_limit(4, 0.5)
    config = _many(datadog, 5)  # ten requests, four per half second
    report = analyze(config, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST, deadline=20.0)
    assert all(m.classification is Classification.PASS for m in report.metrics)
    assert datadog.rate_limited == 0  # never sent a request the budget did not allow
    arrivals = sorted(r.at for r in datadog.requests)
    assert len(arrivals) == 10 and arrivals[-1] - arrivals[0] >= 2 * 0.5 - 0.05


def test_a_429_sequence_waits_for_each_reset(datadog: FakeDatadog) -> None:
    limited = Answer(status=429, headers={"X-RateLimit-Limit": "100", "X-RateLimit-Period": "10",
                                          "X-RateLimit-Remaining": "0",
                                          "X-RateLimit-Reset": "0.4"})
    datadog.script(limited, limited)
    report = analyze(CONFIG, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST, concurrency=1)
    assert report.metric("latency").classification is Classification.PASS
    assert len(datadog.requests) == 4
    # Each retry of a side came after the reset it was given (the other side, booked into
    # the next period, went at the reset too; which side met the second 429 may vary).
    for query in {r.params["query"] for r in datadog.requests}:
        arrivals = [r.at for r in datadog.requests if r.params["query"] == query]
        assert (np.diff(arrivals) >= 0.4 - 0.02).all()


def test_at_most_max_concurrency_requests_in_flight_per_source(datadog: FakeDatadog) -> None:
    datadog.delay = 0.15
    config = _many(datadog, 8)
    report = analyze(config, source_for(datadog, max_concurrency=3),
                     ScopePair(Scope("v1"), Scope("v2")), START, END, retry=FAST)
    assert all(m.classification is Classification.PASS for m in report.metrics)
    assert 1 < datadog.max_in_flight <= 3


# -- v2: POST /api/v2/query/timeseries --------------------------------------------------------
ERRORS = "sum:trace.http.request.errors{service:web,version:${scope}}.as_count()"
HITS = "sum:trace.http.request.hits{service:web,version:${scope}}.as_count()"


def test_v2_single_query_sends_the_step_as_interval_and_fills_the_grid(
    datadog: FakeDatadog,
) -> None:
    datadog.add_series(GRID_QUERY.replace("${scope}", "v7"), [(T0, 3.0), (T0 + 240, 1.0)])
    config = _grid_config(api="v2")
    window = Scope("v7", start=START, end=START + timedelta(minutes=4))
    fetched = asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config))
    (request,) = datadog.requests
    assert request.path == "/api/v2/query/timeseries"
    assert request.body == {"data": {"type": "timeseries_request", "attributes": {
        "from": T0 * 1000, "to": (T0 + 240) * 1000, "interval": 60000,
        "queries": [{"data_source": "metrics", "name": "query",
                     "query": GRID_QUERY.replace("${scope}", "v7")}]}}}
    assert request.headers["dd-api-key"] == API_KEY
    (series,) = fetched.series
    np.testing.assert_array_equal(series.values, [3.0, np.nan, np.nan, np.nan, 1.0])


def test_v2_formula_over_named_queries_grouped_by_tags(datadog: FakeDatadog) -> None:
    for version, rate in (("v1", 0.01), ("v2", 0.05)):
        for resource in ("get_/cart", "post_/checkout"):
            tags = (f"resource_name:{resource}",)
            datadog.add_series(f"{ERRORS.replace('${scope}', version)} by {{resource_name}}",
                               [(T0 + 60 * k, 100 * rate) for k in range(60)], tags=tags)
            datadog.add_series(f"{HITS.replace('${scope}', version)} by {{resource_name}}",
                               [(T0 + 60 * k, 100.0) for k in range(60)], tags=tags)
    config = CanaryConfig.model_validate({"metrics": [{
        "name": "error rate", "direction": "increase", "query": {
            "type": "datadog", "api": "v2", "formula": "errors / hits * 100",
            "queries": {"errors": ERRORS + " by {resource_name}",
                        "hits": HITS + " by {resource_name}"}}}]})
    report = analyze(config, source_for(datadog), ScopePair(Scope("v1"), Scope("v2")),
                     START, END, retry=FAST)
    body = datadog.requests[0].body["data"]["attributes"]
    assert body["formulas"] == [{"formula": "errors / hits * 100"}]
    assert [q["name"] for q in body["queries"]] == ["errors", "hits"]
    names = sorted(m.name for m in report.metrics)
    assert names == ["error rate{resource_name=get_/cart}",
                     "error rate{resource_name=post_/checkout}"]
    fetched = report.details["fetch"]["error rate"]["canary"]
    assert fetched["query"].startswith("errors / hits * 100 with errors = sum:")


def test_v2_errors_carry_datadogs_message(datadog: FakeDatadog) -> None:
    recorded = json.loads((FIXTURES / "recorded_v2_bad_request.json").read_text())
    datadog.script(Answer(status=recorded["status"],
                          body=json.dumps(recorded["response"]).encode()))
    config = _grid_config(api="v2")
    window = Scope("v7", start=START, end=END)
    with pytest.raises(QueryError, match=r'Invalid type\. Expected "timeseries_request"'):
        asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config))
    datadog.script(Answer(body=json.dumps({"errors": "Rate of hits too low"}).encode()))
    with pytest.raises(QueryError, match="Rate of hits too low"):
        asyncio.run(source_for(datadog).fetch(config.metrics[0], window, config))


def test_the_service_wrapper_keeps_the_budget_wait_within_the_deadline(
    datadog: FakeDatadog,
) -> None:
    from judge.api.sources import TimedSource
    from judge.api.telemetry import ServiceMetrics

    # The first answer says the budget is gone for 30 s; the other side must not wait for it
    # inside its attempt (a timeout) but give up at once, naming the deadline.
    # Waiting would take the whole deadline (20 s); giving up at once a fraction of it.
    datadog.script(Answer(headers={"X-RateLimit-Limit": "1", "X-RateLimit-Period": "60",
                                   "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "300"}))
    timed = TimedSource("datadog", source_for(datadog), ServiceMetrics())
    began = time.perf_counter()
    report = analyze(CONFIG, timed, ScopePair(Scope("v1"), Scope("v2")), START, END,
                     retry=FAST, deadline=20.0)
    assert time.perf_counter() - began < 10.0
    assert len(datadog.requests) == 1
    reason = report.metric("latency").reason
    assert "rate limit (1 requests per 60 s) is used up" in reason
    assert "deadline of 20 s" in reason
