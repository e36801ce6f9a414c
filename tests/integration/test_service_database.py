"""A database that is locked or unreachable stops startup within the documented time, with one
clear log line (issue 14: "A locked database hangs startup silently"); at request time a
write that meets such a lock answers 503 on every door, in the door's shape.

Real parts: a real SQLite file locked by another process (this test's own ``sqlite3``
connection, as another canary-judge or a backup tool would hold it) and the real server process.
``CANARY_JUDGE_DATABASE_TIMEOUT_SECONDS`` is 2 s here (10 s by default).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import require_postgres
from tests.support.prometheus import free_port
from tests.support.service import ServiceProcess

TIMEOUT = 2.0
EXIT_STARTUP_FAILED = 3
"""uvicorn's exit status when the app's startup fails."""
START_SLACK = 25.0
"""Seconds for the interpreter and the app to import on a loaded 2-core machine."""


@contextmanager
def _locked(path: Path, how: str) -> Iterator[None]:
    """Hold ``path`` locked from another connection: ``EXCLUSIVE`` (no one may read or write)
    or ``IMMEDIATE`` (the write lock: readers go on, writers wait)."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute(f"BEGIN {how}")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _failure_lines(service: ServiceProcess) -> list[dict[str, object]]:
    lines = service.log_file.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _env(database: str) -> dict[str, str]:
    return {
        "CANARY_JUDGE_DATABASE_URL": database,
        "CANARY_JUDGE_DATABASE_TIMEOUT_SECONDS": str(TIMEOUT),
    }


@pytest.mark.parametrize(
    ("existing", "lock"),
    [(False, "EXCLUSIVE"), (True, "IMMEDIATE")],
    ids=["new-file-held-exclusively", "existing-database-with-a-writer"],
)
def test_a_locked_database_fails_startup_after_the_timeout_with_one_line(
    tmp_path: Path, existing: bool, lock: str
) -> None:
    path = tmp_path / "judge.db"
    env = _env(f"sqlite:///{path}")
    if existing:  # a database a previous run created (WAL mode, tables, demo configs)
        first_run = tmp_path / "first-run"
        first_run.mkdir()
        ServiceProcess(env, first_run).start().stop()
    else:
        sqlite3.connect(path).close()
    service = ServiceProcess(env, tmp_path)

    with _locked(path, lock):
        status, seconds = service.run_until_exit(TIMEOUT + START_SLACK)

    assert status == EXIT_STARTUP_FAILED, service.log()
    assert seconds >= TIMEOUT  # it waited for the lock to go, then gave up
    log = service.log_file.read_text()
    assert "Traceback" not in log, log
    failures = [line for line in _failure_lines(service) if line["level"] == "CRITICAL"]
    assert len(failures) == 1, log
    assert failures[0]["message"] == (
        f"cannot start: database sqlite:///{path} is unavailable: database is locked "
        f"(gave up after waiting {TIMEOUT:g} s)"
    )
    # The lock was the only problem: without it the same database serves.
    with ServiceProcess(env, tmp_path) as served:
        assert served.port > 0


def test_an_unreachable_database_fails_startup_at_once_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "judge.db"
    service = ServiceProcess(_env(f"sqlite:///{missing}"), tmp_path)

    status, _seconds = service.run_until_exit(START_SLACK)

    assert status == EXIT_STARTUP_FAILED
    log = service.log_file.read_text()
    assert "Traceback" not in log, log
    failures = [line for line in _failure_lines(service) if line["level"] == "CRITICAL"]
    assert [line["message"] for line in failures] == [
        f"cannot start: database sqlite:///{missing} is unavailable: unable to open database file"
    ]


def test_an_unreachable_postgresql_fails_startup_with_one_line(tmp_path: Path) -> None:
    require_postgres()  # the driver and the dialect, as a deployment on PostgreSQL has them
    port = free_port()  # nobody listens there
    database = f"postgresql+psycopg://judge@127.0.0.1:{port}/judge"
    service = ServiceProcess(_env(database), tmp_path)

    status, _seconds = service.run_until_exit(TIMEOUT + START_SLACK)

    assert status == EXIT_STARTUP_FAILED
    log = service.log_file.read_text()
    assert "Traceback" not in log, log
    failures = [line for line in _failure_lines(service) if line["level"] == "CRITICAL"]
    assert len(failures) == 1, log
    message = str(failures[0]["message"])
    # The URL's user info is masked (it may carry a password).
    assert message.startswith(
        f"cannot start: database postgresql+psycopg://***@127.0.0.1:{port}/judge is unavailable: "
    ), message
    assert "connection" in message.lower(), message


WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/v1/configs/demo", {"json": {"name": "demo", "metrics": [{"name": "latency"}]}}),
    ("PUT", "/canaryConfig/demo", {"json": {"name": "demo", "metrics": [{"name": "latency"}]}}),
    ("POST", "/v1/analyses", {"json": {"config_id": "demo", "baseline": {"scope": "stable"},
                                       "canary": {"scope": "canary"}, "lookback": "30m"}}),
    ("POST", "/argo/v1/judge", {"json": {"config": "demo", "baseline": "stable",
                                         "canary": "canary", "lookback": "30m"}}),
    ("POST", "/flagger/v1/check", {"json": {"name": "canary", "namespace": "shop",
                                            "metadata": {"config": "demo", "lookback": "30m"}}}),
]
"""A write on every door (Argo's and Flagger's checks store their analysis first)."""


def test_a_write_that_meets_a_lock_is_a_503_in_the_doors_shape(tmp_path: Path) -> None:
    path = tmp_path / "judge.db"
    with ServiceProcess(_env(f"sqlite:///{path}"), tmp_path) as service:
        with _locked(path, "IMMEDIATE"):  # another process writing (WAL: reads go on)
            assert httpx.get(f"{service.url}/v1/configs").status_code == 200
            assert httpx.get(f"{service.url}/readyz").status_code == 200
            for method, route, options in WRITES:
                answer = httpx.request(method, f"{service.url}{route}", timeout=20, **options)
                assert answer.status_code == 503, (route, answer.text)
                body = answer.json()
                message = body.get("message") or body.get("error")
                assert message == (
                    f"database sqlite:///{path} is unavailable: database is locked "
                    f"(gave up after waiting {TIMEOUT:g} s)"
                ), (route, body)
                if route.startswith(("/argo/", "/flagger/")):
                    assert body["verdict"] == "error"
                elif route.startswith("/canary"):
                    assert body["status"] == 503 and body["path"] == route
        # The lock gone, the same write goes through.
        assert httpx.request("PUT", f"{service.url}/v1/configs/demo",
                             json=WRITES[0][2]["json"]).status_code == 200
    assert "Traceback" not in service.log_file.read_text()
