"""The default judge's decisions and the reasons it writes: a metric's evaluation (its one-sided
p-value for "worse in a direction that matters", see :mod:`judge.judges.default.evaluate`)
against its level, alone or after the family-wise correction over the metrics of a judgment,
and the verdict's words when some metrics lacked evidence.

Alone, a metric fails at ``(1 - confidence) / 2``; :func:`finish_default` applies the config's
family-wise correction (Holm by default, at ``multiple_testing.level``) over the tested metrics
and says so in each result and in the report. A failing metric must also be *material*: its
effect size beyond the metric's ``effect_size`` limits (location), or its rate ratio beyond
``allowed_increase`` / ``allowed_decrease``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from judge.config import (
    CanaryConfig,
    JudgeMode,
    MannWhitneyTest,
    MetricConfig,
    MultipleTestingMethod,
    RateRatioTest,
    ThresholdTest,
)
from judge.judges.common import (
    FloatArray,
    MetricData,
    MetricInput,
    Prepared,
    as_values,
    empty_sides,
    nodata_result,
    prepare_all,
)
from judge.judges.default.evaluate import evaluate, evaluate_mann_whitney_many
from judge.judges.default.evaluation import Evaluation
from judge.judges.threshold import judge_threshold
from judge.judges.words import figure
from judge.report import Classification, MetricResult, Report, Verdict
from judge.stats.multiple import correct

__all__ = [
    "Decision",
    "decide_alone",
    "finish_default",
    "judge_metrics",
    "plan",
    "state_evidence",
    "untested",
]

_TESTED = "default_judge"
"""Key under ``MetricResult.details`` holding what :func:`finish_default` needs."""



@dataclass(frozen=True)
class Decision:
    """How a metric's p-value was compared: raw or corrected, with what level."""

    level: float
    adjusted_p: float
    rule: str


def _result(p: Prepared, ev: Evaluation | str, decision: Decision) -> MetricResult:
    metric = p.metric
    sides = p.sides
    if isinstance(ev, str):
        return nodata_result(metric, JudgeMode.DEFAULT, ev + ".", details={"evidence": ev},
                             **sides)
    worst = ev.worst
    significant = decision.adjusted_p <= decision.level
    details = dict(ev.details)
    details[_TESTED] = {
        "p_value": ev.p_value,
        "adjusted_p_value": decision.adjusted_p,
        "level": decision.level,
        "rule": decision.rule,
        "components": [{"name": comp.name, "side": comp.side.value, "p_value": comp.p_value}
                       for comp in ev.components],
        "worst": worst.name,
        "material": ev.material,
    }
    p_text = (
        f"p = {ev.p_value:.3g}"
        + (f", adjusted {decision.adjusted_p:.3g}" if decision.adjusted_p != ev.p_value else "")
    )
    if significant and ev.material:
        classification = worst.side
        word = "increases" if worst.side is Classification.HIGH else "decreases"
        reason = (
            f"{ev.summary}. Fails: {worst.sentence} ({p_text} <= {decision.level:.3g}, "
            f"{decision.rule}); {word} fail this metric."
        )
    elif significant:
        classification = Classification.PASS
        why = ev.immaterial or (
            f"the effect size {figure(ev.effect_size)} is within the allowed limit")
        reason = (
            f"{ev.summary}. Significant ({p_text}, {decision.rule}) but not material: "
            f"{why}; passes."
        )
    elif ev.evidence is not None:
        return nodata_result(
            metric, JudgeMode.DEFAULT,
            f"{ev.evidence} (no significant change: {p_text} > {decision.level:.3g}, "
            f"{decision.rule}).",
            estimate=ev.estimate, low=ev.low, high=ev.high,
            confidence=ev.confidence, p_value=ev.p_value, effect_size=ev.effect_size,
            effect_measure=ev.effect_measure, details={**details, "evidence": ev.evidence},
            **sides,
        )
    else:
        classification = Classification.PASS
        reason = (
            f"{ev.summary}. No significant change in a direction that matters "
            f"({p_text} > {decision.level:.3g}, {decision.rule}); passes."
        )
    critical_failure = metric.critical and classification.failed
    if critical_failure:
        reason += " Critical metric: the canary fails."
    return MetricResult(
        name=metric.name,
        classification=classification,
        reason=reason,
        groups=metric.groups,
        test=ev.test,
        direction=metric.direction.value,
        critical=metric.critical,
        muted=metric.muted,
        estimate=ev.estimate,
        low=ev.low,
        high=ev.high,
        confidence=ev.confidence,
        p_value=ev.p_value,
        effect_size=ev.effect_size,
        effect_measure=ev.effect_measure,
        details=details,
        critical_failure=critical_failure,
        **sides,
    )


def _alone(metric: MetricConfig) -> Decision:
    confidence = getattr(metric.test, "confidence", 0.98)
    level = (1.0 - confidence) / 2.0
    return Decision(level, math.nan, f"metric alone at one-sided level {level:.3g}")


FLAT_BASELINE_SHARE = 0.5
"""A flat canary is suspicious only when the baseline takes its value at fewer than this share
of its points: a disk-write metric that is mostly 0 on the baseline may well be 0 throughout on
the canary."""


def plan(p: Prepared) -> MetricResult | None:
    """A result decided without testing (no points, too few points, a canary that stopped
    reporting or went flat), else ``None``.

    A canary without points where the baseline has them, or a canary whose every point is the
    same value where the baseline's vary, says the metric broke on the canary (it stopped
    reporting, or reports a constant): not evidence of harm in a direction, but nothing to
    promote on either. It is ``nodata`` with the evidence *required* (the verdict is at most
    ``marginal``) whatever the metric's ``critical`` / ``mustHaveData``. Counts are exempt from
    the flat rule: a canary with no errors at all is good news.
    """
    sides = p.sides
    if p.canary.size == 0 and p.baseline.size > 0:
        return nodata_result(
            p.metric, JudgeMode.DEFAULT,
            f"The canary has no points for this metric while the baseline has "
            f"{p.baseline.size}: the canary may have stopped reporting it.",
            required=True, **sides)
    if p.baseline.size == 0 or p.canary.size == 0:
        empty = empty_sides(p)
        return nodata_result(p.metric, JudgeMode.DEFAULT,
                             f"No {empty} points to compare (after NaN handling).", **sides)
    if not isinstance(p.metric.test, RateRatioTest) and min(p.baseline.size, p.canary.size) < 3:
        return nodata_result(
            p.metric, JudgeMode.DEFAULT,
            f"Too few points to judge: {p.baseline.size} baseline and {p.canary.size} canary.",
            **sides,
        )
    if (not isinstance(p.metric.test, RateRatioTest | ThresholdTest)
            and np.ptp(p.canary) == 0.0 and np.ptp(p.baseline) > 0.0
            and np.mean(p.baseline == p.canary[0]) < FLAT_BASELINE_SHARE):
        return nodata_result(
            p.metric, JudgeMode.DEFAULT,
            f"Every canary point is {figure(float(p.canary[0]))} (flat) while the baseline's "
            f"vary from {figure(float(p.baseline.min()))} to "
            f"{figure(float(p.baseline.max()))}: the metric may have stopped reporting on the "
            "canary.",
            required=True, **sides)
    return None


def untested(p: Prepared) -> MetricResult | None:
    """A metric's result when it needs none of the default judge's tests: a threshold test's,
    or :func:`plan`'s; else ``None``."""
    if p.metric.test.kind == "threshold":
        return judge_threshold(p)
    return plan(p)


def judge_metrics(
    config: CanaryConfig, data: Mapping[str, MetricInput]
) -> tuple[list[MetricResult], dict[str, Any]]:
    """Every metric of ``config`` judged on ``data`` as the fixed-horizon default judge does:
    cleaned (:func:`~judge.judges.common.prepare_all`), decided without a test where there is
    nothing to test (:func:`untested`), the rest tested together and corrected family-wise
    (:func:`finish_default`, whose results and details it returns)."""
    done, prepared = prepare_all(config.metrics, JudgeMode.DEFAULT, data)
    tested: list[Prepared] = []
    for p in prepared:
        decided = untested(p)
        if decided is None:
            tested.append(p)
        else:
            done[p.metric.name] = decided
    return finish_default(config, done, tested, data)


def decide_alone(p: Prepared) -> MetricResult:
    """One metric judged on its own, at its own level (no family-wise correction)."""
    ev = evaluate(p)
    decision = _alone(p.metric)
    if not isinstance(ev, str):
        decision = dataclasses.replace(decision, adjusted_p=ev.p_value)
    return _result(p, ev, decision)


def _aligned_counts(
    counts: Any, exposures: Any
) -> tuple[FloatArray, FloatArray]:
    """Counts and exposures interval by interval, dropping intervals where either is NaN."""
    c = as_values(counts)
    e = as_values(exposures)
    n = min(c.size, e.size)
    c, e = c[:n], e[:n]
    keep = np.isfinite(c) & np.isfinite(e)
    return c[keep], e[keep]


def finish_default(
    config: CanaryConfig,
    done: Mapping[str, MetricResult],
    batch: Sequence[Prepared],
    series: Mapping[str, MetricInput],
) -> tuple[list[MetricResult], dict[str, Any]]:
    """Judge the default-mode metrics of a judgment together and order every result.

    ``done[name]`` holds the metrics already decided (no data, thresholds, ...); ``batch`` the
    prepared metrics the default handler tests, evaluated here once each, vectorised over
    metrics for ``mann_whitney`` (:func:`evaluate_mann_whitney_many`). ``series[name]`` is
    the judge's input; rate-ratio metrics with a ``denominator`` present in ``series``
    are evaluated with it. Every tested, unmuted metric's p-value then enters the family-wise
    correction of ``config.multiple_testing``. Returns the results in config order and the
    report details (the correction, and the metrics without enough evidence).
    """
    evaluations: dict[str, tuple[Prepared, Evaluation | str]] = {}
    continuous: list[Prepared] = []
    for p in batch:
        metric, test = p.metric, p.metric.test
        if isinstance(test, MannWhitneyTest):
            continuous.append(p)
            continue
        given = series.get(metric.name)
        if (isinstance(test, RateRatioTest) and test.denominator
                and isinstance(given, MetricData)):
            denominator = series.get(test.denominator)
            if isinstance(denominator, MetricData):
                b_counts, b_exp = _aligned_counts(given.baseline, denominator.baseline)
                c_counts, c_exp = _aligned_counts(given.canary, denominator.canary)
                p = dataclasses.replace(p, baseline=b_counts, canary=c_counts)
                evaluations[metric.name] = (
                    p, evaluate(p, baseline_exposure=b_exp, canary_exposure=c_exp))
                continue
        evaluations[metric.name] = (p, evaluate(p))
    for p, ev in zip(continuous, evaluate_mann_whitney_many(continuous), strict=True):
        evaluations[p.metric.name] = (p, ev)
    family = [
        name for name, (p, ev) in evaluations.items()
        if not isinstance(ev, str) and not p.metric.muted
    ]
    settings = config.multiple_testing
    method = settings.method
    details: dict[str, Any] = {}
    adjusted: dict[str, float] = {}
    if method is not MultipleTestingMethod.NONE and family:
        evs = [evaluations[name][1] for name in family]
        outcome = correct([ev.p_value for ev in evs if not isinstance(ev, str)],
                          method=method.value, level=settings.level)
        adjusted = dict(zip(family, outcome.adjusted, strict=True))
        details["multiple_testing"] = {
            "method": method.value,
            "level": settings.level,
            "family_size": len(family),
            "metrics": family,
            "sentence": (
                f"{method.value.capitalize()} correction over {len(family)} tested metrics: "
                f"the chance that some metric fails by luck is at most {settings.level:g}."
            ),
        }
    else:
        details["multiple_testing"] = {
            "method": "none",
            "sentence": "No multiple-testing correction: each metric at its own level.",
        }
    results: dict[str, MetricResult] = dict(done)
    for name, (p, ev) in evaluations.items():
        if name in adjusted and not isinstance(ev, str):
            rule = (f"{method.value} over {len(family)} "
                    f"metric{'s' if len(family) != 1 else ''} at family level "
                    f"{settings.level:g}")
            decision = Decision(settings.level, adjusted[name], rule)
        else:
            decision = _alone(p.metric)
            if not isinstance(ev, str):
                decision = dataclasses.replace(decision, adjusted_p=ev.p_value)
        results[name] = _result(p, ev, decision)
    return [results[m.name] for m in config.metrics], details


NODATA_MARGINAL_SHARE = 50.0
"""With this share (in %) or more of the scored metrics without enough evidence, the verdict is
at most ``marginal``: too little was judged to promote (Kayenta forces the score to 0 at the
same share, which fails the canary; here no data is never evidence of harm)."""


def state_evidence(report: Report) -> Report:
    """The default judge's verdict rules on evidence: "cannot tell" never rolls back, and a
    pass needs the evidence that was asked for (the report's other fields are kept).

    - ``fail`` needs evidence of harm: a scored metric ``high``/``low`` (or in ``error``). A
      ``fail`` without one (every metric muted, say) becomes ``marginal``.
    - A metric without enough evidence (too little traffic, too few effective points, no data)
      is ``nodata`` and not scored, so the others can carry a ``pass``; the reason names it
      ("passed on what could be judged"). When it is critical or must have data
      (``details["required"]``), or when half or more of the scored metrics lack evidence
      (:data:`NODATA_MARGINAL_SHARE`), the verdict is at most ``marginal``, and the reason says
      what evidence is missing and how much more data would give it.

    ``details["not_enough_evidence"]`` lists the metrics and the required ones. Muted metrics
    are left out.
    """
    scored = [m for m in report.metrics if not m.muted]
    lacking = [m for m in scored if m.classification in (
        Classification.NODATA, Classification.NODATA_FAIL)]
    harmed = [m for m in scored if m.classification.failed
              and m.classification is not Classification.NODATA_FAIL]
    verdict, reason = report.verdict, report.reason
    if verdict is Verdict.FAIL and not harmed:
        verdict = Verdict.MARGINAL
        reason += (" Not a failure: no metric showed evidence of harm (no evidence is not "
                   "evidence of harm); verdict marginal.")
    if not lacking:
        return dataclasses.replace(report, verdict=verdict, reason=reason)
    names = ", ".join(m.name for m in lacking)
    required = [m for m in lacking if m.details.get("required")]
    share = 100.0 * len(lacking) / len(scored)
    details = dict(report.details)
    details["not_enough_evidence"] = {"metrics": [m.name for m in lacking],
                                      "required": [m.name for m in required],
                                      "share": share}
    missing = " ".join(
        f"{m.name}: {m.details['evidence']}." for m in required if m.details.get("evidence"))
    if verdict is Verdict.PASS and required:
        verdict = Verdict.MARGINAL
        reason += (f" Not a pass: {', '.join(m.name for m in required)} must be shown safe "
                   "(critical or mustHaveData) and the data could not show it; verdict "
                   "marginal." + (f" Missing: {missing}" if missing else ""))
    elif verdict is Verdict.PASS and share >= NODATA_MARGINAL_SHARE:
        verdict = Verdict.MARGINAL
        reason += (f" Not a pass: {len(lacking)} of {len(scored)} metrics ({share:.0f}%) had "
                   f"not enough evidence ({names}); verdict marginal.")
    elif verdict is Verdict.PASS:
        reason += (f" Passed on what could be judged: not enough evidence on {names} "
                   "(not scored; mark a metric critical or mustHaveData to require it).")
    else:
        reason += f" Not enough evidence on {names}."
    return dataclasses.replace(report, verdict=verdict, reason=reason, details=details)
