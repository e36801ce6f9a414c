"""Secrets never leave the real server: not in a response, a log line, or the database file.

The server process gets distinctive secret values: a Prometheus URL with user and password
(nothing listens there: every fetch fails with an error naming the URL, the leak this test was
written for), a "Prometheus behind a proxy" that answers every query with an error echoing the
credentials it received (basic auth from the URL, or a bearer token), Datadog's API and
application keys (a stand-in that also once echoes them back), and API tokens of each scope.
Then every door is called as its controller calls it, with the tokens in headers, URL paths
and Flagger metadata, wrong tokens included; the server runs with uvicorn's access log on and
debug logs. At the end every response body, the whole log and every database file (with its
WAL) are searched for each secret, raw and percent-encoded.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.datadog import Answer, FakeDatadog
from tests.support.prometheus import free_port
from tests.support.service import ServiceProcess

PROM_PASSWORD = "prom-pw-Q7v3kZ91"
ECHO_PASSWORD = "echo-pw-Lm48sD20"
BEARER = "bearer-tok-Vn27cF66"
DD_API_KEY = "dd-api-key-Jk52wE83"
DD_APP_KEY = "dd-app-key-Tg19hU47"
ADMIN = "admin-tok-Hq83mZ2x"
JUDGE = "judge-tok-Pw52nX7c"
LEGACY = "legacy-tok-Rt61bY4v"
WRONG = "wrong-tok-Zx09aB1n"
SECRETS = (PROM_PASSWORD, ECHO_PASSWORD, BEARER, DD_API_KEY, DD_APP_KEY, ADMIN, JUDGE, LEGACY,
           WRONG)

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
DD_QUERY = "avg:app.queue.depth{service:checkout,version:${scope}}"


class _EchoingProxy(BaseHTTPRequestHandler):
    """A misbehaving proxy in front of Prometheus: refuses every query, echoing the
    credentials it was sent (decoded, for basic auth) in Prometheus' error shape."""

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        shown = header
        if header.startswith("Basic "):
            shown = base64.b64decode(header[6:]).decode()
        body = json.dumps({"status": "error", "errorType": "bad_data",
                           "error": f"proxy refused the credentials {shown!r}"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingProxy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def datadog() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=DD_API_KEY, application_key=DD_APP_KEY) as fake:
        start = NOW - timedelta(minutes=40)
        for version in ("v1", "v2"):
            points = [((start + timedelta(minutes=k)).timestamp(), 20.0 + (k % 3))
                      for k in range(41)]
            fake.add_series(DD_QUERY.replace("${scope}", version), points)
        yield fake


NATIVE_CONFIG: dict[str, Any] = {
    "name": "secrets",
    "thresholds": {"pass": 95, "marginal": 75},
    "metrics": [
        {"name": "latency", "direction": "increase",
         "query": {"type": "prometheus", "promql": 'avg(latency{version="${scope}"})'}},
        {"name": "echoed", "direction": "increase", "source": "proxied",
         "query": {"type": "prometheus", "promql": 'avg(errors{version="${scope}"})'}},
        {"name": "bearer", "direction": "increase", "source": "proxied-bearer",
         "query": {"type": "prometheus", "promql": 'avg(errors{version="${scope}"})'}},
        {"name": "queue", "direction": "increase",
         "query": {"type": "datadog", "query": DD_QUERY}},
    ],
}

KAYENTA_CONFIG: dict[str, Any] = {
    "name": "secrets-kayenta",
    "applications": ["checkout"],
    "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
    "metrics": [{
        "name": "latency",
        "query": {"type": "prometheus", "metricName": "latency",
                  "customInlineTemplate": 'PromQL:avg(latency{version="${scope}"})'},
        "groups": ["latency"], "scopeName": "default",
        "analysisConfigurations": {"canary": {"direction": "increase"}},
    }],
    "classifier": {"groupWeights": {"latency": 100}},
}


class Calls:
    """Every request goes through here, so every answer is kept for the search."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.bodies: list[tuple[str, str]] = []
        self.client = httpx.Client(timeout=30)

    def __call__(self, method: str, path: str, *, token: str | None = None,
                 **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        answer = self.client.request(method, self.base + path, headers=headers, **kwargs)
        self.bodies.append((f"{method} {path.split('?')[0]}", answer.text))
        return answer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, echo_proxy: str,
           datadog: FakeDatadog) -> Iterator[tuple[ServiceProcess, Calls, Path, int]]:
    work_dir = tmp_path_factory.mktemp("secrets")
    closed_port = free_port()
    env = {
        "CANARY_JUDGE_DATABASE_URL": f"sqlite:///{work_dir / 'judge.db'}",
        "CANARY_JUDGE_PROMETHEUS_URL": f"http://promreader:{PROM_PASSWORD}@127.0.0.1:{closed_port}",
        "CANARY_JUDGE_SOURCES": json.dumps({
            "proxied": {"type": "prometheus", "url": f"http://echouser:{ECHO_PASSWORD}@{echo_proxy}",
                        "timeout_seconds": 1},
            "proxied-bearer": {"type": "prometheus", "url": f"http://{echo_proxy}",
                               "bearer_token": BEARER, "timeout_seconds": 1},
        }),
        "CANARY_JUDGE_DEFAULT_SOURCE": "prometheus",
        "CANARY_JUDGE_DATADOG_URL": datadog.url,
        "CANARY_JUDGE_DATADOG_API_KEY": DD_API_KEY,
        "CANARY_JUDGE_DATADOG_APP_KEY": DD_APP_KEY,
        "CANARY_JUDGE_API_TOKENS": f"admin:{ADMIN},judge:{JUDGE},{LEGACY}",
        "CANARY_JUDGE_LOG_LEVEL": "DEBUG",
        "CANARY_JUDGE_PINNED_NOW": NOW.isoformat(),  # lookback windows end where the data does
    }
    with ServiceProcess(env, work_dir, log_level="info") as process:
        yield process, Calls(process.url), work_dir, closed_port


def _wait(call: Calls, path: str, token: str | None, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = call("GET", path, token=token).json()
        if done(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish")


def _every_door(call: Calls, datadog: FakeDatadog) -> None:
    start, end = (NOW - timedelta(minutes=40)).isoformat(), NOW.isoformat()
    # Configs: native through the header, Kayenta's through the path (admin tokens).
    assert call("POST", "/v1/configs", token=ADMIN, json=NATIVE_CONFIG).status_code == 201
    assert call("PUT", f"/t/{LEGACY}/v1/configs/secrets", json=NATIVE_CONFIG).status_code == 200
    stored = call("POST", f"/t/{ADMIN}/canaryConfig", json=KAYENTA_CONFIG)
    assert stored.status_code == 200, stored.text
    kayenta_id = stored.json()["canaryConfigId"]

    # Argo web provider (header), POST and GET; Datadog echoes its keys once.
    datadog.script(Answer(status=400, body=json.dumps(
        {"errors": [f"query refused for {DD_API_KEY} / {DD_APP_KEY}"]}).encode()))
    argo = call("POST", "/argo/v1/judge", token=JUDGE,
                json={"config": "secrets", "baseline": "v1", "canary": "v2", "lookback": "40m"})
    # The sources here fail (nothing listens, Datadog refuses): an error outcome, 503.
    assert argo.status_code == 503 and argo.json()["verdict"] == "error"
    assert call("GET", "/argo/v1/judge", token=JUDGE,
                params={"config": "secrets", "baseline": "v1", "canary": "v2"}).status_code == 503

    # Native: inline judgment, a background analysis, a sequential run.
    assert call("POST", "/v1/judge", token=JUDGE, json={
        "config": {"metrics": [{"name": "latency"}]}, "baseline": {"latency": [1.0, 2.0]},
        "canary": {"latency": [1.0, 2.0]}}).status_code == 200
    created = call("POST", "/v1/analyses", token=LEGACY, json={
        "config_id": "secrets", "baseline": {"scope": "v1"}, "canary": {"scope": "v2"},
        "start": start, "end": end})
    assert created.status_code == 202, created.text
    _wait(call, f"/v1/analyses/{created.json()['id']}", JUDGE,
          lambda body: body["status"] in ("succeeded", "failed", "error"))
    call("GET", "/v1/analyses", token=JUDGE)
    assert call("POST", "/v1/runs/rollout-1/poll", token=JUDGE, json={
        "config_id": "secrets", "baseline": {"scope": "v1"}, "canary": {"scope": "v2"},
        "lookback": "20m"}).status_code in (200, 504)
    call("GET", "/v1/runs", token=JUDGE)
    call("GET", "/v1/runs/rollout-1", token=JUDGE)
    assert call("DELETE", "/v1/runs/rollout-1", token=JUDGE).status_code == 403
    assert call("DELETE", "/v1/runs/rollout-1", token=ADMIN).status_code == 204

    # Argo's kayenta provider: the token in its address.
    address = f"/t/{JUDGE}"
    listed = call("GET", f"{address}/canaryConfig?application=checkout"
                         "&configurationAccountName=storage")
    assert any(c["id"] == kayenta_id for c in listed.json())
    scope = {"scope": "v1", "region": "", "step": 60, "start": start, "end": end}
    job = call("POST", f"{address}/canary/{kayenta_id}?application=checkout&metricsAccountName="
                       "&configurationAccountName=storage&storageAccountName=storage",
               json={"scopes": {"default": {"controlScope": scope,
                                            "experimentScope": {**scope, "scope": "v2"}}},
                     "thresholds": {"pass": 95, "marginal": 75}})
    assert job.status_code == 200, job.text
    _wait(call, f"{address}/canary/{job.json()['canaryExecutionId']}", None,
          lambda body: body["complete"])
    call("GET", f"{address}/canaryConfig/{kayenta_id}")
    # Kayenta's remote judge: the token in its baseUrl.
    assert call("POST", f"/t/{JUDGE}/judge", json={
        "canaryConfig": KAYENTA_CONFIG,
        "metricSetPairList": [{"name": "latency",
                               "values": {"control": [1.0, 2.0], "experiment": [1.0, 2.0]}}],
    }).status_code == 200

    # Flagger: the token in the webhook's metadata, or in its URL; a sequential run too.
    hook = {"name": "checkout", "namespace": "shop", "phase": "Progressing", "checksum": "c1",
            "metadata": {"token": JUDGE, "config": "secrets", "baseline": "v1",
                         "canary": "v2", "lookback": "20m"}}
    assert call("POST", "/flagger/v1/check", json=hook).status_code not in (401, 403)
    # The URL's token goes first; a metadata.token is then just removed, never read.
    assert call("POST", f"/t/{LEGACY}/flagger/v1/check",
                json={**hook, "metadata": {**hook["metadata"], "token": WRONG}}
                ).status_code not in (401, 403)
    sequential = {**hook, "metadata": {**hook["metadata"], "sequential": "true"}}
    assert call("POST", "/flagger/v1/check", json=sequential).status_code not in (401, 403)
    call("GET", "/v1/runs/shop/checkout/c1", token=JUDGE)

    # Refusals, with wrong tokens in every place a token can be.
    assert call("GET", f"/t/{WRONG}/canaryConfig").status_code == 401
    assert call("GET", "/v1/configs", token=WRONG).status_code == 401
    wrong_hook = {**hook, "metadata": {**hook["metadata"], "token": WRONG}}
    assert call("POST", "/flagger/v1/check", json=wrong_hook).status_code == 401
    assert call("POST", "/argo/v1/judge", token=WRONG, json={"config": "secrets"}).json()[
        "verdict"] == "error"
    assert call("DELETE", f"/t/{JUDGE}/canaryConfig/{kayenta_id}").status_code == 403
    assert call("GET", f"/t/{WRONG}/nowhere").status_code == 401
    # Open routes.
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert call("GET", path).status_code == 200


def test_no_secret_in_any_response_log_line_or_database_file(
    served: tuple[ServiceProcess, Calls, Path, int], datadog: FakeDatadog
) -> None:
    process, call, work_dir, closed_port = served
    _every_door(call, datadog)
    # The sources were really called with the secrets (so there was something to leak).
    assert any(r.headers.get("dd-api-key") == DD_API_KEY for r in datadog.requests)
    process.stop()  # a graceful stop: everything logged and written
    log = (work_dir / "service.log").read_text(errors="replace")
    databases = {f.name: f.read_bytes() for f in work_dir.iterdir()
                 if f.name.startswith("judge.db")}

    # What would have leaked was there: failing fetches naming the URL, access lines, errors.
    everything = "\n".join(body for _what, body in call.bodies)
    assert f"127.0.0.1:{closed_port}" in everything
    assert "proxy refused the credentials" in everything
    assert '"GET /canaryConfig?application=checkout' in log  # uvicorn's access log, path clean
    assert '"POST /flagger/v1/check HTTP/1.1" 401' in log
    assert f"Prometheus at http://127.0.0.1:{closed_port}" in log  # the URL, without its user
    assert any(b"127.0.0.1:%d" % closed_port in data for data in databases.values())
    assert any(b"***" in data for data in databases.values())

    leaks = []
    for secret in SECRETS:
        for spelling in {secret, quote(secret, safe="")}:
            leaks += [f"{secret} in the answer to {what}" for what, body in call.bodies
                      if spelling in body]
            if spelling in log:
                leaks.append(f"{secret} in the log: ...{log[log.index(spelling) - 200:][:300]}")
            leaks += [f"{secret} in {name}" for name, data in databases.items()
                      if spelling.encode() in data]
    assert not leaks, "\n".join(leaks)
