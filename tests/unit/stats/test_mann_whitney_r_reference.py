"""judge.stats.mann_whitney against R's wilcox.test, from committed reference values.

The numbers come from ``tests/fixtures/r/mann_whitney_cases.R`` (R 4.2, base R only) and are
committed as ``mann_whitney_cases.json`` next to it, so these tests need no R. One test
(marked ``r``) reruns the script when Rscript is installed and checks it still reproduces the
committed file.

Tolerances follow the contract in ``docs/statistics.md``: the exact method and all p-values to
1e-9; the asymptotic estimate and interval to 1e-4 of the data's scale (R finds them with
``uniroot(tol = 1e-4)``); for small pairs the asymptotic interval replays R's root search and
matches to 1e-9.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judge.stats import MannWhitneyResult, mann_whitney, mann_whitney_many
from judge.stats._batch import BRENT_MAX_PAIRS
from tests.support.requires import require_binary

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r"
CASES: list[dict[str, Any]] = json.loads((FIXTURES / "mann_whitney_cases.json").read_text())[
    "cases"
]


def _run(case: dict[str, Any]) -> MannWhitneyResult:
    return mann_whitney(
        case["canary"],
        case["baseline"],
        confidence=case["confidence"],
        method=case["exact"],
        correct=case["correct"],
    )


def _scale(case: dict[str, Any]) -> float:
    """Range of the pairwise differences, at least 1: the data's scale for tolerances."""
    canary, baseline = np.asarray(case["canary"]), np.asarray(case["baseline"])
    return max(1.0, float(canary.max() - baseline.min() - (canary.min() - baseline.max())))


def test_fixture_covers_the_required_cases() -> None:
    names = {case["name"] for case in CASES}
    assert len(CASES) >= 40
    assert {"boundary_49_49", "boundary_49_50", "large_5000_lognormal", "constant_equal"} <= names
    assert {case["confidence"] for case in CASES} == {0.95, 0.98}
    assert {case["exact"] for case in CASES} == {"auto", "exact", "asymptotic"}
    assert {case["correct"] for case in CASES} == {True, False}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_matches_r(case: dict[str, Any]) -> None:
    result = _run(case)
    assert result.method == case["method"]
    assert result.n_canary == len(case["canary"])
    assert result.n_baseline == len(case["baseline"])
    assert result.statistic == pytest.approx(case["statistic"], abs=1e-9)
    if case["p_value"] is None:
        # All values equal: R's variance is 0 and its p-value NaN; ours is defined as 1.
        assert result.p_value == 1.0
    else:
        assert result.p_value == pytest.approx(case["p_value"], rel=1e-9, abs=1e-12)
    if case["r_error"] is not None:
        # R stops ("cannot compute confidence interval when all observations are tied"):
        # both samples are constant and every difference is the same number.
        difference = case["canary"][0] - case["baseline"][0]
        assert (result.estimate, result.low, result.high) == (difference,) * 3
        return
    low_r, high_r = case["conf_int"]
    pairs = len(case["canary"]) * len(case["baseline"])
    if case["method"] == "exact" or pairs <= BRENT_MAX_PAIRS:
        tolerance = 1e-9 * _scale(case)
    else:
        tolerance = 1e-4 * _scale(case)
    assert result.estimate == pytest.approx(case["estimate"], abs=tolerance)
    assert result.low == pytest.approx(low_r, abs=tolerance)
    assert result.high == pytest.approx(high_r, abs=tolerance)


def test_batch_gives_the_same_numbers_as_one_by_one() -> None:
    settings = {(case["confidence"], case["exact"], case["correct"]) for case in CASES}
    for confidence, method, correct in sorted(settings):
        chosen = [
            case
            for case in CASES
            if (case["confidence"], case["exact"], case["correct"]) == (confidence, method, correct)
        ]
        batch = mann_whitney_many(
            [(case["canary"], case["baseline"]) for case in chosen],
            confidence=confidence,
            method=method,
            correct=correct,
        )
        assert batch == [_run(case) for case in chosen]


def test_switch_between_exact_and_asymptotic_at_fifty() -> None:
    by_name = {case["name"]: case for case in CASES}
    assert _run(by_name["boundary_49_49"]).method == "exact"
    for name in ("boundary_49_50", "boundary_50_49", "boundary_50_50"):
        assert _run(by_name[name]).method == "asymptotic"


def test_r_estimate_is_not_the_median_when_the_root_is_an_interval() -> None:
    # 8 x 10 differences, no ties, asymptotic: W(d) = 0 on a whole gap between the two middle
    # differences and R returns where its Brent search lands, which we replay.
    case = {case["name"]: case for case in CASES}["even_pairs_gap_asymptotic_8_10"]
    differences = np.subtract.outer(case["canary"], case["baseline"]).ravel()
    assert not math.isclose(float(np.median(differences)), case["estimate"], abs_tol=1e-6)
    assert _run(case).estimate == pytest.approx(case["estimate"], abs=1e-9)


@pytest.mark.r
def test_r_script_reproduces_the_committed_fixture() -> None:
    rscript = require_binary("Rscript")
    produced = subprocess.run(
        [rscript, str(FIXTURES / "mann_whitney_cases.R")],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    committed = json.loads((FIXTURES / "mann_whitney_cases.json").read_text())
    fresh = json.loads(produced)
    assert fresh["cases"] == committed["cases"]
