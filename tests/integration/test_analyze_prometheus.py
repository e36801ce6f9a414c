"""End to end: ``judge.analyze(config, source, scopes, start, end, step)`` against a real
Prometheus holding a baseline (v1), a good canary (v2) and a bad canary (v3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from judge import analyze
from judge.config import CanaryConfig
from judge.ports import Scope, ScopePair
from judge.report import Classification, Verdict
from metricsources.prometheus import PrometheusSource
from tests.support.prometheus import PrometheusServer, Sample, running_prometheus

pytestmark = pytest.mark.prometheus

T0 = (int(time.time()) // 3600) * 3600 - 2 * 3600
START = datetime.fromtimestamp(T0, UTC)
END = START + timedelta(minutes=59)
STEP = timedelta(minutes=1)

CONFIG = CanaryConfig.model_validate({
    "name": "checkout",
    "thresholds": {"pass": 95, "marginal": 75},
    "templates": {"by-version": 'service="checkout",version="${scope}"'},
    "metrics": [
        {"name": "latency", "direction": "increase", "groups": ["latency"],
         "query": {"type": "prometheus", "metricName": "http_latency_ms",
                   "customFilterTemplate": "by-version"}},
        {"name": "errors", "direction": "increase", "groups": ["errors"],
         "query": {"type": "prometheus",
                   "promql": 'sum(http_errors{service="checkout",version="${scope}"})'}},
        {"name": "cpu", "direction": "increase", "groups": ["saturation"],
         "query": {"type": "prometheus", "metricName": "cpu_seconds",
                   "customFilterTemplate": "by-version", "groupByFields": ["pod_role"]}},
    ],
})


def samples() -> Iterator[Sample]:
    rng = np.random.default_rng(20240501)
    # (latency mean, errors per minute, cpu) per version: v3 is 40% slower with 4x the errors.
    profiles = {"v1": (100.0, 2.0, 0.5), "v2": (100.0, 2.0, 0.5), "v3": (140.0, 8.0, 0.5)}
    for version, (latency, errors, cpu) in profiles.items():
        labels = {"service": "checkout", "version": version}
        for k in range(60):
            at = T0 + 60 * k
            yield Sample("http_latency_ms", labels, at, float(rng.normal(latency, 5.0)))
            yield Sample("http_errors", labels, at, float(rng.poisson(errors)))
            for role in ("web", "worker"):
                yield Sample("cpu_seconds", {**labels, "pod_role": role}, at,
                             float(rng.normal(cpu, 0.02)))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSource]:
    server: PrometheusServer
    with running_prometheus(samples(), tmp_path_factory.mktemp("e2e")) as server:
        made = PrometheusSource(server.url, timeout=10)
        yield made
        made.close()


def test_a_good_canary_passes(source: PrometheusSource) -> None:
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v2")), START, END, STEP)
    assert report.verdict is Verdict.PASS, report.reason
    classes = {m.name: m.classification for m in report.metrics}
    assert classes == {
        "latency": Classification.PASS,
        "errors": Classification.PASS,
        "cpu{pod_role=web}": Classification.PASS,
        "cpu{pod_role=worker}": Classification.PASS,
    }
    assert report.metric("latency").baseline.count == 60
    assert report.details["fetch"]["latency"]["canary"]["query"] == (
        'avg(http_latency_ms{service="checkout",version="v2"})'
    )


def test_a_bad_canary_fails(source: PrometheusSource) -> None:
    report = analyze(CONFIG, source, ScopePair(Scope("v1"), Scope("v3")), START, END, STEP)
    assert report.verdict is Verdict.FAIL, report.reason
    assert report.metric("latency").classification is Classification.HIGH
    assert report.metric("errors").classification is Classification.HIGH
    assert report.metric("latency").estimate == pytest.approx(40.0, abs=5.0)
    assert report.metric("cpu{pod_role=web}").classification is Classification.PASS
