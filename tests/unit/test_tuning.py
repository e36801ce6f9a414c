"""Tuning on labelled history: validated grids, lists of grids, settings that change nothing,
held-out canaries, trade-off curves and selection under a constraint (issue 20 item 4)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from judge.lab.backtest import backtest, combinations, sweep
from judge.lab.scenarios import Scenario, generate_history, history_config
from judge.lab.tuning import select, split_scenarios, tradeoff_curve


@pytest.fixture(scope="module")
def history() -> list[Scenario]:
    return generate_history(24, seed=11, mix={"aa": 0.5, "shifted_mean": 0.5})


def test_invalid_combinations_are_refused_before_judging_or_skipped(
    history: list[Scenario],
) -> None:
    config = history_config("kayenta")
    grid = {"thresholds.pass": [70, 95], "thresholds.marginal": [75]}
    valid, invalid = combinations(config, grid)
    assert [c.setting for c in valid] == [{"thresholds.pass": 95, "thresholds.marginal": 75}]
    assert invalid[0][0] == {"thresholds.pass": 70, "thresholds.marginal": 75}
    assert "must not be above" in invalid[0][1]
    with pytest.raises(ValueError, match=r"1 invalid combination\(s\).*'thresholds.pass': 70"):
        sweep(config, history, grid)
    table = sweep(config, history, grid, invalid="skip")
    assert list(table["thresholds.pass"]) == [95]
    assert table.attrs["skipped"][0]["thresholds.pass"] == 70
    # A path that fits nothing is a mistake in the grid, not a combination to skip.
    with pytest.raises(KeyError, match="matches nothing"):
        sweep(config, history, {"metrics.*.nothing_here.x": [1]}, invalid="skip")


def test_a_list_of_grids_joins_their_combinations(history: list[Scenario]) -> None:
    config = history_config("kayenta")
    grids = [{"thresholds.pass": [90, 95]},
             {"thresholds.pass": [80], "thresholds.marginal": [60]}]
    table = sweep(config, history, grids)
    assert list(table["thresholds.pass"]) == [90, 95, 80]
    assert math.isnan(table["thresholds.marginal"].iloc[0])
    assert table["thresholds.marginal"].iloc[2] == 60


def test_a_setting_that_changes_nothing_is_flagged(history: list[Scenario]) -> None:
    # Under the default judge's Holm correction the family level sets each metric's level:
    # a test's own confidence changes no verdict.
    config = history_config("default")
    with pytest.warns(UserWarning, match="changed no verdict"):
        table = sweep(config, history, {"metrics.*.test.confidence": [0.95, 0.99],
                                        "thresholds.pass": [80, 95]})
    assert table.attrs["no_effect"] == ["metrics.*.test.confidence"]


def test_split_holds_out_whole_groups_with_both_labels(history: list[Scenario]) -> None:
    train, test = split_scenarios(history, test_share=0.25, seed=3)
    assert not {s.id for s in train} & {s.id for s in test}
    assert len(train) + len(test) == len(history)
    assert {s.label for s in test} == {s.label for s in history}
    # Grouped: canaries of one group never sit on both sides.
    def group(s: Scenario) -> int:
        return int(s.id.rsplit("-", 1)[-1]) % 4

    train, test = split_scenarios(history, test_share=0.3, seed=1, group=group)
    assert not {group(s) for s in train} & {group(s) for s in test}
    with pytest.raises(ValueError, match="test_share"):
        split_scenarios(history, test_share=1.0)


def test_tradeoff_curve_and_selection_under_a_constraint(history: list[Scenario]) -> None:
    config = history_config("kayenta")
    result = backtest(config, history)
    curve = tradeoff_curve(config, history, passes=[0, 50, 75, 95, 100], reuse=[result])
    assert list(curve["pass_threshold"]) == [0.0, 50.0, 75.0, 95.0, 100.0]
    # Raising the bar never lowers either rate.
    assert curve["false_failure"].is_monotonic_increasing
    assert curve["detection"].is_monotonic_increasing
    assert curve["false_failure"].iloc[0] == 0.0 and curve["detection"].iloc[0] == 0.0
    best = select(curve, max_false_failure=0.5, bound="estimate")
    allowed = curve[curve["false_failure"] <= 0.5]
    assert best["detection"] == allowed["detection"].max()
    # An honest bound on 12 good canaries cannot promise 2%: the error says how close it came.
    with pytest.raises(ValueError, match=r"no setting keeps false_failure_high <= 0.02; the "
                                         r"lowest is 0\.\d+"):
        select(curve, max_false_failure=0.02)
    with pytest.raises(ValueError, match="no 'recall' column"):
        select(curve, maximize="recall")
    assert isinstance(best, pd.Series)
