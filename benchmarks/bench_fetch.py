"""How much concurrent fetching saves: 50 metrics whose queries each take ~200 ms.

A local HTTP server on 127.0.0.1 speaks Prometheus' range-query API (``GET
/api/v1/query_range``, a matrix of 60 points) and sleeps ``--delay`` seconds before each
answer. The same analysis (50 metrics, baseline and canary each: 100 queries) runs twice
through the real ``PrometheusSource`` and ``judge.analyze``:

- concurrent, with the defaults (``concurrency=32``, the source's 32 worker threads);
- sequential (``concurrency=1``), for comparison.

Printed: the wall time of each whole analysis (fetching and judging), the sum of the query
latencies it observed (each query's own time to answer, as ``report.details["fetch"]``
records it) and the ratio wall / sum: about 1.0 means no overlap (one query after another),
0.05 means the analysis took a twentieth of the time its queries did one after another.
``--source datadog`` runs the same against the fake Datadog (``tests/support/datadog.py``).

Run: ``.venv/bin/python benchmarks/bench_fetch.py`` (about 25 s with the defaults).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge import Report, Scope, ScopePair, analyze
from judge.config import CanaryConfig
from judge.ports import MetricSource
from metricsources.datadog import DatadogSource
from metricsources.prometheus import PrometheusSource

POINTS = 60
START = datetime(2024, 5, 1, 12, tzinfo=UTC)
END = START + timedelta(minutes=POINTS - 1)


@contextmanager
def slow_prometheus(delay: float) -> Iterator[str]:
    """A range-query server on a free loopback port that waits ``delay`` s per answer."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            time.sleep(delay)
            start, step = float(params["start"]), float(params["step"])
            rng = np.random.default_rng(abs(hash(params["query"])) % 2**32)
            values = [[start + k * step, f"{v:.3f}"] for k, v in
                      enumerate(rng.normal(100.0, 5.0, POINTS))]
            body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {}, "values": values}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256  # 100 connections may arrive at once
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def config(metrics: int, source: str) -> CanaryConfig:
    if source == "prometheus":
        query: dict[str, Any] = {"type": "prometheus",
                                 "promql": 'latency_{k}{{version="${{scope}}"}}'}
    else:
        query = {"type": "datadog", "query": "avg:latency_{k}{{version:${{scope}}}}"}
    return CanaryConfig.model_validate({"metrics": [
        {"name": f"metric {k:02d}",
         "query": {key: (value.format(k=k) if key != "type" else value)
                   for key, value in query.items()}}
        for k in range(metrics)
    ]})


def timed(cfg: CanaryConfig, source: MetricSource, concurrency: int) -> tuple[float, float, Report]:
    began = time.perf_counter()
    report = analyze(cfg, source, ScopePair(Scope("v1"), Scope("v2")), START, END,
                     timedelta(minutes=1), concurrency=concurrency)
    wall = time.perf_counter() - began
    latencies = sum(
        side["latency"] for fetched in report.details["fetch"].values()
        for side in (fetched["baseline"], fetched["canary"])
    )
    return wall, latencies, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per query")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--source", choices=("prometheus", "datadog"), default="prometheus")
    args = parser.parse_args()
    cfg = config(args.metrics, args.source)

    with _serve(args.source, args.delay, args.metrics) as source:
        rows = []
        for label, concurrency in (("concurrent", args.concurrency), ("sequential", 1)):
            wall, latencies, report = timed(cfg, source, concurrency)
            errors = [m.name for m in report.metrics if m.classification.value == "error"]
            if errors:
                raise SystemExit(f"{label}: {len(errors)} metrics failed to fetch: {errors[:3]}")
            rows.append((label, concurrency, wall, latencies))

    print(f"{args.metrics} metrics x 2 sides = {2 * args.metrics} {args.source} queries, "
          f"{args.delay * 1000:.0f} ms each (server-side delay)")
    print(f"{'run':<11} {'concurrency':>11} {'wall s':>8} {'sum of latencies s':>19} "
          f"{'wall / sum':>10}")
    for label, concurrency, wall, latencies in rows:
        print(f"{label:<11} {concurrency:>11} {wall:>8.2f} {latencies:>19.2f} "
              f"{wall / latencies:>10.3f}")
    nominal = 2 * args.metrics * args.delay
    print(f"against the nominal sum ({2 * args.metrics} x {args.delay * 1000:.0f} ms = "
          f"{nominal:.1f} s): concurrent wall / nominal = {rows[0][2] / nominal:.3f}")
    speedup = rows[1][2] / rows[0][2]
    print(f"concurrent analysis is {speedup:.1f}x faster than sequential")


@contextmanager
def _serve(kind: str, delay: float, metrics: int) -> Iterator[MetricSource]:
    if kind == "prometheus":
        with slow_prometheus(delay) as url:
            source = PrometheusSource(url, timeout=30)
            try:
                yield source
            finally:
                source.close()
        return
    from tests.support.datadog import FakeDatadog

    with FakeDatadog("bench-api", "bench-app", delay=delay) as fake:
        rng = np.random.default_rng(1)
        for k in range(metrics):
            for version in ("v1", "v2"):
                fake.add_series(f"avg:latency_{k}{{version:{version}}}",
                                [(START.timestamp() + 60 * p, float(v))
                                 for p, v in enumerate(rng.normal(100.0, 5.0, POINTS))])
        yield DatadogSource(api_key="bench-api", application_key="bench-app", site=fake.url)


if __name__ == "__main__":
    main()
