"""PrometheusSource's TLS options against a real Prometheus serving HTTPS, and its auth
headers against a local range-query server that checks them."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from urllib3.exceptions import InsecureRequestWarning

from judge.analysis import analyze
from judge.config import CanaryConfig
from judge.errors import FatalSourceError, SourceAuthError
from judge.ports import FetchedSeries, Scope, ScopePair
from judge.report import Classification
from metricsources.prometheus import PrometheusSource
from tests.support.prometheus import (
    PrometheusServer,
    Sample,
    running_prometheus,
    self_signed_certificate,
)

pytestmark = pytest.mark.prometheus

T0 = (int(time.time()) // 3600) * 3600 - 3 * 3600
START = datetime.fromtimestamp(T0, UTC)
END = START + timedelta(minutes=9)
TOKEN = "prom-token-5f2a9c"
CONFIG = CanaryConfig.model_validate(
    {"metrics": [{"name": "m", "query": {"type": "prometheus",
                                         "promql": 'tls_metric{version="${scope}"}'}}]})


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_prometheus(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[PrometheusServer]:
    samples = [Sample("tls_metric", {"version": "v1"}, T0 + 60 * k, float(k)) for k in range(10)]
    with running_prometheus(samples, tmp_path_factory.mktemp("https"),
                            tls=certificate) as server:
        yield server


def fetch(source: PrometheusSource, scope: str = "v1") -> FetchedSeries:
    window = Scope(scope, start=START, end=END, step=timedelta(minutes=1))
    return asyncio.run(source.fetch(CONFIG.metrics[0], window, CONFIG))


def test_https_with_the_ca_bundle(
    https_prometheus: PrometheusServer, certificate: tuple[Path, Path]
) -> None:
    assert https_prometheus.url.startswith("https://")
    source = PrometheusSource(https_prometheus.url, verify=str(certificate[0]))
    assert fetch(source).series[0].values.tolist() == [float(k) for k in range(10)]
    source.close()


def test_https_without_trust_is_fatal_not_retried(https_prometheus: PrometheusServer) -> None:
    source = PrometheusSource(https_prometheus.url)
    with pytest.raises(FatalSourceError, match=r"TLS with Prometheus .* CERTIFICATE_VERIFY_FAILED"):
        fetch(source)
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v1")), START, END)
    assert report.metric("m").classification is Classification.ERROR
    assert report.details["fetch"]["m"]["baseline"]["attempts"] == 1
    unverified = PrometheusSource(https_prometheus.url, verify=False)
    with pytest.warns(InsecureRequestWarning):
        assert len(fetch(unverified).series) == 1
    source.close()
    unverified.close()


class _AuthChecking(BaseHTTPRequestHandler):
    """Answers range queries only with the bearer token or basic credentials."""

    expected: ClassVar[set[str]] = {f"Bearer {TOKEN}",
                                    "Basic " + base64.b64encode(b"canary:pa55").decode()}
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if self.headers.get("Authorization") not in self.expected:
            status, body = 401, {"status": "error", "errorType": "unauthorized",
                                 "error": "missing or wrong credentials"}
        else:
            status, body = 200, {"status": "success", "data": {"resultType": "matrix",
                                 "result": [{"metric": {}, "values": [
                                     [float(params["start"]), "42"]]}]}}
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def auth_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthChecking)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    _AuthChecking.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bearer_header_and_basic_auth_are_sent(auth_server: str) -> None:
    bearer = PrometheusSource(auth_server, headers={"Authorization": f"Bearer {TOKEN}"})
    # One point answered at the window's start; the other nine grid points are gaps (NaN).
    assert fetch(bearer).series[0].values[0] == 42.0
    basic = PrometheusSource(auth_server, basic_auth=("canary", "pa55"))
    values = fetch(basic).series[0].values
    assert values[0] == 42.0 and values.size == 10
    assert _AuthChecking.seen[0] == f"Bearer {TOKEN}"
    bearer.close()
    basic.close()


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(auth_server: str) -> None:
    in_url = PrometheusSource(auth_server.replace("http://", "http://canary:pa55@"))
    assert fetch(in_url).series[0].values[0] == 42.0
    assert _AuthChecking.seen[-1] == "Basic " + base64.b64encode(b"canary:pa55").decode()
    assert in_url.url == auth_server and "pa55" not in repr(in_url)
    wrong = PrometheusSource(auth_server.replace("http://", "http://canary:wrong-pass-77@"))
    with pytest.raises(SourceAuthError) as caught:
        fetch(wrong)
    assert "wrong-pass-77" not in str(caught.value)
    with pytest.raises(ValueError, match="twice"):
        PrometheusSource(auth_server.replace("http://", "http://a:b@"), basic_auth=("a", "b"))
    in_url.close()
    wrong.close()


def test_refused_credentials_are_fatal_and_never_shown(auth_server: str) -> None:
    wrong = PrometheusSource(auth_server, headers={"Authorization": "Bearer wrong-token-77"})
    with pytest.raises(SourceAuthError, match="HTTP 401: unauthorized") as caught:
        fetch(wrong)
    report = analyze(CONFIG, wrong, ScopePair(Scope("v1"), Scope("v2")), START, END)
    texts = [str(caught.value), repr(wrong), json.dumps(report.to_dict())]
    assert report.metric("m").classification is Classification.ERROR
    assert all("wrong-token-77" not in text for text in texts)
    assert report.details["fetch"]["m"]["canary"]["attempts"] == 1
    wrong.close()
