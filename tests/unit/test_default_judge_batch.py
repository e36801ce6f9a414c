"""The batched default judge gives the same numbers as the per-metric functions.

``judge()`` in default mode judges every ``mann_whitney`` metric of a canary together, stacked
into 2-d arrays (issue 6); these tests compare it, on random and on heavily tied data, with
the per-metric path and with direct definitions (all pairwise differences, ranks from scratch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from judge.config import CanaryConfig, JudgeMode
from judge.judges.common import Prepared, prepare
from judge.judges.default.evaluate import PHI_MARGIN, evaluate, evaluate_mann_whitney_many
from judge.judges.default.evaluation import Evaluation
from judge.stats.autocorrelation import (
    estimate_autocorrelation,
    lag1_autocorrelation,
    lag1_autocorrelation_rows,
    raw_autocorrelation_rows,
    shift_test,
    shift_test_rows,
)
from judge.stats.quantiles import (
    ExceedanceRows,
    Tail,
    exceedance_test_rows,
    spread_p_values_rows,
    spread_test,
    tail_test,
)


def _data(kind: str, rows: int, n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "tied":
        # Counts with many zeros and repeated values: ties inside and across the samples.
        return (rng.poisson(0.8, (rows, n)).astype(float),
                rng.poisson(1.0, (rows, m)).astype(float))
    return rng.lognormal(0.1, 1.0, (rows, n)), rng.lognormal(0.0, 1.0, (rows, m))


def _reference_shift(c: np.ndarray, b: np.ndarray, confidence: float, f_c: float, f_b: float
                     ) -> tuple[float, float, float, float]:
    """The definition: ranks from scratch, all pairwise differences sorted."""
    n_c, n_b = c.size, b.size
    pooled = np.concatenate([c, b])
    u = sps.rankdata(pooled)[:n_c].sum() - n_c * (n_c + 1) / 2.0
    _, t = np.unique(pooled, return_counts=True)
    total = n_c + n_b
    var = n_c * n_b / 12.0 * ((total + 1.0) - np.sum(t**3.0 - t) / (total * (total - 1.0)))
    sd = math.sqrt(var * (f_c / n_c + f_b / n_b) / (1.0 / n_c + 1.0 / n_b))
    p_greater = float(sps.norm.sf((u - n_c * n_b / 2.0) / sd))
    d = np.sort(np.subtract.outer(c, b).ravel())
    k = math.floor(n_c * n_b / 2.0 - sps.norm.ppf(1 - (1 - confidence) / 2) * sd)
    low, high = (d[k - 1], d[d.size - k]) if k >= 1 else (-math.inf, math.inf)
    return float(np.median(d)), float(low), float(high), p_greater


@pytest.mark.parametrize("kind", ["random", "tied"])
@pytest.mark.parametrize(("n", "m"), [(60, 60), (47, 83), (300, 300)])
def test_shift_rows_match_the_definition(kind: str, n: int, m: int) -> None:
    c, b = _data(kind, 6, n, m, seed=n * m)
    f_c = np.array([1.0, 2.5, 4.0, 1.0, 7.0, 3.0])
    f_b = np.array([1.0, 2.5, 1.5, 6.0, 7.0, 3.0])
    rows = shift_test_rows(c, b, confidence=0.98, factor_canary=f_c, factor_baseline=f_b)
    for i, r in enumerate(rows):
        estimate, low, high, p_greater = _reference_shift(c[i], b[i], 0.98, f_c[i], f_b[i])
        assert (r.estimate, r.low, r.high) == (estimate, low, high)
        assert r.p_greater == pytest.approx(p_greater, rel=1e-12, abs=1e-300)
        single = shift_test(c[i], b[i], confidence=0.98, factor_canary=f_c[i],
                            factor_baseline=f_b[i])
        assert single == r


def test_shift_rows_constant_and_unbounded_cases() -> None:
    constant = shift_test_rows(np.full((1, 5), 3.0), np.full((1, 4), 1.0))[0]
    assert (constant.estimate, constant.low, constant.high) == (2.0, 2.0, 2.0)
    assert constant.p_greater < 0.01  # every canary point above every baseline point
    short = shift_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], factor_canary=5.0, factor_baseline=5.0)
    assert math.isinf(short.low) and math.isinf(short.high)


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_autocorrelation_rows_match_per_series(kind: str) -> None:
    c, b = _data(kind, 5, 60, 60, seed=3)
    raw = raw_autocorrelation_rows(c, b)
    for margin in (0.0, 1.0, 2.0):
        phi_c, phi_b = raw.raised(margin)
        for i in range(5):
            single = estimate_autocorrelation(c[i], b[i], margin=margin)
            assert (single.phi_canary, single.phi_baseline) == (phi_c[i], phi_b[i])
    lag = lag1_autocorrelation_rows(c)
    for i in range(5):
        assert lag[i] == pytest.approx(lag1_autocorrelation(c[i]), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_tail_and_spread_rows_match_per_metric(kind: str) -> None:
    c, b = _data(kind, 5, 60, 70, seed=11)
    f = np.array([1.0, 1.8, 3.0, 1.2, 2.2])
    upper = exceedance_test_rows(c, b, 0.85, factor_canary=f, factor_baseline=f)
    lower = exceedance_test_rows(c, b, 0.15, tail="lower", factor_canary=f, factor_baseline=f)
    spread = spread_p_values_rows(c, b, factor_canary=f, factor_baseline=f)
    for i in range(5):
        pairs: tuple[tuple[ExceedanceRows, Tail, float], ...] = (
            (upper, "upper", 0.85), (lower, "lower", 0.15))
        for rows, tail, q in pairs:
            single = tail_test(c[i], b[i], q, tail=tail, factor_canary=float(f[i]),
                               factor_baseline=float(f[i]))
            assert single.p_value == rows.p_value[i]
            assert single.canary_exceedances == rows.canary_exceedances[i]
        assert spread_test(c[i], b[i], factor_canary=float(f[i]),
                           factor_baseline=float(f[i])).p_value == spread[i]
        # The definition: Conover's squared-ranks test on absolute deviations from each
        # side's median.
        dev_c = np.abs(c[i] - np.median(c[i]))
        dev_b = np.abs(b[i] - np.median(b[i]))
        if np.ptp(np.concatenate([dev_c, dev_b])) > 0:
            p = _reference_squared_ranks(dev_c, dev_b, float(f[i]), float(f[i]))
            assert spread[i] == pytest.approx(p, rel=1e-12)


def _reference_squared_ranks(c: np.ndarray, b: np.ndarray, f_c: float, f_b: float) -> float:
    """Conover's squared-ranks test, one-sided for a larger canary, from its textbook form
    (Conover 1999, section 5.3: T = sum of the canary's squared ranks, with ties
    T1 = (T - n_c mean(R^2)) / sqrt(n_c n_b / (N (N - 1)) sum (R^4) - n_c n_b / (N - 1)
    mean(R^2)^2)), the variance times the sides' dependence factors."""
    n_c, n_b = c.size, b.size
    total = n_c + n_b
    squared = sps.rankdata(np.concatenate([c, b])) ** 2
    mean = squared.mean()
    variance = (n_c * n_b / (total * (total - 1.0)) * np.sum(squared**2)
                - n_c * n_b / (total - 1.0) * mean**2)
    sd = math.sqrt(variance * (f_c / n_c + f_b / n_b) / (1.0 / n_c + 1.0 / n_b))
    return float(sps.norm.sf((squared[:n_c].sum() - n_c * mean) / sd))


def _metrics_config(count: int, directions: list[str]) -> CanaryConfig:
    return CanaryConfig.from_dict({
        "name": "batch",
        "metrics": [
            {"name": f"m{i}", "direction": directions[i % len(directions)],
             "test": {"kind": "mann_whitney", "tails": True,
                      "effect_size": {"measure": "cles" if i % 2 else "meanRatio"}}}
            for i in range(count)
        ],
    })


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_batched_evaluation_equals_metric_by_metric(kind: str) -> None:
    config = _metrics_config(8, ["increase", "decrease", "either"])
    c, b = _data(kind, 8, 60, 60, seed=5)
    # Different lengths in one batch: metrics are grouped by size.
    prepared = []
    for i, metric in enumerate(config.metrics):
        size = 60 if i < 5 else 40
        p = prepare(metric, JudgeMode.DEFAULT, b[i, :size], c[i, :size])
        assert isinstance(p, Prepared)
        prepared.append(p)
    together = evaluate_mann_whitney_many(prepared)
    for p, ev in zip(prepared, together, strict=True):
        alone = evaluate(p)
        assert isinstance(ev, Evaluation) and isinstance(alone, Evaluation)
        assert ev == alone
        # ... and both equal the scalar path: autocorrelation and shift test of one metric.
        ac = estimate_autocorrelation(p.canary, p.baseline, margin=PHI_MARGIN)
        loc = shift_test(p.canary, p.baseline, confidence=0.98,
                         factor_canary=ac.factor_canary, factor_baseline=ac.factor_baseline)
        assert ev.estimate == pytest.approx(loc.estimate, rel=1e-12, abs=1e-12)
        assert (ev.low, ev.high) == pytest.approx((loc.low, loc.high), rel=1e-12, abs=1e-12)
        location = ev.details["location"]
        assert (location["p_greater"], location["p_less"]) == pytest.approx(
            (loc.p_greater, loc.p_less), rel=1e-9, abs=1e-15)
        assert ev.details["autocorrelation"]["phi_canary"] == pytest.approx(ac.phi_canary)
        # Direction decides the components: increase -> location high, decrease -> low.
        sides = {c.side.value for c in ev.components if c.name == "location"}
        assert sides == {"increase": {"high"}, "decrease": {"low"},
                         "either": {"high", "low"}}[p.metric.direction.value]


def test_cles_effect_is_the_pairwise_share() -> None:
    metric = _metrics_config(2, ["increase"]).metrics[1]  # odd metrics use CLES
    c, b = _data("tied", 1, 30, 30, seed=8)
    p = prepare(metric, JudgeMode.DEFAULT, b[0], c[0])
    assert isinstance(p, Prepared)
    ev = evaluate(p)
    assert isinstance(ev, Evaluation)
    share = np.mean(np.greater.outer(c[0], b[0])) + 0.5 * np.mean(np.equal.outer(c[0], b[0]))
    assert ev.effect_size == pytest.approx(share, rel=1e-12)
