"""The default judge (``mode: default``): this project's own, statistically honest judge.

Split by responsibility: :mod:`~judge.judges.default.evaluate` (the fixed-horizon tests of
levels, paired and unpaired, and their sentences), :mod:`~judge.judges.default.counts` (the
count test and its evidence rule), :mod:`~judge.judges.default.evaluation` (what a test gives
the decisions), :mod:`~judge.judges.default.decide` (levels, the family-wise correction,
reasons, evidence) and :mod:`~judge.judges.default.sequential` (the polled, anytime-valid
mode). The statistics themselves are in :mod:`judge.stats`. ``docs/default-judge.md`` tells the
whole story with measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from judge.config import CanaryConfig, JudgeMode, MetricConfig, ScoreThresholds
from judge.judges.base import finish_report
from judge.judges.common import MetricData, MetricInput, prepare
from judge.judges.default.decide import decide_alone, judge_metrics, state_evidence, untested
from judge.judges.default.sequential import judge_sequential
from judge.judges.state import SequentialState
from judge.report import MetricResult, Report

__all__ = ["DefaultJudge"]


class DefaultJudge:
    """Autocorrelation-aware tests, counts judged as counts, spread and tail checks, a
    family-wise correction over the metrics, and a sequential mode (``mode: default``)."""

    mode: ClassVar[JudgeMode] = JudgeMode.DEFAULT
    test_kinds: ClassVar[frozenset[str]] = frozenset(
        {"mann_whitney", "quantiles", "rate_ratio", "threshold"}
    )

    def judge(
        self, config: CanaryConfig, data: Mapping[str, MetricInput], thresholds: ScoreThresholds
    ) -> Report:
        # Tested together: vectorised over metrics, then the family-wise correction.
        ordered, details = judge_metrics(config, data)
        # No data is not evidence of harm: no forced 0 for many nodata metrics; the verdict is
        # held at marginal instead (state_evidence).
        report = finish_report(config, ordered, data, thresholds, details, nodata_limit=None)
        return state_evidence(report)

    def classify(self, metric: MetricConfig, baseline: Any, canary: Any) -> MetricResult:
        prepared = prepare(metric, self.mode, baseline, canary)
        if isinstance(prepared, MetricResult):
            return prepared
        decided = untested(prepared)
        return decided if decided is not None else decide_alone(prepared)

    def poll(
        self, config: CanaryConfig, state: SequentialState,
        new_data: Mapping[str, MetricData], *, now: str | None = None, final: bool = False,
    ) -> tuple[Report, SequentialState]:
        return judge_sequential(config, state, new_data, now=now, final=final)
