"""What a metric asks its source for: typed query models, one per kind of source.

These are configuration (data), not I/O: the metric sources in ``metricsources`` render and run
them. They live in the judge package so a canary config can be parsed and validated without
importing any source. Each model is selected by its ``type`` field, as Kayenta's typed
``query`` objects are.

Kayenta field names are kept as aliases (``metricName``, ``labelBindings`` ...) so an imported
Kayenta query keeps every field it had; the native snake_case names are preferred in YAML.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PrometheusQuery(_Query):
    """A Prometheus query: either a native PromQL template or Kayenta's structured fields.

    Native: ``promql: 'rate(http_errors_total{version="${scope}"}[1m])'`` where ``${scope}``,
    ``${location}`` and any extended scope parameter are substituted (safely) per side.

    Kayenta: ``metric_name`` plus ``label_bindings``, ``group_by_fields``, and a filter
    (``custom_filter``, or ``custom_filter_template`` naming an entry of the config's
    ``templates``), or ``custom_inline_template`` (a whole query, optionally prefixed
    ``PromQL:``).
    """

    type: Literal["prometheus"] = "prometheus"
    promql: str | None = None
    metric_name: str | None = Field(default=None, alias="metricName")
    label_bindings: tuple[str, ...] = Field(default=(), alias="labelBindings")
    group_by_fields: tuple[str, ...] = Field(default=(), alias="groupByFields")
    sum_by_fields: tuple[str, ...] = Field(default=(), alias="sumByFields")
    custom_filter: str | None = Field(default=None, alias="customFilter")
    custom_filter_template: str | None = Field(default=None, alias="customFilterTemplate")
    custom_inline_template: str | None = Field(default=None, alias="customInlineTemplate")
    aggregation_period: str | None = Field(default=None, alias="aggregationPeriod")
    service_type: str | None = Field(default=None, alias="serviceType")
    resource_type: str | None = Field(default=None, alias="resourceType")
    """Kayenta's ``resourceType`` (``gce_instance``, ``aws_ec2_instance``): scope filters Kayenta
    derives when no custom filter is given."""
    scope_label: str | None = Field(default=None, alias="scopeLabel")
    """Label holding the scope value (default: the Prometheus source's ``scope_label``)."""
    location_label: str | None = Field(default=None, alias="locationLabel")
    """Label holding the location, when the scope's location should be selected too."""

    @model_validator(mode="after")
    def _one_way_to_query(self) -> PrometheusQuery:
        if not (self.promql or self.metric_name or self.custom_inline_template):
            raise ValueError(
                "a prometheus query needs 'promql', 'metric_name' (metricName) or "
                "'custom_inline_template' (customInlineTemplate)"
            )
        if self.promql and (self.metric_name or self.custom_inline_template):
            raise ValueError(
                "'promql' cannot be combined with 'metric_name' or 'custom_inline_template'"
            )
        return self


class DatadogRollup(StrEnum):
    """How a Datadog query's buckets follow the scope's step (``metricsources.datadog_query``).

    ``auto``: ``.rollup(avg, step)``, ``sum`` for ``.as_count()`` terms; ``avg`` / ``sum`` /
    ``min`` / ``max`` / ``count``: that method for every term; ``none``: the query as written,
    Datadog picks the buckets (Kayenta's behaviour).
    """

    AUTO = "auto"
    AVG = "avg"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    NONE = "none"


class DatadogApi(StrEnum):
    """Which Datadog endpoint runs a query."""

    V1 = "v1"
    """``GET /api/v1/query``: one query text (arithmetic between metrics allowed)."""
    V2 = "v2"
    """``POST /api/v2/query/timeseries``: named queries combined by a formula, buckets set by
    an explicit interval (Datadog's recommended endpoint; its rate limit is less strict)."""


_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class DatadogQuery(_Query):
    """A Datadog metrics query.

    Native: ``query: 'avg:trace.http.request.duration{service:web,version:${scope}}'``.
    Kayenta: ``metric_name`` (Kayenta sends ``metricName{scope}``), or a whole query from
    ``custom_inline_template`` or ``custom_filter_template`` (a name in the config's
    ``templates``). ``rollup``: how the buckets follow the step (:class:`DatadogRollup`).

    ``api: v2`` sends it to ``POST /api/v2/query/timeseries``: one query as above, or named
    ``queries`` (each a template, e.g. ``{errors: 'sum:...{version:${scope}}.as_count()',
    hits: '...'}``) combined by a ``formula`` (``errors / hits * 100``).
    """

    type: Literal["datadog"] = "datadog"
    query: str | None = None
    metric_name: str | None = Field(default=None, alias="metricName")
    custom_filter_template: str | None = Field(default=None, alias="customFilterTemplate")
    custom_inline_template: str | None = Field(default=None, alias="customInlineTemplate")
    service_type: str | None = Field(default=None, alias="serviceType")
    rollup: DatadogRollup = DatadogRollup.AUTO
    api: DatadogApi = DatadogApi.V1
    queries: dict[str, str] = Field(default_factory=dict)
    """``api: v2`` only: named query templates the ``formula`` combines."""
    formula: str | None = None
    """``api: v2`` only: how the named ``queries`` combine (Datadog's formula syntax)."""

    @model_validator(mode="after")
    def _one_way_to_query(self) -> DatadogQuery:
        single = (self.query or self.metric_name or self.custom_inline_template
                  or self.custom_filter_template)
        if self.queries or self.formula:
            if self.api is not DatadogApi.V2:
                raise ValueError("'queries' and 'formula' are for 'api: v2' (Datadog's "
                                 "/api/v2/query/timeseries); set api: v2")
            if not (self.queries and self.formula):
                raise ValueError("a v2 formula query needs both 'queries' (named query "
                                 "templates) and 'formula'; a single query goes in 'query'")
            if single:
                raise ValueError("give either 'queries' with a 'formula', or one query "
                                 "('query', 'metric_name' ...), not both")
            bad = [name for name in self.queries if not _QUERY_NAME.fullmatch(name)]
            if bad:
                raise ValueError(f"query names must be letters, digits and '_', starting "
                                 f"with a letter: {', '.join(map(repr, bad))}")
            return self
        if not single:
            raise ValueError(
                "a datadog query needs 'query', 'metric_name' (metricName), "
                "'custom_inline_template' (customInlineTemplate) or 'custom_filter_template' "
                "(customFilterTemplate)"
            )
        return self


class ColumnQuery(_Query):
    """A column of in-memory or file data (DataFrame, CSV, Parquet, JSON).

    ``column`` defaults to the metric's name.
    """

    type: Literal["column"] = "column"
    column: str | None = None


class DemoQuery(_Query):
    """A synthetic series from the demo source, so the service runs with no Prometheus.

    ``signal`` picks the shape (latency, error counts, CPU ...); ``regression`` is a
    multiplicative change injected into the canary when its scope asks for a bad release.
    """

    type: Literal["demo"] = "demo"
    signal: Literal["latency", "errors", "requests", "cpu", "memory"] = "latency"
    level: float = Field(default=100.0, gt=0)
    noise: float = Field(default=0.05, ge=0)


class UnsupportedQuery(_Query):
    """A Kayenta query for a source this project does not serve (SignalFx, Graphite, New Relic,
    Stackdriver, ...). Every field is kept as it was, so importing and exporting loses nothing;
    an analysis that needs it classifies the metric ``error`` saying the source is not served.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal[
        "signalfx", "graphite", "newrelic", "stackdriver", "atlas", "influxdb", "wavefront"
    ]


Query = Annotated[
    PrometheusQuery | DatadogQuery | ColumnQuery | DemoQuery | UnsupportedQuery,
    Field(discriminator="type"),
]

UNSERVED_QUERY_TYPES: frozenset[str] = frozenset(
    ("signalfx", "graphite", "newrelic", "stackdriver", "atlas", "influxdb", "wavefront")
)
