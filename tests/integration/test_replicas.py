"""Three replicas on one PostgreSQL: every analysis finishes exactly once, none is lost, none is
judged twice, and no poll of a sequential run counts a point twice (issue 15).

Real parts: a PostgreSQL server (``tests/support/postgres.py``) and three ``canary-judge``
server processes (``tests/support/replicas.py``) with a 3 s lease, over the demo source with
pinned windows (each fetch waits 1 s and a replica runs one analysis at a time, so each has
many seconds of work queued when the crash comes, however slowly the load is sent). A bounded
load of background analyses and Kayenta executions is spread over the replicas; one replica is
SIGKILLed while it holds a running analysis, then restarted as a new pod; meanwhile sequential
runs are polled through two replicas at once for every window. The test waits on the
database's state with generous deadlines and asserts no timings
(``benchmarks/bench_replicas.py`` measures them).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from judge.api.store import AnalysisStatus, Store
from tests.support.postgres import PostgresServer
from tests.support.replicas import Replicas, poll_run, running, submit_analyses, wait_until

ANALYSES = 60
RUNS = 2
MINUTES = 6
DEADLINE = 300.0
"""Seconds for the whole load to finish: minutes of slack on a busy 2-core machine."""


def _same_answer(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without what depends on the replica asked (the address in its links)."""
    return {key: value for key, value in body.items() if key != "report_url"}


def test_three_replicas_run_each_analysis_once_through_a_crash(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    database = postgres_server.create_database("replicas")
    store = Store(database)
    replicas = Replicas(database, tmp_path, count=3, lease_seconds=3, demo_delay=1.0,
                        max_concurrent=1)
    with running(replicas):
        expected = submit_analyses(replicas, ANALYSES)

        # A crash while replica-0 runs an analysis: its lease must be taken over. What it runs
        # is read while it is frozen (SIGSTOP), so it cannot finish that analysis, or be
        # leased one it has not started, between the look and the kill.
        def running_on_victim() -> set[str]:
            leased = {a.id for a in store.unfinished_analyses()
                      if a.lease_owner == "replica-0" and a.status is AnalysisStatus.RUNNING}
            return {a.analysis_id for a in store.analysis_attempts()
                    if a.analysis_id in leased and a.replica_id == "replica-0"
                    and a.outcome is None}

        held: set[str] = set()

        def victim_frozen_mid_analysis() -> bool:
            replicas.pause(0)
            held.update(running_on_victim())
            if not held:
                replicas.resume(0)
            return bool(held)

        wait_until(victim_frozen_mid_analysis, "replica-0 running an analysis", DEADLINE)
        replicas.kill(0)
        replicas.restart(0)

        # Sequential runs polled through two replicas at once, window after window.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for run in range(RUNS):
                run_id = f"rollout-{run}"
                for minute in range(1, MINUTES + 1):
                    urls = [p.url for p in replicas.live()]
                    pair = (urls[(run + minute) % len(urls)], urls[(run + minute + 1) % len(urls)])
                    answers = list(pool.map(poll_run, pair, [run_id] * 2, [minute] * 2))
                    assert [status for status, _ in answers] == [200, 200], answers
                    first, second = (_same_answer(body) for _, body in answers)
                    assert first == second  # both callers get the same answer
                    assert first["calls"] == minute  # the duplicate is not another call
                    assert first["sequential"]["points"] == minute + 1  # no point twice

        def all_done() -> bool:
            return not any(a.id in expected for a in store.unfinished_analyses())

        wait_until(all_done, "every analysis finished", DEADLINE)

        # None lost, each with the verdict its data gives.
        finished = {a: store.get_analysis(a) for a in expected}
        assert {a: f.status for a, f in finished.items()} == {
            a: AnalysisStatus.SUCCEEDED for a in expected}
        assert {a: (f.report or {}).get("verdict") for a, f in finished.items()} == expected
        # Judged to the end exactly once: one finished attempt per analysis; the attempts that
        # never finished are the killed replica's, and any whose lease lapsed on a starved
        # machine (a busy 2-core box can hold a lease renewal past its 3 s): those were taken
        # over and finished by another replica, as the lease is for.
        attempts = [a for a in store.analysis_attempts() if a.analysis_id in expected]
        ended = Counter(a.analysis_id for a in attempts if a.outcome is not None)
        assert ended == Counter(list(expected)), ended
        unfinished = [a for a in attempts if a.outcome is None]
        assert "replica-0" in {a.replica_id for a in unfinished}
        finisher = {a.analysis_id: a.replica_id for a in attempts if a.outcome is not None}
        for attempt in unfinished:
            if attempt.replica_id != "replica-0":
                assert finisher[attempt.analysis_id] != attempt.replica_id, attempt
        # What replica-0 held when it died was taken over and finished by another replica.
        assert held
        for analysis_id in held:
            [winner] = [a for a in attempts if a.analysis_id == analysis_id and a.outcome]
            assert winner.replica_id != "replica-0"
        # The work was shared: every replica judged some.
        by_replica = Counter(a.replica_id for a in attempts if a.outcome is not None)
        assert {"replica-1", "replica-2"} <= set(by_replica), by_replica
        # Each run's stored state counts each window once.
        for run in range(RUNS):
            stored = store.get_run(f"rollout-{run}")
            assert stored.calls == MINUTES
    store.close()
