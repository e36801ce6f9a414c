"""Every route needs what ``judge.api.auth.ROUTE_ACCESS`` says, on every door, and nothing else
answers without a token.

The walk goes over the app's own route list (included routers expanded) and its OpenAPI
document, so a route added without a line in the table is probed too (and needs ``admin``).
The controllers' ways of presenting a token are exercised as each controller builds its
requests: Argo's kayenta provider appends paths to its ``address``, Kayenta's remote judge to
its ``baseUrl``, Flagger posts its webhook ``metadata``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from judge.api import auth
from judge.api.app import create_app
from judge.api.auth import ADMIN, JUDGE, OPEN, ROUTE_ACCESS, Access, flat_routes, openapi_path
from judge.api.settings import Settings
from tests.support.clock import service_settings

ROOT = Path(__file__).resolve().parents[2]

JUDGE_TOKEN = "judge-token-5f1c"
ADMIN_TOKEN = "admin-token-9a7e"
LEGACY_TOKEN = "legacy-token-c3d2"  # a bare token: the format from before scopes (= admin)
TOKENS = f"judge:{JUDGE_TOKEN}, admin:{ADMIN_TOKEN}, {LEGACY_TOKEN}"

MAY_BE_OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
               "/docs/oauth2-redirect", "/redoc", "/ui/login", "/ui/logout"}
"""The ceiling of what may answer without a token: health, readiness, metrics, API docs, and
the report pages' login form (a browser has no token until it logs in)."""


def _app(**settings: Any) -> FastAPI:
    return create_app(service_settings(**settings))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app(api_tokens=TOKENS)) as test_client:
        yield test_client


def _operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path as OpenAPI writes it) of every route the app serves."""
    found = set()
    for route in flat_routes(app.routes):
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, openapi_path(route.path)))
    return found


def _openapi_operations(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
    }


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "demo", path)


def _call(client: TestClient, method: str, path: str, prefix: str = "",
          headers: dict[str, str] | None = None) -> Any:
    params = {"config": "demo"} if path == "/argo/v1/judge" else None
    body = {} if method in ("POST", "PUT") else None
    return client.request(method, prefix + _url(path), params=params, json=body,
                          headers=headers or {})


def _refused(answer: Any, path: str, status: int = 401) -> bool:
    if path.startswith("/argo/"):  # Argo's shape, with the refusal's status (an Error)
        body = answer.json()
        return bool(answer.status_code == status and body["verdict"] == "error"
                    and "token" in body["error"])
    return bool(answer.status_code == status)


def test_the_access_table_covers_exactly_the_apps_routes() -> None:
    app = _app(api_tokens=TOKENS)
    served = _operations(app)
    table = set(ROUTE_ACCESS)
    assert served == table, (
        f"routes without a line in judge.api.auth.ROUTE_ACCESS: {sorted(served - table)}; "
        f"lines for routes that do not exist: {sorted(table - served)}"
    )
    assert _openapi_operations(app) <= served
    opened = {path for (_method, path), access in ROUTE_ACCESS.items() if access is OPEN}
    assert opened <= MAY_BE_OPEN


def test_no_route_answers_without_a_valid_token(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    operations = _operations(app) | _openapi_operations(app)
    holes = []
    for method, path in sorted(operations):
        need = auth.required_access(method, path)
        attempts: list[tuple[str, str, dict[str, str]]] = [
            ("no credentials", "", {}),
            ("wrong bearer", "", {"Authorization": "Bearer not-a-token"}),
            ("token with another scheme", "", {"Authorization": f"Basic {ADMIN_TOKEN}"}),
            ("wrong path token", "/t/not-a-token", {}),
        ]
        for what, prefix, headers in attempts:
            answer = _call(client, method, path, prefix, headers)
            if need is OPEN:
                if answer.status_code in (401, 403):
                    holes.append(f"{method} {path} ({what}): open route refused")
            elif not _refused(answer, path):
                holes.append(f"{method} {path} ({what}): answered {answer.status_code} "
                             f"{answer.text[:120]}")
        # A token in the query string is not a way in.
        if need is not OPEN:
            answer = client.request(method, _url(path), params={"token": ADMIN_TOKEN})
            if not _refused(answer, path):
                holes.append(f"{method} {path} (query token): answered {answer.status_code}")
    assert not holes, "\n".join(holes)


@pytest.mark.parametrize("how", ["header", "path"])
def test_scopes_on_every_route(how: str) -> None:
    with TestClient(_app(api_tokens=TOKENS)) as client:  # its own: admin calls delete things
        _check_scopes(client, how)


def _check_scopes(client: TestClient, how: str) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    wrong = []
    for method, path in sorted(_operations(app)):
        need = ROUTE_ACCESS[(method, path)]
        for token, granted in ((JUDGE_TOKEN, JUDGE), (ADMIN_TOKEN, ADMIN),
                               (LEGACY_TOKEN, ADMIN)):
            if how == "header":
                answer = _call(client, method, path, headers={"Authorization": f"Bearer {token}"})
            else:
                answer = _call(client, method, path, prefix=f"/t/{token}")
            refused = answer.status_code in (401, 403) or (
                path.startswith("/argo/") and "token" in (answer.json().get("error") or "")
            )
            should_refuse = need is ADMIN and granted is not ADMIN
            if refused != should_refuse:
                wrong.append(f"{method} {path} with a {granted.value} token ({how}): "
                             f"{answer.status_code} {answer.text[:120]}")
            if should_refuse and answer.status_code != 403:
                wrong.append(f"{method} {path}: {answer.status_code}, not 403, for a judge token")
    assert not wrong, "\n".join(wrong)


def test_refusals_do_not_echo_the_presented_token(client: TestClient) -> None:
    for prefix, headers in (("/t/guess-abc-123", {}),
                            ("", {"Authorization": "Bearer guess-abc-123"})):
        for path in ("/v1/configs", "/canaryConfig", "/argo/v1/judge"):
            answer = client.get(prefix + path, headers=headers)
            assert "guess-abc-123" not in answer.text
            if path == "/canaryConfig":  # Spring's error shape names the path, without /t/...
                assert answer.json()["path"] == "/canaryConfig"


def test_the_path_token_is_gone_before_anything_logs_the_path() -> None:
    # uvicorn's access log reads the request's scope after the app answered.
    app = _app(api_tokens=TOKENS)
    seen: list[tuple[str, bytes]] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http":
            seen.append((scope["path"], scope["raw_path"]))

    with TestClient(spy) as client:  # type: ignore[arg-type]
        assert client.get(f"/t/{JUDGE_TOKEN}/v1/configs/demo").status_code == 200
        assert client.get("/t/wrong-guess/v1/configs").status_code == 401
    assert seen == [("/v1/configs/demo", b"/v1/configs/demo"), ("/v1/configs", b"/v1/configs")]


def test_tokens_with_reserved_characters_go_percent_encoded_in_the_path() -> None:
    token = "a+b/c=d"
    with TestClient(_app(api_tokens=f"judge:{token}")) as client:
        assert client.get(f"/t/{quote(token, safe='')}/v1/configs").status_code == 200
        assert client.get(f"/t/{token}/v1/configs").status_code == 401


# -- how each controller builds its requests ----------------------------------------------------
def _scope(scope: str, start: datetime, end: datetime) -> dict[str, Any]:
    # What Argo marshals from the template's Go struct: "" and 0 for what is not set.
    return {"scope": scope, "region": "", "step": 60, "start": start.isoformat(),
            "end": end.isoformat()}


def test_argo_kayenta_provider_with_the_token_in_its_address(client: TestClient) -> None:
    # Argo's kayenta provider (metricproviders/kayenta/kayenta.go) formats its URLs as
    # "%s/canaryConfig?application=%s&configurationAccountName=%s",
    # "%s/canary/%s?application=%s&metricsAccountName=%s&configurationAccountName=%s&
    # storageAccountName=%s" and "%s/canary/%s", with the template's address first.
    address = f"http://testserver/t/{JUDGE_TOKEN}"
    application, metrics_account, storage = "shop", "demo", "storage"
    listed = client.get(
        f"{address}/canaryConfig?application={application}&configurationAccountName={storage}"
    )
    assert listed.status_code == 200
    config_id = next(c["id"] for c in listed.json() if c["name"] == "demo-kayenta")
    end = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    start = end - timedelta(hours=1)
    job = client.post(
        f"{address}/canary/{config_id}?application={application}&metricsAccountName="
        f"{metrics_account}&configurationAccountName={storage}&storageAccountName={storage}",
        json={"scopes": {"default": {"controlScope": _scope("baseline", start, end),
                                     "experimentScope": _scope("canary-good", start, end)}},
              "thresholds": {"pass": 95, "marginal": 75}},
    )
    assert job.status_code == 200, job.text
    execution_id = job.json()["canaryExecutionId"]
    deadline = time.monotonic() + 60  # reached only when the test fails: load-proof
    while time.monotonic() < deadline:
        status = client.get(f"{address}/canary/{execution_id}")
        assert status.status_code == 200
        if status.json()["complete"]:
            break
        time.sleep(0.05)
    assert status.json()["result"]["judgeResult"]["score"]["score"] >= 0
    # The same address without the token: the provider records an Error measurement.
    assert client.get("http://testserver/canaryConfig?application=shop").status_code == 401


def test_kayenta_remote_judge_with_the_token_in_its_base_url(client: TestClient) -> None:
    # Kayenta's RetrofitClientFactory drops a trailing "/" from baseUrl; Retrofit 1 then
    # appends the service's "/judge".
    base_url = f"http://testserver/t/{JUDGE_TOKEN}/".rstrip("/")
    body = {
        "canaryConfig": {
            "name": "remote",
            "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
            "metrics": [{"name": "latency", "query": {"type": "prometheus", "metricName": "m"},
                         "groups": ["g"], "scopeName": "default",
                         "analysisConfigurations": {"canary": {"direction": "increase"}}}],
            "classifier": {"groupWeights": {"g": 100}},
        },
        "metricSetPairList": [{"name": "latency", "values": {"control": [1.0, 2.0, 3.0],
                                                             "experiment": [1.0, 2.0, 3.0]}}],
    }
    assert client.post(f"{base_url}/judge", json=body).status_code == 200
    assert client.post("http://testserver/judge", json=body).status_code == 401


def _flagger_payload(metadata: dict[str, Any]) -> dict[str, Any]:
    # What Flagger posts to a webhook (pkg/controller/webhook.go): its metadata as given.
    return {"name": "checkout", "namespace": "shop", "phase": "Progressing",
            "checksum": "abc", "metadata": metadata}


def test_flagger_with_the_token_in_its_metadata_or_url(client: TestClient) -> None:
    meta = {"config": "demo", "baseline": "stable", "canary": "canary-good"}
    by_metadata = client.post("/flagger/v1/check",
                              json=_flagger_payload({**meta, "token": JUDGE_TOKEN}))
    assert by_metadata.status_code in (200, 412), by_metadata.text
    assert by_metadata.json()["verdict"] in ("pass", "marginal")
    by_url = client.post(f"/t/{JUDGE_TOKEN}/flagger/v1/check", json=_flagger_payload(meta))
    assert by_url.status_code in (200, 412) and "verdict" in by_url.json()
    for refused in ({**meta, "token": "wrong"}, {**meta, "token": 5}, meta):
        answer = client.post("/flagger/v1/check", json=_flagger_payload(refused))
        assert answer.status_code == 401  # a failed check for Flagger, with the reason
        assert "metadata.token" in answer.json()["error"]
    # The first credential present decides: a header goes before the metadata.
    header_first = client.post(
        "/flagger/v1/check", json=_flagger_payload({**meta, "token": JUDGE_TOKEN}),
        headers={"Authorization": "Bearer wrong"},
    )
    assert header_first.status_code == 401


def test_the_flagger_example_authenticates_with_its_metadata() -> None:
    (canary,) = [d for d in yaml.safe_load_all((ROOT / "examples/flagger/canary.yaml").read_text())
                 if d]
    hooks = canary["spec"]["analysis"]["webhooks"]
    with TestClient(_app(api_tokens=TOKENS)) as client:
        for hook in hooks:
            assert "token" in hook["metadata"]
            # The config "checkout" is not stored here: a 400 says so, past authentication.
            metadata = {**hook["metadata"], "token": JUDGE_TOKEN}
            answer = client.post(hook["url"].replace(
                "http://canary-judge.canary-judge.svc.cluster.local:8080", ""),
                json=_flagger_payload(metadata))
            assert answer.status_code == 400
            assert "checkout" in answer.json()["error"]


def test_without_tokens_the_path_prefix_and_metadata_token_are_ignored() -> None:
    with TestClient(_app()) as client:
        meta = {"config": "demo", "baseline": "stable", "canary": "canary-good",
                "token": "anything"}
        # Past authentication: judged (the demo canary's verdict on a wall-clock window is not
        # this test's business; 412 is a judged "not a pass", never an auth refusal).
        judged = client.post("/flagger/v1/check", json=_flagger_payload(meta))
        assert judged.status_code in (200, 412) and judged.json()["verdict"] in ("pass",
                                                                                 "marginal")
        assert client.get("/t/anything/v1/configs/demo").status_code == 200


def test_flagger_bodies_above_the_limit_are_refused_before_they_are_read() -> None:
    with TestClient(_app(api_tokens=TOKENS, max_request_bytes=200)) as client:
        meta = {"config": "demo", "token": JUDGE_TOKEN, "canary": "x" * 300}
        assert client.post("/flagger/v1/check", json=_flagger_payload(meta)).status_code == 413


# -- tokens ------------------------------------------------------------------------------------
def test_token_entries_and_their_scopes() -> None:
    tokens = auth.parse_tokens(["judge:j1", "admin:a1", "bare", "admin:with:colons"])
    assert [t.scope for t in tokens] == [JUDGE, ADMIN, ADMIN, ADMIN]
    assert tokens[3].digest == auth.parse_tokens(["admin:with:colons"])[0].digest
    for bad, reason in (("admn:secret-value", "unknown scope"), ("judge:", "empty"),
                        ("judge:same,admin:same", "repeats")):
        with pytest.raises(ValueError, match=reason) as error:
            auth.parse_tokens(bad.split(","))
        assert "secret-value" not in str(error.value) and "same" not in str(error.value)


def test_a_bad_token_entry_stops_startup_without_showing_it() -> None:
    with pytest.raises(ValidationError) as error:
        Settings(api_tokens="admn:do-not-print-me")
    assert "do-not-print-me" not in str(error.value)
    assert "unknown scope" in str(error.value)


def test_every_configured_token_is_compared_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    guard = auth.AuthMiddleware(
        lambda *_: None,  # type: ignore[arg-type,return-value]
        tokens=["judge:first", "admin:second", "third"], max_body_bytes=1,
        group_of=lambda _p: "native", reject=lambda _p, s, m: (s, m),
    )
    for presented, expected in (("first", JUDGE), ("third", ADMIN), ("x" * 500, None)):
        calls.clear()
        assert guard._scope_of(presented) == expected
        assert calls == [(32, 32)] * 3  # all tokens, equal-length digests


# -- documentation -----------------------------------------------------------------------------
def test_openapi_says_what_each_operation_needs() -> None:
    enforced = _app(api_tokens=TOKENS).openapi()
    assert enforced["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in enforced["paths"].items():
        for method, operation in item.items():
            access = ROUTE_ACCESS[(method.upper(), path)]
            assert operation["x-access"] == access.value
            assert bool(operation.get("security")) == (access is not OPEN)
            if access is ADMIN:
                assert "403" in operation["responses"]
    unenforced = _app().openapi()
    assert "securitySchemes" not in unenforced.get("components", {})
    assert all("security" not in op for item in unenforced["paths"].values()
               for op in item.values())


def test_the_route_table_in_the_docs_is_the_access_table() -> None:
    text = (ROOT / "docs" / "service.md").read_text()
    section = text.split("### What each route needs", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([A-Z]+) ([^`]+)` \| (open|judge|admin) \|", section, re.MULTILINE)
    documented = {(method, path): Access(access) for method, path, access in rows}
    assert documented == ROUTE_ACCESS
