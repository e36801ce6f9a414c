"""Files and DataFrames as a metric source (local temporary files only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from judge.config import CanaryConfig
from judge.errors import FatalSourceError, MalformedResponseError, QueryError
from judge.ports import FetchedSeries, Scope
from metricsources.files import FileSource, FrameSource, read_table

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = CanaryConfig.model_validate({"metrics": [
    {"name": "latency"},
    {"name": "errors", "query": {"type": "column", "column": "error_count"}},
]})


def table() -> pd.DataFrame:
    times = [T0 + timedelta(minutes=k) for k in range(4)]
    return pd.DataFrame({
        "time": times * 2,
        "side": ["baseline"] * 4 + ["canary"] * 4,
        "latency": [10.0, 11.0, 12.0, 13.0, 20.0, 21.0, None, 23.0],
        "error_count": [0, 1, 0, 2, 5, 5, 6, 7],
    })


def fetch(source: FrameSource, metric: str, scope: Scope) -> FetchedSeries:
    return asyncio.run(source.fetch(CONFIG.metric(metric), scope, CONFIG))


def test_frame_selects_side_column_and_time_window() -> None:
    source = FrameSource(table())
    baseline = fetch(source, "latency", Scope("baseline"))
    assert baseline.series[0].values.tolist() == [10.0, 11.0, 12.0, 13.0]
    assert baseline.series[0].timestamps[0] == T0.timestamp()
    window = Scope("canary", start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=2))
    canary = fetch(source, "latency", window)
    np.testing.assert_array_equal(canary.series[0].values, [21.0, np.nan])
    assert "where side == 'canary'" in canary.query
    assert fetch(source, "errors", Scope("canary")).series[0].values.tolist() == [5, 5, 6, 7]


def test_naive_window_is_utc() -> None:
    source = FrameSource(table())
    naive = Scope("baseline", start=datetime(2024, 5, 1, 12, 2), end=datetime(2024, 5, 1, 12, 3))
    assert fetch(source, "latency", naive).series[0].values.tolist() == [12.0, 13.0]


def test_from_pair_labels_each_side() -> None:
    baseline = pd.DataFrame({"latency": [1.0, 2.0]})
    canary = pd.DataFrame({"latency": [3.0]})
    source = FrameSource.from_pair(baseline, canary, baseline_scope="v41", canary_scope="v42")
    assert fetch(source, "latency", Scope("v42")).series[0].values.tolist() == [3.0]
    assert fetch(source, "latency", Scope("v41")).series[0].timestamps.tolist() == [0.0, 1.0]


def test_errors_name_the_problem() -> None:
    source = FrameSource(table())
    with pytest.raises(FatalSourceError, match="values present: baseline, canary"):
        fetch(source, "latency", Scope("cnary"))
    broken = table().assign(error_count=["0", "1", "many", "2", "5", "5", "6", "7"])
    with pytest.raises(MalformedResponseError, match="'many'"):
        fetch(FrameSource(broken), "errors", Scope("baseline"))
    with pytest.raises(QueryError, match="no column 'error_count'"):
        fetch(FrameSource(table().drop(columns="error_count")), "errors", Scope("canary"))
    with pytest.raises(ValueError, match="no 'side' column"):
        FrameSource(table().drop(columns="side"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_file_formats_read_the_same(tmp_path: Path, suffix: str) -> None:
    frame = table().assign(time=lambda f: f["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = tmp_path / f"metrics{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=suffix == ".jsonl")
    source = FileSource(path)
    np.testing.assert_array_equal(
        fetch(source, "latency", Scope("canary")).series[0].values, [20.0, 21.0, np.nan, 23.0]
    )
    assert source.label == path.name


def test_one_file_per_side(tmp_path: Path) -> None:
    pd.DataFrame({"latency": [1.0, 2.0]}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"latency": [5.0, 6.0, 7.0]}).to_csv(tmp_path / "c.csv", index=False)
    source = FileSource.from_files(tmp_path / "b.csv", tmp_path / "c.csv")
    assert fetch(source, "latency", Scope("canary")).series[0].values.tolist() == [5.0, 6.0, 7.0]


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.xlsx' is not one of"):
        read_table(tmp_path / "m.xlsx")


def test_analyze_a_dataframe_without_naming_scopes() -> None:
    from judge import analyze
    from judge.report import Classification

    rng = np.random.default_rng(11)
    baseline = pd.DataFrame({"latency": rng.normal(100, 3, 60)})
    canary = pd.DataFrame({"latency": rng.normal(130, 3, 60)})
    config = CanaryConfig.model_validate(
        {"metrics": [{"name": "latency", "direction": "increase"}]})
    report = analyze(config, FrameSource.from_pair(baseline, canary))
    assert report.metric("latency").classification is Classification.HIGH
    assert report.details["fetch"]["latency"]["canary"]["query"].endswith("side == 'canary'")


def test_rows_on_the_window_grid_are_put_on_it_with_nan_for_missing_rows() -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)
    minutes = [0, 1, 3, 4]  # the 12:02 row is missing
    frame = pd.DataFrame({"time": [start + timedelta(minutes=m) for m in minutes],
                          "side": "canary", "latency": [1.0, 2.0, 4.0, 5.0]})
    config = CanaryConfig.model_validate({"metrics": [{"name": "latency"}]})
    source = FrameSource(frame)
    window = Scope("canary", start=start, end=start + timedelta(minutes=4))
    (series,) = asyncio.run(source.fetch(config.metrics[0], window, config)).series
    np.testing.assert_array_equal(series.values, [1.0, 2.0, np.nan, 4.0, 5.0])
    # Rows off the grid (30 s past each minute) are kept as they are.
    shifted = frame.assign(time=frame["time"] + timedelta(seconds=30))
    (kept,) = asyncio.run(FrameSource(shifted).fetch(config.metrics[0], window, config)).series
    assert kept.values.tolist() == [1.0, 2.0, 4.0]
