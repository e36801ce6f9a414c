"""What the default judge's tests of one metric give its decisions (:mod:`judge.judges.default.
decide`): the one-sided components and the evaluation that combines them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from judge.report import Classification

__all__ = ["Component", "Evaluation"]


@dataclass(frozen=True)
class Component:
    """One one-sided test inside a metric's judgment."""

    name: str
    side: Classification
    p_value: float
    sentence: str
    immaterial: str = ""
    """Why a failure in this component would not be material (empty: it would be). Used by
    the spread check's reach rule; the location check's effect-size limits are applied to the
    whole evaluation instead."""


@dataclass(frozen=True)
class Evaluation:
    """A metric's default-mode tests before the decision.

    ``p_value``: Bonferroni-combined one-sided p-value over ``components``; ``worst``: the
    component with the smallest p-value; ``material``: whether a failure in ``worst``'s
    direction would be large enough to matter; ``evidence``: ``None`` when there is enough
    evidence to pass, else a sentence saying why not.
    """

    test: str
    components: tuple[Component, ...]
    estimate: float
    low: float
    high: float
    confidence: float
    effect_size: float = math.nan
    effect_measure: str | None = None
    material: bool = True
    immaterial: str = ""
    """When ``material`` is false: why, as a sentence for the reason (empty: the effect size is
    within the allowed limit)."""
    evidence: str | None = None
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> Component:
        return min(self.components, key=lambda c: c.p_value)

    @property
    def p_value(self) -> float:
        return min(1.0, len(self.components) * self.worst.p_value)
