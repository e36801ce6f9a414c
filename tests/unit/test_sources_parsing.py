"""Parsing Prometheus range-query and Datadog query answers (no I/O but reading fixtures)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from judge.errors import (
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RetryableSourceError,
    SourceAuthError,
)
from judge.ports import TaggedSeries
from metricsources.datadog import parse_query_response
from metricsources.prometheus import _classify_http_error, align_to_grid, parse_range_result
from tests.support.requires import require_shared

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def prometheus_result(name: str) -> object:
    return json.loads((FIXTURES / "prometheus" / name).read_text())["data"]["result"]


def test_prometheus_series_with_tags() -> None:
    series = parse_range_result(prometheus_result("range_with_tags.json"))
    assert [dict(s.tags) for s in series] == [
        {"uri": "/checkout", "version": "v42"},
        {"uri": "/cart", "version": "v42"},
    ]
    assert series[0].timestamps.tolist() == [1714564800, 1714564860, 1714564920, 1714564980]
    np.testing.assert_array_equal(series[0].values, [3.0, 0.0, np.nan, 5.5])
    assert series[1].values[1] == math.inf


def test_prometheus_series_without_tags_and_empty() -> None:
    (series,) = parse_range_result(prometheus_result("range_without_tags.json"))
    assert dict(series.tags) == {}
    assert series.values.tolist() == [101.25, 99.0, 100.5]
    assert series.timestamps[0] == 1714564800.5
    assert parse_range_result(prometheus_result("range_empty.json")) == ()


def test_prometheus_malformed_values_and_shapes() -> None:
    with pytest.raises(MalformedResponseError, match="#0"):
        parse_range_result(prometheus_result("range_malformed.json"))
    with pytest.raises(MalformedResponseError, match="expected a list"):
        parse_range_result({"resultType": "vector"})
    with pytest.raises(MalformedResponseError):
        parse_range_result([{"metric": {}}])


def test_kayenta_recorded_responses_parse() -> None:
    folder = require_shared("prometheus-responses")

    def load(name: str) -> tuple[TaggedSeries, ...]:
        return parse_range_result(json.loads((folder / name).read_text())["data"]["result"])

    with_tags = load("rangeQueryWithTags.json")
    assert with_tags and all(set(s.tags) == {"exception", "method", "uri"} for s in with_tags)
    assert with_tags[0].values[:3].tolist() == [4.0, 4.0, 6.0]
    assert with_tags[0].timestamps[0] == pytest.approx(1599658195.474)
    (without,) = load("rangeQueryWithoutTags.json")
    assert dict(without.tags) == {} and without.values[:2].tolist() == [43.0, 41.0]
    assert np.all(np.diff(without.timestamps) > 0)
    assert load("rangeQueryEmpty.json") == ()


def test_align_to_grid_marks_missing_points_nan() -> None:
    series = TaggedSeries({}, np.array([100.0, 160.0, 340.0]), np.array([1.0, 2.0, 5.0]))
    aligned = align_to_grid(series, start=100.0, step=60.0, count=6)
    assert aligned.timestamps.tolist() == [100, 160, 220, 280, 340, 400]
    np.testing.assert_array_equal(aligned.values, [1.0, 2.0, np.nan, np.nan, 5.0, np.nan])
    off_grid = TaggedSeries({}, np.array([100.0, 130.0]), np.array([1.0, 2.0]))
    assert align_to_grid(off_grid, start=100.0, step=60.0, count=3) is off_grid


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, QueryError), (422, QueryError), (401, SourceAuthError), (403, SourceAuthError),
     (408, RetryableSourceError), (429, RetryableSourceError), (500, RetryableSourceError),
     (503, RetryableSourceError), (404, FatalSourceError)],
)
def test_prometheus_http_errors_are_classified(status: int, kind: type[Exception]) -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}'
    error = _classify_http_error(status, body, "http://p:9090")
    assert type(error) is kind and error.status == status
    assert f"HTTP {status}" in str(error) and "bad_data: parse error at char 5" in str(error)


def test_prometheus_error_answer_that_is_not_its_json_keeps_the_text() -> None:
    error = _classify_http_error(502, b"<html>Bad Gateway</html>", "http://p:9090")
    assert isinstance(error, RetryableSourceError)
    assert "HTTP 502: <html>Bad Gateway</html>" in str(error)


def test_datadog_grouped_answer_with_gaps() -> None:
    body = json.loads((FIXTURES / "datadog" / "query_grouped.json").read_text())
    first, second = parse_query_response(body)
    assert dict(first.tags) == {"resource_name": "get_/cart"}
    assert first.timestamps.tolist() == [1714564800.0, 1714564860.0, 1714564920.0]
    np.testing.assert_array_equal(first.values, [0.125, np.nan, 0.25])
    assert dict(second.tags) == {"resource_name": "post_/checkout"}


def test_datadog_untagged_answer_reads_scope() -> None:
    body = json.loads((FIXTURES / "datadog" / "query_untagged.json").read_text())
    (series,) = parse_query_response(body)
    assert dict(series.tags) == {"version": "v1"}
    assert series.values.tolist() == [2.0, 0.0, 7.0]


def test_datadog_error_status_and_malformed_bodies() -> None:
    body = json.loads((FIXTURES / "datadog" / "query_error_status.json").read_text())
    with pytest.raises(QueryError, match="Error parsing query"):
        parse_query_response(body)
    with pytest.raises(MalformedResponseError, match="no 'series' list"):
        parse_query_response({"status": "ok"})
    with pytest.raises(MalformedResponseError, match="JSON list"):
        parse_query_response([])
    with pytest.raises(MalformedResponseError, match="#0"):
        parse_query_response({"status": "ok", "series": [{"pointlist": [[1, "x"]]}]})
    with pytest.raises(MalformedResponseError, match="no 'status'"):
        parse_query_response({"series": []})


@pytest.mark.parametrize("status", ["warning", "", "partial"])
def test_datadog_any_status_but_ok_is_an_error_with_its_message(status: str) -> None:
    # Issue 19: a status other than ok/error used to give no series, silently.
    body = {"status": status, "message": "Query timed out on some shards", "series": []}
    with pytest.raises(QueryError, match=f"status '{status}': Query timed out on some shards"):
        parse_query_response(body)
