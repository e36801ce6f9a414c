"""The runner's side of leases, in-process on a SQLite file: a replica whose lease on a running
analysis is taken over (it paused longer than its lease and another replica claimed the work)
stops that analysis at its next renewal and stores nothing of it; the other replica's result
is the one kept. A graceful stop releases the leases, so the work is taken over at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from judge.api.app import create_app
from judge.api.store import AnalysisStatus, Store
from tests.support.clock import service_settings

LEASE = 1.0
REQUEST = {"config_id": "demo", "baseline": {"scope": "baseline"},
           "canary": {"scope": "canary-good"},
           "start": "2024-03-04T10:00:00Z", "end": "2024-03-04T11:00:00Z"}


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'judge.db'}"


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    settings = service_settings(database_url=database, lease_seconds=LEASE, replica_id="slow",
                                demo_delay_seconds=30, source_check_interval_seconds=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _wait(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within 60 s")


def test_a_runner_whose_lease_was_taken_stops_and_stores_nothing(
    client: TestClient, database: str
) -> None:
    analysis_id = client.post("/v1/analyses", json=REQUEST).json()["id"]
    store = Store(database)
    _wait(lambda: store.get_analysis(analysis_id).lease_owner == "slow", "claimed by 'slow'")
    # Another replica took it over (as if "slow" had stopped renewing for a lease).
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE analyses SET lease_owner = 'other', lease_expires_at = :until "
                 "WHERE id = :id"),
            {"until": datetime.now(UTC) + timedelta(seconds=600), "id": analysis_id},
        )
    runner = client.app.state.runner  # type: ignore[attr-defined]
    _wait(lambda: runner.active == 0, "the slow replica's run cancelled")
    kept = store.get_analysis(analysis_id)
    assert (kept.status, kept.lease_owner) == (AnalysisStatus.RUNNING, "other")
    # The other replica's result is the one stored; the slow one's attempt never ended.
    assert store.claim_analysis(analysis_id, "other", 600) is not None
    store.mark_succeeded(analysis_id, {"verdict": "pass"}, owner="other")
    assert [(a.replica_id, a.outcome) for a in store.analysis_attempts(analysis_id)] == [
        ("slow", None), ("other", "succeeded")]
    store.close()


def test_a_graceful_stop_releases_the_leases(database: str) -> None:
    settings = service_settings(database_url=database, lease_seconds=600, replica_id="leaving",
                                demo_delay_seconds=30, source_check_interval_seconds=0)
    with TestClient(create_app(settings)) as leaving:
        analysis_id = leaving.post("/v1/analyses", json=REQUEST).json()["id"]
        store = Store(database)
        _wait(lambda: store.get_analysis(analysis_id).lease_owner == "leaving", "claimed")
    # Stopped: its 600 s lease is let go, so another replica takes the analysis over now.
    [taken] = store.claim_abandoned("next", 600, limit=5)
    assert (taken.id, taken.status, taken.attempts) == (analysis_id, AnalysisStatus.RUNNING, 1)
    store.close()
