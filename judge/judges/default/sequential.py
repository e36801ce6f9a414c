"""The default judge's sequential (polled, anytime-valid) mode: a controller polls every few
minutes for one rollout; each poll adds the points that arrived since the last one to the run's
:class:`~judge.judges.state.SequentialState` and decides each metric as soon as the evidence
allows, with the false-failure chance over the whole run held at its level however often it is
polled (confidence sequences on paired location and spread scores for continuous metrics, the
rate-ratio e-process for counts; :mod:`judge.stats.sequential`). Decisions are final.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from judge.config import (
    Autocorrelation,
    CanaryConfig,
    MetricConfig,
    QuantileTest,
    RateRatioTest,
    ThresholdTest,
)
from judge.errors import DataError
from judge.judges.common import FloatArray, MetricData, MetricInput, as_values
from judge.judges.default.counts import (
    CountEvidence,
    baseline_rate_floor,
    more_data_words,
    no_material_change,
)
from judge.judges.default.decide import FLAT_BASELINE_SHARE, judge_metrics, state_evidence
from judge.judges.state import MetricSequence, SequentialState
from judge.judges.words import percent
from judge.report import Classification, MetricResult, Report, Verdict
from judge.scoring import score_report
from judge.stats.autocorrelation import estimate_autocorrelation
from judge.stats.counts import count_dispersion
from judge.stats.sequential import (
    INCREASE_RATIOS,
    PHI_MAX_DESIGN,
    change_ratio_score,
    change_score_phi,
    half_spread_ratios,
    rate_ratio_log_evalue,
    score_bounds,
)

__all__ = ["judge_sequential"]

MIN_SEQUENTIAL_POINTS = 10
"""No sequential decision before this many points of a metric: the asymptotic confidence
sequences need a few points to estimate a variance."""

HUBER_K = 3.0
"""Clipping constant (in robust standard deviations of the paired differences) of the
sequential location score, a Huber-type psi function (Huber 1964, "Robust estimation of a
location parameter", Ann. Math. Statist. 35): linear where Gaussian noise lives, bounded
against latency spikes."""

SEQUENTIAL_PHI_MARGIN = 1.75
"""Standard errors added to the estimated ``phi`` of the location score in sequential mode (1 in
fixed-horizon mode): a run is looked at every minute, so an underestimate gets many chances to
matter. Measured at ``phi = 0.7`` under per-minute polling (200 runs, one-sided bounds, location
share 1/2): 1.5 gave 4.0% A/A false failures, 1.75 gave 2.5% with clear shifted means caught at
median minute 18.5 (2.0: 1.5% and 22; 60 runs with two-sided bounds: 1.5 gave 6%)."""

CHANGE_PHI_DESIGN = 0.3
"""Design floor of the autocorrelation of the sequential spread score (see
:func:`~judge.stats.sequential.change_ratio_score`),
as the ``phi`` of an AR(1) long-run factor: 0.3 is a factor of
1.86. Simulated under "no change" (AR(1) noise with 2% spikes, 60 points, 600 runs per row),
the long-run variance factor of the score's mean is 1.46-1.83 for ``phi`` in [0, 0.9] on the
log scale. Unlike the metric's own floor it does not fade: it is a property of the score
(minute ``t`` shares points with minutes ``t + 1`` and ``t + 2``), not a stand-in for a
``phi`` that few points cannot estimate; with a fading floor, A/A runs failed late (minutes
43-51)."""


CHANGE_PHI_MARGIN = 1.0
"""Standard errors added to ``r1 + r2``, the spread score's own lag-1 and lag-2
autocorrelations, in its long-run factor
(:func:`~judge.stats.sequential.change_score_phi`). Measured under per-minute
polling, see ``docs/default-judge.md``."""

CHANGE_PRIOR_POINTS = 8.0
"""Pseudo-observations added to the sample variance of the spread score (see
:func:`~judge.stats.sequential.score_bounds`),
at the score's variance under "no change" (the sum of the two sides'
variances of their log changes): a short run of similar scores must not claim a variance near
0. For the earlier sign score (+1 when the canary moved more) 1 pseudo-point gave 7% A/A false
failures and 8 gave 3.3% (60 runs); a log-ratio's variance does not collapse when a change is
real, so the prior costs little detection."""


LOCATION_ALPHA_SHARE = 0.5
"""Share of a metric's sequential level (per direction) spent on the location score; the
spread score gets the rest (weighted Bonferroni, fixed in advance, so the total stays the
metric's level). The location score's bound is the one that limits how early a clear shifted
mean is caught; the level enters the bounds only through a logarithm."""


_DECREASE_RATIOS: tuple[float, ...] = (0.8, 2 / 3, 0.5, 1 / 3, 0.2, 0.1, 0.01)
_PASS_FRACTIONS: tuple[float, ...] = (0.75, 0.5, 0.35, 0.2, 0.1)


def _append_pairs(seq: MetricSequence, baseline: Any, canary: Any,
                  baseline_exp: Any = None, canary_exp: Any = None) -> None:
    """Append new points pairwise (same minute on both sides); pairs with a NaN are dropped."""
    b, c = as_values(baseline), as_values(canary)
    n = min(b.size, c.size)
    columns = [b[:n], c[:n]]
    if baseline_exp is not None and canary_exp is not None:
        be, ce = as_values(baseline_exp), as_values(canary_exp)
        n = min(n, be.size, ce.size)
        columns = [b[:n], c[:n], be[:n], ce[:n]]
    stacked = np.vstack([col[:n] for col in columns])
    keep = np.all(np.isfinite(stacked), axis=0)
    seq.baseline.extend(float(v) for v in stacked[0][keep])
    seq.canary.extend(float(v) for v in stacked[1][keep])
    if len(columns) == 4:
        seq.baseline_exposure.extend(float(v) for v in stacked[2][keep])
        seq.canary_exposure.extend(float(v) for v in stacked[3][keep])


def _sequential_continuous(
    metric: MetricConfig, seq: MetricSequence, alpha: float, config: CanaryConfig
) -> tuple[str | None, str, dict[str, Any]]:
    c, b = np.asarray(seq.canary), np.asarray(seq.baseline)
    n = c.size
    scores: list[tuple[str, Classification, FloatArray]] = []
    if n:
        # Location: paired differences in robust standard deviations (MAD), clipped at
        # +-HUBER_K; symmetric about 0 when nothing changed, since the sides are exchangeable
        # minute by minute. Much more efficient than signs for Gaussian-like noise.
        diff = c - b
        scale = 1.4826 * float(np.median(np.abs(diff - np.median(diff))))
        location = np.clip(diff / scale, -HUBER_K, HUBER_K) if scale > 0 else np.sign(diff)
        if metric.direction.increase_matters:
            scores.append(("location", Classification.HIGH, location))
        if metric.direction.decrease_matters:
            scores.append(("location", Classification.LOW, -location))
    tails = getattr(metric.test, "tails", True) or isinstance(metric.test, QuantileTest)
    spread_square = 1.0
    relative = False
    if tails and n > 2:
        # Spread: the sides' minute-to-minute changes compared minute by minute, on the log
        # scale when every value is positive (a latency's noise is multiplicative). A wider
        # spread and a heavier tail (spiky minutes) both make the canary move more. It counts
        # in a direction only when that half of the distribution widened (p90 - median for
        # increases, median - p10 for decreases).
        halves = half_spread_ratios(c, b)
        relative = bool(min(float(c.min()), float(b.min())) > 0)
        spread, spread_square = change_ratio_score(c, b, relative=relative)
        if metric.direction.increase_matters and not halves[0] <= 1.0:
            scores.append(("spread", Classification.HIGH, spread))
        if metric.direction.decrease_matters and not halves[1] <= 1.0:
            scores.append(("spread", Classification.LOW, spread))
    if not scores:
        return None, "no points yet", {}
    # The split does not depend on the data (weighted Bonferroni): per direction, location
    # gets LOCATION_ALPHA_SHARE and the spread check the rest.
    directions = int(metric.direction.increase_matters) + int(metric.direction.decrease_matters)
    per_direction = alpha / max(directions, 1)
    shares = ({"location": LOCATION_ALPHA_SHARE, "spread": 1.0 - LOCATION_ALPHA_SHARE}
              if tails else {"location": 1.0})
    phi_series = (
        estimate_autocorrelation(c, b, margin=SEQUENTIAL_PHI_MARGIN).phi_canary
        if n >= 8 else PHI_MAX_DESIGN
    )
    settings = config.sequential
    parts, details = [], {}
    all_small = True
    for name, side, y in scores:
        each = per_direction * shares[name]
        if name == "location":
            bounds = score_bounds(y, each, settings.horizon, phi_series)
        else:
            bounds = score_bounds(
                y, each, settings.horizon, change_score_phi(y, CHANGE_PHI_MARGIN),
                CHANGE_PHI_DESIGN, prior_points=CHANGE_PRIOR_POINTS,
                prior_square=spread_square, fade=False)
        if bounds is None:
            all_small = False
            parts.append(f"{name}: too few effective points yet")
            continue
        mean, half, phi = bounds
        details[f"{name} ({side.value})"] = {"mean": mean, "low": mean - half,
                                            "high": mean + half, "phi": phi}
        parts.append(f"{name} score {mean:+.2f} (one-sided bounds {mean - half:+.2f} and "
                     f"{mean + half:+.2f})")
        if n >= MIN_SEQUENTIAL_POINTS and mean - half > 0:
            meaning = (
                "robust SD of the minute-by-minute difference" if name == "location" else
                f"log-ratio: the canary's {'relative ' if relative else ''}"
                f"minute-to-minute changes {math.exp(mean):.3g}x the baseline's (geometric "
                "mean)")
            return side.value, (
                f"{name} score {mean:+.2f} ({meaning}); its anytime-valid one-sided lower bound "
                f"{mean - half:+.2f} is above 0 after {n} paired points (level {each:.3g})"
            ), details
        # Location is in robust standard deviations; the spread score is a log-ratio, held to
        # half the margin (0.5: changes at most 1.65x the baseline's).
        limit = settings.pass_margin if name == "location" else settings.pass_margin / 2.0
        all_small = all_small and mean + half < limit
    text = "; ".join(parts) or "no points yet"
    if n >= MIN_SEQUENTIAL_POINTS and all_small:
        return "pass", (
            "every score's anytime-valid upper bound is below its margin "
            f"({settings.pass_margin:g} robust SD for location, a log-ratio of half that for "
            "spread) "
            f"after {n} paired points ({text})"
        ), details
    return None, text, details


def _sequential_counts(
    metric: MetricConfig, test: RateRatioTest, seq: MetricSequence, alpha: float,
    config: CanaryConfig,
) -> tuple[str | None, str, dict[str, Any]]:
    c, b = np.asarray(seq.canary), np.asarray(seq.baseline)
    ec = np.asarray(seq.canary_exposure) if seq.canary_exposure else np.ones_like(c)
    eb = np.asarray(seq.baseline_exposure) if seq.baseline_exposure else np.ones_like(b)
    dispersion = 1.0
    if test.overdispersion is Autocorrelation.AUTO and c.size:
        dispersion = count_dispersion(c, b, ec, eb).dispersion
    sides = [s for s, wanted in ((Classification.HIGH, metric.direction.increase_matters),
                                 (Classification.LOW, metric.direction.decrease_matters)) if wanted]
    threshold = math.log(len(sides) / alpha)
    # A pass is wrong only on a metric that regressed, one metric: its e-processes are held at
    # the run's level, not split over the metrics as failures are (a failure by luck can come
    # from any metric).
    pass_threshold = math.log(len(sides) / config.sequential.level)
    details: dict[str, Any] = {"dispersion": dispersion, "log_threshold": threshold,
                               "log_pass_threshold": pass_threshold,
                               "canary_events": float(c.sum()), "baseline_events": float(b.sum())}
    margin = config.sequential.count_margin
    passes = True
    for side in sides:
        grid = INCREASE_RATIOS if side is Classification.HIGH else _DECREASE_RATIOS
        log_e = rate_ratio_log_evalue(c, b, ec, eb, ratios=grid, dispersion=dispersion)
        details[f"log_e_{side.value}"] = log_e
        if log_e >= threshold:
            return side.value, (
                f"e-value {math.exp(min(log_e, 700.0)):.3g} >= {math.exp(threshold):.3g} "
                f"({c.sum():g} canary vs {b.sum():g} baseline events)"
            ), details
        if side is Classification.HIGH:
            pass_grid = tuple(margin * f for f in _PASS_FRACTIONS)
            null = margin
        else:
            pass_grid = tuple(1.0 / margin / f for f in _PASS_FRACTIONS)
            null = 1.0 / margin
        log_pass = rate_ratio_log_evalue(c, b, ec, eb, null_ratio=null, ratios=pass_grid,
                                         dispersion=dispersion)
        details[f"log_e_pass_{side.value}"] = log_pass
        passes = passes and log_pass >= pass_threshold
    text = f"{c.sum():g} canary vs {b.sum():g} baseline events, dispersion {dispersion:.3g}"
    if passes:
        return "pass", f"the evidence rules out a rate ratio beyond {margin:g} ({text})", details
    if seq.canary_exposure and sides == [Classification.HIGH] and test.negligible_rate > 0:
        # Few or no events on either side, but much traffic: pass once the canary's own rate is
        # shown below a material one, the larger of count_margin x the baseline's rate (at its
        # lower bound) and that rate + negligible_rate (Poisson likelihood-ratio e-process against
        # rate >= rate0, mixed over a quarter and a tenth of it).
        events, exposure = float(c.sum()) / dispersion, float(ec.sum()) / dispersion
        baseline_rate = baseline_rate_floor(float(b.sum()), float(eb.sum()), dispersion)
        rate0 = max(margin * baseline_rate, baseline_rate + test.negligible_rate)
        logs = [events * math.log(f) - (f - 1.0) * rate0 * exposure for f in (0.25, 0.1)]
        log_negligible = max(logs) + math.log1p(math.exp(min(logs) - max(logs))) - math.log(2.0)
        details["log_e_negligible"] = log_negligible
        if log_negligible >= pass_threshold:
            return "pass", (
                f"the canary's rate is shown below {percent(rate0)}, no material increase over "
                f"the baseline's {percent(baseline_rate)} ({text} in {float(ec.sum()):g} "
                "requests)"
            ), details
    return None, text, details


_ENDED = "the run ended"
"""How the reason of a metric passed at the end of a run begins."""


def _final_count_evidence(
    metric: MetricConfig, test: RateRatioTest, seq: MetricSequence
) -> CountEvidence:
    c, b = np.asarray(seq.canary), np.asarray(seq.baseline)
    has_denominator = bool(seq.canary_exposure) and bool(seq.baseline_exposure)
    ec = np.asarray(seq.canary_exposure) if has_denominator else np.ones_like(c)
    eb = np.asarray(seq.baseline_exposure) if has_denominator else np.ones_like(b)
    dispersion = 1.0
    if test.overdispersion is Autocorrelation.AUTO and c.size:
        dispersion = count_dispersion(c, b, ec, eb).dispersion
    if c.size == 0 or float(ec.sum()) <= 0 or float(eb.sum()) <= 0:
        return CountEvidence(False, (0.0, math.inf), None, None)
    return no_material_change(metric.direction, test, float(c.sum()), float(b.sum()),
                              float(ec.sum()), float(eb.sum()), dispersion=dispersion,
                              has_denominator=has_denominator)


def _broken_canary(seq: MetricSequence) -> str | None:
    """Why a continuous metric cannot pass at the end of a run although nothing failed: too
    few paired points (the canary stopped reporting it), or a canary flat at one value where
    the baseline varies (see :func:`judge.judges.default.decide.plan`); ``None`` otherwise."""
    n = len(seq.canary)
    if n < MIN_SEQUENTIAL_POINTS:
        return (f"only {n} paired points (at least {MIN_SEQUENTIAL_POINTS} are needed): the "
                "canary may have stopped reporting this metric")
    c, b = np.asarray(seq.canary), np.asarray(seq.baseline)
    if np.ptp(c) == 0.0 and np.ptp(b) > 0.0 and np.mean(b == c[0]) < FLAT_BASELINE_SHARE:
        return (f"every canary point is {c[0]:g} (flat) while the baseline's vary: the metric "
                "may have stopped reporting on the canary")
    return None


def _undecided_as(results: list[MetricResult],
                  classification: Classification) -> list[MetricResult]:
    """``results`` with every undecided (``nodata``) scored metric given ``classification``."""
    return [dataclasses.replace(r, classification=classification)
            if r.classification is Classification.NODATA and not r.muted else r
            for r in results]


def _pass_shown_counts_with_the_run(
    testable: list[MetricConfig], results: list[MetricResult], state: SequentialState,
    alpha: float,
) -> None:
    """Counts whose e-processes showed no material increase pass once every other scored
    metric has passed: the run then passes, and decisions are final. Until then their failure
    side keeps watching (errors that begin late still fail them); a run that never gets there
    passes them at its ``final`` poll. ``results`` (in ``testable``'s order) is updated."""
    shown = [i for i, metric in enumerate(testable)
             if isinstance(metric.test, RateRatioTest)
             and state.metrics[metric.name].decision is None
             and state.metrics[metric.name].shown_at is not None]
    if not shown or any(r.classification is not Classification.PASS
                        for i, r in enumerate(results) if not r.muted and i not in shown):
        return
    for i in shown:
        metric, seq = testable[i], state.metrics[testable[i].name]
        seq.decide("pass", f"no material increase shown at {seq.shown_at} points "
                   f"({seq.shown_reason}), nothing failed it since, and every other metric "
                   "has passed", state.calls)
        results[i] = _metric_result(metric, seq, dict(results[i].details), seq.reason or "",
                                    None, False, alpha)


def _run_outcome(config: CanaryConfig, results: list[MetricResult],
                 final: bool) -> tuple[Verdict, str, float, str]:
    """The run's verdict, status, score and reason after a poll, by the config's own scoring
    (group weights, thresholds, critical metrics) as a fixed-horizon judgment scores, so that
    a run says ``fail`` exactly where the whole-run judgment would: a metric that failed
    (anytime-valid) is a failure in its group, and one failed metric of eleven equally weighted
    leaves a score of 90.9, ``marginal`` at thresholds 95 / 75, not a rollback (mark a metric
    critical to make its failure fail the canary).

    Decisions are final. With metrics still undecided the run is decided only when the
    undecided ones cannot change the verdict's side: ``fail`` when even all of them passing
    leaves the score below ``marginal`` (or a critical metric failed); ``inconclusive``
    (verdict ``marginal``: a person decides) when the run can no longer pass; ``pass`` when
    every scored metric passed. On the ``final`` poll, and once nothing is undecided, the
    verdict is the scored one, with the default judge's evidence rules
    (:func:`~judge.judges.default.decide.state_evidence`).
    """
    thresholds = config.thresholds
    counted = [r for r in results if not r.muted]
    failed = [r.name for r in counted if r.classification.failed]
    passed = [r.name for r in counted if r.classification is Classification.PASS]
    undecided = [r.name for r in counted if r.classification is Classification.NODATA]
    level = f"anytime-valid at level {config.sequential.level:g}"
    if counted and len(passed) == len(counted):
        at_end = [r.name for r in counted if r.details.get("passed_at_end")]
        if not at_end:
            return Verdict.PASS, "pass", 100.0, "Every metric has passed with enough evidence."
        early = len(counted) - len(at_end)
        return Verdict.PASS, "pass", 100.0, (
            f"Passed: no metric showed a regression. {early} of {len(counted)} passed during "
            "the run with evidence of no material change; "
            f"{', '.join(at_end)} passed at the end of the run, where no test had found a "
            "regression (as a fixed-horizon test that does not reject).")
    if final or not undecided:
        scored = state_evidence(score_report(config, results, thresholds, nodata_limit=None))
        status = {Verdict.PASS: "pass", Verdict.FAIL: "fail"}.get(scored.verdict,
                                                                  "inconclusive")
        lead = (f"Failed ({level}): {', '.join(failed)}. " if failed else
                f"The run ended with no failure, but not enough evidence on "
                f"{', '.join(undecided)}. " if undecided else "")
        return scored.verdict, status, scored.score, lead + scored.reason
    so_far = 100.0 * len(passed) / max(len(counted), 1)
    if failed:
        best = score_report(config, _undecided_as(results, Classification.PASS), thresholds,
                            nodata_limit=None)
        if best.verdict is Verdict.FAIL:
            return Verdict.FAIL, "fail", best.score, (
                f"Failed ({level}): {', '.join(failed)}. Even if {', '.join(undecided)} "
                f"pass, {best.reason}")
        if best.verdict is Verdict.MARGINAL:
            return Verdict.MARGINAL, "inconclusive", best.score, (
                f"Cannot pass any more: {', '.join(failed)} failed ({level}). Even if "
                f"{', '.join(undecided)} pass, {best.reason} Not a rollback by this config's "
                "scoring (mark a metric critical to make its failure fail the canary): a "
                "person decides; the run stops here.")
        return Verdict.MARGINAL, "continue", so_far, (
            f"Undecided: {', '.join(failed)} failed ({level}), which this config's weights "
            f"allow; {len(passed)} of {len(counted)} metrics passed so far; keep polling.")
    return Verdict.MARGINAL, "continue", so_far, (
        f"Undecided: {len(passed)} of {len(counted)} metrics passed so far, none failed; "
        "keep polling.")


def _metric_result(
    metric: MetricConfig,
    seq: MetricSequence,
    details: dict[str, Any],
    text: str,
    broken: str | None,
    final: bool,
    alpha: float,
) -> MetricResult:
    """A metric's result at this poll, from its sequence's decision (``None``: undecided)."""
    if seq.decision is None and final and broken is not None:
        classification = Classification.NODATA
        details["required"] = True
        reason = (f"Not enough evidence by the end of the run: {broken}; verdict at most "
                  "marginal.")
    elif seq.decision is None and final:
        classification = Classification.NODATA
        reason = (f"Not enough evidence by the end of the run: {text}; the count could "
                  "neither fail nor be shown small enough to pass.")
    elif seq.decision is None:
        classification = Classification.NODATA
        reason = f"Undecided so far (keep polling): {text}."
    else:
        classification = Classification(seq.decision)
        reason = (
            f"Decided at call {seq.decided_call} after {seq.decided_at} points: "
            f"{seq.reason}."
        )
    details["decided_call"] = seq.decided_call
    # A pass at the end of the run (no anytime-valid test showed a regression, as a fixed
    # test that does not reject) is not one shown early with evidence: the verdict says so.
    details["passed_at_end"] = (seq.decision == "pass"
                                and (seq.reason or "").startswith(_ENDED))
    if classification is Classification.NODATA and final and (
            metric.critical or metric.must_have_data):
        details["required"] = True
    critical_failure = metric.critical and classification.failed
    if critical_failure:
        reason += " Critical metric: the canary fails."
    return MetricResult(
        name=metric.name, classification=classification, reason=reason,
        groups=metric.groups, test=f"sequential_{metric.test.kind}",
        direction=metric.direction.value, critical=metric.critical, muted=metric.muted,
        confidence=1.0 - alpha, details=details, critical_failure=critical_failure,
    )


def _confirm_failure(
    config: CanaryConfig, metric: MetricConfig, seq: MetricSequence, outcome: str, text: str
) -> tuple[str | None, str, dict[str, Any]]:
    """A continuous metric's anytime-valid failure stands only when a one-shot judgment of the
    run so far fails the metric too: the fixed-horizon default judge's tests on the same
    paired points, the metric alone under the config's multiple testing (at
    ``multiple_testing.level``; with ``method: none`` at the metric's own confidence).

    Why: the confidence sequences model a score's dependence by its lag-1 autocorrelation, and
    a stretch of a real metric can differ between the sides for many minutes (another regime
    of the load: a block of ten minutes is one observation, not ten) and look like a shift to
    that model, early in a run above all. The fixed-horizon tests allow for that with rank
    statistics, the minutes' own variance and their margins. Requiring both can only lower
    the chance of failing by luck (still at most ``sequential.level``), so the confirmation
    needs no share of it: it guards the model, not the luck, and is not split over the
    metrics (split, it held a 30% latency regression of the demo from minute 15 to 25). An
    unconfirmed metric stays undecided and is looked at again at the next poll."""
    fixed = _whole_run_look(config, [metric], {metric.name: seq})[metric.name]
    # The level the look applied (absent when it had too little evidence to test at all).
    level = fixed.details.get("default_judge", {}).get("level", config.multiple_testing.level)
    look = {"classification": fixed.classification.value, "p_value": fixed.p_value,
            "level": level}
    if fixed.classification.value == outcome:
        return outcome, (f"{text}; a one-shot judgment of the {len(seq.canary)} points so far "
                         f"shows it too (p = {fixed.p_value:.2g} at level {level:.2g})"), look
    return None, (f"{text}, but a one-shot judgment of the {len(seq.canary)} points so far "
                  f"does not show it ({fixed.reason.rstrip('.')}): not decided yet"), look


def _whole_run_look(
    config: CanaryConfig, metrics: list[MetricConfig], sequences: Mapping[str, MetricSequence]
) -> dict[str, MetricResult]:
    """The metrics no sequence decided, judged once more on the whole run as the fixed-horizon
    default judge judges a finished canary: the same tests (time-aligned, the sequences being
    paired minute by minute; counts on their counts and exposures), the same family-wise
    correction over these metrics at ``config.multiple_testing.level``. Done once, at the end,
    it is one more fixed-horizon test: a healthy run is failed by luck at most the sequential
    level plus that level, and a run ends at least as strict as a one-shot judgment of its
    data."""
    data: dict[str, MetricInput] = {}
    judged: list[MetricConfig] = []
    for m in metrics:
        seq = sequences[m.name]
        minutes = np.arange(len(seq.canary), dtype=np.float64) * 60.0  # the pairs, in order
        data[m.name] = MetricData.from_epoch(np.asarray(seq.baseline), np.asarray(seq.canary),
                                             minutes, minutes)
        test = m.test
        if isinstance(test, RateRatioTest) and test.denominator:
            # Each count's own exposures, paired with its own counts, under a name of its own:
            # two counts over one denominator may have kept different minutes.
            exposure = None
            if seq.canary_exposure and seq.baseline_exposure:
                exposure = f"{test.denominator} (exposure of {m.name})"
                data[exposure] = MetricData.from_epoch(
                    np.asarray(seq.baseline_exposure), np.asarray(seq.canary_exposure),
                    minutes, minutes)
            m = m.model_copy(update={"test": test.model_copy(update={"denominator": exposure})})
        judged.append(m)
    results, _ = judge_metrics(config.model_copy(update={"metrics": tuple(judged)}), data)
    return {r.name: r for r in results}


def judge_sequential(
    config: CanaryConfig,
    state: SequentialState,
    new_data: Mapping[str, MetricInput],
    *,
    now: str | None = None,
    final: bool = False,
) -> tuple[Report, SequentialState]:
    """One poll of a sequential (anytime-valid) run: new points in, report and new state out.

    ``new_data`` holds the points since the last call by metric name (count tests also read
    their ``denominator``'s); sides are paired minute by minute, and a metric without new
    data (missing, or its fetch failed) adds no points. ``state`` is not modified.
    The false-failure chance over the whole run, however often it is polled, is at most
    ``config.sequential.level`` (Bonferroni over the metrics): continuous metrics through
    anytime-valid confidence sequences on paired location and spread scores, counts through
    the rate-ratio e-process (:mod:`judge.stats.sequential`). Decisions are final. The
    verdict follows the config's scoring (:func:`_run_outcome`): ``fail`` once the failed
    metrics fail the canary, ``inconclusive`` (``marginal``) once it can no longer pass,
    ``pass`` once every scored metric passed, else ``marginal`` with
    ``details["sequential"]["status"] == "continue"`` (keep polling). Threshold tests are not
    sequential and are not judged here.

    ``final=True`` marks the run's last call: the metrics no sequence decided are judged once
    on the whole run as the fixed-horizon judge would (:func:`_whole_run_look`) and fail when
    that shows a regression; otherwise continuous ones pass, counts pass on evidence of no
    material change over the whole run or stay ``nodata`` ("not enough evidence"), and the run
    gets the scored verdict.
    """
    if state.config_name != config.name:
        raise DataError(
            f"state belongs to config {state.config_name!r}, not {config.name!r}"
        )
    new_state = state.copy()
    new_state.calls += 1
    new_state.updated_at = now
    if new_state.started_at is None:
        new_state.started_at = now
    testable = [m for m in config.metrics if not isinstance(m.test, ThresholdTest)]
    scored = [m for m in testable if not m.muted]
    alpha = config.sequential.level / max(len(scored), 1)
    results: list[MetricResult] = []
    ending: list[MetricConfig] = []
    for metric in testable:
        seq = new_state.metrics.setdefault(metric.name, MetricSequence())
        given = new_data.get(metric.name)
        test = metric.test
        if isinstance(given, MetricData):
            if isinstance(test, RateRatioTest) and test.denominator:
                exposure = new_data.get(test.denominator)
                if isinstance(exposure, MetricData):
                    _append_pairs(seq, given.baseline, given.canary,
                                  exposure.baseline, exposure.canary)
            else:
                _append_pairs(seq, given.baseline, given.canary)
        details: dict[str, Any] = {"points": len(seq.canary), "alpha": alpha}
        continuous = not isinstance(test, RateRatioTest)
        # Counts are exempt: a canary without errors is good news, not a broken metric.
        broken = _broken_canary(seq) if continuous and seq.decision is None else None
        if seq.decision is None:
            if isinstance(test, RateRatioTest):
                outcome, text, extra = _sequential_counts(metric, test, seq, alpha, config)
                if outcome == "pass":
                    # Not final before the run passes or ends: a canary whose errors start after the
                    # evidence first looked good (4 against 0, then 25 against 0) must still
                    # fail, as a one-shot judgment of the whole run fails it.
                    if seq.shown_at is None:
                        seq.shown_at, seq.shown_reason = len(seq.canary), text
                    outcome = None
                    text = (f"no material increase shown so far ({seq.shown_reason}, at "
                            f"{seq.shown_at} points); a count passes with the run, once every "
                            "other metric has passed, or when it ends, unless an increase "
                            "shows by then")
                elif outcome is None and seq.shown_at is not None:
                    text = (f"{text}; no material increase was shown at {seq.shown_at} points, "
                            "but the evidence no longer shows it")
            else:
                outcome, text, extra = _sequential_continuous(metric, seq, alpha, config)
                if outcome == "pass" and broken is not None:
                    # A flat canary "passes" every score; it is no evidence of health.
                    outcome, text = None, broken
                elif outcome in ("high", "low"):
                    outcome, text, extra["run_so_far"] = _confirm_failure(
                        config, metric, seq, outcome, text)
            details.update(extra)
            if outcome is not None:
                seq.decide(outcome, text, new_state.calls)
        else:
            text = seq.reason or ""
        if seq.decision is None and final and continuous and broken is None:
            # The run is over and no anytime-valid sequence showed a regression: pass, as a
            # fixed-horizon test that does not reject passes, unless the whole run judged as
            # one fixed-horizon test shows one (below, for all such metrics together).
            seq.decide("pass", f"{_ENDED} with no evidence of a regression ({text})",
                       new_state.calls)
            ending.append(metric)
        if seq.decision is None and final and not continuous:
            # The run is over: the count is judged once more as a fixed-horizon test would
            # judge the whole run, and passes on the same evidence (no material change shown at
            # EVIDENCE_CONFIDENCE). Done once, at the end, it spends no anytime-valid budget;
            # the failure side stays with the e-processes, which already had every point.
            assert isinstance(test, RateRatioTest)
            end = _final_count_evidence(metric, test, seq)
            details["final_evidence"] = {"shown": end.shown, "ratio_bounds": list(end.ratio_bounds),
                                         "difference_upper": end.difference_upper}
            # It also takes part in the whole run's one fixed-horizon look (below), which
            # fails it when the whole run shows a significant harmful change.
            ending.append(metric)
            if end.shown or seq.shown_at is not None:
                how = ("the whole run shows no material change" if end.shown else
                       f"no material increase was shown at {seq.shown_at} points "
                       f"({seq.shown_reason})")
                seq.decide("pass", f"{_ENDED} with no evidence of a regression, and {how} "
                           f"({text})", new_state.calls)
            else:
                text = text + more_data_words(
                    end, len(seq.canary),
                    float(sum(seq.canary_exposure)) if seq.canary_exposure else len(seq.canary),
                    "requests" if seq.canary_exposure else "intervals")
        results.append(_metric_result(metric, seq, details, text, broken, final, alpha))
    if ending:
        # One fixed-horizon look at the whole run for the metrics that ended undecided
        # (continuous ones, and counts however their evidence ended): a regression the
        # sequences were too slow for still stops the run.
        look = _whole_run_look(config, ending, new_state.metrics)
        by_name = {r.name: i for i, r in enumerate(results)}
        for metric in ending:
            fixed = look[metric.name]
            seq = new_state.metrics[metric.name]
            i = by_name[metric.name]
            details = dict(results[i].details)
            details["whole_run"] = {"classification": fixed.classification.value,
                                    "p_value": fixed.p_value, "reason": fixed.reason}
            if fixed.classification in (Classification.HIGH, Classification.LOW):
                seq.decide(fixed.classification.value,
                           f"{_ENDED} undecided by the sequences, and the whole run judged as "
                           f"one fixed-horizon test shows a regression: {fixed.reason}",
                           new_state.calls)
            elif seq.decision is None:
                # A count still without evidence: its result stands, with the look's numbers.
                results[i] = dataclasses.replace(results[i], details=details)
                continue
            results[i] = _metric_result(metric, seq, details, seq.reason or "", None, final,
                                        alpha)
    if not final:
        _pass_shown_counts_with_the_run(testable, results, new_state, alpha)
    verdict, status, score, reason = _run_outcome(config, results, final)
    report = Report(
        verdict=verdict, score=score, reason=reason,
        pass_threshold=config.thresholds.pass_, marginal_threshold=config.thresholds.marginal,
        metrics=tuple(results), groups=(), mode="default_sequential",
        config_name=config.name,
        details={"sequential": {
            "status": status, "calls": new_state.calls, "level": config.sequential.level,
            "alpha_per_metric": alpha, "correction": "bonferroni",
            "sentence": (f"Anytime-valid: the chance that some metric ever fails by luck in "
                         f"this run is at most {config.sequential.level:g}, however often it "
                         "is polled, plus at most "
                         f"{config.multiple_testing.level:g} for the final call's one "
                         "fixed-horizon look at the metrics still undecided."),
        }},
    )
    return report, new_state
