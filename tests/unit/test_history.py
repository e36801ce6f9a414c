"""Labelled canaries from one's own history (``judge.lab.history``, issue 20 item 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from judge.config import CanaryConfig
from judge.errors import DataError
from judge.lab.backtest import backtest
from judge.lab.history import read_scenarios, scenarios_from_table
from judge.lab.scenarios import Label


def _wide() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(3)
    for canary_id, label, shift in (("r-1", "good", 0.0), ("r-2", "bad", 25.0),
                                    ("r-3", None, 0.0)):
        for side in ("baseline", "canary"):
            # 10-minute points; the canary's window starts a day later for r-3.
            start = pd.Timestamp("2026-04-01T00:00:00Z") + (
                pd.Timedelta("1D") if canary_id == "r-3" and side == "canary" else pd.Timedelta(0))
            for k in range(30):
                rows.append({
                    "id": canary_id, "side": side,
                    "time": (start + k * pd.Timedelta("10min")).isoformat(),
                    "p99": 100 + rng.normal(0, 3) + (shift if side == "canary" else 0.0),
                    "errors": int(rng.poisson(2)), "label": label,
                })
    return pd.DataFrame(rows)


def test_wide_table_keeps_timestamps_step_precision_and_labels() -> None:
    table = _wide()
    table.loc[0, "p99"] = 0.1 + 0.2  # not 0.3: full precision is kept
    scenarios = scenarios_from_table(table)
    assert [s.id for s in scenarios] == ["r-1", "r-2", "r-3"]
    assert [s.label for s in scenarios] == [Label.GOOD, Label.BAD, None]
    assert {s.kind for s in scenarios} == {"past"}
    first = scenarios[0]
    assert first.baseline["p99"].iloc[0] == 0.1 + 0.2
    assert first.baseline["errors"].dtype.kind == "i"
    assert (first.baseline.index[1] - first.baseline.index[0]) == pd.Timedelta("10min")
    assert scenarios[2].canary.index[0] == pd.Timestamp("2026-04-02T00:00:00Z")
    # They backtest as they are: the shifted release is caught, the good one passes.
    config = CanaryConfig.from_dict({"metrics": [{"name": "p99", "direction": "increase"}]})
    result = backtest(config, scenarios)
    assert result.frame.loc["r-2", "verdict"] != "pass"
    assert result.frame.loc["r-1", "verdict"] == "pass"
    # r-3's sides do not overlap in time: the report says so.
    assert "do not overlap in time" in result.reports["r-3"].details["warnings"][0]


def test_long_table_gives_the_same_canaries_as_wide() -> None:
    wide = _wide()
    long = wide.melt(id_vars=["id", "side", "time", "label"], var_name="metric",
                     value_name="value")
    from_long = scenarios_from_table(long)
    from_wide = scenarios_from_table(wide)
    for a, b in zip(from_long, from_wide, strict=True):
        assert (a.id, a.label) == (b.id, b.label)
        pd.testing.assert_frame_equal(a.canary, b.canary[a.canary.columns], check_dtype=False)


def test_labels_from_a_mapping_or_a_table_with_kinds() -> None:
    table = _wide().drop(columns="label")
    scenarios = scenarios_from_table(table, labels={"r-1": "good", "r-2": "bad"}, kind="checkout")
    assert [(s.label, s.kind) for s in scenarios] == [
        (Label.GOOD, "checkout"), (Label.BAD, "checkout"), (None, "checkout")]
    labels = pd.DataFrame({"id": ["r-1", "r-2"], "label": ["good", "bad"],
                           "kind": ["march", "april"]})
    assert [s.kind for s in scenarios_from_table(table, labels=labels)][:2] == ["march", "april"]


def test_files_csv_gzip_and_parquet(tmp_path: Path) -> None:
    table = _wide()
    table.to_csv(tmp_path / "h.csv.gz", index=False)
    table.to_parquet(tmp_path / "h.parquet")
    from_csv, from_parquet = read_scenarios(tmp_path / "h.csv.gz"), read_scenarios(
        tmp_path / "h.parquet")
    for a, b in zip(from_csv, from_parquet, strict=True):
        pd.testing.assert_frame_equal(a.baseline, b.baseline, check_exact=True)
    with pytest.raises(DataError, match=r"\.csv, \.csv\.gz, \.tsv or \.parquet"):
        read_scenarios(tmp_path / "h.xlsx")


def test_mistakes_name_what_is_wrong() -> None:
    table = _wide()
    with pytest.raises(DataError, match=r"needs the column\(s\) \['side'\]"):
        scenarios_from_table(table.drop(columns="side"))
    bad_side = table.assign(side=table["side"].replace("canary", "can"))
    with pytest.raises(DataError, match=r"also has \['can'\]"):
        scenarios_from_table(bad_side)
    one_sided = table[~((table["id"] == "r-2") & (table["side"] == "canary"))]
    with pytest.raises(DataError, match="canary 'r-2' has no canary rows"):
        scenarios_from_table(one_sided)
    two_labels = table.copy()
    two_labels.loc[0, "label"] = "bad"
    with pytest.raises(DataError, match="canary 'r-1' has more than one label"):
        scenarios_from_table(two_labels)
