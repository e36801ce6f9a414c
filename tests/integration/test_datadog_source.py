"""DatadogSource against a local server speaking Datadog's ``GET /api/v1/query``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from judge.analysis import analyze
from judge.config import CanaryConfig
from judge.errors import (
    MalformedResponseError,
    RetryableSourceError,
    SourceAuthError,
    SourceError,
    SourceTimeoutError,
)
from judge.fetching import RetryPolicy
from judge.ports import FetchedSeries, Scope, ScopePair
from judge.report import Classification
from metricsources.datadog import DatadogSource
from tests.support.datadog import Answer, FakeDatadog

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
    assert request.params == {"from": str(T0), "to": str(T0 + 3540),
                              "query": QUERY.replace("${scope}", "v1")}
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


def test_429_is_retried_after_retry_after_within_the_cap(datadog: FakeDatadog) -> None:
    datadog.script(Answer(status=429, headers={"Retry-After": "0.3"}))
    source = source_for(datadog)
    with pytest.raises(RetryableSourceError) as caught:
        fetch(source)
    assert caught.value.retry_after == 0.3
    datadog.script(Answer(status=429, headers={"Retry-After": "30"}))
    began = time.perf_counter()
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v2")), START, END,
                     retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.4),
                     concurrency=1)
    elapsed = time.perf_counter() - began
    assert report.metric("latency").classification is Classification.PASS
    # One side waited the Retry-After of 30 s capped at max_delay (0.4 s).
    assert 0.4 <= elapsed < 5
    attempts = [report.details["fetch"]["latency"][side]["attempts"]
                for side in ("baseline", "canary")]
    assert sorted(attempts) == [1, 2]


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
     (b'{"series": [{"pointlist": [[1714564800000, "fast"]]}]}', "series #0"),
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
