"""Concurrent writes to one config, and a bug's 500, against the real server process (issue 14,
"No 5xx from any input").

Racing ``PUT /v1/configs/{id}`` and ``PUT /canaryConfig/{id}`` (the Kayenta door writes the same
store) gave 500 ``IntegrityError`` in 40-65% of the calls, and the connection was reset so the
next keep-alive request on it failed. Now every racing write is either a clean new version or
a 409 that changed nothing, and the version history has no gaps and no lost or doubled writes
(on SQLite and on a real PostgreSQL server).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.raising_app import RAISING_PATHS
from tests.support.service import ServiceProcess

WRITERS = 8
"""Threads racing, each on its own keep-alive connection."""
WRITES_PER_WRITER = 5


def _config(marker: int) -> dict[str, Any]:
    """A native config whose ``thresholds.marginal`` says which write stored it."""
    return {
        "name": "raced",
        "thresholds": {"pass": 95, "marginal": marker},
        "metrics": [{"name": "latency", "direction": "increase"}],
    }


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The service on a SQLite file, then on PostgreSQL (``database_url``)."""
    env = {"CANARY_JUDGE_DATABASE_URL": database_url}
    with ServiceProcess(env, tmp_path) as running:
        yield running


def test_concurrent_puts_to_one_config_give_clean_versions_or_409(
    service: ServiceProcess,
) -> None:
    created = httpx.post(f"{service.url}/v1/configs", json=_config(1))
    assert created.status_code == 201, created.text
    config_id = created.json()["id"]

    start = threading.Barrier(WRITERS)
    answers: list[tuple[int, str, int, httpx.Response]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def writer(index: int) -> None:
        try:
            # One connection per writer, reused for all its requests (keep-alive): a reset
            # connection would raise here.
            with httpx.Client(base_url=service.url, timeout=30) as client:
                start.wait()
                for round_ in range(WRITES_PER_WRITER):
                    marker = 2 + index * WRITES_PER_WRITER + round_  # unique, > 1
                    door = "native" if (index + round_) % 2 == 0 else "kayenta"
                    path = (f"/v1/configs/{config_id}" if door == "native"
                            else f"/canaryConfig/{config_id}")
                    answer = client.put(path, json=_config(marker))
                    with lock:
                        answers.append((marker, door, answer.status_code, answer))
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(answers) == WRITERS * WRITES_PER_WRITER

    statuses = sorted({status for _, _, status, _ in answers})
    assert set(statuses) <= {200, 409}, [(s, a.text) for _, _, s, a in answers if s not in
                                         (200, 409)]
    stored = {marker for marker, _, status, _ in answers if status == 200}
    assert stored, "no write succeeded"
    for _, door, status, answer in answers:
        if status == 409:  # a refusal in the door's shape, saying to send it again
            body = answer.json()
            assert ("error" in body) if door == "native" else (body["status"] == 409)

    # The history: version 1 (the POST) and one version per accepted write, no gaps, each
    # accepted body exactly once, nothing from a refused one.
    versions = httpx.get(f"{service.url}/v1/configs/{config_id}/versions").json()["versions"]
    assert versions == list(range(1, len(stored) + 2))
    markers_by_version = {
        version: httpx.get(
            f"{service.url}/v1/configs/{config_id}", params={"version": version}
        ).json()["config"]["thresholds"]["marginal"]
        for version in versions
    }
    assert markers_by_version[1] == 1
    assert sorted(markers_by_version[v] for v in versions[1:]) == sorted(stored)
    # What the native door answered is what was stored under that version.
    for marker, door, status, answer in answers:
        if door == "native" and status == 200:
            assert markers_by_version[answer.json()["version"]] == marker
    latest = httpx.get(f"{service.url}/v1/configs/{config_id}").json()
    assert latest["version"] == versions[-1]
    assert latest["config"]["thresholds"]["marginal"] == markers_by_version[versions[-1]]


def test_a_500_keeps_the_keep_alive_connection_open(tmp_path: Path) -> None:
    env = {"CANARY_JUDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'judge.db'}"}
    service = ServiceProcess(env, tmp_path, factory="tests.support.raising_app:create_app")
    with service:
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        try:
            for path in RAISING_PATHS:
                connection.request("GET", path)
                socket_before = connection.sock
                answer = connection.getresponse()
                body = json.loads(answer.read())
                assert answer.status == 500
                assert answer.getheader("connection") != "close"
                if path.startswith("/v1/"):
                    assert body == {"error": "internal error: RuntimeError"}
                else:  # Kayenta's paths answer in Spring's shape
                    assert body["status"] == 500 and body["path"] == path
                    assert body["message"] == "internal error: RuntimeError"
                # The same socket serves the next request: the server did not close it.
                connection.request("GET", "/healthz")
                assert connection.sock is socket_before
                after = connection.getresponse()
                assert after.status == 200
                assert json.loads(after.read())["status"] == "ok"
        finally:
            connection.close()
    log = service.log_file.read_text()
    assert log.count('"message": "unhandled error"') == len(RAISING_PATHS)  # logged once each
    assert "Exception in ASGI application" not in log
