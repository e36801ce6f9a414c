"""The report pages through the ASGI app in-process (demo source, in-memory SQLite): what each
page shows, in which order, escaped; the plots; the login cookie; ``report_url`` on every door.

The browser test (a real Chromium loading the pages of a real server) is
``tests/integration/test_report_pages_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from markupsafe import escape

from judge.api.app import create_app
from judge.api.auth import COOKIE_NAME
from judge.api.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MIXED = yaml.safe_load((FIXTURES / "configs" / "report-mixed.yaml").read_text())
HTML_NAME = MIXED["metrics"][0]["name"]
EXTERNAL = "https://judge.example.com/canary"
# A fixed window: the demo source's series depend only on it (no wall clock in the verdicts).
WINDOW = {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z"}
JUDGE_TOKEN = "judge-token-pages-1"


def _app(**settings: Any) -> Any:
    return create_app(Settings(database_url="sqlite://", log_json=False, **settings))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app(external_url=EXTERNAL)) as test_client:
        yield test_client


def _local(url: str) -> str:
    assert url.startswith(EXTERNAL + "/ui/"), url
    return url[len(EXTERNAL):]


def _judge(client: TestClient, canary: str, config: Any = "demo", **extra: Any) -> Any:
    answer = client.post("/argo/v1/judge", json={"config": config, "baseline": "stable",
                                                 "canary": canary, **WINDOW, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _rows(html: str) -> list[str]:
    """The metric names of a report page's table, in order (as the page escapes them)."""
    return re.findall(r'<tr class="metric-row[^"]*" data-metric="([^"]*)"', html)


# -- report_url on every door --------------------------------------------------------------------
def test_every_door_answers_with_its_report_page(client: TestClient) -> None:
    argo = _judge(client, "canary-bad")
    assert argo["report_url"] == f"{EXTERNAL}/ui/analyses/{argo['analysis_id']}"

    run = _judge(client, "canary-good", run_id="rollout-a/7")
    assert run["report_url"] == f"{EXTERNAL}/ui/runs/rollout-a/7"

    flagger = client.post("/flagger/v1/check", json={
        "name": "podinfo", "namespace": "test", "phase": "Progressing",
        "metadata": {"config": "demo", "baseline": "stable", "canary": "canary-good"},
    }).json()
    assert flagger["report_url"] == f"{EXTERNAL}/ui/analyses/{flagger['analysis_id']}"

    started = client.post("/v1/analyses", json={
        "config_id": "demo", "baseline": {"scope": "stable"}, "canary": {"scope": "canary-good"},
        **WINDOW,
    }).json()
    assert started["report_url"] == f"{EXTERNAL}/ui/analyses/{started['id']}"
    assert client.get(f"/v1/analyses/{started['id']}").json()["report_url"] == \
        started["report_url"]
    listed = client.get("/v1/analyses").json()
    assert all(a["report_url"] == f"{EXTERNAL}/ui/analyses/{a['id']}" for a in listed)
    polled = client.post("/v1/runs/native-run/poll", json={
        "config_id": "demo", "baseline": {"scope": "stable"}, "canary": {"scope": "canary-good"},
        **WINDOW,
    }).json()
    assert polled["report_url"] == f"{EXTERNAL}/ui/runs/native-run"
    assert client.get("/v1/runs/rollout-a/7").json()["report_url"] == run["report_url"]

    execution = client.post("/canary/demo-kayenta", json={"scopes": {"default": {
        "controlScope": {"scope": "stable", **WINDOW, "step": 60},
        "experimentScope": {"scope": "canary-bad", **WINDOW, "step": 60},
    }}}).json()
    page = f"{EXTERNAL}/ui/analyses/{execution['canaryExecutionId']}"
    assert execution["report_url"] == page
    status = _wait_for_execution(client, execution["canaryExecutionId"])
    # Argo's kayenta provider reads result.judgeResult.score.score and ignores the rest.
    assert status["report_url"] == page and status["result"]["report_url"] == page
    assert status["result"]["judgeResult"]["score"]["score"] < 75


def _wait_for_execution(client: TestClient, execution_id: str) -> Any:
    """Kayenta's executions run in the background; a generous bound for a loaded machine."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.get(f"/canary/{execution_id}").json()
        if status["complete"]:
            return status
        time.sleep(0.05)
    raise AssertionError("execution did not complete within 120 s")


def test_without_an_external_url_links_use_the_address_asked() -> None:
    with TestClient(_app(), base_url="http://canary-judge.internal:8080") as plain:
        answer = plain.post("/argo/v1/judge", json={"config": "demo", "baseline": "stable",
                                                    "canary": "canary-good", **WINDOW}).json()
    assert answer["report_url"] == \
        f"http://canary-judge.internal:8080/ui/analyses/{answer['analysis_id']}"


def test_the_external_url_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="external_url"):
        Settings(external_url="judge.example.com")


# -- an analysis page -------------------------------------------------------------------------
def test_a_failing_analysis_page_shows_the_verdict_why_and_the_failing_metric_first(
    client: TestClient,
) -> None:
    answer = _judge(client, "canary-bad", config=MIXED)
    assert answer["verdict"] == "fail" and answer["failed_metrics"] == ["errors"]
    page = client.get(_local(answer["report_url"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    html = page.text
    assert 'data-verdict="fail"' in html and "score 70" in html
    assert str(escape(answer["reason"])) in html  # the deciding rule, in words
    # Failing first, then the critical metric, then the rest in report order.
    escaped = 'latency &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; p99'
    assert _rows(html) == ["errors", "cpu", escaped, "requests"]
    assert "<script" not in html  # user input is text, never markup
    assert 'class="tag critical"' in html
    # Groups with their weights; units and the allowed change per metric.
    assert re.search(r"<td>errors</td><td>30</td><td>0</td>", html)
    assert "errors/min" in html and "up to mean ratio 1.1" in html
    # Every metric links its plots.
    plots = re.findall(r'<img class="plot" src="([^"]+)"', html)
    assert len(plots) == 4 and all(p.startswith(EXTERNAL) for p in plots)


def test_each_metric_plot_is_an_svg_with_both_sides_and_escaped_text(client: TestClient) -> None:
    answer = _judge(client, "canary-bad", config=MIXED)
    page = _local(answer["report_url"])
    index = next(i for i, m in enumerate(answer["metrics"]) if m["name"] == HTML_NAME)
    svg = client.get(f"{page}/plots/{index}.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    text = svg.text
    assert text.count("<svg") == 1 and "<path" in text
    assert "<script" not in text  # the metric name is drawn as paths; comments escaped
    # Baseline and canary in their colours, the allowed change shaded, units on the axes.
    assert "#4c72b0" in text and "#dd8452" in text and "#55a868" in text
    assert "ms" in text and "time (UTC)" in text
    assert client.get(f"{page}/plots/{len(answer['metrics'])}.svg").status_code == 404
    assert client.get("/ui/analyses/nope/plots/0.svg").status_code == 404


def test_a_page_for_an_unknown_analysis_is_a_404_page(client: TestClient) -> None:
    page = client.get("/ui/analyses/no-such-analysis")
    assert page.status_code == 404 and "no analysis with id" in page.text


# -- sequential runs ---------------------------------------------------------------------------
def test_a_run_page_shows_its_polls_and_the_evidence_over_them(client: TestClient) -> None:
    run_id = "payments/canary/abc"
    starts = ["2026-12-01T10:00:00Z"]
    statuses = []
    for minutes in (20, 40, 60, 80):
        end = f"2026-12-01T{10 + minutes // 60}:{minutes % 60:02d}:00Z"
        answer = client.post("/argo/v1/judge", json={
            "config": "demo", "baseline": "stable", "canary": "canary-bad",
            "run_id": run_id, "start": starts[0], "end": end,
        }).json()
        statuses.append(answer["status"])
    assert statuses[-1] == "fail"
    html = client.get(_local(answer["report_url"])).text
    assert re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td>", html) == [
        (str(call), status) for call, status in enumerate(statuses, start=1)
    ]
    plot = re.findall(r'<img class="plot" src="([^"]+)"', html)[0]
    svg = client.get(_local(plot.replace("&amp;", "&"))).text
    assert "<path" in svg
    listed = client.get("/ui/runs", params={"verdict": "fail"}).text
    assert "payments/canary/abc" in listed


# -- lists ---------------------------------------------------------------------------------------
def test_the_analyses_list_filters_and_pages() -> None:
    with TestClient(_app()) as fresh:
        for canary in ("canary-good", "canary-bad", "canary-bad"):
            _judge(fresh, canary)
        _judge(fresh, "canary-bad", config=MIXED)
        everything = fresh.get("/ui/analyses").text
        assert everything.count('data-id="') == 4
        failed = fresh.get("/ui/analyses", params={"verdict": "fail"}).text
        assert failed.count('data-id="') == 3 and 'class="verdict-pass"' not in failed
        mixed = fresh.get("/ui/analyses", params={"config": "report-mixed"}).text
        assert mixed.count('data-id="') == 1
        later = fresh.get("/ui/analyses", params={"since": "2999-01-01T00:00"}).text
        assert 'data-id="' not in later and "Nothing matches" in later
        first = fresh.get("/ui/analyses", params={"limit": 3}).text
        assert first.count('data-id="') == 3 and 'rel="next"' in first
        second = fresh.get("/ui/analyses", params={"limit": 3, "page": 2}).text
        assert second.count('data-id="') == 1 and 'rel="prev"' in second
        # Newest first: the mixed config's analysis was the last one.
        assert re.search(r'data-id="[^"]+">\s*<td><a [^>]+>[^<]+</a></td>\s*<td>report-mixed',
                         first)
        assert fresh.get("/ui/analyses", params={"since": "yesterday"}).status_code == 400


# -- configs -------------------------------------------------------------------------------------
def test_the_config_page_shows_versions_and_the_diff(client: TestClient) -> None:
    config = dict(MIXED, name="report-versions")
    stored = client.post("/v1/configs", json=config).json()
    changed = dict(config, thresholds={"pass": 90, "marginal": 70})
    assert client.put(f"/v1/configs/{stored['id']}", json=changed).status_code == 200
    html = client.get(f"/ui/configs/{stored['id']}").text
    assert "version 2" in html and '<a href="?version=1">1</a>' in html
    assert '<span class="removed">-  pass: 95.0</span>' in html
    assert '<span class="added">+  pass: 90.0</span>' in html
    assert "&lt;script&gt;" in html and "<script" not in html
    first = client.get(f"/ui/configs/{stored['id']}", params={"version": 1}).text
    assert "pass: 95.0" in first and 'id="diff"' not in first
    assert "report-versions" in client.get("/ui/configs").text


# -- authentication ------------------------------------------------------------------------------
def test_pages_need_a_token_and_a_browser_logs_in_with_a_cookie() -> None:
    with TestClient(_app(api_tokens=f"judge:{JUDGE_TOKEN}")) as secured:
        refused = secured.get("/ui/analyses")
        assert refused.status_code == 401
        assert 'action="/ui/login"' in refused.text and 'value="/ui/analyses"' in refused.text
        wrong = secured.post("/ui/login", data={"token": "guess", "next": "/ui/runs"})
        assert wrong.status_code == 401 and "invalid API token" in wrong.text
        assert COOKIE_NAME not in secured.cookies
        empty = secured.post("/ui/login", data={"token": ""})
        assert empty.status_code == 400

        logged = secured.post("/ui/login", data={"token": JUDGE_TOKEN, "next": "/ui/runs"},
                              follow_redirects=False)
        assert logged.status_code == 303 and logged.headers["location"].endswith("/ui/runs")
        cookie = logged.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert secured.get("/ui/analyses").status_code == 200
        # The cookie opens the pages only: the API still wants the header (no CSRF).
        assert secured.get("/v1/analyses").status_code == 401
        # Elsewhere after logging in: never another site.
        away = secured.post("/ui/login", data={"token": JUDGE_TOKEN,
                                               "next": "//evil.example/ui/x"},
                            follow_redirects=False)
        assert away.headers["location"].endswith("/ui/analyses")

        secured.post("/ui/logout")
        assert secured.get("/ui/analyses").status_code == 401
        # A header works on the pages too (scripts fetching a page).
        with_header = secured.get("/ui/analyses",
                                  headers={"Authorization": f"Bearer {JUDGE_TOKEN}"})
        assert with_header.status_code == 200
