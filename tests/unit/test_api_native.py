"""Native API (/v1) through the ASGI app in-process: demo source, in-memory SQLite."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from judge.api.app import create_app
from tests.support.clock import service_settings

CONFIG = {
    "name": "inline",
    "metrics": [
        {"name": "latency", "direction": "increase"},
        {"name": "errors", "direction": "increase"},
    ],
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(service_settings())
    with TestClient(app) as test_client:
        yield test_client


def _series(level: float, seed: int, n: int = 60) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in level + rng.normal(0, 1.0, n)]


def test_judge_inline_pass_and_fail(client: TestClient) -> None:
    same = {"latency": _series(100, 1), "errors": _series(5, 2)}
    close = {"latency": _series(100, 3), "errors": _series(5, 4)}
    worse = {"latency": _series(130, 5), "errors": _series(5, 6)}
    passing = client.post("/v1/judge", json={"config": CONFIG, "baseline": same, "canary": close})
    assert passing.status_code == 200
    assert passing.json()["verdict"] == "pass"
    failing = client.post("/v1/judge", json={"config": CONFIG, "baseline": same, "canary": worse})
    assert failing.status_code == 200
    body = failing.json()
    assert body["verdict"] == "fail"
    latency = next(m for m in body["metrics"] if m["name"] == "latency")
    assert latency["classification"] == "high"


def test_judge_accepts_null_and_nan_strings(client: TestClient) -> None:
    baseline = {"latency": [*_series(100, 1, 30), None, "NaN"], "errors": _series(5, 2)}
    canary = {"latency": [*_series(100, 3, 30), "NaN"], "errors": _series(5, 4)}
    answer = client.post(
        "/v1/judge", json={"config": CONFIG, "baseline": baseline, "canary": canary}
    )
    assert answer.status_code == 200
    latency = next(m for m in answer.json()["metrics"] if m["name"] == "latency")
    assert latency["baseline"]["nan_count"] == 2
    assert latency["baseline"]["count"] == 30


def test_judge_names_the_wrong_field(client: TestClient) -> None:
    typo = client.post(
        "/v1/judge",
        json={"config": CONFIG, "baseline": {"latncy": [1.0]}, "canary": {"latency": [1.0]}},
    )
    assert typo.status_code == 400
    assert typo.json()["field"] == "baseline"
    assert "latncy" in typo.json()["error"]
    bad_config = client.post(
        "/v1/judge",
        json={
            "config": {"metrics": [{"name": "x", "direction": "upward"}]},
            "baseline": {"x": [1.0]},
            "canary": {"x": [1.0]},
        },
    )
    assert bad_config.status_code == 422
    assert "metrics.0.direction" in bad_config.json()["error"]
    both = client.post(
        "/v1/judge",
        json={"config": CONFIG, "config_id": "demo", "baseline": {}, "canary": {}},
    )
    assert both.status_code == 422
    assert "exactly one" in both.json()["error"]


def test_judge_with_stored_config_and_thresholds(client: TestClient) -> None:
    data = {
        "config_id": "demo",
        "baseline": {m: _series(100, i) for i, m in enumerate(("latency", "errors"))},
        "canary": {m: _series(100, i + 10) for i, m in enumerate(("latency", "errors"))},
        "thresholds": {"pass": 100, "marginal": 0},
    }
    # A metric that neither side mentions is a mistake in the call (a typo, a forgotten
    # metric), not missing data: 422 naming it and listing what was sent.
    missing = client.post("/v1/judge", json=data)
    assert missing.status_code == 422
    assert "no column 'cpu'" in missing.json()["error"]
    assert "['errors', 'latency']" in missing.json()["error"]
    # Saying "no data" is explicit: an empty list.
    for side in ("baseline", "canary"):
        data[side] |= {"cpu": [], "requests": []}
    answer = client.post("/v1/judge", json=data)
    assert answer.status_code == 200
    body = answer.json()
    assert body["thresholds"] == {"pass": 100.0, "marginal": 0.0}
    # cpu and requests have no data: nodata, which is not scored against the canary.
    classes = {m["name"]: m["classification"] for m in body["metrics"]}
    assert classes["cpu"] == "nodata"


def test_config_crud_with_versions_and_yaml(client: TestClient) -> None:
    created = client.post("/v1/configs", json=CONFIG)
    assert created.status_code == 201
    config_id = created.json()["id"]
    assert created.json()["version"] == 1
    updated_yaml = (
        "name: inline\nthresholds: {pass: 90, marginal: 50}\n"
        "metrics:\n  - name: latency\n    direction: increase\n"
        "    query: {type: prometheus, promql: 'avg(latency{version=\"${scope}\"})'}\n"
    )
    updated = client.put(
        f"/v1/configs/{config_id}",
        content=updated_yaml,
        headers={"content-type": "application/yaml"},
    )
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert client.get(f"/v1/configs/{config_id}/versions").json()["versions"] == [1, 2]
    first = client.get(f"/v1/configs/{config_id}", params={"version": 1}).json()
    assert len(first["config"]["metrics"]) == 2
    latest = client.get("/v1/configs/inline").json()  # by name
    assert latest["version"] == 2
    assert latest["config"]["thresholds"] == {"pass": 90.0, "marginal": 50.0}
    assert any(c["id"] == config_id for c in client.get("/v1/configs").json())
    kayenta = client.get(f"/v1/configs/{config_id}/kayenta").json()
    assert kayenta["name"] == "inline"
    assert kayenta["metrics"][0]["query"]["type"] == "prometheus"
    assert kayenta["classifier"]["scoreThresholds"] == {"pass": 90.0, "marginal": 50.0}
    assert client.delete(f"/v1/configs/{config_id}").status_code == 204
    missing = client.get(f"/v1/configs/{config_id}")
    assert missing.status_code == 404
    assert config_id in missing.json()["error"]


def test_kayenta_export_of_inline_data_config_is_refused(client: TestClient) -> None:
    # Column queries (inline data) have no Kayenta equivalent: the export says so, as a 409
    # (the request is fine; the config's content is what conflicts with Kayenta's form).
    config_id = client.post("/v1/configs", json=CONFIG).json()["id"]
    refused = client.get(f"/v1/configs/{config_id}/kayenta")
    assert refused.status_code == 409
    assert "has no Kayenta form" in refused.json()["error"]
    on_kayentas_door = client.get(f"/canaryConfig/{config_id}")
    assert on_kayentas_door.status_code == 409
    assert on_kayentas_door.json()["error"] == "Conflict"


def test_config_rejects_bad_documents(client: TestClient) -> None:
    not_json = client.post(
        "/v1/configs", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["field"] == "body"
    a_list = client.post("/v1/configs", json=[1, 2])
    assert a_list.status_code == 400
    no_metrics = client.post("/v1/configs", json={"name": "x", "metrics": []})
    assert no_metrics.status_code == 422
    assert "metrics" in no_metrics.json()["error"]


def _wait(client: TestClient, analysis_id: str, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, object] = client.get(f"/v1/analyses/{analysis_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"analysis {analysis_id} did not finish")


def test_background_analysis_lifecycle(client: TestClient) -> None:
    start = client.post(
        "/v1/analyses",
        json={
            "config_id": "demo",
            "baseline": {"scope": "baseline"},
            "canary": {"scope": "canary-bad"},
            "lookback": "1h",
        },
    )
    assert start.status_code == 202
    assert start.json()["status"] == "queued"
    done = _wait(client, start.json()["id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == 1.0
    report = done["report"]
    assert isinstance(report, dict) and report["verdict"] == "fail"
    recent = client.get("/v1/analyses", params={"limit": 5}).json()
    assert recent[0]["id"] == start.json()["id"]
    assert recent[0]["verdict"] == "fail"
    only_failed = client.get("/v1/analyses", params={"status": "failed"}).json()
    assert all(a["status"] == "failed" for a in only_failed)


def test_analysis_request_errors_name_the_field(client: TestClient) -> None:
    base = {"config_id": "demo", "baseline": {"scope": "b"}, "canary": {"scope": "c"}}
    unknown_source = client.post("/v1/analyses", json={**base, "source": "nowhere"})
    assert unknown_source.status_code == 400
    assert "nowhere" in unknown_source.json()["error"]
    bad_lookback = client.post("/v1/analyses", json={**base, "lookback": "ten minutes"})
    assert bad_lookback.status_code == 400
    assert bad_lookback.json()["field"] == "lookback"
    too_many_points = client.post("/v1/analyses", json={**base, "lookback": "30d", "step": 1})
    assert too_many_points.status_code == 400
    assert too_many_points.json()["field"] == "step"
    backwards = client.post(
        "/v1/analyses",
        json={**base, "start": "2024-01-01T01:00:00Z", "end": "2024-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 400
    assert backwards.json()["field"] == "end"
    missing_canary = client.post(
        "/v1/analyses", json={"config_id": "demo", "baseline": {"scope": "b"}}
    )
    assert missing_canary.status_code == 422
    missing = client.get("/v1/analyses/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no analysis with id 'nope'"  # the closing quote kept
    assert client.get("/canaryConfig/nope").json()["message"] == "no config with id 'nope'"


def test_metric_source_down_is_an_error_never_a_verdict(client: TestClient) -> None:
    app = create_app(
        service_settings(
            sources={
                "down": {"type": "prometheus", "url": "http://127.0.0.1:9", "timeout_seconds": 0.5}
            },
        )
    )
    config = {
        "name": "down",
        "metrics": [
            {"name": "latency", "query": {"type": "prometheus", "promql": "up{v='${scope}'}"}}
        ],
    }
    with TestClient(app) as down_client:
        answer = down_client.post(
            "/argo/v1/judge",
            json={"config": config, "baseline": "a", "canary": "b", "source": "down"},
        )
    body = answer.json()
    # Not "fail" (that would roll back on an outage), not "pass": an Error measurement.
    assert answer.status_code == 503
    assert body["verdict"] == "error"
    assert body["pass"] is False and body["fail"] is False
    assert body["metrics"][0]["classification"] == "error"
    assert body["score"] is None
    assert "source 'down' (connect)" in body["error"]
    assert "connection refused" in body["error"]


class _GatedSource:
    """The demo source, with the fetches of some metrics held until the test opens their gate:
    what an analysis shows while it runs is then seen whatever the machine's load."""

    def __init__(self, inner: Any, gated: set[str]) -> None:
        self.inner = inner
        self.gates = {name: threading.Event() for name in gated}

    def render(self, metric: Any, scope: Any, config: Any) -> str:
        rendered: str = self.inner.render(metric, scope, config)
        return rendered

    async def fetch(self, metric: Any, scope: Any, config: Any) -> Any:
        gate = self.gates.get(metric.name)
        if gate is not None:
            await asyncio.to_thread(gate.wait, WAIT_SECONDS)
        return await self.inner.fetch(metric, scope, config)


WAIT_SECONDS = 60.0
"""How long the test waits for a state it expects (only reached when it fails)."""


def _until(client: TestClient, analysis_id: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        analysis: dict[str, Any] = client.get(f"/v1/analyses/{analysis_id}").json()
        if done(analysis):
            return analysis
        assert time.monotonic() < deadline, analysis
        time.sleep(0.05)


def test_progress_is_visible_while_an_analysis_runs(client: TestClient) -> None:
    demo = client.app.state.services.sources.sources["demo"]  # type: ignore[attr-defined]
    gated = _GatedSource(demo.inner, {"errors", "cpu", "requests"})
    demo.inner = gated
    started = client.post(
        "/v1/analyses",
        json={
            "config_id": "demo",
            "baseline": {"scope": "b"},
            "canary": {"scope": "c"},
            "lookback": "1h",
        },
    ).json()
    # latency is fetched, the three others wait at their gates: part of the way.
    running = _until(client, started["id"],
                     lambda a: (a["progress_detail"] or {}).get("metrics_fetched", 0) >= 1)
    assert running["status"] == "running"
    assert 0 < running["progress"] < 0.95
    assert running["progress_detail"]["metrics_fetched"] == 1
    assert running["progress_detail"]["metrics"] == 4
    for gate in gated.gates.values():
        gate.set()
    finished = _until(client, started["id"], lambda a: a["status"] == "succeeded")
    assert finished["progress"] == 1.0


def test_concurrent_polls_of_one_run_count_each_point_once(client: TestClient) -> None:
    body = {"config_id": "demo", "baseline": {"scope": "stable"},
            "canary": {"scope": "canary-good"},
            "start": "2024-03-04T10:00:00Z", "end": "2024-03-04T11:00:00Z"}

    def poll(_: int) -> tuple[int, dict[str, object]]:
        answer = client.post("/v1/runs/rollout-1/poll", json=body)
        return answer.status_code, answer.json()["sequential"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(poll, range(6)))
    # Serialised per run, none lost to a conflict; one window, so one answer for all six.
    assert [status for status, _ in answers] == [200] * 6
    assert all(sequential == answers[0][1] for _, sequential in answers)
    run = client.get("/v1/runs/rollout-1").json()
    assert run["calls"] == 1  # the same window polled again is not another call
    assert run["sequential"]["points"] == 61  # the first poll's hour; the others add nothing
    assert run["sequential"]["new_points"] == 61


@pytest.mark.parametrize("values", [[{}], [[1.0]], [{"x": 1}, 2.0]])
def test_judge_values_that_are_not_numbers_are_a_422_not_a_500(
    client: TestClient, values: list[object]
) -> None:
    answer = client.post("/v1/judge", json={"config_id": "demo", "baseline": {},
                                            "canary": {"latency": values}})
    assert answer.status_code == 422
    assert "a metric value must be a number" in answer.json()["error"]


CURL_DATA = {"content-type": "application/x-www-form-urlencoded"}
"""What ``curl -d`` / ``--data-binary`` sends unless told otherwise."""


def test_bodies_are_read_as_users_send_them(client: TestClient) -> None:
    yaml_config = (
        "name: sent-as-curl-data\n"
        "metrics:\n  - name: latency\n    query: {type: demo, signal: latency}\n"
    )
    # A YAML config under curl's form content type, and under none at all.
    as_form = client.post("/v1/configs", content=yaml_config, headers=CURL_DATA)
    assert as_form.status_code == 201, as_form.text
    assert as_form.json()["name"] == "sent-as-curl-data"
    unlabelled = client.put(f"/v1/configs/{as_form.json()['id']}",
                            content=yaml_config.replace("latency}", "cpu}"))
    assert unlabelled.status_code == 200, unlabelled.text
    assert unlabelled.json()["version"] == 2
    # JSON under curl's form content type, to a route with a typed body.
    judged = client.post("/v1/judge", headers=CURL_DATA, content=json.dumps(
        {"config": CONFIG, "baseline": {"latency": [1.0, 2.0, 3.0] * 5, "errors": [0.0] * 15},
         "canary": {"latency": [1.0, 2.0, 3.0] * 5, "errors": [0.0] * 15}}))
    assert judged.status_code == 200, judged.text
    assert judged.json()["verdict"] in ("pass", "marginal")
    # Not JSON: refused as JSON is, saying so (never read as a form).
    refused = client.post("/v1/judge", headers=CURL_DATA, content=b"config=demo&baseline=a")
    assert refused.status_code == 422
    assert "JSON decode error" in refused.text


def test_what_startup_built_is_frozen_while_the_app_runs_and_released_after() -> None:
    """The service moves what its startup built out of the collector's sight (``gc.freeze``:
    full collections then skip it; see docs/performance.md, "Fetching") and gives it back at
    shutdown, so that apps started and stopped in one process (tests, notebooks) leak
    nothing."""
    import gc

    gc.unfreeze()
    with TestClient(create_app(service_settings())) as running:
        assert running.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
