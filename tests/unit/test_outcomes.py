"""Failure is not a verdict, in the library: failure kinds, the error outcome, the fetch
deadline, sequential polls, and the service's view of source health. In-memory sources; the
real Prometheus, proxy and doors are in ``tests/integration/test_outages.py``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from judge.analysis import analyze, poll_async
from judge.api.app import create_app
from judge.config import CanaryConfig
from judge.errors import (
    OUTAGE_KINDS,
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RetryableSourceError,
    ScopeValueError,
    SourceAuthError,
    SourceConnectionError,
    SourceTimeoutError,
    failure_kind,
)
from judge.fetching import RetryPolicy, fetch_metrics
from judge.judges.state import SequentialState
from judge.judging import poll
from judge.ports import FetchedSeries, Scope, ScopePair
from judge.report import Classification, Verdict
from metricsources._http import parse_retry_after
from tests.support.clock import service_settings
from tests.unit.test_sources_analysis import ScriptedSource, config, series

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
SCOPES = ScopePair(Scope("v1"), Scope("v2"))
FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)


def run(cfg: CanaryConfig, source: Any, **options: Any) -> Any:
    options.setdefault("retry", FAST)
    return analyze(cfg, source, SCOPES, start=T0, end=T0 + timedelta(hours=1), **options)


# -- kinds --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (SourceConnectionError("refused"), FailureKind.CONNECT),
        (RetryableSourceError("reset"), FailureKind.CONNECT),
        (RetryableSourceError("HTTP 503", status=503), FailureKind.HTTP),
        (RetryableSourceError("HTTP 429", status=429, retry_after=1.0), FailureKind.HTTP),
        (SourceTimeoutError("slow"), FailureKind.TIMEOUT),
        (TimeoutError(), FailureKind.TIMEOUT),
        (SourceAuthError("HTTP 403", status=403), FailureKind.AUTH),
        (QueryError("HTTP 400", status=400), FailureKind.REJECTED),
        (FatalSourceError("HTTP 404", status=404), FailureKind.HTTP),
        (MalformedResponseError("not JSON"), FailureKind.MALFORMED),
        (ScopeValueError("unsafe"), FailureKind.CONFIG),
        (FatalSourceError("tls", kind=FailureKind.CONNECT), FailureKind.CONNECT),
        (ZeroDivisionError(), FailureKind.SOURCE),
    ],
)
def test_every_failure_has_a_kind(error: BaseException, kind: FailureKind) -> None:
    assert failure_kind(error) is kind


def test_outages_are_the_source_failing_not_the_config() -> None:
    assert {FailureKind.CONFIG, FailureKind.BAD_DATA}.isdisjoint(OUTAGE_KINDS)
    assert {"connect", "timeout", "http", "rejected", "auth", "no_series"} <= OUTAGE_KINDS


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("", None), ("soon", None),
     ("-1", None), ("nan", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=T0.timestamp()) == 30.0


# -- the error outcome of an analysis -------------------------------------------------------------
def test_a_source_that_is_down_gives_an_error_outcome_naming_source_query_and_kind() -> None:
    source = ScriptedSource({("a", "v2"): SourceConnectionError("connection refused")})
    report = run(config("a", "b"), source)
    assert report.verdict is Verdict.ERROR and np.isnan(report.score)
    reason = report.metric("a").reason
    assert reason == ("canary: source 'default' (connect), query 'a@v2': connection refused "
                      "(gave up after 3 attempts)")
    assert report.details["fetch"]["a"]["canary"]["kind"] == "connect"
    assert report.metric("b").classification is Classification.PASS
    assert "'a' (connect)" in report.reason


def test_a_config_problem_keeps_its_old_rule_an_error_metric_scored_as_a_failure() -> None:
    cfg = config("sfx", "ok", sfx={"type": "signalfx", "metricName": "cpu"})
    report = run(cfg, ScriptedSource())
    assert report.verdict is Verdict.FAIL  # 1 of 2 failing: score 50
    assert report.metric("sfx").details["fetch_failure"] == "config"


def test_an_empty_query_beside_others_of_its_scope_is_missing_data() -> None:
    empty = FetchedSeries("q", ())
    report = run(config("errors", "latency"), ScriptedSource({("errors", "v2"): empty}))
    assert report.metric("errors").classification is Classification.NODATA
    assert not report.is_error


def test_no_series_is_decided_per_source_and_scope() -> None:
    # The canary scope matches nothing on one source, and has data on the other.
    empty = FetchedSeries("q", ())
    down = ScriptedSource({("a", "v2"): empty}, query_types=frozenset({"prometheus"}))
    other = ScriptedSource(query_types=frozenset({"datadog"}))
    cfg = CanaryConfig.model_validate({"metrics": [
        {"name": "a", "query": {"type": "prometheus", "promql": "x"}},
        {"name": "b", "query": {"type": "datadog", "query": "avg:x{*}"}},
    ]})
    report = run(cfg, {"prometheus": down, "datadog": other})
    assert report.metric("a").details["fetch_failure"] == "no_series"
    assert "it is the only query for this scope" in report.metric("a").reason
    assert report.metric("b").classification is Classification.PASS


# -- the deadline -------------------------------------------------------------------------------
def test_the_deadline_cuts_a_slow_source_and_says_so() -> None:
    # The source would take a minute: cut at the deadline, the run takes a fraction of it
    # (half a minute is a margin no load on the machine comes near; the reason says why).
    source = ScriptedSource(delay=60.0)
    began = time.monotonic()
    report = run(config("m"), source, deadline=0.5, timeout=120.0)
    took = time.monotonic() - began
    assert took < 30.0
    reason = report.metric("m").reason
    assert "(timeout)" in reason and "the analysis' deadline of 0.5 s" in reason
    assert report.is_error


def test_no_retry_waits_past_the_deadline_for_retry_after() -> None:
    # Waiting would take the whole deadline (60 s): giving up at once takes a fraction of
    # it, with a margin (30 s) no load on the machine comes near.
    busy = RetryableSourceError("HTTP 429: slow down", status=429, retry_after=600.0)
    source = ScriptedSource({("m", "v1"): busy, ("m", "v2"): busy})
    began = time.monotonic()
    report = run(config("m"), source, deadline=60.0,
                 retry=RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=600.0))
    assert time.monotonic() - began < 30.0
    reason = report.metric("m").reason
    assert ("gave up after 1 attempt: waiting 600 s as the source asked would pass the "
            "analysis' deadline") in reason
    assert "(http)" in reason
    assert source.calls.count(("m", "v1")) == 1


def test_retries_that_fit_the_deadline_still_happen() -> None:
    flaky = iter([RetryableSourceError("HTTP 503", status=503, retry_after=0.05)])
    source = ScriptedSource({("m", "v2"): lambda: next(flaky, None)})
    report = run(config("m"), source, deadline=3.0)
    assert report.verdict is not Verdict.ERROR
    assert report.details["fetch"]["m"]["canary"]["attempts"] == 2


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="deadline"):
        asyncio.run(fetch_metrics(config("m"), ScriptedSource(), SCOPES, deadline=0))


# -- sequential polls ---------------------------------------------------------------------------
def _poll(cfg: CanaryConfig, source: ScriptedSource, state: SequentialState) -> Any:
    outcome = asyncio.run(poll_async(cfg, source, SCOPES, state, start=T0,
                                     end=T0 + timedelta(minutes=5), retry=FAST))
    return outcome.report, outcome.state


def _timed(values: Any) -> FetchedSeries:
    return FetchedSeries("q", (series(values),))


def test_an_undecided_poll_whose_source_failed_is_an_error() -> None:
    cfg = config("a", "b")
    good = _timed(np.full(6, 100.0))
    source = ScriptedSource({("a", "v1"): good, ("a", "v2"): good,
                             ("b", "v2"): SourceConnectionError("connection refused")})
    report, _ = _poll(cfg, source, SequentialState.new("r", cfg.name))
    assert report.is_error
    assert report.details["sequential"]["status"] == "error"
    assert report.metric("b").classification is Classification.ERROR
    assert report.metric("b").reason.startswith("Not fetched this poll (connect): ")


def test_a_decided_run_keeps_its_decision_through_an_outage() -> None:
    cfg = config("a")
    state = SequentialState.new("r", cfg.name)
    rng = np.random.default_rng(2)
    baseline, canary = rng.normal(100, 1, 120), rng.normal(160, 1, 120)
    report, state = poll(cfg, state, {"a": baseline}, {"a": canary})
    assert report.details["sequential"]["status"] == "fail"
    down = ScriptedSource({("a", "v1"): SourceConnectionError("refused"),
                           ("a", "v2"): SourceConnectionError("refused")})
    again, _ = _poll(cfg, down, state)
    assert again.verdict is Verdict.FAIL
    assert again.details["sequential"]["status"] == "fail"


def test_a_poll_failing_for_a_config_reason_is_not_an_outage() -> None:
    cfg = config("a", "sfx", sfx={"type": "signalfx", "metricName": "cpu"})
    good = _timed(np.full(6, 100.0))
    source = ScriptedSource({("a", "v1"): good, ("a", "v2"): good})
    report, _ = _poll(cfg, source, SequentialState.new("r", cfg.name))
    assert not report.is_error
    assert report.details["sequential"]["status"] == "continue"


# -- source health in the service ---------------------------------------------------------------
def test_readyz_shows_a_source_that_is_down_and_stays_ready() -> None:
    settings = service_settings(
        source_check_interval_seconds=0,
        sources={"prom": {"type": "prometheus", "url": "http://127.0.0.1:9",
                          "timeout_seconds": 0.5}},
    )
    config_doc = {"name": "c", "metrics": [
        {"name": "m", "query": {"type": "prometheus", "promql": "up{v='${scope}'}"}}]}
    with TestClient(create_app(settings)) as client:
        before = client.get("/readyz").json()
        assert before["status"] == "ready" and before["database"] == "ok"
        assert before["sources"]["prom"]["status"] == "unknown"
        answer = client.post("/argo/v1/judge", json={"config": config_doc, "baseline": "a",
                                                     "canary": "b", "source": "prom"})
        assert answer.status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["sources"]["prom"]["status"] == "down"
        assert body["sources"]["prom"]["kind"] == "connect"
        assert body["sources"]["prom"]["via"] == "fetch"
        assert "prom" in body["detail"]
        metrics = client.get("/metrics").text
        assert 'canary_judge_source_up{source="prom"} 0.0' in metrics


def test_the_periodic_check_probes_sources() -> None:
    settings = service_settings(
        source_check_interval_seconds=0.1,
        sources={"prom": {"type": "prometheus", "url": "http://127.0.0.1:9",
                          "timeout_seconds": 0.5}},
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60  # reached only when the test fails: load-proof
        while time.monotonic() < deadline:
            health = client.get("/readyz").json()["sources"]["prom"]
            if health["status"] != "unknown":
                break
            time.sleep(0.05)
        assert health["status"] == "down" and health["via"] == "check"
        assert "connection refused" in health["error"]
        assert 'canary_judge_source_checks_total{result="connect",source="prom"}' in (
            client.get("/metrics").text)
