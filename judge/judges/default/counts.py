"""The default judge's count test (``rate_ratio``): the rate ratio canary / baseline on the
summed counts (conditional binomial, quasi-Poisson dispersion), and when it is too rare to be
bounded, evidence that the canary's rate is below a material one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from judge.config import Autocorrelation, Direction, MetricConfig, RateRatioTest
from judge.judges.common import FloatArray
from judge.judges.default.evaluation import Component, Evaluation
from judge.judges.words import figure, percent
from judge.report import Classification
from judge.stats.counts import (
    count_dispersion,
    poisson_rate_bounds,
    rate_difference_upper,
    rate_ratio_bounds,
    rate_ratio_test,
)

__all__ = [
    "EVIDENCE_CONFIDENCE",
    "CountEvidence",
    "baseline_rate_floor",
    "evaluate_rate_ratio",
    "more_data_words",
    "no_material_change",
]

EVIDENCE_CONFIDENCE = 0.9
"""Confidence of the bound that shows a count's canary rate below a material one (a pass on
evidence, for counts too rare for their ratio to be bounded): a one-sided 90% upper bound.
Wrongly passing there means missing an increase that sits right at the material limit, one
metric's error, not a false alarm spread over many metrics (the failure tests keep their own
levels). At 98% a canary with the baseline's 0.05% error rate (2 errors in 3,900 requests)
could not be shown below 0.25% within the hour; 90% shows it (real-noise benchmark). The bounds
are mid-p (about this confidence on average over rates, see ``docs/default-judge.md``,
"Counts"): exact ones cover far more with a handful of events and held healthy canaries."""


def baseline_rate_floor(events: float, exposure: float, dispersion: float = 1.0) -> float:
    """The baseline's rate at its one-sided :data:`EVIDENCE_CONFIDENCE` lower bound (exact
    Poisson, counts tempered by the dispersion; 0 without events): what a material increase is
    measured from, so that a few baseline events do not make a high baseline rate."""
    if exposure <= 0:
        return 0.0
    lower, _ = poisson_rate_bounds(events / dispersion, exposure / dispersion,
                                   EVIDENCE_CONFIDENCE)
    return lower


@dataclass(frozen=True)
class CountEvidence:
    """Whether a count's data show that the canary did not change it materially (a pass on
    evidence), with the bounds that decided."""

    shown: bool
    ratio_bounds: tuple[float, float]
    """The rate ratio's one-sided bounds at :data:`EVIDENCE_CONFIDENCE` on each harmful side
    (0 below when a decrease does not matter, infinity above when an increase does not)."""
    difference_upper: float | None
    """Upper bound of the rate difference canary - baseline (with a denominator, direction
    ``increase``), else ``None``."""
    needed_scale: float | None
    """How many times the traffic so far would show it at the rates seen (``None`` when shown,
    or when no amount of traffic at these rates would)."""
    increase: bool = True
    decrease: bool = False

    def ratio_words(self, margin: float) -> str:
        """What the ratio route needed and what it got, e.g. "at most 3 (bound 5.43)"."""
        low, high = self.ratio_bounds
        parts = []
        if self.increase:
            parts.append(f"at most {margin:g} (upper bound {figure(high)})")
        if self.decrease:
            parts.append(f"at least {1.0 / margin:.3g} (lower bound {figure(low)})")
        return " and ".join(parts)


_MAX_SCALE = 1000.0
_SAY_MORE_UP_TO = 10.0  # beyond ten times the traffic so far, also say how many times


def _shown(
    direction: Direction, test: RateRatioTest, x_c: float, x_b: float, exp_c: float,
    exp_b: float, dispersion: float, has_denominator: bool,
) -> tuple[bool, tuple[float, float], float | None]:
    sides: Literal["both", "lower", "upper"] = (
        "both" if direction.increase_matters and direction.decrease_matters
        else "upper" if direction.increase_matters else "lower")
    low, high = rate_ratio_bounds(x_c, x_b, exp_c, exp_b, confidence=EVIDENCE_CONFIDENCE,
                                  dispersion=dispersion, mid_p=True, sides=sides)
    ratio_ok = (not direction.increase_matters or high <= test.margin) and (
        not direction.decrease_matters or low >= 1.0 / test.margin)
    difference = None
    shown = ratio_ok
    if has_denominator and direction is Direction.INCREASE:
        difference = rate_difference_upper(x_c, x_b, exp_c, exp_b, confidence=EVIDENCE_CONFIDENCE,
                                           dispersion=dispersion, mid_p=True)
        shown = shown or difference <= test.negligible_rate
    return shown, (low, high), difference


def no_material_change(
    direction: Direction,
    test: RateRatioTest,
    canary_events: float,
    baseline_events: float,
    canary_exposure: float,
    baseline_exposure: float,
    *,
    dispersion: float = 1.0,
    has_denominator: bool = True,
) -> CountEvidence:
    """Evidence that the canary's rate did not change materially, at
    :data:`EVIDENCE_CONFIDENCE` (one-sided): the rate ratio bounded within ``margin`` on the
    harmful side, or, with a denominator and direction ``increase``, the canary's rate shown at
    most ``negligible_rate`` above the baseline's (:func:`rate_difference_upper`). The second
    route is what lets 0 errors against 0 on thousands of requests pass, where no ratio can be
    bounded; it bounds the difference jointly rather than comparing the canary's upper bound
    with the baseline's lower one, which would compound two bounds (7 canary errors against 8
    on 3,700 requests a side could not pass that way).

    Either route alone bounds the chance of passing a material change at ``1 -
    EVIDENCE_CONFIDENCE``; where the two limits meet (a baseline rate of ``negligible_rate /
    (margin - 1)``) the two routes together can reach twice that.
    """
    args = (direction, test, canary_events, baseline_events, canary_exposure, baseline_exposure,
            dispersion, has_denominator)
    shown, ratio_bounds, difference = _shown(*args)
    needed = None
    if not shown:
        # Same rates, k times the traffic: the smallest k that would show it (bisection on a
        # log scale; the bounds tighten monotonically as counts and exposures grow together).
        def shown_at(k: float) -> bool:
            return _shown(direction, test, canary_events * k, baseline_events * k,
                          canary_exposure * k, baseline_exposure * k, dispersion,
                          has_denominator)[0]

        if shown_at(_MAX_SCALE):
            low, high = 1.0, _MAX_SCALE
            while high / low > 1.02:
                mid = math.sqrt(low * high)
                low, high = (low, mid) if shown_at(mid) else (mid, high)
            needed = high
    return CountEvidence(shown, ratio_bounds, difference, needed,
                         direction.increase_matters, direction.decrease_matters)


def _low_traffic_words(
    direction: Direction,
    test: RateRatioTest,
    canary_exposure: float,
    baseline_exposure: float,
    has_denominator: bool,
) -> str:
    """"Low traffic: ..." when the traffic alone explains the missing evidence: not even 0 events
    against 0 would show the canary's rate within ``negligible_rate`` of the baseline's. It
    depends on the requests, not on the events seen: 5 errors against 2 in 2,900 requests a side
    are ambiguous counts at a normal traffic, 0 against 0 in 195 requests is low traffic. Only
    for a rate with a denominator and the difference route (increases, ``negligible_rate`` > 0):
    without them there is no traffic that makes 0 against 0 enough."""
    if not has_denominator or test.negligible_rate <= 0 or direction is not Direction.INCREASE:
        return ""
    if _shown(direction, test, 0.0, 0.0, canary_exposure, baseline_exposure, 1.0, True)[0]:
        return ""
    # 0 against 0: the difference's bound is the canary's own upper bound, lambda_0 / requests.
    needed = math.ceil(poisson_rate_bounds(0.0, 1.0, EVIDENCE_CONFIDENCE, mid_p=True)[1]
                       / test.negligible_rate)
    return (f"Low traffic: {canary_exposure:g} canary requests cannot show the canary's rate at "
            f"most {percent(test.negligible_rate)} above the baseline's even with no events on "
            f"either side (about {needed:g} are needed). ")


def more_data_words(evidence: CountEvidence, intervals: int, exposure: float, unit: str) -> str:
    """How much more traffic would show what ``evidence`` could not, in words ("" if shown)."""
    if evidence.shown:
        return ""
    per_interval = exposure / max(intervals, 1)
    scale = evidence.needed_scale
    if scale is None:
        return (f"; at the rates seen so far, not even {_MAX_SCALE:g} times this traffic "
                "would show it (the canary's rate so far is close to a material change from "
                "the baseline's)")
    more = math.ceil((scale - 1.0) * intervals)
    times = (f", {scale:.0f} times the traffic so far, at the rates seen so far"
             if scale > _SAY_MORE_UP_TO else "")
    return (f"; about {more} more intervals at this traffic ({figure(per_interval)} {unit} "
            f"per interval{times}) would show it")


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
    evidence_check = no_material_change(
        metric.direction, test, x_c, x_b, exp_c, exp_b,
        dispersion=dispersion, has_denominator=has_denominator,
    )
    ruled_out = evidence_check.shown
    more = ""
    if not ruled_out:
        more = more_data_words(evidence_check, canary.size, exp_c, unit)
    evidence = None
    if not ruled_out:
        low_traffic = _low_traffic_words(metric.direction, test, exp_c, exp_b, has_denominator)
        confidence = f"{EVIDENCE_CONFIDENCE * 100:g}%"
        evidence = (
            f"{low_traffic}Not enough evidence: {interval}; at {confidence} confidence the "
            f"rate ratio is not shown {evidence_check.ratio_words(test.margin)}"
            + (f" nor the canary's rate shown at most {percent(test.negligible_rate)} above "
               f"the baseline's (bound {percent(evidence_check.difference_upper)}){more}"
               if evidence_check.difference_upper is not None else more)
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
                 "method": two.method,
                 "evidence_ratio_bounds": list(evidence_check.ratio_bounds),
                 "evidence_difference_upper": evidence_check.difference_upper},
    )
