"""What a judge is: one small protocol, implemented by each judge (``judge.judges.kayenta``,
``judge.judges.default``) and chosen by ``config.mode`` in :func:`judge.judges.judge_for`.

A judge does three things:

- :meth:`Judge.judge` — a fixed-horizon judgment: every metric's data in, a scored
  :class:`~judge.report.Report` out;
- :meth:`Judge.classify` — one metric on its own (notebooks, reference suites);
- :meth:`Judge.poll` — one poll of a sequential run: the points that arrived since the last
  poll and the run's state in, a report and the new state out (a judge without a sequential
  mode raises :class:`~judge.errors.ConfigError`).

A judge never fetches anything and never sees a metric source: data arrive as
:class:`~judge.judges.common.MetricInput` per metric name (and per ``denominator`` name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from judge.config import CanaryConfig, JudgeMode, MetricConfig, ScoreThresholds
from judge.judges.common import MetricData, MetricInput
from judge.judges.state import SequentialState
from judge.report import MetricResult, Report
from judge.scoring import score_report

__all__ = ["Judge", "finish_report"]


class Judge(Protocol):
    """A judge: see the module doc."""

    mode: ClassVar[JudgeMode]
    test_kinds: ClassVar[frozenset[str]]
    """The ``test.kind`` values this judge can judge; a config asking for another is refused
    when it is validated, before anything is judged."""

    def judge(
        self, config: CanaryConfig, data: Mapping[str, MetricInput], thresholds: ScoreThresholds
    ) -> Report: ...

    def classify(self, metric: MetricConfig, baseline: Any, canary: Any) -> MetricResult: ...

    def poll(
        self, config: CanaryConfig, state: SequentialState,
        new_data: Mapping[str, MetricData], *, now: str | None = None, final: bool = False,
    ) -> tuple[Report, SequentialState]: ...


def finish_report(
    config: CanaryConfig,
    results: Sequence[MetricResult],
    data: Mapping[str, MetricInput],
    thresholds: ScoreThresholds,
    details: Mapping[str, Any] | None = None,
    **scoring: Any,
) -> Report:
    """Score ``results`` (in config order) into a report; series in ``data`` that no metric
    or denominator uses are listed in ``details["ignored_series"]``. ``scoring`` goes to
    :func:`judge.scoring.score_report` (a judge's own scoring options)."""
    known = {m.name for m in config.metrics} | config.denominators
    extra: dict[str, Any] = {"ignored_series": sorted(name for name in data if name not in known)}
    extra.update(details or {})
    return score_report(config, list(results), thresholds, details=extra, **scoring)
