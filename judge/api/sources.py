"""Named metric sources built from settings, each timed for the service's ``/metrics``.

Kayenta calls a named source a *metrics account*; its ``metricsAccountName`` picks one here.
This is the one place in the service that knows the concrete source classes (ports and
adapters: the analysis sees only :class:`judge.ports.MetricSource`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from judge.api.settings import Settings, SourceSettings
from judge.api.telemetry import ServiceMetrics, Stopwatch
from judge.config import CanaryConfig, MetricConfig
from judge.errors import ConfigError
from judge.ports import FetchedSeries, MetricSource, Scope, served_query_types


class UnknownSourceError(ConfigError):
    """A request named a source that is not configured (the message lists those that are)."""


class TimedSource:
    """Wraps a source: records fetch latency and errors under the source's name."""

    def __init__(self, name: str, inner: MetricSource, metrics: ServiceMetrics) -> None:
        self.name = name
        self.inner = inner
        self._metrics = metrics
        self.query_types = served_query_types(inner)

    def __repr__(self) -> str:
        return f"TimedSource({self.name!r}, {self.inner!r})"

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        return self.inner.render(metric, scope, config)

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        watch = Stopwatch()
        try:
            return await self.inner.fetch(metric, scope, config)
        except Exception as exc:
            self._metrics.fetch_errors.labels(self.name, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.fetch_seconds.labels(self.name).observe(watch.seconds)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class DelayedSource:
    """A source whose every fetch first waits ``delay`` seconds: the demo source made slow, so
    progress can be watched and a restart in the middle of an analysis can be tested."""

    def __init__(self, inner: MetricSource, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.query_types = served_query_types(inner)

    def __repr__(self) -> str:
        return f"DelayedSource({self.inner!r}, delay={self.delay:g})"

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        return self.inner.render(metric, scope, config)

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        await asyncio.sleep(self.delay)
        return await self.inner.fetch(metric, scope, config)


def build_source(settings: SourceSettings) -> MetricSource:
    """One concrete source from its settings (imports only the kind that is used)."""
    if settings.type == "prometheus":
        from metricsources.prometheus import PrometheusSource

        headers = (
            {"Authorization": f"Bearer {settings.bearer_token.get_secret_value()}"}
            if settings.bearer_token is not None
            else None
        )
        assert settings.url is not None  # checked by SourceSettings
        return PrometheusSource(
            settings.url,
            headers=headers,
            timeout=settings.timeout_seconds,
            scope_label=settings.scope_label,
        )
    if settings.type == "datadog":
        from metricsources.datadog import DatadogSource

        assert settings.url is not None
        return DatadogSource(
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            application_key=settings.app_key.get_secret_value() if settings.app_key else None,
            site=settings.url,
            timeout=settings.timeout_seconds,
        )
    if settings.type == "files":
        from metricsources.files import FileSource

        assert settings.path is not None
        return FileSource(settings.path)
    from metricsources.demo import DemoSource

    if settings.delay_seconds > 0:
        return DelayedSource(DemoSource(), settings.delay_seconds)
    return DemoSource()


@dataclass
class SourceRegistry:
    """The configured sources by name, and which one a request without a name gets."""

    sources: dict[str, TimedSource]
    default_name: str | None

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ServiceMetrics) -> SourceRegistry:
        built = {
            name: TimedSource(name, build_source(source), metrics)
            for name, source in settings.source_settings().items()
        }
        return cls(sources=built, default_name=settings.default_source_name())

    def names(self) -> list[str]:
        return sorted(self.sources)

    def resolve(self, name: str | None) -> tuple[str | None, Mapping[str, MetricSource]]:
        """The preferred source's name for an analysis (``None``: none preferred) and every
        source by name.

        ``name`` (a request's ``source`` or Kayenta's ``metricsAccountName``) wins; without it
        the configured default is used. The preferred source serves the metrics of its query
        type; the others go to a source of their type (``judge.analysis.resolve_source``).
        """
        chosen = name or self.default_name
        if chosen is not None and chosen not in self.sources:
            raise UnknownSourceError(
                f"no metric source named {chosen!r}; configured: {self.names()}"
            )
        return chosen, dict(self.sources)

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
