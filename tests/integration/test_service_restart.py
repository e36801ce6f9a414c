"""A restart in the middle of an analysis loses nothing that was stored.

The real server process runs slow analyses (the demo source waits 3 s per fetch); it is killed
(SIGKILL, a crash) or stopped (SIGTERM) while one runs, and started again on the same SQLite
file. Configs, their versions and finished analyses must be intact; the interrupted analysis is
resumed and finishes (``attempts`` 2), or, with resuming switched off, is marked failed saying
why. A killed process' leases are taken over once they expire (``CANARY_JUDGE_LEASE_SECONDS``
is 3 s here); a stopped one releases them at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.service import ServiceProcess

FETCH_DELAY = "3"
LEASE_SECONDS = "3"


def _start_analysis(service: ServiceProcess, canary: str) -> str:
    created = httpx.post(
        f"{service.url}/v1/analyses",
        json={
            "config_id": "demo",
            "baseline": {"scope": "baseline"},
            "canary": {"scope": canary},
            "start": "2024-01-01T12:00:00Z",
            "end": "2024-01-01T13:00:00Z",
        },
        timeout=10,
    )
    assert created.status_code == 202, created.text
    analysis_id: str = created.json()["id"]
    return analysis_id


def _get(service: ServiceProcess, analysis_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{service.url}/v1/analyses/{analysis_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _wait_for(service: ServiceProcess, analysis_id: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        analysis = _get(service, analysis_id)
        if analysis["status"] in statuses:
            return analysis
        time.sleep(0.1)
    raise AssertionError(f"analysis {analysis_id} never reached {statuses}:\n{service.log()}")


def test_restart_mid_analysis_loses_nothing(tmp_path: Path) -> None:
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'judge.db'}",
        "CANARY_JUDGE_DEMO_DELAY_SECONDS": FETCH_DELAY,
        "CANARY_JUDGE_LEASE_SECONDS": LEASE_SECONDS,
    }
    service = ServiceProcess(env, tmp_path).start()
    try:
        config = dict(httpx.get(f"{service.url}/v1/configs/demo", timeout=10).json()["config"])
        config["description"] = "second version"
        updated = httpx.put(f"{service.url}/v1/configs/demo", json=config, timeout=10)
        assert updated.json()["version"] == 2
        finished_id = _start_analysis(service, "canary-bad")
        finished = _wait_for(service, finished_id, {"succeeded", "failed"})
        assert finished["status"] == "succeeded"

        interrupted_id = _start_analysis(service, "canary-good")
        assert _wait_for(service, interrupted_id, {"running"})["attempts"] == 1
        service.kill()  # a crash, mid-fetch

        service = ServiceProcess(env, tmp_path).start()
        # Nothing stored is lost: config versions and the finished analysis with its report.
        assert httpx.get(f"{service.url}/v1/configs/demo/versions").json()["versions"] == [1, 2]
        assert _get(service, finished_id)["report"] == finished["report"]
        # The interrupted analysis is resumed from its stored plan and finishes.
        resumed = _wait_for(service, interrupted_id, {"succeeded", "failed"})
        assert resumed["status"] == "succeeded", resumed["error"]
        assert resumed["attempts"] == 2
        assert resumed["report"]["verdict"] == "pass"

        stopped_id = _start_analysis(service, "canary-good")
        _wait_for(service, stopped_id, {"running"})
        service.stop()  # graceful: the runner leaves it stored as running
    finally:
        service.kill()

    no_resume = {**env, "CANARY_JUDGE_RESUME_INTERRUPTED": "false"}
    service = ServiceProcess(no_resume, tmp_path).start()
    try:
        failed = _get(service, stopped_id)
        assert failed["status"] == "failed"
        assert "interrupted by a restart" in failed["error"]
        assert _get(service, interrupted_id)["status"] == "succeeded"
        listed = {a["id"] for a in httpx.get(f"{service.url}/v1/analyses").json()}
        assert {finished_id, interrupted_id, stopped_id} <= listed
    finally:
        service.stop()


def test_repeatedly_interrupted_analysis_is_marked_failed(tmp_path: Path) -> None:
    # One attempt allowed: the first interruption already exhausts it.
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'judge.db'}",
        "CANARY_JUDGE_DEMO_DELAY_SECONDS": FETCH_DELAY,
        "CANARY_JUDGE_MAX_RESUME_ATTEMPTS": "1",
        "CANARY_JUDGE_LEASE_SECONDS": LEASE_SECONDS,
    }
    service = ServiceProcess(env, tmp_path).start()
    try:
        analysis_id = _start_analysis(service, "canary-good")
        _wait_for(service, analysis_id, {"running"})
        service.kill()
        service = ServiceProcess(env, tmp_path).start()
        failed = _wait_for(service, analysis_id, {"failed", "succeeded"})
        assert failed["status"] == "failed"
        assert "after 1 attempt(s)" in failed["error"]
    finally:
        service.stop()
