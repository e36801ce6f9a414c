"""From per-metric results to group scores, a total score and a verdict.

The rules are Kayenta's (``kayenta-judge``, ``scorers/WeightedSumScorer.scala`` and
``classifiers/score/ThresholdScoreClassifier.scala``), each a named constant or function here:

* A group's score is ``100 * pass / (pass + high + low + nodata_fail + error)``; ``nodata``
  metrics are left out. A group with nothing scored has score 0 but counts as 100 in the total
  (it neither helps nor hurts).
* Groups with a weight in the config get it; the others share what is left of 100 equally.
  The total is ``sum(group score * weight / 100)``, rounded half-up to 2 decimals.
* The total is forced to 0 when a critical metric fails the canary
  (``MetricResult.critical_failure``) or when :data:`NODATA_LIMIT_PERCENT` or more of the
  scored metrics are ``nodata``.
* Muted metrics are judged and reported but take no part in any of this.
* Verdict: ``score >= pass`` is pass, ``score >= marginal`` is marginal, else fail.

``error`` (a failed query, unusable data) is not a Kayenta classification for data: Kayenta
aborts the whole run on a failed fetch. Here an ``error`` metric is scored as a failure, so a
broken config or unusable data never promotes a canary; and when the *source* failed for a
scored metric (its ``details["fetch_failure"]`` is one of :data:`judge.ports.OUTAGE_KINDS`:
down, slow, refusing the query, no series for a scope) the report is an **error outcome**
(:func:`error_outcome`): verdict ``error``, no score, the failures named. That is Kayenta's
rule too (a failed fetch ends its execution without a score), in both judge modes: an outage
is no evidence about the canary, so it must neither pass nor fail it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from judge.config import CanaryConfig, JudgeMode, ScoreThresholds
from judge.errors import OUTAGE_KINDS
from judge.report import Classification, GroupResult, MetricResult, Report, Verdict

__all__ = [
    "FAILING",
    "NODATA_LIMIT_PERCENT",
    "error_outcome",
    "group_results",
    "group_weights",
    "resolve_thresholds",
    "score_report",
    "verdict_for",
]

NODATA_LIMIT_PERCENT = 50.0
"""With this share (in %) or more of scored metrics ``nodata``, the score is 0
(Kayenta's ``WeightedSumScorer.NODATA_THRESHOLD``)."""

FAILING = frozenset(
    (Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL, Classification.ERROR)
)
"""Classifications that count against a group's score."""

EMPTY_GROUP_EFFECTIVE_SCORE = 100.0
"""A group with no scored metric counts as 100 in the total (Kayenta: ``if (group.noData)
100.0``), so a group that only had ``nodata`` does not drag the score down."""


def resolve_thresholds(
    config: CanaryConfig, thresholds: ScoreThresholds | Mapping[str, float] | None
) -> ScoreThresholds:
    """The thresholds to use: an override (model or ``{"pass": .., "marginal": ..}``) or the
    config's. A bad mapping raises pydantic's ``ValidationError``."""
    if thresholds is None:
        return config.thresholds
    if isinstance(thresholds, ScoreThresholds):
        return thresholds
    return ScoreThresholds.model_validate(dict(thresholds))


def _round_half_up(value: float) -> float:
    # Kayenta rounds with commons-math MathUtils.round(x, 2): BigDecimal of the shortest
    # decimal form of x, ROUND_HALF_UP.
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def group_results(
    scored: Iterable[MetricResult], weights: Mapping[str, float]
) -> list[GroupResult]:
    """One result per group that a scored metric names, in order of first appearance."""
    members: dict[str, list[MetricResult]] = {}
    for result in scored:
        for group in result.groups:
            members.setdefault(group, []).append(result)
    groups = []
    for name, results in members.items():
        counts = {c.value: 0 for c in Classification}
        for result in results:
            counts[result.classification.value] += 1
        passed = counts[Classification.PASS.value]
        judged = passed + sum(counts[c.value] for c in FAILING)
        score = 100.0 * passed / judged if judged else 0.0
        groups.append(
            GroupResult(name=name, score=score, weight=weights.get(name, 0.0), counts=counts)
        )
    return groups


def group_weights(config: CanaryConfig, present: Iterable[str]) -> dict[str, float]:
    """Weights of the groups present: configured ones as given, the rest share what is left
    of 100 equally (what is left counts every configured weight, present or not)."""
    present = list(present)
    unweighted = [g for g in present if g not in config.groups]
    share = (100.0 - sum(config.groups.values())) / len(unweighted) if unweighted else 0.0
    return {g: config.groups.get(g, share) for g in present}


def verdict_for(score: float, thresholds: ScoreThresholds) -> Verdict:
    if score >= thresholds.pass_:
        return Verdict.PASS
    if score >= thresholds.marginal:
        return Verdict.MARGINAL
    return Verdict.FAIL


def _names(results: Iterable[MetricResult]) -> str:
    return ", ".join(f"'{r.name}' ({r.classification.value})" for r in results)


def score_report(
    config: CanaryConfig,
    results: Iterable[MetricResult],
    thresholds: ScoreThresholds,
    *,
    details: Mapping[str, Any] | None = None,
    nodata_limit: float | None = NODATA_LIMIT_PERCENT,
) -> Report:
    """Score classified metrics and build the report (see the module docstring for rules).

    ``nodata_limit=None`` drops Kayenta's rule that a large share of ``nodata`` metrics forces
    the score to 0 (the default judge holds such a verdict at ``marginal`` instead: no data is
    not evidence of harm)."""
    results = tuple(results)
    scored = [r for r in results if not r.muted]
    present = list(dict.fromkeys(g for r in scored for g in r.groups))
    weights = group_weights(config, present)
    groups = group_results(scored, weights)

    total = 0.0
    for group in groups:
        judged = sum(group.counts[c.value] for c in (Classification.PASS, *FAILING))
        effective = group.score if judged else EMPTY_GROUP_EFFECTIVE_SCORE
        total += effective * group.weight / 100.0
    weighted = _round_half_up(total)

    critical = [r for r in scored if r.critical_failure]
    nodata = [r for r in scored if r.classification is Classification.NODATA]
    nodata_share = 100.0 * len(nodata) / len(scored) if scored else 0.0
    failing = [r for r in scored if r.classification in FAILING]
    muted = [r.name for r in results if r.muted]

    if critical:
        score = 0.0
        rule = (
            f"Critical metric {_names(critical[:1])} failed: score forced to 0"
            + (f" (also critical: {_names(critical[1:])})" if critical[1:] else "")
            + "."
        )
    elif scored and nodata_limit is not None and nodata_share >= nodata_limit:
        score = 0.0
        rule = (
            f"{len(nodata)} of {len(scored)} scored metrics ({nodata_share:.0f}%) had no data, "
            f"at or above the {nodata_limit:g}% limit: score forced to 0."
        )
    elif not scored:
        score = 0.0
        rule = "No metric is scored (every metric is muted): score 0."
    else:
        score = weighted
        rule = f"Weighted group score {score:g}"
        rule += f"; failing: {_names(failing)}." if failing else "; every scored metric passed."

    verdict = verdict_for(score, thresholds)
    if critical and config.mode is JudgeMode.DEFAULT:
        # Kayenta classifies even a forced 0 by the thresholds (marginal 0 makes it marginal);
        # our own judge never lets a failed critical metric through.
        verdict = Verdict.FAIL
    reason = (
        f"{rule} Verdict {verdict.value}: score {score:g} against pass "
        f"{thresholds.pass_:g} and marginal {thresholds.marginal:g}."
    )
    if muted:
        reason += f" Muted (reported, not scored): {', '.join(repr(m) for m in muted)}."
    report_details: dict[str, Any] = {
        "weighted_score": weighted,
        "critical_failures": [r.name for r in critical],
        "nodata_share": nodata_share,
        "nodata_limit": nodata_limit,
        "muted": muted,
        "weights": weights,
    }
    report_details.update(details or {})
    report = Report(
        verdict=verdict,
        score=score,
        reason=reason,
        pass_threshold=thresholds.pass_,
        marginal_threshold=thresholds.marginal,
        metrics=results,
        groups=tuple(groups),
        mode=config.mode.value,
        config_name=config.name,
        details=report_details,
    )
    unfetched = {
        r.name: (str(r.details["fetch_failure"]), r.reason)
        for r in scored if r.details.get("fetch_failure") in OUTAGE_KINDS
    }
    return error_outcome(report, unfetched) if unfetched else report


MAX_REASONS_NAMED = 3
"""An error outcome's reason quotes this many failures in full, then counts the others."""


def error_outcome(report: Report, failures: Mapping[str, tuple[str, str]]) -> Report:
    """``report`` as an error outcome: verdict ``error``, no score (NaN), a reason naming each
    scored metric whose data could not be fetched, ``failures[name] = (kind, reason)``.

    The metrics keep their results (what could be judged is still shown); the score the
    judged metrics would have given is kept as ``details["score_if_judged"]`` for people, never
    for a decision. ``details["fetch_failures"]`` lists ``{metric, kind, reason}``.
    """
    scored = sum(1 for m in report.metrics if not m.muted)
    named = list(failures.items())
    quoted = "; ".join(f"{name!r} ({kind}): {reason}"
                       for name, (kind, reason) in named[:MAX_REASONS_NAMED])
    more = len(named) - MAX_REASONS_NAMED
    if more > 0:
        quoted += f"; and {more} more (details.fetch_failures)"
    reason = (
        f"No verdict: the data of {len(named)} of {scored} scored metric"
        f"{'s' if scored != 1 else ''} could not be fetched because the source failed, and an "
        f"outage is no evidence about the canary. {quoted}"
    )
    details = dict(report.details)
    details["fetch_failures"] = [
        {"metric": name, "kind": kind, "reason": text} for name, (kind, text) in named
    ]
    details["score_if_judged"] = report.score
    return replace(report, verdict=Verdict.ERROR, score=math.nan, reason=reason,
                   details=details)
