"""Argo web, Flagger and Kayenta adapters through the ASGI app in-process (demo source)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from judge.api.app import create_app
from tests.support.clock import PINNED_NOW, service_settings

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(service_settings())
    with TestClient(app) as test_client:
        yield test_client


# -- Argo web ----------------------------------------------------------------------------------
# A pinned hour: the demo source seeds its noise from the window, so a window ending "now"
# made the good canary's verdict depend on the minute the test ran (it failed now and then).
PINNED_HOUR = {"start": "2024-01-01T12:00:00Z", "end": "2024-01-01T13:00:00Z"}


@pytest.mark.parametrize(("canary", "verdict"), [("canary-good", "pass"), ("canary-bad", "fail")])
def test_argo_post_and_get(client: TestClient, canary: str, verdict: str) -> None:
    posted = client.post(
        "/argo/v1/judge",
        json={"config": "demo", "baseline": "baseline", "canary": canary, **PINNED_HOUR},
    )
    got = client.get(
        "/argo/v1/judge",
        params={"config": "demo", "baseline": "baseline", "canary": canary, **PINNED_HOUR},
    )
    for answer in (posted, got):
        assert answer.status_code == 200
        body = answer.json()
        assert body["verdict"] == verdict
        assert body[verdict] is True
        assert body["error"] is None
        assert {m["name"] for m in body["metrics"]} == {"latency", "errors", "cpu", "requests"}
    assert (posted.json()["failed_metrics"] == []) == (verdict == "pass")


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        ({"json": {"baseline": "b", "canary": "c"}}, "config"),
        ({"json": {"config": "nope", "baseline": "b", "canary": "c"}}, "nope"),
        ({"json": {"config": "demo", "baseline": "b", "canary": "c", "lookback": "x"}}, "lookback"),
        ({"json": {"config": "demo", "baseline": "b", "canary": "c", "source": "s"}}, "'s'"),
        ({"content": b"[1,2]"}, "JSON object"),
        ({"content": b"{not json"}, "not valid JSON"),
        ({"params": {"config": "demo", "baseline": "b", "canary": "c", "colour": "red"}}, "colour"),
        (
            {
                "json": {
                    "config": "demo",
                    "baseline": "b",
                    "canary": "c",
                    "thresholds": {"pass": 50, "marginal": 80},
                }
            },
            "marginal",
        ),
    ],
)
def test_argo_errors_are_200_with_error(
    client: TestClient, request_kwargs: dict[str, Any], expected: str
) -> None:
    answer = client.post("/argo/v1/judge", **request_kwargs)
    assert answer.status_code == 200
    body = answer.json()
    assert body["verdict"] == "error"
    assert body["pass"] is False and body["fail"] is False
    assert expected in body["error"]


def test_argo_thresholds_and_params_from_query(client: TestClient) -> None:
    # regression=1.0 as an extended parameter overrides the "bad" in the scope name.
    answer = client.get(
        "/argo/v1/judge",
        params={
            "config": "demo",
            "baseline": "b",
            "canary": "canary-bad",
            "lookback": "1h",
            "param.regression": "1.0",
            "pass": "90",
            "marginal": "10",
        },
    )
    assert answer.json()["verdict"] == "pass"


# -- Flagger -----------------------------------------------------------------------------------
def _hook(**metadata: str) -> dict[str, Any]:
    return {
        "name": "podinfo",
        "namespace": "test",
        "phase": "Progressing",
        "checksum": "abc",
        "metadata": metadata,
    }


def test_flagger_pass_fail_and_bad_metadata(client: TestClient) -> None:
    good = client.post(
        "/flagger/v1/check", json=_hook(config="demo", canary="canary-good", lookback="1h")
    )
    assert good.status_code == 200
    assert good.json()["verdict"] == "pass"
    bad = client.post(
        "/flagger/v1/check", json=_hook(config="demo", canary="canary-bad", lookback="1h")
    )
    assert bad.status_code == 412
    assert bad.json()["verdict"] == "fail"
    assert "latency" in bad.json()["failed_metrics"]
    typo = client.post("/flagger/v1/check", json=_hook(config="demo", lookbak="1h"))
    assert typo.status_code == 400
    assert "lookbak" in typo.json()["error"]
    no_config = client.post("/flagger/v1/check", json=_hook())
    assert no_config.status_code == 400
    assert "config" in no_config.json()["error"]
    bad_step = client.post("/flagger/v1/check", json=_hook(config="demo", step="fast"))
    assert bad_step.status_code == 400
    assert "metadata.step" in bad_step.json()["error"]


def test_lookback_windows_end_at_the_services_clock(client: TestClient) -> None:
    # The clock is pinned (CANARY_JUDGE_PINNED_NOW): the same check judges the same window
    # whenever it is sent; the fetched queries name that window.
    expected = (f"[{(PINNED_NOW - timedelta(minutes=30)).isoformat()} .. "
                f"{PINNED_NOW.isoformat()}, 31 points]")
    argo = client.post("/argo/v1/judge", json={"config": "demo", "baseline": "stable",
                                               "canary": "canary-good", "lookback": "30m"})
    flagger = client.post("/flagger/v1/check",
                          json=_hook(config="demo", canary="canary-good", lookback="30m"))
    for answer in (argo, flagger):
        stored = client.get(f"/v1/analyses/{answer.json()['analysis_id']}").json()
        fetched = stored["report"]["details"]["fetch"]["latency"]
        assert fetched["baseline"]["query"].endswith(expected)
        assert fetched["canary"]["query"].endswith(expected)
    again = client.post("/argo/v1/judge", json={"config": "demo", "baseline": "stable",
                                                "canary": "canary-good", "lookback": "30m"})
    assert again.json()["metrics"] == argo.json()["metrics"]


def test_flagger_hook_sent_with_curl_data(client: TestClient) -> None:
    # `curl -d '{...}'` as Flagger's docs test a webhook: a form content type, a JSON body.
    answer = client.post(
        "/flagger/v1/check",
        content=json.dumps(_hook(config="demo", canary="canary-good", lookback="30m")),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"] == "pass"


def test_flagger_marginal_can_be_allowed(client: TestClient) -> None:
    # Thresholds that make a perfect canary "marginal": 412 unless allowMarginal.
    strict = _hook(config="demo", canary="canary-good", lookback="1h", marginal="0")
    strict["metadata"]["pass"] = "100.5"
    answer = client.post("/flagger/v1/check", json=strict)
    assert answer.status_code == 400  # pass above 100 is refused, naming the field
    assert "pass" in answer.json()["error"]
    hook = _hook(config="demo", canary="canary-bad", lookback="1h", marginal="0")
    hook["metadata"]["pass"] = "100"
    assert client.post("/flagger/v1/check", json=hook).status_code == 412
    hook["metadata"]["allowMarginal"] = "true"
    allowed = client.post("/flagger/v1/check", json=hook)
    assert allowed.json()["verdict"] == "marginal"
    assert allowed.status_code == 200


# -- Kayenta -----------------------------------------------------------------------------------
KAYENTA_CONFIG: dict[str, Any] = {
    "name": "checkout",
    "applications": ["shop"],
    "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
    "metrics": [
        {
            "name": "latency",
            "query": {
                "type": "prometheus",
                "metricName": "latency_seconds",
                "customInlineTemplate": 'PromQL:avg(latency_seconds{version="${scope}"})',
            },
            "groups": ["perf"],
            "analysisConfigurations": {"canary": {"direction": "increase"}},
            "scopeName": "default",
        }
    ],
    "templates": {},
    "classifier": {"groupWeights": {"perf": 100}, "scoreThresholds": {"pass": 95, "marginal": 75}},
}


def test_kayenta_config_store(client: TestClient) -> None:
    created = client.post("/canaryConfig", json=KAYENTA_CONFIG)
    assert created.status_code == 200
    config_id = created.json()["canaryConfigId"]
    listed = client.get(
        "/canaryConfig", params={"application": "shop", "configurationAccountName": "x"}
    ).json()
    entry = next(c for c in listed if c["name"] == "checkout")
    assert entry["id"] == config_id
    assert entry["applications"] == ["shop"]
    assert isinstance(entry["updatedTimestamp"], int)
    assert all(
        c["name"] != "checkout"
        for c in client.get("/canaryConfig", params={"application": "other"}).json()
    )
    fetched = client.get(f"/canaryConfig/{config_id}").json()
    assert fetched["metrics"] == KAYENTA_CONFIG["metrics"]
    duplicate = client.post("/canaryConfig", json=KAYENTA_CONFIG)
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["message"]
    changed = {**KAYENTA_CONFIG, "description": "v2", "updatedTimestamp": 1}
    assert client.put(f"/canaryConfig/{config_id}", json=changed).json() == {
        "canaryConfigId": config_id
    }
    assert client.get(f"/canaryConfig/{config_id}").json()["description"] == "v2"
    assert client.delete(f"/canaryConfig/{config_id}").status_code == 204
    gone = client.get(f"/canaryConfig/{config_id}")
    assert gone.status_code == 404
    assert gone.json()["status"] == 404 and "message" in gone.json()


def _scope(scope: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "scope": scope,
        "region": "",
        "step": 60,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def _poll(client: TestClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60  # reached only when the test fails: load-proof
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/canary/{execution_id}").json()
        if status["complete"]:
            return status
        assert status["status"] == "running"
        time.sleep(0.05)
    raise AssertionError("execution did not complete")


@pytest.mark.parametrize(
    ("canary", "classification"), [("canary-good", "Pass"), ("canary-bad", "Fail")]
)
def test_kayenta_execution(client: TestClient, canary: str, classification: str) -> None:
    # A fixed window: the demo data are deterministic per window, and Kayenta's judge, which
    # takes autocorrelated minutes as independent, fails a good canary in a few windows of a
    # hundred; a wall-clock window would make this test flaky.
    end = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    start = end - timedelta(hours=1)
    request = {
        "scopes": {
            "default": {
                "controlScope": _scope("baseline", start, end),
                "experimentScope": _scope(canary, start, end),
            }
        },
        "thresholds": {"pass": 95, "marginal": 75},
    }
    started = client.post(
        "/canary/demo-kayenta",
        params={
            "application": "shop",
            "metricsAccountName": "demo",
            "configurationAccountName": "c",
            "storageAccountName": "s",
        },
        json=request,
    )
    assert started.status_code == 200
    status = _poll(client, started.json()["canaryExecutionId"])
    assert status["status"] == "succeeded"
    assert status["storageAccountName"] == "s"
    judge_result = status["result"]["judgeResult"]
    assert judge_result["score"]["classification"] == classification
    assert {r["classification"] for r in judge_result["results"]} <= {"Pass", "High", "Low"}
    assert {g["name"] for g in judge_result["groupScores"]} == {
        "latency",
        "errors",
        "saturation",
        "throughput",
    }
    adhoc = client.post(
        "/canary",
        json={
            "canaryConfig": client.get("/v1/configs/demo-kayenta").json()["config"],
            "executionRequest": request,
        },
    )
    assert adhoc.status_code == 200
    again = _poll(client, adhoc.json()["canaryExecutionId"])["result"]["judgeResult"]
    assert again["score"]["score"] == judge_result["score"]["score"]
    # Kayenta's list of an application's executions (ad-hoc: those started without one).
    listed = client.get("/canary/executions", params={"application": "shop"})
    assert listed.status_code == 200
    assert [e["pipelineId"] for e in listed.json()] == [started.json()["canaryExecutionId"]]
    assert listed.json()[0]["result"]["judgeResult"]["score"] == judge_result["score"]
    adhoc_listed = client.get("/canary/executions").json()
    assert [e["pipelineId"] for e in adhoc_listed] == [adhoc.json()["canaryExecutionId"]]
    assert client.get("/canary/executions", params={"statuses": "RUNNING"}).json() == []
    assert len(client.get("/canary/executions",
                          params={"statuses": "succeeded,terminal"}).json()) == 1
    assert client.get("/canary/executions", params={"page": 2}).json() == []


def test_kayenta_execution_errors(client: TestClient) -> None:
    end = PINNED_NOW
    request = {
        "scopes": {
            "default": {
                "controlScope": _scope("b", end - timedelta(hours=1), end),
                "experimentScope": {"scope": "c"},
            }
        }
    }
    missing_window = client.post("/canary/demo", json=request)
    assert missing_window.status_code == 400
    assert "experimentScope" in missing_window.json()["message"]
    # What Argo's provider sends when the template leaves start/end/step out: "" and 0.
    go_zero_values = {"scope": "c", "region": "", "step": 0, "start": "", "end": ""}
    request_go = {
        "scopes": {"default": {"controlScope": go_zero_values, "experimentScope": go_zero_values}}
    }
    unset = client.post("/canary/demo", json=request_go)
    assert unset.status_code == 400
    assert "'start' and 'end' are required" in unset.json()["message"]
    unknown = client.post("/canary/nope", json=request)
    assert unknown.status_code == 404
    wrong_account = client.post(
        "/canary/demo",
        params={"metricsAccountName": "prod-prometheus"},
        json={
            "scopes": {
                "default": {
                    "controlScope": _scope("b", end - timedelta(hours=1), end),
                    "experimentScope": _scope("c", end - timedelta(hours=1), end),
                }
            }
        },
    )
    assert wrong_account.status_code == 400
    assert "prod-prometheus" in wrong_account.json()["message"]
    assert client.get("/canary/nope").status_code == 404


def test_kayenta_config_with_fields_kayenta_ignores_is_stored_and_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    document = json.loads((FIXTURES / "kayenta" / "extensions.json").read_text())
    with caplog.at_level("WARNING", logger="judge.api.plans"):
        stored = client.post("/canaryConfig", json=document)
    assert stored.status_code == 200, stored.text
    dropped = [r for r in caplog.records if r.getMessage() == "Kayenta config field dropped "
               "on import"]
    assert [r.detail for r in dropped] == [  # type: ignore[attr-defined]
        f"metrics.{i}.extensions: ignored (Kayenta ignores it too; it holds no setting)"
        for i in (0, 1)
    ]


def test_kayenta_results_carry_critical_and_muted(client: TestClient) -> None:
    # Kayenta's CanaryAnalysisResult has the booleans `critical` and `muted` (kayenta-core);
    # the config: one metric critical and muted, one critical only.
    config = json.loads((FIXTURES / "kayenta" / "muted-critical.json").read_text())
    steady = [float(v) for v in 100 + np.random.default_rng(3).normal(0, 1, 30)]
    pairs = [{"name": name, "id": name, "tags": {},
              "values": {"control": steady, "experiment": [v * factor for v in steady]}}
             for name, factor in (("noisy", 1.5), ("steady", 1.0))]
    answer = client.post("/judge", json={"canaryConfig": config, "metricSetPairList": pairs})
    assert answer.status_code == 200, answer.text
    by_name = {r["name"]: r for r in answer.json()["results"]}
    assert (by_name["noisy"]["critical"], by_name["noisy"]["muted"]) == (True, True)
    assert (by_name["steady"]["critical"], by_name["steady"]["muted"]) == (True, False)
    assert all("criticality" not in r for r in by_name.values())  # not a Kayenta field
    # The muted critical metric failed, yet it neither scores nor fails the canary.
    assert by_name["noisy"]["classification"] == "High"
    assert answer.json()["score"]["score"] == 100.0


def test_kayenta_remote_judge(client: TestClient) -> None:
    rng = np.random.default_rng(7)
    control = [float(v) for v in 100 + rng.normal(0, 1, 50)]
    worse = [float(v) for v in 120 + rng.normal(0, 1, 50)]
    config = {
        **KAYENTA_CONFIG,
        "metrics": [
            {**KAYENTA_CONFIG["metrics"][0], "name": "latency"},
            {**KAYENTA_CONFIG["metrics"][0], "name": "errors"},
        ],
    }
    pairs = [
        {
            "name": "latency",
            "id": "p1",
            "tags": {"zone": "a"},
            "values": {"control": [*control, None], "experiment": [*worse, "NaN"]},
            "scopes": {},
            "attributes": {},
        },
        {
            "name": "latency",
            "id": "p2",
            "tags": {"zone": "b"},
            "values": {"control": control, "experiment": control},
        },
        {
            "name": "errors",
            "id": "p3",
            "tags": {},
            "values": {"control": control, "experiment": control},
        },
    ]
    answer = client.post(
        "/judge",
        json={
            "canaryConfig": config,
            "metricSetPairList": pairs,
            "scoreThresholds": {"pass": 95, "marginal": 75},
        },
    )
    assert answer.status_code == 200
    result = answer.json()
    by_id = {r["id"]: r for r in result["results"]}
    assert by_id["p1"]["classification"] == "High"
    assert by_id["p1"]["tags"] == {"zone": "a"}
    assert by_id["p1"]["name"] == "latency"
    assert by_id["p2"]["classification"] == "Pass"
    assert by_id["p1"]["controlMetadata"]["stats"]["count"] == 50
    assert result["score"]["classification"] == "Fail"
    unknown = client.post(
        "/judge",
        json={
            "canaryConfig": config,
            "metricSetPairList": [{"name": "nope", "values": {"control": [1], "experiment": [1]}}],
        },
    )
    assert unknown.status_code == 400
    assert "nope" in unknown.json()["message"]
    missing_side = client.post(
        "/judge",
        json={
            "canaryConfig": config,
            "metricSetPairList": [{"name": "latency", "values": {"control": [1]}}],
        },
    )
    assert missing_side.status_code == 422
    assert "experiment" in missing_side.json()["message"]


def test_kayenta_remote_judge_name_picks_our_judge(client: TestClient) -> None:
    rng = np.random.default_rng(11)
    control = [float(v) for v in 100 + rng.normal(0, 1, 50)]
    pairs = [{"name": "latency", "values": {"control": control, "experiment": control}}]
    for options, judge_name in (
        ({}, "canary-judge"),
        ({"mode": "kayenta"}, "NetflixACAJudge-v1.0"),
    ):
        config = {
            **KAYENTA_CONFIG,
            "judge": {"name": "RemoteJudge-v1.0", "judgeConfigurations": options},
        }
        answer = client.post("/judge", json={"canaryConfig": config, "metricSetPairList": pairs})
        assert answer.status_code == 200, answer.text
        assert answer.json()["judgeName"] == judge_name
    wrong_mode = {
        **KAYENTA_CONFIG,
        "judge": {"name": "RemoteJudge-v1.0", "judgeConfigurations": {"mode": "x"}},
    }
    refused = client.post("/judge", json={"canaryConfig": wrong_mode, "metricSetPairList": pairs})
    assert refused.status_code == 422
    assert "mode" in refused.json()["message"]


def test_synchronous_checks_answer_within_their_budget() -> None:
    # A slow source: fetching stops at the deadline (the budget less a quarter here), and the
    # answer is an error outcome naming the timeout: an Error for Argo (non-2xx), a non-2xx
    # that is not "canary failed" for Flagger.
    # Each answer would take the source's 30 s without the cut: both come within 15 s, a
    # margin no load on the machine comes near.
    slow = service_settings(demo_delay_seconds=30, sync_timeout_seconds=0.5)
    with TestClient(create_app(slow)) as client:
        started = time.monotonic()
        argo = client.post(
            "/argo/v1/judge", json={"config": "demo", "baseline": "b", "canary": "c"}
        )
        flagger = client.post("/flagger/v1/check", json=_hook(config="demo"))
        assert time.monotonic() - started < 15.0
        assert argo.status_code == 503
        assert argo.json()["verdict"] == "error"
        assert "(timeout)" in argo.json()["error"]
        assert "deadline of 0.375 s" in argo.json()["error"]
        assert flagger.status_code == 503
        assert flagger.json()["verdict"] == "error"
        stored = client.get("/v1/analyses", params={"status": "error"}).json()
        assert {a["kind"] for a in stored} == {"argo", "flagger"}
        assert {a["verdict"] for a in stored} == {"error"}
