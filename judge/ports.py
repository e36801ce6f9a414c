"""The port the judge sees for metric sources: scopes, fetched series, errors, one protocol.

The judge never imports a metric source (``metricsources`` depends on this module, never the
other way round). A source does two things, kept apart as Kayenta's ``MetricsService`` keeps
``buildQuery`` apart from ``queryMetrics``:

- :meth:`MetricSource.render` builds the query text for one metric and one scope. It is pure
  (no I/O), so a user can see exactly what will run.
- :meth:`MetricSource.fetch` runs it for the scope's window and returns :class:`FetchedSeries`.

Errors a source raises are the ``SourceError`` branch of the one exception tree
(:mod:`judge.errors`); the analysis retries the retryable ones and turns the rest into an
``error`` classification for that metric only. Each has a ``kind`` (``FailureKind``): what went
wrong, in words the doors and the reasons use. ``OUTAGE_KINDS`` are the kinds that mean the
*source* failed
(down, slow, refusing the query or the credentials, answering garbage, or returning no series
at all for a scope): a report with a scored metric failed that way is an error outcome, not a
verdict (see :func:`judge.scoring.score_report`).

Scopes follow Kayenta's ``controlScope`` / ``experimentScope``: ``scope`` (usually a label value
such as a version or a server group), ``location``, ``start``, ``end``, ``step`` and
``extendedScopeParams`` (here :attr:`Scope.params`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from judge.errors import (
    ConfigError,
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
)

if TYPE_CHECKING:
    from judge.config import CanaryConfig, MetricConfig

FloatArray = npt.NDArray[np.float64]


def parse_entries(
    entries: Iterable[Any],
    parse: Callable[[Any], TaggedSeries],
    expected: Callable[[int], str],
) -> tuple[TaggedSeries, ...]:
    """Each entry of a source's answer parsed into a series by ``parse``; the first that does
    not have the documented shape raises :class:`MalformedResponseError` saying
    ``expected(index)`` and what went wrong (never a bare ``KeyError`` from deep inside)."""
    series: list[TaggedSeries] = []
    for index, entry in enumerate(entries):
        try:
            series.append(parse(entry))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise MalformedResponseError(f"{expected(index)}: {exc!r}") from exc
    return tuple(series)


# -- scopes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """What selects one side's data: a scope value, a location, a window and extra parameters.

    ``start`` / ``end`` / ``step`` may be left ``None`` and given to the analysis instead (one
    window for both sides); a scope's own window wins, so the sides may use different windows
    (e.g. a canary compared with yesterday's baseline). ``params`` are Kayenta's
    ``extendedScopeParams``: every key can be used as a ``${key}`` placeholder in a query.
    """

    scope: str
    location: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    step: timedelta | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"scope {self.scope!r}: 'end' ({self.end}) must be after 'start'")
        if self.step is not None and self.step <= timedelta(0):
            raise ConfigError(f"scope {self.scope!r}: 'step' must be positive, got {self.step}")
        for reserved in ("scope", "location"):
            if reserved in self.params:
                raise ConfigError(
                    f"scope {self.scope!r}: extended parameter {reserved!r} would shadow the "
                    f"scope's own {reserved!r}; set it as the field instead"
                )

    @classmethod
    def from_kayenta(cls, raw: Mapping[str, Any]) -> Scope:
        """A scope from Kayenta's JSON: ``{scope, location, start, end, step,
        extendedScopeParams}`` with ISO-8601 instants and ``step`` in seconds.

        >>> Scope.from_kayenta({"scope": "v2", "start": "2024-05-01T12:00:00Z",
        ...                     "end": "2024-05-01T12:30:00Z", "step": 60}).step
        datetime.timedelta(seconds=60)
        """
        unknown = set(raw) - {"scope", "location", "start", "end", "step",
                              "extendedScopeParams", "type"}
        if unknown:
            raise ConfigError(
                f"unknown scope field(s) {', '.join(sorted(unknown))}; a Kayenta scope has "
                "scope, location, start, end, step, extendedScopeParams"
            )
        if not isinstance(raw.get("scope"), str):
            raise ConfigError("a Kayenta scope needs 'scope' (a string)")
        step = raw.get("step")
        params = raw.get("extendedScopeParams") or {}
        if not isinstance(params, Mapping):
            raise ConfigError("'extendedScopeParams' must be an object of strings")
        return cls(
            scope=raw["scope"],
            location=None if raw.get("location") is None else str(raw["location"]),
            start=_instant(raw.get("start"), "start"),
            end=_instant(raw.get("end"), "end"),
            step=None if step is None else timedelta(seconds=float(step)),
            params={str(k): str(v) for k, v in params.items()},
        )

    def bindings(self) -> dict[str, str]:
        """Template bindings in Kayenta's order: scope attributes, then extended params."""
        bound = {"scope": self.scope}
        if self.location is not None:
            bound["location"] = self.location
        bound.update(self.params)
        return bound

    def with_window(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        step: timedelta | None = None,
    ) -> Scope:
        """This scope with missing window fields filled from the given defaults."""
        return Scope(
            scope=self.scope,
            location=self.location,
            start=self.start if self.start is not None else start,
            end=self.end if self.end is not None else end,
            step=self.step if self.step is not None else step,
            params=dict(self.params),
        )

    def window(self) -> tuple[datetime, datetime, timedelta]:
        """``(start, end, step)``, or :class:`FatalSourceError` when the window is incomplete."""
        if self.start is None or self.end is None:
            raise FatalSourceError(
                f"scope {self.scope!r} has no time window: give 'start' and 'end' to the scope "
                "or to the analysis",
                kind=FailureKind.CONFIG,
            )
        return self.start, self.end, self.step if self.step is not None else timedelta(minutes=1)


def _instant(value: Any, name: str) -> datetime | None:
    """An ISO-8601 instant (naive ones are UTC) or epoch milliseconds, as Kayenta sends."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000.0, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ConfigError(f"scope '{name}' is not an ISO-8601 instant: {value!r}") from exc
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise ConfigError(f"scope '{name}' must be an ISO-8601 string, got {type(value).__name__}")


@dataclass(frozen=True)
class ScopePair:
    """The baseline's scope and the canary's scope for one ``scope_name``."""

    baseline: Scope
    canary: Scope

    @classmethod
    def from_kayenta(cls, raw: Mapping[str, Any]) -> ScopePair:
        """A pair from Kayenta's ``{controlScope: {...}, experimentScope: {...}}``."""
        missing = [key for key in ("controlScope", "experimentScope") if key not in raw]
        if missing:
            raise ConfigError(f"a Kayenta scope pair needs {' and '.join(missing)}")
        return cls(Scope.from_kayenta(raw["controlScope"]),
                   Scope.from_kayenta(raw["experimentScope"]))


Scopes = ScopePair | Mapping[str, ScopePair]
"""One pair for every metric, or pairs by ``MetricConfig.scope_name`` (Kayenta's ``scopes``)."""


# -- fetched data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaggedSeries:
    """One time series: epoch-second timestamps and float values (NaN marks a gap)."""

    tags: Mapping[str, str]
    timestamps: FloatArray
    values: FloatArray

    def __post_init__(self) -> None:
        if self.timestamps.shape != self.values.shape or self.values.ndim != 1:
            raise ConfigError(
                f"timestamps {self.timestamps.shape} and values {self.values.shape} "
                "must be 1-d arrays of the same length"
            )


@dataclass(frozen=True)
class FetchedSeries:
    """What one fetch returned: zero or more series, each keyed by its tag set.

    ``group_by`` names the tags the query grouped by (Kayenta's ``groupByFields``); when it is
    not empty the analysis judges each tag set as its own metric. ``query`` is the exact text
    that ran.
    """

    query: str
    series: tuple[TaggedSeries, ...] = ()
    group_by: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return all(s.values.size == 0 for s in self.series)


# -- the protocol ------------------------------------------------------------------------------
def served_query_types(source: object) -> frozenset[str] | None:
    """The query types (``MetricConfig.query.type``) a source runs, from its ``query_types``
    attribute; ``None`` when it does not say, which means it reads any metric (the file and
    DataFrame sources read a metric's column whatever its query type)."""
    types = getattr(source, "query_types", None)
    return frozenset(types) if types is not None else None


@runtime_checkable
class MetricSource(Protocol):
    """A place metric series come from (Prometheus, Datadog, files, the demo generator)."""

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        """The query that :meth:`fetch` would run for this metric and scope. No I/O."""
        ...

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        """Run the query over the scope's window. Raises :class:`SourceError` subclasses."""
        ...


@runtime_checkable
class PacedSource(Protocol):
    """A source that paces its own requests (a rate-limited API such as Datadog's).

    Fetching enters :meth:`admission` around each attempt, outside the attempt's timeout, so a
    wait for the rate limit is not mistaken for a slow answer.
    """

    def admission(self, within: float | None) -> AbstractAsyncContextManager[None]:
        """Wait for a request slot and the rate limit's budget, then hold the slot for one
        request. Waits at most ``within`` seconds (``None``: as long as needed); when the
        budget comes back later than that, raises :class:`~judge.errors.RateLimitError` with
        ``retry_after`` set, without waiting."""
        ...
