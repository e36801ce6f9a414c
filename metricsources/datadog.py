"""Datadog as a metric source: the metrics query APIs (``GET /api/v1/query`` and
``POST /api/v2/query/timeseries``) over httpx.

Request (Datadog API reference, "Metrics: Query timeseries points", v1)::

    GET https://api.<site>/api/v1/query?from=<epoch s>&to=<epoch s>&query=<query>
    DD-API-KEY: ...          DD-APPLICATION-KEY: ...

Answer: ``{"status": "ok", "series": [{"metric", "scope", "tag_set", "interval", "pointlist":
[[epoch ms, value | null], ...], ...}], ...}``. Any ``status`` but ``ok`` is an error carrying
Datadog's message (:class:`~judge.errors.QueryError`).

v2 (``api: v2``; Datadog API reference, "Query timeseries data across multiple products")::

    POST https://api.<site>/api/v2/query/timeseries
    {"data": {"type": "timeseries_request", "attributes": {"from": ms, "to": ms,
     "interval": step ms, "queries": [{"data_source": "metrics", "name", "query"}, ...],
     "formulas": [{"formula"}]}}}

Answer: ``{"data": {"type": "timeseries_response", "attributes": {"series": [{"group_tags",
"query_index", "unit"}], "times": [ms, ...], "values": [[value | null, ...], ...]}}}`` (one
``values`` row per series, over the shared ``times``; empty buckets left out); an ``errors``
text is an error with that message.

**The grid.** The query asks for buckets of the scope's step (``.rollup(avg, step)``, see
:mod:`metricsources.datadog_query`); Datadog leaves empty buckets out of ``pointlist``, so
every series is put back on the requested grid (:func:`metricsources.grid.bucket_grid`) with
NaN where a bucket is missing, as Kayenta's ``DatadogTimeSeries.getAdjustedPointList`` does
on the answer's own interval. A ``null`` point is a gap too. A window of more than
:data:`MAX_POINTS` buckets is refused before any request (Datadog would silently coarsen it),
and an answer in buckets other than the step is an error saying so. With ``rollup: none`` the
query is sent as written and the series are filled on Datadog's own interval, as Kayenta does.

**Sites and keys** (:mod:`metricsources.datadog_sites`): ``site`` is a Datadog site name
(``datadoghq.eu``, ``us5.datadoghq.com`` ...) or a URL; unset, ``DD_SITE`` (default
``datadoghq.com``), as the official clients read it. A bad site is refused when the source is
made. Keys come from the constructor or ``DD_API_KEY`` / ``DD_APP_KEY`` (or
``DD_APPLICATION_KEY``); they are held in a wrapper whose ``repr`` is masked and only ever go
into request headers: no log line, exception message or result contains them.

**Rate limits** (:mod:`metricsources.ratelimit`): at most ``max_concurrency`` requests in
flight per source; the budget Datadog's ``X-RateLimit-*`` headers announce is kept, and a
request that would exceed it waits for the reset (fetching bounds the wait by the analysis'
deadline, see :class:`judge.ports.PacedSource`). A 429 is a
:class:`~judge.errors.RateLimitError` whose ``retry_after`` is ``X-RateLimit-Reset``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import certifi
import httpx
import numpy as np

from judge.config import CanaryConfig, MetricConfig
from judge.config.queries import DatadogApi, DatadogQuery, DatadogRollup
from judge.errors import (
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RateLimitError,
    RetryableSourceError,
    SourceAuthError,
    SourceConnectionError,
    SourceTimeoutError,
    UnsupportedSourceError,
)
from judge.ports import FetchedSeries, Scope, TaggedSeries, parse_entries
from judge.redaction import split_userinfo
from metricsources._http import parse_retry_after, transport_reason
from metricsources.datadog_query import (
    group_by_fields,
    render_datadog_query,
    render_query_text,
    v2_queries,
)
from metricsources.datadog_sites import datadog_base_url, site_from_environment
from metricsources.grid import bucket_grid, fill_grid, grid_positions
from metricsources.ratelimit import LIMIT, PERIOD, RESET, RateBudget, RequestSlots

__all__ = [
    "MAX_POINTS",
    "DatadogSource",
    "group_by_fields",
    "parse_query_response",
    "parse_timeseries_response",
    "render_datadog_query",
]

MAX_POINTS = 1500
"""Points Datadog returns per series at most ("Rollup" docs: "a data series can have at most
1500 points"); a longer window at the step is coarsened by Datadog, so it is refused here."""

DEFAULT_MAX_CONCURRENCY = 8
"""Requests in flight per Datadog source when not told otherwise."""

_ADMITTED: ContextVar[bool] = ContextVar("datadog_admitted", default=False)
"""Set inside :meth:`DatadogSource.admission`, so a fetch that fetching already admitted does
not book the rate limit a second time."""


class Secret:
    """A credential: compares and hashes like nothing in particular, prints as ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


# -- answers -------------------------------------------------------------------------------------
def _tags(entry: Mapping[str, Any]) -> dict[str, str]:
    raw = entry.get("tag_set")
    if raw is None:
        scope = entry.get("scope") or ""
        raw = [] if scope in ("", "*") else str(scope).split(",")
    tags: dict[str, str] = {}
    for item in raw:
        key, _, value = str(item).partition(":")
        tags[key] = value
    return tags


def _check_status(body: Any) -> Mapping[str, Any]:
    """The answer as a mapping whose ``status`` is ``ok``; anything else raises with
    Datadog's own message."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(
            f"Datadog answered with a JSON {type(body).__name__}, expected an object with "
            "'series'"
        )
    status = body.get("status")
    if status != "ok":
        message = body.get("error") or body.get("message") or "no reason given"
        if status is None:
            raise MalformedResponseError(
                f"Datadog answer has no 'status' (keys: {', '.join(sorted(body)) or 'none'})"
            )
        raise QueryError(f"Datadog answered status {status!r}: {message}")
    return body


def parse_query_response(body: Any) -> tuple[TaggedSeries, ...]:
    """Series from a ``/api/v1/query`` answer as Datadog sent them (``null`` is NaN, times in
    seconds); a ``status`` other than ``ok`` raises :class:`QueryError` with its message."""
    body = _check_status(body)
    if "series" not in body or not isinstance(body["series"], list):
        raise MalformedResponseError(
            f"Datadog answer has no 'series' list (keys: {', '.join(sorted(body)) or 'none'})"
        )

    def parse(entry: Any) -> TaggedSeries:
        points = entry["pointlist"]
        timestamps = np.array([float(p[0]) / 1000.0 for p in points], dtype=np.float64)
        values = np.array(
            [np.nan if p[1] is None else float(p[1]) for p in points], dtype=np.float64
        )
        return TaggedSeries(tags=_tags(entry), timestamps=timestamps, values=values)

    return parse_entries(
        body["series"], parse,
        lambda index: f"Datadog series #{index} is not {{'pointlist': [[ms, value|null], ...]}}",
    )


def parse_timeseries_response(body: Any) -> tuple[TaggedSeries, ...]:
    """Series from a ``/api/v2/query/timeseries`` answer (``null`` is NaN, times seconds);
    an ``errors`` text raises :class:`QueryError` with it."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(
            f"Datadog answered with a JSON {type(body).__name__}, expected an object with "
            "'data'"
        )
    if body.get("errors"):
        errors = body["errors"]
        text = "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
        raise QueryError(f"Datadog answered with errors: {text[:300]}")
    try:
        attributes = body["data"]["attributes"]
        listed, times, rows = attributes["series"], attributes["times"], attributes["values"]
        if not (isinstance(listed, list) and isinstance(times, list)
                and isinstance(rows, list) and len(rows) == len(listed)):
            raise TypeError("series, times and values must be lists, one values row a series")
        stamps = np.array([float(t) / 1000.0 for t in times], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponseError(
            "Datadog answer is not {'data': {'attributes': {'series', 'times', 'values'}}}: "
            f"{exc!r}"
        ) from exc

    def parse(pair: Any) -> TaggedSeries:
        entry, row = pair
        if len(row) != stamps.size:
            raise ValueError(f"{len(row)} values for {stamps.size} times")
        tags = dict(str(tag).partition(":")[::2] for tag in entry.get("group_tags") or ())
        values = np.array([np.nan if v is None else float(v) for v in row], dtype=np.float64)
        return TaggedSeries(tags=tags, timestamps=stamps.copy(), values=values)

    return parse_entries(
        zip(listed, rows, strict=True), parse,
        lambda index: f"Datadog series #{index} does not match its 'values' row",
    )


def answer_interval(body: Mapping[str, Any]) -> float | None:
    """The bucket size (seconds) Datadog chose, from its first series' ``interval``.

    >>> answer_interval({"status": "ok", "series": [{"interval": 300, "pointlist": []}]})
    300.0
    """
    for entry in body.get("series") or ():
        interval = entry.get("interval") if isinstance(entry, Mapping) else None
        if isinstance(interval, int | float) and interval > 0:
            return float(interval)
    return None


def on_requested_grid(
    series: tuple[TaggedSeries, ...], start: float, end: float, step: float,
    *, interval: float | None = None,
) -> tuple[TaggedSeries, ...]:
    """Each series on the bucket grid of ``[start, end]`` at ``step``, NaN where Datadog had
    no bucket. Points outside the window are left out. Buckets other than the step (the
    answer's ``interval``, or a point between grid instants) are an error naming them."""
    if interval is not None and abs(interval - step) > 1e-6:
        raise MalformedResponseError(
            f"Datadog answered in {interval:g} s buckets, not on the {step:g} s grid asked for "
            f"(Datadog returns at most {MAX_POINTS} points a series and may coarsen a long "
            "window: shorten it or raise the step)"
        )
    grid = bucket_grid(start, end, step)
    placed: list[TaggedSeries] = []
    for one in series:
        inside = (one.timestamps >= grid[0] - 1e-3) & (one.timestamps <= grid[-1] + 1e-3) \
            if grid.size else np.zeros(one.timestamps.size, dtype=bool)
        kept = TaggedSeries(one.tags, one.timestamps[inside], one.values[inside])
        _index, on_grid = grid_positions(grid, kept.timestamps)
        if not on_grid.all():
            spacing = np.diff(kept.timestamps)
            seen = f"{float(np.min(spacing)):g} s" if spacing.size else "other"
            raise MalformedResponseError(
                f"Datadog answered in {seen} buckets, not on the {step:g} s grid asked for "
                f"(Datadog returns at most {MAX_POINTS} points a series and may coarsen a long "
                "window: shorten it or raise the step)"
            )
        placed.append(fill_grid(kept, grid))
    return tuple(placed)


# -- HTTP details --------------------------------------------------------------------------------
def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(response: httpx.Response) -> float | None:
    """When to ask again: the later of ``Retry-After`` and ``X-RateLimit-Reset`` (seconds)."""
    waits = [parse_retry_after(response.headers.get(header))
             for header in ("Retry-After", RESET)]
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def _error_text(response: httpx.Response, secrets: tuple[Secret, ...]) -> str:
    """Datadog's ``{"errors": [...]}`` text, with any echoed key masked (a proxy may echo)."""
    try:
        errors = response.json().get("errors")
        listed = isinstance(errors, list) and errors
        text = "; ".join(str(e) for e in errors)[:300] if listed else ""
        if isinstance(errors, str):
            text = errors[:300]
    except (ValueError, AttributeError):
        text = ""
    text = text or response.text[:200] or response.reason_phrase
    for secret in secrets:
        if secret:
            text = text.replace(secret.reveal(), "***")
    return text


def _describe_limit(limit: int | None, period: float | None) -> str:
    if limit is not None and period:
        return f"{limit} requests per {period:g} s"
    return "its budget"


# -- the source ----------------------------------------------------------------------------------
class DatadogSource:
    """Datadog's metrics query API on a site (``datadoghq.eu``, a URL, ...; see module doc)."""

    query_types: frozenset[str] = frozenset({"datadog"})

    def __init__(
        self,
        *,
        api_key: str | None = None,
        application_key: str | None = None,
        site: str | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        environ: Mapping[str, str] | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        env = os.environ if environ is None else environ
        self._api_key = Secret(api_key or env.get("DD_API_KEY", ""))
        self._application_key = Secret(
            application_key or env.get("DD_APP_KEY") or env.get("DD_APPLICATION_KEY", "")
        )
        # Credentials in the site's user info (a proxy's) are sent as basic auth, never shown.
        bare, self._site_auth = split_userinfo(site or site_from_environment(env))
        self.site = datadog_base_url(bare)
        self.timeout = timeout
        self.verify = verify
        self.max_concurrency = max_concurrency
        self._tls: ssl.SSLContext | bool | None = None
        self._budget = RateBudget(clock)
        self._slots = RequestSlots(max_concurrency)

    def __repr__(self) -> str:
        return f"DatadogSource(site={self.site!r}, timeout={self.timeout})"

    def _tls_context(self) -> ssl.SSLContext | bool:
        """The TLS settings, built once: loading a CA bundle takes ~70 ms of CPU, and an
        ``httpx.AsyncClient`` made without a ready context loads it again, blocking the
        event loop (100 concurrent fetches would wait ~7 s for it)."""
        if self._tls is None:
            if self.verify is False:
                self._tls = False
            else:
                cafile = self.verify if isinstance(self.verify, str) else certifi.where()
                self._tls = ssl.create_default_context(cafile=cafile)
        return self._tls

    # -- pacing ------------------------------------------------------------------------------
    @asynccontextmanager
    async def admission(self, within: float | None) -> AsyncIterator[None]:
        """A request slot within the rate limit (:class:`judge.ports.PacedSource`).

        Until the first answer the budget is unknown: the first request goes alone and the
        others wait for its answer, so a burst never meets a limit nobody has seen yet."""
        probe = False
        if not self._budget.learned:
            if self._slots.probing:
                await self._slots.first_answer().wait()
            else:
                self._slots.probing = probe = True
        booking = self._budget.book()
        try:
            if booking.wait > 0:
                if within is not None and booking.wait > within:
                    raise RateLimitError(
                        f"Datadog's rate limit ({_describe_limit(booking.limit, booking.period)})"
                        f" is used up for the next {booking.wait:.3g} s",
                        retry_after=booking.wait,
                    )
                await asyncio.sleep(booking.wait)
            async with self._slots.semaphore():
                token = _ADMITTED.set(True)
                try:
                    yield
                finally:
                    _ADMITTED.reset(token)
        finally:
            self._budget.done()
            if probe:
                self._slots.answered()

    # -- queries -----------------------------------------------------------------------------
    def _query(self, metric: MetricConfig) -> DatadogQuery:
        query = metric.query
        if not isinstance(query, DatadogQuery):
            raise UnsupportedSourceError(
                f"metric {metric.name!r} has a {query.type!r} query; a Datadog source runs "
                "datadog queries"
            )
        return query

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        query = self._query(metric)
        return render_query_text(query, scope, config.templates, _step_seconds(scope))

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        rendered = self.render(metric, scope, config)
        query = self._query(metric)
        start, end, _step = scope.window()
        step = _step_seconds(scope)
        points = math.floor((end - start).total_seconds() / step) + 1
        if query.rollup is not DatadogRollup.NONE and points > MAX_POINTS:
            raise FatalSourceError(
                f"the window {start.isoformat()} .. {end.isoformat()} at a {step} s step is "
                f"{points} points, more than the {MAX_POINTS} Datadog returns a series: "
                "shorten the window or raise the step",
                kind=FailureKind.CONFIG,
            )
        if not self._api_key or not self._application_key:
            raise SourceAuthError(
                "Datadog needs an API key and an application key: pass api_key= and "
                "application_key=, or set DD_API_KEY and DD_APP_KEY (or DD_APPLICATION_KEY)"
            )

        def ask() -> Coroutine[Any, Any, Any]:
            if query.api is DatadogApi.V2:
                return self._post_v2(query, scope, config, start, end, step)
            return self._get_v1(rendered, start, end)

        if _ADMITTED.get():
            body = await ask()
        else:
            async with self.admission(None):
                body = await ask()
        if query.api is DatadogApi.V2:
            series = parse_timeseries_response(body)
            interval: float | None = None
            if query.rollup is DatadogRollup.NONE:
                spacing = np.diff(np.unique(np.concatenate([s.timestamps for s in series]))) \
                    if series else np.array([])
                step = int(spacing.min()) if spacing.size else step
        else:
            series = parse_query_response(body)
            interval = answer_interval(body)
            if query.rollup is DatadogRollup.NONE:
                step = int(interval or step)
        placed = on_requested_grid(series, _epoch(start), _epoch(end), float(step),
                                   interval=interval)
        return FetchedSeries(query=rendered, series=placed, group_by=group_by_fields(rendered))

    async def _get_v1(self, rendered: str, start: datetime, end: datetime) -> Any:
        params = {"from": str(_epoch(start)), "to": str(_epoch(end)), "query": rendered}
        response = await self._send("GET", "/api/v1/query", params=params)
        return self._json(response)

    async def _post_v2(self, query: DatadogQuery, scope: Scope, config: CanaryConfig,
                       start: datetime, end: datetime, step: int) -> Any:
        named = v2_queries(query, scope, config.templates, step)
        attributes: dict[str, Any] = {
            "from": _epoch(start) * 1000,
            "to": _epoch(end) * 1000,
            "queries": [{"data_source": "metrics", "name": name, "query": text}
                        for name, text in named],
        }
        if query.rollup is not DatadogRollup.NONE:
            attributes["interval"] = step * 1000
        if query.formula is not None:
            attributes["formulas"] = [{"formula": query.formula}]
        body = {"data": {"type": "timeseries_request", "attributes": attributes}}
        response = await self._send("POST", "/api/v2/query/timeseries", json=body)
        return self._json(response)

    async def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        headers = {
            "DD-API-KEY": self._api_key.reveal(),
            "DD-APPLICATION-KEY": self._application_key.reveal(),
            "Accept": "application/json",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=self._tls_context(),
                                         auth=self._site_auth) as client:
                response = await client.request(method, f"{self.site}{path}", headers=headers,
                                                **request)
        except httpx.TimeoutException as exc:
            raise SourceTimeoutError(
                f"Datadog at {self.site} did not answer within {self.timeout:g} s"
            ) from exc
        except httpx.ConnectError as exc:
            if _caused_by_tls(exc):
                raise FatalSourceError(
                    f"TLS with Datadog at {self.site} failed (check 'verify' / the CA bundle)",
                    kind=FailureKind.CONNECT,
                ) from exc
            raise SourceConnectionError(
                f"cannot connect to Datadog at {self.site}: {transport_reason(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            # Transport errors (refused, reset, protocol) name the URL at most, never headers.
            raise SourceConnectionError(
                f"request to Datadog at {self.site} failed: {transport_reason(exc)}"
            ) from exc
        self._budget.observe(response.headers)
        self._check_status(response)
        return response

    def _error(self, response: httpx.Response) -> str:
        return _error_text(response, (self._api_key, self._application_key))

    def _mask(self, text: str) -> str:
        for secret in (self._api_key, self._application_key):
            if secret:
                text = text.replace(secret.reveal(), "***")
        return text

    async def probe(self, timeout: float | None = None) -> None:
        """Is Datadog answering, and are the keys good? ``GET /api/v1/validate`` (Datadog API
        reference, "Authentication: Validate API key"): no metric query, no quota. Raises the
        :class:`~judge.ports.SourceError` a fetch would raise; used by the service's source
        health checks, never by an analysis."""
        if not self._api_key:
            raise SourceAuthError("Datadog needs an API key (api_key= or DD_API_KEY)")
        limit = min(self.timeout, timeout) if timeout is not None else self.timeout
        headers = {"DD-API-KEY": self._api_key.reveal(), "Accept": "application/json"}
        try:
            async with httpx.AsyncClient(timeout=limit, verify=self._tls_context()) as client:
                response = await client.get(f"{self.site}/api/v1/validate", headers=headers)
        except httpx.TimeoutException as exc:
            raise SourceTimeoutError(
                f"Datadog at {self.site} did not answer within {limit:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            if _caused_by_tls(exc):
                raise FatalSourceError(f"TLS with Datadog at {self.site} failed",
                                       kind=FailureKind.CONNECT) from exc
            raise SourceConnectionError(
                f"cannot connect to Datadog at {self.site}: {transport_reason(exc)}"
            ) from exc
        self._check_status(response)

    def _check_status(self, response: httpx.Response) -> None:
        """Raise for an error status (401/403 auth, 429 rate limit, 408/5xx retryable,
        400/422 query)."""
        status = response.status_code
        if status in (401, 403):
            raise SourceAuthError(
                f"Datadog at {self.site} refused the keys (HTTP {status}): {self._error(response)}",
                status=status,
            )
        if status == 429:
            limit = response.headers.get(LIMIT)
            period = response.headers.get(PERIOD)
            budget = f" (limit {limit} per {period} s)" if limit and period else ""
            raise RateLimitError(
                f"Datadog at {self.site} answered HTTP 429, rate limited{budget}: "
                f"{self._error(response)}",
                retry_after=_retry_after(response),
                status=status,
            )
        if status == 408 or status >= 500:
            raise RetryableSourceError(
                f"Datadog at {self.site} answered HTTP {status}: {self._error(response)}",
                retry_after=_retry_after(response),
                status=status,
            )
        if status in (400, 422):
            raise QueryError(
                f"Datadog rejected the query (HTTP {status}): {self._error(response)}",
                status=status,
            )
        if status != 200:
            raise FatalSourceError(
                f"Datadog at {self.site} answered HTTP {status}: {self._error(response)}",
                status=status,
            )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"Datadog at {self.site} answered HTTP 200 with a body that is not JSON "
                f"(starts {self._mask(response.text[:60])!r})"
            ) from exc


def _epoch(moment: datetime) -> int:
    """Whole epoch seconds, as the v1 API takes them."""
    return int(moment.timestamp())


def _step_seconds(scope: Scope) -> int:
    """The scope's step in whole seconds (Datadog's rollup interval)."""
    step = scope.step.total_seconds() if scope.step is not None else 60.0
    if step < 1 or step != int(step):
        raise FatalSourceError(
            f"scope {scope.scope!r}: a Datadog step must be whole seconds, got {step:g} s",
            kind=FailureKind.CONFIG,
        )
    return int(step)
