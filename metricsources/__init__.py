"""Metric sources: fetch baseline and canary series from where users keep them.

Each source implements ``judge.ports.MetricSource`` (``render`` a query, ``fetch`` it):

- :class:`PrometheusSource` (``metricsources.prometheus``): range queries, PromQL templates and
  Kayenta's Prometheus query config;
- :class:`DatadogSource` (``metricsources.datadog``): ``GET /api/v1/query`` and
  ``POST /api/v2/query/timeseries``, paced by Datadog's rate limits;
- :class:`FileSource` / :class:`FrameSource` (``metricsources.files``): CSV, Parquet, JSON and
  DataFrames;
- :class:`DemoSource` (``metricsources.demo``): synthetic series with optional regressions.

Every source answers on the scope's ``start`` / ``end`` / ``step`` grid, NaN where it had no
point (``metricsources.grid``).

Names are imported on first use (``from metricsources import PrometheusSource`` loads only the
Prometheus client), so importing the package costs nothing. See ``docs/sources.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metricsources.datadog import DatadogSource
    from metricsources.demo import DemoSource
    from metricsources.files import FileSource, FrameSource
    from metricsources.prometheus import PrometheusSource

__all__ = ["DatadogSource", "DemoSource", "FileSource", "FrameSource", "PrometheusSource"]

_HOMES = {
    "DatadogSource": "metricsources.datadog",
    "DemoSource": "metricsources.demo",
    "FileSource": "metricsources.files",
    "FrameSource": "metricsources.files",
    "PrometheusSource": "metricsources.prometheus",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'metricsources' has no attribute {name!r}")
