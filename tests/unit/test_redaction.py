"""judge.redaction at each edge: text and JSON, log records (ours and uvicorn's), response
bodies, database writes; and the sources' URLs without their credentials."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from uvicorn.logging import AccessFormatter

from judge.api.settings import Settings
from judge.api.store import Store, StoredRun
from judge.api.telemetry import JsonFormatter
from judge.redaction import (
    RedactingFilter,
    Redactor,
    RedactResponses,
    redact_url,
    split_userinfo,
)
from metricsources.datadog import DatadogSource
from metricsources.prometheus import PrometheusSource

SECRET = 'tok-"quoted"/and@more'
redactor = Redactor([SECRET, "pass-w0rd", "abc"])


def test_known_values_in_every_spelling_and_secret_shapes() -> None:
    from urllib.parse import quote

    assert redactor.text(f"a {SECRET} b") == "a *** b"
    assert redactor.text(f"a {quote(SECRET, safe='')} b") == "a *** b"
    escaped = json.dumps({"x": f"with {SECRET}"})
    assert json.loads(redactor.text(escaped)) == {"x": "with ***"}
    assert redactor.text("http://user:pass-w0rd@prom:9090/api") == "http://***@prom:9090/api"
    assert redactor.text("see https://anyone:else@host/x and ftp://u@h") == (
        "see https://***@host/x and ftp://***@h"
    )
    assert redactor.text("Authorization: Bearer eyJhbGciOi.x-y") == "Authorization: Bearer ***"
    assert redactor.text("Basic dXNlcjpwYXNz") == "Basic ***"
    assert redactor.text("authorization: bearer deadbeef0042") == "authorization: bearer ***"
    for words in ("basic statistics", "Basic Statistics", "the bearer of news"):
        assert redactor.text(words) == words
    # Too short to search for as a value (it would mask words); shapes still apply.
    assert redactor.text("abc def") == "abc def"
    assert redactor.text("missing or invalid bearer token") == "missing or invalid bearer token"
    assert redactor.text("mailto:someone@example.com, user@host") == (
        "mailto:someone@example.com, user@host"
    )


def test_json_values_are_redacted_and_untouched_ones_kept() -> None:
    clean = {"a": [1, 2.5, None, "x"], "b": {"c": "d"}}
    assert redactor.value(clean) is clean
    dirty = {"reason": ["cannot connect to http://u:pass-w0rd@h:1", 5], SECRET: "k"}
    assert redactor.value(dirty) == {"reason": ["cannot connect to http://***@h:1", 5],
                                     "***": "k"}
    assert redactor.data(json.dumps(dirty).encode()).count(b"***") == 2
    assert json.loads(redactor.data(json.dumps(dirty).encode()))  # still valid JSON


def test_urls_lose_their_credentials() -> None:
    assert split_userinfo("http://u:p%40ss@h:9/x?q=1") == ("http://h:9/x?q=1", ("u", "p@ss"))
    assert split_userinfo("http://h:9") == ("http://h:9", None)
    assert redact_url("https://u:p@h/x") == "https://***@h/x"
    prometheus = PrometheusSource("http://reader:pass-w0rd@127.0.0.1:1")
    assert prometheus.url == "http://127.0.0.1:1" and "pass-w0rd" not in repr(prometheus)
    prometheus.close()
    datadog = DatadogSource(api_key="k", application_key="a",
                            site="https://proxy:pass-w0rd@dd.example")
    assert datadog.site == "https://dd.example" and "pass-w0rd" not in repr(datadog)


def test_settings_name_their_secret_values() -> None:
    settings = Settings(
        api_tokens="judge:judge-secret,admin-bare-secret",
        prometheus_url="http://u:prom-secret@prom:9090",
        datadog_url="https://api.datadoghq.com",
        datadog_api_key="dd-api-secret",
        datadog_app_key="dd-app-secret",
        sources={"other": {"type": "prometheus", "url": "http://p", "bearer_token": "bt-secret"}},
        database_url="postgresql://judge:db-secret@db/judge",
    )
    assert set(settings.secret_values()) == {
        "judge-secret", "admin-bare-secret", "prom-secret", "dd-api-secret", "dd-app-secret",
        "bt-secret", "db-secret",
    }


def _record(msg: str, args: Any = None, **extra: Any) -> logging.LogRecord:
    record = logging.makeLogRecord({"msg": msg, "args": args, "levelname": "WARNING",
                                    "name": "judge.test", **extra})
    return record


def test_log_records_are_redacted_whole() -> None:
    redacting = RedactingFilter(redactor)
    record = _record("failed: %s", (f"http://u:pass-w0rd@h {SECRET}",), error=f"x {SECRET}")
    try:
        raise RuntimeError(f"boom {SECRET}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert redacting.filter(record)
    line = JsonFormatter().format(record)
    assert SECRET not in line and "pass-w0rd" not in line
    assert json.loads(line)["error"] == "x ***"
    assert "boom ***" in json.loads(line)["exception"]
    # uvicorn's access formatter unpacks the arguments: they stay a tuple.
    access = _record('%s - "%s %s HTTP/%s" %d',
                     ("127.0.0.1:5", "GET", f"/x?t={SECRET}", "1.1", 200))
    redacting.filter(access)
    formatted = AccessFormatter(fmt="%(client_addr)s %(request_line)s %(status_code)s",
                                use_colors=False).format(access)
    assert formatted == "127.0.0.1:5 GET /x?t=*** HTTP/1.1 200 OK"


def test_response_bodies_are_redacted_and_their_length_corrected() -> None:
    body = json.dumps({"error": f"Prometheus at http://u:pass-w0rd@h said {SECRET}"}).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    asyncio.run(RedactResponses(app, redactor)({"type": "http"}, receive, send))
    start, whole = sent
    out = whole["body"]
    assert json.loads(out) == {"error": "Prometheus at http://***@h said ***"}
    assert dict(start["headers"])[b"content-length"] == str(len(out)).encode()


def test_nothing_secret_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "judge.db"
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    store.add_write_filter(redactor.text)
    leak = f"cannot connect to http://u:pass-w0rd@h:9 ({SECRET})"
    analysis = store.create_analysis(kind="native", config={"name": SECRET},
                                     request={"extra": {"note": leak}})
    store.mark_failed(analysis.id, leak)
    moment = datetime(2024, 3, 4, 10, tzinfo=UTC)
    run = StoredRun(run_id="r", kind="argo", config_id=None, config_version=None,
                    config={}, request={"x": leak}, state="{}", status="continue", calls=1,
                    window_start=moment, last_end=moment, report={"reason": leak},
                    created_at=moment, updated_at=moment)
    store.save_run(run, previous_calls=0)  # an INSERT
    store.save_run(StoredRun(**{**vars(run), "calls": 2}), previous_calls=1)  # a core UPDATE
    stored = store.get_analysis(analysis.id)
    assert stored.error == "cannot connect to http://***@h:9 (***)"
    assert stored.config == {"name": "***"}
    assert store.get_run("r").report == {"reason": "cannot connect to http://***@h:9 (***)"}
    store.close()
    for file in tmp_path.iterdir():
        data = file.read_bytes()
        assert b"pass-w0rd" not in data and SECRET.encode() not in data, file.name
        assert json.dumps(SECRET)[1:-1].encode() not in data


@pytest.mark.parametrize("length", [5, 6])
def test_minimum_secret_length(length: int) -> None:
    value = "q" * length
    hidden = Redactor([value]).text(f"x {value} y")
    assert (hidden == "x *** y") == (length >= 6)
