"""The default judge's count test (``rate_ratio``): the rate ratio canary / baseline on the
summed counts (conditional binomial, quasi-Poisson dispersion), and when it is too rare to be
bounded, evidence that the canary's rate is below a material one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from judge.config import Autocorrelation, Direction, MetricConfig, RateRatioTest
from judge.judges.common import FloatArray
from judge.judges.default.evaluation import Component, Evaluation
from judge.judges.words import figure, percent
from judge.report import Classification
from judge.stats.counts import count_dispersion, rate_ratio_test

__all__ = ["EVIDENCE_CONFIDENCE", "baseline_rate_floor", "evaluate_rate_ratio"]

EVIDENCE_CONFIDENCE = 0.9
"""Confidence of the bound that shows a count's canary rate below a material one (a pass on
evidence, for counts too rare for their ratio to be bounded): a one-sided 90% upper bound.
Wrongly passing there means missing an increase that sits right at the material limit, one
metric's error, not a false alarm spread over many metrics (the failure tests keep their own
levels). At 98% a canary with the baseline's 0.05% error rate (2 errors in 3,900 requests)
could not be shown below 0.25% within the hour; 90% shows it (real-noise benchmark)."""


def baseline_rate_floor(events: float, exposure: float, dispersion: float = 1.0) -> float:
    """The baseline's rate at its one-sided :data:`EVIDENCE_CONFIDENCE` lower bound (exact
    Poisson, counts tempered by the dispersion; 0 without events): what a material increase is
    measured from, so that a few baseline events do not make a high baseline rate."""
    effective = events / dispersion
    if effective <= 0 or exposure <= 0:
        return 0.0
    lower = float(sps.chi2.ppf(1.0 - EVIDENCE_CONFIDENCE, 2.0 * effective) / 2.0)
    return lower / (exposure / dispersion)


def evaluate_rate_ratio(
    metric: MetricConfig,
    test: RateRatioTest,
    canary: FloatArray,
    baseline: FloatArray,
    canary_exposure: FloatArray | None,
    baseline_exposure: FloatArray | None,
) -> Evaluation | str:
    if np.any(canary < 0) or np.any(baseline < 0):
        return "Counts must not be negative"
    has_denominator = canary_exposure is not None and baseline_exposure is not None
    ec = canary_exposure if canary_exposure is not None else np.ones_like(canary)
    eb = baseline_exposure if baseline_exposure is not None else np.ones_like(baseline)
    exp_c, exp_b = float(ec.sum()), float(eb.sum())
    unit = "requests" if has_denominator else "intervals"
    if exp_c <= 0 or exp_b <= 0:
        return f"Not enough evidence: no {unit} on the {'canary' if exp_c <= 0 else 'baseline'}"
    dispersion = 1.0
    disp_details: dict[str, Any] = {"method": "none (Poisson)"}
    if test.overdispersion is Autocorrelation.AUTO:
        est = count_dispersion(canary, baseline, ec, eb)
        dispersion = est.dispersion
        disp_details = {"method": "quasi-Poisson (Pearson x AR(1))", "pearson": est.pearson,
                        "phi": est.phi, "intervals": est.intervals}
    disp_details["dispersion"] = dispersion
    x_c, x_b = float(canary.sum()), float(baseline.sum())
    two = rate_ratio_test(x_c, x_b, exp_c, exp_b, confidence=test.confidence,
                          dispersion=dispersion)
    components: list[Component] = []
    interval = (
        f"{x_c:g} canary events in {exp_c:g} {unit} against {x_b:g} in {exp_b:g}: rate ratio "
        f"{figure(two.ratio)}, {test.confidence * 100:g}% CI "
        f"[{figure(two.low)}, {figure(two.high)}]"
    )
    if metric.direction.increase_matters:
        greater = rate_ratio_test(x_c, x_b, exp_c, exp_b, alternative="greater",
                                  dispersion=dispersion)
        components.append(Component("rate", Classification.HIGH, greater.p_value,
                                    f"the canary's rate is higher ({interval})"))
    if metric.direction.decrease_matters:
        less = rate_ratio_test(x_c, x_b, exp_c, exp_b, alternative="less",
                               dispersion=dispersion)
        components.append(Component("rate", Classification.LOW, less.p_value,
                                    f"the canary's rate is lower ({interval})"))
    worst = min(components, key=lambda comp: comp.p_value)
    if worst.side is Classification.HIGH:
        material = math.isnan(two.ratio) or two.ratio >= test.allowed_increase
    else:
        material = math.isnan(two.ratio) or two.ratio <= test.allowed_decrease
    # Enough evidence to pass: the interval rules out a change beyond ``margin`` in the bad
    # direction(s), or (with a denominator) the canary's rate is bounded below a negligible one.
    ruled_out = (not metric.direction.increase_matters or two.high <= test.margin) and (
        not metric.direction.decrease_matters or two.low >= 1.0 / test.margin
    )
    rate_upper = math.nan
    more = ""
    if has_denominator:
        # A material increase of the error rate is one beyond both `margin` times the
        # baseline's rate and the baseline's rate plus `negligible_rate`: 0 errors against 0 on
        # thousands of requests rules out every material increase, though no ratio can be
        # bounded. Shown by the canary's own one-sided upper bound (exact Poisson, counts
        # tempered by the dispersion) against that limit at the baseline's rate, taken at its
        # lower bound: one error in 97 requests is no evidence of a 1% baseline rate.
        effective = x_c / dispersion
        quantile = float(sps.chi2.ppf(EVIDENCE_CONFIDENCE, 2.0 * (effective + 1.0)) / 2.0)
        rate_upper = quantile / (exp_c / dispersion)
        baseline_rate = baseline_rate_floor(x_b, exp_b, dispersion)
        allowed_rate = max(test.margin * baseline_rate, baseline_rate + test.negligible_rate)
        if metric.direction is Direction.INCREASE and rate_upper <= allowed_rate:
            ruled_out = True
        elif metric.direction is Direction.INCREASE and allowed_rate > 0:
            # The exposure that would bound the rate at this many events: how much more
            # traffic the evidence needs.
            needed = quantile * dispersion / allowed_rate
            per_interval = exp_c / max(canary.size, 1)
            intervals = math.ceil(max(needed - exp_c, 0.0) / per_interval) if per_interval else 0
            more = (f"; about {intervals} more intervals at this traffic "
                    f"({figure(per_interval)} {unit} per interval) would show it")
    evidence = None
    if not ruled_out:
        low_traffic = (f"Low traffic: {x_c:g} canary events in {exp_c:g} {unit}. "
                       if has_denominator and x_c + x_b < 10 else "")
        evidence = (
            f"{low_traffic}Not enough evidence: {interval}; the interval cannot rule out a "
            f"ratio beyond {test.margin:g}"
            + (f" nor bound the canary's rate below the larger of {test.margin:g}x the "
               f"baseline's and the baseline's plus {percent(test.negligible_rate)} "
               f"(upper bound {percent(rate_upper)}){more}"
               if has_denominator else "")
        )
    return Evaluation(
        test="rate_ratio",
        components=tuple(components),
        estimate=two.ratio,
        low=two.low,
        high=two.high,
        confidence=test.confidence,
        effect_size=two.ratio,
        effect_measure="rate_ratio",
        material=material,
        evidence=evidence,
        summary=f"Conditional binomial rate-ratio test: {interval}",
        details={"dispersion": disp_details, "canary_events": x_c, "baseline_events": x_b,
                 "canary_exposure": exp_c, "baseline_exposure": exp_b, "exposure_unit": unit,
                 "method": two.method, "canary_rate_upper": rate_upper},
    )
