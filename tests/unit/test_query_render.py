"""Query rendering: native templates, Kayenta's Prometheus and Datadog query configs, escaping.

Kayenta references: ``PrometheusMetricsService.buildQuery`` / ``addScopeFilter`` and
``QueryConfigUtils.expandCustomFilter`` (spinnaker/kayenta), ``DatadogMetricsService.buildQuery``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from judge.config import CanaryConfig, MetricConfig
from judge.config.queries import DatadogQuery, DemoQuery, PrometheusQuery
from judge.errors import FatalSourceError, ScopeValueError, UnsupportedSourceError
from judge.ports import Scope
from metricsources.datadog import DatadogSource, group_by_fields, render_datadog_query
from metricsources.prometheus import PrometheusSource, render_prometheus_query
from metricsources.templates import (
    _promql_contexts,
    escape_promql_string,
    expand_datadog,
    expand_promql,
    placeholders,
)
from tests.support.requires import require_shared

INJECTION = 'x"} or vector(1) #'


def prom(**fields: object) -> PrometheusQuery:
    return PrometheusQuery.model_validate(fields)


# -- native PromQL ---------------------------------------------------------------------------
def test_native_promql_substitutes_scope_location_and_extended_params() -> None:
    query = prom(promql='sum(rate(http_requests_total{version="${scope}",region="${location}",'
                        'namespace="${namespace}"}[${window}]))')
    scope = Scope("v42", location="eu-west-1", params={"namespace": "shop", "window": "5m"})
    assert render_prometheus_query(query, scope, {}) == (
        'sum(rate(http_requests_total{version="v42",region="eu-west-1",namespace="shop"}[5m]))'
    )


def test_injection_in_double_quotes_stays_one_label_value() -> None:
    rendered = render_prometheus_query(prom(promql='up{version="${scope}"}'), Scope(INJECTION), {})
    assert rendered == 'up{version="x\\"} or vector(1) #"}'


def test_single_quotes_backslashes_and_control_characters_are_escaped() -> None:
    assert expand_promql("up{a='${scope}'}", {"scope": "it's\\n"}) == "up{a='it\\'s\\\\n'}"
    assert escape_promql_string("a\nb\tc\x01") == "a\\nb\\tc\\u0001"
    assert escape_promql_string('say "hi"') == 'say \\"hi\\"'


def test_quoted_characters_inside_the_template_do_not_confuse_the_context() -> None:
    # The escaped quote inside the first string must not end it; the placeholder after the
    # string literal closes is bare and must be refused when unsafe.
    template = 'up{a="q\\"${scope}"} > ${threshold}'
    assert expand_promql(template, {"scope": '"', "threshold": "0.5"}) == 'up{a="q\\"\\""} > 0.5'
    with pytest.raises(ScopeValueError, match="outside a quoted string"):
        expand_promql(template, {"scope": "ok", "threshold": "0 or vector(1)"})


def test_bare_placeholders_accept_names_numbers_and_durations_only() -> None:
    assert expand_promql("x_${suffix}[${w}]", {"suffix": "total", "w": "1m"}) == "x_total[1m]"
    with pytest.raises(ScopeValueError, match=r"\$\{w\}"):
        expand_promql("x[${w}]", {"w": "5m] or vector(1"})
    with pytest.raises(ScopeValueError):
        expand_promql("x - ${n}", {"n": ""})


def test_raw_strings_refuse_backticks() -> None:
    assert expand_promql("up{a=`${scope}`}", {"scope": 'x"y'}) == 'up{a=`x"y`}'
    with pytest.raises(ScopeValueError, match="backtick"):
        expand_promql("up{a=`${scope}`}", {"scope": "x`} or vector(1) #"})


def test_placeholder_in_a_comment_is_checked_as_bare_text() -> None:
    assert expand_promql("up # for ${scope}\n", {"scope": "v1"}) == "up # for v1\n"
    with pytest.raises(ScopeValueError):
        expand_promql("up # ${scope}\n", {"scope": "v1\nor vector(1)"})


def test_unknown_placeholder_names_what_is_available() -> None:
    with pytest.raises(ScopeValueError, match=r"\$\{namespace\}.*available: location, scope"):
        expand_promql('up{ns="${namespace}"}', {"scope": "v1", "location": "eu"})


@pytest.mark.parametrize("placeholder", ["${app.name}", "${scope!'v1'}", "${}"])
def test_placeholders_that_are_not_plain_names_are_refused(placeholder: str) -> None:
    with pytest.raises(ScopeValueError, match="not a plain name"):
        expand_promql(f'up{{a="{placeholder}"}}', {"scope": "v1"})
    with pytest.raises(ScopeValueError, match="not a plain name"):
        expand_datadog(f"avg:x{{a:{placeholder}}}", {"scope": "v1"})


def test_unterminated_string_is_refused() -> None:
    with pytest.raises(ScopeValueError, match="unterminated"):
        expand_promql('up{a="${scope}}', {"scope": "v1"})


def test_kayenta_escaped_placeholders_expand_too() -> None:
    assert placeholders("a='$\\{scope}', b='${location}'") == ["scope", "location"]
    assert expand_promql("a='$\\{scope}'", {"scope": "v1"}) == "a='v1'"


# -- Kayenta's structured Prometheus queries -------------------------------------------------
def test_kayenta_filter_template_with_avg_wrapper() -> None:
    # The config of spinnaker/kayenta's own Prometheus integration test.
    query = prom(metricName="integration_test_cpu", customFilterTemplate="standard-template")
    templates = {"standard-template": "namespace='${namespace}', scope='${scope}'"}
    scope = Scope("canary", params={"namespace": "prod"})
    assert render_prometheus_query(query, scope, templates) == (
        "avg(integration_test_cpu{namespace='prod', scope='canary'})"
    )


def test_kayenta_label_bindings_follow_the_custom_filter_and_group_by_wraps() -> None:
    query = prom(metricName="http_server_requests_seconds_count",
                 customInlineTemplate='app="${scope}"', labelBindings=['status=~"5.."'],
                 groupByFields=["uri", "method"])
    assert render_prometheus_query(query, Scope("web"), {}) == (
        'avg(http_server_requests_seconds_count{app="web",status=~"5.."}) by (uri,method)'
    )


def test_promql_prefix_makes_the_template_the_whole_query() -> None:
    query = prom(metricName="ignored",
                 customInlineTemplate='PromQL:histogram_quantile(0.99, sum by (le) '
                                      '(rate(latency_bucket{version="${scope}"}[5m])))')
    assert render_prometheus_query(query, Scope(INJECTION), {}) == (
        'histogram_quantile(0.99, sum by (le) (rate(latency_bucket{version='
        '"x\\"} or vector(1) #"}[5m])))'
    )


def test_scope_label_default_and_override_and_location_label() -> None:
    query = prom(metricName="cpu")
    assert render_prometheus_query(query, Scope(INJECTION), {}) == (
        'avg(cpu{instance="x\\"} or vector(1) #"})'
    )
    query = prom(metricName="cpu", scopeLabel="version", locationLabel="region")
    assert render_prometheus_query(query, Scope("v2", location="eu"), {}) == (
        'avg(cpu{version="v2",region="eu"})'
    )


def test_kayenta_resource_types() -> None:
    gce = prom(metricName="cpu", resourceType="gce_instance")
    scope = Scope("app-v042", location="us-central1", params={"project": "shop"})
    assert render_prometheus_query(gce, scope, {}) == (
        'avg(cpu{instance=~"app-v042-.{4}",zone=~".+/projects/shop/zones/us-central1-.{1}"})'
    )
    aws = prom(metricName="cpu", resourceType="aws_ec2_instance")
    assert render_prometheus_query(aws, Scope("app-v042", location="us-east-1"), {}) == (
        'avg(cpu{asg_groupName="app-v042",zone=~"us-east-1.{1}"})'
    )
    with pytest.raises(ScopeValueError, match="location"):
        render_prometheus_query(aws, Scope("app-v042"), {})
    with pytest.raises(FatalSourceError, match="no explicit support"):
        render_prometheus_query(prom(metricName="cpu", resourceType="k8s_pod"), Scope("a"), {})


def test_regex_metacharacters_in_a_gce_scope_match_literally() -> None:
    gce = prom(metricName="cpu", resourceType="gce_instance")
    rendered = render_prometheus_query(gce, Scope("a.b", location="eu"), {})
    assert 'instance=~"a\\\\.b-.{4}"' in rendered


def test_sum_by_fields_of_older_kayenta_configs() -> None:
    # scratch__prometheus_canary_config.json in Kayenta's repository.
    query = prom(metricName="node_cpu", aggregationPeriod="60s",
                 labelBindings=['mode=~"user|system"', 'job="node"'], sumByFields=["mode"])
    assert render_prometheus_query(query, Scope("host-1"), {}) == (
        'sum(node_cpu{instance="host-1",mode=~"user|system",job="node"}) by (mode)'
    )


def test_missing_filter_template_is_a_fatal_error() -> None:
    with pytest.raises(FatalSourceError, match="'nope' was not found"):
        render_prometheus_query(prom(metricName="x", customFilterTemplate="nope"), Scope("a"), {})


# -- the sources' render() -------------------------------------------------------------------
def _config(query: object) -> CanaryConfig:
    return CanaryConfig.model_validate({"metrics": [{"name": "m", "query": query}]})


def test_source_render_is_pure_and_refuses_other_query_types() -> None:
    config = _config({"type": "prometheus", "promql": 'up{v="${scope}"}'})
    source = PrometheusSource("http://127.0.0.1:1", headers={"Authorization": "Bearer s3cret"})
    scope = Scope("v1", start=datetime(2024, 5, 1, tzinfo=UTC),
                  end=datetime(2024, 5, 1, 1, tzinfo=UTC), step=timedelta(minutes=1))
    assert source.render(config.metrics[0], scope, config) == 'up{v="v1"}'
    assert "s3cret" not in repr(source)
    other = MetricConfig(name="d", query=DemoQuery())
    with pytest.raises(UnsupportedSourceError, match="'demo' query"):
        source.render(other, scope, config)
    source.close()


# -- Datadog ---------------------------------------------------------------------------------
def test_datadog_kayenta_metric_name_with_scope_tags() -> None:
    query = DatadogQuery(metricName="avg:system.cpu.user")
    assert render_datadog_query(query, Scope("version:v2,region:eu"), {}) == (
        "avg:system.cpu.user{version:v2,region:eu}"
    )
    # As in Kayenta, an expanded customFilterTemplate is the whole query (issue 19: it was
    # pasted inside metricName's braces).
    templated = DatadogQuery(metricName="avg:system.cpu.user", customFilterTemplate="cpu")
    assert render_datadog_query(
        templated, Scope("version:v2", params={"env": "prod"}),
        {"cpu": "avg:system.cpu.user{${scope},env:${env}}"},
    ) == "avg:system.cpu.user{version:v2,env:prod}"


def test_datadog_native_query_and_inline_template() -> None:
    query = DatadogQuery(query="avg:trace.http.request.duration{service:web,version:${scope}} "
                               "by {resource_name}")
    rendered = render_datadog_query(query, Scope("v42"), {})
    assert rendered == ("avg:trace.http.request.duration{service:web,version:v42} "
                        "by {resource_name}")
    assert group_by_fields(rendered) == ("resource_name",)
    inline = DatadogQuery(customInlineTemplate="sum:errors{version:${scope}}.as_count()")
    assert render_datadog_query(inline, Scope("v1"), {}) == "sum:errors{version:v1}.as_count()"


@pytest.mark.parametrize("value", ["v1} or avg:x{*", "v1,env:prod", "v 1", "v1)"])
def test_datadog_values_that_would_change_the_query_are_refused(value: str) -> None:
    with pytest.raises(ScopeValueError, match="not safe in a Datadog query"):
        expand_datadog("avg:x{version:${scope}}", {"scope": value})


def test_datadog_kayenta_scope_must_be_a_tag_list() -> None:
    with pytest.raises(ScopeValueError):
        render_datadog_query(DatadogQuery(metricName="avg:x"), Scope("a:b} by {host"), {})


def test_datadog_source_render_needs_no_keys_and_shows_none() -> None:
    config = _config({"type": "datadog", "query": "avg:x{version:${scope}}"})
    source = DatadogSource(api_key="dd-api-SECRET", application_key="dd-app-SECRET",
                           site="http://127.0.0.1:1")
    assert source.render(config.metrics[0], Scope("v1"), config) == (
        "avg:x{version:v1}.rollup(avg, 60)")
    assert "SECRET" not in repr(source) and "SECRET" not in str(vars(source))


def test_kayentas_own_prometheus_configs_render_as_kayenta_would() -> None:
    path = require_shared("kayenta-configs") / (
        "kayenta-integration-tests__canary-configs__prometheus__integration-test-cpu.json")
    imported = CanaryConfig.load(path)
    source = PrometheusSource("http://127.0.0.1:1")
    scope = Scope("canary", params={"namespace": "prod"})
    assert source.render(imported.metrics[0], scope, imported) == (
        "avg(integration_test_cpu{namespace='prod', scope='canary'})"
    )
    with pytest.raises(ScopeValueError, match=r"\$\{namespace\}"):
        source.render(imported.metrics[0], Scope("canary"), imported)
    source.close()


@given(st.text(max_size=40))
def test_escaped_values_read_back_exactly_and_stay_inside_their_string(value: str) -> None:
    # PromQL double-quoted strings use Go's escapes; the ones written here are also JSON's.
    assert json.loads('"' + escape_promql_string(value) + '"') == value
    for quote in ('"', "'"):
        expanded = expand_promql(f"up{{a={quote}${{scope}}{quote}}} > 1", {"scope": value})
        # Whatever the value, the text after the string is still the comparison, and the
        # lexer finds every string closed (it raises on an unterminated one).
        assert expanded.endswith(f"{quote}}} > 1")
        _promql_contexts(expanded)
