"""Datadog without I/O: Kayenta's query building (its own test cases as fixtures), the rollup
that follows the step, the requested grid, site names, and the rate-limit budget.

Fixtures: ``tests/fixtures/datadog/kayenta-cases.json`` (Kayenta's DatadogMetricsServiceSpec and
DatadogTimeSeriesTest cases, with their source), ``recorded_v1_system_cpu_idle.json`` (a real
``GET /api/v1/query`` answer recorded by Datadog's Python client; see that folder's README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judge.config import CanaryConfig
from judge.config.queries import DatadogQuery, DatadogRollup
from judge.errors import ConfigError, MalformedResponseError, QueryError, ScopeValueError
from judge.ports import Scope, TaggedSeries
from metricsources.datadog import (
    MAX_POINTS,
    DatadogSource,
    answer_interval,
    on_requested_grid,
    parse_query_response,
    parse_timeseries_response,
    render_datadog_query,
)
from metricsources.datadog_query import with_rollup
from metricsources.datadog_sites import DATADOG_SITES, datadog_base_url
from metricsources.ratelimit import RateBudget

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datadog"
CASES = json.loads((FIXTURES / "kayenta-cases.json").read_text())


# -- Kayenta's query building -----------------------------------------------------------------
@pytest.mark.parametrize("case", CASES["build_query"], ids=lambda c: c["name"])
def test_kayenta_build_query_cases(case: dict[str, Any]) -> None:
    query = DatadogQuery.model_validate({"type": "datadog", **case["query"]})
    scope = Scope(case["scope"], location=case.get("location"),
                  params=case.get("extendedScopeParams", {}))
    assert render_datadog_query(query, scope, case.get("templates", {})) == case["expected"]


def test_an_imported_kayenta_config_with_only_a_filter_template_renders_its_query() -> None:
    # A Kayenta Datadog query may name only a customFilterTemplate (no metricName).
    config = CanaryConfig.from_kayenta({
        "name": "dd", "templates": {"cpu": "avg:system.cpu.user{$\\{scope},env:$\\{env}}"},
        "metrics": [{"name": "cpu", "query": {"type": "datadog", "customFilterTemplate": "cpu"},
                     "groups": ["g"], "analysisConfigurations": {"canary": {}},
                     "scopeName": "default"}],
        "classifier": {"groupWeights": {"g": 100}},
    })
    source = DatadogSource(api_key="k", application_key="a", site="http://127.0.0.1:1")
    scope = Scope("version:v2", params={"env": "prod"})
    assert source.render(config.metrics[0], scope, config) == (
        "avg:system.cpu.user{version:v2,env:prod}.rollup(avg, 60)")


def test_a_missing_filter_template_is_a_config_error() -> None:
    query = DatadogQuery(customFilterTemplate="nope")
    with pytest.raises(Exception, match="'nope' was not found") as caught:
        render_datadog_query(query, Scope("v1"), {"cpu": "x"})
    assert getattr(caught.value, "kind", None) == "config"


def test_a_tag_list_fits_only_a_whole_filter_item() -> None:
    # {${scope}} takes Kayenta's tag-list scopes; version:${scope} takes one tag value.
    whole = DatadogQuery(customInlineTemplate="avg:x{${scope}}")
    assert render_datadog_query(whole, Scope("version:v2,region:eu"), {}) == (
        "avg:x{version:v2,region:eu}")
    inside = DatadogQuery(customInlineTemplate="avg:x{version:${scope}}")
    with pytest.raises(ScopeValueError, match="not safe"):
        render_datadog_query(inside, Scope("v2,region:eu"), {})
    with pytest.raises(ScopeValueError, match="not safe"):
        render_datadog_query(whole, Scope("v2} by {host"), {})


# -- the rollup -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "rollup", "expected"),
    [
        ("avg:system.cpu.user{env:prod}", DatadogRollup.AUTO,
         "avg:system.cpu.user{env:prod}.rollup(avg, 60)"),
        ("sum:hits{v:1}.as_count()", DatadogRollup.AUTO,
         "sum:hits{v:1}.as_count().rollup(sum, 60)"),
        ("avg:lat{v:1} by {resource_name}", DatadogRollup.AUTO,
         "avg:lat{v:1} by {resource_name}.rollup(avg, 60)"),
        ("p99:trace.http.request{v:1}", DatadogRollup.AUTO,
         "p99:trace.http.request{v:1}.rollup(60)"),
        ("avg:x{*}.rollup(max, 300)", DatadogRollup.AUTO, "avg:x{*}.rollup(max, 300)"),
        ("abs(avg:x{a:b}) * 2", DatadogRollup.MAX, "abs(avg:x{a:b}.rollup(max, 60)) * 2"),
        ("avg:x{*}", DatadogRollup.NONE, "avg:x{*}"),
    ],
)
def test_the_rollup_follows_the_step(query: str, rollup: DatadogRollup, expected: str) -> None:
    assert with_rollup(query, 60, rollup) == expected


def test_a_scope_step_becomes_the_rollup_interval_and_too_many_points_are_refused() -> None:
    config = CanaryConfig.model_validate(
        {"metrics": [{"name": "m", "query": {"type": "datadog", "query": "avg:x{v:${scope}}"}}]})
    source = DatadogSource(api_key="k", application_key="a", site="http://127.0.0.1:1")
    from datetime import UTC, datetime, timedelta

    start = datetime(2024, 5, 1, tzinfo=UTC)
    five = Scope("v1", start=start, end=start + timedelta(hours=1), step=timedelta(minutes=5))
    assert source.render(config.metrics[0], five, config) == "avg:x{v:v1}.rollup(avg, 300)"
    long = Scope("v1", start=start, end=start + timedelta(days=2), step=timedelta(minutes=1))
    import asyncio

    with pytest.raises(Exception, match=f"more than the {MAX_POINTS} Datadog returns"):
        asyncio.run(source.fetch(config.metrics[0], long, config))
    with pytest.raises(Exception, match="whole seconds"):
        source.render(config.metrics[0], Scope("v1", step=timedelta(seconds=1.5)), config)


# -- the grid ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES["fill"], ids=lambda c: c["name"])
def test_kayenta_fill_cases(case: dict[str, Any]) -> None:
    body = {"status": "ok", "series": [{"pointlist": case["pointlist"],
                                        "interval": case["interval"]}]}
    (series,) = on_requested_grid(parse_query_response(body), case["start_ms"] / 1000,
                                  case["end_ms"] / 1000, float(case["interval"]))
    expected = [np.nan if v is None else v for v in case["expected"]]
    np.testing.assert_array_equal(series.values, expected)


def test_five_buckets_with_three_missing_are_five_points() -> None:
    # Issue 19's example: [3, 1] came back; Kayenta sees [3, NaN, NaN, NaN, 1].
    t0 = 1714564800.0
    sparse = TaggedSeries({}, np.array([t0, t0 + 240]), np.array([3.0, 1.0]))
    (series,) = on_requested_grid((sparse,), t0, t0 + 240, 60.0)
    np.testing.assert_array_equal(series.values, [3.0, np.nan, np.nan, np.nan, 1.0])
    assert series.timestamps.tolist() == [t0 + 60 * k for k in range(5)]


def test_the_recorded_real_answer_lands_on_its_grid() -> None:
    body = json.loads((FIXTURES / "recorded_v1_system_cpu_idle.json").read_text())
    assert answer_interval(body) == 300.0
    # Recorded for from=1641343852&to=1641430252: 288 five-minute buckets from the first
    # multiple of 300 s after 'from'.
    (series,) = on_requested_grid(parse_query_response(body), 1641343852, 1641430252, 300.0)
    assert series.values.size == 288 and np.isfinite(series.values).all()
    assert series.timestamps[0] == 1641344100.0
    # Asked for 60 s, answered in 300 s buckets: an error saying so, not a silent regrid.
    with pytest.raises(MalformedResponseError, match="300 s buckets, not on the 60 s grid"):
        on_requested_grid(parse_query_response(body), 1641343852, 1641430252, 60.0,
                          interval=answer_interval(body))


# -- sites ------------------------------------------------------------------------------------
@pytest.mark.parametrize("site", DATADOG_SITES)
def test_every_documented_site_name_is_accepted(site: str) -> None:
    assert datadog_base_url(site) == f"https://api.{site}"
    assert datadog_base_url(f"app.{site}") == f"https://api.{site}"
    assert datadog_base_url(f"api.{site}/") == f"https://api.{site}"


@pytest.mark.parametrize("site", ["datadoghq.co", "us4.datadoghq.com", "ftp://dd", "https://"])
def test_a_bad_site_is_refused_in_one_line(site: str) -> None:
    with pytest.raises(ConfigError) as caught:
        DatadogSource(api_key="k", application_key="a", site=site)
    assert "\n" not in str(caught.value) and site.split("://")[0] in str(caught.value)


def test_site_and_keys_from_the_environment_as_the_official_client_reads_them() -> None:
    env = {"DD_SITE": "us5.datadoghq.com", "DD_API_KEY": "k", "DD_APP_KEY": "a"}
    source = DatadogSource(environ=env)
    assert source.site == "https://api.us5.datadoghq.com"
    assert DatadogSource(environ={}).site == "https://api.datadoghq.com"
    assert DatadogSource(site="datadoghq.eu", environ=env).site == "https://api.datadoghq.eu"
    with pytest.raises(ConfigError, match=r"unknown Datadog site 'datadog\.eu'"):
        DatadogSource(environ={"DD_SITE": "datadog.eu"})


# -- the rate-limit budget --------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(remaining: int, reset: float, limit: int = 3, period: float = 10) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Period": f"{period:g}",
            "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": f"{reset:g}"}


def test_the_budget_sends_while_it_lasts_then_books_the_next_periods() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    assert budget.book().wait == 0  # unknown: go
    budget.observe(_headers(remaining=1, reset=4))
    budget.done()
    assert budget.book().wait == 0  # the last one of this period
    waits = [budget.book().wait for _ in range(4)]
    # The period ends in 4 s and holds 3 requests: three go then, the fourth a period later.
    assert waits == [4.0, 4.0, 4.0, 14.0]
    clock.now += 4.0  # the period turned: its three were booked already
    assert budget.book().wait == 10.0


def test_requests_in_flight_are_taken_from_the_announced_remaining() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    for _ in range(2):
        budget.book()
    # The first answer says 2 remain; the other one still in flight may not be counted yet.
    budget.observe(_headers(remaining=2, reset=5))
    assert budget.remaining == 1
    budget.done()
    assert budget.book().wait == 0
    assert budget.book().wait == 5.0


def test_a_429_empties_the_budget_until_its_reset() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    budget.book()
    budget.observe(_headers(remaining=0, reset=7.5))
    budget.done()
    assert budget.book().wait == 7.5
    clock.now += 7.5
    assert budget.book().wait == 0  # a new period: the limit again, minus the booking


# -- v2 ---------------------------------------------------------------------------------------
def test_the_recorded_v2_answer_lands_on_its_grid_with_nan_for_missing_buckets() -> None:
    recorded = json.loads((FIXTURES / "recorded_v2_timeseries.json").read_text())
    attributes = recorded["request"]["data"]["attributes"]
    (series,) = parse_timeseries_response(recorded["response"])
    assert series.values.tolist() == [1.0, 1.0, 87.0] and dict(series.tags) == {}
    (placed,) = on_requested_grid((series,), attributes["from"] / 1000, attributes["to"] / 1000,
                                  attributes["interval"] / 1000)
    assert placed.values.size == 720 and np.isfinite(placed.values).sum() == 3
    assert np.nansum(placed.values) == 89.0


def test_v2_errors_are_errors_with_datadogs_message() -> None:
    with pytest.raises(QueryError, match="errors: Unknown formula variable 'c'"):
        parse_timeseries_response({"errors": "Unknown formula variable 'c'"})
    with pytest.raises(MalformedResponseError, match="'series', 'times', 'values'"):
        parse_timeseries_response({"data": {"attributes": {"series": []}}})
    with pytest.raises(MalformedResponseError, match="series #0"):
        parse_timeseries_response({"data": {"attributes": {
            "series": [{"group_tags": []}], "times": [1000, 2000], "values": [[1.0]]}}})


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"queries": {"a": "avg:x{*}"}, "formula": "a"}, "are for 'api: v2'"),
     ({"api": "v2", "queries": {"a": "avg:x{*}"}}, "needs both 'queries'"),
     ({"api": "v2", "queries": {"a": "avg:x{*}"}, "formula": "a", "query": "avg:y{*}"},
      "not both"),
     ({"api": "v2", "queries": {"1a": "avg:x{*}"}, "formula": "1a"}, "query names"),
     ({"api": "v3", "query": "avg:x{*}"}, "'v1' or 'v2'")],
)
def test_v2_query_configs_are_checked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatadogQuery.model_validate({"type": "datadog", **fields})


def test_a_v2_formula_renders_with_its_queries_and_no_rollup() -> None:
    config = CanaryConfig.model_validate({"metrics": [{"name": "error rate", "query": {
        "type": "datadog", "api": "v2", "formula": "errors / hits * 100",
        "queries": {"errors": "sum:trace.errors{version:${scope}}.as_count()",
                    "hits": "sum:trace.hits{version:${scope}}.as_count()"}}}]})
    source = DatadogSource(api_key="k", application_key="a", site="http://127.0.0.1:1")
    assert source.render(config.metrics[0], Scope("v2"), config) == (
        "errors / hits * 100 with errors = sum:trace.errors{version:v2}.as_count(); "
        "hits = sum:trace.hits{version:v2}.as_count()")


def test_without_a_period_the_budget_is_unknown_after_the_reset() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    budget.book()
    budget.observe({"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": "2"})
    budget.done()
    assert [budget.book().wait for _ in range(2)] == [2.0, 2.0]
    clock.now += 2.0
    assert budget.book().wait == 0  # nothing announced since: go, and learn again
