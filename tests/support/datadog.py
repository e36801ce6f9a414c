"""A local stand-in for Datadog's metrics query APIs, for tests and benchmarks (loopback only).

It speaks the documented endpoints (Datadog API reference, "Metrics")::

    GET  /api/v1/query?from=<epoch s>&to=<epoch s>&query=<query>        (v1)
    POST /api/v2/query/timeseries   {"data": {"type": "timeseries_request", "attributes":
         {"from": ms, "to": ms, "interval": ms, "queries": [...], "formulas": [...]}}}  (v2)
    DD-API-KEY: <key>    DD-APPLICATION-KEY: <key>

and keeps raw points per query (``add_series``). It rolls them up as Datadog does: a
``.rollup(method, seconds)`` in a v1 query (or v2's ``interval``) sets the buckets, otherwise
Datadog's default for the window's length (the "Rollup" docs' API column: 20 s up to an hour,
60 s up to 4 h, 300 s up to a day, 600 s up to 2 days, 3600 s up to a week, 14400 s beyond);
buckets are aligned to the epoch, those within ``[from, to]`` kept, and **empty buckets are
left out** of ``pointlist`` (v1) or ``times`` (v2), as Datadog does. A bucket whose raw values
are all ``None`` answers ``null``.

v1 answers ``{"status": "ok", "res_type": "time_series", "series": [{"metric", "scope",
"tag_set", "pointlist", "start", "end", "interval", "length", "expression", ...}], ...}``.
v2 answers ``{"data": {"type": "timeseries_response", "attributes": {"series": [{"group_tags",
"query_index", "unit"}], "times": [ms...], "values": [[...]]}}}``; a formula is evaluated over
the named queries with Python arithmetic (``+ - * /`` and parentheses), the points both have.

Wrong or missing keys get ``403 {"errors": ["Forbidden"]}`` (``auth_status`` changes it).
``GET /api/v1/validate`` (the key check a health probe uses) answers ``{"valid": true}`` for
the right API key; it is not scripted and not recorded in ``requests``.

API
---
``FakeDatadog(api_key=..., application_key=..., delay=0.0)``: ``start()`` / ``stop()`` or a
context manager; ``url`` is the base URL to give ``DatadogSource(site=...)``.

``add_series(query, points, *, tags=(), metric=None)``: raw points of a query (without any
rollup); call again with the same query for a second (grouped) series. ``points`` are
``(epoch seconds, value|None)``.

``replay(query, body)``: answer a v1 request whose query is exactly ``query`` with ``body``
(a recorded real answer), whatever the time range.

``script(*answers)``: the next requests get these :class:`Answer` s in order (then normal
answers again): ``Answer(status=429, headers={"X-RateLimit-Reset": "1"})``,
``Answer(status=503)``, ``Answer(body=b"not json")`` (malformed), ``Answer(delay=5.0)`` (slow,
then the normal body), ``Answer(headers={...})`` (the normal body with these headers).
``delay`` on the server slows every answer (the benchmark uses it).

``rate_limit(limit, period)``: Datadog's rate limiting: at most ``limit`` queries per
``period`` seconds (periods start at the first query), ``X-RateLimit-Limit`` / ``-Period`` /
``-Remaining`` / ``-Reset`` on every answer, 429 beyond the limit. ``rate_limited`` counts the
429s it gave.

``requests``: every request received (path, query parameters, headers, JSON body, arrival
time); ``max_in_flight``: the most queries it was answering at once.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ROLLUP = re.compile(r"\.rollup\(\s*(?:(avg|sum|min|max|count)\s*,\s*)?(\d+)\s*\)")
_DEFAULT_INTERVALS = ((3600, 20), (4 * 3600, 60), (86400, 300), (2 * 86400, 600),
                      (7 * 86400, 3600))
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda values: sum(values) / len(values),
    "sum": sum,
    "min": min,
    "max": max,
    "count": lambda values: float(len(values)),
}


@dataclass(frozen=True)
class Answer:
    """One scripted answer. ``body=None`` means the normal answer for the request."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    at: float = 0.0
    """``time.monotonic()`` when it arrived."""


def default_interval(seconds: float) -> int:
    """The bucket Datadog's API picks for a window of ``seconds`` without a rollup."""
    for longest, interval in _DEFAULT_INTERVALS:
        if seconds <= longest:
            return interval
    return 14400


def rollup(
    points: Sequence[tuple[float, float | None]], start: float, end: float, interval: int,
    method: str = "avg",
) -> list[tuple[float, float | None]]:
    """Raw points into epoch-aligned buckets within ``[start, end]``; empty buckets left out."""
    buckets: dict[int, list[float | None]] = {}
    for when, value in points:
        bucket = int(math.floor(when / interval) * interval)
        buckets.setdefault(bucket, []).append(value)
    first = math.ceil(start / interval) * interval
    rolled = []
    for bucket in sorted(buckets):
        if first <= bucket <= end:
            known = [v for v in buckets[bucket] if v is not None]
            rolled.append((float(bucket), _AGGREGATE[method](known) if known else None))
    return rolled


_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_formula(formula: str, values: dict[str, float]) -> float | None:
    """A v2 formula over named values (``+ - * /``, parentheses, numbers); ``None`` on a
    division by zero."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        raise ValueError(f"formula {formula!r} is beyond this stand-in")

    try:
        return walk(ast.parse(formula, mode="eval"))
    except ZeroDivisionError:
        return None


class FakeDatadog:
    def __init__(
        self,
        api_key: str = "test-api-key",
        application_key: str = "test-app-key",
        *,
        delay: float = 0.0,
        auth_status: int = 403,
    ) -> None:
        self.api_key = api_key
        self.application_key = application_key
        self.delay = delay
        self.auth_status = auth_status
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self.rate_limited = 0
        self._in_flight = 0
        self._series: dict[str, list[dict[str, Any]]] = {}
        self._replays: dict[str, bytes] = {}
        self._script: deque[Answer] = deque()
        self._limit: tuple[int, float] | None = None
        self._window: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration --------------------------------------------------------------------
    def add_series(
        self,
        query: str,
        points: Iterable[tuple[float, float | None]],
        *,
        tags: Sequence[str] = (),
        metric: str | None = None,
    ) -> None:
        with self._lock:
            self._series.setdefault(query, []).append(
                {"metric": metric or query.split("{")[0].split(":")[-1], "tags": list(tags),
                 "points": [(float(t), v) for t, v in points]}
            )

    def replay(self, query: str, body: Any) -> None:
        with self._lock:
            self._replays[query] = json.dumps(body).encode()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def rate_limit(self, limit: int, period: float) -> None:
        with self._lock:
            self._limit = (limit, period)
            self._window = None

    # -- answering ------------------------------------------------------------------------
    def _next_scripted(self) -> Answer | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _rate_headers(self, now: float) -> tuple[dict[str, str], bool]:
        """The rate-limit headers for a query arriving ``now``, and whether it is over."""
        with self._lock:
            if self._limit is None:
                return {}, False
            limit, period = self._limit
            if self._window is None or now >= self._window[0] + period:
                began = now if self._window is None else (
                    self._window[0] + period * math.floor((now - self._window[0]) / period))
                self._window = (began, 0)
            began, used = self._window
            over = used >= limit
            if not over:
                used += 1
                self._window = (began, used)
            else:
                self.rate_limited += 1
            # Rounded up: a client waiting this long never lands before the reset.
            reset = math.ceil((began + period - now) * 1000) / 1000
            return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Period": f"{period:g}",
                    "X-RateLimit-Remaining": str(max(0, limit - used)),
                    "X-RateLimit-Reset": f"{reset:.3f}", "X-RateLimit-Name": "query"}, over

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str],
               body: Any) -> Answer:
        if path == "/api/v1/validate":
            if headers.get("dd-api-key") != self.api_key:
                return Answer(self.auth_status, b'{"errors": ["Forbidden"]}')
            return Answer(200, b'{"valid": true}')
        now = time.monotonic()
        with self._lock:
            self.requests.append(RecordedRequest(path, params, headers, body, now))
        scripted = self._next_scripted()
        if scripted is not None and scripted.body is not None:
            return scripted
        delay = (scripted.delay if scripted else 0.0) + self.delay
        status = scripted.status if scripted else 200
        extra = dict(scripted.headers) if scripted else {}
        if (method, path) not in (("GET", "/api/v1/query"), ("POST", "/api/v2/query/timeseries")):
            return Answer(404, b'{"errors": ["Not found"]}', delay=delay)
        if (headers.get("dd-api-key") != self.api_key
                or headers.get("dd-application-key") != self.application_key):
            return Answer(self.auth_status, b'{"errors": ["Forbidden"]}', delay=delay)
        if status != 200:
            error = json.dumps({"errors": [f"scripted HTTP {status}"]}).encode()
            return Answer(status, error, extra, delay)
        limits, over = self._rate_headers(now)
        if over:
            return Answer(429, b'{"errors": ["Rate limit of query exceeded"]}',
                          {**limits, **extra}, delay)
        answer = self._v1(params) if path == "/api/v1/query" else self._v2(body)
        return Answer(answer.status, answer.body, {**limits, **extra}, delay)

    def _rolled(self, query: str, start: float, end: float, interval: int | None,
                method: str | None) -> tuple[list[dict[str, Any]], int]:
        """The stored series of ``query`` (its rollups stripped) rolled up for the window."""
        found = _ROLLUP.search(query)
        if found:
            method, interval = found.group(1) or "avg", int(found.group(2))
        base = _ROLLUP.sub("", query)
        bucket = interval or default_interval(end - start)
        with self._lock:
            stored = [dict(s) for s in self._series.get(base, [])]
        rolled = []
        for entry in stored:
            points = rollup(entry["points"], start, end, bucket, method or "avg")
            if points:
                rolled.append({**entry, "points": points})
        return rolled, bucket

    def _v1(self, params: dict[str, str]) -> Answer:
        try:
            start, end, query = int(params["from"]), int(params["to"]), params["query"]
        except (KeyError, ValueError):
            return Answer(400, b'{"errors": ["from, to and query are required"]}')
        with self._lock:
            replayed = self._replays.get(query)
        if replayed is not None:
            return Answer(200, replayed)
        rolled, interval = self._rolled(query, start, end, None, None)
        series = []
        for entry in rolled:
            pointlist = [[t * 1000.0, v] for t, v in entry["points"]]
            tags = entry["tags"]
            series.append({
                "metric": entry["metric"], "tag_set": tags, "scope": ",".join(tags) or "*",
                "pointlist": pointlist, "start": pointlist[0][0],
                "end": pointlist[-1][0] + interval * 1000 - 1, "interval": interval,
                "length": len(pointlist), "expression": query, "aggr": None, "unit": None,
                "attributes": {}, "query_index": 0, "display_name": entry["metric"],
            })
        answer = {"status": "ok", "resp_version": 1, "res_type": "time_series",
                  "query": query, "from_date": start * 1000, "to_date": end * 1000,
                  "series": series, "message": "", "group_by": [], "times": [], "values": []}
        return Answer(200, json.dumps(answer).encode())

    def _v2(self, body: Any) -> Answer:
        try:
            attributes = body["data"]["attributes"]
            if body["data"]["type"] != "timeseries_request":
                raise ValueError
            start, end = attributes["from"] / 1000.0, attributes["to"] / 1000.0
            queries = attributes["queries"]
            interval_ms = attributes.get("interval")
        except (KeyError, TypeError, ValueError):
            message = "API input validation failed: Invalid type. Expected \"timeseries_request\"."
            return Answer(400, json.dumps({"errors": [message]}).encode())
        interval = int(interval_ms // 1000) if interval_ms else None
        named: dict[str, dict[tuple[str, ...], dict[float, float | None]]] = {}
        for index, query in enumerate(queries):
            rolled, _bucket = self._rolled(query["query"], start, end, interval, None)
            name = query.get("name") or f"query{index + 1}"
            named[name] = {tuple(e["tags"]): dict(e["points"]) for e in rolled}
        formulas = attributes.get("formulas") or [{"formula": name} for name in named]
        series, columns = [], []
        for index, formula in enumerate(formulas):
            refs = [name for name in named if re.search(rf"\b{re.escape(name)}\b",
                                                         formula["formula"])]
            groups = sorted({tags for name in refs for tags in named[name]})
            for tags in groups:
                stamps = sorted(set.intersection(*(set(named[n].get(tags, {})) for n in refs)))
                column: dict[float, float | None] = {}
                for when in stamps:
                    values = {n: named[n][tags][when] for n in refs}
                    column[when] = (None if any(v is None for v in values.values())
                                    else evaluate_formula(formula["formula"],
                                                          {k: float(v) for k, v in values.items()
                                                           if v is not None}))
                if column:
                    series.append({"group_tags": list(tags), "query_index": index, "unit": None})
                    columns.append(column)
        times = sorted({when for column in columns for when in column})
        rows = [[column.get(when) for when in times] for column in columns]
        answer = {"data": {"id": "0", "type": "timeseries_response", "attributes": {
            "series": series, "times": [int(t * 1000) for t in times], "values": rows}}}
        return Answer(200, json.dumps(answer).encode())

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Datadog is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeDatadog:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parsed.query))
                headers = {k.lower(): v for k, v in self.headers.items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with fake._lock:
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    answer = fake.answer(method, parsed.path, params, headers, body)
                    if answer.delay:
                        time.sleep(answer.delay)
                finally:
                    with fake._lock:
                        fake._in_flight -= 1
                payload = answer.body or b""
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer to

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeDatadog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
