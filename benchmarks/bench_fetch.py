"""A whole analysis, fetching included, against a real Prometheus; and how much concurrent
fetching saves against a slow one.

Default: the real thing (issue 18). 100 metrics x 1,440 points a side (a day at one-minute
steps) are backfilled into a real Prometheus (Debian's ``prometheus`` and ``promtool``, on
loopback); the real service (its own process, temp SQLite) is asked for the analysis with
``POST /v1/analyses`` (inline config, ``promql`` per metric) and polled until it has
``succeeded``. Printed, as medians over ``--runs``:

- end to end: from the POST to the answer saying ``succeeded`` (and the service's own
  ``created_at`` -> ``finished_at``), and of that the fetching: the slowest side's
  ``seconds`` in the report's ``details.fetch`` (all sides start together, so about the
  time from the first query sent to the last answer parsed); the rest is judging in a
  worker, storing the series and the report, and polling;
- the judgment alone: ``judge.judging.judge`` in this process, on the same series;
- the slowest single range query: each of the 200 queries sent alone (httpx, keep-alive),
  its answer read whole;
- the ratio end to end / (judgment + 3 x slowest query + 100 ms), issue 18's target <= 1;
- the CPU seconds one analysis costs, by process (the service's own, its judging workers',
  Prometheus'), and what they imply: no schedule on this machine's cores can end the
  analysis sooner than their sum / cores (the work, spread perfectly, in parallel).

``--slow-server`` instead runs the comparison of concurrent and sequential fetching against a
local server speaking Prometheus' range-query API that waits ``--delay`` seconds per answer
(50 metrics, 100 queries) through the real ``PrometheusSource`` and ``judge.analyze``:
printed, the wall time of each whole analysis, the sum of the query latencies it observed and
the ratio wall / sum (about 1.0: no overlap; 0.05: the analysis took a twentieth of the time
its queries did one after another). ``--source datadog`` runs that against the fake Datadog
(``tests/support/datadog.py``).

Run: ``.venv/bin/python benchmarks/bench_fetch.py`` (about a minute: backfill, three runs),
``--quick`` (20 metrics x 360 points, one run), ``--slow-server`` (about 25 s).
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--slow-server", action="store_true",
                        help="concurrent vs sequential fetching against a slow fake server")
    parser.add_argument("--metrics", type=int, default=None,
                        help="default: 100 (real Prometheus), 50 (--slow-server)")
    parser.add_argument("--points", type=int, default=1440, help="a side (real Prometheus)")
    parser.add_argument("--runs", type=int, default=3, help="analyses (real Prometheus)")
    parser.add_argument("--quick", action="store_true", help="20 metrics x 360 points, 1 run")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per query")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--source", choices=("prometheus", "datadog"), default="prometheus")
    args = parser.parse_args()
    if args.quick:
        args.metrics, args.points, args.runs = args.metrics or 20, 360, 1
    if not args.slow_server:
        run_real(args.metrics or 100, args.points, args.runs)
        return
    args.metrics = args.metrics or 50
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


# -- the whole analysis against a real Prometheus -------------------------------------------
REAL_START = datetime(2025, 6, 2, tzinfo=UTC)
"""Where the backfilled day starts (a fixed past moment: the data and so the run are the same
whenever it runs)."""


def _openmetrics(metrics: int, points: int) -> str:
    """The backfill: ``bench_metric_NNN{version="v1"|"v2"}``, one sample a minute; v2 of every
    fourth metric 8% higher (a mix of verdicts, as in real analyses)."""
    rng = np.random.default_rng(18)
    lines: list[str] = []
    stamps = REAL_START.timestamp() + 60.0 * np.arange(points)
    for k in range(metrics):
        name = f"bench_metric_{k:03d}"
        lines.append(f"# TYPE {name} gauge")
        v1 = rng.normal(100.0, 5.0, points)
        v2 = rng.normal(108.0 if k % 4 == 0 else 100.0, 5.0, points)
        for stamp, a, b in zip(stamps, v1, v2, strict=True):
            lines.append(f'{name}{{version="v1"}} {a:.4f} {stamp:.3f}')
            lines.append(f'{name}{{version="v2"}} {b:.4f} {stamp:.3f}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _real_config(metrics: int) -> dict[str, Any]:
    return {"name": "bench-fetch", "metrics": [
        {"name": f"metric_{k:03d}", "direction": "increase",
         "query": {"type": "prometheus", "promql": f'bench_metric_{k:03d}{{version="${{scope}}"}}'}}
        for k in range(metrics)
    ]}


def _analysis_seconds(service_url: str, request: dict[str, Any]
                      ) -> tuple[float, float, float]:
    """One analysis: seconds from the POST to the answer saying it succeeded, the service's
    own created_at -> finished_at, and its fetching (the slowest side)."""
    import httpx

    with httpx.Client(base_url=service_url, timeout=120) as client:
        began = time.perf_counter()
        created = client.post("/v1/analyses", json=request)
        created.raise_for_status()
        analysis_id = created.json()["id"]
        while True:
            analysis = client.get(f"/v1/analyses/{analysis_id}").json()
            if analysis["status"] not in ("queued", "running"):
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
    if analysis["status"] != "succeeded":
        raise SystemExit(f"analysis ended {analysis['status']}: {analysis.get('error')}")
    errors = [m["name"] for m in analysis["report"]["metrics"]
              if m["classification"] in ("error", "nodata", "nodata_fail")]
    if errors:
        raise SystemExit(f"{len(errors)} metrics without data: {errors[:3]}")
    served = (datetime.fromisoformat(analysis["finished_at"])
              - datetime.fromisoformat(analysis["created_at"])).total_seconds()
    fetching = max(side["seconds"] for fetched in analysis["report"]["details"]["fetch"].values()
                   for side in (fetched["baseline"], fetched["canary"]))
    return elapsed, served, fetching


def _queries(prometheus_url: str, metrics: int, points: int
             ) -> tuple[list[float], dict[str, dict[str, list[float]]]]:
    """Each range query sent alone (keep-alive): its seconds, and the series by side."""
    import httpx

    end = REAL_START + timedelta(minutes=points - 1)
    latencies: list[float] = []
    sides: dict[str, dict[str, list[float]]] = {"v1": {}, "v2": {}}
    with httpx.Client(base_url=prometheus_url, timeout=60) as client:
        for k in range(metrics):
            for version in ("v1", "v2"):
                params = {"query": f'bench_metric_{k:03d}{{version="{version}"}}',
                          "start": f"{REAL_START.timestamp():.0f}",
                          "end": f"{end.timestamp():.0f}", "step": "60"}
                began = time.perf_counter()
                answer = client.get("/api/v1/query_range", params=params)
                body = answer.read()
                latencies.append(time.perf_counter() - began)
                [series] = json.loads(body)["data"]["result"]
                sides[version][f"metric_{k:03d}"] = [float(v) for _, v in series["values"]]
    return latencies, sides


def run_real(metrics: int, points: int, runs: int) -> None:
    import statistics
    import tempfile

    from judge.api.workers import available_cores
    from judge.judging import judge
    from tests.support.prometheus import PrometheusServer, backfill
    from tests.support.service import ServiceProcess, cpu_seconds

    judging_workers = available_cores()  # the service's default number of judging workers
    config_document = _real_config(metrics)
    end = REAL_START + timedelta(minutes=points - 1)
    request = {"config": config_document, "baseline": {"scope": "v1"},
               "canary": {"scope": "v2"}, "start": REAL_START.isoformat(),
               "end": end.isoformat(), "step": 60, "source": "prometheus"}
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work_dir = Path(tmp)
        backfill(_openmetrics(metrics, points), work_dir / "tsdb")
        with PrometheusServer(work_dir / "tsdb") as prometheus:
            latencies, sides = _queries(prometheus.url, metrics, points)  # also warms its caches
            env = {"CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'bench.db'}",
                   "CANARY_JUDGE_LOG_LEVEL": "WARNING",
                   "CANARY_JUDGE_PROMETHEUS_URL": prometheus.url,
                   "CANARY_JUDGE_SOURCE_CHECK_INTERVAL_SECONDS": "0",
                   "CANARY_JUDGE_JUDGE_WORKERS": str(judging_workers)}
            with ServiceProcess(env, work_dir) as service:
                # Warm-up: one analysis per judging worker (the idle workers take turns),
                # so that each has loaded the compiled kernels before the timed runs: a
                # worker's first large judgment loads them (about half a second of CPU once
                # in a worker's life), which the runs would otherwise share out.
                for _ in range(judging_workers):
                    _analysis_seconds(service.url, request)
                before = (*cpu_seconds(service.pid), sum(cpu_seconds(prometheus.pid)))
                timings = [_analysis_seconds(service.url, request) for _ in range(runs)]
                after = (*cpu_seconds(service.pid), sum(cpu_seconds(prometheus.pid)))
            latencies = [max(latencies, default=0.0),
                         max(_queries(prometheus.url, metrics, points)[0])]
    judged = []
    for _ in range(3):
        began = time.perf_counter()
        judge(config_document, sides["v1"], sides["v2"])
        judged.append(time.perf_counter() - began)
    judgment = statistics.median(judged)
    slowest = min(latencies)  # the slowest query of the quieter of two passes
    end_to_end = statistics.median(t[0] for t in timings)
    served = statistics.median(t[1] for t in timings)
    fetching = statistics.median(t[2] for t in timings)
    budget = judgment + 3 * slowest + 0.1
    print(f"whole analysis against a real Prometheus (loopback): {metrics} metrics x {points} "
          f"points a side, {2 * metrics} range queries; medians of {runs} run(s)")
    print(f"end to end (POST /v1/analyses -> succeeded): {end_to_end:.3f} s "
          f"(service's created_at -> finished_at: {served:.3f} s; of which fetching "
          f"{fetching:.3f} s)")
    print(f"judgment alone (judge.judging.judge, in-process): {judgment:.3f} s")
    print(f"slowest single range query: {1000 * slowest:.1f} ms")
    print(f"ratio end to end / (judgment + 3 x slowest query + 100 ms = {budget:.3f} s): "
          f"{end_to_end / budget:.2f} (target <= 1)")
    server, workers, prometheus_cpu = ((b - a) / runs for a, b in zip(before, after, strict=True))
    total = server + workers + prometheus_cpu
    cores = os.cpu_count() or 1
    print(f"CPU per analysis: service {server:.3f} s (fetching, parsing, storing), its judging "
          f"workers {workers:.3f} s, Prometheus {prometheus_cpu:.3f} s; total {total:.3f} s, "
          f"so at least {total / cores:.3f} s end to end on {cores} cores "
          f"({total / cores / budget:.2f} x the budget)")


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
