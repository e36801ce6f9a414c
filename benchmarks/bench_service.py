"""Throughput and latency of ``POST /v1/judge`` beside the app's own ceiling (``GET /healthz``).

Starts the real service (one uvicorn process, temp SQLite, demo source) on a loopback port,
then, for each endpoint, a load client in a SECOND process (httpx + asyncio, ``--concurrency``
requests in flight, bounded by ``--requests`` and ``--seconds``) after a short warm-up. It
prints requests/s and p50/p99 latency for both, and the ratio judge/healthz: how much of the
framework's own capacity one judgment leaves.

The judged request is 20 metrics x 60 points a side (normal noise; half the metrics shifted),
with an inline config using the default judge.

    .venv/bin/python benchmarks/bench_service.py                 # defaults: 8 in flight, 10 s
    .venv/bin/python benchmarks/bench_service.py --concurrency 16 --seconds 20 --mode kayenta
    .venv/bin/python benchmarks/bench_service.py --api-token bench-token   # with auth on

Measured on the shared 2-core development machine (other engineers' jobs running), 8 in
flight, 10 s per endpoint (see the report for the exact figures of a run).
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

METRICS = 20
POINTS = 60


def judge_body(mode: str, seed: int = 1) -> dict[str, Any]:
    """20 metrics x 60 points a side; every other metric's canary shifted up by 30%."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = [f"metric_{i:02d}" for i in range(METRICS)]
    config = {
        "name": "bench",
        "mode": mode,
        "metrics": [{"name": name, "direction": "increase"} for name in names],
    }
    baseline = {name: [round(float(v), 4) for v in rng.normal(100, 5, POINTS)] for name in names}
    canary = {
        name: [round(float(v), 4) for v in rng.normal(130 if i % 2 else 100, 5, POINTS)]
        for i, name in enumerate(names)
    }
    return {"config": config, "baseline": baseline, "canary": canary}


# -- the load client (runs in its own process) -----------------------------------------------------
async def _load(
    url: str, body: bytes | None, concurrency: int, max_requests: int, seconds: float, warmup: int,
    token: str | None = None,
) -> dict[str, Any]:
    import httpx

    method = "POST" if body is not None else "GET"
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for _ in range(warmup):
            answer = await client.request(method, url, content=body, headers=headers)
            answer.raise_for_status()
        latencies: list[float] = []
        errors = 0
        issued = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                started = time.perf_counter()
                answer = await client.request(method, url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
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
              args.api_token)
    )
    print(json.dumps(result))


# -- the driver ------------------------------------------------------------------------------------
def _measure(url: str, body_file: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--client", "--url", url,
        "--concurrency", str(args.concurrency), "--requests", str(args.requests),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup),
    ]
    if body_file is not None:
        command += ["--body", str(body_file)]
    if args.api_token:
        command += ["--api-token", args.api_token]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 120, check=True
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _in_process_ms(mode: str, repeats: int = 5) -> float:
    """Median time of ``judge.judging.judge`` on the same body, without HTTP: the floor."""
    from judge.config import CanaryConfig
    from judge.judging import judge

    body = judge_body(mode)
    config = CanaryConfig.from_dict(body["config"])
    judge(config, body["baseline"], body["canary"])  # warm caches and imports
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        judge(config, body["baseline"], body["canary"])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _driver_main(args: argparse.Namespace) -> None:
    from tests.support.service import ServiceProcess

    floor_ms = _in_process_ms(args.mode)

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work_dir = Path(tmp)
        body_file = work_dir / "judge.json"
        body_file.write_text(json.dumps(judge_body(args.mode)))
        env = {
            "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'bench.db'}",
            "CANARY_JUDGE_LOG_LEVEL": "WARNING",
        }
        if args.api_token:
            env["CANARY_JUDGE_API_TOKENS"] = f"judge:{args.api_token}"
        with ServiceProcess(env, work_dir) as service:
            health = _measure(f"{service.url}/healthz", None, args)
            judged = _measure(f"{service.url}/v1/judge", body_file, args)
    print(
        f"service benchmark: {METRICS} metrics x {POINTS} points a side, mode={args.mode}, "
        f"{args.concurrency} in flight, <= {args.seconds:g} s / {args.requests} requests each, "
        f"client in a second process, loopback, auth {'on' if args.api_token else 'off'}"
    )
    print(f"{'endpoint':<16}{'requests':>9}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in (("GET /healthz", health), ("POST /v1/judge", judged)):
        print(
            f"{name:<16}{row['requests']:>9}{row['errors']:>8}{row['rps']:>10.1f}"
            f"{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
        )
    print(
        f"ratio judge/healthz: throughput {judged['rps'] / health['rps']:.3f}, "
        f"p50 latency x{judged['p50_ms'] / health['p50_ms']:.1f}"
    )
    print(
        f"judge() in-process, same body, no HTTP: {floor_ms:.1f} ms median "
        f"(one core can do at most {1000 / floor_ms:.1f} judgments/s)"
    )
    if judged["errors"] or health["errors"]:
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
    parser.add_argument("--mode", choices=("default", "kayenta"), default="default")
    parser.add_argument("--api-token", help="run the service with this judge token and send it")
    args = parser.parse_args()
    if args.client:
        _client_main(args)
    else:
        _driver_main(args)


if __name__ == "__main__":
    main()
