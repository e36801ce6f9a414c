"""Datadog as a metric source: the metrics query API (``GET /api/v1/query``) over httpx.

Request (Datadog API reference, "Metrics: Query timeseries points", v1)::

    GET {site}/api/v1/query?from=<epoch s>&to=<epoch s>&query=<query>
    DD-API-KEY: ...          DD-APPLICATION-KEY: ...

Answer: ``{"status": "ok", "series": [{"metric", "scope", "tag_set", "pointlist":
[[epoch ms, value | null], ...], ...}], ...}``. A ``null`` point is a gap and becomes NaN.

Queries (:func:`render_datadog_query`):

- ``query`` (native): placeholders such as ``${scope}`` substituted, each value checked to be a
  plain tag value (:func:`metricsources.templates.expand_datadog`).
- ``custom_inline_template``: the same, Kayenta's name for a whole query.
- ``metric_name``: Kayenta's ``DatadogMetricsService.buildQuery`` form ``metricName{scope}``
  (spinnaker/kayenta ``kayenta-datadog/.../DatadogMetricsService.java``), with the scope a tag
  list such as ``version:v2,region:eu``; ``custom_filter_template`` adds the expanded template
  after the scope inside the braces.

Keys come from the constructor or the environment (``DD_API_KEY``; ``DD_APP_KEY`` or
``DD_APPLICATION_KEY``). They are held in a wrapper whose ``repr`` is masked and only ever go
into request headers: no log line, exception message or result contains them.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Mapping
from typing import Any

import certifi
import httpx
import numpy as np

from judge.config import CanaryConfig, MetricConfig
from judge.config.queries import DatadogQuery
from judge.errors import (
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RetryableSourceError,
    SourceAuthError,
    SourceConnectionError,
    SourceTimeoutError,
    UnsupportedSourceError,
)
from judge.ports import FetchedSeries, Scope, TaggedSeries, parse_entries
from judge.redaction import split_userinfo
from metricsources._http import parse_retry_after, transport_reason
from metricsources.templates import check_datadog_scope, expand_datadog

DEFAULT_SITE = "https://api.datadoghq.com"
_GROUP_BY = re.compile(r"\bby\s*\{([^}]*)\}")


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


def render_datadog_query(query: DatadogQuery, scope: Scope, templates: Mapping[str, str]) -> str:
    """The Datadog query text for one scope (see module doc).

    >>> render_datadog_query(DatadogQuery(metricName="avg:requests"), Scope("version:v2"), {})
    'avg:requests{version:v2}'
    """
    bindings = scope.bindings()
    if query.query is not None:
        return expand_datadog(query.query, bindings)
    if query.custom_inline_template:
        return expand_datadog(query.custom_inline_template, bindings)
    assert query.metric_name is not None  # guaranteed by DatadogQuery's validator
    tags = [check_datadog_scope(scope.scope)] if scope.scope else []
    if query.custom_filter_template:
        if query.custom_filter_template not in templates:
            raise FatalSourceError(
                f"custom filter template {query.custom_filter_template!r} was not found "
                f"(defined: {', '.join(sorted(templates)) or 'none'})"
            )
        tags.append(expand_datadog(templates[query.custom_filter_template], bindings))
    return f"{query.metric_name}{{{','.join(tags) or '*'}}}"


def group_by_fields(query_text: str) -> tuple[str, ...]:
    """Tag names of a ``... by {a,b}`` clause, the Datadog form of Kayenta's groupByFields."""
    fields: list[str] = []
    for match in _GROUP_BY.finditer(query_text):
        fields.extend(f.strip() for f in match.group(1).split(",") if f.strip())
    return tuple(dict.fromkeys(fields))


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


def parse_query_response(body: Any) -> tuple[TaggedSeries, ...]:
    """Series from a ``/api/v1/query`` answer; ``null`` points become NaN, times seconds."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(
            f"Datadog answered with a JSON {type(body).__name__}, expected an object with "
            "'series'"
        )
    if body.get("status") == "error":
        raise QueryError(f"Datadog rejected the query: {body.get('error', 'no reason given')}")
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


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retry_after(response: httpx.Response) -> float | None:
    for header in ("Retry-After", "X-RateLimit-Reset"):
        seconds = parse_retry_after(response.headers.get(header))
        if seconds is not None:
            return seconds
    return None


def _error_text(response: httpx.Response, secrets: tuple[Secret, ...]) -> str:
    """Datadog's ``{"errors": [...]}`` text, with any echoed key masked (a proxy may echo)."""
    try:
        errors = response.json().get("errors")
        listed = isinstance(errors, list) and errors
        text = "; ".join(str(e) for e in errors)[:300] if listed else ""
    except (ValueError, AttributeError):
        text = ""
    text = text or response.text[:200] or response.reason_phrase
    for secret in secrets:
        if secret:
            text = text.replace(secret.reveal(), "***")
    return text


class DatadogSource:
    """Datadog's metrics query API at ``site`` (``https://api.datadoghq.eu``, a proxy, ...)."""

    query_types: frozenset[str] = frozenset({"datadog"})

    def __init__(
        self,
        *,
        api_key: str | None = None,
        application_key: str | None = None,
        site: str = DEFAULT_SITE,
        timeout: float = 30.0,
        verify: bool | str = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        env = os.environ if environ is None else environ
        self._api_key = Secret(api_key or env.get("DD_API_KEY", ""))
        self._application_key = Secret(
            application_key or env.get("DD_APP_KEY") or env.get("DD_APPLICATION_KEY", "")
        )
        # Credentials in the site's user info (a proxy's) are sent as basic auth, never shown.
        site, self._site_auth = split_userinfo(site)
        self.site = site.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self._tls: ssl.SSLContext | bool | None = None

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

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        query = metric.query
        if not isinstance(query, DatadogQuery):
            raise UnsupportedSourceError(
                f"metric {metric.name!r} has a {query.type!r} query; a Datadog source runs "
                "datadog queries"
            )
        return render_datadog_query(query, scope, config.templates)

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        rendered = self.render(metric, scope, config)
        start, end, _step = scope.window()
        if not self._api_key or not self._application_key:
            raise SourceAuthError(
                "Datadog needs an API key and an application key: pass api_key= and "
                "application_key=, or set DD_API_KEY and DD_APP_KEY (or DD_APPLICATION_KEY)"
            )
        params = {
            "from": str(int(start.timestamp())),
            "to": str(int(end.timestamp())),
            "query": rendered,
        }
        headers = {
            "DD-API-KEY": self._api_key.reveal(),
            "DD-APPLICATION-KEY": self._application_key.reveal(),
            "Accept": "application/json",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, verify=self._tls_context(),
                                         auth=self._site_auth) as client:
                response = await client.get(
                    f"{self.site}/api/v1/query", params=params, headers=headers
                )
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
        return FetchedSeries(
            query=rendered,
            series=self._parse(response),
            group_by=group_by_fields(rendered),
        )

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
        """Raise for an error status (401/403 auth, 408/429/5xx retryable, 400/422 query)."""
        status = response.status_code
        if status in (401, 403):
            raise SourceAuthError(
                f"Datadog at {self.site} refused the keys (HTTP {status}): {self._error(response)}",
                status=status,
            )
        if status in (408, 429) or status >= 500:
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

    def _parse(self, response: httpx.Response) -> tuple[TaggedSeries, ...]:
        self._check_status(response)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"Datadog at {self.site} answered HTTP 200 with a body that is not JSON "
                f"(starts {self._mask(response.text[:60])!r})"
            ) from exc
        return parse_query_response(body)
