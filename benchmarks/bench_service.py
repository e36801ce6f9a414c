"""Throughput and latency of ``POST /v1/judge`` against the machine's judging ceiling, and
``GET /healthz`` while the service judges at full load.

Starts the real service (one uvicorn process with its judging workers, temp SQLite, demo
source) on a loopback port, then runs load clients in OTHER processes (httpx + asyncio):

1. ``GET /healthz`` alone, ``--concurrency`` in flight: the framework's own capacity;
2. ``POST /v1/judge`` with ``--concurrency`` in flight and, at the same time, a probe sending
   one ``GET /healthz`` every ``--probe-interval`` ms: throughput and latency of judging, and how
   quickly the service still answers anything else while every core judges.

The judged request is ``--metrics`` x ``--points`` a side (default 5 x 30; normal noise, every
other metric's canary shifted up by 30%), with an inline config. The ceiling is what the
machine could judge with no HTTP at all: the cores this process may use divided by the median
time of the same judgment in-process (``judge.judging.judge``); the benchmark prints the
throughput as a fraction of it (issue 18's target: >= 0.5 with p99 <= 100 ms at concurrency 8,
and ``/healthz`` p99 <= 50 ms meanwhile).

    .venv/bin/python benchmarks/bench_service.py                 # defaults: 8 in flight, 10 s
    .venv/bin/python benchmarks/bench_service.py --workers 0     # judge in the server process
    .venv/bin/python benchmarks/bench_service.py --concurrency 16 --seconds 20 --mode kayenta
    .venv/bin/python benchmarks/bench_service.py --api-token bench-token   # with auth on
    .venv/bin/python benchmarks/bench_service.py --quick         # 2 s each, a smoke run

The clients share the machine with the server (on a 2-core machine they take part of a core),
so the fraction is a lower bound of what the service reaches with its clients elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

def judge_body(mode: str, metrics: int = 5, points: int = 30, seed: int = 1) -> dict[str, Any]:
    """``metrics`` x ``points`` a side; every other metric's canary shifted up by 30%."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = [f"metric_{i:02d}" for i in range(metrics)]
    config = {
        "name": "bench",
        "mode": mode,
        "metrics": [{"name": name, "direction": "increase"} for name in names],
    }
    baseline = {name: [round(float(v), 4) for v in rng.normal(100, 5, points)] for name in names}
    canary = {
        name: [round(float(v), 4) for v in rng.normal(130 if i % 2 else 100, 5, points)]
        for i, name in enumerate(names)
    }
    return {"config": config, "baseline": baseline, "canary": canary}


# -- the load client (runs in its own process) -----------------------------------------------------
class _Connection:
    """One keep-alive HTTP/1.1 connection sending the same prepared request again and again.

    Raw asyncio streams and httptools' response parser rather than an HTTP client library: the
    clients share the machine with the service, and httpx spends about a millisecond of CPU a
    request, which the service's judging workers would not get (the figure is the service's).
    """

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        """Send the request, read the whole answer; its status."""
        import httptools

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        done = False

        class Answer:
            def on_message_complete(self) -> None:
                nonlocal done
                done = True

        parser = httptools.HttpResponseParser(Answer())
        self.writer.write(self.request)
        while not done:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("the service closed the connection")
            parser.feed_data(chunk)
        status: int = parser.get_status_code()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _prepared(url: str, body: bytes | None, token: str | None) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{'POST' if body is not None else 'GET'} {parts.path} HTTP/1.1",
             f"host: {host}:{port}"]
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    if token:
        lines.append(f"authorization: Bearer {token}")
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _load(
    url: str, body: bytes | None, concurrency: int, max_requests: int, seconds: float, warmup: int,
    token: str | None = None, pause: float = 0.0,
) -> dict[str, Any]:
    host, port, request = _prepared(url, body, token)
    connections = [_Connection(host, port, request) for _ in range(concurrency)]
    for i in range(warmup):
        status = await connections[i % concurrency].send()
        if status != 200:
            raise SystemExit(f"warm-up request answered {status}")
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + seconds

    async def worker(connection: _Connection) -> None:
        nonlocal issued, errors
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            status = await connection.send()
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1
            if pause:
                await asyncio.sleep(pause)

    began = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - began
    for connection in connections:
        connection.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def _client_main(args: argparse.Namespace) -> None:
    body = Path(args.body).read_bytes() if args.body else None
    result = asyncio.run(
        _load(args.url, body, args.concurrency, args.requests, args.seconds, args.warmup,
              args.api_token, args.pause / 1000)
    )
    print(json.dumps(result))


# -- the driver ------------------------------------------------------------------------------------
def _client_command(
    url: str, body_file: Path | None, args: argparse.Namespace, *, concurrency: int,
    pause_ms: float = 0.0,
) -> list[str]:
    command = [
        sys.executable, __file__, "--client", "--url", url,
        "--concurrency", str(concurrency), "--requests", str(args.requests),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup), "--pause", str(pause_ms),
    ]
    if body_file is not None:
        command += ["--body", str(body_file)]
    if args.api_token:
        command += ["--api-token", args.api_token]
    return command


def _result(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    if process.returncode:
        raise SystemExit(f"load client failed:\n{stderr}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _measure(commands: list[list[str]], timeout: float) -> list[dict[str, Any]]:
    """Run load clients at the same time, each in its own process; their results."""
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    return [_result(process, timeout) for process in processes]


def _in_process_ms(body: dict[str, Any], repeats: int = 30) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``judge.judging.judge`` on the same body, without
    HTTP: the floor. CPU time is the steadier on a shared machine."""
    from judge.config import CanaryConfig
    from judge.judging import judge

    config = CanaryConfig.from_dict(body["config"])
    for _ in range(3):  # warm caches and imports
        judge(config, body["baseline"], body["canary"])
    walls, cpus = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.thread_time()
        judge(config, body["baseline"], body["canary"])
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - started_cpu)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus)


def _driver_main(args: argparse.Namespace) -> None:
    from judge.api.workers import available_cores
    from tests.support.service import ServiceProcess, cpu_seconds

    body = judge_body(args.mode, args.metrics, args.points)
    cores = available_cores()
    workers = cores if args.workers is None else args.workers
    timeout = args.seconds + 120
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work_dir = Path(tmp)
        body_file = work_dir / "judge.json"
        body_file.write_text(json.dumps(body))
        env = {
            "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'bench.db'}",
            "CANARY_JUDGE_LOG_LEVEL": "WARNING",
            "CANARY_JUDGE_JUDGE_WORKERS": str(workers),
        }
        if args.api_token:
            env["CANARY_JUDGE_API_TOKENS"] = f"judge:{args.api_token}"
        with ServiceProcess(env, work_dir) as service:
            health_url, judge_url = f"{service.url}/healthz", f"{service.url}/v1/judge"
            [health] = _measure(
                [_client_command(health_url, None, args, concurrency=args.concurrency)], timeout
            )
            before = cpu_seconds(service.pid)
            judged, probe = _measure(
                [_client_command(judge_url, body_file, args, concurrency=args.concurrency),
                 _client_command(health_url, None, args, concurrency=1,
                                 pause_ms=args.probe_interval)],
                timeout,
            )
            after = cpu_seconds(service.pid)
    # Measured after the load, in this process: the machine as loaded as it was meanwhile.
    floor_ms, floor_cpu_ms = _in_process_ms(body)
    loop_cpu_ms = 1000 * (after[0] - before[0]) / judged["requests"]
    workers_cpu_ms = 1000 * (after[1] - before[1]) / judged["requests"]
    ceiling = cores * 1000 / floor_ms
    print(
        f"service benchmark: {args.metrics} metrics x {args.points} points a side, "
        f"mode={args.mode}, {args.concurrency} in flight, <= {args.seconds:g} s / "
        f"{args.requests} requests each, {workers} judging worker(s) on {cores} core(s), "
        f"clients in other processes, loopback, auth {'on' if args.api_token else 'off'}"
    )
    print(f"{'endpoint':<34}{'requests':>9}{'errors':>8}{'req/s':>10}{'p50 ms':>10}"
          f"{'p99 ms':>10}")
    rows = (("GET /healthz (alone)", health), ("POST /v1/judge", judged),
            (f"GET /healthz (1 per {args.probe_interval:g} ms, meanwhile)", probe))
    for name, row in rows:
        print(
            f"{name:<34}{row['requests']:>9}{row['errors']:>8}{row['rps']:>10.1f}"
            f"{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
        )
    print(
        f"judge() in-process, same body, no HTTP: {floor_ms:.2f} ms median; judging ceiling "
        f"{cores} core(s) / {floor_ms:.2f} ms = {ceiling:.0f} judgments/s"
    )
    print(
        f"service CPU per judged request: {loop_cpu_ms + workers_cpu_ms:.2f} ms (server process "
        f"{loop_cpu_ms:.2f}, workers {workers_cpu_ms:.2f}); the judgment in-process: "
        f"{floor_cpu_ms:.2f} ms CPU; efficiency (judgment CPU / service CPU) "
        f"{floor_cpu_ms / (loop_cpu_ms + workers_cpu_ms):.2f}"
    )
    print(
        f"ratio POST /v1/judge / ceiling: {judged['rps'] / ceiling:.2f} (target >= 0.5, "
        f"p99 {judged['p99_ms']:.0f} ms, target <= 100); /healthz p99 under load "
        f"{probe['p99_ms']:.1f} ms (target <= 50); judge/healthz throughput "
        f"{judged['rps'] / health['rps']:.3f}"
    )
    if judged["errors"] or health["errors"] or probe["errors"]:
        raise SystemExit("some requests failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20000, help="at most, per endpoint")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most, per endpoint")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("default", "kayenta"), default="default")
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--points", type=int, default=30)
    parser.add_argument("--workers", type=int, default=None,
                        help="judging workers (CANARY_JUDGE_JUDGE_WORKERS); default: cores")
    parser.add_argument("--probe-interval", type=float, default=20.0,
                        help="ms between /healthz probes while judging")
    parser.add_argument("--quick", action="store_true",
                        help="2 s per measurement, 200 requests at most: a smoke run")
    parser.add_argument("--api-token", help="run the service with this judge token and send it")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.requests, args.warmup = min(args.seconds, 2.0), 200, 5
    if args.client:
        _client_main(args)
    else:
        _driver_main(args)


if __name__ == "__main__":
    main()
