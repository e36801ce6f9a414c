"""The real server process against a real Prometheus, called exactly as the controllers call it.

One Prometheus (backfilled with three versions of a service: ``v1`` the baseline, ``v2-good``
differing by noise only, ``v2-bad`` with 40% more latency and five times the errors) and one
``uvicorn`` process serve the whole module. Each test calls the service the way its controller
does: same paths, query parameters, bodies and client timeouts (Argo web 10 s, Argo kayenta
15 s, Flagger 10 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.datadog import FakeDatadog
from tests.support.prometheus import PrometheusServer, Sample, free_port, running_prometheus
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.prometheus

TOKEN = "integration-token"  # a bare token: admin (stores configs)
JUDGE_TOKEN = "integration-judge-token"  # what the controllers get: read and judge
ARGO_WEB_TIMEOUT = 10.0
ARGO_KAYENTA_TIMEOUT = 15.0
FLAGGER_TIMEOUT = 10.0
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
WINDOW_MINUTES = 40


def _samples() -> list[Sample]:
    rng = np.random.default_rng(20241128)
    samples = []
    start = NOW - timedelta(minutes=WINDOW_MINUTES + 5)
    for version, latency, errors in (
        ("v1", 100.0, 0.01),
        ("v2-good", 100.0, 0.01),
        ("v2-bad", 140.0, 0.05),
    ):
        for k in range((WINDOW_MINUTES + 5) * 2):  # one sample every 30 s
            at = (start + timedelta(seconds=30 * k)).timestamp()
            labels = {"version": version, "app": "checkout"}
            samples.append(Sample("app_latency_ms", labels, at, latency + rng.normal(0, 4)))
            samples.append(
                Sample("app_error_ratio", labels, at, max(0.0, errors + rng.normal(0, 0.002)))
            )
    return samples


LATENCY_PROMQL = 'avg(app_latency_ms{app="checkout",version="${scope}"})'
ERRORS_PROMQL = 'avg(app_error_ratio{app="checkout",version="${scope}"})'

NATIVE_CONFIG = {
    "name": "checkout",
    "applications": ["checkout"],
    "thresholds": {"pass": 95, "marginal": 75},
    "groups": {"latency": 50, "errors": 50},
    "metrics": [
        {
            "name": "latency",
            "groups": ["latency"],
            "direction": "increase",
            "query": {
                "type": "prometheus",
                "promql": LATENCY_PROMQL,
            },
        },
        {
            "name": "error ratio",
            "groups": ["errors"],
            "direction": "increase",
            "query": {
                "type": "prometheus",
                "promql": ERRORS_PROMQL,
            },
        },
    ],
}

KAYENTA_CONFIG: dict[str, Any] = {
    "name": "checkout-kayenta",
    "applications": ["checkout"],
    "configVersion": "1",
    "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
    "metrics": [
        {
            "name": "latency",
            "query": {
                "type": "prometheus",
                "metricName": "app_latency_ms",
                "customInlineTemplate": "PromQL:" + LATENCY_PROMQL,
            },
            "groups": ["latency"],
            "analysisConfigurations": {"canary": {"direction": "increase"}},
            "scopeName": "default",
        },
        {
            "name": "error ratio",
            "query": {
                "type": "prometheus",
                "metricName": "app_error_ratio",
                "customInlineTemplate": "PromQL:" + ERRORS_PROMQL,
            },
            "groups": ["errors"],
            "analysisConfigurations": {"canary": {"direction": "increase"}},
            "scopeName": "default",
        },
    ],
    "templates": {},
    "classifier": {
        "groupWeights": {"latency": 50, "errors": 50},
        "scoreThresholds": {"pass": 95, "marginal": 75},
    },
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(_samples(), tmp_path_factory.mktemp("prometheus")) as server:
        yield server


DATADOG_QUERY = "avg:app.queue.depth{service:checkout,version:${scope}}"


@pytest.fixture(scope="module")
def datadog() -> Iterator[FakeDatadog]:
    rng = np.random.default_rng(7)
    with FakeDatadog() as fake:
        start = NOW - timedelta(minutes=WINDOW_MINUTES + 5)
        for version in ("v1", "v2-good"):
            points = [((start + timedelta(minutes=k)).timestamp(), float(rng.normal(20, 1)))
                      for k in range(WINDOW_MINUTES + 6)]
            fake.add_series(DATADOG_QUERY.replace("${scope}", version), points,
                            tags=("service:checkout", f"version:{version}"))
        yield fake


@pytest.fixture(scope="module")
def service(
    prometheus: PrometheusServer, datadog: FakeDatadog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    work_dir: Path = tmp_path_factory.mktemp("service")
    closed_port = free_port()  # nothing listens there: a metric source that is down
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'judge.db'}",
        "CANARY_JUDGE_PROMETHEUS_URL": prometheus.url,
        "CANARY_JUDGE_SOURCES": json.dumps(
            {
                "down": {
                    "type": "prometheus",
                    "url": f"http://127.0.0.1:{closed_port}",
                    "timeout_seconds": 1,
                }
            }
        ),
        "CANARY_JUDGE_DEFAULT_SOURCE": "prometheus",
        "CANARY_JUDGE_DATADOG_URL": datadog.url,
        "CANARY_JUDGE_DATADOG_API_KEY": datadog.api_key,
        "CANARY_JUDGE_DATADOG_APP_KEY": datadog.application_key,
        "CANARY_JUDGE_API_TOKENS": f"{TOKEN},judge:{JUDGE_TOKEN}",
        "CANARY_JUDGE_PINNED_NOW": NOW.isoformat(),  # lookback windows end where the data does
    }
    with ServiceProcess(env, work_dir) as process:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{process.url}/v1/configs", json=NATIVE_CONFIG, headers=auth)
        assert created.status_code == 201, created.text
        stored = httpx.post(f"{process.url}/canaryConfig", json=KAYENTA_CONFIG, headers=auth)
        assert stored.status_code == 200, stored.text
        yield process


# -- Argo Rollouts web provider ------------------------------------------------------------------
def _argo_web(service: ServiceProcess, body: dict[str, Any]) -> dict[str, Any]:
    """One measurement as an AnalysisTemplate with provider.web sends it: method POST,
    jsonBody, headers with a token; Argo reads any status but 200 as an Error."""
    answer = httpx.post(
        f"{service.url}/argo/v1/judge",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        timeout=ARGO_WEB_TIMEOUT,
    )
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize(("canary", "verdict"), [("v2-good", "pass"), ("v2-bad", "fail")])
def test_argo_web_provider_post(service: ServiceProcess, canary: str, verdict: str) -> None:
    result = _argo_web(service, {"config": "checkout", "baseline": "v1", "canary": canary,
                                 "lookback": f"{WINDOW_MINUTES}m", "step": 60})
    assert result["error"] is None, result["error"]
    assert result["verdict"] == verdict
    # successCondition: result.verdict == "pass"; failureCondition: result.verdict == "fail"
    assert (result["verdict"] == "pass") == (verdict == "pass")
    counts = {m["name"]: m["classification"] for m in result["metrics"]}
    if verdict == "fail":
        assert counts["latency"] == "high"
        assert "latency" in result["failed_metrics"]
    else:
        assert set(counts.values()) == {"pass"}


def test_argo_web_provider_get_and_errors(service: ServiceProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    got = httpx.get(
        f"{service.url}/argo/v1/judge",
        params={
            "config": "checkout",
            "baseline": "v1",
            "canary": "v2-bad",
            "lookback": f"{WINDOW_MINUTES}m",
        },
        headers=auth,
        timeout=ARGO_WEB_TIMEOUT,
    )
    assert got.status_code == 200
    assert got.json()["verdict"] == "fail"
    # A request it cannot serve: 200 with verdict "error" (Argo: Inconclusive); without a
    # token: the 401 itself, in the same shape (Argo: an Error measurement).
    for params, headers, status in (({"config": "checkout"}, auth, 200),
                                    ({"config": "checkout"}, {}, 401)):
        broken = httpx.get(
            f"{service.url}/argo/v1/judge", params=params, headers=headers, timeout=ARGO_WEB_TIMEOUT
        )
        assert broken.status_code == status
        assert broken.json()["verdict"] == "error"
        assert broken.json()["error"]


def test_metrics_without_a_source_go_to_the_source_of_their_query_type(
    service: ServiceProcess, datadog: FakeDatadog
) -> None:
    # The request names Prometheus (the default too); the Datadog metric names no source and
    # must still be fetched from Datadog (it used to be an error metric).
    config = {
        "name": "checkout-mixed",
        "metrics": [
            {"name": "latency", "direction": "increase",
             "query": {"type": "prometheus", "promql": LATENCY_PROMQL}},
            {"name": "queue depth", "direction": "increase",
             "query": {"type": "datadog", "query": DATADOG_QUERY}},
        ],
    }
    result = _argo_web(service, {"config": config, "baseline": "v1", "canary": "v2-good",
                                 "source": "prometheus", "lookback": f"{WINDOW_MINUTES}m"})
    assert result["error"] is None, result["error"]
    assert {m["name"]: m["classification"] for m in result["metrics"]} == {
        "latency": "pass", "queue depth": "pass"}
    asked = {r.params.get("query") for r in datadog.requests}
    # The service's step (60 s) reaches Datadog as the rollup interval.
    assert DATADOG_QUERY.replace("${scope}", "v2-good") + ".rollup(avg, 60)" in asked


def test_metric_source_down_is_an_error_measurement_not_a_verdict(
    service: ServiceProcess,
) -> None:
    # Issue 14: this used to answer 200 "fail" (a rollback on an outage). Argo's web provider
    # reads a non-2xx answer as an Error measurement; its consecutiveErrorLimit decides.
    answer = httpx.post(
        f"{service.url}/argo/v1/judge",
        json={"config": "checkout", "baseline": "v1", "canary": "v2-good", "source": "down",
              "lookback": "10m"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=ARGO_WEB_TIMEOUT,
    )
    assert answer.status_code == 503
    result = answer.json()
    assert result["verdict"] == "error" and result["score"] is None
    assert {m["classification"] for m in result["metrics"]} == {"error"}
    assert "source 'down' (connect)" in result["error"]
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'canary_judge_fetch_errors_total{error="' in metrics
    assert 'source="down"' in metrics


# -- Argo Rollouts kayenta provider --------------------------------------------------------------
def _argo_kayenta_measurement(service: ServiceProcess, canary: str) -> tuple[str, float]:
    """What ``metricproviders/kayenta/kayenta.go`` does: look the config up by name, start a
    job with its Go-formatted payload, poll until complete, and evaluate the score."""
    # No headers: the provider sends none; the token is in its address (docs/service.md).
    address = f"{service.url}/t/{JUDGE_TOKEN}"
    application, storage, metrics_account = "checkout", "storage", ""
    client = httpx.Client(timeout=ARGO_KAYENTA_TIMEOUT)
    listing = client.get(
        f"{address}/canaryConfig?application={application}&configurationAccountName={storage}"
    )
    assert listing.status_code == 200
    # Go's json.Unmarshal matches the struct's Id/Name to "id"/"name" case-insensitively.
    config_id = next(c["id"] for c in listing.json() if c["name"] == "checkout-kayenta")
    start = (NOW - timedelta(minutes=WINDOW_MINUTES)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    control = json.dumps({"scope": "v1", "region": "", "step": 60, "start": start, "end": end})
    experiment = json.dumps({"scope": canary, "region": "", "step": 60, "start": start, "end": end})
    payload = (
        '\n\t\t\t\t\t\t\t{\n\t\t\t\t\t\t\t\t"scopes": {\n\t\t\t\t\t\t\t\t\t\t'
        f'"default":{{"controlScope": {control}, "experimentScope": {experiment}}}'
        '\n\t\t\t\t\t\t\t\t},\n                                "thresholds" : {\n'
        '                                    "pass": 95,\n'
        '                                    "marginal": 75\n'
        "                                }\n                            }"
    )
    job = client.post(
        f"{address}/canary/{config_id}?application={application}&metricsAccountName="
        f"{metrics_account}&configurationAccountName={storage}&storageAccountName={storage}",
        content=payload.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert job.status_code == 200, job.text
    execution_id = job.json()["canaryExecutionId"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"{address}/canary/{execution_id}")
        assert status.status_code == 200
        patch = status.json()
        if patch["complete"]:
            score = float(patch["result"]["judgeResult"]["score"]["score"])
            phase = "Successful" if score >= 95 else "Inconclusive" if score >= 75 else "Failed"
            return phase, score
        time.sleep(0.5)  # the provider waits 15 s (resumeDelay); shorter here
    raise AssertionError("kayenta execution did not complete")


@pytest.mark.parametrize(("canary", "phase"), [("v2-good", "Successful"), ("v2-bad", "Failed")])
def test_argo_kayenta_provider(service: ServiceProcess, canary: str, phase: str) -> None:
    measured, score = _argo_kayenta_measurement(service, canary)
    assert measured == phase, score


def test_spinnaker_status_shape(service: ServiceProcess) -> None:
    base = f"{service.url}/t/{JUDGE_TOKEN}"
    start = (NOW - timedelta(minutes=WINDOW_MINUTES)).isoformat()
    scope = {
        "scope": "v1",
        "location": "eu",
        "start": start,
        "end": NOW.isoformat(),
        "step": 60,
        "extendedScopeParams": {"app": "checkout"},
    }

    def start_job(config_ref: str) -> httpx.Response:
        return httpx.post(
            f"{base}/canary/{config_ref}",
            params={"application": "checkout", "metricsAccountName": "prometheus"},
            json={
                "scopes": {"default": {"controlScope": scope,
                                       "experimentScope": {**scope, "scope": "v2-bad"}}},
                "thresholds": {"pass": 95, "marginal": 75},
            },
            timeout=ARGO_KAYENTA_TIMEOUT,
        )

    job = start_job("checkout-kayenta")
    assert job.status_code == 404  # by id only, as Kayenta: names are for the listing
    configs = httpx.get(f"{base}/canaryConfig", params={"application": "checkout"}).json()
    config_id = next(c["id"] for c in configs if c["name"] == "checkout-kayenta")
    job = start_job(config_id)
    execution_id = job.json()["canaryExecutionId"]
    for _ in range(100):
        status = httpx.get(f"{base}/canary/{execution_id}").json()
        if status["complete"]:
            break
        time.sleep(0.2)
    assert status["status"] == "succeeded"
    assert status["application"] == "checkout"
    result = status["result"]["judgeResult"]
    latency = next(r for r in result["results"] if r["name"] == "latency")
    assert latency["classification"] == "High"
    assert latency["controlMetadata"]["stats"]["count"] == WINDOW_MINUTES + 1
    assert result["score"]["classification"] == "Fail"
    assert status["canaryExecutionRequest"]["scopes"]["default"]["controlScope"]["location"] == "eu"


# -- Flagger -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("canary", "status"), [("v2-good", 200), ("v2-bad", 412)])
def test_flagger_webhook(service: ServiceProcess, canary: str, status: int) -> None:
    # Flagger's CanaryWebhookPayload, POSTed with no auth header (the token is in its
    # metadata), 10 s timeout.
    payload = {
        "name": "checkout",
        "namespace": "shop",
        "phase": "Progressing",
        "checksum": "7f9c2ba4",
        "metadata": {
            "token": JUDGE_TOKEN,
            "config": "checkout",
            "baseline": "v1",
            "canary": canary,
            "lookback": f"{WINDOW_MINUTES}m",
            "step": "60",
        },
    }
    answer = httpx.post(f"{service.url}/flagger/v1/check", json=payload, timeout=FLAGGER_TIMEOUT)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["canary"] == "shop/checkout"
    assert body["verdict"] == ("pass" if status == 200 else "fail")
    assert body["reason"]


# -- Kayenta remote judge and native analyses ----------------------------------------------------
def test_kayenta_remote_judge(service: ServiceProcess) -> None:
    rng = np.random.default_rng(3)
    control = [float(v) for v in 100 + rng.normal(0, 4, 40)]
    experiment = [float(v) for v in 140 + rng.normal(0, 4, 40)]
    pairs = [
        {
            "name": "latency",
            "id": "1",
            "tags": {},
            "scopes": {},
            "values": {"control": [*control, None], "experiment": [*experiment, "NaN"]},
        },
        {
            "name": "error ratio",
            "id": "2",
            "tags": {},
            "scopes": {},
            "values": {"control": [0.01] * 40, "experiment": [0.01] * 40},
        },
    ]
    answer = httpx.post(
        f"{service.url}/t/{JUDGE_TOKEN}/judge",  # Kayenta's baseUrl carries the token
        json={
            "canaryConfig": KAYENTA_CONFIG,
            "metricSetPairList": pairs,
            "scoreThresholds": {"pass": 95, "marginal": 75},
        },
        timeout=ARGO_KAYENTA_TIMEOUT,
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["judgeName"] == "NetflixACAJudge-v1.0"
    assert {r["name"]: r["classification"] for r in result["results"]} == {
        "latency": "High",
        "error ratio": "Pass",
    }
    assert result["score"]["score"] == 50.0


def test_native_background_analysis(service: ServiceProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    start = (NOW - timedelta(minutes=WINDOW_MINUTES)).isoformat()
    created = httpx.post(
        f"{service.url}/v1/analyses",
        json={
            "config_id": "checkout",
            "baseline": {"scope": "v1"},
            "canary": {"scope": "v2-good"},
            "start": start,
            "end": NOW.isoformat(),
            "step": 60,
        },
        headers=auth,
    )
    assert created.status_code == 202, created.text
    analysis_id = created.json()["id"]
    for _ in range(100):
        analysis = httpx.get(f"{service.url}/v1/analyses/{analysis_id}", headers=auth).json()
        if analysis["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    assert analysis["status"] == "succeeded", analysis["error"]
    assert analysis["report"]["verdict"] == "pass"
    assert analysis["report"]["details"]["fetch"]["latency"]["canary"]["error"] is None
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'canary_judge_fetch_seconds_count{source="prometheus"}' in metrics
