"""What the Prometheus source makes of each kind of answer to a range query, from a loopback
server (``tests.support.faults.ErrorServer``) answering every request alike: the request it
sends (Prometheus' query_range parameters, whole seconds), a body that is not a range-query
result, and error answers with their status, message and ``Retry-After``."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from judge.config import CanaryConfig
from judge.errors import (
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RetryableSourceError,
    SourceAuthError,
    SourceError,
)
from judge.ports import FetchedSeries, Scope
from metricsources.prometheus import PrometheusSource
from tests.support.faults import ErrorServer

START = datetime(2024, 5, 1, 12, 0, 0, 400000, tzinfo=UTC)
CONFIG = CanaryConfig.model_validate({"metrics": [
    {"name": "m", "query": {"type": "prometheus", "promql": 'up{version="${scope}"}'}},
]})


def _fetch(url: str) -> FetchedSeries:
    source = PrometheusSource(url, timeout=5)
    scope = Scope("v1").with_window(START, START + timedelta(minutes=2), timedelta(minutes=1))
    try:
        return asyncio.run(source.fetch(CONFIG.metrics[0], scope, CONFIG))
    finally:
        source.close()


def _failure(status: int, body: bytes, headers: dict[str, str] | None = None
             ) -> tuple[SourceError, ErrorServer]:
    with ErrorServer(status, body=body, headers=headers) as server, pytest.raises(
        SourceError
    ) as caught:
        _fetch(server.url)
    return caught.value, server


def test_the_request_is_prometheus_range_query_in_whole_seconds() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "up", "version": "v1"},
         "values": [[1714564800, "1"], [1714564860, "NaN"], [1714564920, "+Inf"]]},
    ]}}).encode()
    with ErrorServer(200, body=body) as server:
        fetched = _fetch(server.url)
    [(_, path)] = server.requests
    split = urllib.parse.urlsplit(path)
    assert split.path == "/api/v1/query_range"
    assert dict(urllib.parse.parse_qsl(split.query)) == {
        "query": 'up{version="v1"}', "start": "1714564800", "end": "1714564920", "step": "60",
    }
    [series] = fetched.series
    assert series.tags == {"version": "v1"}
    assert series.timestamps.tolist() == [1714564800.0, 1714564860.0, 1714564920.0]
    assert series.values[0] == 1.0 and series.values[2] == float("inf")
    assert series.values[1] != series.values[1]  # NaN


@pytest.mark.parametrize("body", [
    b"<html>a proxy's error page</html>",
    b'{"status": "success"}',
    b'{"status": "success", "data": {"resultType": "vector", "result": {}}}',
    b'{"status": "success", "data": {"result": [{"metric": {}, "values": [[1, null]]}]}}',
])
def test_a_body_that_is_not_a_range_query_result_is_malformed(body: bytes) -> None:
    error, _ = _failure(200, body)
    assert isinstance(error, MalformedResponseError)
    assert "Prometheus" in str(error)


def test_an_error_answer_keeps_its_status_message_and_retry_after() -> None:
    body = json.dumps({"status": "error", "errorType": "unavailable",
                       "error": "too many queries"}).encode()
    error, server = _failure(503, body, {"Retry-After": "2"})
    assert isinstance(error, RetryableSourceError)
    assert error.status == 503 and error.retry_after == 2.0
    assert f"Prometheus at {server.url} answered HTTP 503: unavailable: too many queries" in str(
        error)


@pytest.mark.parametrize(("status", "kind"), [
    (400, QueryError), (401, SourceAuthError), (403, SourceAuthError),
])
def test_error_statuses_are_classified(status: int, kind: type[SourceError]) -> None:
    error, _ = _failure(status, b'{"status": "error", "errorType": "bad_data", "error": "no"}')
    assert type(error) is kind and error.status == status
    assert "bad_data: no" in str(error)


@pytest.mark.parametrize(("url", "headers", "reason"), [
    ("http://127.0.0.1:{port}", {"Authorization": "Bearer s3cret\n"}, "InvalidHeader"),
    ("http://127.0.0.1:99999", None, "InvalidURL"),
])
def test_a_request_that_cannot_be_made_is_a_request_error_not_a_malformed_answer(
    url: str, headers: dict[str, str] | None, reason: str
) -> None:
    # requests' InvalidHeader / InvalidURL are ValueErrors too: they must not read as a
    # malformed body (nor be retried, nor quote the header's value).
    with ErrorServer(200, body=b'{"status": "success", "data": {}}') as server:
        source = PrometheusSource(url.format(port=server.url.rsplit(":", 1)[1]),
                                  headers=headers, timeout=5)
        scope = Scope("v1").with_window(START, START + timedelta(minutes=2),
                                        timedelta(minutes=1))
        try:
            with pytest.raises(FatalSourceError) as fetched:
                asyncio.run(source.fetch(CONFIG.metrics[0], scope, CONFIG))
            with pytest.raises(FatalSourceError) as probed:
                asyncio.run(source.probe())
        finally:
            source.close()
    for caught in (fetched, probed):
        assert not isinstance(caught.value, MalformedResponseError)
        assert caught.value.kind is FailureKind.CONNECT
        expected = f"request to Prometheus at {source.url} cannot be made: {reason}"
        assert str(caught.value) == expected
        assert "s3cret" not in str(caught.value)
    assert server.requests == []  # nothing was sent


@pytest.mark.parametrize(("body", "problem"), [
    (b"<html>not the API</html>", "not JSON"),
    (b'{"status": "success"}', "its API's answer to a query"),
])
def test_the_probe_reads_the_same_answers_as_a_fetch(body: bytes, problem: str) -> None:
    with ErrorServer(200, body=body) as server:
        source = PrometheusSource(server.url, timeout=5)
        try:
            with pytest.raises(MalformedResponseError, match=problem):
                asyncio.run(source.probe())
        finally:
            source.close()
