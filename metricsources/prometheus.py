"""Prometheus as a metric source: PromQL templates and Kayenta's query config, range queries.

Queries run on the ``requests`` session ``prometheus-api-client`` (``PrometheusConnect``) is
built with: its headers, auth, TLS settings and pool. The range query is sent on that session
directly rather than through ``custom_query_range``, so the answer's bytes are parsed once, with
orjson (the client decodes them with the standard library, text first), and an error answer
is at hand without a response hook. ``requests`` is synchronous, so each query runs on this
source's own thread pool via
``loop.run_in_executor``: the pool is sized for concurrency (the event loop's default pool has
only ``cpu + 4`` threads, which would serialise a 50-metric analysis on a small machine), and
each request carries a ``requests`` timeout: a thread cannot be cancelled, so a fetch the
analysis gives up on keeps its thread until that timeout, and the analysis' own per-attempt
timeout defaults to this source's ``timeout`` plus one second for that reason. The
client's own retries are switched off: the analysis retries with backoff and jitter, and
retrying twice in two layers would multiply the wait.

Rendering (:func:`render_prometheus_query`) follows Kayenta's ``PrometheusMetricsService.
buildQuery`` (spinnaker/kayenta, ``kayenta-prometheus/src/main/java/com/netflix/kayenta/
prometheus/metrics/PrometheusMetricsService.java``) and ``QueryConfigUtils.expandCustomFilter``
(``kayenta-core``):

1. ``promql`` (native): the template with ``${...}`` placeholders substituted safely.
2. Otherwise the custom filter is ``custom_inline_template`` or the config template named by
   ``custom_filter_template`` (or the deprecated literal ``custom_filter``), expanded with the
   scope's bindings. If it starts with ``PromQL:`` the rest is the whole query.
3. Otherwise ``avg(metricName{FILTERS}) by (groupByFields)`` where FILTERS is the custom filter
   followed by the ``labelBindings``; with no custom filter, ``resourceType`` picks Kayenta's
   filters (``gce_instance``: ``scopeLabel=~"SCOPE-.{4}", zone=~".+/zones/LOCATION-.{1}"``;
   ``aws_ec2_instance``: ``asg_groupName="SCOPE", zone=~"LOCATION.{1}"``). Where Kayenta
   refuses a query with neither (``"Either a resource type or a custom filter is
   required."``), this source selects ``scopeLabel="SCOPE"`` (and ``locationLabel="LOCATION"``
   when both are set): the natural meaning of a scope. ``sumByFields`` (older Kayenta) gives
   ``sum(...) by (fields)`` instead of ``avg``.

Every scope value this module writes itself is escaped as a PromQL string body; values in
templates are substituted by :func:`metricsources.templates.expand_promql`.

Gaps: Prometheus returns a point at ``start + k * step`` only when a sample lies within its
lookback window (5 minutes by default). Fetched series are put on that grid, so a missing
point is NaN and the metric's NaN strategy decides what it means.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import ssl
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import requests
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from judge.config import CanaryConfig, MetricConfig
from judge.config.queries import PrometheusQuery
from judge.errors import (
    FailureKind,
    FatalSourceError,
    MalformedResponseError,
    QueryError,
    RetryableSourceError,
    ScopeValueError,
    SourceAuthError,
    SourceConnectionError,
    SourceError,
    SourceTimeoutError,
    UnsupportedSourceError,
)
from judge.ports import FetchedSeries, Scope, TaggedSeries, parse_entries
from judge.redaction import split_userinfo
from metricsources._http import is_read_timeout, parse_retry_after, transport_reason
from metricsources.templates import escape_promql_string, expand_promql


# -- rendering ---------------------------------------------------------------------------------
def _quoted(value: str) -> str:
    return '"' + escape_promql_string(value) + '"'


def _kayenta_scope_filters(
    query: PrometheusQuery, scope: Scope, default_scope_label: str
) -> list[str]:
    """The filters Kayenta's ``addScopeFilter`` adds when no custom filter is given."""
    resource_type = query.resource_type or scope.params.get("resourceType")
    location = scope.location
    filters: list[str] = []
    if resource_type == "gce_instance":
        if not location:
            raise ScopeValueError("location (i.e. region) is required when resourceType is "
                                  "'gce_instance'")
        scope_label = query.scope_label or default_scope_label
        if scope.scope:
            # Kayenta matches a GCE managed instance group's instances: "<group>-xxxx".
            filters.append(f'{scope_label}=~"{escape_promql_string(_regex_quote(scope.scope))}-.{{4}}"')
        project = scope.params.get("project")
        zone = ".+/" + (f"projects/{_regex_quote(project)}/" if project else "")
        zone += f"zones/{_regex_quote(location)}-.{{1}}"
        filters.append(f"zone=~{_quoted(zone)}")
    elif resource_type == "aws_ec2_instance":
        if not location:
            raise ScopeValueError("location (i.e. region) is required when resourceType is "
                                  "'aws_ec2_instance'")
        if scope.scope:
            filters.append(f"asg_groupName={_quoted(scope.scope)}")
        filters.append(f"zone=~{_quoted(_regex_quote(location) + '.{1}')}")
    elif resource_type:
        raise FatalSourceError(
            f"there is no explicit support for resourceType {resource_type!r} (supported: "
            "gce_instance, aws_ec2_instance); build the query with label bindings and a "
            "custom filter template instead"
        )
    else:
        filters.append(f"{query.scope_label or default_scope_label}={_quoted(scope.scope)}")
        if query.location_label and location:
            filters.append(f"{query.location_label}={_quoted(location)}")
    return filters


def _regex_quote(value: str) -> str:
    """Quote RE2 metacharacters so a value Kayenta puts in a regex matcher matches literally."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def render_prometheus_query(
    query: PrometheusQuery,
    scope: Scope,
    templates: Mapping[str, str],
    *,
    default_scope_label: str = "instance",
) -> str:
    """The PromQL for one query and one scope, built as Kayenta builds it (see module doc).

    >>> q = PrometheusQuery(metricName="cpu", labelBindings=('job="api"',), groupByFields=("pod",))
    >>> render_prometheus_query(q, Scope("v2"), {}, default_scope_label="version")
    'avg(cpu{version="v2",job="api"}) by (pod)'
    """
    bindings = scope.bindings()
    if query.promql is not None:
        return expand_promql(query.promql, bindings)

    custom: str | None = None
    if query.custom_inline_template:
        custom = expand_promql(query.custom_inline_template, bindings)
    elif query.custom_filter_template:
        if query.custom_filter_template not in templates:
            raise FatalSourceError(
                f"custom filter template {query.custom_filter_template!r} was not found "
                f"(defined: {', '.join(sorted(templates)) or 'none'})"
            )
        custom = expand_promql(templates[query.custom_filter_template], bindings)
    elif query.custom_filter:
        custom = expand_promql(query.custom_filter, bindings)

    if custom and custom.startswith("PromQL:"):
        return custom[len("PromQL:"):]
    if not query.metric_name:
        raise FatalSourceError(
            "a prometheus query without 'promql' and without a 'PromQL:' template needs "
            "'metric_name' (metricName)"
        )
    filters = [custom] if custom else _kayenta_scope_filters(query, scope, default_scope_label)
    filters.extend(query.label_bindings)
    selector = query.metric_name + ("{" + ",".join(filters) + "}" if filters else "")
    if query.sum_by_fields and not query.group_by_fields:
        return f"sum({selector}) by ({','.join(query.sum_by_fields)})"
    rendered = f"avg({selector})"
    if query.group_by_fields:
        rendered += f" by ({','.join(query.group_by_fields)})"
    return rendered


# -- parsing -----------------------------------------------------------------------------------
def parse_range_result(result: Any) -> tuple[TaggedSeries, ...]:
    """Series from the ``data.result`` list of a ``/api/v1/query_range`` answer (a matrix).

    Tags are the series' labels without ``__name__``; values are floats (``"NaN"`` and
    ``"+Inf"`` parse as such). Raises :class:`MalformedResponseError` on anything else.
    """
    if not isinstance(result, list):
        raise MalformedResponseError(
            f"Prometheus range query result is a {type(result).__name__}, expected a list "
            "(resultType matrix)"
        )

    def parse(entry: Any) -> TaggedSeries:
        labels = entry["metric"]
        points = entry["values"]
        tags = {str(k): str(v) for k, v in labels.items() if k != "__name__"}
        timestamps = np.array([float(p[0]) for p in points], dtype=np.float64)
        values = np.array([float(p[1]) for p in points], dtype=np.float64)
        return TaggedSeries(tags=tags, timestamps=timestamps, values=values)

    return parse_entries(
        result, parse,
        lambda index: (f"Prometheus result #{index} is not a matrix entry "
                       '{"metric": {...}, "values": [[time, "value"], ...]}'),
    )


def align_to_grid(series: TaggedSeries, start: float, step: float, count: int) -> TaggedSeries:
    """The series on the evaluation grid ``start + k*step`` (k < count), NaN where absent.

    Points off the grid (by more than a millisecond) mean the grid assumption is wrong; the
    series is then returned unchanged rather than silently dropping them.
    """
    grid = start + step * np.arange(count, dtype=np.float64)
    index = np.rint((series.timestamps - start) / step).astype(np.int64)
    on_grid = (index >= 0) & (index < count) & (
        np.abs(series.timestamps - (start + index * step)) <= 1e-3
    )
    if not on_grid.all():
        return series
    values = np.full(count, np.nan)
    values[index] = series.values
    return TaggedSeries(tags=series.tags, timestamps=grid, values=values)


def _classify_http_error(status: int, body: bytes, url: str) -> SourceError:
    """An error answer (its status and body, as the response hook kept them) as our hierarchy,
    with the source's own message (Prometheus' ``errorType: error`` when the body is its API's
    JSON); ``Retry-After`` is added by the caller."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
        detail = f"{parsed.get('errorType', 'error')}: {parsed.get('error', text)}"
    except (ValueError, AttributeError):
        detail = text[:300]
    message = f"Prometheus at {url} answered HTTP {status}: {detail}"
    if status in (401, 403):
        return SourceAuthError(message, status=status)
    if status in (408, 429) or status >= 500:
        return RetryableSourceError(message, status=status)
    if status in (400, 422):
        return QueryError(message, status=status)
    return FatalSourceError(message, status=status)


# -- the source --------------------------------------------------------------------------------
class PrometheusSource:
    """Range queries against one Prometheus server.

    ``headers`` carry auth (``{"Authorization": "Bearer ..."}``) and are never shown in a repr
    or an error; ``verify`` is ``True``/``False`` or a CA bundle path; ``client_cert`` a cert
    path or ``(cert, key)``. ``timeout`` bounds each request in seconds. ``scope_label`` is the
    label a Kayenta-style query selects the scope with (Kayenta's ``scopeLabel`` setting,
    default ``instance``). ``max_workers`` is how many queries may run at once.

    Credentials in the URL (``http://user:password@host``) are sent as ``basic_auth``, and
    ``url`` (shown in errors and the repr) is kept without them.
    """

    query_types: frozenset[str] = frozenset({"prometheus"})

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        client_cert: str | tuple[str, str] | None = None,
        timeout: float = 30.0,
        scope_label: str = "instance",
        max_workers: int = 32,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        url, in_url = split_userinfo(url)
        if in_url is not None:
            if basic_auth is not None:
                raise ValueError("credentials given twice: in the URL's user info and basic_auth")
            basic_auth = in_url
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.scope_label = scope_label
        session = requests.Session()
        session.verify = verify
        # Uncompressed answers: Prometheus gzips a day of one-minute points (35 kB of JSON) in
        # about 4 ms of its CPU and we unzip it in more of ours, while sending it plain over
        # a network takes well under a millisecond (on loopback a range query took 5.3 ms
        # gzipped, 1.2 ms plain; benchmarks/bench_fetch.py).
        session.headers["Accept-Encoding"] = "identity"
        if client_cert is not None:
            session.cert = client_cert
        self._session = session
        # With trust_env, requests reads the proxy variables (all of os.environ, twice) and the
        # CA bundle variables again for every request: 2-3 ms of CPU a query where the
        # environment is large, more than the query itself. They are read once here, as
        # requests would read them, and the session then stops reading them.
        session.proxies.update(requests.utils.get_environ_proxies(self.url))
        if verify is True:
            session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                              or os.environ.get("CURL_CA_BUNDLE") or True)
        if basic_auth is None:
            basic_auth = requests.utils.get_netrc_auth(self.url)
        session.trust_env = False
        # Longest-prefix mount wins over the one PrometheusConnect adds for the bare URL: a
        # pool as large as the thread pool, and no retries at this layer (see module doc).
        session.mount(
            self.url + "/api/",
            HTTPAdapter(pool_maxsize=max_workers, max_retries=Retry(total=0, redirect=0)),
        )
        # The client annotates optional arguments without ``None`` (``headers: dict = None``):
        # pass them through an ``Any`` mapping rather than silencing each line.
        options: dict[str, Any] = {"headers": dict(headers) if headers else None,
                                   "auth": basic_auth}
        self._client = PrometheusConnect(
            url=self.url, session=session, retry=Retry(total=0, redirect=0), **options
        )
        self._executor = ThreadPoolExecutor(max_workers=max_workers,
                                            thread_name_prefix="prometheus-source")

    def __repr__(self) -> str:
        return f"PrometheusSource(url={self.url!r}, timeout={self.timeout})"

    def _answer_error(self, answer: requests.Response) -> SourceError:
        """The error of a non-200 answer."""
        error = _classify_http_error(answer.status_code, answer.content, self.url)
        if isinstance(error, RetryableSourceError):
            error.retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        return error

    def close(self) -> None:
        """Release the HTTP session and the thread pool."""
        self._client.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def render(self, metric: MetricConfig, scope: Scope, config: CanaryConfig) -> str:
        query = metric.query
        if not isinstance(query, PrometheusQuery):
            raise UnsupportedSourceError(
                f"metric {metric.name!r} has a {query.type!r} query; a Prometheus source runs "
                "prometheus queries"
            )
        return render_prometheus_query(
            query, scope, config.templates, default_scope_label=self.scope_label
        )

    async def fetch(
        self, metric: MetricConfig, scope: Scope, config: CanaryConfig
    ) -> FetchedSeries:
        rendered = self.render(metric, scope, config)
        start, end, step = scope.window()
        query = metric.query
        group_by: Sequence[str] = ()
        if isinstance(query, PrometheusQuery):
            group_by = query.group_by_fields or query.sum_by_fields
        loop = asyncio.get_running_loop()
        # Parsed on the query's thread too: on the event loop, a day of points for each of a
        # hundred metrics kept every other coroutine (and request) waiting.
        aligned = await loop.run_in_executor(
            self._executor, self._query_series, rendered, start, end, step
        )
        return FetchedSeries(query=rendered, series=aligned, group_by=tuple(group_by))

    def _query_series(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[TaggedSeries, ...]:
        series = parse_range_result(self._query_range(query, start, end, step))
        # The client sends whole seconds (round(start.timestamp())): build the grid alike.
        start_s = float(round(start.timestamp()))
        end_s = float(round(end.timestamp()))
        step_s = step.total_seconds()
        count = math.floor((end_s - start_s) / step_s) + 1
        return tuple(align_to_grid(s, start_s, step_s, count) for s in series)

    def _query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> Any:
        # As PrometheusConnect.custom_query_range asks: whole seconds.
        params: dict[str, str | int] = {
            "query": query, "start": round(start.timestamp()),
            "end": round(end.timestamp()), "step": _step_text(step),
        }
        body = self._get("/api/v1/query_range", params, self.timeout)
        try:
            return body["data"]["result"]
        except (KeyError, TypeError) as exc:
            raise self._malformed("a range-query result", exc) from exc

    def _get(self, path: str, params: Mapping[str, str | int], timeout: float) -> Any:
        """``GET`` one API path on the client's session (its headers, auth, TLS and pool) and
        its answer parsed with orjson; every failure as this package's :class:`SourceError`.

        requests' own errors come first: some are ``ValueError`` too (``InvalidURL``,
        ``InvalidHeader``), and they say the request could not be made, not that an answer
        was malformed."""
        try:
            answer = self._session.get(
                self.url + path, params=params, headers=self._client.headers,
                auth=self._client.auth, timeout=timeout,
            )
            if answer.status_code != 200:
                raise self._answer_error(answer)
            content = answer.content
        except requests.Timeout as exc:
            raise self._timeout_error(exc, timeout) from exc
        except requests.exceptions.SSLError as exc:
            # A certificate that does not verify will not verify on the next attempt either.
            raise FatalSourceError(
                f"TLS with Prometheus at {self.url} failed (check 'verify' / the CA bundle): "
                f"{_ssl_reason(exc)}",
                kind=FailureKind.CONNECT,
            ) from exc
        except requests.ConnectionError as exc:
            if is_read_timeout(exc):
                raise self._timeout_error(exc, timeout) from exc
            raise SourceConnectionError(
                f"cannot connect to Prometheus at {self.url}: {transport_reason(exc)}"
            ) from exc
        except requests.RequestException as exc:
            if isinstance(exc, ValueError):
                # InvalidURL, InvalidHeader ...: the request cannot be made, on any attempt.
                # Named by type only: requests' message can quote a header's value.
                raise FatalSourceError(
                    f"request to Prometheus at {self.url} cannot be made: "
                    f"{type(exc).__name__}", kind=FailureKind.CONNECT,
                ) from exc
            raise SourceConnectionError(
                f"request to Prometheus at {self.url} failed: {transport_reason(exc)}"
            ) from exc
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise self._malformed("JSON", exc) from exc

    def _malformed(self, expected: str, exc: Exception) -> MalformedResponseError:
        return MalformedResponseError(
            f"Prometheus at {self.url} answered with a body that is not {expected}: {exc!r}"
        )

    def _timeout_error(
        self, exc: requests.RequestException, timeout: float
    ) -> SourceTimeoutError:
        if isinstance(exc, requests.ConnectTimeout):
            return SourceTimeoutError(
                f"no connection to Prometheus at {self.url} within {timeout:g} s"
            )
        return SourceTimeoutError(
            f"Prometheus at {self.url} did not answer within {timeout:g} s"
        )

    async def probe(self, timeout: float | None = None) -> None:
        """Is the server answering queries? One instant query of ``1`` (works on Prometheus
        and the servers that speak its API: Thanos, Mimir, VictoriaMetrics). Raises the
        :class:`~judge.ports.SourceError` a fetch would raise; used by the service's
        source health checks, never by an analysis."""
        limit = min(self.timeout, timeout) if timeout is not None else self.timeout
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._probe, limit)

    def _probe(self, timeout: float) -> None:
        body = self._get("/api/v1/query", {"query": "1"}, timeout)
        try:
            body["data"]
        except (KeyError, TypeError) as exc:
            raise self._malformed("its API's answer to a query", exc) from exc


def _ssl_reason(exc: BaseException) -> str:
    """The innermost ``ssl`` error's reason (``CERTIFICATE_VERIFY_FAILED`` ...)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, BaseException) and arg is not seen:
                found = _ssl_reason(arg)
                if found:
                    return found
        seen = seen.__cause__ or seen.__context__
    return ""


def _step_text(step: timedelta) -> str:
    seconds = step.total_seconds()
    return f"{seconds:g}"
