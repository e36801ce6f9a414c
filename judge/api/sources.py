"""Named metric sources built from settings, each timed for the service's ``/metrics``.

Kayenta calls a named source a *metrics account*; its ``metricsAccountName`` picks one here.
This is the one place in the service that knows the concrete source classes (ports and
adapters: the analysis sees only :class:`judge.ports.MetricSource`).

Each source's health (:class:`SourceHealth`) is what was last seen of it: every fetch updates
it (a failure of the source itself marks it down, with the kind and the source's message; a
config or data problem says nothing about the source), and so does a periodic check
(:meth:`SourceRegistry.check`, a cheap query of sources that offer a ``probe``). ``/readyz``
shows it and ``/metrics`` exports it as ``canary_judge_source_up``; neither takes the pod out
of service for an outage it cannot fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from judge.api.settings import Settings, SourceSettings
from judge.api.telemetry import ServiceMetrics, Stopwatch
from judge.config import CanaryConfig, MetricConfig
from judge.errors import OUTAGE_KINDS, ConfigError, failure_kind
from judge.ports import FetchedSeries, MetricSource, PacedSource, Scope, served_query_types

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
"""Seconds a health check may take at most (less when the source's own timeout is shorter)."""


@dataclass(frozen=True)
class SourceHealth:
    """What was last seen of a source: ``up``, ``down`` (with the kind of failure and the
    source's message) or ``unknown`` (neither checked nor used yet)."""

    status: Literal["up", "down", "unknown"] = "unknown"
    kind: str | None = None
    error: str | None = None
    checked_at: datetime | None = None
    """When this was observed."""
    via: Literal["check", "fetch"] | None = None
    down_since: datetime | None = None
    last_up: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "kind": self.kind,
            "error": self.error,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "via": self.via,
            "down_since": self.down_since.isoformat() if self.down_since else None,
            "last_up": self.last_up.isoformat() if self.last_up else None,
        }


class UnknownSourceError(ConfigError):
    """A request named a source that is not configured (the message lists those that are)."""


class TimedSource:
    """Wraps a source: records fetch latency and errors under the source's name."""

    def __init__(self, name: str, inner: MetricSource, metrics: ServiceMetrics) -> None:
        self.name = name
        self.inner = inner
        self._metrics = metrics
        self.query_types = served_query_types(inner)
        self.health = SourceHealth()

    @property
    def timeout(self) -> float | None:
        """The inner source's own request timeout (the analysis sizes its attempts by it)."""
        own = getattr(self.inner, "timeout", None)
        return float(own) if isinstance(own, int | float) else None

    @property
    def can_probe(self) -> bool:
        return callable(getattr(self.inner, "probe", None))

    def observe(self, error: BaseException | None, via: Literal["check", "fetch"]) -> None:
        """Record an outcome: ``None`` (it answered) or what it raised. Errors that are no
        failure of the source (a query that could not be built, data that cannot be judged)
        say nothing about its health and are ignored."""
        now = datetime.now(UTC)
        previous = self.health
        if error is None:
            self.health = SourceHealth(status="up", checked_at=now, via=via, last_up=now)
            self._metrics.source_up.labels(self.name).set(1)
            if previous.status == "down":
                logger.info("metric source is answering again",
                            extra={"source": self.name, "down_since": previous.down_since})
            return
        kind = failure_kind(error).value
        if kind not in OUTAGE_KINDS:
            return
        self.health = SourceHealth(
            status="down", kind=kind, error=str(error) or type(error).__name__,
            checked_at=now, via=via,
            down_since=previous.down_since if previous.status == "down" else now,
            last_up=previous.last_up,
        )
        self._metrics.source_up.labels(self.name).set(0)
        if previous.status != "down":
            logger.warning("metric source is failing",
                           extra={"source": self.name, "kind": kind, "error": str(error)})

    async def check(self) -> SourceHealth:
        """Probe the source now (when it offers a ``probe``) and record the outcome."""
        probe = getattr(self.inner, "probe", None)
        if not callable(probe):
            return self.health
        limit = min(PROBE_TIMEOUT, self.timeout or PROBE_TIMEOUT)
        try:
            await asyncio.wait_for(probe(limit), limit + 0.5)
        except TimeoutError:
            error: BaseException | None = TimeoutError(f"no answer within {limit:g} s")
        except Exception as exc:
            error = exc
        else:
            error = None
        self.observe(error, "check")
        self._metrics.source_checks.labels(
            self.name, "up" if error is None else failure_kind(error).value
        ).inc()
        return self.health

    def __repr__(self) -> str:
        return f"TimedSource({self.name!r}, {self.inner!r})"

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        return self.inner.render(metric, scope, config)

    @asynccontextmanager
    async def admission(self, within: float | None) -> AsyncIterator[None]:
        """The inner source's pacing (:class:`judge.ports.PacedSource`), so its rate-limit
        waits stay outside the attempt's timeout and within the deadline; none otherwise."""
        if isinstance(self.inner, PacedSource):
            async with self.inner.admission(within):
                yield
        else:
            yield

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        watch = Stopwatch()
        try:
            fetched = await self.inner.fetch(metric, scope, config)
        except Exception as exc:
            self._metrics.fetch_errors.labels(self.name, type(exc).__name__).inc()
            self.observe(exc, "fetch")
            raise
        finally:
            self._metrics.fetch_seconds.labels(self.name).observe(watch.seconds)
        self.observe(None, "fetch")
        return fetched

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

        return DatadogSource(
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            application_key=settings.app_key.get_secret_value() if settings.app_key else None,
            site=settings.url,
            timeout=settings.timeout_seconds,
            max_concurrency=settings.max_concurrency,
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
        type; the others go to a source of their type (``judge.fetching.resolve_source``).
        """
        chosen = name or self.default_name
        if chosen is not None and chosen not in self.sources:
            raise UnknownSourceError(
                f"no metric source named {chosen!r}; configured: {self.names()}"
            )
        return chosen, dict(self.sources)

    def health(self) -> dict[str, SourceHealth]:
        """Each source's health, by name."""
        return {name: source.health for name, source in sorted(self.sources.items())}

    async def check(self) -> dict[str, SourceHealth]:
        """Probe every source that can be probed, concurrently; each within
        :data:`PROBE_TIMEOUT` seconds at most."""
        await asyncio.gather(*(s.check() for s in self.sources.values() if s.can_probe))
        return self.health()

    async def watch(self, interval: float) -> None:
        """Check every ``interval`` seconds until cancelled (run by the app's lifespan)."""
        while True:
            try:
                await self.check()
            except Exception:  # a broken check must not end the watch
                logger.exception("metric source health check failed")
            await asyncio.sleep(interval)

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
