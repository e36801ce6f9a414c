"""``analyze`` with the demo source (what the service runs with no Prometheus) and with the same
series written to a file and read back by the file source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from judge import CanaryConfig, Scope, ScopePair, Verdict, analyze
from judge.config.queries import DemoQuery
from judge.report import Classification
from metricsources.demo import DemoSource, generate
from metricsources.files import FileSource

METRICS = [
    {"name": "latency", "direction": "increase", "query": {"type": "demo", "signal": "latency"}},
    {"name": "errors", "direction": "increase",
     "query": {"type": "demo", "signal": "errors", "level": 500}},
    {"name": "requests", "direction": "decrease",
     "query": {"type": "demo", "signal": "requests", "level": 1000}},
    {"name": "cpu", "direction": "increase",
     "query": {"type": "demo", "signal": "cpu", "level": 80}},
]
DAY = datetime(2024, 5, 1, tzinfo=UTC)
STEP = timedelta(minutes=1)


@pytest.mark.parametrize("mode", ["default", "kayenta"])
def test_demo_good_canaries_pass_and_bad_ones_fail(mode: str) -> None:
    config = CanaryConfig.model_validate({"mode": mode, "metrics": METRICS})
    for hour in (0, 9, 15):  # night, morning ramp, afternoon peak of the daily cycle
        start = DAY + timedelta(hours=hour)
        window = (start, start + timedelta(hours=1), STEP)
        good = analyze(config, DemoSource(), ScopePair(Scope("v41"), Scope("v42")), *window)
        bad = analyze(config, DemoSource(), ScopePair(Scope("v41"), Scope("v42-bad")), *window)
        assert good.verdict is Verdict.PASS, (hour, good.reason)
        assert bad.verdict is Verdict.FAIL, (hour, bad.reason)
        assert bad.metric("latency").classification is Classification.HIGH
        assert bad.metric("requests").classification is Classification.LOW


def test_a_file_export_judges_like_the_source_it_came_from(tmp_path: Path) -> None:
    config = CanaryConfig.model_validate({"metrics": METRICS})
    start = DAY + timedelta(hours=12)
    end = start + timedelta(hours=1)
    scopes = ScopePair(Scope("v41"), Scope("v42-bad"))
    direct = analyze(config, DemoSource(), scopes, start, end, STEP)

    # Export exactly what the demo source serves, one row per minute and side.
    frames = []
    for side in (scopes.baseline, scopes.canary):
        window = side.with_window(start, end, STEP)
        columns = {}
        for metric in config.metrics:
            assert isinstance(metric.query, DemoQuery)
            series = generate(metric.query, metric, window)
            columns[metric.name] = series.values
        times = pd.to_datetime(series.timestamps, unit="s", utc=True)
        frames.append(pd.DataFrame({"time": times, "side": side.scope, **columns}))
    path = tmp_path / "export.csv"
    pd.concat(frames).to_csv(path, index=False)

    column_config = CanaryConfig.model_validate(
        {"metrics": [{**m, "query": {"type": "column"}} for m in METRICS]})
    from_file = analyze(column_config, FileSource(path), scopes, start, end, STEP)
    assert [(m.name, m.classification) for m in from_file.metrics] == [
        (m.name, m.classification) for m in direct.metrics]
    assert [m.estimate for m in from_file.metrics] == pytest.approx(
        [m.estimate for m in direct.metrics])
    assert from_file.verdict is direct.verdict is Verdict.FAIL
