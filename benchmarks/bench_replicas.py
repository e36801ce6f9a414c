"""Several replicas on one PostgreSQL: throughput, latency and takeover time through a crash.

Starts a real PostgreSQL (``tests/support/postgres.py``, Debian's ``postgresql``) on a
loopback port and real ``canary-judge serve`` processes on it (``tests/support/replicas.py``:
demo source with pinned windows, each fetch waiting ``--demo-delay`` seconds as a slow metric
source would, ``--max-concurrent`` analyses at once per replica, ``--lease`` seconds of lease).
Two rounds of ``--analyses`` background analyses (every fifth a Kayenta execution) sent
round-robin:

1. one replica, no crash: the baseline;
2. ``--replicas`` replicas; once ``--kill-after`` of the analyses have finished, the first
   replica is SIGKILLed while it runs some, and restarted as a new pod.

For each round it prints analyses/s (all analyses over the time from the first created to the
last finished), p50/p99 latency (created to finished), and for the crash round the takeover
time (from the kill to the moment another replica claimed the last of the dead replica's
analyses; about 1.4 leases at most: expiry, then a scan every lease/3), with the ratios
(replicas' throughput over one replica's; takeover time over the lease). It also checks what
the integration test checks: every analysis finished once (one finished attempt each).

    .venv/bin/python benchmarks/bench_replicas.py                     # defaults below
    .venv/bin/python benchmarks/bench_replicas.py --analyses 300 --replicas 3 --lease 3

All figures come from the database's own timestamps (``analyses``, ``analysis_attempts``).
On the shared 2-core development machine (defaults; docs/service.md, "Throughput"):

    120 analyses; demo fetch delay 0.5 s; 2 at once per replica; lease 3 s
     1 replica,  no crash:   3.26 analyses/s, latency p50 15.55 s, p99 27.06 s, once each: yes
     3 replicas, 1 killed:   7.09 analyses/s, latency p50  1.69 s, p99  7.76 s, once each: yes
    throughput ratio (3 replicas with a crash / 1 replica): 2.17
    takeover: 4.02 s after the kill for the last of 2 analyses the dead replica held (1.34 leases)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from judge.api.store import AnalysisStatus, Store  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.replicas import Replicas, submit_analyses, wait_until  # noqa: E402

DEADLINE = 900.0


@dataclass(frozen=True)
class Round:
    analyses: int
    per_second: float
    p50: float
    p99: float
    takeover: float | None
    taken_over: int
    judged_once: bool


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_round(
    server: PostgresServer, name: str, args: argparse.Namespace, *, replicas: int, crash: bool
) -> Round:
    database = server.create_database(name)
    store = Store(database)
    work = Path(tempfile.mkdtemp(prefix=f"bench-replicas-{name}-"))
    group = Replicas(database, work, count=replicas, lease_seconds=args.lease,
                     demo_delay=args.demo_delay, max_concurrent=args.max_concurrent)
    killed_at: datetime | None = None
    held: set[str] = set()
    with group:
        expected = submit_analyses(group, args.analyses)

        def finished() -> int:
            open_ids = {a.id for a in store.unfinished_analyses()}
            return sum(1 for a in expected if a not in open_ids)

        if crash:
            def victim_busy() -> bool:
                return finished() >= args.kill_after * len(expected) and any(
                    a.lease_owner == "replica-0" and a.status is AnalysisStatus.RUNNING
                    for a in store.unfinished_analyses())

            wait_until(victim_busy, "replica-0 busy", DEADLINE)
            held = {a.id for a in store.unfinished_analyses() if a.lease_owner == "replica-0"}
            group.kill(0)
            killed_at = datetime.now(UTC)
            group.restart(0)
        wait_until(lambda: finished() == len(expected), "every analysis finished", DEADLINE)

    stored = [store.get_analysis(a) for a in expected]
    attempts = [a for a in store.analysis_attempts() if a.analysis_id in expected]
    store.close()
    latencies = [((a.finished_at or a.created_at) - a.created_at).total_seconds() for a in stored]
    first = min(a.created_at for a in stored)
    last = max(a.finished_at or a.created_at for a in stored)
    ended = Counter(a.analysis_id for a in attempts if a.outcome is not None)
    takeover = None
    if killed_at is not None and held:
        claims = [min(a.claimed_at for a in attempts
                      if a.analysis_id == analysis_id and a.claimed_at > killed_at)
                  for analysis_id in held]
        takeover = max((claim - killed_at).total_seconds() for claim in claims)
    return Round(
        analyses=len(stored),
        per_second=len(stored) / (last - first).total_seconds(),
        p50=statistics.median(latencies),
        p99=_percentile(latencies, 0.99),
        takeover=takeover,
        taken_over=len(held),
        judged_once=(all(a.status is AnalysisStatus.SUCCEEDED for a in stored)
                     and set(ended.values()) == {1} and len(ended) == len(stored)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=120)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--lease", type=float, default=3.0, help="lease seconds")
    parser.add_argument("--demo-delay", type=float, default=0.5,
                        help="seconds each demo fetch waits (a slow metric source)")
    parser.add_argument("--max-concurrent", type=int, default=2,
                        help="analyses at once per replica")
    parser.add_argument("--kill-after", type=float, default=0.3,
                        help="share of analyses finished before the crash")
    args = parser.parse_args()

    started = time.monotonic()
    with PostgresServer() as server:
        single = run_round(server, "single", args, replicas=1, crash=False)
        several = run_round(server, "several", args, replicas=args.replicas, crash=True)
    print(f"{args.analyses} analyses; demo fetch delay {args.demo_delay:g} s; "
          f"{args.max_concurrent} at once per replica; lease {args.lease:g} s")
    for label, result in ((" 1 replica,  no crash", single),
                          (f"{args.replicas:2d} replicas, 1 killed", several)):
        print(f"{label}: {result.per_second:6.2f} analyses/s, latency p50 "
              f"{result.p50:5.2f} s, p99 {result.p99:5.2f} s, once each: "
              f"{'yes' if result.judged_once else 'NO'}")
    print(f"throughput ratio ({args.replicas} replicas with a crash / 1 replica): "
          f"{several.per_second / single.per_second:.2f}")
    if several.takeover is not None:
        print(f"takeover: {several.takeover:.2f} s after the kill for the last of "
              f"{several.taken_over} analyses the dead replica held "
              f"({several.takeover / args.lease:.2f} leases)")
    print(f"(benchmark ran {time.monotonic() - started:.0f} s)")
    if not (single.judged_once and several.judged_once):
        sys.exit(1)


if __name__ == "__main__":
    main()
