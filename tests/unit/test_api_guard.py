"""Auth, size limits, health, the service's own metrics, and malformed input on every route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from judge.api.app import create_app
from tests.support.clock import service_settings


def _client(**settings: Any) -> TestClient:
    return TestClient(create_app(service_settings(**settings)))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client() as test_client:
        yield test_client


def test_bearer_tokens_guard_every_door_by_default() -> None:
    with _client(api_tokens=("s3cret", "other")) as client:
        denied = client.get("/v1/configs")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert (
            client.get("/v1/configs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert (
            client.get("/v1/configs", headers={"Authorization": "Basic s3cret"}).status_code == 401
        )
        allowed = client.get("/v1/configs", headers={"Authorization": "Bearer other"})
        assert allowed.status_code == 200
        # Kayenta's paths are guarded too, answering in Kayenta's (Spring's) error shape.
        closed = client.get("/canaryConfig")
        assert closed.status_code == 401
        assert closed.json()["status"] == 401
        # The Argo web door answers in its own shape, with the 401 (an Error measurement).
        argo = client.get("/argo/v1/judge", params={"config": "demo"})
        assert argo.status_code == 401
        assert argo.json()["verdict"] == "error"
        assert "token" in argo.json()["error"]
        assert client.post("/flagger/v1/check", json={}).status_code == 401
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_doors_can_be_opened_for_reading_and_judging_only() -> None:
    with _client(
        api_tokens="judge:t1-judge, admin:t2-admin",
        open_kayenta_paths=True,
        open_argo_paths=True,
        open_flagger_paths=True,
    ) as client:
        assert client.post("/flagger/v1/check", json={}).status_code == 422
        assert client.get("/canaryConfig").status_code == 200
        opened = client.get("/argo/v1/judge", params={"config": "demo"})
        assert "token" not in (opened.json()["error"] or "")
        # An open door never opens config writes, and a wrong token is still refused.
        assert client.delete("/canaryConfig/demo").status_code == 401
        judge_token = {"Authorization": "Bearer t1-judge"}
        assert client.delete("/canaryConfig/demo", headers=judge_token).status_code == 403
        wrong = {"Authorization": "Bearer t3-wrong"}
        assert client.get("/canaryConfig", headers=wrong).status_code == 401
        assert client.get("/v1/configs").status_code == 401


def test_request_size_limit() -> None:
    with _client(max_request_bytes=1000) as client:
        big = {"config_id": "demo", "baseline": {"latency": [1.0] * 500}, "canary": {}}
        declared = client.post("/v1/judge", json=big)
        assert declared.status_code == 413
        assert "1000" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:
            payload = json.dumps(big).encode()
            for i in range(0, len(payload), 100):
                yield payload[i : i + 100]

        chunked = client.post(
            "/v1/judge", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        small_chunked = client.post(
            "/v1/judge",
            content=iter([b'{"config": {"metrics": [{"name": "latency"}]}, "baseline": ',
                          b'{"latency": [1, 2, 3]}, "canary": {"latency": [1, 2, 3]}}']),
            headers={"content-type": "application/json"},
        )
        assert small_chunked.status_code == 200
        argo = client.post("/argo/v1/judge", content=b"x" * 2000)
        assert argo.status_code == 413
        assert argo.json()["verdict"] == "error"


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"
    client.post("/argo/v1/judge", json={"config": "demo", "baseline": "b", "canary": "canary-bad"})
    text = client.get("/metrics").text
    assert 'canary_judge_analyses_started_total{kind="argo"} 1.0' in text
    assert 'canary_judge_analyses_finished_total{kind="argo",verdict="fail"} 1.0' in text
    assert 'canary_judge_fetch_seconds_count{source="demo"} 8.0' in text  # 4 metrics x 2 sides
    # A second app has its own registry (no "Duplicated timeseries").
    with _client() as other:
        assert "canary_judge_analyses_started_total{" not in other.get("/metrics").text


def test_readyz_reports_an_unreachable_database(client: TestClient) -> None:
    client.app.state.services.store.engine.dispose()  # type: ignore[attr-defined]
    client.app.state.services.store.ping = _broken  # type: ignore[attr-defined]
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


def _broken() -> None:
    raise ConnectionError("database is gone")


MALFORMED: list[Any] = [
    b"",
    b"null",
    b"[]",
    b"42",
    b'"text"',
    b"{",
    b"\xff\xfe",
    b'{"config": 1}',
    b'{"config": {"metrics": "x"}, "baseline": 3, "canary": []}',
    b'{"config_id": "demo", "baseline": {"latency": ["a"]}, "canary": {"latency": [true]}}',
    b'{"config_id": "demo", "baseline": {"latency": [1e999]}, "canary": {"latency": [-1e999]}}',
    b'{"name": "x", "namespace": "y", "metadata": {"config": 5}}',
    b'{"name": "x", "namespace": "y", "metadata": {"config": "demo", "lookback": "-5m"}}',
    b'{"scopes": {"default": {"controlScope": {"scope": "a", "start": "yesterday"}}}}',
    b'{"scopes": {}, "thresholds": {"pass": "high"}}',
    b'{"canaryConfig": [], "executionRequest": null}',
    b'{"canaryConfig": {"metrics": []}, "metricSetPairList": [{"name": 1}]}',
    b'{"metrics": [{"name": "a", "analysisConfigurations": {"canary": {"direction": "up"}}}]}',
    b'{"config": "demo", "baseline": "b", "canary": "c", "start": "2024-01-01T00:00:00Z"}',
    b'{"config": "demo", "baseline": "b", "canary": "c", "step": 0}',
]

ROUTES = [
    ("POST", "/v1/judge"),
    ("POST", "/v1/configs"),
    ("PUT", "/v1/configs/demo"),
    ("POST", "/v1/analyses"),
    ("POST", "/argo/v1/judge"),
    ("GET", "/argo/v1/judge"),
    ("POST", "/flagger/v1/check"),
    ("POST", "/canaryConfig"),
    ("PUT", "/canaryConfig/demo"),
    ("POST", "/canary/demo"),
    ("POST", "/canary"),
    ("POST", "/judge"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_malformed_bodies_never_answer_500(client: TestClient, method: str, path: str) -> None:
    for body in MALFORMED:
        answer = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code < 500, (path, body, answer.text)
        assert isinstance(answer.json(), dict), (path, body)
        if path.startswith("/argo/"):
            assert answer.status_code == 200
            assert answer.json()["verdict"] in ("error", "pass", "marginal", "fail")
        elif answer.status_code >= 400:
            text = json.dumps(answer.json())
            assert "error" in text or "message" in text
