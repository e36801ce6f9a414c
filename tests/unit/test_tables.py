"""Misuse of the library is an error saying what was expected, never a verdict
(``judge.tables``, issue 20 item 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from judge import judge
from judge.config import CanaryConfig
from judge.errors import DataError
from judge.judges.state import SequentialState
from judge.judging import poll

CONFIG = CanaryConfig.from_dict({"metrics": [
    {"name": "temp", "direction": "increase"},
    {"name": "load", "direction": "increase"},
]})


def _frame(start: str = "2026-03-01T00:00:00Z", seed: int = 1, minutes: int = 60,
           tz: str | None = "UTC") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=minutes, freq="1min")
    if tz is None:
        index = index.tz_localize(None)
    return pd.DataFrame({"temp": rng.normal(50, 2, minutes), "load": rng.normal(5, 1, minutes)},
                        index=index)


def test_a_series_instead_of_a_table_says_what_to_pass() -> None:
    base, can = _frame(), _frame(seed=2)
    with pytest.raises(DataError, match=r"baseline: got a pandas Series \('temp'\).*to_frame"):
        judge(CONFIG, base["temp"], can)
    with pytest.raises(DataError, match=r"canary: expected a pandas DataFrame.*got ndarray"):
        judge(CONFIG, base, can.to_numpy())
    with pytest.raises(DataError, match="got list"):
        judge(CONFIG, base, [1.0, 2.0])


def test_a_column_neither_table_has_lists_the_columns_there_are() -> None:
    base, can = _frame(), _frame(seed=2)
    base, can = base.rename(columns={"temp": "tmp"}), can.rename(columns={"temp": "tmp"})
    with pytest.raises(DataError) as caught:
        judge(CONFIG, base, can)
    message = str(caught.value)
    assert "no column 'temp'" in message and "the tables have ['load', 'tmp']" in message
    # One side without it is the canary (or baseline) not reporting it: data, not misuse.
    report = judge(CONFIG, _frame(), can.rename(columns={"tmp": "other"}))
    assert report.metric("temp").classification.value == "nodata"
    assert "missing from the canary data" in report.metric("temp").reason


def test_long_format_tables_are_spotted() -> None:
    wide = _frame()
    long = wide.rename_axis("timestamp").reset_index().melt(
        id_vars="timestamp", var_name="metric", value_name="value")
    with pytest.raises(DataError, match=r"long format.*df\.pivot\(index='timestamp', "
                                        r"columns='metric', values='value'\)"):
        judge(CONFIG, long, long)
    # What the message says to do works.
    pivoted = long.pivot(index="timestamp", columns="metric", values="value")
    assert judge(CONFIG, pivoted, pivoted).verdict.value == "pass"


def test_timezone_aware_against_naive_timestamps_is_an_error() -> None:
    with pytest.raises(DataError, match=r"baseline's timestamps are timezone-aware and the "
                                        r"canary's are naive.*tz_localize"):
        judge(CONFIG, _frame(), _frame(seed=2, tz=None))


def test_sides_that_do_not_overlap_in_time_are_judged_unpaired_with_a_warning() -> None:
    base = _frame()
    shifted = _frame(start="2026-03-04T00:00:00Z", seed=2)
    report = judge(CONFIG, base, shifted)
    (warning,) = report.details["warnings"]
    assert "do not overlap in time" in warning and "2.96 days" in warning
    assert "independent samples" in warning
    assert all(not m.details.get("pairing", {}).get("used") for m in report.metrics)
    # The same minutes on both sides: no warning, and the metrics are compared minute by minute
    # when they move together.
    same = judge(CONFIG, base, _frame(seed=2))
    assert "warnings" not in same.details
    # The warning reaches the JSON answer too.
    assert report.to_dict()["details"]["warnings"] == [warning]


def test_poll_needs_tables_but_not_every_column() -> None:
    state = SequentialState.new("run", CONFIG.name)
    base, can = _frame(minutes=5), _frame(seed=2, minutes=5)
    report, state = poll(CONFIG, state, base[["temp"]], can[["temp"]])
    assert report.details["sequential"]["status"] == "continue"
    with pytest.raises(DataError, match="got a pandas Series"):
        poll(CONFIG, state, base["temp"], can)
