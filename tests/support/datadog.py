"""A local stand-in for Datadog's metrics query API, for tests and benchmarks (loopback only).

It speaks the documented v1 endpoint (Datadog API reference, "Metrics: Query timeseries
points")::

    GET /api/v1/query?from=<epoch s>&to=<epoch s>&query=<query>
    DD-API-KEY: <key>    DD-APPLICATION-KEY: <key>

and answers ``{"status": "ok", "res_type": "time_series", "query", "from_date", "to_date",
"series": [{"metric", "scope", "tag_set", "pointlist": [[ms, value|null], ...], "start",
"end", "interval", "length", "expression", ...}]}``, only the points within ``[from, to]``.
Wrong or missing keys get ``403 {"errors": ["Forbidden"]}`` (``auth_status`` changes it).
``GET /api/v1/validate`` (the key check a health probe uses) answers ``{"valid": true}`` for
the right API key; it is not scripted and not recorded in ``requests``.

API
---
``FakeDatadog(api_key=..., application_key=..., delay=0.0)``: ``start()`` / ``stop()`` or a
context manager; ``url`` is the base URL to give ``DatadogSource(site=...)``.

``add_series(query, points, *, tags=(), metric=None)``: what a query returns; call again with
the same query for a second (grouped) series. ``points`` are ``(epoch seconds, value|None)``.

``script(*answers)``: the next requests get these :class:`Answer` s in order (then normal
answers again): ``Answer(status=429, headers={"Retry-After": "1"})``, ``Answer(status=503)``,
``Answer(body=b"not json")`` (malformed), ``Answer(delay=5.0)`` (slow, then the normal body).
``delay`` on the server slows every answer (the benchmark uses it).

``requests``: every request received (path, query parameters, headers), for assertions.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        self._series: dict[str, list[dict[str, Any]]] = {}
        self._script: deque[Answer] = deque()
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
        pointlist = [[float(t) * 1000.0, v] for t, v in points]
        with self._lock:
            self._series.setdefault(query, []).append(
                {"metric": metric or query.split("{")[0].split(":")[-1], "tag_set": list(tags),
                 "scope": ",".join(tags) or "*", "pointlist": pointlist}
            )

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    # -- answering ------------------------------------------------------------------------
    def _next_scripted(self) -> Answer | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def answer(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Answer:
        if path == "/api/v1/validate":
            if headers.get("dd-api-key") != self.api_key:
                return Answer(self.auth_status, b'{"errors": ["Forbidden"]}')
            return Answer(200, b'{"valid": true}')
        with self._lock:
            self.requests.append(RecordedRequest(path, params, headers))
        scripted = self._next_scripted()
        if scripted is not None and scripted.body is not None:
            return scripted
        delay = (scripted.delay if scripted else 0.0) + self.delay
        status = scripted.status if scripted else 200
        if path != "/api/v1/query":
            return Answer(404, b'{"errors": ["Not found"]}', delay=delay)
        if (headers.get("dd-api-key") != self.api_key
                or headers.get("dd-application-key") != self.application_key):
            return Answer(self.auth_status, b'{"errors": ["Forbidden"]}', delay=delay)
        if status != 200:
            error = json.dumps({"errors": [f"scripted HTTP {status}"]}).encode()
            return Answer(status, error, scripted.headers if scripted else {}, delay)
        try:
            start, end, query = int(params["from"]), int(params["to"]), params["query"]
        except (KeyError, ValueError):
            return Answer(400, b'{"errors": ["from, to and query are required"]}', delay=delay)
        with self._lock:
            stored = [dict(s) for s in self._series.get(query, [])]
        series = []
        for entry in stored:
            points = [p for p in entry["pointlist"] if start * 1000 <= p[0] <= end * 1000]
            if not points:
                continue
            interval = int((points[1][0] - points[0][0]) / 1000) if len(points) > 1 else 60
            series.append({**entry, "pointlist": points, "start": points[0][0],
                           "end": points[-1][0], "interval": interval, "length": len(points),
                           "expression": query, "aggr": None, "unit": None})
        answer = {"status": "ok", "res_type": "time_series", "query": query,
                "from_date": start * 1000, "to_date": end * 1000, "series": series,
                "message": "", "group_by": []}
        return Answer(200, json.dumps(answer).encode(), delay=delay)

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

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(parsed.query))
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = fake.answer(parsed.path, params, headers)
                if answer.delay:
                    time.sleep(answer.delay)
                body = answer.body or b""
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer to

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
