"""State of a sequential (polled) judgment, kept between calls for one run.

A controller polls every minute for the same rollout; the service stores this state by run id
(JSON, see :meth:`SequentialState.to_json`) and hands it back to
the judge's :meth:`~judge.judges.base.Judge.poll` with the points that arrived since the
last call. Pure data: the points seen so far per metric (an hour of one-minute points is a few
kilobytes), the decisions already taken (a decision is final: once a metric failed or passed it
stays so, which is what makes polling safe together with the anytime-valid statistics), and
call bookkeeping.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from judge.errors import DataError

STATE_VERSION = 1


@dataclass
class MetricSequence:
    """Everything seen so far for one metric (plus its denominator for count tests).

    ``decision`` is ``None`` while undecided, else ``"pass"``, ``"high"`` or ``"low"``;
    ``decided_at`` is the number of points (pairs or intervals) when it was taken.
    """

    baseline: list[float] = field(default_factory=list)
    canary: list[float] = field(default_factory=list)
    baseline_exposure: list[float] = field(default_factory=list)
    canary_exposure: list[float] = field(default_factory=list)
    decision: str | None = None
    decided_at: int | None = None
    decided_call: int | None = None
    reason: str | None = None
    shown_at: int | None = None
    """Counts: the points at which the e-processes first showed no material increase. Such a
    pass waits until the run passes (every other metric passed) or ends (the failure side keeps
    watching, and the final look at the whole run can still fail it), so it is kept here, not
    as the decision."""
    shown_reason: str | None = None

    def decide(self, decision: str, reason: str, call: int) -> None:
        """Take the (final) decision at this many points, at call ``call`` of the run."""
        self.decision, self.reason = decision, reason
        self.decided_at, self.decided_call = len(self.canary), call

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MetricSequence:
        return cls(
            baseline=[float(v) for v in raw.get("baseline", [])],
            canary=[float(v) for v in raw.get("canary", [])],
            baseline_exposure=[float(v) for v in raw.get("baseline_exposure", [])],
            canary_exposure=[float(v) for v in raw.get("canary_exposure", [])],
            decision=raw.get("decision"),
            decided_at=raw.get("decided_at"),
            decided_call=raw.get("decided_call"),
            reason=raw.get("reason"),
            shown_at=raw.get("shown_at"),
            shown_reason=raw.get("shown_reason"),
        )


@dataclass
class SequentialState:
    """A sequential run: which config it judges, calls so far, and per-metric sequences.

    ``config_name`` guards against a state being reused with another config;
    ``started_at`` / ``updated_at`` are ISO timestamps given by the caller (the state itself
    never reads a clock).
    """

    run_id: str
    config_name: str
    calls: int = 0
    started_at: str | None = None
    updated_at: str | None = None
    metrics: dict[str, MetricSequence] = field(default_factory=dict)
    version: int = STATE_VERSION

    def copy(self) -> SequentialState:
        """An independent copy (lists copied), so a judgment never changes its input."""
        return dataclasses.replace(
            self,
            metrics={
                name: dataclasses.replace(
                    seq,
                    baseline=list(seq.baseline),
                    canary=list(seq.canary),
                    baseline_exposure=list(seq.baseline_exposure),
                    canary_exposure=list(seq.canary_exposure),
                )
                for name, seq in self.metrics.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        # NaN points are never stored (they are dropped on arrival), so this is plain JSON.
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SequentialState:
        version = raw.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise DataError(
                f"sequential state version {version} is not supported (expected {STATE_VERSION})"
            )
        return cls(
            run_id=str(raw["run_id"]),
            config_name=str(raw["config_name"]),
            calls=int(raw.get("calls", 0)),
            started_at=raw.get("started_at"),
            updated_at=raw.get("updated_at"),
            metrics={
                name: MetricSequence.from_dict(item)
                for name, item in dict(raw.get("metrics", {})).items()
            },
            version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> SequentialState:
        return cls.from_dict(json.loads(text))

    @classmethod
    def new(cls, run_id: str, config_name: str, *, now: str | None = None) -> SequentialState:
        return cls(run_id=run_id, config_name=config_name, started_at=now, updated_at=now)
